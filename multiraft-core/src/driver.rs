//! The tokio event loop: feeds inbound batches, API calls and ticks to the [`Node`], and
//! does the IO each ready asks for — one storage call off the loop, the sends, the applies —
//! then delivers each request's outcome, which the node decided (docs/design.md §3 and §5).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::beacon::Beacon;
use crate::call::{Call, CallInbox, MAX_COMMANDS_PER_WAKE, Replies, Taken};
use crate::clock::{Clock, sleep, take_due_tick};
use crate::error::{StopError, StorageError};
use crate::in_flight::{InFlight, poll_write};
use crate::machines::Machines;
use crate::node::{Event, Node, ReadStart, Ready};
use crate::snapshot_io::SnapshotIo;
use crate::state_machine::StateMachineFactory;
use crate::storage::Storage;
use crate::submit::Taker;
use crate::transport::{Detach, InboxReceiver, Transport};

/// Proposals taken in one go before the loop looks at the others (API calls:
/// `MAX_COMMANDS_PER_WAKE`; inbound: `MAX_INBOUND_BYTES_PER_WAKE`), so that no source can
/// starve another or delay a ready for long.
const MAX_DRAIN_PER_WAKE: usize = 1024;

/// Inbound bytes ([`MessageBatch::size_bytes`](crate::MessageBatch::size_bytes), what the
/// inbox counts) stepped in one wake after the batch that woke the loop, which is free; a
/// batch is never split, so the last one may go past it. 32 bytes a message without
/// entries and a beat coalesced: about 32,000 of them. Counted in
/// batches, a wake took 1,024 of them, each what one ready of a peer had for this node
/// (thousands of messages at hundreds of thousands of active groups): an overloaded loop
/// stepped for seconds while no group's outputs were taken (docs/design.md §4.4). Counted
/// in messages, one coalesced message of up to 65,536 groups' beats counted one (review).
const MAX_INBOUND_BYTES_PER_WAKE: usize = 1 << 20;

/// What the builder hands the driver.
pub(crate) struct Parts {
    pub(crate) node: Node,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) inbound: InboxReceiver,
    pub(crate) calls: CallInbox,
    pub(crate) submissions: Taker,
    pub(crate) events: broadcast::Sender<Event>,
}

pub(crate) struct Driver {
    p: Parts,
    /// One state machine per hosted group, made on first use.
    machines: Machines,
    /// Snapshots being built, read and restored off the loop.
    snapshots: SnapshotIo,
    /// Where each request's answer goes; the node decides the answers.
    replies: Replies,
    next_tick: Duration,
    in_flight: Option<InFlight>,
    stopping: bool,
    /// What the clock read at the end of a wake's work or of a ready, for the top of the
    /// loop to mark its turn with rather than read again (BENCHMARKS.md, "Fewer clock
    /// reads a ready").
    last_read: Option<Duration>,
    /// Beats for the node while the loop is late: in a long turn, or left unpolled.
    /// Declared before `detach`: fields drop in order, and a loop that ends in a panic
    /// joins the beacon's thread before it detaches from the transport.
    beacon: Beacon,
    detach: Detach,
}

impl Driver {
    pub(crate) fn new(p: Parts, factory: StateMachineFactory) -> Driver {
        let next_tick = p.clock.now() + p.node.config().tick_interval;
        Driver {
            replies: Replies::new(p.node.metrics().commit_latency.clone()),
            machines: Machines::new(factory),
            snapshots: SnapshotIo::new(Arc::clone(&p.storage)),
            detach: Detach::new(Arc::clone(&p.transport), p.node.id()),
            beacon: Beacon::default(),
            p,
            next_tick,
            in_flight: None,
            stopping: false,
            last_read: None,
        }
    }

    pub(crate) async fn run(mut self) -> Result<(), StopError> {
        // Here, on the loop's runtime: the builder's caller may be on another.
        (self.beacon).start(&self.p.node, &self.p.clock, &self.p.transport);
        let result = self.event_loop().await;
        self.stop();
        result
    }

    async fn event_loop(&mut self) -> Result<(), StopError> {
        // One sleep per tick, kept across wakes: a new one per wake would cost an allocation
        // and a timer registration every time the loop turns.
        let mut tick = sleep(&self.p.clock, self.next_tick);
        loop {
            self.beacon
                .busy(self.last_read.take().unwrap_or_else(|| self.p.clock.now()));
            if self.in_flight.is_none() {
                if self.stopping {
                    return Ok(());
                }
                if let Some(ready) = self.p.node.ready() {
                    self.start_ready(ready)?;
                    continue;
                }
            } else {
                // A write is in flight: what may leave before it (appends, heartbeats) leaves
                // now, so that a slow fsync delays neither followers nor failure detection.
                for batch in self.p.node.take_sends() {
                    self.p.transport.send(batch);
                }
            }
            // Biased, so that the same inputs are served in the same order from run to run
            // (a deterministic test on a manual clock relies on it), and time-critical work
            // (a finished write, a tick) comes first. Every wake then takes a bounded amount
            // from every source, so none can starve another.
            let due = (!self.stopping).then_some(self.next_tick);
            self.beacon.idle(&self.p.node, due);
            tokio::select! {
                biased;
                result = poll_write(&mut self.in_flight) => {
                    result.map_err(|e| self.storage_failed(e))?;
                    self.finish_write();
                }
                () = &mut tick, if !self.stopping => {
                    // Inputs after every tick: a loop whose readies outlast a tick would
                    // otherwise find the tick due at every wake, and starve them.
                    self.drain(None, None);
                    tick = sleep(&self.p.clock, self.next_tick);
                }
                Some(done) = self.snapshots.reads.recv() => {
                    let (machines, node) = (&mut self.machines, &mut self.p.node);
                    self.snapshots.read_done(done, machines, node)?;
                }
                Some(built) = self.snapshots.built.recv(), if self.p.node.wants_snapshot_chunks() => {
                    self.snapshots.built(&mut self.p.node, built);
                }
                // A closed inbox (its transport dropped it) disables the branch for this
                // wake rather than matching: taken as an empty batch, it woke the loop at
                // once, every time, and it spun a whole core (review).
                Some(b) = self.p.inbound.recv(), if !self.stopping => self.drain(None, Some(b)),
                call = self.p.calls.recv(), if !self.stopping => match call {
                    Some(call) => self.drain(Some(call), None),
                    // Every handle is gone: nobody can ask for anything again.
                    None => self.stopping = true,
                },
                () = self.p.submissions.woken(), if !self.stopping => self.drain(None, None),
            }
        }
    }

    /// Takes `first` and `batch`, then what is already queued, a bounded amount of each
    /// kind. The proposals taken are stamped with the time of this wake.
    fn drain(&mut self, first: Option<Call>, batch: Option<crate::MessageBatch>) {
        let now = self.tick_if_due();
        self.replies.set_now(now);
        if let Some(call) = first {
            self.handle(call);
        }
        // The batch that woke the loop is free: at least one is stepped per wake anyway.
        let mut budget = MAX_INBOUND_BYTES_PER_WAKE;
        if let Some(batch) = batch {
            self.p.node.step(batch);
        }
        // The tick is served again before each batch and call, not once per wake: stepping
        // a wake's batches can take many ticks, and a lease read judged on the clock of
        // the wake was served after the lease had lapsed (review).
        while let Some(batch) = self.p.inbound.next_within(&mut budget) {
            self.tick_if_due();
            self.p.node.step(batch);
        }
        // Not past a shutdown: what follows it is refused at the stop, never taken.
        let mut budget = MAX_COMMANDS_PER_WAKE;
        while !self.stopping
            && let Some(call) = self.p.calls.next_within(&mut budget)
        {
            self.tick_if_due();
            self.handle(call);
        }
        if !self.stopping {
            // Once stopping, what waits is refused at the stop instead.
            self.p
                .submissions
                .take(MAX_DRAIN_PER_WAKE, &mut self.p.node, &mut self.replies);
        }
    }

    /// Serves the tick if it is due, counting those a stall skipped ([`Node::tick_late`]):
    /// the node's clock, which leases rest on, keeps up with real time, while its timers
    /// count one, so that catching up fires no elections. Returns the time.
    fn tick_if_due(&mut self) -> Duration {
        let now = self.p.clock.now();
        self.last_read = Some(now);
        let interval = self.p.node.config().tick_interval;
        self.beacon.busy(now);
        if let Some(missed) = take_due_tick(&mut self.next_tick, now, interval) {
            // Peers whose batches wait in the inbox are heard, not silent.
            (self.p.inbound.arrivals()).for_each(|peer| self.p.node.batch_arrived(peer));
            self.p.node.tick_late(missed);
            self.p.submissions.publish(&self.p.node);
        }
        now
    }

    fn handle(&mut self, call: Call) {
        match call.take(&mut self.p.node, &mut self.replies) {
            Taken::Done => {}
            Taken::Shutdown => self.stopping = true,
            Taken::Read(group, Ok(ReadStart::Now { index }), reply) => {
                reply.serve(self.machines.machine(group), index)
            }
            Taken::Read(_, Ok(ReadStart::Taken(request)), reply) => {
                self.replies.wait(request, reply)
            }
            Taken::Read(_, Err(e), reply) => reply.refuse_read(e),
        }
    }

    fn start_ready(&mut self, mut ready: Ready) -> Result<(), StopError> {
        let started = self.p.clock.now();
        for batch in std::mem::take(&mut ready.send_now) {
            self.p.transport.send(batch);
        }
        self.replies.set_now(started);
        if let Err(e) = self.machines.apply_all(&ready.apply, &mut self.replies) {
            tracing::error!(node = %self.p.node.id(), error = %e, "the node stops");
            return Err(e);
        }
        self.replies.flush_latency();
        // The applies ended proposals: the queue may take more.
        self.p.submissions.publish(&self.p.node);
        // Reads after the applies of the same ready: their read points are now applied.
        for read in &ready.reads {
            if let Some(reply) = self.replies.take(read.request) {
                reply.serve(self.machines.machine(read.group), read.index);
            }
        }
        // Snapshots of the state the applies left, and chunk reads for transfers.
        let node = &mut self.p.node;
        let (takes, reads) = (&ready.snapshots, &ready.chunk_reads);
        self.snapshots.start(takes, reads, &mut self.machines, node);
        for e in &ready.events {
            if let Event::GroupRemoved { group } = e {
                self.snapshots.group_removed(*group, &mut self.machines);
            }
        }
        let storage = &self.p.storage;
        let (in_flight, done) = InFlight::start(ready, started, storage, &*self.p.clock);
        self.in_flight = Some(in_flight);
        if let Poll::Ready(result) = done {
            result.map_err(|e| self.storage_failed(e))?;
            self.finish_write();
        }
        Ok(())
    }

    /// A write failed: the node stops, acknowledging nothing of it (docs/design.md §3.1).
    fn storage_failed(&self, error: StorageError) -> StopError {
        tracing::error!(node = %self.p.node.id(), %error, "storage write failed; the node stops");
        StopError::Storage(error)
    }

    fn finish_write(&mut self) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        let (ready, started) = in_flight.durable(&*self.p.clock, self.p.node.metrics());
        self.p.node.advance(ready.number);
        let (machines, node) = (&mut self.machines, &mut self.p.node);
        self.snapshots.restore(ready.restores, machines, node);
        for batch in ready.send_after_write {
            self.p.transport.send(batch);
        }
        self.replies.ended_all(ready.outcomes);
        for e in ready.events {
            // No subscriber is fine: events are best effort for observers.
            let _ = self.p.events.send(e);
        }
        let now = self.p.clock.now();
        self.last_read = Some(now);
        let seconds = now.saturating_sub(started).as_secs_f64();
        self.p.node.metrics().ready_seconds.record(seconds);
    }

    /// Answers everything still waiting, so that no caller hangs: the node ends its
    /// requests; outcomes of a write that never became durable, and calls not yet taken,
    /// end here.
    fn stop(&mut self) {
        // The loop serves nothing more: its beacon speaks for it no more either.
        self.beacon = Beacon::default();
        self.detach.now();
        let outcomes = self.p.node.stop();
        self.replies.ended_all(outcomes);
        self.replies.stop();
        self.p.calls.refuse_waiting();
        self.p.submissions.refuse_waiting();
    }
}
