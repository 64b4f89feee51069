//! Membership changes in the fault mix (dissertation §4.3): the leader of a random group adds
//! a voter or a learner on a node that does not host the group (whose replica the
//! simulator creates there, as an application would), promotes a learner, removes a
//! voter — the leader itself now and then — or replaces one. Replicas that report
//! themselves removed are deleted by the simulator, as an application would. Every change
//! is a request that must end exactly once; the report counts what was committed (joint
//! configurations entered and left, promotions, leaders removed).

use std::collections::{BTreeMap, BTreeSet};

use multiraft_core::group::Role;
use multiraft_core::{
    Entry, GroupId, Membership, MembershipChange, MembershipChangeError, NodeId, Payload,
    ProposalId,
};

use super::Simulation;
use super::app::SimApp;
use super::invariants::{Failure, Kind, proposal};

/// Most replicas a group grows to: changes that add one beyond it are not tried.
const MAX_REPLICAS: usize = 5;

/// How long after a membership change is first seen in the liveness phase it must have
/// ended, beyond `proposal_timeout_ticks`, in maximum election timeouts: one for a
/// transfer to a replica that went down to stop counting as progress, the rest for the
/// outcome's way back and a slow clock's ticks.
const CHANGE_END_SLACK_TIMEOUTS: u64 = 4;

/// The chance, when a replica enters a joint configuration in the fault phase, of a fault
/// aimed at it (`Simulation::joint_fault`), in per mille. Joint configurations last a round
/// trip or so: faults drawn at random would rarely meet one.
pub(super) const JOINT_FAULT_PER_MILLE: u32 = 600;

/// How long a replica its group removed may outlive the removal in the liveness phase, in
/// maximum election timeouts from when it is first seen removed (or last seen of a kind
/// left untold, [`RemovedSeen::clock`]): a few heartbeat rounds to catch it up to the
/// removal and tell it, the rest for a slow clock's ticks and its node's deletion.
const REMOVED_TOLD_TIMEOUTS: u64 = 5;

/// When the liveness phase first saw a removed replica still hosted
/// ([`Simulation::check_removed_told`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct RemovedSeen {
    /// First seen removed: a replica of a kind left untold past the bound from here is
    /// counted.
    first: u64,
    /// Where the bound counts from: `first`, or the last check that found it of a kind left
    /// untold.
    clock: u64,
}

/// How many times the application looks again at a replica whose join was abandoned, while
/// no leader of the change's term or later that has committed an entry of its term is
/// known, two election timeouts apart.
/// Past that it keeps the replica (counted as left untold if it is still joining at the
/// end): a group with no such leader that long is one the faults took down.
pub(super) const ABANDONED_JOIN_CHECKS: u32 = 8;

/// Why the application deletes a replica (`Simulation::remove_replica`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Deletion {
    /// The replica reported itself removed (`Event::Removed`).
    Removed,
    /// It joined for change `join`, taken by a leader of term `term`, which failed or ended
    /// indeterminate; looked at again up to `checks_left` more times.
    AbandonedJoin {
        join: ProposalId,
        term: u64,
        checks_left: u32,
    },
}

impl<A: SimApp> Simulation<A> {
    /// The chaos step's membership change, at its rate.
    pub(super) fn change_membership_random(&mut self) -> Result<(), Failure> {
        let rate = self.cfg.faults.membership_per_mille;
        if rate == 0 || !self.rng.chance(rate) || self.groups.is_empty() {
            return Ok(());
        }
        let g = GroupId(1 + self.rng.below(self.groups.len() as u64));
        let Some(leader) = self.believed_leader(g) else {
            return Ok(());
        };
        let Some(current) = self.nodes[leader]
            .node
            .as_ref()
            .and_then(|n| n.replica(g))
            .map(|r| r.membership().clone())
        else {
            return Ok(());
        };
        // Nodes up that host no replica of the group: where a replica can be added.
        let hosts = &self.groups[&g];
        let free: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !hosts.contains(i) && self.can_call(*i))
            .collect();
        let voters: Vec<NodeId> = current.voters.iter().copied().collect();
        let learners: Vec<NodeId> = current.learners.iter().copied().collect();
        let me = self.nodes[leader].id;
        let room = current.replicas().len() < MAX_REPLICAS;
        let pick = |rng: &mut super::SimRng, v: &[NodeId]| v[rng.below(v.len() as u64) as usize];
        let (change, joining) = match self.rng.below(6) {
            0 | 1 if room && !free.is_empty() => {
                let x = free[self.rng.below(free.len() as u64) as usize];
                let id = self.nodes[x].id;
                let change = if self.rng.chance(700) {
                    MembershipChange::AddVoter(id)
                } else {
                    MembershipChange::AddLearner(id)
                };
                (change, Some(x))
            }
            2 if !learners.is_empty() => (
                MembershipChange::Promote(pick(&mut self.rng, &learners)),
                None,
            ),
            3 if voters.len() > 1 || !learners.is_empty() => {
                let all: Vec<NodeId> = current.replicas().into_iter().collect();
                (MembershipChange::Remove(pick(&mut self.rng, &all)), None)
            }
            4 if !free.is_empty() => {
                let x = free[self.rng.below(free.len() as u64) as usize];
                let old = pick(&mut self.rng, &voters);
                let new = self.nodes[x].id;
                (MembershipChange::Replace { old, new }, Some(x))
            }
            5 if voters.len() > 1 => (MembershipChange::Remove(me), None),
            _ => return Ok(()),
        };
        let Some(node) = self.nodes[leader].node.as_mut() else {
            return Ok(());
        };
        let term = node.replica(g).map_or(0, |r| r.status().term);
        let result = node.change_membership(g, change);
        self.note(format!("{me} changes {g}: {change:?} -> {result:?}"));
        let request = match result {
            Ok(request) => request,
            Err(_) => {
                self.report.changes_refused += 1;
                return Ok(());
            }
        };
        let id = proposal(me, request);
        self.hash.u64(13);
        self.hash.u64(g.0);
        self.hash.u64(id.seq);
        self.report.changes_started += 1;
        self.checker
            .requests
            .took_kind(id, g, Kind::Change)
            .map_err(|detail| self.checker.requests_failure(detail))?;
        self.pending_changes
            .insert(id, (change, joining.map(|x| (g, x))));
        self.touched.push((leader, g));
        if let Some(x) = joining {
            // The joining node's replica, given the leader's membership, so that it takes
            // the leader's appends or snapshot.
            self.joins.insert((x, g), (id, term));
            self.join_replica(x, g, current)?;
        }
        self.drive(leader)
    }

    /// A fault while `node`'s replica of `group` is in a joint configuration (if it still
    /// is): a partition that puts it and the voters only the new configuration has on one
    /// side, everyone else on the other — so that each side holds a majority of one
    /// configuration and only joint quorums keep them from both deciding — or a crash of
    /// it.
    pub(super) fn joint_fault(&mut self, node: usize, group: GroupId) -> Result<(), Failure> {
        if self.phase != super::Phase::Faults {
            // Drawn before the heal: the liveness phase has no faults but the lost nodes
            // (seed 7998 crashed a node for good that the liveness phase counted on).
            return Ok(());
        }
        let Some(m) = self.nodes[node]
            .node
            .as_ref()
            .and_then(|n| n.replica(group))
            .map(|r| r.membership().clone())
            .filter(Membership::is_joint)
        else {
            return Ok(());
        };
        let faults = &self.cfg.faults;
        if faults.partitions && self.blocked.is_empty() && self.rng.chance(700) {
            let side: BTreeSet<usize> = m
                .voters
                .iter()
                .filter(|n| !m.outgoing.contains(n))
                .map(|n| n.0 as usize - 1)
                .chain([node])
                .collect();
            self.partition_epoch += 1;
            self.report.partitions += 1;
            for a in 0..self.nodes.len() {
                for b in 0..self.nodes.len() {
                    if side.contains(&a) != side.contains(&b) {
                        self.blocked.insert((a, b));
                    }
                }
            }
            self.hash.u64(15);
            self.hash.u64(node as u64);
            self.note(format!(
                "partition of {group}'s joint configuration: {side:?} | the rest"
            ));
            let after = self.rng.range(300_000, 3_000_000);
            let epoch = self.partition_epoch;
            self.schedule(after, super::Ev::HealPartition { epoch });
        } else if faults.crashes && self.is_up(node) {
            self.report.crashes += 1;
            self.hash.u64(16);
            self.hash.u64(node as u64);
            self.note(format!(
                "{} crashes in {group}'s joint configuration",
                self.nodes[node].id
            ));
            self.take_down(node);
            let after = self.rng.range(100_000, 3_000_000);
            self.schedule(after, super::Ev::Restart { node });
        }
        Ok(())
    }

    /// The live node that believes it leads `g` in the highest term.
    pub(super) fn believed_leader(&self, g: GroupId) -> Option<usize> {
        self.groups[&g]
            .iter()
            .filter(|&&i| !self.is_paused(i))
            .filter_map(|&i| {
                let sn = &self.nodes[i];
                let (term, leader) = sn.node.as_ref()?.replica(g)?.leadership();
                (leader == Some(sn.id)).then_some((term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// Node `x` starts its replica of `g`, joining the group whose membership is
    /// `membership`, as an application does.
    fn join_replica(
        &mut self,
        x: usize,
        g: GroupId,
        membership: Membership,
    ) -> Result<(), Failure> {
        let sn = &mut self.nodes[x];
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        let Ok(request) = node.join_group(g, membership) else {
            // A removal of the group not yet durable there: the leader retries its appends
            // until the change gives up.
            return Ok(());
        };
        let id = proposal(sn.id, request);
        self.checker
            .requests
            .took(id, g)
            .map_err(|detail| self.checker.requests_failure(detail))?;
        let hosts = self.groups.entry(g).or_default();
        hosts.push(x);
        hosts.sort_unstable();
        self.touched.push((x, g));
        self.note(format!("{} joins {g}", self.nodes[x].id));
        self.drive(x)
    }

    /// Node `i`'s replica of `g` may go (`why`): delete it, as an application would, if
    /// the node is still up in the same life and:
    /// - `Removed`: the replica reported itself removed. Its own membership may still name
    ///   it: one told by a leader of an earlier term that never caught it up
    ///   (`Replica::handle_removed_unmatched`).
    /// - `AbandonedJoin`: it joined for a change that failed or ended indeterminate (its
    ///   proposer crashed). Deleted if still joining and not named by the group's leader
    ///   once that leader has committed an entry of its term, as `MultiRaft::join_group`
    ///   asks of an application; looked at again later while no such leader is known.
    pub(super) fn remove_replica(
        &mut self,
        i: usize,
        g: GroupId,
        incarnation: u64,
        why: Deletion,
    ) -> Result<(), Failure> {
        let sn = &self.nodes[i];
        if sn.incarnation != incarnation {
            return Ok(());
        }
        let me = sn.id;
        let Some(replica) = sn.node.as_ref().and_then(|n| n.replica(g)) else {
            return Ok(());
        };
        let delete = match why {
            Deletion::Removed => replica.is_removed(),
            // The replica of a later join is that one's to judge.
            Deletion::AbandonedJoin { join, .. }
                if !replica.is_joining() || self.joins.get(&(i, g)).map(|j| j.0) != Some(join) =>
            {
                false
            }
            Deletion::AbandonedJoin {
                join,
                term,
                checks_left,
            } => {
                let settled = self.believed_leader(g).and_then(|l| {
                    let leads = self.nodes[l].node.as_ref()?.replica(g)?;
                    let judges = leads.status().term >= term && leads.committed_in_term();
                    judges.then(|| leads.membership().contains(me))
                });
                if settled.is_none() && checks_left > 0 {
                    self.check_abandoned_join(i, g, join, checks_left - 1);
                }
                settled == Some(false)
            }
        };
        if !delete {
            return Ok(());
        }
        // Deleted on the event alone, the replica must be no voter of the group's committed
        // membership (review): its acknowledgements would still count. That is the
        // membership in force at the highest commit index any replica knows. The simulator
        // reads memberships off what replicas apply, and a replica may learn of a removal
        // committed before any applies it (applies go a bounded number of entries per
        // ready; seed 60000775, where it failed a deletion that was right): so a deletion
        // while a voter of the latest applied one is judged once a replica has applied
        // through that commit index (`judge_deletions`). One never reached by the end
        // goes unjudged: applying what is committed needs no quorum, so only a deletion in
        // the run's last moments, or a group with no replica left up, stays so.
        if let Some(m) = self.membership_now(g)
            && (m.voters.contains(&me) || m.outgoing.contains(&me))
        {
            let commit = self.groups[&g]
                .iter()
                .filter_map(|&h| self.nodes[h].node.as_ref()?.group_status(g))
                .map(|s| s.commit)
                .max()
                .unwrap_or(0);
            self.deleted_voters.push(DeletedVoter {
                group: g,
                node: me,
                commit,
                membership: m,
            });
        }
        let Some(node) = self.nodes[i].node.as_mut() else {
            return Ok(());
        };
        let Ok(request) = node.remove_group(g) else {
            return Ok(());
        };
        let id = proposal(me, request);
        self.checker
            .requests
            .took(id, g)
            .map_err(|detail| self.checker.requests_failure(detail))?;
        if let Some(hosts) = self.groups.get_mut(&g) {
            hosts.retain(|h| *h != i);
        }
        self.replicas[i].remove(&g);
        self.joins.remove(&(i, g));
        self.applied_to[i].remove(&g);
        self.restoring.remove(&(i, g));
        self.taken.retain(|(n, group, _)| (*n, *group) != (i, g));
        self.checker.on_replica_removed(i, g);
        let why = match why {
            Deletion::Removed => {
                self.report.replicas_removed += 1;
                ""
            }
            Deletion::AbandonedJoin { .. } => {
                self.report.joins_abandoned += 1;
                " (its join abandoned)"
            }
        };
        self.hash.u64(14);
        self.hash.u64(i as u64);
        self.hash.u64(g.0);
        self.note(format!("{me} deletes its replica of {g}{why}"));
        self.drive(i)
    }

    /// Looks, once a new leader has had time to settle the membership, at node `node`'s
    /// replica of `group`, if it is still the one that joined for change `join`, which
    /// failed or ended indeterminate (`Deletion::AbandonedJoin`).
    pub(super) fn check_abandoned_join(
        &mut self,
        node: usize,
        group: GroupId,
        join: ProposalId,
        checks_left: u32,
    ) {
        let Some(&(last, term)) = self.joins.get(&(node, group)) else {
            return;
        };
        if last != join {
            return;
        }
        let after =
            2 * u64::from(self.cfg.core.election_timeout_max_ticks) * self.nodes[node].tick_us;
        let incarnation = self.nodes[node].incarnation;
        let why = Deletion::AbandonedJoin {
            join,
            term,
            checks_left,
        };
        self.schedule(
            after,
            super::Ev::RemoveReplica {
                node,
                group,
                incarnation,
                why,
            },
        );
    }

    /// Counts the committed membership entries among `entries` of `group` the first time
    /// any replica applies them: joint configurations entered and left, voters promoted;
    /// and the membership in force at the commit index of each replica deleted while a
    /// voter (`judge_deletions`).
    pub(super) fn count_memberships(&mut self, group: GroupId, entries: &[Entry]) {
        for e in entries {
            let Payload::Membership(m) = &e.payload else {
                continue;
            };
            let (counted, previous) = self
                .committed_memberships
                .entry(group)
                .or_insert_with(|| (0, Membership::default()));
            // The entry any replica applies first is committed: from here on it is the
            // group's membership for the liveness phase too.
            if e.index <= *counted {
                continue;
            }
            if m.is_joint() {
                self.report.joint_entered += 1;
                let promoted: BTreeSet<&NodeId> = m
                    .voters
                    .iter()
                    .filter(|n| previous.learners.contains(n))
                    .collect();
                self.report.promotions += promoted.len() as u64;
            } else if previous.is_joint() {
                self.report.joint_left += 1;
            }
            *counted = e.index;
            *previous = (**m).clone();
            for d in &mut self.deleted_voters {
                if d.group == group && e.index <= d.commit {
                    d.membership = (**m).clone();
                }
            }
        }
    }

    /// A replica applied `group` through `applied`: replicas deleted while voters of the
    /// membership then known (`remove_replica`) are judged once it covers their commit
    /// index, by the membership in force there, which must not have them vote.
    pub(super) fn judge_deletions(&mut self, group: GroupId, applied: u64) -> Result<(), Failure> {
        let due = |d: &DeletedVoter| d.group == group && d.commit <= applied;
        if let Some(d) = self.deleted_voters.iter().find(|d| due(d) && d.votes()) {
            return Err(d.failure());
        }
        self.deleted_voters.retain(|d| !due(d));
        Ok(())
    }

    /// A change that ended `CatchUpTimeout { node }` said that `node` stays a learner: the
    /// membership of the leader `at` that said so (the latest in its log) must not make it
    /// a voter. Once the joint configuration that promotes it is in the log, that entry
    /// decides, and the change must not end so.
    pub(super) fn check_catch_up_timeout(
        &self,
        at: usize,
        group: GroupId,
        error: &MembershipChangeError,
    ) -> Result<(), String> {
        let MembershipChangeError::CatchUpTimeout { node } = error else {
            return Ok(());
        };
        let me = self.nodes[at].id;
        let Some(replica) = self.nodes[at].node.as_ref().and_then(|n| n.replica(group)) else {
            return Ok(());
        };
        let m = replica.membership();
        if m.is_voter(*node) {
            return Err(format!(
                "{me} reported that {node} did not catch up in {group} and stays a learner, \
                 but its membership makes it a voter: {m:?}"
            ));
        }
        Ok(())
    }

    /// In the liveness phase, a replica that its recovered group removed is told so and
    /// deleted (`Event::ReplicaRemoved`) within [`REMOVED_TOLD_TIMEOUTS`] election timeouts
    /// of when it is first seen removed: left untold, its node keeps it for good, and a
    /// later `join_group` of that node fails. Judged where the group's leader (of the
    /// highest term) has settled its membership, which leaves out the replica as the
    /// committed one does, and the replica's node is up and not lost. `seen` holds, per
    /// group and host, when. Three kinds are counted once each instead, from the bound on
    /// (`SimReport::removed_untold_joining`, `removed_untold_orphaned`,
    /// `removed_untold_quiesced`): two the library does not tell yet, and a quiet one its
    /// leader's node may still be nudging (docs/design.md §4.7). One of a later term than
    /// the leader's is judged: its leader tells it by the commit index
    /// (`tell_removed_late`); counted while the library did not, 37 of seeds 0–1,999.
    pub(super) fn check_removed_told(
        &mut self,
        recovered: &BTreeSet<GroupId>,
        seen: &mut BTreeMap<(GroupId, usize), RemovedSeen>,
        counted: &mut BTreeSet<(GroupId, usize)>,
    ) -> Result<(), Failure> {
        let (mut joining, mut orphaned, mut quiesced) = (0, 0, 0);
        let slowest_tick_us = self.nodes.iter().map(|n| n.tick_us).max().unwrap_or(1);
        let bound_us = REMOVED_TOLD_TIMEOUTS
            * u64::from(self.cfg.core.election_timeout_max_ticks)
            * slowest_tick_us;
        let mut still = BTreeSet::new();
        for (g, hosts) in &self.groups {
            let (Some(committed), true) = (self.membership_now(*g), recovered.contains(g)) else {
                continue;
            };
            if !self.membership_settled(*g, hosts) {
                continue;
            }
            let leader = hosts
                .iter()
                .filter_map(|i| self.nodes[*i].node.as_ref()?.replica(*g))
                .filter(|r| r.status().role == Role::Leader)
                .max_by_key(|r| r.status().term)
                .map(|r| (r.membership().clone(), r.followers()));
            let Some((leader, followers)) = leader else {
                continue;
            };
            let tracked = |node: NodeId| followers.iter().any(|f| f.node == node);
            for &i in hosts {
                let id = self.nodes[i].id;
                let removed = !committed.contains(id) && !leader.contains(id);
                let hosted = self.nodes[i]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.replica(*g).is_some());
                if !removed || !hosted || self.lost.contains(&i) {
                    continue;
                }
                still.insert((*g, i));
                let now = self.now_us;
                let since = seen.entry((*g, i)).or_insert(RemovedSeen {
                    first: now,
                    clock: now,
                });
                let r = self.nodes[i].node.as_ref().and_then(|n| n.replica(*g));
                // No voter its membership names hosts the group as a member, on a node not
                // lost: it has no one to ask. A removed replica asked cannot relay (it knows
                // no leader; seed 30005147: two removed replicas, each naming only the
                // other), nor can one cut off for good (seed 30004193).
                let hosts_it = |n: &NodeId| {
                    (committed.contains(*n) || leader.contains(*n))
                        && self.nodes.iter().enumerate().any(|(j, h)| {
                            h.id == *n
                                && !self.lost.contains(&j)
                                && h.node.as_ref().is_some_and(|x| x.replica(*g).is_some())
                        })
                };
                let orphan = r.is_some_and(|r| {
                    let m = r.membership();
                    !m.voters
                        .iter()
                        .chain(&m.outgoing)
                        .any(|n| *n != id && hosts_it(n))
                });
                // Quiet and forgotten: it does not tick, so it never asks. One its leader
                // still tracks is the leader's to tell: judged.
                let quiet = r.is_some_and(|r| r.is_quiesced()) && !tracked(id);
                let joins = r.is_some_and(|r| r.is_joining());
                if joins || orphan || quiet {
                    // The bound counts from when it was last of a kind left untold: one
                    // woken from a quiet wait (a proposal forwarded to it) then asks as
                    // any other does. Counted from when it was first seen removed, a
                    // replica quiet past the bound failed the moment it woke (simulator,
                    // seed 12000694).
                    since.clock = now;
                    if now - since.first > bound_us && counted.insert((*g, i)) {
                        *if joins {
                            &mut joining
                        } else if orphan {
                            &mut orphaned
                        } else {
                            &mut quiesced
                        } += 1;
                    }
                    continue;
                }
                if now - since.clock > bound_us {
                    let hosts: Vec<String> = hosts
                        .iter()
                        .filter_map(|h| {
                            let r = self.nodes[*h].node.as_ref()?.replica(*g)?;
                            let s = r.status();
                            Some(format!(
                                "[{} {:?} t{} last {} commit {} leader {:?} {:?}]",
                                self.nodes[*h].id,
                                s.role,
                                s.term,
                                s.last_index,
                                s.commit,
                                s.leader,
                                r.membership()
                            ))
                        })
                        .collect();
                    return Err(Failure {
                        invariant: "a removed replica is told, and deleted",
                        detail: format!(
                            "{id} still hosts {g} {} ms after it was first seen removed ({} ms \
                             after it was last of a kind left untold), past the {} ms bound; \
                             committed membership {committed:?}; its replica joining {}; the \
                             group's replicas: {}",
                            (now - since.first) / 1000,
                            (now - since.clock) / 1000,
                            bound_us / 1000,
                            r.is_some_and(|r| r.is_joining()),
                            hosts.join(" "),
                        ),
                    });
                }
            }
        }
        seen.retain(|k, _| still.contains(k));
        self.report.removed_untold_joining += joining;
        self.report.removed_untold_orphaned += orphaned;
        self.report.removed_untold_quiesced += quiesced;
        Ok(())
    }

    /// In the liveness phase, a membership change under way on a group's leader ends
    /// within `proposal_timeout_ticks` and [`CHANGE_END_SLACK_TIMEOUTS`] election timeouts
    /// of when it was first seen: it completes, or gives up on a replica that makes no
    /// progress (down or cut off for good). The same leader, in the same term, still
    /// changing past that has a change that never ends, and refuses every other change of
    /// the group meanwhile. `seen` holds, per group, the leader, its term and when.
    ///
    /// The phase lasts ten election timeouts, so only seeds with a short
    /// `proposal_timeout_ticks` (`SimConfig::for_seed`) reach that bound; with the default
    /// one the check never fires.
    pub(super) fn check_changes_end(
        &self,
        seen: &mut BTreeMap<GroupId, (usize, u64, u64)>,
    ) -> Result<(), Failure> {
        let core = &self.cfg.core;
        let slowest_tick_us = self.nodes.iter().map(|n| n.tick_us).max().unwrap_or(1);
        let ticks = u64::from(core.proposal_timeout_ticks)
            + CHANGE_END_SLACK_TIMEOUTS * u64::from(core.election_timeout_max_ticks);
        let bound_us = ticks * slowest_tick_us;
        for (g, members) in &self.groups {
            // A change whose configurations have no majority of nodes not lost cannot
            // commit its next entry, whatever the protocol does: not judged.
            let changing = members
                .iter()
                .filter_map(|i| Some((*i, self.nodes[*i].node.as_ref()?.replica(*g)?)))
                .filter(|(_, r)| r.status().role == Role::Leader)
                .max_by_key(|(_, r)| r.status().term)
                .filter(|(_, r)| {
                    r.membership_change_in_progress()
                        && self.majorities_not_lost(r.membership())
                        && self.live_majority(*g, members).is_some()
                })
                .map(|(i, r)| (i, r.status().term));
            let Some((leader, term)) = changing else {
                seen.remove(g);
                continue;
            };
            match seen.get(g) {
                Some(&(i, t, since)) if (i, t) == (leader, term) => {
                    if self.now_us - since > bound_us {
                        return Err(Failure {
                            invariant: "a membership change ends: it completes or gives up",
                            detail: format!(
                                "{} has led {g} in term {term} with a membership change under \
                                 way for {} ms since the heal, past the {} ms bound; \
                                 membership {:?}",
                                self.nodes[leader].id,
                                (self.now_us - since) / 1000,
                                bound_us / 1000,
                                self.membership_now(*g),
                            ),
                        });
                    }
                }
                _ => {
                    seen.insert(*g, (leader, term, self.now_us));
                }
            }
        }
        Ok(())
    }

    /// A change request ended: whether it completed, in a membership that the change
    /// leads to (a change ended with another's outcome would not, review).
    pub(super) fn change_ended(
        &mut self,
        id: ProposalId,
        membership: Option<&Membership>,
    ) -> Result<(), String> {
        let Some((change, join)) = self.pending_changes.remove(&id) else {
            return Ok(());
        };
        if let (None, Some((group, node))) = (membership, join) {
            self.check_abandoned_join(node, group, id, ABANDONED_JOIN_CHECKS);
        }
        match membership {
            Some(m) => {
                self.report.changes_done += 1;
                if !m.contains(id.node) {
                    self.report.leader_removals += 1;
                }
                if !led_to(change, m) {
                    return Err(format!(
                        "{} reported change {} ({change:?}) ended in {m:?}, which it does not lead to",
                        id.node, id.seq
                    ));
                }
            }
            None => self.report.changes_failed += 1,
        }
        Ok(())
    }
}

/// Whether membership `m` is one that `change` leads to.
fn led_to(change: MembershipChange, m: &Membership) -> bool {
    match change {
        MembershipChange::AddLearner(n) => m.learners.contains(&n),
        MembershipChange::AddVoter(n) | MembershipChange::Promote(n) => m.voters.contains(&n),
        MembershipChange::Remove(n) => !m.contains(n),
        MembershipChange::Replace { old, new } => m.voters.contains(&new) && !m.contains(old),
        // A kind this simulator does not make.
        _ => true,
    }
}

/// A replica deleted while a voter of its group's membership as last applied anywhere, to
/// be judged by the membership in force at the highest commit index known then
/// (`Simulation::judge_deletions`).
#[derive(Debug)]
pub(super) struct DeletedVoter {
    pub(super) group: GroupId,
    pub(super) node: NodeId,
    /// The highest commit index any replica of the group knew at the deletion.
    pub(super) commit: u64,
    /// The membership in force at `commit`, as far as replicas have applied so far.
    pub(super) membership: Membership,
}

impl DeletedVoter {
    fn votes(&self) -> bool {
        let m = &self.membership;
        m.voters.contains(&self.node) || m.outgoing.contains(&self.node)
    }

    /// The failure: deleted while a voter of the membership committed at the time.
    fn failure(&self) -> Failure {
        Failure {
            invariant: "a replica deleted is no voter",
            detail: format!(
                "{} reported its replica of {} removed, a voter of {:?}, the membership in \
                 force at the commit index {} then known",
                self.node, self.group, self.membership, self.commit
            ),
        }
    }
}
