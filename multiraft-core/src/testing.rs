//! The ready loop for tests, simulations and benchmarks, written once: every caller that
//! drives a [`Node`] by hand does a ready's IO through these functions, so the order that
//! docs/design.md §3.1 requires lives in one place (the driver is the only other place that calls
//! [`Node::advance`]). Behind the `testing` feature.
//!
//! A ready is done in two halves, so that a caller can keep its write in flight (a slow
//! disk in a simulation) or drop it (a crash) in between:
//!
//! 1. [`begin`] sends `send_now`, applies `apply` and then serves `reads` — all may happen
//!    before the write is durable (IO rules 2 and 3: applied entries are already durable
//!    here, and a read point depends on no write); then it takes the snapshots the ready
//!    asks for and reads the snapshot chunks transfers need, handing both to the node;
//! 2. the caller makes [`InFlight::write`] durable, or fails it (IO rule 4: the node then
//!    stops, and nothing of the second half happens);
//! 3. [`InFlight::acknowledge`] acknowledges the write to the node (IO rule 5), and
//!    [`Durable::deliver`] restores the state machines whose snapshot the write installed,
//!    sends `send_after_write` (IO rule 1), then reports the outcomes and the events.
//!
//! [`run`] does all three with [`Io::persist`] as the write; [`settle`] runs readies until
//! the node has none.

use bytes::Bytes;

use crate::error::StorageError;
use crate::ids::GroupId;
use crate::message::MessageBatch;
use crate::node::{Apply, Event, Node, Outcome, ReadPoint, Ready, Restore, TakeSnapshot};
use crate::snapshot::{SnapshotChunk, SnapshotError};
use crate::storage::WriteBatch;

/// What a ready's IO does in a test world. Every method but `send` has a default that does
/// nothing.
pub trait Io {
    /// Sends one batch to its destination node.
    fn send(&mut self, batch: MessageBatch);

    /// Makes `write` durable, for [`run`]. An error stops the ready before it is
    /// acknowledged.
    fn persist(&mut self, write: &WriteBatch) -> Result<(), StorageError> {
        let _ = write;
        Ok(())
    }

    /// Applies one group's committed entries; [`Apply::commands`] gives the commands and
    /// the local requests they answer.
    fn apply(&mut self, apply: Apply) {
        let _ = apply;
    }

    /// A read reached its read point: serve it from the group's state machine, which has
    /// applied every earlier apply of this ready.
    fn read(&mut self, point: ReadPoint) {
        let _ = point;
    }

    /// A request ended otherwise than by being applied.
    fn outcome(&mut self, outcome: Outcome) {
        let _ = outcome;
    }

    /// An event for the application.
    fn event(&mut self, event: Event) {
        let _ = event;
    }

    /// The data of a snapshot of `take.group`'s state machine, which has applied exactly
    /// through `take.meta.index` ([`StateMachine::snapshot`](crate::StateMachine::snapshot)),
    /// as chunks, or why it cannot make one. The default makes none
    /// ([`SnapshotError::Unsupported`]): the log is then never compacted.
    fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        let _ = take;
        Err(SnapshotError::Unsupported)
    }

    /// Whether the chunks [`Io::snapshot`] just made reach the node later, as from a driver
    /// that builds snapshots off its loop: `true`, and the caller hands them over itself
    /// with [`Node::snapshot_chunk`] (or drops them on a crash). The default, `false`, hands
    /// them over at once.
    fn snapshot_later(&mut self, take: &TakeSnapshot, chunks: &[Bytes]) -> bool {
        let _ = (take, chunks);
        false
    }

    /// Chunk `seq` of `group`'s stored snapshot at `index`
    /// ([`Storage::snapshot_chunk`](crate::Storage::snapshot_chunk)), as of the writes
    /// persisted so far.
    fn snapshot_chunk(&mut self, group: GroupId, index: u64, seq: u32) -> Option<SnapshotChunk> {
        let _ = (group, index, seq);
        None
    }

    /// Feeds one chunk of a stored snapshot to `group`'s state machine
    /// ([`StateMachine::restore`](crate::StateMachine::restore)).
    fn restore(&mut self, group: GroupId, chunk: &SnapshotChunk) {
        let _ = (group, chunk);
    }
}

/// A ready whose write is not yet durable: what is left to do once it is.
#[derive(Debug)]
#[must_use = "a ready's write must be acknowledged, or dropped on a crash"]
pub struct InFlight {
    number: u64,
    write: WriteBatch,
    durable: Durable,
}

/// What a ready does once its write is durable and acknowledged.
#[derive(Debug)]
#[must_use = "what waited for the write must be delivered"]
pub struct Durable {
    restores: Vec<Restore>,
    send_after_write: Vec<MessageBatch>,
    outcomes: Vec<Outcome>,
    events: Vec<Event>,
}

/// Hands the chunks of the snapshot of `group` at `index` that a [`TakeSnapshot`] asked for
/// to `node` ([`Node::snapshot_chunk`]), the last one marked so; none at all is one empty
/// chunk.
pub fn hand_over_snapshot(node: &mut Node, group: GroupId, index: u64, chunks: Vec<Bytes>) {
    node.hand_over_snapshot(group, index, chunks);
}

/// The first half of `node`'s `ready`: sends `send_now`, applies `apply`, serves `reads`,
/// takes the snapshots and reads the chunks the ready asks for, and returns the rest.
pub fn begin(node: &mut Node, ready: Ready, io: &mut impl Io) -> InFlight {
    let Ready {
        number,
        write,
        send_now,
        send_after_write,
        apply,
        reads,
        outcomes,
        events,
        snapshots,
        chunk_reads,
        restores,
        ..
    } = ready;
    for batch in send_now {
        io.send(batch);
    }
    for a in apply {
        io.apply(a);
    }
    for point in reads {
        io.read(point);
    }
    for take in snapshots {
        let (group, index) = (take.group, take.meta.index);
        match io.snapshot(&take) {
            Ok(chunks) if io.snapshot_later(&take, &chunks) => {}
            Ok(chunks) => hand_over_snapshot(node, group, index, chunks),
            Err(error) => node.snapshot_failed(group, index, &error),
        }
    }
    for read in chunk_reads {
        let chunk = io.snapshot_chunk(read.group, read.index, read.seq);
        node.chunk_read(read, chunk);
    }
    InFlight {
        number,
        write,
        durable: Durable {
            restores,
            send_after_write,
            outcomes,
            events,
        },
    }
}

impl InFlight {
    /// The ready's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// What to make durable.
    pub fn write(&self) -> &WriteBatch {
        &self.write
    }

    /// Takes the write out (to hand it to a storage by value); the rest stays.
    pub fn take_write(&mut self) -> WriteBatch {
        std::mem::take(&mut self.write)
    }

    /// The write is durable: acknowledges it to `node`, which must be the node whose ready
    /// this is, and returns what may happen now.
    pub fn acknowledge(self, node: &mut Node) -> Durable {
        node.advance(self.number);
        self.durable
    }
}

impl Durable {
    /// Restores the state machines whose snapshot the write installed (reading the
    /// snapshot back with [`Io::snapshot_chunk`], telling `node` when each is done), sends
    /// `send_after_write`, then reports the outcomes and the events.
    pub fn deliver(self, node: &mut Node, io: &mut impl Io) {
        for r in self.restores {
            let (group, index) = (r.group, r.meta.index);
            let mut seq = 0;
            while let Some(chunk) = io.snapshot_chunk(group, index, seq) {
                io.restore(group, &chunk);
                if chunk.last {
                    node.restored(group, index);
                    break;
                }
                seq += 1;
            }
        }
        for batch in self.send_after_write {
            io.send(batch);
        }
        for o in self.outcomes {
            io.outcome(o);
        }
        for e in self.events {
            io.event(e);
        }
    }
}

/// Does all of `ready` at once, with `io.persist` as its write. On a storage error the ready
/// is not acknowledged: the node must be dropped (IO rule 4).
pub fn run(node: &mut Node, ready: Ready, io: &mut impl Io) -> Result<(), StorageError> {
    let in_flight = begin(node, ready, io);
    io.persist(in_flight.write())?;
    in_flight.acknowledge(node).deliver(node, io);
    Ok(())
}

/// Runs `node`'s readies until it has none; returns how many there were.
pub fn settle(node: &mut Node, io: &mut impl Io) -> Result<usize, StorageError> {
    let mut count = 0;
    while let Some(ready) = node.ready() {
        run(node, ready, io)?;
        count += 1;
    }
    Ok(count)
}

/// An [`Io`] that keeps everything, for tests that inspect what a ready did.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Batches sent, in order.
    pub sent: Vec<MessageBatch>,
    /// Writes persisted, in order.
    pub written: Vec<WriteBatch>,
    /// Applies, in order.
    pub applied: Vec<Apply>,
    /// Reads served, in order.
    pub reads: Vec<ReadPoint>,
    /// Outcomes, in order.
    pub outcomes: Vec<Outcome>,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl Io for Recorder {
    fn send(&mut self, batch: MessageBatch) {
        self.sent.push(batch);
    }

    fn persist(&mut self, write: &WriteBatch) -> Result<(), StorageError> {
        self.written.push(write.clone());
        Ok(())
    }

    fn apply(&mut self, apply: Apply) {
        self.applied.push(apply);
    }

    fn read(&mut self, point: ReadPoint) {
        self.reads.push(point);
    }

    fn outcome(&mut self, outcome: Outcome) {
        self.outcomes.push(outcome);
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// Does all of `ready` with a fresh [`Recorder`], and returns it: for a test that looked at
/// the ready by value and now completes it.
pub fn complete(node: &mut Node, ready: Ready) -> Recorder {
    let mut recorder = Recorder::default();
    let done = run(node, ready, &mut recorder);
    debug_assert!(done.is_ok(), "a Recorder's write cannot fail");
    recorder
}

#[cfg(test)]
mod tests {
    use crate::{Config, GroupId, Membership, Node, NodeId};

    fn node_with_a_ready() -> (Node, crate::Ready) {
        let config = Config {
            strict: true,
            ..Config::default()
        };
        let mut node = Node::new(NodeId(1), config, 7).unwrap();
        node.create_group(GroupId(1), Membership::voters([1, 2, 3]))
            .unwrap();
        let ready = node.ready().unwrap();
        (node, ready)
    }

    /// Design §3.1, IO rule 5: acknowledging a ready other than the outstanding one is a bug
    /// in the caller that could let the node act on state that is not durable; the node
    /// panics.
    #[test]
    #[should_panic(expected = "node n1: advance(2) but the outstanding ready is Some(1)")]
    fn advance_with_the_wrong_number_panics() {
        let (mut node, ready) = node_with_a_ready();
        assert_eq!(ready.number, 1);
        node.advance(2);
    }

    /// IO rule 5: acknowledging twice (or with nothing outstanding) panics too.
    #[test]
    #[should_panic(expected = "node n1: advance(1) but the outstanding ready is None")]
    fn advance_twice_panics() {
        let (mut node, ready) = node_with_a_ready();
        let in_flight = super::begin(&mut node, ready, &mut super::Recorder::default());
        let number = in_flight.number();
        let _ = in_flight.acknowledge(&mut node);
        node.advance(number);
    }

    /// The two halves keep the order of docs/design.md §3.1: `send_now` and the applies before the
    /// write, `send_after_write`, outcomes and events only after it is acknowledged.
    #[test]
    fn a_ready_is_done_in_the_io_order() {
        let (mut node, ready) = node_with_a_ready();
        let mut io = super::Recorder::default();
        let in_flight = super::begin(&mut node, ready, &mut io);
        assert!(
            io.outcomes.is_empty() && io.events.is_empty(),
            "nothing before the write"
        );
        assert!(node.is_write_in_flight());
        in_flight.acknowledge(&mut node).deliver(&mut node, &mut io);
        assert!(!node.is_write_in_flight());
        assert_eq!(io.outcomes.len(), 1, "the creation is done once durable");
        assert_eq!(io.events.len(), 1);
    }
}
