//! The safety properties checked while a [`Simulation`](super::Simulation) runs, one per
//! file, each citing the section of the Raft paper (Ongaro & Ousterhout 2014, "In Search of
//! an Understandable Consensus Algorithm") or of Ongaro's dissertation that states it, and
//! one bound of the node's own (`send_slots`: snapshot transfers at once).
//!
//! Checks are incremental so that checking after *every* step stays cheap: a step (a
//! delivered batch, a tick, a completed write, a proposal) changes the state of one node and
//! of the groups it touched, and only those are looked at. Entries are checked when they
//! enter a write ([`Invariant::on_ready`]), which every entry of every in-memory log does in
//! the ready after it was appended; [`Checker::final_check`] also sweeps the in-memory logs
//! once at the end.

mod committed_never_change;
mod durable_acks;
mod election_safety;
mod leader_completeness;
mod log_matching;
mod monotonic;
mod request_outcomes;
mod send_slots;
mod state_machine_safety;

pub(crate) use request_outcomes::{Kind, RequestOutcomes, proposal};

use multiraft_core::group::GroupStatus;
use multiraft_core::{GroupId, Message, Node, Ready, Role};

use super::SimNode;

/// What an invariant check reports: `Err(detail)` on a violation.
pub(crate) type Check = Result<(), String>;

/// One safety property. Every hook defaults to "nothing to check".
pub(crate) trait Invariant {
    /// The property's name, as printed in a [`Violation`](super::Violation).
    fn name(&self) -> &'static str;

    /// After a step that may have changed `group` on `nodes[node]` (which is running).
    fn after_step(&mut self, _nodes: &[SimNode], _node: usize, _status: &GroupStatus) -> Check {
        Ok(())
    }

    /// A ready was just taken from `nodes[node]`; its write is not yet durable. The durable
    /// image holds every earlier write.
    fn on_ready(&mut self, _nodes: &[SimNode], _node: usize, _ready: &Ready) -> Check {
        Ok(())
    }

    /// `msg` leaves `nodes[node]` now (from `send_now`, or from `send_after_write` after the
    /// write was made durable).
    fn on_send(&mut self, _nodes: &[SimNode], _node: usize, _msg: &Message) -> Check {
        Ok(())
    }

    /// `nodes[node]` crashed (or stopped after a storage failure): its memory is gone.
    fn on_crash(&mut self, _node: usize) {}

    /// `nodes[node]` deleted its replica of `group` (it was removed from the group): a
    /// replica created there later starts afresh.
    fn on_replica_removed(&mut self, _node: usize, _group: GroupId) {}

    /// `nodes[node]` was rebuilt from its durable image.
    fn on_restart(&mut self, _nodes: &[SimNode], _node: usize) -> Check {
        Ok(())
    }
}

/// Every invariant, run in a fixed order.
pub(crate) struct Checker<R> {
    list: Vec<Box<dyn Invariant>>,
    /// Request outcomes are checked on the node's IO (applies and outcomes), not on steps;
    /// `R` is the app's output type, compared across replicas.
    pub(crate) requests: RequestOutcomes<R>,
}

/// A failed check: which invariant, and what it saw.
pub(crate) struct Failure {
    pub(crate) invariant: &'static str,
    pub(crate) detail: String,
}

fn tag(inv: &dyn Invariant, r: Check) -> Result<(), Failure> {
    r.map_err(|detail| Failure {
        invariant: inv.name(),
        detail,
    })
}

impl<R: Clone + Eq + std::fmt::Debug> Checker<R> {
    pub(crate) fn new() -> Checker<R> {
        Checker {
            list: vec![
                Box::new(election_safety::ElectionSafety::default()),
                Box::new(log_matching::LogMatching::default()),
                Box::new(leader_completeness::LeaderCompleteness::default()),
                Box::new(state_machine_safety::StateMachineSafety::default()),
                Box::new(committed_never_change::CommittedNeverChange::default()),
                Box::new(monotonic::Monotonic::default()),
                Box::new(durable_acks::DurableAcks::default()),
                Box::new(send_slots::SendSlots),
            ],
            requests: RequestOutcomes::default(),
        }
    }

    /// A violation of the request-outcome invariant.
    pub(crate) fn requests_failure(&self, detail: String) -> Failure {
        Failure {
            invariant: self.requests.name(),
            detail,
        }
    }

    pub(crate) fn after_step(
        &mut self,
        nodes: &[SimNode],
        node: usize,
        group: GroupId,
    ) -> Result<(), Failure> {
        let Some(status) = nodes[node]
            .node
            .as_ref()
            .and_then(|n| n.group_status(group))
        else {
            return Ok(());
        };
        if status.role == Role::Leader {
            self.requests.saw_leader(group, status.term, nodes[node].id);
        }
        for inv in &mut self.list {
            let r = inv.after_step(nodes, node, &status);
            tag(inv.as_ref(), r)?;
        }
        Ok(())
    }

    pub(crate) fn on_ready(
        &mut self,
        nodes: &[SimNode],
        node: usize,
        ready: &Ready,
    ) -> Result<(), Failure> {
        // A new leader appends in its first ready, and its node may stop before the step
        // ends (a failed write): note the leader here too, for judging transfers.
        if let Some(n) = &nodes[node].node {
            for w in ready.write.groups.iter().filter(|w| !w.entries.is_empty()) {
                if let Some(r) = n.replica(w.group)
                    && r.status().role == Role::Leader
                {
                    let term = r.leadership().0;
                    self.requests.saw_leader(w.group, term, nodes[node].id);
                }
            }
        }
        for inv in &mut self.list {
            let r = inv.on_ready(nodes, node, ready);
            tag(inv.as_ref(), r)?;
        }
        Ok(())
    }

    pub(crate) fn on_send(
        &mut self,
        nodes: &[SimNode],
        node: usize,
        msg: &Message,
    ) -> Result<(), Failure> {
        for inv in &mut self.list {
            let r = inv.on_send(nodes, node, msg);
            tag(inv.as_ref(), r)?;
        }
        Ok(())
    }

    pub(crate) fn on_replica_removed(&mut self, node: usize, group: GroupId) {
        for inv in &mut self.list {
            inv.on_replica_removed(node, group);
        }
    }

    pub(crate) fn on_crash(&mut self, node: usize) {
        for inv in &mut self.list {
            inv.on_crash(node);
        }
    }

    pub(crate) fn on_restart(&mut self, nodes: &[SimNode], node: usize) -> Result<(), Failure> {
        for inv in &mut self.list {
            let r = inv.on_restart(nodes, node);
            tag(inv.as_ref(), r)?;
        }
        Ok(())
    }

    /// At the end of a run: every group of every running node once more, and every entry of
    /// every in-memory log through the log-matching registry (entries appended since the last
    /// ready included).
    pub(crate) fn final_check(&mut self, nodes: &[SimNode]) -> Result<(), Failure> {
        for (i, sn) in nodes.iter().enumerate() {
            let Some(node) = &sn.node else { continue };
            for g in sorted_groups(node) {
                self.after_step(nodes, i, g)?;
            }
        }
        let mut lm = log_matching::LogMatching::default();
        for sn in nodes {
            let Some(node) = &sn.node else { continue };
            for g in sorted_groups(node) {
                let group = node.replica(g).expect("listed");
                let last = group.status().last_index;
                let first = group.first_index();
                let prev = group.term_at(first - 1).unwrap_or(0);
                let r = lm.check_log(g, first, prev, &group.entries(first, last + 1));
                tag(&lm, r)?;
            }
        }
        Ok(())
    }
}

/// A node's groups in id order (the node keeps them in a hash map).
pub(crate) fn sorted_groups(node: &Node) -> Vec<GroupId> {
    let mut v: Vec<GroupId> = node.group_ids().collect();
    v.sort_unstable();
    v
}
