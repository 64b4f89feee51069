//! **Durable before acknowledged; nothing acknowledged is lost across a crash.** Raft's
//! safety argument assumes that a server's `currentTerm`, `votedFor` and log are on stable
//! storage before it responds to RPCs (Raft Figure 2, "Persistent state on all servers ...
//! updated on stable storage before responding to RPCs"; dissertation §3.8 and §11.7.2),
//! and that a state machine applies only committed entries (Figure 2, "Rules for Servers").
//!
//! The simulator's durable image of a node holds exactly what [`Node::advance`] was called
//! for. Whenever a node sends a message, the image must already justify it:
//! - every message that takes part in the term rules carries a term the image holds;
//! - a granted vote (not a pre-vote) is recorded in the image: same term and candidate;
//! - a candidate's vote request is backed by its durable vote for itself;
//! - a successful append acknowledgement up to index `i` in term `t` is backed by `i`
//!   durable entries, the one at `i` of the term that term `t`'s leader sent there:
//!   counting entries alone passed an acknowledgement of entries that an append of a later
//!   term replaced in the write (review).
//!
//! - no follower says it lost entries it acknowledged (`LogLost`) unless its node deleted
//!   a replica of that group before (removed from it, then added back: the leader may still
//!   hold what the deleted replica acknowledged, seed 1786). The simulator loses no durable
//!   data (no node comes back wiped), so any other that says so either lost what it had
//!   made durable, or took a leader's heartbeat for news of a loss that never happened.
//!
//! A ready may only apply entries that are durable on the node already. At a restart, the
//! rebuilt node must hold at least the highest term it ever sent a message in, i.e. no
//! acknowledged state was lost.
//!
//! [`Node::advance`]: multiraft_core::Node::advance

use std::collections::{HashMap, HashSet};

use multiraft_core::{GroupId, Message, MessageBody, Ready};

use super::super::disk;
use super::{Check, Invariant, SimNode, sorted_groups};

#[derive(Default)]
pub(crate) struct DurableAcks {
    /// Per (node, group): the highest term of any message that depended on durable state.
    sent_term: HashMap<(usize, GroupId), u64>,
    /// (node, group) whose replica the node deleted at least once: a replica there now
    /// may hold less than a leader remembers of the deleted one.
    deleted: HashSet<(usize, GroupId)>,
    /// (group, leader's term, index) → the term of the entry that leader sent there, from
    /// its appends (and their `prev`). A leader never changes its log's entries, so one
    /// term per key. Grows with the entries sent in each term: a run's worth.
    sent_entries: HashMap<(GroupId, u64, u64), u64>,
}

impl Invariant for DurableAcks {
    fn on_replica_removed(&mut self, node: usize, group: GroupId) {
        self.sent_term.remove(&(node, group));
        self.deleted.insert((node, group));
    }

    fn name(&self) -> &'static str {
        "durable before acknowledged (Raft Figure 2, §3.8)"
    }

    fn on_send(&mut self, nodes: &[SimNode], node: usize, m: &Message) -> Check {
        if let MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } = &m.body
        {
            let sent = &mut self.sent_entries;
            sent.insert((m.group, m.term, *prev_index), *prev_term);
            for e in entries.iter() {
                sent.insert((m.group, m.term, e.index), e.term);
            }
        }
        let sn = &nodes[node];
        let img = sn.durable.groups.get(&m.group);
        let hs = img.map(|l| l.hard_state).unwrap_or_default();
        let depends_on_term = match &m.body {
            MessageBody::Vote { pre_vote, .. } | MessageBody::VoteResponse { pre_vote, .. } => {
                !pre_vote
            }
            MessageBody::Propose { .. } | MessageBody::ProposeRejected { .. } => false,
            // A refusal of a snapshot for want of a receive slot promises nothing: the node
            // answers it in the leader's term, whatever its own.
            MessageBody::SnapshotAck(a) if a.refused => false,
            _ => true,
        };
        if !depends_on_term {
            return Ok(());
        }
        let what = || {
            format!(
                "{}: {} sends {:?} in term {}",
                m.group, sn.id, m.body, m.term
            )
        };
        if hs.term < m.term {
            return Err(format!("{}, but its durable term is {}", what(), hs.term));
        }
        match &m.body {
            MessageBody::VoteResponse { granted: true, .. }
                if hs.term == m.term && hs.vote != Some(m.to) =>
            {
                return Err(format!(
                    "{}, but its durable vote in that term is {:?}",
                    what(),
                    hs.vote
                ));
            }
            MessageBody::Vote { .. } if hs.term == m.term && hs.vote != Some(sn.id) => {
                return Err(format!(
                    "{}, but its durable vote in that term is {:?}",
                    what(),
                    hs.vote
                ));
            }
            MessageBody::AppendResponse {
                success: true,
                index,
                ..
            } => {
                let len = img.map_or(0, disk::last_index);
                if *index > len {
                    return Err(format!("{}, but only {len} entries are durable", what()));
                }
                let leaders = self.sent_entries.get(&(m.group, m.term, *index));
                let durable = img.and_then(|l| disk::term_at(l, *index));
                if let (Some(&sent), Some(held)) = (leaders, durable)
                    && sent != held
                {
                    return Err(format!(
                        "{}, but its durable entry there is of term {held}, not the {sent} its leader sent",
                        what()
                    ));
                }
            }
            MessageBody::LogLost { .. } if !self.deleted.contains(&(node, m.group)) => {
                let len = img.map_or(0, disk::last_index);
                return Err(format!(
                    "{}, but it lost nothing: {len} entries are durable",
                    what()
                ));
            }
            MessageBody::SnapshotAck(a) if a.done => {
                // Done with a snapshot it stored, or, a joining replica, with one whose
                // entries its log already holds, durably committed (it answers done
                // without installing: the leader goes on with appends).
                let stored = img.and_then(|l| l.snapshot.as_ref()).map(|s| s.index);
                let len = img.map_or(0, disk::last_index);
                let held = len >= a.index && hs.commit >= a.index;
                if stored.is_none_or(|s| s < a.index) && !held {
                    return Err(format!(
                        "{}, but its durable snapshot is at {stored:?}, and {len} entries are durable, committed to {}",
                        what(),
                        hs.commit
                    ));
                }
            }
            _ => {}
        }
        let t = self.sent_term.entry((node, m.group)).or_default();
        *t = (*t).max(m.term);
        Ok(())
    }

    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        let sn = &nodes[node];
        for a in &ready.apply {
            let img = sn.durable.groups.get(&a.group);
            for e in &a.entries {
                let durable = img.and_then(|l| disk::entry_at(l, e.index)).map(|d| d.term);
                if durable != Some(e.term) {
                    return Err(format!(
                        "{}: {} applies index {} (term {}) but its durable entry there has term {:?}",
                        a.group, sn.id, e.index, e.term, durable
                    ));
                }
            }
        }
        for w in &ready.write.groups {
            if let Some(first) = w.entries.first() {
                let len = match w.log_reset {
                    Some(c) => c.index,
                    None => sn.durable.groups.get(&w.group).map_or(0, disk::last_index),
                };
                if first.index == 0 || first.index > len + 1 {
                    return Err(format!(
                        "{}: {} writes from index {} onto a durable log of {len}: a hole",
                        w.group, sn.id, first.index
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_restart(&mut self, nodes: &[SimNode], node: usize) -> Check {
        let sn = &nodes[node];
        let n = sn.node.as_ref().expect("running");
        for g in sorted_groups(n) {
            let term = n.group_status(g).expect("listed").term;
            let sent = self.sent_term.get(&(node, g)).copied().unwrap_or(0);
            if term < sent {
                return Err(format!(
                    "{g}: {} restarted in term {term} but had sent messages in term {sent}",
                    sn.id
                ));
            }
        }
        Ok(())
    }
}
