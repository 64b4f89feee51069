//! Outputs: the buffer a group fills between readies (`out` and the send helpers, which pick
//! `send_now` or `send_after_write` for each message), and `has_ready`, `ready` and
//! `take_send_now`, which hand it to the caller in the order the module docs describe.
//!
//! `ReplicaReady` itself stays in `mod.rs` with the other public types.

use crate::ids::NodeId;
use crate::message::{Message, MessageBody};

use super::{Replica, ReplicaReady, Role, Written};

impl Replica {
    /// The output buffer, for the outputs of a busy cycle. Private to this module: other
    /// modules write messages with [`Replica::out_after`] and the rest with
    /// [`Replica::out_rare`], so that nothing but a busy cycle's outputs can be written
    /// without marking the buffer (`Written::Rare`), which the node would then not read.
    fn out(&mut self) -> &mut ReplicaReady {
        if self.out_written == Written::Nothing {
            self.out_written = Written::Busy;
        }
        self.out.get_or_insert_with(Box::default)
    }

    /// The output buffer, for the other outputs (events, refusals, failed reads, snapshots,
    /// membership): every write of those goes through here, so that the node reads them
    /// only when there are some.
    pub(super) fn out_rare(&mut self) -> &mut ReplicaReady {
        self.out_written = Written::Rare;
        self.out.get_or_insert_with(Box::default)
    }

    /// The messages that must wait for this ready's write.
    pub(super) fn out_after(&mut self) -> &mut Vec<Message> {
        &mut self.out().send_after_write
    }

    pub(super) fn send_now_msg(&mut self, to: NodeId, term: u64, body: MessageBody) {
        let m = Message {
            group: self.id,
            from: self.node,
            to,
            term,
            body,
        };
        if self.term_unsaved {
            self.out().send_after_write.push(m);
        } else {
            self.out().send_now.push(m);
        }
    }

    /// A message that depends on this ready's write, or follows one that does.
    pub(super) fn send_after(&mut self, to: NodeId, body: MessageBody) {
        let m = Message {
            group: self.id,
            from: self.node,
            to,
            term: self.term,
            body,
        };
        self.out().send_after_write.push(m);
    }

    /// A heartbeat to `to` telling `commit`, or, if the latest beat of this term to `to` is
    /// still in the buffer (and no quiesce notice after it), that one brought up to date:
    /// it then tells what the older one did, with the commit known now (capped, as any
    /// beat's, at what `to` holds). A group whose readies wait behind an overloaded loop
    /// otherwise queued a beat per follower at every beat until the loop came round
    /// (docs/design.md §4.4). Looks only at a buffer written since it was last taken.
    pub(super) fn send_beat(&mut self, to: NodeId, commit: u64) {
        let (term, body) = (self.term, MessageBody::Heartbeat { commit, round: 0 });
        if self.out_written != Written::Nothing
            && let Some(out) = self.out.as_mut()
        {
            let list = if self.term_unsaved {
                &mut out.send_after_write
            } else {
                &mut out.send_now
            };
            // The latest beat or quiesce notice to `to`: a beat merged into one before a
            // notice would leave the follower on the notice, its timer stopped, while this
            // leader is awake (review).
            let last = list.iter_mut().rev().find(|m| {
                m.to == to
                    && matches!(
                        m.body,
                        MessageBody::Heartbeat { .. } | MessageBody::Quiesce { .. }
                    )
            });
            if let Some(m) = last
                && m.term == term
                && matches!(m.body, MessageBody::Heartbeat { .. })
            {
                m.body = body;
                return;
            }
        }
        self.send_now_msg(to, term, body);
    }

    /// Answers a beat of round `round` from `to`, the leader of this term; or, if an answer
    /// to it of this term is still in the buffer, raises that one's round to `round` if
    /// higher. A follower whose readies wait behind an overloaded loop otherwise queued an
    /// answer per beat received until the loop came round (docs/design.md §4.4). The
    /// answer left out is a message lost, which Raft tolerates, and the one sent says what
    /// it would have: the leader takes the highest round answered, and a later round
    /// confirms the reads of the earlier ones. Looks only at a buffer written since it was
    /// last taken.
    pub(super) fn answer_beat(&mut self, to: NodeId, round: u64) {
        let term = self.term;
        if self.out_written != Written::Nothing
            && let Some(out) = self.out.as_mut()
            && let Some(answered) = out
                .send_after_write
                .iter_mut()
                .rev()
                .find_map(|m| match &mut m.body {
                    MessageBody::HeartbeatResponse { round } if m.to == to && m.term == term => {
                        Some(round)
                    }
                    _ => None,
                })
        {
            *answered = (*answered).max(round);
            return;
        }
        self.send_after(to, MessageBody::HeartbeatResponse { round });
    }

    /// Drops the messages in the output buffer that `stale` picks: requests (a round of
    /// vote requests, an `Unheard`) that a newer one replaces. A group whose readies wait
    /// behind an overloaded loop would otherwise queue one per election timeout until the
    /// loop comes round (docs/design.md §4.4). Looks only at a buffer written since it was
    /// last taken, so a quiet group pays nothing.
    pub(super) fn drop_unsent(&mut self, stale: impl Fn(&Message) -> bool) {
        if self.out_written == Written::Nothing {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            out.send_now.retain(|m| !stale(m));
            out.send_after_write.retain(|m| !stale(m));
        }
    }

    /// Drops the acknowledgements, waiting for this ready's write, of entries from `index`
    /// on, which an append just replaced: the write no longer holds them, so they would
    /// claim durable what never will be, and a leader of their term could count them
    /// toward a commit (found by the simulator's pauses, docs/design.md §10).
    pub(super) fn drop_acks_from(&mut self, index: u64) {
        if let Some(out) = self.out.as_mut() {
            out.send_after_write.retain(|m| {
                !matches!(m.body, MessageBody::AppendResponse { success: true, index: i, .. } if i >= index)
            });
        }
    }

    /// Whether events wait in the output for the next ready: the node has not yet seen
    /// them (a change or a transfer that ended, a leadership change).
    pub(crate) fn has_events(&self) -> bool {
        self.out_written == Written::Rare && self.out.as_ref().is_some_and(|o| !o.events.is_empty())
    }

    /// Whether [`Replica::ready`] would return something.
    pub fn has_ready(&self) -> bool {
        self.out_written != Written::Nothing
            && self.out.as_ref().is_some_and(|o| {
                !o.is_empty_common() || self.out_written == Written::Rare && !o.is_empty_rare()
            })
            || self.hard_state_dirty
            || self.log.has_unstable()
            || self.restoring.is_none() && self.log.has_applicable()
            || !self.forward.is_empty() && !self.keeps_proposals_parked()
            || self.has_read_work()
            || self.role == Role::Leader && self.has_appends_to_send()
    }

    /// Takes the outputs accumulated since the last call, applying at most
    /// `max_apply_entries` entries and about `max_apply_bytes` bytes. Reads wait: they join
    /// a heartbeat round only through [`Replica::ready_in_round`].
    pub fn ready(&mut self, max_apply_entries: usize, max_apply_bytes: usize) -> ReplicaReady {
        *self.ready_in_round(0, max_apply_entries, max_apply_bytes)
    }

    /// [`Replica::ready`] whose heartbeats leave in the node's round `round` (see
    /// [`Liveness::round`](crate::message::Liveness::round)): reads waiting for a round
    /// join this one.
    pub fn ready_in_round(
        &mut self,
        round: u64,
        max_apply_entries: usize,
        max_apply_bytes: usize,
    ) -> Box<ReplicaReady> {
        self.take_ready(round, max_apply_entries, max_apply_bytes).0
    }

    /// [`Replica::ready_in_round`], and whether the buffer holds anything but the outputs
    /// of a busy cycle: if not, the caller need not read its other fields, and gives it
    /// back with [`Replica::recycle_taken`].
    pub(crate) fn take_ready(
        &mut self,
        round: u64,
        max_apply_entries: usize,
        max_apply_bytes: usize,
    ) -> (Box<ReplicaReady>, bool) {
        self.flush_appends();
        self.flush_forward();
        self.flush_reads(round);
        // In the write that holds the commit index that made it so, before any answer that
        // says so leaves.
        self.save_joined();
        // The buffer itself is handed over, not its contents (half a kilobyte, copied twice
        // per group per ready, showed in profiles); the caller gives it back emptied with
        // [`Replica::recycle`], so a busy group allocates neither the buffer nor its lists
        // again. A quiet group frees it.
        let mut ready = self.out.take().unwrap_or_default();
        let rare = self.out_written == Written::Rare;
        self.out_written = Written::Nothing;
        if std::mem::take(&mut self.hard_state_dirty) {
            ready.hard_state = Some(self.hard_state());
        }
        let room = self.first_log_room();
        ready.entries = self.log.take_unstable(room);
        if self.restoring.is_none() {
            let limits = (max_apply_entries, max_apply_bytes);
            self.log.take_applicable(limits, room, &mut ready.apply);
            self.applied_configs(self.log.applied);
        }
        ready.reads = self.take_served_reads();
        self.reads.release();
        if self.quiesced && self.out.as_ref().is_some_and(|o| o.is_empty()) {
            // Answering a read round filled the buffer of a quiet group: free it again.
            self.out = None;
            self.out_written = Written::Nothing;
        }
        (ready, rare)
    }

    /// Gives back the buffer [`Replica::ready_in_round`] handed over, once the caller has
    /// taken everything out of it, to be reused (emptied) for the next ready. Kept only
    /// while the group is busy and has no newer buffer.
    pub fn recycle(&mut self, used: Box<ReplicaReady>) {
        self.recycle_taken(used, true);
    }

    /// [`Replica::recycle`] of a buffer that [`Replica::take_ready`] said holds only the
    /// outputs of a busy cycle unless `rare`: only those are cleared.
    pub(crate) fn recycle_taken(&mut self, mut used: Box<ReplicaReady>, rare: bool) {
        if self.out.is_none() && !self.quiesced {
            if rare {
                used.clear();
            } else {
                used.clear_common();
            }
            self.out = Some(used);
        }
    }

    /// Takes only the messages that may leave before any write (the leader's appends and
    /// heartbeats, forwarded proposals); everything else stays for [`Replica::ready`].
    pub fn take_send_now(&mut self) -> Vec<Message> {
        self.take_send_now_in_round(0)
    }

    /// [`Replica::take_send_now`] whose heartbeats leave in the node's round `round`.
    pub fn take_send_now_in_round(&mut self, round: u64) -> Vec<Message> {
        self.flush_appends();
        self.flush_forward();
        self.flush_reads(round);
        self.out
            .as_mut()
            .map(|o| std::mem::take(&mut o.send_now))
            .unwrap_or_default()
    }
}
