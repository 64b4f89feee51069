//! A node whose event loop stalled (docs/design.md §4.3): the tick it serves late counts the
//! ticks it missed on the clock that leases rest on, and one on the timers and the count of
//! its peers' silence.

use super::reads::{led_by_node_1, taken};
use super::*;
use crate::group::ReadPolicy;

/// A leader that stalls for longer than its lease serves no read on that lease when it
/// resumes: its followers' nodes may have declared it down and elected another leader
/// meanwhile. The lease read falls back to a round.
#[test]
fn a_stalled_leader_counts_the_missed_ticks_against_its_lease() {
    let mut sim = led_by_node_1(10);
    let commit = sim.nodes[0].group_status(g(1)).unwrap().commit;
    assert_eq!(
        sim.nodes[0].read(g(1), ReadPolicy::Lease),
        Ok(ReadStart::Now { index: commit }),
        "served on the lease before the stall"
    );
    let lease = u64::from(strict().lease_ticks);
    let status = sim.nodes[0].status();
    sim.nodes[0].tick_late(lease); // one tick served, `lease + 1` passed
    taken(sim.nodes[0].read(g(1), ReadPolicy::Lease));
    let after = sim.nodes[0].status();
    assert_eq!(after.ticks, status.ticks + lease + 1);
    assert_eq!(after.ticks_missed, status.ticks_missed + lease);
}

/// A node's own stall is one tick of its peers' silence, whatever its length: when it
/// resumes, it does not declare down the peers it could not hear while it was stalled.
#[test]
fn a_nodes_own_stall_does_not_make_its_peers_look_silent() {
    let mut sim = led_by_node_1(10);
    let timeout = u64::from(strict().election_timeout_min_ticks);
    sim.nodes[0].tick_late(100 * timeout);
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(true));
    assert_eq!(sim.nodes[0].peer_live(n(3)), Some(true));
    // Silence served tick by tick still counts.
    for _ in 0..=timeout {
        sim.nodes[0].tick();
    }
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(false));
}
