//! Resting followers (`rest.rs`, docs/design.md §4.10) change nothing a node does.

use super::three_nodes::Sim;
use super::*;

/// What a run of [`script`] left behind, compared between runs.
#[derive(Debug, PartialEq)]
struct Trace {
    sent: Vec<Vec<MessageBatch>>,
    outcomes: Vec<Vec<Outcome>>,
    applied: Vec<Vec<Vec<Bytes>>>,
    /// Each node's count of groups not quiesced, at the end. (Not at every tick: a
    /// ticked follower quiesced by its leader's notice leaves the ticked set at its next
    /// tick, a resting one at once.)
    active: [usize; 3],
    elections: Vec<u64>,
}

const GROUPS: u64 = 24;

/// Three nodes elect leaders for every group within 100 ticks; for the next 60 each group
/// gets a proposal every third tick, at its leader or forwarded by a follower, and node 3
/// is cut off from tick 115 to tick 145 (elections on both sides); some ticks come late;
/// the cluster idles for 40 ticks, long enough for every group to quiesce; node 3 is cut
/// off again from tick 200 to 240, which wakes the quiesced groups it led on the other two
/// (they elect), and the cluster idles again; at tick 282 node 3 campaigns in every group,
/// which wakes the quiesced followers on the other nodes with their leaders' nodes live
/// (their timers stopped: paused), while node 1's batches to node 2 are lost until tick
/// 330, so that node 2 declares node 1 down.
/// Returns the trace and the rests the nodes took.
fn script(rest: bool) -> (Trace, u64) {
    let mut sim = Sim::new(GROUPS);
    for node in &mut sim.nodes {
        node.rests.off = !rest;
    }
    for t in 0..380u64 {
        let cut = (115..145).contains(&t) || (200..240).contains(&t);
        // Node 1's batches to node 2 lost: node 2 hears node 1 again only after it
        // declared it down.
        let one_way = (282..330).contains(&t);
        if t == 282 {
            for id in 1..=GROUPS {
                sim.nodes[2].campaign(g(id)).unwrap();
            }
        }
        if (100..160).contains(&t) {
            for id in (1..=GROUPS).filter(|id| (t + id) % 3 == 0) {
                let at = ((t + id) % 3) as usize;
                let _ = sim.nodes[at].propose(g(id), Bytes::from(format!("{t}-{id}")));
            }
        }
        for node in &mut sim.nodes {
            if t % 17 == 5 {
                node.tick_late(2);
            } else {
                node.tick();
            }
        }
        sim.run_filtered(|b| {
            (!cut || b.from != n(3) && b.to != n(3)) && (!one_way || b.from != n(1) || b.to != n(2))
        });
    }
    let trace = Trace {
        sent: sim
            .logs
            .iter_mut()
            .map(|l| std::mem::take(&mut l.sent))
            .collect(),
        outcomes: sim
            .logs
            .iter_mut()
            .map(|l| std::mem::take(&mut l.outcomes))
            .collect(),
        applied: (0..3)
            .map(|i| (1..=GROUPS).map(|id| sim.commands(i, g(id))).collect())
            .collect(),
        active: [0, 1, 2].map(|i| sim.nodes[i].active_group_count()),
        elections: sim
            .nodes
            .iter()
            .map(|n| n.stats.elections_started)
            .collect(),
    };
    let taken = sim.nodes.iter().map(|n| n.rests.taken).sum();
    (trace, taken)
}

/// The same script sends the same batches, ends the same requests and applies the same
/// entries with rests as without: a resting follower's missed ticks are counted before
/// anything reaches it, and a rest ends when the follower's ticks would do more than count.
/// The script elects, replicates, cuts a node off (elections follow), idles until
/// quiescence, and wakes quiesced followers paused, with late ticks among them; rests were
/// taken.
#[test]
fn resting_followers_change_nothing_a_node_does() {
    let (with, taken) = script(true);
    let (without, none) = script(false);
    assert_eq!(none, 0);
    assert!(taken > 300, "only {taken} rests taken");
    assert!(
        with.elections.iter().sum::<u64>() > GROUPS,
        "{:?}",
        with.elections
    );
    assert!(with.applied[0].iter().all(|c| !c.is_empty()));
    assert_eq!(with.active, [0, 0, 0], "every group quiesced");
    assert!(with == without, "outputs differ with rests");
}
