//! Input hygiene and strict mode: misaddressed or foreign messages change nothing, and
//! `Config::strict` reports broken invariants (a future-term entry, a truncated commit).

use super::*;

/// The group's contract (`Replica::step`): messages for another group or node, from the
/// replica itself, or a non-member's answer in a higher term change nothing and produce
/// nothing.
#[test]
fn misaddressed_and_foreign_messages_are_ignored() {
    let mut g = fresh(1, 1);
    let mut other_group = msg(2, 1, 1, vote(false, 0, 0));
    other_group.group = GroupId(2);
    for m in [
        other_group,
        msg(2, 4, 1, vote(false, 0, 0)),
        msg(9, 1, 1, vote_resp(false, true)),
        msg(1, 1, 1, vote(false, 0, 0)),
    ] {
        g.step(m);
        assert!(!g.has_ready());
    }
    assert_eq!(g.status().term, 0);
}

/// `Config::strict` (docs/design.md §9.6, invariants are asserted): a log holding an entry of a
/// term later than the replica's own (corrupt storage) is reported with group, node, term and
/// index.
#[test]
#[should_panic(
    expected = "invariant violated in group g1 on node n1 at term 1, index 1: log holds an entry from a future term"
)]
fn strict_mode_panics_on_an_entry_from_a_future_term() {
    let mut g = restored(1, hs(1, None, 0), log_of(&[2]));
    g.tick();
}

/// `Config::strict` and Figure 3, Leader Append-Only / State Machine Safety: an append that
/// would overwrite a committed entry (here a malformed one whose entries do not follow
/// `prev_index`) is an invariant violation, not something to do quietly.
#[test]
#[should_panic(expected = "truncated a committed entry")]
fn strict_mode_panics_when_a_committed_entry_would_be_truncated() {
    let mut g = restored(1, hs(1, None, 2), log_of(&[1, 1]));
    g.step(msg(2, 1, 2, append(2, 1, vec![e(2, 2)], 2)));
}
