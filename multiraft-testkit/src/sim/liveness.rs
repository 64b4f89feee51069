//! The liveness phase: every fault heals, then every group must elect a leader that commits
//! a new entry.

use std::collections::{BTreeMap, BTreeSet};

use multiraft_core::group::{Replica, Role};
use multiraft_core::{GroupId, Membership, NodeId};

use super::app::SimApp;
use super::changes::RemovedSeen;
use super::invariants::Failure;
use super::{Ev, Phase, Simulation};

/// The late node, back ([`Simulation::restart_late`]) and not yet caught up.
#[derive(Clone, Copy)]
struct LateReturn {
    node: usize,
    at_us: u64,
    /// The hot group's commit index when it came back.
    target: u64,
    /// When its replica of the hot group first held a partly received snapshot.
    receiving_since_us: Option<u64>,
}

/// Election timeouts within which a recovered group's live members must hold what their
/// leader had committed ([`Simulation::members_catch_up`]): room for a snapshot that waits
/// for a send or receive slot behind other groups' transfers.
const CATCH_UP_TIMEOUTS: u64 = 5;

pub(super) struct Liveness {
    deadline_us: u64,
    healed_us: u64,
    /// Per group: the highest commit index at healing.
    commit_at_heal: BTreeMap<GroupId, u64>,
    pub(super) done: BTreeSet<GroupId>,
    last_marker_us: BTreeMap<GroupId, u64>,
    /// Per recovered group: its term once every election timer started before the heal has
    /// run out. With every fault healed (the lost nodes stay lost), no group elects again
    /// after that: a quiet network costs no election.
    stable_terms: BTreeMap<GroupId, u64>,
    /// Per recovered group: (when, its leader's commit index then), the commit index every
    /// follower holding that entry must know an election timeout later.
    commit_samples: BTreeMap<GroupId, (u64, u64)>,
    /// Per recovered group: (when, the index its voters' majority held durably then, as
    /// its leader's log has it), which the leader must have committed an election timeout
    /// later.
    held_samples: BTreeMap<GroupId, (u64, u64)>,
    /// Per recovered group: (when, its leader's commit index then), which every live
    /// member must hold [`CATCH_UP_TIMEOUTS`] election timeouts later.
    catch_up_samples: BTreeMap<GroupId, (u64, u64)>,
    /// Proposals owed to the hot group ([`SimConfig::hot_group_per_sec`]), in millionths.
    ///
    /// [`SimConfig::hot_group_per_sec`]: super::SimConfig::hot_group_per_sec
    hot_credit: u64,
    /// The node kept down at the start of the phase, while it is ([`Simulation::late_node`]).
    late: Option<usize>,
    /// The late node once restarted, until it has caught up ([`Simulation::late_caught_up`]).
    returned: Option<LateReturn>,
    /// When recovered groups' terms are fixed: two election timeouts after the heal, or
    /// after the late node's restart.
    stable_from_us: u64,
    /// Per group whose leader has a membership change under way: that leader, its term,
    /// and when the change was first seen ([`Simulation::check_changes_end`]).
    pub(super) changes_seen: BTreeMap<GroupId, (usize, u64, u64)>,
    /// Per group and host: when the replica there was first seen removed and not yet
    /// deleted, and where its bound counts from ([`Simulation::check_removed_told`]).
    removed_seen: BTreeMap<(GroupId, usize), RemovedSeen>,
    /// The replicas of `removed_seen` counted as of a kind left untold, once each.
    removed_counted: BTreeSet<(GroupId, usize)>,
}

impl<A: SimApp> Simulation<A> {
    pub(super) fn heal(&mut self) -> Result<(), Failure> {
        self.phase = Phase::Liveness;
        self.blocked.clear();
        // Partitions that were to heal later find a newer epoch and leave the links alone.
        self.partition_epoch += 1;
        self.hash.u64(10);
        self.note("all faults heal; liveness phase".to_string());
        self.resume_all()?;
        let lost = self.choose_lost_nodes();
        let late = self.late_node(&lost);
        for i in 0..self.nodes.len() {
            if !self.is_up(i) && !lost.contains(&i) && Some(i) != late {
                self.restart(i)?;
            }
        }
        for &i in &lost {
            if self.rng.chance(500) {
                self.note(format!("{} stays down for good", self.nodes[i].id));
                if self.is_up(i) {
                    self.take_down(i);
                }
            } else {
                self.note(format!("{} stays cut off for good", self.nodes[i].id));
                if !self.is_up(i) {
                    self.restart(i)?;
                }
                for j in 0..self.nodes.len() {
                    if j != i {
                        self.blocked.insert((i, j));
                        self.blocked.insert((j, i));
                    }
                }
            }
        }
        self.report.lost_nodes = lost.len() as u64;
        self.lost = lost;
        let commit_at_heal = self
            .groups
            .iter()
            .map(|(g, members)| (*g, self.highest_commit(*g, members)))
            .collect();
        let timeout = u64::from(self.cfg.core.election_timeout_max_ticks) * self.tick_us;
        let window = 10 * timeout;
        self.liveness = Some(Liveness {
            deadline_us: self.now_us + window,
            healed_us: self.now_us,
            commit_at_heal,
            done: BTreeSet::new(),
            last_marker_us: BTreeMap::new(),
            stable_terms: BTreeMap::new(),
            commit_samples: BTreeMap::new(),
            catch_up_samples: BTreeMap::new(),
            held_samples: BTreeMap::new(),
            hot_credit: 0,
            late,
            stable_from_us: self.now_us + 2 * timeout,
            returned: None,
            changes_seen: BTreeMap::new(),
            removed_seen: BTreeMap::new(),
            removed_counted: BTreeSet::new(),
        });
        self.schedule(self.tick_us, Ev::Probe);
        Ok(())
    }

    /// With a hot group ([`SimConfig::hot_group_per_sec`]), crashes in the faults and no
    /// node lost: one of its members, crashed at the heal (if up) and restarted once the
    /// group has committed three snapshots' worth of entries (or two election timeouts have
    /// passed), so that it comes back behind a log the group keeps writing, usually past
    /// what its leader still holds ([`Simulation::restart_late`]).
    ///
    /// [`SimConfig::hot_group_per_sec`]: super::SimConfig::hot_group_per_sec
    fn late_node(&mut self, lost: &BTreeSet<usize>) -> Option<usize> {
        let hosts = self.groups.get(&HOT_GROUP)?;
        // Its outage is a crash: only where crashes are in the seed's faults.
        if self.cfg.hot_group_per_sec == 0 || !self.cfg.faults.crashes || !lost.is_empty() {
            return None;
        }
        // A member of its committed membership: one removed from it has nothing to catch
        // up with.
        let members = self.live_members(HOT_GROUP, hosts);
        if members.is_empty() {
            return None;
        }
        let i = members[self.rng.below(members.len() as u64) as usize];
        self.note(format!(
            "{} stays down until {HOT_GROUP} has written three snapshots' worth",
            self.nodes[i].id
        ));
        if self.is_up(i) {
            self.take_down(i);
        }
        Some(i)
    }

    /// Restarts the late node once its group has committed three snapshots' worth of
    /// entries since the heal, or two election timeouts have passed. Recovered groups'
    /// terms are fixed two election timeouts after that: an election its return causes is
    /// no fault.
    fn restart_late(&mut self, l: &mut Liveness, timeout: u64) -> Result<(), Failure> {
        let Some(i) = l.late else {
            return Ok(());
        };
        let hot = HOT_GROUP;
        let c = &self.cfg.core;
        let due = 3 * (c.snapshot_entries + c.compaction_lag_entries + 1);
        let commit = self.highest_commit(hot, &self.groups[&hot]);
        if commit < l.commit_at_heal[&hot] + due && self.now_us < l.healed_us + 2 * timeout {
            return Ok(());
        }
        l.late = None;
        l.returned = Some(LateReturn {
            node: i,
            at_us: self.now_us,
            target: commit,
            receiving_since_us: None,
        });
        l.stable_from_us = self.now_us + 2 * timeout;
        self.note(format!(
            "{} restarts late; {hot} committed {} entries since the heal",
            self.nodes[i].id,
            commit.saturating_sub(l.commit_at_heal[&hot])
        ));
        self.restart(i)
    }

    /// The nodes that stay crashed or cut off through the liveness phase: `lost_nodes` of
    /// them, drawn from the seed, never a majority.
    fn choose_lost_nodes(&mut self) -> BTreeSet<usize> {
        let n = self.nodes.len();
        let count = self.cfg.faults.lost_nodes.min(n.saturating_sub(1) / 2);
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            order.swap(k, j);
        }
        let lost: BTreeSet<usize> = order.into_iter().take(count).collect();
        for &i in &lost {
            self.hash.u64(11);
            self.hash.u64(i as u64);
        }
        lost
    }

    /// The committed membership of `group` (the latest membership entry any replica
    /// applied, else the one it was created with): who must elect and commit. A replica's
    /// own view may be stale (a removed replica that never learned it) or not yet
    /// committed.
    pub(super) fn membership_now(&self, group: GroupId) -> Option<Membership> {
        self.committed_memberships
            .get(&group)
            .map(|(_, m)| m.clone())
    }

    /// The hosts of `group` that are members of its current membership and not lost.
    fn live_members(&self, group: GroupId, hosts: &[usize]) -> Vec<usize> {
        let Some(m) = self.membership_now(group) else {
            return Vec::new();
        };
        hosts
            .iter()
            .copied()
            .filter(|i| !self.lost.contains(i) && m.contains(self.nodes[*i].id))
            .collect()
    }

    /// The replicas of `group` on its live members ([`Self::live_members`]) that are
    /// running, with their node's id.
    fn live_replicas(&self, group: GroupId, hosts: &[usize]) -> Vec<(NodeId, &Replica)> {
        self.live_members(group, hosts)
            .into_iter()
            .filter_map(|i| {
                Some((
                    self.nodes[i].id,
                    self.nodes[i].node.as_ref()?.replica(group)?,
                ))
            })
            .collect()
    }

    /// The highest commit index of `group` among its hosts that are running and not lost.
    fn highest_commit(&self, group: GroupId, hosts: &[usize]) -> u64 {
        hosts
            .iter()
            .filter(|i| !self.lost.contains(i))
            .filter_map(|i| self.nodes[*i].node.as_ref()?.group_status(group))
            .map(|s| s.commit)
            .max()
            .unwrap_or(0)
    }

    /// The highest term of `group` among its members that are not lost (replicas removed
    /// from it do not count: they may not know it, and campaign in vain).
    fn live_max_term(&self, group: GroupId, hosts: &[usize]) -> u64 {
        self.live_members(group, hosts)
            .iter()
            .filter_map(|i| self.nodes[*i].node.as_ref()?.group_status(group))
            .map(|s| s.term)
            .max()
            .unwrap_or(0)
    }

    /// Whether `group`'s leader (of the highest term among its live members) is a voter of
    /// the membership it holds, that membership is not joint, and no change requested of
    /// it is under way. Until then a membership change asked for before the heal may still
    /// move leadership on purpose: a leader that removed itself hands over once the change
    /// commits (seed 7000437: a leader replacing itself waited 5 s, past the heal, for its
    /// successor to catch up as a learner before the joint configuration began).
    pub(super) fn membership_settled(&self, group: GroupId, hosts: &[usize]) -> bool {
        let term = self.live_max_term(group, hosts);
        self.live_members(group, hosts).iter().any(|i| {
            self.nodes[*i]
                .node
                .as_ref()
                .and_then(|n| n.replica(group))
                .is_some_and(|r| {
                    let (m, s) = (r.membership(), r.status());
                    s.role == Role::Leader
                        && s.term == term
                        && !m.is_joint()
                        && !r.membership_change_in_progress()
                        && m.voters.contains(&self.nodes[*i].id)
                })
        })
    }

    /// The members of `group` that are not lost, if the voters among them are a majority
    /// of its voters (of both configurations, in a joint one) of its committed membership,
    /// and some replica that is not lost can still win an election: it takes part in
    /// elections, and in each configuration of its latest membership (committed or not:
    /// it counts votes by it, dissertation §4.1) the voters not lost whose logs are no
    /// more up to date than its own are a majority. With no leader, no log changes, so a
    /// group where no replica can win stays without one whatever the protocol does
    /// (simulator, seed 1484: the freshest log was a learner's, the joint configuration of
    /// the only candidate needed its vote, and the third voter was lost).
    pub(super) fn live_majority(&self, group: GroupId, hosts: &[usize]) -> Option<Vec<usize>> {
        let committed = self.membership_now(group)?;
        if !self.majorities_not_lost(&committed) {
            return None;
        }
        let replica = |node: NodeId| {
            let i = node.0 as usize - 1;
            if self.lost.contains(&i) {
                return None;
            }
            self.nodes.get(i)?.node.as_ref()?.replica(group)
        };
        let log_of = |r: &Replica| {
            let last = r.status().last_index;
            (r.term_at(last), last)
        };
        let can_win = |node: NodeId| {
            let Some(r) = replica(node).filter(|r| r.status().role != Role::Learner) else {
                return false;
            };
            let own = log_of(r);
            let latest = r.membership();
            let m = if latest.is_voter(node) {
                latest
            } else {
                &committed
            };
            let majority = |voters: &BTreeSet<NodeId>| {
                let granting = voters
                    .iter()
                    .filter(|v| replica(**v).is_some_and(|vr| log_of(vr) <= own))
                    .count();
                granting * 2 > voters.len()
            };
            majority(&m.voters) && (!m.is_joint() || majority(&m.outgoing))
        };
        if !hosts.iter().any(|i| can_win(self.nodes[*i].id)) {
            return None;
        }
        Some(self.live_members(group, hosts))
    }

    /// Whether each configuration of `m` has a majority of its voters on nodes not lost.
    pub(super) fn majorities_not_lost(&self, m: &Membership) -> bool {
        let majority = |voters: &BTreeSet<NodeId>| {
            let kept = voters
                .iter()
                .filter(|n| !self.lost.contains(&(n.0 as usize - 1)))
                .count();
            kept * 2 > voters.len()
        };
        majority(&m.voters) && (!m.is_joint() || majority(&m.outgoing))
    }

    pub(super) fn probe(&mut self) -> Result<(), Failure> {
        let Some(mut l) = self.liveness.take() else {
            return Ok(());
        };
        let timeout = u64::from(self.cfg.core.election_timeout_max_ticks) * self.tick_us;
        let mut markers = Vec::new();
        for (g, members) in &self.groups {
            if let Some(&term) = l.stable_terms.get(g) {
                let now = self.live_max_term(*g, members);
                if now > term {
                    let detail = format!(
                        "{g} elected again in term {now} after recovering in term {term}, with \
                         every fault healed"
                    );
                    self.liveness = Some(l);
                    return Err(Failure {
                        invariant: "stable leadership once healed: a quiet network costs no election",
                        detail,
                    });
                }
                let checked = self
                    .commit_told(&mut l, *g, members, timeout)
                    .and_then(|()| self.held_committed(&mut l, *g, members, timeout))
                    .and_then(|()| self.members_catch_up(&mut l, *g, members, timeout));
                if let Err(f) = checked {
                    self.liveness = Some(l);
                    return Err(f);
                }
                continue;
            }
            if l.done.contains(g) {
                continue;
            }
            let Some(live) = self.live_majority(*g, members) else {
                if l.late.is_some() {
                    // The late node, down for now, may be the vote it lacks: judged once
                    // the node is back.
                    continue;
                }
                if self.lost.is_empty() {
                    // Every node is up, so every voter's replica should be there to campaign
                    // and vote: a group that still cannot elect anyone lost a replica, or
                    // its role, to a bug (review: this was reported, not failed).
                    let detail =
                        format!("{g} has no replica that can win an election, with no node lost");
                    self.liveness = Some(l);
                    return Err(Failure {
                        invariant: "a group can elect a leader while no node is lost",
                        detail,
                    });
                }
                // No live majority: nothing can commit; reported, not failed.
                l.done.insert(*g);
                self.report.groups_without_majority += 1;
                continue;
            };
            let statuses: Vec<_> = live
                .iter()
                .filter_map(|i| self.nodes[*i].node.as_ref()?.group_status(*g))
                .collect();
            let max_term = statuses.iter().map(|s| s.term).max().unwrap_or(0);
            let ok = statuses.iter().any(|s| {
                s.role == Role::Leader && s.term == max_term && s.commit > l.commit_at_heal[g]
            });
            if ok {
                l.done.insert(*g);
            } else if self.now_us - l.last_marker_us.get(g).copied().unwrap_or(0) >= timeout {
                l.last_marker_us.insert(*g, self.now_us);
                markers.push(*g);
            }
        }
        if let Err(f) = self
            .restart_late(&mut l, timeout)
            .and_then(|()| self.late_caught_up(&mut l, timeout))
            .and_then(|()| self.check_changes_end(&mut l.changes_seen))
            .and_then(|()| {
                self.check_removed_told(&l.done, &mut l.removed_seen, &mut l.removed_counted)
            })
        {
            self.liveness = Some(l);
            return Err(f);
        }
        // Once every election timer started before healing has run out (two election
        // timeouts: a follower cut off until the heal may still time out before the leader's
        // first heartbeat reaches it, which is no fault), a recovered group's term is fixed
        // — once its membership has settled too (seed 2931: a leader that removed itself
        // before the heal handed over 3.5 s after it, once the new voter had caught up).
        // With a late node, the two election timeouts count from its restart.
        if self.now_us >= l.stable_from_us {
            for (g, members) in &self.groups {
                if l.done.contains(g)
                    && !l.stable_terms.contains_key(g)
                    && self.live_majority(*g, members).is_some()
                    && self.membership_settled(*g, members)
                {
                    l.stable_terms.insert(*g, self.live_max_term(*g, members));
                }
            }
        }
        let all_done = l.done.len() == self.groups.len();
        if all_done && self.report.liveness_us == 0 {
            self.report.liveness_us = (self.now_us - l.healed_us).max(1);
        }
        let past_deadline = self.now_us >= l.deadline_us;
        let hot_owed = self.hot_owed(&mut l);
        self.liveness = Some(l);
        if past_deadline && !all_done {
            return Err(self.liveness_failure());
        }
        for g in markers {
            self.propose_to(g)?;
        }
        for _ in 0..hot_owed {
            self.propose_to(HOT_GROUP)?;
        }
        // Probing goes on to the end of the run: recovered groups must stay stable.
        self.schedule(self.tick_us, Ev::Probe);
        Ok(())
    }

    /// A follower of a recovered group learns each commit index of its leader within
    /// `window_us` (an election timeout), once it holds that entry: by the next append with
    /// entries, the next tick's notice, a heartbeat or the quiesce notice (docs/design.md
    /// §4.2). Checked against samples of the leader's commit index taken `window_us` apart.
    fn commit_told(
        &self,
        l: &mut Liveness,
        group: GroupId,
        hosts: &[usize],
        window_us: u64,
    ) -> Result<(), Failure> {
        let term = l.stable_terms[&group];
        let replicas = self.live_replicas(group, hosts);
        let Some((leader, leading)) = stable_leader(&replicas, term) else {
            return Ok(());
        };
        let status = leading.status();
        let sample = l.commit_samples.get(&group).copied();
        if let Some((at, commit)) = sample {
            if self.now_us - at < window_us {
                return Ok(());
            }
            // Holding the entry: its index and its term. A follower whose log runs past
            // `commit` with entries of an earlier leader holds another entry there, and
            // learns the commit index only once its log is repaired (seed 7016042: a
            // snapshot waiting for the node's one receive slot). When the leader's log no
            // longer holds the entry (compacted), its term is unknown: a follower the
            // leader is to send a snapshot is not taken to hold it (seed 14018155: a
            // deposed leader's own entry there, a snapshot waiting for the leader's one
            // send slot).
            let sending = |id: NodeId| {
                leading
                    .followers()
                    .iter()
                    .any(|f| f.node == id && f.snapshot)
            };
            let statuses = replicas.iter().map(|(id, r)| (*id, r.status(), *r));
            let untold = statuses.into_iter().find(|(id, s, r)| {
                s.role != Role::Leader
                    && s.term == term
                    && s.leader == Some(leader)
                    && s.last_index >= commit
                    && s.commit < commit
                    && match leading.term_at(commit) {
                        Some(t) => r.term_at(commit) == Some(t),
                        None => !sending(*id),
                    }
            });
            if let Some((id, s, _)) = untold {
                return Err(Failure {
                    invariant: "a follower learns its leader's commit index within an election timeout",
                    detail: format!(
                        "{group}: {id} holds entry {commit}, committed by its leader {leader} \
                         {} ms ago, and knows commit index {} only",
                        (self.now_us - at) / 1000,
                        s.commit
                    ),
                });
            }
        }
        l.commit_samples.insert(group, (self.now_us, status.commit));
        Ok(())
    }

    /// A recovered group's live members, voters and learners alike, know committed within
    /// [`CATCH_UP_TIMEOUTS`] election timeouts (`window_us` each) what their leader had
    /// committed: the leader sends every one of them entries or a snapshot until it does.
    /// Judged by the member's commit index, not its log's length, which the entries of a
    /// deposed leader can make long enough.
    /// `commit_told` judges only followers that already hold an entry; a follower the
    /// leader stopped sending to (a probe never resumed, a send slot never given back)
    /// fell behind for good while the rest of the group went on (review). The node kept
    /// down late is judged by its own check (`late_caught_up`).
    fn members_catch_up(
        &self,
        l: &mut Liveness,
        group: GroupId,
        hosts: &[usize],
        window_us: u64,
    ) -> Result<(), Failure> {
        let replicas = self.live_replicas(group, hosts);
        let Some((leader, leading)) = stable_leader(&replicas, l.stable_terms[&group]) else {
            return Ok(());
        };
        if let Some((at, commit)) = l.catch_up_samples.get(&group).copied() {
            if self.now_us - at < CATCH_UP_TIMEOUTS * window_us {
                return Ok(());
            }
            let late = |id: NodeId| {
                let i = id.0 as usize - 1;
                l.late == Some(i) || l.returned.as_ref().is_some_and(|r| r.node == i)
            };
            let behind = replicas.iter().find(|(id, r)| {
                *id != leader
                    && leading.membership().contains(*id)
                    && !late(*id)
                    && r.status().commit < commit
            });
            if let Some((id, r)) = behind {
                return Err(Failure {
                    invariant: "a live member catches up with its leader within a few election timeouts",
                    detail: format!(
                        "{group}: {id} knows commit index {} only, {} ms after its leader \
                         {leader} had committed {commit}",
                        r.status().commit,
                        (self.now_us - at) / 1000,
                    ),
                });
            }
        }
        l.catch_up_samples
            .insert(group, (self.now_us, leading.status().commit));
        Ok(())
    }

    /// A recovered group's leader commits, within `window_us` (an election timeout), what
    /// a majority of its voters held durably: each acknowledgement that moves a follower's
    /// match commits on its own, without waiting for a later entry of the leader's. Checked
    /// against samples taken `window_us` apart of the highest index a majority holds
    /// durably and agrees on with the leader (by the term of the entry: log matching, Raft
    /// §5.3).
    fn held_committed(
        &self,
        l: &mut Liveness,
        group: GroupId,
        hosts: &[usize],
        window_us: u64,
    ) -> Result<(), Failure> {
        let term = l.stable_terms[&group];
        let replicas = self.live_replicas(group, hosts);
        let Some((leader, log)) = stable_leader(&replicas, term) else {
            return Ok(());
        };
        let Some(membership) = self.membership_now(group) else {
            return Ok(());
        };
        let status = log.status();
        if let Some((at, held)) = l.held_samples.get(&group).copied() {
            if self.now_us - at < window_us {
                return Ok(());
            }
            if status.commit < held {
                return Err(Failure {
                    invariant: "a leader commits what a majority holds durably within an election timeout",
                    detail: format!(
                        "{group}: a majority held entry {held} durably {} ms ago, and its \
                         leader {leader} has committed {} only",
                        (self.now_us - at) / 1000,
                        status.commit
                    ),
                });
            }
        }
        // What each live voter holds durably of the leader's log; below the commit index
        // it does not matter.
        let held_by = |id: NodeId| -> u64 {
            replicas
                .iter()
                .find(|(n, r)| *n == id && r.status().term == term)
                .map_or(0, |(_, r)| {
                    agreed(r, log, r.status().persisted, status.commit)
                })
        };
        let held = membership.committed_index(held_by).min(status.last_index);
        l.held_samples.insert(group, (self.now_us, held));
        Ok(())
    }

    /// The hot group's proposals owed since the last probe ([`SimConfig::hot_group_per_sec`]).
    ///
    /// [`SimConfig::hot_group_per_sec`]: super::SimConfig::hot_group_per_sec
    fn hot_owed(&self, l: &mut Liveness) -> u64 {
        let rate = self.cfg.hot_group_per_sec;
        if rate == 0 || !self.groups.contains_key(&HOT_GROUP) {
            return 0;
        }
        l.hot_credit += rate * self.tick_us;
        let owed = l.hot_credit / 1_000_000;
        l.hot_credit %= 1_000_000;
        owed
    }

    /// The late node, back behind a group that keeps writing, commits what the group had
    /// committed at its return within [`LATE_CATCH_UP_TIMEOUTS`] election timeouts of its
    /// first chunk of a snapshot of it: the snapshots its leader takes meanwhile must not
    /// keep that transfer from ending (docs/design.md §4.6). The time before, waiting for
    /// one of the node's receive slots behind other groups' transfers, does not count: with
    /// one slot and dozens of groups behind, that wait alone outlasts the liveness phase
    /// (far seed 20005153).
    fn late_caught_up(&mut self, l: &mut Liveness, timeout: u64) -> Result<(), Failure> {
        let Some(back) = l.returned.as_mut() else {
            return Ok(());
        };
        let hot = HOT_GROUP;
        let id = self.nodes[back.node].id;
        let replica = self.nodes[back.node]
            .node
            .as_ref()
            .and_then(|n| n.replica(hot));
        let commit = replica.map_or(0, |r| r.status().commit);
        // Removed from the group meanwhile (a change taken before the heal): nothing to
        // catch up with.
        let member = self.membership_now(hot).is_some_and(|m| m.contains(id));
        if !member {
            l.returned = None;
            return Ok(());
        }
        if commit >= back.target {
            self.report.late_catch_up_us = (self.now_us - back.at_us).max(1);
            l.returned = None;
            return Ok(());
        }
        if back.receiving_since_us.is_none() && replica.is_some_and(|r| r.is_receiving_snapshot()) {
            back.receiving_since_us = Some(self.now_us);
        }
        let Some(since) = back.receiving_since_us else {
            return Ok(());
        };
        if self.now_us - since >= LATE_CATCH_UP_TIMEOUTS * timeout {
            return Err(Failure {
                invariant: "a node back behind a group that keeps writing catches up",
                detail: format!(
                    "{id} returned {} ms ago, when {hot} had committed entry {}; it began \
                     receiving a snapshot of it {} ms ago and has committed {commit} only \
                     ({:?})",
                    (self.now_us - back.at_us) / 1000,
                    back.target,
                    (self.now_us - since) / 1000,
                    replica.map(|r| r.status()),
                ),
            });
        }
        Ok(())
    }

    /// The run ends with the late node not caught up: counted, not failed. It is
    /// judged from its first chunk of a snapshot ([`Simulation::late_caught_up`]), and one
    /// that began receiving late in the phase, or waited all of it for a receive slot
    /// behind other groups' transfers, has had too little time to judge.
    pub(super) fn late_at_end(&mut self) {
        if self.liveness.as_ref().is_some_and(|l| l.returned.is_some()) {
            self.report.late_behind_at_end = 1;
        }
    }

    pub(super) fn liveness_failure(&self) -> Failure {
        let l = self.liveness.as_ref().expect("liveness phase");
        let mut detail = format!(
            "{} of {} groups have no leader that committed a new entry {} ms after healing:",
            self.groups.len() - l.done.len(),
            self.groups.len(),
            (self.now_us - l.healed_us) / 1000
        );
        for (g, members) in self
            .groups
            .iter()
            .filter(|(g, _)| !l.done.contains(g))
            .take(3)
        {
            detail.push_str(&format!(
                " {g} (commit at heal {}, membership {:?}):",
                l.commit_at_heal[g],
                self.membership_now(*g)
            ));
            for i in members {
                if let Some(r) = self.nodes[*i].node.as_ref().and_then(|n| n.replica(*g)) {
                    let s = r.status();
                    let m = r.membership();
                    detail.push_str(&format!(
                        " [{} {:?} t{} last {} commit {} persisted {} applied {} leader {:?} voters {:?} outgoing {:?}]",
                        self.nodes[*i].id,
                        s.role,
                        s.term,
                        s.last_index,
                        s.commit,
                        s.persisted,
                        s.applied,
                        s.leader,
                        m.voters,
                        m.outgoing,
                    ));
                }
            }
        }
        Failure {
            invariant: "liveness: a leader commits a new entry within 10 election timeouts of healing",
            detail,
        }
    }
}

/// The highest index at or below `durable` (and above `floor`) where `replica`'s log holds
/// the same entry as `leader`'s (the same term: log matching, Raft §5.3); `floor` when
/// there is none.
fn agreed(replica: &Replica, leader: &Replica, durable: u64, floor: u64) -> u64 {
    (floor + 1..=durable)
        .rev()
        .find(|&i| {
            replica
                .term_at(i)
                .is_some_and(|t| leader.term_at(i) == Some(t))
        })
        .unwrap_or(floor)
}

/// How many election timeouts the late node has to catch up with its group once it
/// receives a snapshot of it ([`Simulation::late_caught_up`]).
const LATE_CATCH_UP_TIMEOUTS: u64 = 5;

/// The hot group ([`SimConfig::hot_group_per_sec`](super::SimConfig::hot_group_per_sec)).
const HOT_GROUP: GroupId = GroupId(1);

/// The leader of `term` among `replicas` (a recovered group's live ones), if it is there.
fn stable_leader<'a>(
    replicas: &[(NodeId, &'a Replica)],
    term: u64,
) -> Option<(NodeId, &'a Replica)> {
    replicas
        .iter()
        .find(|(_, r)| {
            let s = r.status();
            s.role == Role::Leader && s.term == term
        })
        .copied()
}
