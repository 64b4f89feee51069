//! What the API asks of the event loop ([`Call`]), how the node takes it, and how the answer
//! to a request the node took travels back ([`Reply`]): the one place where the node's
//! outcomes become the API's result types.

use std::time::Duration;

use bytes::Bytes;
use metrics::{Counter, Histogram};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};

use crate::error::{CampaignError, GroupError, Indeterminate::NodeStopped, ProposeError};
use crate::error::{MembershipChangeError, ReadError, TransferError};
use crate::group::{GroupStatus, ReadPolicy};
use crate::ids::{GroupId, NodeId, RequestId};
use crate::membership::{Membership, MembershipChange};
use crate::node::{Node, NodeReport, NodeStatus, ReadStart, Resolution};
use crate::queued_bytes::Held;
use crate::state_machine::StateMachine;

pub(crate) type ProposeReply = oneshot::Sender<Result<Bytes, ProposeError>>;
pub(crate) type ProposeManyReply = oneshot::Sender<Vec<Result<Bytes, ProposeError>>>;
pub(crate) type GroupReply = oneshot::Sender<Result<(), GroupError>>;
pub(crate) type ReadReply = oneshot::Sender<Result<Bytes, ReadError>>;
pub(crate) type ReadIndexReply = oneshot::Sender<Result<u64, ReadError>>;
pub(crate) type TransferReply = oneshot::Sender<Result<(), TransferError>>;
pub(crate) type ChangeReply = oneshot::Sender<Result<Membership, MembershipChangeError>>;
/// One pending transfer per group a drain started (or why it could not start).
pub(crate) type DrainReply =
    oneshot::Sender<Vec<(GroupId, oneshot::Receiver<Result<(), TransferError>>)>>;

/// A call from the API to the event loop.
pub(crate) enum Call {
    /// The group, the commands, the node's tick when sent (`Submission::queued_at`), the
    /// reply, and the commands' bytes counted against `max_api_queue_bytes` until taken.
    ProposeMany(GroupId, Vec<Bytes>, u64, ProposeManyReply, Held),
    Read(GroupId, ReadPolicy, Bytes, ReadReply),
    ReadIndex(GroupId, ReadPolicy, ReadIndexReply),
    TransferLeader(GroupId, NodeId, TransferReply),
    ChangeMembership(GroupId, MembershipChange, ChangeReply),
    /// The groups to move (a part of the window of those led: `MultiRaft::drain`).
    Drain(Vec<GroupId>, DrainReply),
    LedGroups(oneshot::Sender<Vec<GroupId>>),
    CreateGroup(GroupId, Membership, GroupReply),
    JoinGroup(GroupId, Membership, GroupReply),
    RemoveGroup(GroupId, GroupReply),
    Status(GroupId, oneshot::Sender<Option<GroupStatus>>),
    Membership(GroupId, oneshot::Sender<Option<Membership>>),
    Campaign(GroupId, oneshot::Sender<Result<(), CampaignError>>),
    NodeStatus(oneshot::Sender<NodeStatus>),
    Report(GroupId, usize, oneshot::Sender<NodeReport>),
    Shutdown,
}

/// What the event loop must still do with a call the node was handed.
pub(crate) enum Taken {
    /// Nothing.
    Done,
    /// A read was started: serve it now, wait for its read point, or answer its error.
    Read(GroupId, Result<ReadStart, ReadError>, Reply),
    /// Stop the loop.
    Shutdown,
}

/// Where the answer to each request the node took goes.
pub(crate) struct Replies {
    /// By request. A fast hash: one insert and one remove per proposal.
    waiting: FxHashMap<RequestId, Reply>,
    /// The batches of `propose_many` calls with proposals still unanswered, by key.
    batches: FxHashMap<u64, Batch>,
    next_batch: u64,
    /// The clock's time of the current wake or ready, in nanoseconds: proposals taken are
    /// stamped with it, and applied ones measured against it.
    now: u64,
    /// Commit latency samples ([`crate::metrics::COMMIT_LATENCY_SECONDS`]): proposals
    /// stamped in one wake and applied in one ready have the same latency, so a run of
    /// equal samples is recorded at once.
    latency: Histogram,
    run: (u64, usize),
}

/// The answers of one `propose_many` call, sent together once the last one is in.
struct Batch {
    results: Vec<Option<Result<Bytes, ProposeError>>>,
    left: usize,
    reply: ProposeManyReply,
    /// When the batch was taken (see `Replies::now`).
    taken: u64,
}

impl Replies {
    /// Replies whose commit latencies go to `latency`.
    pub(crate) fn new(latency: Histogram) -> Replies {
        Replies {
            waiting: FxHashMap::default(),
            batches: FxHashMap::default(),
            next_batch: 0,
            now: 0,
            latency,
            run: (0, 0),
        }
    }

    /// The clock reads `now`: for the proposals taken and applied from here on.
    pub(crate) fn set_now(&mut self, now: Duration) {
        self.now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    }

    /// A proposal taken at `taken` was applied now.
    fn sample(&mut self, taken: u64) {
        let latency = self.now.saturating_sub(taken);
        if self.run.1 > 0 && self.run.0 != latency {
            self.flush_latency();
        }
        self.run = (latency, self.run.1 + 1);
    }

    /// Records the commit latencies sampled since the last call.
    pub(crate) fn flush_latency(&mut self) {
        let (nanos, count) = std::mem::take(&mut self.run);
        if count > 0 {
            let seconds = Duration::from_nanos(nanos).as_secs_f64();
            self.latency.record_many(seconds, count);
        }
    }

    /// The answer to `request` goes to `reply`.
    pub(crate) fn wait(&mut self, request: RequestId, reply: Reply) {
        self.waiting.insert(request, reply);
    }

    /// The answer to proposal `request`, taken in this wake, goes to `reply`.
    pub(crate) fn wait_proposal(&mut self, request: RequestId, reply: ProposeReply) {
        self.waiting
            .insert(request, Reply::Propose(reply, self.now));
    }

    /// Takes the reply waiting for `request`.
    pub(crate) fn take(&mut self, request: RequestId) -> Option<Reply> {
        self.waiting.remove(&request)
    }

    /// The entry of proposal `request` was applied with `result`.
    pub(crate) fn applied(&mut self, request: RequestId, result: Bytes) {
        match self.waiting.remove(&request) {
            Some(Reply::Propose(r, taken)) => {
                self.sample(taken);
                drop(r.send(Ok(result)))
            }
            Some(Reply::InBatch { batch, slot }) => {
                if let Some(taken) = self.batches.get(&batch).map(|b| b.taken) {
                    self.sample(taken);
                }
                self.fill(batch, slot, Ok(result))
            }
            _ => {}
        }
    }

    /// Each of `outcomes` ended.
    pub(crate) fn ended_all(&mut self, outcomes: Vec<crate::node::Outcome>) {
        for o in outcomes {
            self.ended(o.request, o.resolution);
        }
    }

    /// `request` ended as `resolution`.
    pub(crate) fn ended(&mut self, request: RequestId, resolution: Resolution) {
        match self.waiting.remove(&request) {
            Some(Reply::InBatch { batch, slot }) => {
                self.fill(batch, slot, Err(proposal_error(resolution)))
            }
            Some(reply) => reply.send(resolution),
            None => {}
        }
    }

    /// Every request still waiting ends: the node stopped.
    pub(crate) fn stop(&mut self) {
        let mut waiting: Vec<RequestId> = self.waiting.keys().copied().collect();
        waiting.sort_unstable();
        for request in waiting {
            self.ended(request, Resolution::Indeterminate(NodeStopped));
        }
    }

    /// Starts a batch of `count` answers for `reply`; returns its key.
    fn batch(&mut self, count: usize, reply: ProposeManyReply) -> u64 {
        let key = self.next_batch;
        self.next_batch += 1;
        let results = (0..count).map(|_| None).collect();
        let batch = Batch {
            results,
            left: count,
            reply,
            taken: self.now,
        };
        self.batches.insert(key, batch);
        key
    }

    /// One answer of a batch; the batch goes out with its last.
    fn fill(&mut self, key: u64, slot: usize, result: Result<Bytes, ProposeError>) {
        let Some(batch) = self.batches.get_mut(&key) else {
            return;
        };
        if let Some(r) = batch.results.get_mut(slot)
            && r.is_none()
        {
            *r = Some(result);
            batch.left -= 1;
        }
        if batch.left == 0
            && let Some(batch) = self.batches.remove(&key)
        {
            let results = batch.results.into_iter().flatten().collect();
            let _ = batch.reply.send(results);
        }
    }
}

/// A proposal's outcome other than applied, as the API reports it.
fn proposal_error(resolution: Resolution) -> ProposeError {
    match resolution {
        Resolution::Rejected(e) => e,
        Resolution::Indeterminate(why) => ProposeError::Indeterminate(why),
        // A proposal ends otherwise only when the node stops.
        _ => ProposeError::Indeterminate(NodeStopped),
    }
}

/// Commands a wake of the event loop takes in API calls ([`next_within`]'s budget): eight
/// `propose_many` calls' worth, about 8 ms of proposals on the benchmark box. A budget of
/// one call's worth (1,024) raised the p99 of `bench --groups 1000 --clients 1024 --batch
/// 16` from 20 to 23–32 ms; this one left it at 20 ms (BENCHMARKS.md, 2026-12-05).
pub(crate) const MAX_COMMANDS_PER_WAKE: usize = 8_192;

/// The event loop's end of the API's calls. Dropping it, however the loop ended (a shutdown,
/// an abort, a panic in a state machine), refuses the calls still queued with `Stopped`:
/// the node never took them, so nothing of theirs began. Dropped with the loop unanswered,
/// they told their callers `Indeterminate(NodeStopped)`, outcome unknown (review).
pub(crate) struct CallInbox {
    calls: mpsc::Receiver<Call>,
    /// Counts the proposals refused at the end.
    stopped: Counter,
}

impl CallInbox {
    pub(crate) fn new(calls: mpsc::Receiver<Call>, stopped: Counter) -> CallInbox {
        CallInbox { calls, stopped }
    }

    /// The next call; `None` once every handle is gone.
    pub(crate) async fn recv(&mut self) -> Option<Call> {
        self.calls.recv().await
    }

    /// The next queued call, while `budget` — the commands this wake may still take —
    /// lasts: each call costs its commands, one at least. Counted in calls alone, one wake
    /// took 1,024 `propose_many` calls of up to `MAX_COMMANDS_PER_CALL` commands each, a
    /// million proposals, while no tick's output left and no inbound batch was stepped
    /// (review).
    pub(crate) fn next_within(&mut self, budget: &mut usize) -> Option<Call> {
        if *budget == 0 {
            return None;
        }
        let call = self.calls.try_recv().ok()?;
        let cost = match &call {
            Call::ProposeMany(_, commands, ..) => commands.len().max(1),
            _ => 1,
        };
        *budget = budget.saturating_sub(cost);
        Some(call)
    }

    /// Takes no call again: every later one fails to send (`Stopped`), and those queued are
    /// refused with `Stopped`.
    pub(crate) fn refuse_waiting(&mut self) {
        self.calls.close();
        while let Ok(call) = self.calls.try_recv() {
            self.stopped.increment(call.refuse());
        }
    }
}

impl Drop for CallInbox {
    fn drop(&mut self) {
        self.refuse_waiting();
    }
}

impl Call {
    /// Hands the call to the node; when the node takes a request, its answer waits in
    /// `replies`. Returns what the loop must still do.
    pub(crate) fn take(self, node: &mut Node, replies: &mut Replies) -> Taken {
        match self {
            Call::ProposeMany(_, commands, _, reply, _) if commands.is_empty() => {
                drop(reply.send(Vec::new()))
            }
            Call::ProposeMany(group, commands, queued_at, reply, held) => {
                drop(held);
                let batch = replies.batch(commands.len(), reply);
                for (slot, command) in commands.into_iter().enumerate() {
                    match node.propose_queued(group, command, queued_at) {
                        Ok(request) => replies.wait(request, Reply::InBatch { batch, slot }),
                        Err(e) => replies.fill(batch, slot, Err(e)),
                    }
                }
            }
            Call::Read(group, policy, query, reply) => {
                let reply = Reply::Read(Box::new((query, reply)));
                return Taken::Read(group, node.read(group, policy), reply);
            }
            Call::ReadIndex(group, policy, reply) => {
                return Taken::Read(group, node.read(group, policy), Reply::ReadIndex(reply));
            }
            Call::TransferLeader(group, to, reply) => match node.transfer_leader(group, to) {
                Ok(request) => replies.wait(request, Reply::Transfer(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::ChangeMembership(group, change, reply) => {
                match node.change_membership(group, change) {
                    Ok(request) => replies.wait(request, Reply::Change(reply)),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Call::LedGroups(reply) => drop(reply.send(node.led_groups())),
            Call::Drain(groups, reply) => {
                let mut pending = Vec::new();
                for (group, started) in node.drain_groups(&groups) {
                    let (tx, rx) = oneshot::channel();
                    match started {
                        Ok(request) => replies.wait(request, Reply::Transfer(tx)),
                        Err(e) => drop(tx.send(Err(e))),
                    }
                    pending.push((group, rx));
                }
                drop(reply.send(pending));
            }
            Call::CreateGroup(group, membership, reply) => {
                match node.create_group(group, membership) {
                    Ok(request) => replies.wait(request, Reply::Lifecycle(reply)),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Call::JoinGroup(group, membership, reply) => match node.join_group(group, membership) {
                Ok(request) => replies.wait(request, Reply::Lifecycle(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::RemoveGroup(group, reply) => match node.remove_group(group) {
                Ok(request) => replies.wait(request, Reply::Lifecycle(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::Status(group, reply) => drop(reply.send(node.group_status(group))),
            Call::Membership(group, reply) => {
                let membership = node.replica(group).map(|r| r.membership().clone());
                drop(reply.send(membership));
            }
            Call::Campaign(group, reply) => {
                let _ = reply.send(node.campaign(group).map_err(CampaignError::from));
            }
            Call::NodeStatus(reply) => drop(reply.send(node.status())),
            Call::Report(from, limit, reply) => drop(reply.send(node.report(from, limit))),
            Call::Shutdown => return Taken::Shutdown,
        }
        Taken::Done
    }

    /// Refuses a call the loop will never take: the node stopped. Returns how many
    /// proposals it refused.
    pub(crate) fn refuse(self) -> u64 {
        let proposals = match &self {
            Call::ProposeMany(_, commands, ..) => commands.len() as u64,
            _ => 0,
        };
        let _ = match self {
            Call::ProposeMany(_, commands, _, reply, _) => {
                let refused = commands
                    .iter()
                    .map(|_| Err(ProposeError::Stopped))
                    .collect();
                reply.send(refused).ok()
            }
            Call::Read(_, _, _, reply) => reply.send(Err(ReadError::Stopped)).ok(),
            Call::ReadIndex(_, _, reply) => reply.send(Err(ReadError::Stopped)).ok(),
            Call::TransferLeader(_, _, reply) => reply.send(Err(TransferError::Stopped)).ok(),
            Call::ChangeMembership(_, _, reply) => {
                reply.send(Err(MembershipChangeError::Stopped)).ok()
            }
            Call::CreateGroup(_, _, reply)
            | Call::JoinGroup(_, _, reply)
            | Call::RemoveGroup(_, reply) => reply.send(Err(GroupError::Stopped)).ok(),
            Call::Campaign(_, reply) => reply.send(Err(CampaignError::Stopped)).ok(),
            Call::Drain(..)
            | Call::LedGroups(_)
            | Call::Status(..)
            | Call::Membership(..)
            | Call::NodeStatus(_)
            | Call::Report(..)
            | Call::Shutdown => None,
        };
        proposals
    }
}

/// Where the answer to one request goes.
pub(crate) enum Reply {
    /// A proposal, with when it was taken (see `Replies::now`).
    Propose(ProposeReply, u64),
    /// One proposal of a `propose_many` batch: which batch, which place in it.
    InBatch {
        batch: u64,
        slot: usize,
    },
    /// A read, with the query to run once its read point is applied. Boxed: a proposal's
    /// reply is the common case and should stay small in the table.
    Read(Box<(Bytes, ReadReply)>),
    ReadIndex(ReadIndexReply),
    Transfer(TransferReply),
    Change(ChangeReply),
    Lifecycle(GroupReply),
}

impl Reply {
    /// Serves a read whose read point `index` the state machine `sm` has applied.
    pub(crate) fn serve(self, sm: &dyn StateMachine, index: u64) {
        let _ = match self {
            Reply::Read(read) => {
                let (query, r) = *read;
                r.send(Ok(sm.query(&query))).ok()
            }
            Reply::ReadIndex(r) => r.send(Ok(index)).ok(),
            _ => None,
        };
    }

    /// Fails a read the node refused.
    pub(crate) fn refuse_read(self, error: ReadError) {
        let _ = match self {
            Reply::Read(read) => read.1.send(Err(error)).ok(),
            Reply::ReadIndex(r) => r.send(Err(error)).ok(),
            _ => None,
        };
    }

    pub(crate) fn send(self, resolution: Resolution) {
        use Resolution::*;
        let _ = match (self, resolution) {
            (Reply::Propose(r, _), Rejected(e)) => r.send(Err(e)).ok(),
            (Reply::Propose(r, _), Indeterminate(why)) => {
                r.send(Err(ProposeError::Indeterminate(why))).ok()
            }
            (Reply::Lifecycle(r), Done) => r.send(Ok(())).ok(),
            (Reply::Transfer(r), Done) => r.send(Ok(())).ok(),
            (Reply::Transfer(r), TransferFailed(e)) => r.send(Err(e)).ok(),
            (Reply::Change(r), MembershipChanged(m)) => r.send(Ok(m)).ok(),
            (Reply::Change(r), MembershipChangeFailed(e)) => r.send(Err(e)).ok(),
            // The node stopped with the change taken: its entries may be in the log, even
            // committed (an outcome lost with a ready whose write failed). `Stopped` says
            // nothing changed (review).
            (Reply::Change(r), Indeterminate(why)) => {
                r.send(Err(MembershipChangeError::Indeterminate(why))).ok()
            }
            (Reply::Change(r), _) => r.send(Err(MembershipChangeError::Stopped)).ok(),
            (Reply::Read(read), ReadFailed(e)) => read.1.send(Err(e)).ok(),
            (Reply::ReadIndex(r), ReadFailed(e)) => r.send(Err(e)).ok(),
            // Anything else ends a request only when the node stops.
            (Reply::Lifecycle(r), _) => r.send(Err(GroupError::Stopped)).ok(),
            (Reply::Propose(r, _), _) => r.send(Err(ProposeError::Indeterminate(NodeStopped))).ok(),
            (Reply::Read(read), _) => read.1.send(Err(ReadError::Stopped)).ok(),
            (Reply::ReadIndex(r), _) => r.send(Err(ReadError::Stopped)).ok(),
            (Reply::Transfer(r), _) => r.send(Err(TransferError::Stopped)).ok(),
            // `Replies` answers batched proposals itself.
            (Reply::InBatch { .. }, _) => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `propose_many` calls of `commands` each, queued.
    fn queued(calls: usize, commands: usize) -> CallInbox {
        let (tx, rx) = mpsc::channel(calls);
        let queued = std::sync::Arc::new(crate::queued_bytes::QueuedBytes::new(usize::MAX));
        for _ in 0..calls {
            let held = Held::hold(&queued, 0).expect("no limit");
            let batch = vec![Bytes::from_static(b"x"); commands];
            let call = Call::ProposeMany(GroupId(1), batch, 0, oneshot::channel().0, held);
            tx.try_send(call).map_err(|_| ()).expect("room");
        }
        CallInbox::new(rx, Counter::noop())
    }

    /// A wake takes calls while their commands fit its budget: big `propose_many` calls
    /// count their commands, small calls one each. Regression (review): counted in calls,
    /// one wake took a million proposals.
    #[test]
    fn a_wake_takes_calls_within_a_budget_of_commands() {
        let mut budget = 1_024;
        let mut calls = queued(4, 1_024);
        assert!(calls.next_within(&mut budget).is_some());
        assert!(calls.next_within(&mut budget).is_none(), "budget spent");

        let mut budget = 1_024;
        let mut calls = queued(2_000, 0);
        let mut taken = 0;
        while calls.next_within(&mut budget).is_some() {
            taken += 1;
        }
        assert_eq!(taken, 1_024, "an empty batch costs one");
    }

    /// A change still waiting when the node stops ends `Indeterminate`: the node took it,
    /// so its entries may be in the log, even committed (its outcome lost with a ready
    /// whose write failed). Regression (review): it was answered `Stopped`, which says
    /// nothing changed.
    #[test]
    fn a_change_waiting_when_the_node_stops_is_indeterminate() {
        let (tx, mut rx) = oneshot::channel();
        Reply::Change(tx).send(Resolution::Indeterminate(NodeStopped));
        assert_eq!(
            rx.try_recv(),
            Ok(Err(MembershipChangeError::Indeterminate(NodeStopped)))
        );
    }
}
