//! Admission control (docs/design.md §11): a node whose proposals wait longer than
//! `Config::max_commit_wait_ticks` to be applied refuses new ones with `Busy`, one tick at a
//! time, for as long as that goes on. One single-voter group; a slow disk is a write kept in
//! flight while ticks pass.

use super::*;
use crate::testing::{self, Io};

/// Sends nowhere: a single-voter group has no one to send to.
struct Alone;

impl Io for Alone {
    fn send(&mut self, _batch: MessageBatch) {}
}

const LIMIT: u32 = 3;

fn busy() -> ProposeError {
    ProposeError::Busy {
        limit: "max_commit_wait_ticks",
    }
}

/// Node 1 leading group 1 alone, with `max_commit_wait_ticks` at [`LIMIT`].
fn led() -> Node {
    let mut node = new_node(
        1,
        Config {
            max_commit_wait_ticks: LIMIT,
            ..strict()
        },
    );
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, &mut Alone).unwrap();
    node
}

fn propose(node: &mut Node, data: &'static str) -> Result<RequestId, ProposeError> {
    node.propose(g(1), Bytes::from_static(data.as_bytes()))
}

/// Proposes once, keeps the proposal's write in flight for `ticks` ticks, then makes it
/// durable and applies it: the proposal waited `ticks` ticks.
fn apply_after(node: &mut Node, ticks: u32) {
    propose(node, "slow").unwrap();
    let ready = node.ready().expect("the proposal is written");
    let in_flight = testing::begin(node, ready, &mut Alone);
    for _ in 0..ticks {
        node.tick();
    }
    in_flight.acknowledge(node).deliver(node, &mut Alone);
    let applied = node.group_status(g(1)).unwrap().applied;
    testing::settle(node, &mut Alone).unwrap();
    assert_eq!(node.group_status(g(1)).unwrap().applied, applied + 1);
}

/// A proposal applied after more than the limit makes the node refuse for the next tick,
/// and the refused proposal never reaches the log; the tick after, with nothing applied,
/// proposals are taken again.
#[test]
fn a_proposal_applied_past_the_limit_makes_the_node_refuse_for_a_tick() {
    let mut node = led();
    apply_after(&mut node, LIMIT + 1);
    node.tick();
    let last = node.group_status(g(1)).unwrap().last_index;
    assert_eq!(propose(&mut node, "refused"), Err(busy()));
    assert_eq!(node.group_status(g(1)).unwrap().last_index, last);
    assert_eq!(node.ready().map(|r| r.write.is_empty()), None);
    node.tick();
    assert!(propose(&mut node, "taken").is_ok());
}

/// At the limit, not past it, nothing is refused.
#[test]
fn a_proposal_applied_at_the_limit_refuses_nothing() {
    let mut node = led();
    apply_after(&mut node, LIMIT);
    node.tick();
    assert!(propose(&mut node, "taken").is_ok());
}

/// The fastest wait of a tick decides, not the slowest: a proposal that waited long, applied
/// beside one that came through at once, refuses nothing (a group without quorum holds old
/// proposals, and says nothing about the node's load).
#[test]
fn one_slow_proposal_beside_a_fast_one_refuses_nothing() {
    let mut node = led();
    propose(&mut node, "slow").unwrap();
    let ready = node.ready().expect("the slow proposal is written");
    let in_flight = testing::begin(&mut node, ready, &mut Alone);
    for _ in 0..=LIMIT {
        node.tick();
    }
    // Taken now, written once the slow one's write is done, applied with it.
    propose(&mut node, "fast").unwrap();
    in_flight
        .acknowledge(&mut node)
        .deliver(&mut node, &mut Alone);
    testing::settle(&mut node, &mut Alone).unwrap();
    let status = node.group_status(g(1)).unwrap();
    assert_eq!(status.applied, status.last_index);
    node.tick();
    assert!(propose(&mut node, "taken").is_ok());
}

/// A zero limit is refused: a proposal applied a tick after it was taken would make the
/// node refuse.
#[test]
fn a_zero_limit_is_an_invalid_config() {
    let config = Config {
        max_commit_wait_ticks: 0,
        ..Config::default()
    };
    assert_eq!(
        config.validate().unwrap_err().field,
        "max_commit_wait_ticks"
    );
}
