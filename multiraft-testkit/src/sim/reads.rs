//! The clients' reads: made through [`Node::read`](multiraft_core::Node::read) on a random
//! member under a random policy, served from that node's replica right after the applies of
//! the ready that reached the read point, and ended in the history.

use multiraft_core::{Bytes, GroupId, ReadPoint, ReadPolicy, ReadStart};

use super::Simulation;
use super::app::{ClientOp, ClientOutcome, SimApp, SimReplica};
use super::invariants::{Failure, Kind, proposal};

/// The policies a read is drawn from, each as likely.
const POLICIES: [ReadPolicy; 3] = [
    ReadPolicy::ReadIndex,
    ReadPolicy::Lease,
    ReadPolicy::Follower,
];

impl<A: SimApp> Simulation<A> {
    /// A client reads `group` with `query` through a random live member — leader or
    /// follower, whatever the policy, so that reads refused on the spot (`NotLeader`,
    /// `NoLeader`) are exercised too; they count as failed reads.
    pub(super) fn read_through(&mut self, group: GroupId, query: Vec<u8>) -> Result<(), Failure> {
        let Some(i) = self.random_live_member(group) else {
            return Ok(());
        };
        let policy = POLICIES[self.rng.below(POLICIES.len() as u64) as usize];
        self.read_via(group, i, policy, query)
    }

    /// A client reads `group` with `query` through node `i` under `policy`.
    pub(super) fn read_via(
        &mut self,
        group: GroupId,
        i: usize,
        policy: ReadPolicy,
        query: Vec<u8>,
    ) -> Result<(), Failure> {
        self.report.reads += 1;
        let me = self.nodes[i].id;
        let node = self.nodes[i].node.as_mut().expect("up");
        match node.read(group, policy) {
            Ok(ReadStart::Now { index }) => self.serve_now(i, group, index, query, policy),
            Ok(ReadStart::Taken(request)) => {
                let id = proposal(me, request);
                self.hash.u64(13);
                self.hash.u64(id.seq);
                self.checker
                    .requests
                    .took_kind(id, group, Kind::Read)
                    .map_err(|detail| self.checker.requests_failure(detail))?;
                self.pending_reads.insert(id, self.history.len());
                self.history.push(ClientOp {
                    group,
                    client: me,
                    command: Bytes::from(query),
                    read: Some(policy),
                    invoked_at_us: self.now_us,
                    returned_at_us: None,
                    outcome: ClientOutcome::Indeterminate,
                });
                self.touched.push((i, group));
                self.drive(i)
            }
            Err(_) => {
                // A read changes nothing: a refused one is simply not in the history.
                self.report.reads_failed += 1;
                Ok(())
            }
        }
    }

    /// Serves a read node `i` answered at once (a lease read whose point is applied): it
    /// starts and ends now.
    fn serve_now(
        &mut self,
        i: usize,
        group: GroupId,
        index: u64,
        query: Vec<u8>,
        policy: ReadPolicy,
    ) -> Result<(), Failure> {
        let me = self.nodes[i].id;
        let applied = self.applied_to[i].get(&group).copied().unwrap_or(0);
        self.hash.u64(15);
        self.hash.u64(index);
        if applied < index {
            return Err(Failure {
                invariant: "a read is served only once its read point is applied",
                detail: format!(
                    "{me} served a read of {group} at once at index {index} with {applied} applied"
                ),
            });
        }
        let command = Bytes::from(query);
        let answer = match self.replicas[i].get(&group) {
            Some(r) => r.query(&command),
            None => self.app.new_replica(me, group).query(&command),
        };
        let Some(answer) = answer else {
            return Err(Failure {
                invariant: "the application answers its reads (SimReplica::query)",
                detail: format!("{me}'s replica of {group} answered no query to {command:?}"),
            });
        };
        match policy {
            ReadPolicy::Lease => self.report.reads_lease += 1,
            ReadPolicy::Follower => self.report.reads_follower += 1,
            _ => self.report.reads_read_index += 1,
        }
        self.history.push(ClientOp {
            group,
            client: me,
            command,
            read: Some(policy),
            invoked_at_us: self.now_us,
            returned_at_us: Some(self.now_us),
            outcome: ClientOutcome::Applied(answer),
        });
        Ok(())
    }

    /// Serves the reads of one of node `i`'s readies, whose applies are done: each is
    /// answered by the node's replica of its group as it is now.
    pub(super) fn serve_reads(&mut self, i: usize, reads: Vec<ReadPoint>) -> Result<(), Failure> {
        let me = self.nodes[i].id;
        for rp in reads {
            let id = proposal(me, rp.request);
            let applied = self.applied_to[i].get(&rp.group).copied().unwrap_or(0);
            self.hash.u64(14);
            self.hash.u64(id.seq);
            self.hash.u64(rp.index);
            self.checker
                .requests
                .reported_served(id, rp.group, rp.index, applied)
                .map_err(|detail| self.checker.requests_failure(detail))?;
            let Some(k) = self.pending_reads.remove(&id) else {
                continue;
            };
            let op = &self.history[k];
            // A node that has applied no command of the group yet has no replica: its
            // state is a fresh one's.
            let answer = match self.replicas[i].get(&rp.group) {
                Some(r) => r.query(&op.command),
                None => self.app.new_replica(me, rp.group).query(&op.command),
            };
            let Some(answer) = answer else {
                return Err(Failure {
                    invariant: "the application answers its reads (SimReplica::query)",
                    detail: format!(
                        "{me}'s replica of {} answered no query to {:?} (SimApp::next_query makes reads, SimReplica::query must answer them)",
                        rp.group, op.command
                    ),
                });
            };
            match op.read {
                Some(ReadPolicy::Lease) => self.report.reads_lease += 1,
                Some(ReadPolicy::Follower) => self.report.reads_follower += 1,
                _ => self.report.reads_read_index += 1,
            }
            let op = &mut self.history[k];
            op.returned_at_us = Some(self.now_us);
            op.outcome = ClientOutcome::Applied(answer);
        }
        Ok(())
    }

    /// Read `id` failed: it changed nothing, so it leaves the history (see `check_history`).
    pub(super) fn read_failed(&mut self, id: multiraft_core::ProposalId) {
        if let Some(k) = self.pending_reads.remove(&id) {
            self.report.reads_failed += 1;
            self.history[k].outcome = ClientOutcome::Rejected;
        }
    }
}
