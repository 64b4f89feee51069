//! The memberships a replica's log holds, and which one is in force (dissertation §4.1): the
//! latest in the log, committed or not. Appending a membership entry makes it effective at
//! once; truncating it rolls the membership back to the one before; applying past it makes
//! it the base a snapshot records.
//!
//! Most groups never change membership: they hold no [`Configs`] at all (the replica's
//! `configs` is `None`) and their membership is the one they were created or restored with.

use std::sync::Arc;

use crate::entry::{Entry, Payload};
use crate::membership::Membership;

use super::{GroupEvent, Replica, Role};

/// Membership entries of the log above the applied index, and the membership in force at
/// the applied index. Exists only while a group has such entries.
#[derive(Debug)]
pub(super) struct Configs {
    /// The membership in force up to the first of `entries`.
    base: Arc<Membership>,
    /// (index, membership) of each membership entry above the applied index, ascending.
    entries: Vec<(u64, Arc<Membership>)>,
}

impl Replica {
    /// The index of the latest membership entry the log holds above the applied index (0:
    /// none): a change is in progress until it is committed.
    pub(super) fn config_index(&self) -> u64 {
        self.configs
            .as_ref()
            .and_then(|c| c.entries.last())
            .map_or(0, |(i, _)| *i)
    }

    /// Whether the latest membership entry in the log is not yet committed.
    pub(super) fn config_uncommitted(&self) -> bool {
        self.config_index() > self.log.committed
    }

    /// The membership in force at `index` (at or above the applied index): what a snapshot
    /// at `index` records.
    pub(super) fn membership_at(&self, index: u64) -> Arc<Membership> {
        match &self.configs {
            None => Arc::clone(&self.membership),
            Some(c) => c
                .entries
                .iter()
                .rev()
                .find(|(i, _)| *i <= index)
                .map_or_else(|| Arc::clone(&c.base), |(_, m)| Arc::clone(m)),
        }
    }

    /// Whether this log names this replica in no membership past `index`: in none of its
    /// membership entries above `index`, nor, if `index` is below the point the base
    /// membership stands at, in that one (committed, and so on the group's own log). That
    /// point is the applied index, or the index of a snapshot being restored, whose
    /// membership is the base before the applied index reaches it (review: a replica
    /// added back by that snapshot was told removed by a late message). What the log holds
    /// at or below `index` is not asked: a leader says what is committed there
    /// (`handle_removed_unmatched`).
    pub(super) fn left_out_after(&self, index: u64) -> bool {
        let base_at = self.log.applied.max(self.restoring.unwrap_or(0));
        let later = self.configs.iter().flat_map(|c| &c.entries);
        (index >= base_at || !self.membership_at(base_at).contains(self.node))
            && later
                .filter(|(i, _)| *i > index)
                .all(|(_, m)| !m.contains(self.node))
    }

    /// Entries were appended to the log (by this leader, or from the leader): the
    /// memberships among them take effect now.
    pub(super) fn appended_configs<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) {
        for e in entries {
            if let Payload::Membership(m) = &e.payload {
                let m = Arc::new((**m).clone());
                // A copy, not the node's shared value: the node releases that one when no
                // group's current membership uses it any more.
                let base = Arc::new((*self.membership).clone());
                self.configs
                    .get_or_insert_with(|| {
                        Box::new(Configs {
                            base,
                            entries: Vec::new(),
                        })
                    })
                    .entries
                    .push((e.index, Arc::clone(&m)));
                self.set_membership(m);
            }
        }
    }

    /// The log was truncated from `at` on: memberships appended there are undone, and the
    /// one before them is in force again.
    pub(super) fn truncated_configs(&mut self, at: u64) {
        let Some(c) = self.configs.as_mut() else {
            return;
        };
        if c.entries.last().is_none_or(|(i, _)| *i < at) {
            return;
        }
        c.entries.retain(|(i, _)| *i < at);
        let now = c
            .entries
            .last()
            .map_or_else(|| Arc::clone(&c.base), |(_, m)| Arc::clone(m));
        if c.entries.is_empty() {
            self.configs = None;
        }
        self.set_membership(now);
    }

    /// Entries up to `applied` were applied: memberships there become the base.
    pub(super) fn applied_configs(&mut self, applied: u64) {
        let Some(c) = self.configs.as_mut() else {
            return;
        };
        while c.entries.first().is_some_and(|(i, _)| *i <= applied) {
            c.base = c.entries.remove(0).1;
        }
        if c.entries.is_empty() {
            self.configs = None;
        }
    }

    /// A snapshot at `index` with `membership` was installed: the log holds nothing at or
    /// below `index` any more that matters, and `membership` is the base. Entries above it
    /// stay only if the log kept them (`kept`).
    pub(super) fn installed_configs(&mut self, index: u64, membership: Membership, kept: bool) {
        let mut entries = self.configs.take().map(|c| c.entries).unwrap_or_default();
        entries.retain(|(i, _)| kept && *i > index);
        let base = Arc::new(membership);
        let now = entries
            .last()
            .map_or_else(|| Arc::clone(&base), |(_, m)| Arc::clone(m));
        if !entries.is_empty() {
            self.configs = Some(Box::new(Configs { base, entries }));
        }
        self.set_membership(now);
        // The snapshot may hold, committed, a membership this replica already had pending
        // (no change to report): whether it takes part in elections may change all the
        // same (simulator, seed 1184: a replica the snapshot left out stayed a follower
        // that could not campaign, and never asked to be told it was removed).
        if self.role != Role::Leader {
            self.refresh_role();
        }
    }

    /// Makes `membership` the one in force, and reports it when it differs. The node then
    /// shares the value with its other groups and updates its peers
    /// ([`GroupEvent::MembershipChanged`]).
    fn set_membership(&mut self, membership: Arc<Membership>) {
        if *membership == *self.membership {
            return;
        }
        let event = GroupEvent::MembershipChanged {
            membership: (*membership).clone(),
        };
        self.membership = membership;
        self.out_rare().events.push(event);
        self.refresh_role();
    }

    /// Whether this replica takes part in elections (campaigns, votes): it is a voter of
    /// the latest membership in its log, or of the committed one while a later one is
    /// not (dissertation §4.2.2: a replica the pending membership leaves out may still be
    /// needed to commit it — without it, a joint configuration whose outgoing voters moved
    /// on could never elect again; simulator, seed 62).
    pub(super) fn electable(&self) -> bool {
        !self.is_joining()
            && (self.membership.is_voter(self.node)
                || self.config_uncommitted()
                    && self.membership_at(self.log.committed).is_voter(self.node))
    }

    /// Follower or learner, as [`Replica::electable`] says, after the membership or the
    /// commit index moved.
    pub(super) fn refresh_role(&mut self) {
        let voter = self.electable();
        match self.role {
            Role::Leader => self.sync_progress(),
            // Promoted: it votes and campaigns from now on.
            Role::Learner if voter => {
                self.role = Role::Follower;
                self.reset_election_timer();
            }
            // No longer a voter: it stops campaigning at once (a campaign in progress ends).
            Role::Follower | Role::PreCandidate | Role::Candidate if !voter => {
                self.role = Role::Learner;
                self.votes.clear();
            }
            _ => {}
        }
    }
}
