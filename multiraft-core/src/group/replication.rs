//! Log replication (Raft §5.3 and §5.4): the follower side (append and heartbeat handling,
//! the consistency check, commits learned from the leader) and the leader side
//! (acknowledgements, commit by quorum, sending appends and heartbeats under flow control),
//! plus `on_persisted`, the storage acknowledgement that lets a leader count its own entries.
//!
//! The leader's record of each follower is in `progress.rs`, the log itself in `log.rs`.

use crate::entries::Entries;
use crate::entry::{Entry, Payload};
use crate::ids::NodeId;
use crate::message::MessageBody;

use super::progress::ProgressState;
use super::{LeaderSaid, Replica, Role, VoteHold};

impl Replica {
    // ----- replication: follower side ----------------------------------------------------

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Entries,
        commit: u64,
    ) {
        // An append that brings nothing new from a leader that said the group went quiet
        // left before that notice (a woken leader appends new entries): it is answered,
        // but, like such a heartbeat, it does not restart a timer the leader no longer
        // feeds. Taken as news, it let this follower, its timer running again, stop
        // refusing candidates once its holding back ran out, while the quiesced leader's
        // lease still counted it (review).
        let quiet = self.leader_said == LeaderSaid::Quiet && self.leader == Some(from);
        let old_committed = self.log.committed;
        self.follow(from);
        if prev_index < self.log.committed {
            // Already committed here: the leader's entries up to `committed` match ours.
            let index = self.log.committed;
            if self.is_joining() && index >= commit {
                self.joined();
            }
            self.stay_quiet(quiet && commit <= old_committed);
            return self.send_append_response(from, true, index, 0, 0);
        }
        if !self.log.matches(prev_index, prev_term) {
            let (hint_index, hint_term) = self.log.conflict_hint(prev_index, prev_term);
            return self.send_append_response(from, false, prev_index, hint_index, hint_term);
        }
        // Memberships among the entries take effect once appended (dissertation §4.1).
        // Collected first: rare, and no allocation when there are none.
        let configs: Vec<Entry> = entries
            .iter()
            .filter(|e| matches!(e.payload, Payload::Membership(_)))
            .cloned()
            .collect();
        let old_last = self.log.last_index();
        let room = self.first_log_room();
        let appended = self.log.append_from_leader(prev_index, entries, room);
        if let Some(at) = appended.truncated_at {
            self.strict_check(
                at > self.log.committed,
                at,
                "truncated a committed entry (committed entries never change)",
            );
            self.truncated_configs(at);
            self.drop_acks_from(at);
        }
        if !configs.is_empty() {
            let from = appended.truncated_at.unwrap_or(old_last + 1);
            self.appended_configs(configs.iter().filter(|e| e.index >= from));
        }
        self.commit_to(commit.min(appended.last_new));
        // Through `last_new`, not the last index: entries past it may be another term's.
        if self.is_joining() && appended.last_new >= commit {
            self.joined();
        }
        let stale = appended.truncated_at.is_none()
            && appended.last_new <= old_last
            && commit <= old_committed;
        self.stay_quiet(quiet && stale);
        self.send_append_response(from, true, appended.last_new, 0, 0);
    }

    /// Keeps what the leader said (the group went quiet) across a message that left before
    /// it (`handle_append`, `handle_install_snapshot`): `follow` cleared it.
    pub(super) fn stay_quiet(&mut self, stale: bool) {
        if stale {
            self.leader_said = LeaderSaid::Quiet;
        }
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: u64, round: u64) {
        self.follow(from);
        // The leader caps `commit` at what it knows we hold, so this never commits an entry
        // of ours that differs from the leader's.
        let last = self.log.last_index();
        self.commit_to(commit.min(last));
        if commit > last {
            // The leader takes us to hold entries we lack (`MessageBody::LogLost`). Said
            // here, since a leader with nothing new to send never learns it from a refused
            // append; and no refused append can say it, as one refused at the match may be
            // a late answer to an append sent before the match was known (review).
            let last_term = self.log.term(last).unwrap_or(0);
            let body = MessageBody::LogLost {
                last_index: last,
                last_term,
            };
            self.send_after(from, body);
        }
        self.answer_beat(from, round);
    }

    /// Hearing from the leader of our term.
    pub(super) fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower && self.role != Role::Learner || self.leader != Some(leader)
        {
            self.become_follower(self.term, Some(leader));
        }
        self.election_elapsed = 0;
        // The leader's group is active (a `Quiesce` sets it again after this).
        self.leader_said = LeaderSaid::Nothing;
        // A restart's refusal ends with a leader heard: this one it now backs as any
        // follower does (the lease rule), and one it may have promised before the restart
        // is either this one (one leader a term) or was deposed by a quorum that no lease
        // held. Kept, it outlived the whole leadership, for the timer that would end it
        // restarts at every heartbeat: when that leader's node died, this replica refused
        // the successor's pre-vote for another election timeout (review).
        if self.vote_hold == VoteHold::Restarted {
            self.vote_hold = VoteHold::None;
        }
    }

    fn send_append_response(
        &mut self,
        to: NodeId,
        success: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
    ) {
        self.send_after(
            to,
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
                // Sent after the write, which stores a join (`save_joined`) only when this
                // cycle's ready is taken: a join stored there is said by the next answer.
                joined: success && self.stored_member(),
            },
        );
    }

    pub(super) fn commit_to(&mut self, index: u64) {
        if index > self.log.committed {
            self.log.committed = index;
            self.hard_state_dirty = true;
            self.drop_stale_incoming();
            if self.configs.is_some() && self.role != Role::Leader {
                // A pending membership that leaves this replica out may just have committed.
                self.refresh_role();
            }
            self.advance_change();
        }
    }

    // ----- replication: leader side -----------------------------------------------------

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        (hint_index, hint_term): (u64, u64),
        joined: bool,
    ) {
        if self.role != Role::Leader {
            // An answer, at this term, to appends of a leadership this replica does not
            // hold: its node's last life's (it restarted since; a new life leads no term its
            // last one reached), or its own before it stepped down. The sender takes this
            // replica for its leader and waits on its live node: tell it that it does not
            // lead, as a refusal of no proposals at this term (`leader_disowned`). A leader
            // that crashed right after its election, whose append arrived after its restart
            // was seen, otherwise kept its followers waiting for good (simulator, seed
            // 14019315).
            let body = MessageBody::not_leader(self.leader);
            return self.send_now_msg(from, self.term, body);
        }
        let config_committed = self.log.committed >= self.config_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        // Asked only until known: `told_commit` reads the window of appends in flight.
        if !pr.knows_commit && success && config_committed && joined {
            pr.knows_commit = pr.told_commit(index);
        }
        if success {
            let retiring = pr.retire_at != 0;
            if pr.on_success(index) {
                // Only a match above the commit index can move it: a majority's index
                // rises above it only when one of its members' does.
                if pr.matched > self.log.committed {
                    self.maybe_commit();
                }
                self.maybe_send_timeout_now();
            }
            if retiring {
                self.drop_retired(false);
            }
        } else {
            // Fast backtracking: skip every index whose term rules it out at once.
            let (j, _) = self.log.conflict_hint(hint_index, hint_term);
            if let Some(pr) = self.progress.get_mut(&from) {
                pr.on_reject(index, j + 1);
            }
        }
    }

    /// `from` lacks entries this leader knew it to hold (`MessageBody::LogLost`): its node lost its
    /// data and a late answer of its last life restored the match that the restart had made the
    /// leader forget, or the replica was deleted and joined again. Forgotten again, and probed from
    /// `from`'s last entry. Without this the leader's appends, refused at the match, were taken for
    /// late refusals, and the follower was never caught up (review). A transfer under way sends it
    /// the snapshot anyway.
    pub(super) fn handle_log_lost(&mut self, from: NodeId, last_index: u64, last_term: u64) {
        if self.role != Role::Leader {
            return;
        }
        let (probe_from, _) = self.log.conflict_hint(last_index, last_term);
        if let Some(pr) = self.progress.get_mut(&from)
            && pr.state != ProgressState::Snapshot
            && pr.matched > last_index
        {
            pr.forget_match(probe_from + 1);
        }
    }

    /// `from` answered heartbeat round `round` (before the round is recorded: `read_round`
    /// is still the highest answered before this one).
    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.recent_active = true;
            if pr.state == ProgressState::Snapshot {
                // The transfer has its own timer; one waiting for a node slot asks again.
                return self.retry_snapshot(from);
            }
            // A round answered before (a group's heartbeat and read beat ride one round and
            // are answered each; a late copy) tells nothing new about appends (review: the
            // second answer dropped a busy follower to probe). Round 0: not known, counts.
            if round != 0 && round <= pr.read_round {
                return;
            }
            if pr.state == ProgressState::Probe {
                // The probe may have been lost: allow another.
                pr.probe_sent = false;
            } else if pr.matched < pr.heartbeat_sent && !pr.answered_since_beat {
                // Appends out at the previous round's answer are unanswered at this one, and
                // none was answered between: they were lost. Probe again from what is known
                // to match. (Appends sent since that answer may be overtaken by this one:
                // review, a follower sent one between two answers dropped to probe.)
                pr.become_probe();
            }
            pr.answered_since_beat = false;
            pr.heartbeat_sent = pr.next.saturating_sub(1);
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        // By position, as `flush_appends`: no list of peers allocated per heartbeat.
        let committed = self.log.committed;
        let mut position = 0;
        while let Some((to, pr)) = self.progress.at_mut(position) {
            position += 1;
            if pr.skips_heartbeat() {
                continue;
            }
            // Capped at what the follower is known to hold (§5.3, etcd-raft's rule); it
            // tells the follower that commit, so no separate notice of it is owed.
            let commit = pr.matched.min(committed);
            pr.commit_sent = pr.commit_sent.max(commit);
            self.send_beat(to, commit);
        }
    }

    /// Commits the highest index a quorum holds, if it is of the current term (§5.4.2).
    pub(super) fn maybe_commit(&mut self) {
        let me = self.node;
        let persisted = self.log.persisted;
        let index = self.membership.committed_index(|n| {
            if n == me {
                persisted
            } else {
                self.progress.get(&n).map_or(0, |p| p.matched)
            }
        });
        if index > self.log.committed && self.log.term(index) == Some(self.term) {
            let freed: usize = self
                .log
                .range(self.log.committed + 1, index + 1)
                .map(Entry::size_bytes)
                .sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(freed);
            self.commit_to(index);
        }
    }

    /// Appends `entry`, a command or membership entry made by this leader, to its log. The
    /// group is busy again, so its wait to quiesce starts over (`idle_ticks`).
    pub(super) fn append_own(&mut self, entry: Entry) {
        self.idle_ticks = 0;
        self.log.push(entry);
    }

    /// The first of this group's log's steps of room (`Log::make_room`): a size in
    /// `[FIRST_LOG_ROOM, 2 * FIRST_LOG_ROOM)` drawn from the group id, doubled from there,
    /// so that the logs of groups fed alike double at different lengths.
    pub(super) fn first_log_room(&self) -> usize {
        crate::storage::first_log_room(self.id)
    }

    /// Sends what each follower lacks: new entries, or the new commit index.
    pub(super) fn flush_appends(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // By position, not by a collected list of peers: no allocation per ready of
        // every leader (sending never adds or removes a follower).
        let mut position = 0;
        while let Some(to) = self.progress.node_at(position) {
            self.send_appends(to);
            position += 1;
        }
        self.commit_notice_due = false;
        // A retiring replica may just have been told the commit that removed it (by this
        // notice or a heartbeat): it can be told it is removed without waiting for an
        // answer that may never come. (Returns at once when no replica retires.)
        self.drop_retired(false);
    }

    fn send_appends(&mut self, to: NodeId) {
        let (max_inflight, max_entries, max_bytes) = (
            self.config.max_inflight_appends,
            self.config.max_append_entries,
            self.config.max_append_bytes,
        );
        let (notice_due, room) = (self.commit_notice_due, self.first_log_room());
        loop {
            let Some(pr) = self.progress.get_mut(&to) else {
                return;
            };
            let last = self.log.last_index();
            let committed = self.log.committed;
            if !pr.owes_append(max_inflight, last, committed, notice_due) {
                return;
            }
            let prev_index = pr.next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                // Compacted away: only the snapshot can catch this follower up.
                self.need_snapshot(to);
                return;
            };
            let (next, limits) = (pr.next, (max_entries, max_bytes));
            let entries = self.log.shared(next, last + 1, limits, room);
            let sent_last = prev_index + entries.len() as u64;
            pr.sent(sent_last, !entries.is_empty(), committed);
            pr.commit_sent = committed;
            let more =
                pr.state == ProgressState::Replicate && sent_last < last && !entries.is_empty();
            self.send_now_msg(
                to,
                self.term,
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit: committed,
                },
            );
            if !more {
                return;
            }
        }
    }

    pub(super) fn has_appends_to_send(&self) -> bool {
        let last = self.log.last_index();
        let committed = self.log.committed;
        let (max_inflight, notice_due) = (self.config.max_inflight_appends, self.commit_notice_due);
        self.progress
            .values()
            .any(|pr| pr.owes_append(max_inflight, last, committed, notice_due))
    }

    /// Storage made entries up to `index` (of `term`) durable. On a leader this may commit.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        if term == self.term {
            // An entry of this term is durable, so the hard state written with it is.
            self.term_unsaved = false;
        }
        if self.log.on_persisted(index, term) && self.role == Role::Leader {
            self.maybe_commit();
            // Committing may be what a transfer waits for.
            self.maybe_send_timeout_now();
        }
        self.check_invariants();
    }
}
