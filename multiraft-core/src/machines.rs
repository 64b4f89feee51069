//! The driver's state machines, one per hosted group, made on first use: applying a
//! ready's entries, serving reads, and taking and restoring snapshots (docs/design.md §4.6).

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::call::Replies;
use crate::error::StopError;
use crate::ids::GroupId;
use crate::node::{Apply, READ_AHEAD};
use crate::snapshot::{SnapshotChunk, SnapshotData, SnapshotError};
use crate::state_machine::{StateMachine, StateMachineFactory};

/// One group's state machine.
struct Machine {
    sm: Box<dyn StateMachine>,
    /// What an on-disk machine reported durable when made
    /// ([`StateMachine::applied_index`]): entries and snapshots up to it are skipped.
    durable: u64,
}

pub(crate) struct Machines {
    factory: StateMachineFactory,
    /// By group. A fast hash: one lookup per group per ready with commands to apply.
    map: FxHashMap<GroupId, Machine>,
    /// The results of one batch, reused: its capacity is that of the largest batch, which
    /// `Config::max_ready_entries` bounds.
    results: Vec<Bytes>,
}

impl Machines {
    pub(crate) fn new(factory: StateMachineFactory) -> Machines {
        Machines {
            factory,
            map: FxHashMap::default(),
            results: Vec::new(),
        }
    }

    fn get(&mut self, group: GroupId) -> &mut Machine {
        let factory = &mut self.factory;
        self.map.entry(group).or_insert_with(|| {
            let sm = factory(group);
            let durable = sm.applied_index();
            Machine { sm, durable }
        })
    }

    /// The state machine of `group`.
    pub(crate) fn machine(&mut self, group: GroupId) -> &mut dyn StateMachine {
        self.get(group).sm.as_mut()
    }

    /// Applies a ready's committed commands, group by group ([`Machines::apply`]). The
    /// machines of a stretch of groups (as many as the node reads ahead) are looked up
    /// before any applies: at thousands of busy groups each lookup missed the caches, one
    /// after the other (the probe's key comparison, 2.5 % of a 4,096-group run); looked up
    /// together the misses overlap (BENCHMARKS.md, "A replica's first line and a stored
    /// record read ahead").
    pub(crate) fn apply_all(
        &mut self,
        applies: &[Apply],
        replies: &mut Replies,
    ) -> Result<(), StopError> {
        for stretch in applies.chunks(READ_AHEAD) {
            let read = stretch.iter().fold(0, |read, a| {
                read ^ self.map.get(&a.group).map_or(0, |m| m.durable)
            });
            // What was read must count, or the reads are optimized away.
            std::hint::black_box(read);
            for a in stretch {
                self.apply(a, replies)?;
            }
        }
        Ok(())
    }

    /// Applies one group's committed commands as one batch, answering the local requests
    /// they resolve. A machine that answers another number of commands than it was given
    /// stops the node.
    fn apply(&mut self, a: &Apply, replies: &mut Replies) -> Result<(), StopError> {
        let mut results = std::mem::take(&mut self.results);
        results.clear();
        let m = self.get(a.group);
        let durable = m.durable;
        // An on-disk machine holds the entries up to `durable` already.
        let fresh = || a.commands().filter(move |(index, ..)| *index > durable);
        let given = fresh().count();
        if given > 0 {
            m.sm.apply_batch(
                &mut fresh().map(|(index, command, _)| (index, command)),
                &mut results,
            );
        }
        if results.len() != given {
            return Err(StopError::StateMachine {
                group: a.group,
                commands: given,
                results: results.len(),
            });
        }
        for ((_, _, request), result) in fresh().zip(results.drain(..)) {
            if let Some(request) = request {
                replies.applied(request, result);
            }
        }
        self.results = results;
        Ok(())
    }

    /// The state of `group` as chunks, for a snapshot at `index` (what the node applied).
    ///
    /// Fails while an on-disk machine holds more than that durably: after a crash between
    /// its own commit and the node's write of the commit index, the node applies again
    /// from a lower index (skipping what the machine holds), and the state taken now is a
    /// later index's. Under `index`, a replica restoring it would apply the entries between
    /// the two a second time. A failed snapshot is tried again after a later apply.
    pub(crate) fn snapshot(
        &mut self,
        group: GroupId,
        index: u64,
    ) -> Result<SnapshotData, SnapshotError> {
        let m = self.get(group);
        if m.durable > index {
            return Err(SnapshotError::Failed(format!(
                "the state machine holds index {} durably, past the snapshot's {index}: \
                 snapshots wait until the node has applied that far",
                m.durable
            )));
        }
        m.sm.snapshot()
    }

    /// Whether `group`'s machine already holds the state of `index` durably (an on-disk
    /// machine): restoring a snapshot at `index` is then skipped.
    pub(crate) fn covers(&mut self, group: GroupId, index: u64) -> bool {
        self.get(group).durable >= index
    }

    /// Feeds one chunk of a snapshot to `group`'s machine.
    pub(crate) fn restore(
        &mut self,
        group: GroupId,
        chunk: &SnapshotChunk,
    ) -> Result<(), SnapshotError> {
        self.get(group).sm.restore(chunk)
    }

    pub(crate) fn remove(&mut self, group: GroupId) {
        self.map.remove(&group);
    }
}
