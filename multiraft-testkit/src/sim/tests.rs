//! The simulator's own tests: fault-free and all-fault runs, the violation report, determinism.

use super::{Faults, SimConfig, Simulation};

fn small(seed: u64) -> SimConfig {
    let mut c = SimConfig::for_seed(seed);
    c.groups = c.groups.min(8);
    c.secs = 20;
    c
}

#[test]
fn fault_free_run_commits_and_is_live() {
    let mut c = small(1);
    c.faults = Faults::none();
    let r = Simulation::new(c).run().unwrap_or_else(|v| panic!("{v}"));
    assert!(r.applied > 0, "{r:?}");
    assert!(r.liveness_us > 0);
    assert_eq!(r.batches_dropped, 0);
}

#[test]
fn every_fault_at_once() {
    for seed in 0..4 {
        let mut c = small(seed);
        c.faults = Faults::all();
        let r = Simulation::new(c).run().unwrap_or_else(|v| panic!("{v}"));
        assert!(r.crashes + r.partitions + r.storage_failures > 0, "{r:?}");
    }
}

#[test]
fn violation_prints_seed_trace_and_replay_command() {
    let c = SimConfig::for_seed(77);
    let v = super::Violation {
        invariant: "election safety (Raft §5.2)".to_string(),
        seed: 77,
        step: 12,
        at_us: 1_500_000,
        detail: "g1: both n1 and n2 became leader in term 3".to_string(),
        trace_tail: vec!["line one".to_string(), "line two".to_string()],
        setup: c.summary(),
        replay: c.replay_command(),
    };
    let text = v.to_string();
    assert!(text.contains("violation of election safety"), "{text}");
    assert!(
        text.contains("seed 77 at step 12 (1.500000 simulated s)"),
        "{text}"
    );
    assert!(text.contains("    line two"), "{text}");
    assert!(
        text.contains(&format!(
            "cargo run --release -p multiraft-testkit --bin sim -- --seeds 1 --start 77 --nodes {} --groups {} --secs 60",
            c.nodes, c.groups
        )),
        "{text}"
    );
}

#[test]
fn same_seed_same_trace_hash() {
    let a = Simulation::new(small(42))
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    let b = Simulation::new(small(42))
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a, b);
    let c = Simulation::new(small(43))
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    assert_ne!(a.trace_hash, c.trace_hash);
}
