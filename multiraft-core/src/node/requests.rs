//! The requests a node took from the application and has not yet given an outcome: where
//! each request's one outcome is decided (docs/design.md §5).
//!
//! A request is a proposal, a read, a leadership transfer, or a group's creation or removal. The
//! table allocates its [`RequestId`], remembers what the outcome depends on (for a proposal: its
//! group and the group's term and leader when it was taken; its deadline in ticks), and ends it
//! exactly once: applied (the entry in [`Apply`](super::Apply) carries the id), or an [`Outcome`]
//! that the next [`Ready`](super::Ready) reports.

use std::collections::{BTreeMap, VecDeque, hash_map};

use rustc_hash::FxHashMap;

use crate::error::{Indeterminate, MembershipChangeError, ProposeError, ReadError, TransferError};
use crate::ids::{GroupId, NodeId, RequestId};
use crate::membership::Membership;
use crate::metrics::ProposalCounters;

use super::admission::{Admission, Share};

/// How a request ended, when it did not end with its entry applied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// A group's creation or removal is durable.
    Done,
    /// Definitely not applied: the command never entered the log and never will.
    Rejected(ProposeError),
    /// The entry may or may not be applied.
    Indeterminate(Indeterminate),
    /// A read failed (reads that succeed appear in [`Ready::reads`](super::Ready::reads)).
    ReadFailed(ReadError),
    /// A leadership transfer ended without the target leading (one that succeeds ends
    /// `Done`).
    TransferFailed(TransferError),
    /// A membership change completed: the group's committed membership is this one.
    MembershipChanged(Membership),
    /// A membership change did not complete (its error says whether anything changed).
    MembershipChangeFailed(MembershipChangeError),
}

/// The outcome of one request that did not end with its entry applied. Reported in
/// [`Ready::outcomes`](super::Ready::outcomes), to deliver once the ready's write is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The request.
    pub request: RequestId,
    /// The group it concerned.
    pub group: GroupId,
    /// How it ended.
    pub resolution: Resolution,
}

/// A proposal taken and not yet ended.
#[derive(Clone, Copy, Debug)]
struct Pending {
    group: GroupId,
    /// The group's term and known leader when the proposal was taken. A later leadership
    /// change makes its outcome uncertain; one that the node had already seen does not.
    term: u64,
    leader: Option<NodeId>,
    /// The node's tick when it was queued for the node ([`Node::propose_queued`]; when
    /// it was taken, for a caller that queues nothing): its wait counts from then
    /// ([`Requests::judge_load`]).
    ///
    /// [`Node::propose_queued`]: super::Node::propose_queued
    queued_at: u64,
    /// The node's tick when it was taken: it counts against the admission cap until four
    /// limits after that ([`Admission::taken`]).
    taken_at: u64,
    /// Its group's leadership changed since: it waits in `Requests::unsettled`.
    unsettled: bool,
}

/// How many deadlines of ended requests `Requests::deadlines` may hold before they are
/// dropped: past this many, and past three times as many as requests still pending.
/// Without it an ended proposal's entry stayed until its deadline, so the queue grew with
/// the rate times the timeout (16 bytes each: 1.6 GB at a million proposals a second and a
/// timeout of 100 s). The threshold keeps the drop to two or three map lookups per
/// request taken, amortized; at this size the queue holds 1 MiB.
const DEADLINES_KEPT: usize = 65_536;

/// A group's unsettled proposals ([`Requests::unsettled`]).
#[derive(Debug, Default)]
struct Unsettled {
    /// At most the least term they were taken in: an apply of a term up to it settles
    /// none, and is passed by without a look at them (a follower applies many runs while
    /// it catches up, each one a settle).
    least_term: u64,
    ids: Vec<RequestId>,
}

/// Every request of one node that has no outcome yet.
#[derive(Debug, Default)]
pub(super) struct Requests {
    next: u64,
    /// Proposals taken and not yet ended, by request id. Two map operations per proposal on
    /// the hot path: a fast hash of the sequential id, not the default SipHash.
    proposals: FxHashMap<RequestId, Pending>,
    /// How many of `proposals` each group holds, for the groups that hold any: admission
    /// control's even shares ([`Admission::admits`]). At most one entry per group.
    by_group: FxHashMap<GroupId, usize>,
    /// (tick deadline, request) in the order taken, for `Config::proposal_timeout_ticks`.
    /// Entries of proposals that ended otherwise are skipped when they come due, or
    /// dropped once they are most of the queue ([`DEADLINES_KEPT`]).
    deadlines: VecDeque<(u64, RequestId)>,
    /// Creations and removals waiting for the ready that writes them, by group: each group
    /// has at most one lifecycle record per write, but a create then a remove in one cycle
    /// are two requests.
    lifecycle: BTreeMap<GroupId, Vec<RequestId>>,
    /// Reads taken and not yet served or failed, with their group.
    reads: FxHashMap<RequestId, GroupId>,
    /// Transfers in progress, at most one per group: (request, target).
    transfers: BTreeMap<GroupId, (RequestId, NodeId)>,
    /// (tick deadline, transfer, its group) in the order taken. Apart from `deadlines`
    /// because a transfer's deadline is shorter than a proposal's: in one queue it would
    /// wait behind proposals taken earlier and end late. The group is kept so that a due
    /// deadline finds its transfer at once: a search of `transfers` for each made a drain
    /// of N groups whose transfers all timed out cost N²/2 steps in one tick (review).
    transfer_deadlines: VecDeque<(u64, RequestId, GroupId)>,
    /// Membership changes in progress, at most one per group: the request and the group's
    /// (term, leader) when it was taken — a leadership change leaves its outcome unknown.
    changes: BTreeMap<GroupId, (RequestId, u64, Option<NodeId>)>,
    /// Proposals whose group's leadership changed since they were taken, by group: each
    /// ends indeterminate once its group's replica here has applied an entry of a later
    /// term than the proposal's ([`Requests::settle`]), unless applied before. Each
    /// proposal is listed once (`Pending::unsettled`). A group's list is pruned to the
    /// proposals still pending at each leadership change of the group (before any is
    /// added) and at each apply of a later term than its least: so it holds at most the
    /// group's pending proposals at its last change, plus those added then.
    unsettled: BTreeMap<GroupId, Unsettled>,
    /// Outcomes decided and not yet reported in a ready.
    ended: Vec<Outcome>,
    /// Where proposal outcomes are counted ([`crate::metrics::PROPOSALS_TOTAL`]).
    counters: ProposalCounters,
    /// Whether new proposals are taken (`Config::max_commit_wait_ticks`).
    admission: Admission,
}

impl Requests {
    /// An empty table whose first request id is `first` (at least 1).
    pub(super) fn starting_at(first: u64) -> Requests {
        let mut requests = Requests::default();
        requests.start_at(first);
        requests
    }

    /// Counts proposal outcomes into `counters` from now on.
    pub(super) fn count_into(&mut self, counters: ProposalCounters) {
        self.counters = counters;
    }

    /// `count` proposals were applied here (counted per ready, not one by one).
    pub(super) fn count_applied(&self, count: usize) {
        if count > 0 {
            self.counters.applied.increment(count as u64);
        }
    }

    /// The next request id will be `first` (at least 1).
    pub(super) fn start_at(&mut self, first: u64) {
        self.next = first.max(1);
    }

    /// The next request id will be past `used`, if it was not already.
    pub(super) fn start_past(&mut self, used: u64) {
        if used >= self.next {
            self.start_at(used.wrapping_add(1));
        }
    }

    fn allocate(&mut self) -> RequestId {
        let id = RequestId(self.next);
        // Past u64::MAX wraps to 0, which is never an id: skip it.
        self.next = self.next.wrapping_add(1).max(1);
        id
    }

    /// Proposals taken and not yet ended.
    pub(super) fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }

    /// Leadership transfers taken and not yet ended.
    pub(super) fn pending_transfers(&self) -> usize {
        self.transfers.len()
    }

    /// Reads taken and not yet ended.
    pub(super) fn pending_reads(&self) -> usize {
        self.reads.len()
    }

    /// A new read of `group`, due by tick `deadline`.
    pub(super) fn read(&mut self, group: GroupId, deadline: u64) -> RequestId {
        let id = self.allocate();
        self.reads.insert(id, group);
        self.push_deadline(deadline, id);
        id
    }

    /// Queues `id`'s deadline; first drops the entries of ended requests when they are
    /// most of the queue ([`DEADLINES_KEPT`]).
    fn push_deadline(&mut self, deadline: u64, id: RequestId) {
        let pending = self.proposals.len() + self.reads.len();
        if self.deadlines.len() >= DEADLINES_KEPT.max(4 * pending) {
            let (proposals, reads) = (&self.proposals, &self.reads);
            self.deadlines
                .retain(|(_, id)| proposals.contains_key(id) || reads.contains_key(id));
        }
        self.deadlines.push_back((deadline, id));
    }

    /// Read `id` reached its read point: ends it; whether it was still pending.
    pub(super) fn read_served(&mut self, id: RequestId) -> bool {
        self.reads.remove(&id).is_some()
    }

    /// Read `id` failed.
    pub(super) fn read_failed(&mut self, id: RequestId, error: ReadError) {
        if let Some(group) = self.reads.remove(&id) {
            self.end(id, group, Resolution::ReadFailed(error));
        }
    }

    /// A transfer of `group` to `to`, taken by leader `me`, due by tick `deadline`; or, when
    /// `to` already leads, one that is done at once.
    ///
    /// A transfer of the group still in the table has failed: the group took this one, so
    /// it dropped that one when it stopped leading, and `me` leads again, in a later term,
    /// without that target having taken over (a node that steps down and is re-elected
    /// before any other leader is heard of sees no leadership change that ends it). Ending
    /// it here keeps it from being replaced in the table and never ending.
    pub(super) fn transfer(
        &mut self,
        group: GroupId,
        to: NodeId,
        me: NodeId,
        deadline: u64,
        done: bool,
    ) -> RequestId {
        let id = self.allocate();
        if done {
            self.end(id, group, Resolution::Done);
        } else {
            let over = TransferError::LeadershipChanged { leader: Some(me) };
            self.transfer_ended(group, Resolution::TransferFailed(over));
            self.transfers.insert(group, (id, to));
            self.transfer_deadlines.push_back((deadline, id, group));
        }
        id
    }

    /// A membership change of `group`, taken by its leader in `term`.
    pub(super) fn change(&mut self, group: GroupId, term: u64, leader: NodeId) -> RequestId {
        let id = self.allocate();
        if let Some((earlier, _, _)) = self.changes.insert(group, (id, term, Some(leader))) {
            // The replica took a new change, so the one recorded ended with a leadership
            // change this table has not yet been told of.
            let why = MembershipChangeError::Indeterminate(Indeterminate::LeadershipChanged);
            self.end(earlier, group, Resolution::MembershipChangeFailed(why));
        }
        id
    }

    /// Whether the table holds a membership change of `group`.
    pub(super) fn holds_change(&self, group: GroupId) -> bool {
        self.changes.contains_key(&group)
    }

    /// Whether the table holds a transfer of `group`.
    pub(super) fn holds_transfer(&self, group: GroupId) -> bool {
        self.transfers.contains_key(&group)
    }

    /// The membership change of `group` ended as `resolution`.
    pub(super) fn change_ended(&mut self, group: GroupId, resolution: Resolution) {
        if let Some((id, _, _)) = self.changes.remove(&group) {
            self.end(id, group, resolution);
        }
    }

    /// The transfer of `group` ended as `resolution`.
    pub(super) fn transfer_ended(&mut self, group: GroupId, resolution: Resolution) {
        if let Some((id, _)) = self.transfers.remove(&group) {
            self.end(id, group, resolution);
        }
    }

    /// Whether outcomes wait for a ready.
    pub(super) fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    /// A new proposal to `group`, taken under `(term, leader)`, due by tick `deadline`,
    /// queued for the node since tick `queued_at`.
    pub(super) fn propose(
        &mut self,
        group: GroupId,
        (term, leader): (u64, Option<NodeId>),
        deadline: u64,
        queued_at: u64,
    ) -> RequestId {
        let id = self.allocate();
        let pending = Pending {
            group,
            term,
            leader,
            queued_at,
            taken_at: self.admission.now(),
            unsettled: false,
        };
        self.hold(id, pending);
        self.push_deadline(deadline, id);
        id
    }

    /// Holds pending proposal `id`, counted for admission control and for its group.
    fn hold(&mut self, id: RequestId, p: Pending) {
        self.put_back(id, p);
        *self.by_group.entry(p.group).or_default() += 1;
    }

    /// Holds pending proposal `id` again after [`Requests::release`], which left its
    /// group's count as it was.
    fn put_back(&mut self, id: RequestId, p: Pending) {
        self.proposals.insert(id, p);
        self.admission.taken(p.taken_at);
    }

    /// Forgets pending proposal `id`, however it ended, for admission control and its
    /// group's count too.
    fn forget(&mut self, id: RequestId) -> Option<Pending> {
        let p = self.release(id)?;
        self.ended_in(p.group, 1);
        Some(p)
    }

    /// Forgets pending proposal `id` for admission control, not yet for its group's count
    /// ([`Requests::ended_in`]).
    fn release(&mut self, id: RequestId) -> Option<Pending> {
        let p = self.proposals.remove(&id)?;
        self.admission.ended(p.taken_at);
        Some(p)
    }

    /// `count` proposals of `group` ended: its count falls by as many.
    fn ended_in(&mut self, group: GroupId, count: usize) {
        if count == 0 {
            return;
        }
        let hash_map::Entry::Occupied(mut held) = self.by_group.entry(group) else {
            debug_assert!(false, "{group} ended {count} proposals it never held");
            return;
        };
        debug_assert!(*held.get() >= count, "{group} ended more than it held");
        *held.get_mut() = held.get().saturating_sub(count);
        if *held.get() == 0 {
            held.remove();
        }
    }

    /// Gives back a proposal or read id that was allocated but not taken (the group
    /// refused it).
    pub(super) fn withdraw(&mut self, id: RequestId) {
        self.forget(id);
        self.reads.remove(&id);
        if self.deadlines.back().is_some_and(|(_, d)| *d == id) {
            self.deadlines.pop_back();
        }
    }

    /// A creation or removal of `group`, ended `Done` by the ready that writes it.
    pub(super) fn lifecycle(&mut self, group: GroupId) -> RequestId {
        let id = self.allocate();
        self.lifecycle.entry(group).or_default().push(id);
        id
    }

    /// The entries of proposals `ids` of `group` are applied here at tick `now`: ends
    /// those still pending, and keeps them, in order, to put in the apply. The group's
    /// count falls once for all of them: this is the hot path, one entry per proposal.
    pub(super) fn applied(&mut self, group: GroupId, ids: &mut Vec<(u64, RequestId)>, now: u64) {
        ids.retain(|&(_, id)| {
            // Forgotten first, put back if not this group's: one look-up on this path,
            // where checking first would take two.
            let Some(p) = self.release(id) else {
                return false;
            };
            if p.group != group {
                // Not this request's entry (an id of another group cannot match, but a
                // table must never end a request on a stranger's entry).
                self.put_back(id, p);
                return false;
            }
            // One that outlived a leadership change waited for the change, not for an
            // overloaded node: counted, a failover's worth of them set the overload cap
            // (review).
            if !p.unsettled {
                self.admission.applied(now.saturating_sub(p.queued_at));
            }
            true
        });
        self.ended_in(group, ids.len());
    }

    /// Proposals that wait more than `ticks` count against the node's load
    /// (`Config::max_commit_wait_ticks`).
    pub(super) fn limit_waits(&mut self, ticks: u64) {
        self.admission = Admission::new(ticks);
    }

    /// A tick: judges whether the node is overloaded ([`Admission::tick`]).
    pub(super) fn judge_load(&mut self, now: u64) {
        self.admission.tick(now, self.proposals.len());
    }

    /// Whether a new proposal of `group` is taken, or which limit refuses it: admission
    /// control ([`Admission::admits`]), or `max_pending` (`Config::max_pending_proposals`),
    /// of which one group holds at most half, so that a group whose proposals cannot
    /// commit (no quorum, a leader cut off) and pile up until their timeout leaves the
    /// other half to the node's other groups (review).
    pub(super) fn admits(&self, group: GroupId, max_pending: usize) -> Result<(), ProposeError> {
        let pending = self.proposals.len();
        let half = (max_pending / 2).max(1);
        if self.admission.cap().is_none() && pending < half {
            // Neither limit can refuse: the group's count is not looked up.
            return Ok(());
        }
        let held = self.by_group.get(&group).copied().unwrap_or(0);
        // The groups that would hold proposals with this one taken.
        let groups = self.by_group.len() + usize::from(held == 0);
        if !self.admission.admits(pending, Share { held, groups }) {
            return Err(ProposeError::Busy {
                limit: "max_commit_wait_ticks",
            });
        }
        if pending >= max_pending || held >= half {
            return Err(ProposeError::Busy {
                limit: "max_pending_proposals",
            });
        }
        Ok(())
    }

    /// While the node is overloaded, the proposals it may hold ([`Admission::tick`]).
    pub(super) fn admission_cap(&self) -> Option<u64> {
        self.admission.cap()
    }

    /// Whether read `id` of `group` is pending.
    pub(super) fn awaits_read(&self, group: GroupId, id: RequestId) -> bool {
        self.reads.get(&id) == Some(&group)
    }

    /// `group` refused proposal `id`: definitely not in the log. A refusal by another group
    /// than the proposal's ends nothing: that group never had it (review).
    pub(super) fn rejected(&mut self, group: GroupId, id: RequestId, error: ProposeError) {
        if self.proposals.get(&id).is_none_or(|p| p.group != group) {
            return;
        }
        if let Some(p) = self.forget(id) {
            self.counters.refused(&error);
            self.end(id, p.group, Resolution::Rejected(error));
        }
    }

    /// Ticks reached `now`: ends every request due by then as timed out, and returns the
    /// reads among them (their groups must forget them).
    pub(super) fn expire(&mut self, now: u64) -> Vec<(GroupId, RequestId)> {
        while let Some(&(deadline, id, group)) = self.transfer_deadlines.front() {
            if deadline > now {
                break;
            }
            self.transfer_deadlines.pop_front();
            if self.transfers.get(&group).is_some_and(|(t, _)| *t == id) {
                self.transfer_ended(group, Resolution::TransferFailed(TransferError::Timeout));
            }
        }
        let mut expired_reads = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                return expired_reads;
            }
            self.deadlines.pop_front();
            if let Some(p) = self.forget(id) {
                self.counters.indeterminate.increment(1);
                self.end(
                    id,
                    p.group,
                    Resolution::Indeterminate(Indeterminate::Timeout),
                );
            } else if let Some(group) = self.reads.remove(&id) {
                self.end(id, group, Resolution::ReadFailed(ReadError::Timeout));
                expired_reads.push((group, id));
            }
        }
        expired_reads
    }

    /// The leadership of some groups changed (`current` gives each one's term and leader;
    /// `None` for a group no longer hosted; `applied_term` the term its replica here has
    /// applied to): every proposal of theirs taken under another term or leader than the
    /// current one is unsettled — it may or may not commit — and ends indeterminate once
    /// settled ([`Requests::settle`]; at once if it already is, or if its group is gone).
    /// A proposal taken under the current term and leader keeps waiting: terms only grow
    /// and a term has one leader, so an equal pair means it went to the leader that is
    /// current. One pass over the pending proposals serves every group.
    pub(super) fn leadership_changed(
        &mut self,
        current: &BTreeMap<GroupId, Option<(u64, Option<NodeId>)>>,
        me: NodeId,
        applied_term: impl Fn(GroupId) -> u64,
    ) {
        if !self.transfers.is_empty() {
            for (group, now) in current {
                let Some(&(_, to)) = self.transfers.get(group) else {
                    continue;
                };
                let leader = now.and_then(|(_, l)| l);
                let resolution = match leader {
                    Some(l) if l == to => Resolution::Done,
                    Some(l) if l != me => {
                        Resolution::TransferFailed(TransferError::LeadershipChanged { leader })
                    }
                    // Still this node, or an election under way: wait.
                    _ => continue,
                };
                self.transfer_ended(*group, resolution);
            }
        }
        if !self.changes.is_empty() {
            for (group, now) in current {
                if let Some(&(_, term, leader)) = self.changes.get(group)
                    && *now != Some((term, leader))
                {
                    let why = Indeterminate::LeadershipChanged;
                    let failed = MembershipChangeError::Indeterminate(why);
                    self.change_ended(*group, Resolution::MembershipChangeFailed(failed));
                }
            }
        }
        if current.is_empty() || self.proposals.is_empty() {
            return;
        }
        // A proposal taken under another leadership than its group's now may still be
        // applied — committed by that leadership, and not yet applied here (a follower
        // learns of a transfer's new term before the commit index; a leader applies a
        // ready's worth at a time) — so it waits until settled. Ending it at once broke a
        // transfer's promise that every proposal taken ends applied (review).
        for group in current.keys() {
            if let Some(waiting) = self.unsettled.get_mut(group) {
                waiting.ids.retain(|id| self.proposals.contains_key(id));
                if waiting.ids.is_empty() {
                    self.unsettled.remove(group);
                }
            }
        }
        let mut now_settled = Vec::new();
        for (id, p) in self.proposals.iter_mut() {
            let Some(now) = current.get(&p.group) else {
                continue;
            };
            if p.unsettled || *now == Some((p.term, p.leader)) {
                continue;
            }
            if now.is_none() || p.term < applied_term(p.group) {
                now_settled.push((*id, p.group));
            } else {
                p.unsettled = true;
                let waiting = self.unsettled.entry(p.group).or_insert(Unsettled {
                    least_term: p.term,
                    ids: Vec::new(),
                });
                waiting.least_term = waiting.least_term.min(p.term);
                waiting.ids.push(*id);
            }
        }
        self.end_indeterminate(now_settled, Indeterminate::LeadershipChanged);
    }

    /// `group`'s replica here has applied up to an entry of `applied_term`: its proposals
    /// taken in an earlier term, under a leadership that has changed since, and not applied
    /// by now, never will be in that leadership. Log terms never decrease, so everything
    /// it committed comes before that entry. They end indeterminate: one of them may yet
    /// be appended again by a later leader (a forward in flight).
    pub(super) fn settle(&mut self, group: GroupId, applied_term: u64) {
        if self.unsettled.is_empty() {
            return;
        }
        let Some(waiting) = self.unsettled.get_mut(&group) else {
            return;
        };
        if applied_term <= waiting.least_term {
            return;
        }
        // Those left were taken in `applied_term` or later.
        waiting.least_term = applied_term;
        let mut settled = Vec::new();
        waiting.ids.retain(|id| match self.proposals.get(id) {
            None => false, // ended otherwise
            Some(p) if p.term < applied_term => {
                settled.push((*id, group));
                false
            }
            Some(_) => true,
        });
        if waiting.ids.is_empty() {
            self.unsettled.remove(&group);
        }
        self.end_indeterminate(settled, Indeterminate::LeadershipChanged);
    }

    /// `group` is no longer hosted: its proposals end indeterminate.
    pub(super) fn group_removed(&mut self, group: GroupId) {
        self.end_where(Indeterminate::GroupRemoved, |p| p.group == group);
        self.unsettled.remove(&group);
        let mut reads: Vec<RequestId> = self
            .reads
            .iter()
            .filter(|(_, g)| **g == group)
            .map(|(id, _)| *id)
            .collect();
        reads.sort_unstable();
        for id in reads {
            self.read_failed(id, ReadError::GroupNotFound(group));
        }
        let gone = Resolution::TransferFailed(TransferError::GroupNotFound(group));
        self.transfer_ended(group, gone);
        let why = MembershipChangeError::Indeterminate(Indeterminate::GroupRemoved);
        self.change_ended(group, Resolution::MembershipChangeFailed(why));
    }

    fn end_where(&mut self, why: Indeterminate, affected: impl Fn(&Pending) -> bool) {
        let ended: Vec<(RequestId, GroupId)> = self
            .proposals
            .iter()
            .filter(|(_, p)| affected(p))
            .map(|(id, p)| (*id, p.group))
            .collect();
        self.end_indeterminate(ended, why);
    }

    /// Ends the proposals `ended` indeterminate, for `why`, in id order.
    fn end_indeterminate(&mut self, mut ended: Vec<(RequestId, GroupId)>, why: Indeterminate) {
        // The map's order differs between instances: report in id order, deterministically.
        ended.sort_unstable();
        self.counters.indeterminate.increment(ended.len() as u64);
        for (id, group) in ended {
            self.forget(id);
            self.end(id, group, Resolution::Indeterminate(why));
        }
    }

    fn end(&mut self, request: RequestId, group: GroupId, resolution: Resolution) {
        self.ended.push(Outcome {
            request,
            group,
            resolution,
        });
    }

    /// The lifecycle records of these groups are in the ready being built: their requests
    /// are done once it is durable.
    pub(super) fn lifecycle_written(&mut self) {
        for (group, ids) in std::mem::take(&mut self.lifecycle) {
            for request in ids {
                self.end(request, group, Resolution::Done);
            }
        }
    }

    /// The outcomes decided since the last call.
    pub(super) fn take_ended(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.ended)
    }

    /// The node stops: every request without an outcome ends indeterminate, lifecycle ones
    /// included (their write may or may not have happened).
    pub(super) fn stop(&mut self) -> Vec<Outcome> {
        self.end_where(Indeterminate::NodeStopped, |_| true);
        self.unsettled.clear();
        let mut reads: Vec<RequestId> = self.reads.keys().copied().collect();
        reads.sort_unstable();
        for id in reads {
            self.read_failed(id, ReadError::Stopped);
        }
        for group in self.transfers.keys().copied().collect::<Vec<_>>() {
            self.transfer_ended(group, Resolution::TransferFailed(TransferError::Stopped));
        }
        for group in self.changes.keys().copied().collect::<Vec<_>>() {
            let why = MembershipChangeError::Indeterminate(Indeterminate::NodeStopped);
            self.change_ended(group, Resolution::MembershipChangeFailed(why));
        }
        for (group, ids) in std::mem::take(&mut self.lifecycle) {
            for request in ids {
                self.end(
                    request,
                    group,
                    Resolution::Indeterminate(Indeterminate::NodeStopped),
                );
            }
        }
        self.deadlines.clear();
        self.transfer_deadlines.clear();
        self.take_ended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulator seed 5 (`sim --seeds 1 --start 5`, before this fix): n1 led g18, took a
    /// transfer to n3, stepped down and was re-elected with no other leader heard of, so
    /// the transfer kept waiting for its deadline; a drain then started a new transfer of
    /// g18, which replaced the first in the table, and the first never ended.
    #[test]
    fn a_new_transfer_of_a_group_ends_the_one_it_replaces() {
        let (group, me) = (GroupId(18), NodeId(1));
        let mut requests = Requests::starting_at(1);
        let first = requests.transfer(group, NodeId(3), me, 40, false);
        let second = requests.transfer(group, NodeId(2), me, 80, false);
        let ended = requests.take_ended();
        assert_eq!(
            ended,
            vec![Outcome {
                request: first,
                group,
                resolution: Resolution::TransferFailed(TransferError::LeadershipChanged {
                    leader: Some(me)
                }),
            }]
        );
        // The second ends once, at its own deadline, and the first not again.
        assert!(requests.expire(79).is_empty());
        assert!(requests.take_ended().is_empty());
        requests.expire(80);
        let ended = requests.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].request, second);
        assert!(requests.stop().is_empty());
    }

    /// A group's count follows its proposals however they end: applied (only its own, and
    /// only those still pending), rejected, withdrawn, timed out, removed with the group,
    /// stopped; a group holding none has no entry.
    #[test]
    fn each_groups_count_follows_its_proposals() {
        let (one, two, me) = (GroupId(1), GroupId(2), NodeId(1));
        let mut requests = Requests::starting_at(1);
        let a: Vec<_> = (0..3)
            .map(|_| requests.propose(one, (1, Some(me)), 1_000, 0))
            .collect();
        let b = requests.propose(two, (1, Some(me)), 1_000, 0);
        let held = |r: &Requests| (r.by_group.get(&one).copied(), r.by_group.get(&two).copied());
        assert_eq!(held(&requests), (Some(3), Some(1)));
        let mut ids = vec![(1, a[0]), (2, b), (3, a[1]), (4, RequestId(99))];
        requests.applied(one, &mut ids, 1);
        assert_eq!(
            ids,
            [(1, a[0]), (3, a[1])],
            "a stranger's and an unknown id kept out"
        );
        assert_eq!(held(&requests), (Some(1), Some(1)));
        requests.rejected(GroupId(1), a[2], ProposeError::Stopped);
        requests.withdraw(b);
        assert_eq!(held(&requests), (None, None));
        assert_eq!(requests.pending_proposals(), 0);
        // Timed out, removed with their group, stopped with the node (a table of its own:
        // deadlines come due in the order taken).
        let mut requests = Requests::starting_at(1);
        requests.propose(one, (1, Some(me)), 10, 0);
        requests.propose(one, (1, Some(me)), 20, 0);
        requests.propose(two, (1, Some(me)), 20, 0);
        requests.expire(10);
        assert_eq!(held(&requests), (Some(1), Some(1)));
        requests.group_removed(two);
        assert_eq!(held(&requests), (Some(1), None));
        requests.stop();
        assert_eq!(held(&requests), (None, None));
    }

    /// Deadlines of proposals that ended are dropped once they are most of the queue, not
    /// kept until they come due; a proposal and a read still pending keep theirs and time
    /// out.
    #[test]
    fn deadlines_of_ended_proposals_are_dropped() {
        let (group, me) = (GroupId(1), NodeId(1));
        let mut requests = Requests::starting_at(1);
        let waiting = requests.propose(group, (1, Some(me)), 1_000, 0);
        let read = requests.read(group, 1_000);
        for _ in 0..3 * DEADLINES_KEPT {
            let id = requests.propose(group, (1, Some(me)), 1_000, 0);
            let mut ids = vec![(0, id)];
            requests.applied(group, &mut ids, 1);
            assert_eq!(ids, [(0, id)]);
        }
        assert!(
            requests.deadlines.len() <= DEADLINES_KEPT + 1,
            "{} deadlines queued for a pending proposal and read",
            requests.deadlines.len()
        );
        requests.take_ended();
        assert_eq!(requests.expire(1_000), vec![(group, read)]);
        let ended = requests.take_ended();
        assert_eq!(ended.len(), 2);
        assert_eq!(ended[0].request, waiting);
        assert_eq!(
            ended[0].resolution,
            Resolution::Indeterminate(Indeterminate::Timeout)
        );
        assert_eq!(ended[1].request, read);
    }

    /// A transfer's deadline is shorter than a proposal's: a transfer taken after a
    /// proposal still times out at its own deadline, not behind the proposal's.
    #[test]
    fn a_transfer_times_out_at_its_own_deadline_behind_longer_ones() {
        let (group, me) = (GroupId(5), NodeId(1));
        let mut requests = Requests::starting_at(1);
        requests.propose(group, (1, Some(me)), 200, 0);
        let transfer = requests.transfer(group, NodeId(2), me, 40, false);
        requests.expire(40);
        let ended = requests.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].request, transfer);
        assert_eq!(
            ended[0].resolution,
            Resolution::TransferFailed(TransferError::Timeout)
        );
    }

    /// Transfers due together each end once, timed out, and a transfer that replaced an
    /// earlier one of its group is not ended by the earlier one's deadline. (The deadline
    /// now names its group: a search of every transfer for each deadline made a drain of
    /// many groups, timed out together, quadratic; review.)
    #[test]
    fn due_transfers_end_once_each_and_spare_a_replacing_one() {
        let me = NodeId(1);
        let mut requests = Requests::starting_at(1);
        let first: Vec<RequestId> = (1..=1_000)
            .map(|g| requests.transfer(GroupId(g), NodeId(2), me, 40, false))
            .collect();
        let later = requests.transfer(GroupId(1), NodeId(3), me, 80, false);
        let replaced = requests.take_ended();
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced[0].request, first[0]);
        requests.expire(40);
        let ended = requests.take_ended();
        assert_eq!(ended.len(), 999);
        assert!(ended.iter().all(|e| e.request != later
            && e.resolution == Resolution::TransferFailed(TransferError::Timeout)));
        requests.expire(80);
        let ended = requests.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].request, later);
    }

    /// A group's unsettled proposals end exactly when an entry of a later term than
    /// theirs is applied, however many changes listed them and in which order: an apply of
    /// a term up to the least listed looks at none (the early return), and one listed
    /// later with a lower term than those before it lowers that least term.
    #[test]
    fn unsettled_proposals_end_at_an_apply_of_a_later_term_only() {
        let (group, me, other) = (GroupId(1), NodeId(1), NodeId(2));
        let ended = |requests: &mut Requests| -> Vec<RequestId> {
            requests.take_ended().iter().map(|o| o.request).collect()
        };
        let change = |requests: &mut Requests, term: u64| {
            let current = BTreeMap::from([(group, Some((term, Some(other))))]);
            requests.leadership_changed(&current, me, |_| 0);
        };
        let mut requests = Requests::starting_at(1);
        let at_5 = requests.propose(group, (5, Some(me)), 1_000, 0);
        change(&mut requests, 6);
        requests.settle(group, 5);
        assert_eq!(ended(&mut requests), [], "an apply of its own term");
        // Listed by a later change with a lower term (the table orders nothing).
        let at_3 = requests.propose(group, (3, Some(me)), 1_000, 0);
        change(&mut requests, 7);
        requests.settle(group, 3);
        assert_eq!(ended(&mut requests), []);
        requests.settle(group, 4);
        assert_eq!(ended(&mut requests), [at_3]);
        requests.settle(group, 5);
        assert_eq!(ended(&mut requests), []);
        requests.settle(group, 6);
        assert_eq!(ended(&mut requests), [at_5]);
        assert_eq!(requests.pending_proposals(), 0);
        assert!(requests.unsettled.is_empty(), "an emptied list is removed");
    }
}
