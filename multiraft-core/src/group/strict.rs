//! Strict mode (`Config::strict`): invariant checks run after every input that panic,
//! naming group, node, term and index, when the group reaches a state it must never reach.
//!
//! Off by default; unit tests and the testkit simulator turn it on, so that a broken
//! invariant is reported where it breaks rather than as a diverged state machine later.

use super::{Replica, Role};

impl Replica {
    pub(super) fn strict_check(&self, ok: bool, index: u64, what: &str) {
        if self.config.strict && !ok {
            panic!(
                "invariant violated in group {} on node {} at term {}, index {}: {}",
                self.id, self.node, self.term, index, what
            );
        }
    }

    pub(super) fn check_invariants(&self) {
        if !self.config.strict {
            return;
        }
        let log = &self.log;
        self.strict_check(
            log.committed <= log.last_index(),
            log.committed,
            "commit beyond the log",
        );
        self.strict_check(
            log.applied <= log.committed,
            log.applied,
            "applied beyond commit",
        );
        self.strict_check(
            log.applied <= log.persisted,
            log.applied,
            "applied an entry not durable here",
        );
        self.strict_check(
            log.persisted <= log.last_index(),
            log.persisted,
            "persisted beyond the log",
        );
        self.strict_check(
            log.last_term() <= self.term,
            log.last_index(),
            "log holds an entry from a future term",
        );
        self.strict_check(
            self.out_written != super::Written::Nothing
                || self.out.as_ref().is_none_or(|o| o.is_empty()),
            0,
            "output written without `out_written`, which `has_ready` would miss",
        );
        self.strict_check(
            self.out_written == super::Written::Rare
                || self.out.as_ref().is_none_or(|o| o.is_empty_rare()),
            0,
            "events, refusals or snapshot outputs written without `Written::Rare`: the node would \
             not read them",
        );
        if self.role == Role::Leader {
            self.strict_check(
                self.leader == Some(self.node),
                0,
                "leader does not know itself",
            );
            self.strict_check(
                self.vote == Some(self.node),
                0,
                "leader did not vote for itself",
            );
        }
    }
}
