//! The driver's state machines, one per hosted group, made on first use: applying a
//! ready's entries, serving reads, and taking and restoring snapshots (docs/design.md §4.6).

use std::collections::HashMap;

use crate::call::Replies;
use crate::ids::GroupId;
use crate::node::Apply;
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
    map: HashMap<GroupId, Machine>,
}

impl Machines {
    pub(crate) fn new(factory: StateMachineFactory) -> Machines {
        Machines {
            factory,
            map: HashMap::new(),
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

    /// Applies one group's committed commands, answering the local requests they resolve.
    pub(crate) fn apply(&mut self, a: &Apply, replies: &mut Replies) {
        let m = self.get(a.group);
        for (index, command, request) in a.commands() {
            if index <= m.durable {
                continue; // an on-disk machine holds it already
            }
            let result = m.sm.apply(index, command);
            if let Some(request) = request {
                replies.applied(request, result);
            }
        }
    }

    /// The state of `group` as chunks, for a snapshot.
    pub(crate) fn snapshot(&mut self, group: GroupId) -> Result<SnapshotData, SnapshotError> {
        self.get(group).sm.snapshot()
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
