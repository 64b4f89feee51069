//! Every request the node takes has exactly one outcome, and the outcome is true (docs/design.md
//! §5):
//!
//! - a proposal reported **rejected** ("definitely not applied") is never applied on any
//!   replica, before or after the report;
//! - a proposal reported **applied** at index `i` was applied there, on every replica that
//!   applies index `i`, and nowhere else (once), with the result the proposer reported;
//! - every replica that applies index `i` computes the same result there (the app's state
//!   machine is deterministic, as [`SimApp`](crate::sim::SimApp) requires);
//! - every request a node took ends exactly once: applied, rejected or indeterminate, or lost
//!   with its node's memory in a crash; at the end of the run the nodes still up are stopped
//!   ([`Node::stop`](multiraft_core::Node::stop)) and every request must then have ended;
//! - with an outcome of its own kind: a proposal applied, rejected or indeterminate; a
//!   creation or removal done; a read served (in a ready's `reads`) or failed; a leadership
//!   transfer done or failed;
//! - a read is served for the group it was taken for, at a read point the node's state
//!   machine of that group has reached with the applies of the same ready;
//! - a transfer reported done left its target leading the group, in a later term than the
//!   one it started in.
//!
//! This checks the node's own outcome logic — the code the driver runs in production —
//! under the simulator's faults.

use std::collections::{BTreeMap, HashMap};

use multiraft_core::{GroupId, NodeId, ProposalId, RequestId};

use super::Check;

/// What a request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A proposal, or a group's creation or removal.
    Command,
    /// A read through `Node::read`.
    Read,
    /// A leadership transfer to `to`, started in `term`.
    Transfer { to: NodeId, term: u64 },
    /// A membership change.
    Change,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// A group's creation or removal became durable, or a transfer's target leads.
    Done,
    Applied {
        index: u64,
    },
    Rejected,
    Indeterminate,
    /// Its node crashed before it ended: the caller would see the process die.
    Crashed,
    /// A read reached its read point.
    Served {
        index: u64,
    },
    /// A read failed.
    ReadFailed,
    /// A transfer ended without its target leading.
    TransferFailed,
    /// A membership change ended, committed or not.
    ChangeEnded,
}

impl End {
    /// Whether a request of `kind` may end this way.
    fn fits(self, kind: Kind) -> bool {
        match self {
            End::Crashed => true,
            End::Done => matches!(kind, Kind::Command | Kind::Transfer { .. }),
            End::Applied { .. } | End::Rejected | End::Indeterminate => kind == Kind::Command,
            End::Served { .. } | End::ReadFailed => kind == Kind::Read,
            End::TransferFailed => matches!(kind, Kind::Transfer { .. }),
            End::ChangeEnded => kind == Kind::Change,
        }
    }
}

/// The request-outcome invariant's state, over the app's output type `R`.
#[derive(Debug)]
pub(crate) struct RequestOutcomes<R> {
    /// Every request taken, with its group, its kind and how it ended (`None`: not yet).
    requests: BTreeMap<ProposalId, (GroupId, Kind, Option<End>)>,
    /// Per group, the leader seen in each term (by the checker, after every step), for
    /// judging transfers reported done.
    leaders: HashMap<GroupId, BTreeMap<u64, NodeId>>,
    /// Where each proposal was applied (by any replica): its group and index.
    applied_at: HashMap<ProposalId, (GroupId, u64)>,
    /// The result the first replica computed for each applied (group, index).
    results: HashMap<(GroupId, u64), R>,
}

impl<R> Default for RequestOutcomes<R> {
    fn default() -> Self {
        RequestOutcomes {
            requests: BTreeMap::new(),
            leaders: HashMap::new(),
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
        self.took_kind(id, group, Kind::Command)
    }

    /// A node took request `id` of `kind` for `group`.
    pub(crate) fn took_kind(&mut self, id: ProposalId, group: GroupId, kind: Kind) -> Check {
        if self.requests.insert(id, (group, kind, None)).is_some() {
            return Err(format!("{} took request {} twice", id.node, id.seq));
        }
        Ok(())
    }

    /// `node` leads `group` in `term` (seen after a step).
    pub(crate) fn saw_leader(&mut self, group: GroupId, term: u64, node: NodeId) {
        self.leaders.entry(group).or_default().insert(term, node);
    }

    /// The node reported read `id` of `group` served at read point `index`, after the
    /// applies of its ready left its state machine of `group` at `applied`.
    pub(crate) fn reported_served(
        &mut self,
        id: ProposalId,
        group: GroupId,
        index: u64,
        applied: u64,
    ) -> Check {
        match self.requests.get(&id) {
            Some((g, _, _)) if *g != group => {
                return Err(format!(
                    "{} served read {} for {group}, which it took for {g}",
                    id.node, id.seq
                ));
            }
            _ => {}
        }
        if index > applied {
            return Err(format!(
                "{} served read {} of {group} at read point {index}, but its state machine has applied only {applied}",
                id.node, id.seq
            ));
        }
        self.end(id, End::Served { index })
    }

    /// The node reported read `id` failed.
    pub(crate) fn reported_read_failed(&mut self, id: ProposalId) -> Check {
        self.end(id, End::ReadFailed)
    }

    /// The node reported membership change `id` ended.
    pub(crate) fn reported_change_ended(&mut self, id: ProposalId) -> Check {
        self.end(id, End::ChangeEnded)
    }

    /// The node reported transfer `id` failed.
    pub(crate) fn reported_transfer_failed(&mut self, id: ProposalId) -> Check {
        self.end(id, End::TransferFailed)
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
            Some((_, _, Some(End::Rejected))) => Err(format!(
                "proposal {}/{} was reported rejected, and is applied at {group}/{index}",
                id.node, id.seq
            )),
            Some((_, _, Some(End::Applied { index: reported }))) if *reported != index => {
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

    /// The node reported request `id` (a creation or removal, or a transfer) done.
    pub(crate) fn reported_done(&mut self, id: ProposalId) -> Check {
        if let Some(&(group, Kind::Transfer { to, term }, None)) = self.requests.get(&id) {
            let led = self
                .leaders
                .get(&group)
                .is_some_and(|l| l.range(term + 1..).any(|(_, n)| *n == to));
            if !led {
                return Err(format!(
                    "{} reported its transfer {} of {group} to {to} done, but {to} was not seen leading {group} after term {term} (leaders seen by term: {:?})",
                    id.node,
                    id.seq,
                    self.leaders.get(&group)
                ));
            }
        }
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
            Some((_, _, Some(first))) => Err(format!(
                "{} reported request {} twice: {first:?}, then {end:?}",
                id.node, id.seq
            )),
            Some((_, kind, _)) if !end.fits(*kind) => Err(format!(
                "{} reported request {} ({kind:?}) ended as {end:?}, which is no outcome of its kind",
                id.node, id.seq
            )),
            Some((_, _, slot)) => {
                *slot = Some(end);
                Ok(())
            }
        }
    }

    /// Node `node` crashed: its requests without an outcome end with it.
    pub(crate) fn crashed(&mut self, node: NodeId) {
        for (id, (_, _, end)) in self.requests.iter_mut() {
            if id.node == node && end.is_none() {
                *end = Some(End::Crashed);
            }
        }
    }

    /// Proposals reported indeterminate that some replica applied: outcomes the node could
    /// have known (or learned later), counted to watch how often "unknown" is needless.
    pub(crate) fn indeterminate_applied(&self) -> u64 {
        let applied = |id| self.applied_at.contains_key(id);
        (self.requests.iter())
            .filter(|(id, (_, _, end))| *end == Some(End::Indeterminate) && applied(*id))
            .count() as u64
    }

    /// At the end of the run, after every running node was stopped: every request ended.
    pub(crate) fn finish(&self) -> Check {
        let open: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, (_, _, end))| end.is_none())
            .take(5)
            .map(|(id, (g, kind, _))| format!("{}/{} ({kind:?}) on {g}", id.node, id.seq))
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
pub(crate) fn proposal(node: NodeId, request: RequestId) -> ProposalId {
    ProposalId {
        node,
        seq: request.0,
    }
}
