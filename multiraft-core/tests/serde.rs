//! `Config` and the status types serialize: an application reads its configuration from a
//! file and serves its status as JSON.

use multiraft_core::{Config, GroupId, Membership, Node, NodeId, NodeReport};

#[test]
fn a_config_round_trips_and_missing_fields_take_their_defaults() {
    let mut config = Config::default();
    config.election_timeout_min_ticks = 21;
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<Config>(&text).unwrap(), config);

    let partial: Config = serde_json::from_str(r#"{"heartbeat_interval_ticks": 3}"#).unwrap();
    let mut expected = Config::default();
    expected.heartbeat_interval_ticks = 3;
    assert_eq!(partial, expected);
    assert!(serde_json::from_str::<Config>(r#"{"heartbeat_interval_ticks": "x"}"#).is_err());
}

#[test]
fn a_node_report_round_trips() {
    let mut node = Node::new(NodeId(1), Config::default(), 1).unwrap();
    node.create_group(GroupId(4), Membership::voters([1, 2, 3]))
        .unwrap();
    let report = node.report(GroupId(0), 10);
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("\"role\":\"Follower\""), "{text}");
    assert_eq!(serde_json::from_str::<NodeReport>(&text).unwrap(), report);
}
