//! The application's handle on a running node: [`MultiRaft`] and its [`Builder`].

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};

use crate::call::{Call, CallInbox};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::driver::{Driver, Parts};
use crate::error::{CampaignError, GroupError, Indeterminate, ProposeError, StartError};
use crate::error::{MembershipChangeError, ReadError, TransferError};
use crate::error::{StopError, Stopped};
use crate::group::GroupStatus;
use crate::group::ReadPolicy;
use crate::ids::{GroupId, NodeId};
use crate::membership::{Membership, MembershipChange};
use crate::node::{Event, Node, NodeReport, NodeStatus};
use crate::queued_bytes::{Held, queued_size};
use crate::state_machine::{StateMachine, StateMachineFactory};
use crate::storage::Storage;
use crate::submit::{Submission, Submissions, Taker};
use crate::transport::{Inbox, Transport};

/// A running node: the application's handle on every group it hosts. Cheap to clone; all
/// clones talk to the same event loop.
#[derive(Clone)]
pub struct MultiRaft {
    id: NodeId,
    calls: mpsc::Sender<Call>,
    /// Proposals take their own queue: one lock and push each, one wake per batch.
    submissions: Arc<Submissions>,
    events: broadcast::Sender<Event>,
    /// The event loop's task, until a `shutdown` takes it to wait for its end. A shutdown
    /// given up on (its future dropped) puts it back ([`Reaping`]), for the next one.
    task: Arc<Mutex<Option<EventLoop>>>,
    /// Closed when the loop's task ends, however it ends (its sender lives in the task): a
    /// shutdown that finds `task` taken by another waits on this, holding nothing.
    ended: watch::Receiver<()>,
    /// Kills the loop wherever its task is (`abort` must work while a shutdown waits).
    abort: Arc<AbortHandle>,
}

/// A shutdown's hold on the loop's task while it waits for its end: dropped before the
/// end (the shutdown given up on), it puts the task back for another shutdown to take.
struct Reaping<'a> {
    slot: &'a Mutex<Option<EventLoop>>,
    task: Option<EventLoop>,
}

impl Drop for Reaping<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        }
    }
}

/// The event loop's task.
type EventLoop = JoinHandle<Result<(), StopError>>;

impl std::fmt::Debug for MultiRaft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiRaft")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Assembles a node. Storage, transport and the state-machine factory are required; the
/// clock defaults to [`SystemClock`].
pub struct Builder {
    id: NodeId,
    config: Config,
    seed: Option<u64>,
    storage: Option<Arc<dyn Storage>>,
    transport: Option<Arc<dyn Transport>>,
    clock: Option<Arc<dyn Clock>>,
    factory: Option<StateMachineFactory>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Builder {
    /// The storage holding this node's shared log.
    pub fn storage(mut self, storage: impl Storage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// The transport to peer nodes.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The clock the node ticks by (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How to make the state machine of a group, called once per hosted group on its first
    /// use on this node (an apply, a read, a snapshot taken or restored; see
    /// [`StateMachineFactory`]).
    pub fn state_machines<S, F>(mut self, mut make: F) -> Self
    where
        S: StateMachine,
        F: FnMut(GroupId) -> S + Send + 'static,
    {
        self.factory = Some(Box::new(move |g| Box::new(make(g))));
        self
    }

    /// The tokio runtime the event loop runs on (default: the one [`Builder::start`] is
    /// called on). Give the loop a runtime of its own — one worker thread is enough — when
    /// the application runs many tasks: on a shared runtime the loop waits its turn behind
    /// every task woken before it, and a loop that waits longer than an election timeout
    /// looks dead to its peers, whose groups then elect new leaders. Measured with 4,096
    /// client tasks and three nodes on two shared workers: the loop's ticks ran 50–80 ms
    /// late, behind a burst of clients woken by one ready. The price is a wake-up across
    /// threads per call, which few clients with little in flight feel most: on two cores,
    /// about half the rate of one group with 64 clients, against 1.3–1.6× at 1,000 and
    /// 4,096 busy groups (BENCHMARKS.md).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// The seed of every random choice (election jitter). Defaults to one derived from the
    /// node id and the current time; set it for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the configuration, loads every group from storage, attaches the transport
    /// and starts the event loop on the current tokio runtime (or the one given to
    /// [`Builder::runtime`]).
    pub async fn start(self) -> Result<MultiRaft, StartError> {
        // The node validates the id and the configuration, before anything else.
        let seed = self.seed.unwrap_or_else(|| default_seed(self.id));
        let mut node = Node::new(self.id, self.config.clone(), seed)?;
        let storage = self.storage.ok_or(StartError::Missing("storage"))?;
        let transport = self.transport.ok_or(StartError::Missing("transport"))?;
        let factory = self.factory.ok_or(StartError::Missing("state_machines"))?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock::new()));
        node.start_requests_at(first_request_seq());
        node.restore(storage.load().await?)?;

        let (inbox, inbound) =
            Inbox::bounded(self.config.max_inbox_batches, self.config.max_inbox_bytes);
        transport
            .attach(self.id, inbox)
            .map_err(StartError::Transport)?;
        let (calls, calls_rx) = mpsc::channel(self.config.max_api_queue);
        let counters = node.metrics().proposals.clone();
        let stopped = counters.stopped.clone();
        let submissions = Arc::new(Submissions::new(&self.config, counters));
        let (events, _) = broadcast::channel(self.config.max_event_backlog);
        let parts = Parts {
            node,
            storage,
            transport,
            clock,
            inbound,
            calls: CallInbox::new(calls_rx, stopped),
            submissions: Taker::new(Arc::clone(&submissions)),
            events: events.clone(),
        };
        let driver = Driver::new(parts, factory);
        // Every record of the event loop carries the node id, through this span.
        let span = tracing::info_span!("node", id = %self.id);
        let (ended_tx, ended) = watch::channel(());
        let run = tracing::Instrument::instrument(
            async move {
                // Dropped with the task, whether it returns, panics or is aborted.
                let _ended = ended_tx;
                driver.run().await
            },
            span,
        );
        let task = match self.runtime {
            Some(runtime) => runtime.spawn(run),
            None => tokio::spawn(run),
        };
        Ok(MultiRaft {
            id: self.id,
            calls,
            submissions,
            events,
            abort: Arc::new(task.abort_handle()),
            task: Arc::new(Mutex::new(Some(task))),
            ended,
        })
    }
}

/// The commands of `propose_many`'s next call, and their bytes: up to
/// [`MAX_COMMANDS_PER_CALL`] commands and `max_bytes` of them (at least one), none over
/// `max_proposal`.
fn next_call(
    commands: &mut std::iter::Peekable<std::vec::IntoIter<Bytes>>,
    max_bytes: usize,
    max_proposal: usize,
) -> (Vec<Bytes>, usize) {
    let (mut call, mut bytes) = (Vec::new(), 0);
    while let Some(next) = commands.peek() {
        let size = queued_size(next);
        let full =
            call.len() == MAX_COMMANDS_PER_CALL || !call.is_empty() && bytes + size > max_bytes;
        if next.len() > max_proposal || full {
            break;
        }
        bytes += size;
        call.extend(commands.next());
    }
    (call, bytes)
}

/// What `propose_many` sent for some of its commands, in order: a call to the loop, or a
/// command answered in place.
enum Sent {
    /// A call of this many commands, and where its answers come.
    Call(usize, oneshot::Receiver<Vec<Result<Bytes, ProposeError>>>),
    /// One command, answered without the loop.
    Answered(Result<Bytes, ProposeError>),
}

impl Sent {
    fn is_call(&self) -> bool {
        matches!(self, Sent::Call(..))
    }
}

/// Appends the answers of what `propose_many` sent, in order.
async fn collect(results: &mut Vec<Result<Bytes, ProposeError>>, sent: impl Iterator<Item = Sent>) {
    for s in sent {
        match s {
            Sent::Answered(answer) => results.push(answer),
            // The event loop answers every call it took; a dropped answer means it died.
            Sent::Call(count, rx) => results.extend(rx.await.unwrap_or_else(|_| {
                (0..count)
                    .map(|_| Err(ProposeError::Indeterminate(Indeterminate::NodeStopped)))
                    .collect()
            })),
        }
    }
}

fn default_seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.0.rotate_left(32)
}

/// Request ids start from the wall clock in nanoseconds so that a restarted node never
/// reuses one that an entry still in the log carries (entries are re-applied after a restart
/// and must not answer a new proposal by mistake). A clock set back across the restart is
/// covered for this node's own log (`Node::restore` starts past the ids it carries), not
/// for entries it has yet to receive.
fn first_request_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Most commands one call to the event loop carries: [`MultiRaft::propose_many`] cuts a
/// larger batch into calls of this many. The loop takes a call whole, so this bounds the
/// work of one wake — a call of a million commands kept the loop from ticking and sending
/// heartbeats for as long as it took them all, and its groups could lose their leaders —
/// and, with `Config::max_api_queue` calls, the commands its queue holds.
pub const MAX_COMMANDS_PER_CALL: usize = 1024;

/// Most leadership transfers [`MultiRaft::drain`] runs at once. Each one ends in an
/// election on the node taking over; started all at once, 100,000 of them (a node of
/// 300,000 groups) overloaded all three nodes of a cluster until they declared each
/// other down, re-elected, and grew past 8 GB (BENCHMARKS.md, 2026-12-06 evening). A
/// window this size keeps a wake's share of them small while the elections of one
/// window overlap the next's round trips.
pub const DRAIN_WINDOW: usize = 1024;

/// The parts [`DRAIN_WINDOW`] is started in: the next part starts once any running part
/// has ended, so one slow transfer holds back at most a quarter of the window.
const DRAIN_PARTS: usize = 4;

impl MultiRaft {
    /// Starts assembling node `id`.
    pub fn builder(id: NodeId, config: Config) -> Builder {
        Builder {
            id,
            config,
            seed: None,
            storage: None,
            transport: None,
            clock: None,
            factory: None,
            runtime: None,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.calls.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Creates this node's replica of `group`. Resolves once the creation is durable. Every
    /// member node must create its own replica with the same membership.
    pub async fn create_group(
        &self,
        group: GroupId,
        membership: Membership,
    ) -> Result<(), GroupError> {
        self.call(|reply| Call::CreateGroup(group, membership, reply))
            .await
            .unwrap_or(Err(GroupError::Stopped))
    }

    /// Starts a replica of `group` on this node, joining the running group whose current
    /// membership (as its leader reports it) is `membership`: the leader then adds this
    /// node with [`change_membership`](MultiRaft::change_membership) and catches the
    /// replica up by appends or a snapshot. Until it has caught up the replica neither
    /// campaigns nor votes. Resolves once the creation is durable.
    ///
    /// If that change fails, or ends `Indeterminate`, and the group's leader does not name this
    /// node in its membership ([`membership`](MultiRaft::membership)) once it has committed an
    /// entry of its own term (before that, a leader holding the change may still depose it; a
    /// [`read_index`](MultiRaft::read_index) that succeeds on the leader's node shows that it still
    /// leads and has, as no read is served before), delete the replica with
    /// [`remove_group`](MultiRaft::remove_group): no leader tells a replica it never added, and a
    /// joining replica ignores `Removed` (a late one may be meant for this node's previous replica
    /// of the group). Deleting it loses nothing, as it holds nothing the group needs until it has
    /// caught up; a change that commits after all leaves the node a learner without a replica, to
    /// be removed.
    pub async fn join_group(
        &self,
        group: GroupId,
        membership: Membership,
    ) -> Result<(), GroupError> {
        self.call(|reply| Call::JoinGroup(group, membership, reply))
            .await
            .unwrap_or(Err(GroupError::Stopped))
    }

    /// Removes this node's replica of `group` and deletes its persisted state. Proposals
    /// still pending on it end `Indeterminate`. An on-disk state machine's own store is the
    /// application's to delete, before the group is created or joined here again: its
    /// [`applied_index`](crate::StateMachine::applied_index) would have the new replica
    /// skip the new group's entries up to it.
    pub async fn remove_group(&self, group: GroupId) -> Result<(), GroupError> {
        self.call(|reply| Call::RemoveGroup(group, reply))
            .await
            .unwrap_or(Err(GroupError::Stopped))
    }

    /// Proposes `command` to `group`. Resolves with the state machine's result once the entry
    /// is applied on this node, or with why it was not (see [`ProposeError`]: every variant
    /// but `Indeterminate` means "definitely not applied").
    ///
    /// A node past what it can serve refuses with `Busy` at once, without waiting
    /// (`max_api_queue`, and admission control: `max_commit_wait_ticks`). A caller that
    /// retries should wait before it does. A refusal still spends a unit of the calling
    /// task's cooperative budget (tokio's, as a channel's answer does), so that a task
    /// retrying in a loop yields to the runtime every so often: on a runtime shared with
    /// the node's event loop, a task that never yields would keep the loop from ever
    /// taking the queue it waits on.
    pub async fn propose(
        &self,
        group: GroupId,
        command: impl Into<Bytes>,
    ) -> Result<Bytes, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let submission = Submission {
            group,
            command: command.into(),
            reply,
            queued_at: 0, // stamped by `push`
        };
        if let Err(refused) = self.submissions.push(submission) {
            // A refusal comes without waiting on anything of the runtime's, so the budget
            // is spent here: 200,000 clients retrying `max_api_queue` refusals at once kept
            // `bench`'s two runtime threads to themselves for good (BENCHMARKS.md, "A client
            // that retries at once").
            tokio::task::coop::consume_budget().await;
            return Err(refused);
        }
        // The event loop answers every proposal it took; a dropped answer means it died.
        rx.await
            .unwrap_or(Err(ProposeError::Indeterminate(Indeterminate::NodeStopped)))
    }

    /// Reads `group` linearizably: waits for a read point under `policy` (see
    /// [`ReadPolicy`]), waits until this node's state machine has applied it, then answers
    /// with [`StateMachine::query`] of `query`. No log entry is written. Every error is a
    /// definite failure (a read changes nothing); retry where [`ReadError::NotLeader`]
    /// points.
    pub async fn read(
        &self,
        group: GroupId,
        policy: ReadPolicy,
        query: impl Into<Bytes>,
    ) -> Result<Bytes, ReadError> {
        let query = query.into();
        self.call(|reply| Call::Read(group, policy, query, reply))
            .await
            .unwrap_or(Err(ReadError::Stopped))
    }

    /// The lower level of [`MultiRaft::read`]: a linearizable read index of `group` under
    /// `policy`, returned once this node's state machine has applied it. A read of the state
    /// machine made after this returns (and before anything else is applied) is
    /// linearizable.
    pub async fn read_index(&self, group: GroupId, policy: ReadPolicy) -> Result<u64, ReadError> {
        self.call(|reply| Call::ReadIndex(group, policy, reply))
            .await
            .unwrap_or(Err(ReadError::Stopped))
    }

    /// Hands leadership of `group` (led by this node) to the voter on node `to`
    /// (dissertation §3.10): brings its log up to date, then lets it campaign at once.
    /// Meanwhile proposals are refused with [`ProposeError::TransferInProgress`]. Resolves
    /// `Ok` once `to` leads; fails after an election timeout with this node still leading
    /// ([`TransferError::Timeout`]), or when another replica took over.
    pub async fn transfer_leader(&self, group: GroupId, to: NodeId) -> Result<(), TransferError> {
        self.call(|reply| Call::TransferLeader(group, to, reply))
            .await
            .unwrap_or(Err(TransferError::Stopped))
    }

    /// Changes the membership of `group`, which this node leads (dissertation §4.3; see
    /// [`MembershipChange`]). Voters change through a joint configuration that the leader leaves by
    /// itself; a replica added as a voter is a learner until caught up. The new node's replica must
    /// be started there with [`join_group`](MultiRaft::join_group), so that it accepts the leader's
    /// appends or snapshot (a message never creates a group). Resolves with the new committed
    /// membership; fails definitely ([`MembershipChangeError::ChangeInProgress`] while another
    /// change runs) or, when leadership changes midway or one of its configurations stays
    /// uncommitted for `Config::proposal_timeout_ticks`, [`MembershipChangeError::Indeterminate`].
    /// A replica the change removes reports
    /// [`Event::ReplicaRemoved`](crate::Event::ReplicaRemoved).
    pub async fn change_membership(
        &self,
        group: GroupId,
        change: MembershipChange,
    ) -> Result<Membership, MembershipChangeError> {
        let (reply, answer) = oneshot::channel();
        if self
            .calls
            .send(Call::ChangeMembership(group, change, reply))
            .await
            .is_err()
        {
            return Err(MembershipChangeError::Stopped); // never taken
        }
        // Taken, then the node went away unanswered (aborted): the change's entries may be
        // in the log.
        answer
            .await
            .unwrap_or(Err(MembershipChangeError::Indeterminate(
                Indeterminate::NodeStopped,
            )))
    }

    /// Moves the leadership of every group this node leads to other live voters, spread
    /// over them, and waits for every transfer: for draining a node before a restart.
    /// Returns each group's result, in group id order; a group whose leadership moved
    /// on its own before its turn is left out, and one this node came to lead during the
    /// drain is moved too (each group once). If the node stops meanwhile, every group
    /// not yet moved is answered `TransferError::Stopped`.
    ///
    /// Paced: at most [`DRAIN_WINDOW`] transfers run at once, started in parts of a
    /// quarter of it, the next part as soon as any part has ended, so that a node leading
    /// hundreds of thousands of groups drains without overloading itself or the nodes
    /// taking over.
    pub async fn drain(&self) -> Result<Vec<(GroupId, Result<(), TransferError>)>, Stopped> {
        let mut led = self.call(Call::LedGroups).await.ok_or(Stopped)?;
        let mut results = Vec::with_capacity(led.len());
        loop {
            let before = results.len();
            self.drain_groups(&led, &mut results).await;
            if results.len() == before {
                // Nothing moved this round (every group left out, or none): done, so that
                // groups whose leadership comes and goes cannot keep the drain going.
                break;
            }
            // Groups this node came to lead meanwhile, not yet answered (a transfer that
            // failed stays led, and is tried once only).
            let answered: std::collections::HashSet<GroupId> =
                results.iter().map(|(g, _)| *g).collect();
            led = self.call(Call::LedGroups).await.unwrap_or_default();
            led.retain(|g| !answered.contains(g));
        }
        results.sort_unstable_by_key(|(g, _)| *g);
        Ok(results)
    }

    /// Moves the leadership of `groups`, at most [`DRAIN_WINDOW`] transfers at once.
    async fn drain_groups(
        &self,
        groups: &[GroupId],
        results: &mut Vec<(GroupId, Result<(), TransferError>)>,
    ) {
        use futures_util::StreamExt;
        // Polled here, not spawned: `drain` runs on any executor.
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut parts = groups.chunks(DRAIN_WINDOW / DRAIN_PARTS);
        loop {
            while running.len() < DRAIN_PARTS
                && let Some(part) = parts.next()
            {
                let groups = part.to_vec();
                let Some(pending) = self.call(|r| Call::Drain(groups, r)).await else {
                    // Stopped: none of the rest moves.
                    let rest = part.iter().chain(parts.by_ref().flatten());
                    results.extend(rest.map(|g| (*g, Err(TransferError::Stopped))));
                    break;
                };
                running.push(async move {
                    let mut ended = Vec::with_capacity(pending.len());
                    for (group, rx) in pending {
                        ended.push((group, rx.await.unwrap_or(Err(TransferError::Stopped))));
                    }
                    ended
                });
            }
            match running.next().await {
                Some(ended) => results.extend(ended),
                None => return,
            }
        }
    }

    /// Proposes every command of `commands` to `group`, in order, in one call to the event
    /// loop per [`MAX_COMMANDS_PER_CALL`] commands (or per quarter of `max_api_queue_bytes`
    /// of them), and answers them together once each has its outcome: the results in the
    /// same order, each as [`MultiRaft::propose`] would give it. For callers that batch: one
    /// channel message and one wake for the whole batch instead of one per proposal. A
    /// command over `max_proposal_bytes` is answered `TooLarge` in its place, never sent.
    /// When a call's commands do not fit the queue (`max_api_queue_bytes`), the calls
    /// already sent are awaited first (their room frees as the loop takes them); if they
    /// still do not fit, they and every command after them are refused `Busy` at once, as
    /// `propose` is.
    pub async fn propose_many(
        &self,
        group: GroupId,
        commands: Vec<Bytes>,
    ) -> Vec<Result<Bytes, ProposeError>> {
        let (max_bytes, max_proposal) = self.submissions.call_limits();
        let mut results = Vec::with_capacity(commands.len());
        let mut sent = Vec::new();
        let mut refused = None;
        let mut commands = commands.into_iter().peekable();
        while let Some(first) = commands.peek() {
            if first.len() > max_proposal {
                commands.next();
                let too_large = ProposeError::TooLarge { max: max_proposal };
                self.submissions.refused(&too_large);
                sent.push(Sent::Answered(Err(too_large)));
                continue;
            }
            let (chunk, bytes) = next_call(&mut commands, max_bytes, max_proposal);
            let count = chunk.len();
            let mut held = Held::hold(self.submissions.queued_bytes(), bytes);
            if held.is_none() && sent.iter().any(Sent::is_call) {
                // This call's own commands may fill the queue: once the calls sent are
                // answered they were taken, and their room is free again.
                collect(&mut results, sent.drain(..)).await;
                held = Held::hold(self.submissions.queued_bytes(), bytes);
            }
            let Some(held) = held else {
                let busy = ProposeError::Busy {
                    limit: "max_api_queue_bytes",
                };
                refused = Some((count + commands.len(), busy));
                break;
            };
            let (tx, rx) = oneshot::channel();
            let call = Call::ProposeMany(group, chunk, self.submissions.ticks(), tx, held);
            if self.calls.send(call).await.is_err() {
                refused = Some((count + commands.len(), ProposeError::Stopped));
                break;
            }
            sent.push(Sent::Call(count, rx));
        }
        collect(&mut results, sent.drain(..)).await;
        if let Some((count, refusal)) = refused {
            for _ in 0..count {
                self.submissions.refused(&refusal);
                results.push(Err(refusal.clone()));
            }
            // Refused without waiting on anything of the runtime's, perhaps: as in
            // `propose`, a caller retrying at once must still yield.
            tokio::task::coop::consume_budget().await;
        }
        results
    }

    /// Makes this node's replica of `group` start an election now (PreVote first when
    /// enabled), instead of waiting for its election timeout: for placing leadership, for
    /// operator tools, and for bringing up many groups without an election storm.
    pub async fn campaign(&self, group: GroupId) -> Result<(), CampaignError> {
        self.call(|reply| Call::Campaign(group, reply))
            .await
            .unwrap_or(Err(CampaignError::Stopped))
    }

    /// Node-wide figures: groups hosted and active, pending proposals, drop counters.
    pub async fn node_status(&self) -> Result<NodeStatus, Stopped> {
        self.call(Call::NodeStatus).await.ok_or(Stopped)
    }

    /// The node's figures, its peers' liveness and a page of its groups: up to `limit`
    /// (at most [`MAX_REPORT_GROUPS`](crate::MAX_REPORT_GROUPS)) hosted groups with ids
    /// from `from` on, each with its role, leader, log marks, quiescence and, on a leader,
    /// its followers' progress. For status pages: it costs a pass over the hosted groups'
    /// ids on the event loop.
    pub async fn report(&self, from: GroupId, limit: usize) -> Result<NodeReport, Stopped> {
        self.call(|reply| Call::Report(from, limit, reply))
            .await
            .ok_or(Stopped)
    }

    /// The state of this node's replica of `group`, or `None` if it hosts no such group.
    pub async fn status(&self, group: GroupId) -> Result<Option<GroupStatus>, Stopped> {
        self.call(|reply| Call::Status(group, reply))
            .await
            .ok_or(Stopped)
    }

    /// The membership in force on this node's replica of `group` (the latest in its log,
    /// committed or not), or `None` if it hosts no such group. Asked of the leader, it is
    /// what a joining replica is started with ([`MultiRaft::join_group`]).
    pub async fn membership(&self, group: GroupId) -> Result<Option<Membership>, Stopped> {
        self.call(|reply| Call::Membership(group, reply))
            .await
            .ok_or(Stopped)
    }

    /// Subscribes to this node's events (leader changes, group lifecycle), from now on. A
    /// subscriber more than `Config::max_event_backlog` events behind loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Kills the node's event loop at once, as a crash would: nothing in flight is finished,
    /// no request the node took gets its outcome (callers waiting see
    /// `Indeterminate(NodeStopped)`; calls still queued, never taken, are refused with
    /// `Stopped`), the transport is not detached. For tests: pair it with a
    /// storage that loses what was not synced (the testkit's `MemStorage::crash`), then
    /// start a new node on what is left. Later calls on this handle report `Stopped` once
    /// the loop is gone; the abort is asynchronous, so a call racing it may still be taken
    /// (and a proposal so taken may commit, its caller told `Indeterminate(NodeStopped)`),
    /// as with a real crash.
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// Waits until the node's event loop has ended, whatever ended it — a storage error (the
    /// node stops rather than acknowledge what it could not persist), a panic, a
    /// [`shutdown`](MultiRaft::shutdown) or an [`abort`](MultiRaft::abort) — without asking
    /// it to stop. A server awaits it beside its own work and exits, or starts the node
    /// again, when it resolves; `shutdown` then returns the error that stopped the node.
    /// Cancel-safe; resolves at once on a node already stopped.
    pub async fn stopped(&self) {
        let mut ended = self.ended.clone();
        while ended.changed().await.is_ok() {}
    }

    /// Stops the node: waits for an in-flight write, resolves every pending proposal
    /// (`Indeterminate` for those in the log, `Stopped` for those not yet taken) and detaches
    /// from the transport. Returns the error that stopped the node, if one did, to the call
    /// that sees the loop end (`Ok` to the others, and if it was aborted). Cancel-safe: a
    /// call given up on (a timeout around a stalled write) leaves the loop to the next call
    /// and to [`abort`](MultiRaft::abort); calls at once all wait for the loop to end, and
    /// one kept without being polled holds none of them up.
    pub async fn shutdown(&self) -> Result<(), StopError> {
        let _ = self.calls.send(Call::Shutdown).await;
        let taken = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut reaping = Reaping {
            slot: &self.task,
            task: taken,
        };
        let Some(running) = reaping.task.as_mut() else {
            // Another shutdown waits on the task (or one saw it end): wait for the end too,
            // holding nothing, so that a shutdown kept without being polled stops no other.
            self.stopped().await;
            return Ok(());
        };
        let ended = match running.await {
            Ok(ended) => ended,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(_) => Err(StopError::Panicked),
        };
        reaping.task = None;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `propose_many`'s calls are cut at `MAX_COMMANDS_PER_CALL` commands and at the byte
    /// limit (a first command is always taken), each command counted at its payload and
    /// its handle's `COMMAND_OVERHEAD_BYTES`, and stop before a command over the proposal
    /// limit, which is answered in its place.
    #[test]
    fn calls_are_cut_by_count_bytes_and_oversized_commands() {
        const O: usize = crate::COMMAND_OVERHEAD_BYTES;
        let sized = |lens: &[usize]| -> Vec<Bytes> {
            lens.iter().map(|l| Bytes::from(vec![0u8; *l])).collect()
        };
        let lens = |call: &[Bytes]| call.iter().map(Bytes::len).collect::<Vec<_>>();
        let mut commands = sized(&[10, 10, 10, 5, 40, 3]).into_iter().peekable();
        let max = 25 + 2 * O;
        let (call, bytes) = next_call(&mut commands, max, 32);
        assert_eq!(
            (lens(&call), bytes),
            (vec![10, 10], 20 + 2 * O),
            "cut at 25 bytes and two handles"
        );
        let (call, bytes) = next_call(&mut commands, max, 32);
        assert_eq!(
            (lens(&call), bytes),
            (vec![10, 5], 15 + 2 * O),
            "cut before the oversized"
        );
        let (call, _) = next_call(&mut commands, max, 32);
        assert!(
            call.is_empty(),
            "the oversized one is not taken into a call"
        );
        assert_eq!(commands.next().map(|c| c.len()), Some(40));
        let (call, _) = next_call(&mut commands, max, 32);
        assert_eq!(lens(&call), vec![3]);

        // Commands that carry nothing still count: a limit of ten handles cuts at ten.
        let mut empty = sized(&[0; 25]).into_iter().peekable();
        let (call, bytes) = next_call(&mut empty, 10 * O, 32);
        assert_eq!((call.len(), bytes), (10, 10 * O), "cut at ten handles");

        let mut many = sized(&vec![1; MAX_COMMANDS_PER_CALL + 1])
            .into_iter()
            .peekable();
        let (call, _) = next_call(&mut many, usize::MAX, 32);
        assert_eq!(call.len(), MAX_COMMANDS_PER_CALL);
        let (call, _) = next_call(&mut many, 0, 32);
        assert_eq!(call.len(), 1, "a first command is always taken");
    }
}
