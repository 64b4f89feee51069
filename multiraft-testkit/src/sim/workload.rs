//! The client side: the app's commands proposed through the nodes (its reads are in
//! `reads.rs`), and the check of their history at the end.

use multiraft_core::{Bytes, GroupId, ProposeError};

use super::Simulation;
use super::app::{ClientOp, ClientOutcome, HistoryVerdict, SimApp};
use super::invariants::{Failure, proposal};

impl<A: SimApp> Simulation<A> {
    /// Proposes to `group` through the node believed to lead it (any live member otherwise,
    /// which forwards).
    pub(super) fn propose_to(&mut self, group: GroupId) -> Result<(), Failure> {
        self.propose_through(group, None, true)
    }

    /// Proposes to `group` through node `via` (by default the node believed to lead it, any
    /// live member otherwise); `drive` lets the node take a ready at once, as a lone client
    /// would see it.
    fn propose_through(
        &mut self,
        group: GroupId,
        via: Option<usize>,
        drive: bool,
    ) -> Result<(), Failure> {
        let command = Bytes::from(self.app.next_command(group, &mut self.rng));
        let hinted = self
            .leader_hint
            .get(&group)
            .and_then(|(_, l)| *l)
            .map(|l| l.0 as usize - 1)
            .filter(|i| self.can_call(*i));
        let target = match via.or(hinted) {
            Some(i) => i,
            None => match self.random_live_member(group) {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        self.report.proposals += 1;
        let me = self.nodes[target].id;
        let node = self.nodes[target].node.as_mut().expect("up");
        let record = ClientOp {
            group,
            client: me,
            command: command.clone(),
            read: None,
            invoked_at_us: self.now_us,
            returned_at_us: None,
            outcome: ClientOutcome::Indeterminate,
        };
        match node.propose(group, command) {
            Ok(request) => {
                let id = proposal(me, request);
                if node
                    .replica(group)
                    .is_some_and(|r| r.parked_proposals() > 0)
                {
                    self.report.parked_for_snapshots += 1;
                }
                if node.replica(group).is_some_and(|r| r.snapshot_deferred()) {
                    self.report.deferred_for_transfers += 1;
                }
                self.hash.u64(9);
                self.hash.u64(id.seq);
                self.checker
                    .requests
                    .took(id, group)
                    .map_err(|detail| self.checker.requests_failure(detail))?;
                self.pending_proposals.insert(id, self.history.len());
                self.proposal_ops.insert(id, self.history.len());
                self.history.push(record);
                self.touched.push((target, group));
                if drive { self.drive(target) } else { Ok(()) }
            }
            Err(e) => {
                self.report.rejected += 1;
                match e {
                    ProposeError::Busy {
                        limit: "max_commit_wait_ticks",
                    } => self.report.refused_by_admission += 1,
                    ProposeError::Busy {
                        limit: "max_pending_proposals",
                    } => self.report.refused_by_table += 1,
                    _ => {}
                }
                Ok(())
            }
        }
    }

    pub(super) fn propose_random(&mut self) -> Result<(), Failure> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let g = GroupId(1 + self.rng.below(self.groups.len() as u64));
        if let Some(query) = self.app.next_query(g, &mut self.rng) {
            return self.read_through(g, query);
        }
        if self.rng.chance(100) {
            // A burst: several clients propose through one member before it takes a ready,
            // so a follower forwards them in one message and a leader appends them in one
            // ready — the batched paths, which one proposal at a time never reaches. Up to
            // 16, so that a leader near `max_uncommitted_bytes` takes a forward in part.
            let Some(via) = self.random_live_member(g) else {
                return Ok(());
            };
            let count = self.rng.range(2, 16);
            for k in 1..=count {
                self.propose_through(g, Some(via), k == count)?;
            }
            return Ok(());
        }
        if self.rng.chance(250) {
            // A quarter of the rest through any live member, as clients behind a load
            // balancer send them: followers forward them, so the proposals a leader parks
            // or refuses include other nodes' (`Replica::refuse`'s routing).
            let via = self.random_live_member(g);
            return self.propose_through(g, via, true);
        }
        self.propose_to(g)
    }

    /// The clients' history against the app's own check ([`SimApp::check_history`]). Reads
    /// that were not served (failed, or their node crashed first) changed nothing: they
    /// are left out, as if never made.
    ///
    /// A proposal is judged by what the replicas applied, which the simulator sees and a
    /// client does not: one that some replica applied took effect by the first such apply
    /// (its entry committed before), with the output every replica computes there, so
    /// its interval ends there and an indeterminate outcome becomes that output; one
    /// that no replica applied was seen by no read, and is left out. Kept indeterminate,
    /// each could take effect anywhere after its call, and a few dozen on one key made
    /// the search give up (review: 47 of seeds 0–1,999; 12 with this).
    pub(super) fn check_history(&mut self) -> Result<(), Failure> {
        let history: Vec<ClientOp<_>> = self
            .history
            .iter()
            .enumerate()
            .filter_map(|(k, o)| {
                if o.read.is_some() {
                    return matches!(o.outcome, ClientOutcome::Applied(_)).then(|| o.clone());
                }
                let Some((at, output)) = self.first_applied.get(&k) else {
                    // Rejected ones are left out by the app; never applied, left out here.
                    return matches!(o.outcome, ClientOutcome::Rejected).then(|| o.clone());
                };
                let mut o = o.clone();
                o.returned_at_us = Some(o.returned_at_us.map_or(*at, |r| r.min(*at)));
                o.outcome = ClientOutcome::Applied(output.clone());
                Some(o)
            })
            .collect();
        match self.app.check_history(&history) {
            HistoryVerdict::Ok => Ok(()),
            HistoryVerdict::Unknown if self.cfg.require_linearizability_verdict => Err(Failure {
                invariant: "a verdict on the client history (require_linearizability_verdict)",
                detail: "the history check gave up: too large a search (for the key-value app, \
                         too many concurrent operations on one key)"
                    .to_string(),
            }),
            HistoryVerdict::Unknown => {
                self.report.linearizability_unknown += 1;
                Ok(())
            }
            HistoryVerdict::Violation { property, detail } => Err(Failure {
                invariant: property,
                detail,
            }),
        }
    }
}
