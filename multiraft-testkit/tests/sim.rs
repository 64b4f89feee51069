//! The CI soak: 200 seeds × 60 simulated seconds, 3–5 nodes, 1–100 groups, every fault
//! mix (each seed derives its own, see `SimConfig::for_seed`), zero violations allowed.
//!
//! Split into four tests of 50 seeds so the test harness runs them on every core. A failure
//! prints the violation with the command that replays it.

use multiraft_testkit::sim::{SimConfig, SimReport, Simulation};

/// Simulated seconds per seed.
const SECS: u64 = 60;

/// Runs `config` for [`SECS`]; panics with the violation, if any.
fn run_clean(mut config: SimConfig) -> SimReport {
    config.secs = SECS;
    Simulation::new(config)
        .run()
        .unwrap_or_else(|v| panic!("{v}"))
}

/// `config` as a regression seed was found: before batches were split
/// (`Faults::split_per_mille`, drawn last for a seed, and nothing drawn per batch while it
/// is zero, so the rest of the seed's run is as it was).
fn before_splits(mut config: SimConfig) -> SimConfig {
    config.faults.split_per_mille = 0;
    config
}

fn soak(seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    let mut lost = 0;
    let (mut joint, mut left, mut removals, mut late) = (0, 0, 0, 0);
    let (mut deleted, mut untold) = (0, 0);
    for seed in seeds.clone() {
        let mut config = SimConfig::for_seed(seed);
        config.secs = SECS;
        match Simulation::new(config).run() {
            Ok(r) => {
                lost += u64::from(r.lost_nodes > 0);
                joint += r.joint_entered;
                left += r.joint_left;
                removals += r.leader_removals;
                late += u64::from(r.late_catch_up_us > 0);
                deleted += r.replicas_removed;
                untold += r.removed_untold();
            }
            Err(v) => failures.push(v.to_string()),
        }
    }
    // Membership changes are in the default mix: joint configurations entered and left,
    // leaders removed, in every batch of seeds.
    println!(
        "seeds {seeds:?}: joint configurations entered {joint}, left {left}; leaders removed {removals}"
    );
    assert!(
        joint > 0 && left > 0 && removals > 0,
        "no membership changes ran"
    );
    // A node back behind a hot group's log, caught up while the group writes, in every
    // batch of seeds (about two in five).
    println!("seeds {seeds:?}: {late} brought a node back behind a hot group");
    // A share of the seeds keeps a minority of nodes down through the liveness phase, so
    // recovery without them is checked in CI too (about a quarter; at least one in ten).
    println!("seeds {seeds:?}: {lost} kept a minority of nodes down through the liveness phase");

    assert!(
        failures.is_empty(),
        "{} of {} seeds violated an invariant:\n{}",
        failures.len(),
        seeds.end - seeds.start,
        failures.join("\n\n")
    );
    // Removed replicas of the kinds the library does not tell yet are counted, not failed
    // (`SimReport::removed_untold`): 87 of them in seeds 0–1,999, against 10,878
    // replicas deleted once told (0.8 %; 157 of 10,881 before later-term replicas were
    // told and abandoned joins deleted). A ceiling of 5 % of the deleted (at least 3)
    // keeps a regression that lands in one of those kinds from passing unseen.
    println!("seeds {seeds:?}: replicas deleted {deleted}, removed replicas left untold {untold}");
    assert!(
        untold <= (deleted / 20).max(3),
        "{untold} removed replicas left untold against {deleted} deleted"
    );
    assert!(
        lost >= (seeds.end - seeds.start) / 10,
        "only {lost} of the seeds lost a node for good"
    );
    assert!(
        late >= (seeds.end - seeds.start) / 10,
        "only {late} of the seeds brought a node back behind a hot group"
    );
}

#[test]
fn soak_seeds_0_to_50() {
    soak(0..50);
}

#[test]
fn soak_seeds_50_to_100() {
    soak(50..100);
}

#[test]
fn soak_seeds_100_to_150() {
    soak(100..150);
}

#[test]
fn soak_seeds_150_to_200() {
    soak(150..200);
}

/// Seeds on which the simulator found bugs of membership changes (each fixed; the cause is
/// in the comment at the fix): a single-voter leader's sends before its term was durable
/// (193); a replica joining again acting on an old membership from its snapshot (810);
/// a learner promoted before it knew it had caught up (409); a learner refusing the vote a
/// joint configuration needed (51); an outgoing voter that could neither campaign nor vote
/// (62); a leader's messages dropped by a replica whose membership left it out (1385,
/// 1608); a stale replica deaf to a legitimate candidate's votes (2139); a removed replica
/// deposing the leader without PreVote (3499); and in the simulator itself, a deleted
/// replica hosted again after a crash (869) and a fault aimed at a joint configuration
/// after the heal (7998).
#[test]
fn membership_regression_seeds() {
    for seed in [193, 810, 409, 51, 62, 1385, 1608, 2139, 3499, 869, 7998] {
        run_clean(before_splits(SimConfig::for_seed_without_hot_group(seed)));
    }
}

/// Seeds of a far range (`sim --start 7000000`) on which the simulator found liveness bugs,
/// each fixed (docs/design.md says how): followers holding back for a deposed
/// leader's live node (7003456, 7007567, 7010959); a peer's record dropped by a membership
/// change, hiding its restart (7001468); admission control held by stuck proposals (7001883,
/// 7006821, 7007853, 7008705); forwards to a removed leader's node dropped (7009305,
/// 7010494, 7011289, 7011071); the stable-leadership check counting a leader's handover
/// (7000437); a follower of a quiesced leader that removed itself, deaf to candidates
/// for good (7022963); a replica that could not win, campaigning one term ahead of the one
/// that could (7011887); and a learner promoted before it knew it had caught up (7027970,
/// 7010208). And the checker's own: a follower whose log ran past the commit index with an
/// earlier leader's entries counted as holding the committed entry (7016042, and 14018155
/// where the leader had compacted that entry). With stragglers in the mix (seeds 12000000
/// on): a late beat of a peer's earlier life stepped into its groups (12019149), or of a
/// life before the last taken for a restart (12012706); a removed replica deposing the
/// leader through a far-behind member without PreVote or CheckQuorum (12008576); a late
/// append of a leader that crashed right after its election (14019315), and two stalls of
/// a first attempt at it (15007803, 15012724). A leader's snapshot, queued for a build
/// slot and deferred when the slot freed because a transfer of its stored one had begun,
/// was dropped, and its proposals stayed parked (1304, in CI's range, found as the
/// deferral went in). Transfers refused a send slot asked again only at heartbeat
/// answers, so a freed slot stood idle between rounds and groups waiting for snapshots
/// outlasted the liveness bound (18008678); and the first fix of it offered freed slots
/// to transfers toward a lost node, which held the slot for an election timeout each
/// (19006498, 19006750; the first was later also stalled by reordered snapshot chunks,
/// `a_gap_sends_the_lost_chunks_again_at_once_and_once`). CI's own
/// seeds (0–1,999) never reached them. A later change may move a seed
/// off its bug's path (every change moves later seeds onto new ones): the unit test named
/// at each fix pins the bug itself.
#[test]
fn liveness_regression_seeds() {
    let seeds = [
        7003456, 7007567, 7010959, 7001468, 7001883, 7006821, 7007853, 7008705, 7009305, 7010494,
        7011289, 7011071, 7000437, 7022963, 7011887, 7027970, 7010208, 7016042, 14018155, 12019149,
        12012706, 12008576, 14019315, 15007803, 15012724, 1304, 18008678, 19006750, 19006498,
    ];
    for seed in seeds {
        run_clean(before_splits(SimConfig::for_seed_without_hot_group(seed)));
    }
}

/// Seeds on which a removed replica sat quiet following its leader, was cut off while the
/// group removed it, and was forgotten untold: it waited for that leader's live node until
/// a proposal forwarded to it woke it. The simulator's check that removed replicas are told
/// failed there, wrongly (3 of seeds 12,000,000–12,005,199): it counted its bound across
/// the time the replica was quiet, a kind then left untold; the bound now counts from
/// when the replica was last of such a kind (`RemovedSeen::clock`). Then the library
/// learned to tell it: its leader's node nudges a replica forgotten untold
/// (`node/untold.rs`), and none of these seeds leaves a quiet one untold
/// (`a_quiet_removed_replica_forgotten_untold_is_told_after_a_nudge` pins it). Without the
/// nudge each counts one; with the old check, each fails.
#[test]
fn removed_told_seeds() {
    for seed in [12000694, 12003567, 12004101] {
        let r = run_clean(before_splits(SimConfig::for_seed(seed)));
        assert_eq!(
            r.removed_untold_quiesced, 0,
            "seed {seed}: a quiet replica untold"
        );
    }
}

/// Seeds on which a removed replica has no one to ask: the orphaned kind the library does
/// not tell (docs/design.md §4.7), counted, not failed. The check that removed replicas are
/// told failed such replicas at first (sweep of seeds 30,000,000–30,005,999: on 30004193
/// the voters its membership names were one cut off for good and one down; on 30005147 the
/// only one still hosting the group was itself removed and knew no leader to relay to).
/// Since the leader judges lost appends by what was out at a heartbeat round's answer and a
/// new leader counts the uncommitted entries it holds (2026-12-06), neither run leaves one
/// orphaned any more. Seeds 24 and 397 did (as drawn since the workload forwards a quarter
/// of its writes) until snapshot pieces were joined into whole chunks and leaders went
/// quiet without replicas on nodes declared down (2026-12-06), after which no seed of
/// 0–1,999 does; seeds 2,551 and 2,900 (of 2,000–4,499) did, and 2,900 and 3,444 (of
/// 2,000–3,499) since a node down wakes only the groups it led and a drain starts its
/// transfers in group order (2026-12-06 evening); 199 and 913 (of 0–1,999) since a third
/// of the pauses are busy (2026-12-06 night); 3,444 alone (of 0–3,999) since half the busy
/// pauses step a backlog and nodes are told of their batches' arrivals (2026-12-07); 835
/// alone (of 0–3,999; 13 replicas orphaned in 0–9,999) since a retiring replica that needs a
/// snapshot is told without it (2026-12-07 night).
#[test]
fn orphaned_removed_seeds() {
    let r = run_clean(SimConfig::for_seed(835));
    assert!(r.removed_untold_orphaned > 0, "seed 835: none orphaned");
}

/// A seed on which the check that a replica deleted is no voter failed a deletion that was
/// right (sweep of seeds 60,000,000–60,005,999): a leader removing itself (group 1, voters
/// 1 and 3) committed the configuration without it and learned so while every replica,
/// applying at most 3 entries per ready, still had the joint configuration as the latest
/// applied. The check read the committed membership off what was applied; it now judges
/// by the membership in force at the commit index known at the deletion.
#[test]
fn deleted_voter_seeds() {
    let r = run_clean(before_splits(SimConfig::for_seed(60000775)));
    assert!(r.replicas_removed > 0, "no replica deleted");
}

/// Seeds on which a follower back behind a hot group was never caught up when a leader did
/// not defer its next snapshot while sending its stored one (each new snapshot started the
/// transfer over): found by planting that fault in the simulator's default mix, where
/// they are 3 of the 4 such failures in seeds 0–1,999 (BENCHMARKS.md). The integration test
/// `a_follower_is_caught_up_while_its_group_keeps_writing` pins the same fault.
#[test]
fn hot_group_seeds() {
    for seed in [259, 465, 728] {
        let config = before_splits(SimConfig::for_seed(seed));
        assert!(config.hot_group_per_sec > 0, "seed {seed} has no hot group");
        let r = run_clean(config);
        assert!(r.late_catch_up_us > 0, "seed {seed} kept no node down");
    }
}

/// Seeds on which a membership change never ended when a snapshot on its way to the
/// replica to promote counted as progress however long that replica stayed silent (it
/// went down for good during its transfer): found by planting that fault in the
/// simulator's default mix, where they are the 2 such failures in seeds 0–999
/// (BENCHMARKS.md). Both have a short `proposal_timeout_ticks`, drawn for the seed. The
/// unit test `a_learner_down_during_its_snapshot_is_not_waited_for_forever` pins the same
/// fault.
#[test]
fn change_end_seeds() {
    for seed in [227, 271] {
        let config = before_splits(SimConfig::for_seed(seed));
        assert!(
            config.core.proposal_timeout_ticks
                < multiraft_core::Config::default().proposal_timeout_ticks,
            "seed {seed} has the default proposal timeout"
        );
        run_clean(config);
    }
}

/// Determinism: one seed, run twice, gives the same trace hash (and the same report).
#[test]
fn same_seed_twice_same_trace_hash() {
    let config = SimConfig::for_seed(7);
    let a = Simulation::new(config.clone())
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    let b = Simulation::new(config)
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a, b);
}
