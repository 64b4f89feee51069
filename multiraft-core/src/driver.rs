//! The tokio event loop: feeds inbound batches, API calls and ticks to the [`Node`], commits
//! each ready's write with one storage call off the loop, sends, applies, resolves
//! proposals, advances.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::StateMachineFactory;
use crate::clock::Clock;
use crate::entry::Payload;
use crate::error::{GroupError, Indeterminate, ProposeError, StopError, StorageError};
use crate::group::GroupStatus;
use crate::ids::{GroupId, NodeId, ProposalId};
use crate::membership::Membership;
use crate::message::MessageBatch;
use crate::node::{Event, Node, NodeStats, Ready};
use crate::state_machine::StateMachine;
use crate::storage::Storage;
use crate::transport::Transport;

/// Inbound batches or API calls taken in one go before the loop looks at the others, so
/// that neither source can starve the other or delay a ready for long.
const MAX_DRAIN_PER_WAKE: usize = 1024;

/// A call from the API to the event loop.
pub(crate) enum Command {
    Propose {
        group: GroupId,
        command: Bytes,
        reply: oneshot::Sender<Result<Bytes, ProposeError>>,
    },
    CreateGroup {
        group: GroupId,
        membership: Membership,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    RemoveGroup {
        group: GroupId,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    Status {
        group: GroupId,
        reply: oneshot::Sender<Option<GroupStatus>>,
    },
    Campaign {
        group: GroupId,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    NodeStatus {
        reply: oneshot::Sender<NodeStatus>,
    },
    Shutdown,
}

/// Node-wide figures, for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Groups hosted.
    pub groups: usize,
    /// Groups not quiesced (the ones a tick visits).
    pub active_groups: usize,
    /// Proposals taken and not yet resolved.
    pub pending_proposals: usize,
    /// Drop counters.
    pub stats: NodeStats,
}

/// What the builder hands the driver.
pub(crate) struct Parts {
    pub(crate) node: Node,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) factory: StateMachineFactory,
    pub(crate) machines: HashMap<GroupId, Box<dyn StateMachine>>,
    pub(crate) inbound: mpsc::Receiver<MessageBatch>,
    pub(crate) api: mpsc::Receiver<Command>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) first_proposal_seq: u64,
}

type WriteFuture = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;
type TickFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A ready whose write is in flight: what to do once it is durable.
struct InFlight {
    number: u64,
    write: WriteFuture,
    send_after_write: Vec<MessageBatch>,
    events: Vec<Event>,
    lifecycle: Vec<oneshot::Sender<Result<(), GroupError>>>,
}

struct Pending {
    group: GroupId,
    /// The group's term and known leader when the proposal was taken: a later leadership
    /// change makes its outcome uncertain, an earlier one (still in an unprocessed ready)
    /// does not.
    term: u64,
    leader: Option<NodeId>,
    reply: oneshot::Sender<Result<Bytes, ProposeError>>,
}

pub(crate) struct Driver {
    p: Parts,
    /// Proposals taken and not yet resolved, by sequence number.
    pending: HashMap<u64, Pending>,
    /// (tick deadline, seq) in submission order, for `proposal_timeout_ticks`.
    deadlines: VecDeque<(u64, u64)>,
    next_seq: u64,
    ticks: u64,
    next_tick: Duration,
    /// Create/remove calls whose change is not yet in a ready.
    lifecycle_waiting: Vec<oneshot::Sender<Result<(), GroupError>>>,
    in_flight: Option<InFlight>,
    /// A write that failed as soon as it was issued: the loop stops on it.
    failed: Option<StorageError>,
    stopping: bool,
}

impl Driver {
    pub(crate) fn new(p: Parts) -> Driver {
        let next_tick = p.clock.now() + p.node.config().tick_interval;
        let next_seq = p.first_proposal_seq;
        Driver {
            p,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            next_seq,
            ticks: 0,
            next_tick,
            lifecycle_waiting: Vec::new(),
            in_flight: None,
            failed: None,
            stopping: false,
        }
    }

    fn tick_future(&self) -> TickFuture {
        let clock = Arc::clone(&self.p.clock);
        let deadline = self.next_tick;
        Box::pin(async move { clock.sleep_until(deadline).await })
    }

    pub(crate) async fn run(mut self) -> Result<(), StopError> {
        let mut tick = self.tick_future();
        let result = loop {
            if let Some(e) = self.failed.take() {
                break Err(StopError::Storage(e));
            }
            if self.in_flight.is_none() {
                if self.stopping {
                    break Ok(());
                }
                if let Some(ready) = self.p.node.ready() {
                    self.start_ready(ready);
                    continue;
                }
            } else {
                // A write is in flight: what may leave before it (appends, heartbeats) leaves
                // now, so that a slow fsync delays neither followers nor failure detection.
                for batch in self.p.node.take_sends() {
                    self.p.transport.send(batch);
                }
            }
            tokio::select! {
                result = poll_write(&mut self.in_flight) => {
                    if let Err(e) = result {
                        break Err(StopError::Storage(e));
                    }
                    self.finish_write();
                }
                batch = self.p.inbound.recv(), if !self.stopping => {
                    if let Some(batch) = batch {
                        self.p.node.step(batch);
                        for _ in 0..MAX_DRAIN_PER_WAKE {
                            match self.p.inbound.try_recv() {
                                Ok(batch) => self.p.node.step(batch),
                                Err(_) => break,
                            }
                        }
                    }
                }
                cmd = self.p.api.recv(), if !self.stopping => {
                    match cmd {
                        Some(cmd) => {
                            self.handle(cmd);
                            for _ in 0..MAX_DRAIN_PER_WAKE {
                                match self.p.api.try_recv() {
                                    Ok(cmd) => self.handle(cmd),
                                    Err(_) => break,
                                }
                            }
                        }
                        // Every handle is gone: nobody can ask for anything again.
                        None => self.stopping = true,
                    }
                }
                () = &mut tick, if !self.stopping => {
                    self.on_tick();
                    tick = self.tick_future();
                }
            }
        };
        self.stop();
        result
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let interval = self.p.node.config().tick_interval;
        let now = self.p.clock.now();
        self.next_tick += interval;
        if self.next_tick <= now {
            // We fell behind (a stalled runtime); do not burst ticks to catch up, which
            // would fire elections all at once.
            self.next_tick = now + interval;
        }
        self.p.node.tick();
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            if deadline > self.ticks {
                break;
            }
            self.deadlines.pop_front();
            if let Some(p) = self.pending.remove(&seq) {
                let _ = p
                    .reply
                    .send(Err(ProposeError::Indeterminate(Indeterminate::Timeout)));
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Propose {
                group,
                command,
                reply,
            } => self.propose(group, command, reply),
            Command::CreateGroup {
                group,
                membership,
                reply,
            } => match self.p.node.create_group(group, membership) {
                Ok(()) => {
                    self.p.machines.insert(group, (self.p.factory)(group));
                    self.lifecycle_waiting.push(reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::RemoveGroup { group, reply } => match self.p.node.remove_group(group) {
                Ok(()) => {
                    self.p.machines.remove(&group);
                    self.fail_group(group, Indeterminate::GroupRemoved);
                    self.lifecycle_waiting.push(reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Status { group, reply } => {
                let _ = reply.send(self.p.node.group_status(group));
            }
            Command::Campaign { group, reply } => {
                let _ = reply.send(self.p.node.campaign(group));
            }
            Command::NodeStatus { reply } => {
                let node = &self.p.node;
                let _ = reply.send(NodeStatus {
                    groups: node.group_count(),
                    active_groups: node.active_group_count(),
                    pending_proposals: self.pending.len(),
                    stats: node.stats(),
                });
            }
            Command::Shutdown => self.stopping = true,
        }
    }

    fn propose(
        &mut self,
        group: GroupId,
        command: Bytes,
        reply: oneshot::Sender<Result<Bytes, ProposeError>>,
    ) {
        let cfg = self.p.node.config();
        if self.pending.len() >= cfg.max_pending_proposals {
            let _ = reply.send(Err(ProposeError::Busy {
                limit: "max_pending_proposals",
            }));
            return;
        }
        let deadline = self.ticks + u64::from(cfg.proposal_timeout_ticks);
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = ProposalId {
            node: self.p.node.id(),
            seq,
        };
        match self.p.node.propose(group, id, command) {
            Ok(()) => {
                let (term, leader) = self
                    .p
                    .node
                    .group_status(group)
                    .map_or((0, None), |s| (s.term, s.leader));
                self.pending.insert(
                    seq,
                    Pending {
                        group,
                        term,
                        leader,
                        reply,
                    },
                );
                self.deadlines.push_back((deadline, seq));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Ends every pending proposal of `group` as indeterminate.
    fn fail_group(&mut self, group: GroupId, why: Indeterminate) {
        self.fail_pending(why, |p| p.group == group);
    }

    /// After leadership events for `groups`: ends their pending proposals taken under another
    /// term or leader than the group's current ones — whatever those appended or forwarded
    /// may or may not commit. A proposal taken under the current term and leader keeps
    /// waiting: an event reaches the driver with the next ready, which can be after proposals
    /// taken under the new leader (while a write was in flight), and those are not in doubt.
    /// Terms only grow and a term has one leader, so a pair equal to the one a proposal was
    /// taken under means it still went to the leader that is current. One pass over the
    /// pending proposals serves every event of the ready.
    fn fail_leadership_changed(&mut self, groups: BTreeSet<GroupId>) {
        if groups.is_empty() || self.pending.is_empty() {
            return;
        }
        let node = &self.p.node;
        let now: HashMap<GroupId, Option<(u64, Option<NodeId>)>> = groups
            .into_iter()
            .map(|g| (g, node.group_status(g).map(|s| (s.term, s.leader))))
            .collect();
        self.fail_pending(Indeterminate::LeadershipChanged, |p| {
            now.get(&p.group)
                .is_some_and(|current| *current != Some((p.term, p.leader)))
        });
    }

    fn fail_pending(&mut self, why: Indeterminate, affected: impl Fn(&Pending) -> bool) {
        let seqs: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| affected(p))
            .map(|(s, _)| *s)
            .collect();
        for seq in seqs {
            if let Some(p) = self.pending.remove(&seq) {
                let _ = p.reply.send(Err(ProposeError::Indeterminate(why)));
            }
        }
    }

    fn start_ready(&mut self, ready: Ready) {
        let Ready {
            number,
            write,
            send_now,
            send_after_write,
            apply,
            rejected,
            events,
        } = ready;
        for batch in send_now {
            self.p.transport.send(batch);
        }
        let me = self.p.node.id();
        for a in apply {
            let Some(sm) = self.p.machines.get_mut(&a.group) else {
                continue;
            };
            for e in &a.entries {
                if let Payload::Command { id, data } = &e.payload {
                    let result = sm.apply(e.index, data);
                    if id.node == me
                        && let Some(p) = self.pending.remove(&id.seq)
                    {
                        let _ = p.reply.send(Ok(result));
                    }
                }
            }
        }
        for r in rejected {
            if let Some(p) = self.pending.remove(&r.id.seq) {
                let _ = p.reply.send(Err(r.error));
            }
        }
        let changed = events
            .iter()
            .filter_map(|e| match *e {
                Event::LeaderChanged { group, .. } => Some(group),
                _ => None,
            })
            .collect();
        self.fail_leadership_changed(changed);
        let mut write_future: WriteFuture = if write.is_empty() {
            Box::pin(async { Ok(()) })
        } else {
            let storage = Arc::clone(&self.p.storage);
            Box::pin(async move { storage.write(write).await })
        };
        // A write that completes at once (nothing to write, or a storage that finishes
        // without waiting) is taken as done here, saving a pass through the select loop.
        let mut cx = Context::from_waker(Waker::noop());
        let done = match write_future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        };
        self.in_flight = Some(InFlight {
            number,
            write: write_future,
            send_after_write,
            events,
            lifecycle: std::mem::take(&mut self.lifecycle_waiting),
        });
        match done {
            Some(Ok(())) => self.finish_write(),
            Some(Err(e)) => self.failed = Some(e),
            None => {}
        }
    }

    fn finish_write(&mut self) {
        let Some(done) = self.in_flight.take() else {
            return;
        };
        self.p.node.advance(done.number);
        for batch in done.send_after_write {
            self.p.transport.send(batch);
        }
        for e in done.events {
            // No subscriber is fine: events are best effort for observers.
            let _ = self.p.events.send(e);
        }
        for reply in done.lifecycle {
            let _ = reply.send(Ok(()));
        }
    }

    /// Resolves everything still waiting, so that no caller hangs.
    fn stop(&mut self) {
        self.p.transport.detach(self.p.node.id());
        for (_, p) in self.pending.drain() {
            let _ = p
                .reply
                .send(Err(ProposeError::Indeterminate(Indeterminate::NodeStopped)));
        }
        let lifecycle = self.lifecycle_waiting.drain(..);
        let in_flight = self
            .in_flight
            .take()
            .map(|f| f.lifecycle)
            .unwrap_or_default();
        for reply in lifecycle.chain(in_flight) {
            let _ = reply.send(Err(GroupError::Stopped));
        }
        self.p.api.close();
        while let Ok(cmd) = self.p.api.try_recv() {
            match cmd {
                Command::Propose { reply, .. } => {
                    let _ = reply.send(Err(ProposeError::Stopped));
                }
                Command::CreateGroup { reply, .. }
                | Command::RemoveGroup { reply, .. }
                | Command::Campaign { reply, .. } => {
                    let _ = reply.send(Err(GroupError::Stopped));
                }
                Command::Status { reply, .. } => {
                    let _ = reply.send(None);
                }
                Command::NodeStatus { .. } => {}
                Command::Shutdown => {}
            }
        }
    }
}

/// Completes when the in-flight write does; pending forever when there is none.
async fn poll_write(in_flight: &mut Option<InFlight>) -> Result<(), StorageError> {
    match in_flight {
        Some(f) => f.write.as_mut().await,
        None => std::future::pending().await,
    }
}
