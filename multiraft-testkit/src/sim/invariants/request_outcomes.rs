//! Every request the node takes has exactly one outcome, and the outcome is true (docs/design.md §5):
//!
//! - a proposal reported **rejected** ("definitely not applied") is never applied on any
//!   replica, before or after the report;
//! - a proposal reported **applied** at index `i` was applied there, on every replica that
//!   applies index `i`, and nowhere else (once), with the result the proposer reported;
//! - every replica that applies index `i` computes the same result there (the app's state
//!   machine is deterministic, as [`SimApp`](crate::sim::SimApp) requires);
//! - every request a node took ends exactly once: applied, rejected or indeterminate, or lost
//!   with its node's memory in a crash; at the end of the run the nodes still up are stopped
//!   ([`Node::stop`](multiraft_core::Node::stop)) and every request must then have ended.
//!
//! This checks the node's own outcome logic — the code the driver runs in production —
//! under the simulator's faults.

use std::collections::{BTreeMap, HashMap};

use multiraft_core::{GroupId, ProposalId, RequestId};

use super::Check;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// A group's creation or removal became durable.
    Done,
    Applied {
        index: u64,
    },
    Rejected,
    Indeterminate,
    /// Its node crashed before it ended: the caller would see the process die.
    Crashed,
}

/// The request-outcome invariant's state, over the app's output type `R`.
#[derive(Debug)]
pub(crate) struct RequestOutcomes<R> {
    /// Every request taken, with its group and how it ended (`None`: not yet).
    requests: BTreeMap<ProposalId, (GroupId, Option<End>)>,
    /// Where each proposal was applied (by any replica): its group and index.
    applied_at: HashMap<ProposalId, (GroupId, u64)>,
    /// The result the first replica computed for each applied (group, index).
    results: HashMap<(GroupId, u64), R>,
}

impl<R> Default for RequestOutcomes<R> {
    fn default() -> Self {
        RequestOutcomes {
            requests: BTreeMap::new(),
            applied_at: HashMap::new(),
            results: HashMap::new(),
        }
    }
}

impl<R: Clone + Eq + std::fmt::Debug> RequestOutcomes<R> {
    pub(crate) fn name(&self) -> &'static str {
        "request outcomes (docs/design.md §5): one per request, rejected never applied, applied where reported"
    }

    /// A node took request `id` (a proposal, or a creation or removal) for `group`.
    pub(crate) fn took(&mut self, id: ProposalId, group: GroupId) -> Check {
        if self.requests.insert(id, (group, None)).is_some() {
            return Err(format!("{} took request {} twice", id.node, id.seq));
        }
        Ok(())
    }

    /// A replica applied the entry of proposal `id` at `index` of `group`, computing
    /// `result`, which must be the result every other replica computed there (the app's
    /// state machine is deterministic).
    pub(crate) fn applied(
        &mut self,
        group: GroupId,
        index: u64,
        id: ProposalId,
        result: &R,
    ) -> Check {
        match self.applied_at.get(&id) {
            Some(&(g, i)) if (g, i) != (group, index) => {
                return Err(format!(
                    "proposal {}/{} applied at {g}/{i} and again at {group}/{index}",
                    id.node, id.seq
                ));
            }
            Some(_) => {}
            None => {
                self.applied_at.insert(id, (group, index));
            }
        }
        match self.results.get(&(group, index)) {
            Some(first) if first != result => {
                return Err(format!(
                    "replicas computed different results for {group}/{index}: {first:?}, then {result:?}"
                ));
            }
            Some(_) => {}
            None => {
                self.results.insert((group, index), result.clone());
            }
        }
        match self.requests.get(&id) {
            Some((_, Some(End::Rejected))) => Err(format!(
                "proposal {}/{} was reported rejected, and is applied at {group}/{index}",
                id.node, id.seq
            )),
            Some((_, Some(End::Applied { index: reported }))) if *reported != index => {
                Err(format!(
                    "proposal {}/{} was reported applied at index {reported}, and is applied at {group}/{index}",
                    id.node, id.seq
                ))
            }
            _ => Ok(()),
        }
    }

    /// The proposing node reported its request applied by the entry at `index`, whose
    /// proposal id is `entry_id`, with `result`.
    pub(crate) fn reported_applied(
        &mut self,
        id: ProposalId,
        group: GroupId,
        index: u64,
        entry_id: ProposalId,
        result: &R,
    ) -> Check {
        if entry_id != id {
            return Err(format!(
                "{} reported request {} applied by {group}/{index}, which carries proposal {}/{}",
                id.node, id.seq, entry_id.node, entry_id.seq
            ));
        }
        if self
            .results
            .get(&(group, index))
            .is_some_and(|r| r != result)
        {
            return Err(format!(
                "{} reported request {} applied at {group}/{index} with {result:?}, another replica computed {:?}",
                id.node,
                id.seq,
                self.results[&(group, index)]
            ));
        }
        self.end(id, End::Applied { index })
    }

    /// The node reported request `id` rejected (definitely not applied).
    pub(crate) fn reported_rejected(&mut self, id: ProposalId) -> Check {
        if let Some(&(g, i)) = self.applied_at.get(&id) {
            return Err(format!(
                "{} reported request {} rejected, but it is applied at {g}/{i}",
                id.node, id.seq
            ));
        }
        self.end(id, End::Rejected)
    }

    /// The node reported request `id` (a creation or removal) done.
    pub(crate) fn reported_done(&mut self, id: ProposalId) -> Check {
        self.end(id, End::Done)
    }

    /// The node reported request `id` indeterminate.
    pub(crate) fn reported_indeterminate(&mut self, id: ProposalId) -> Check {
        self.end(id, End::Indeterminate)
    }

    fn end(&mut self, id: ProposalId, end: End) -> Check {
        match self.requests.get_mut(&id) {
            None => Err(format!(
                "{} reported an outcome ({end:?}) for request {}, which it never took",
                id.node, id.seq
            )),
            Some((_, Some(first))) => Err(format!(
                "{} reported request {} twice: {first:?}, then {end:?}",
                id.node, id.seq
            )),
            Some((_, slot)) => {
                *slot = Some(end);
                Ok(())
            }
        }
    }

    /// Node `node` crashed: its requests without an outcome end with it.
    pub(crate) fn crashed(&mut self, node: multiraft_core::NodeId) {
        for (id, (_, end)) in self.requests.iter_mut() {
            if id.node == node && end.is_none() {
                *end = Some(End::Crashed);
            }
        }
    }

    /// At the end of the run, after every running node was stopped: every request ended.
    pub(crate) fn finish(&self) -> Check {
        let open: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, (_, end))| end.is_none())
            .take(5)
            .map(|(id, (g, _))| format!("{}/{} on {g}", id.node, id.seq))
            .collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "requests without an outcome after every node stopped: {}",
                open.join(", ")
            ))
        }
    }
}

/// The proposal id of request `request` of `node`.
pub(crate) fn proposal(node: multiraft_core::NodeId, request: RequestId) -> ProposalId {
    ProposalId {
        node,
        seq: request.0,
    }
}
