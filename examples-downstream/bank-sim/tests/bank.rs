//! The ledger under the simulator's faults (crashes, partitions, loss, slow and failing
//! disks, clock skew — each seed's own mix), through the public API only.

use bank_sim::{ACCOUNTS, Answer, Ledger, OPENING, Transfer};
use multiraft_core::{GroupId, NodeId};
use multiraft_testkit::sim::{
    ClientOp, ClientOutcome, HistoryVerdict, SimApp, SimConfig, SimReplica, SimRng, Simulation,
};

/// The simulator's replica: the production ledger.
struct Replica(Ledger);

impl SimReplica for Replica {
    type Output = Answer;

    fn apply(&mut self, _index: u64, command: &[u8]) -> Answer {
        self.0.apply(command)
    }
}

/// The app: ledgers, random transfers, money conserved.
struct LedgerApp;

impl SimApp for LedgerApp {
    type Replica = Replica;

    fn new_replica(&self, _node: NodeId, _group: GroupId) -> Replica {
        Replica(Ledger::default())
    }

    fn next_command(&mut self, _group: GroupId, rng: &mut SimRng) -> Vec<u8> {
        Transfer {
            from: rng.below(ACCOUNTS as u64) as u8,
            to: rng.below(ACCOUNTS as u64) as u8,
            amount: rng.range(1, 2 * OPENING as u64) as u32,
        }
        .encode()
    }

    fn check_replicas(
        &self,
        group: GroupId,
        replicas: &[(NodeId, &Replica)],
    ) -> Result<(), String> {
        for (node, r) in replicas {
            if r.0.total() != OPENING * ACCOUNTS as i64 || r.0.balances.iter().any(|b| *b < 0) {
                return Err(format!("{node} of {group}: {:?}", r.0.balances));
            }
        }
        Ok(())
    }

    /// A transfer reported applied was a valid command; one reported rejected never moved
    /// money (the simulator checks that it was applied nowhere).
    fn check_history(&mut self, history: &[ClientOp<Answer>]) -> HistoryVerdict {
        match history
            .iter()
            .find(|op| op.outcome == ClientOutcome::Applied(Answer::Invalid))
        {
            None => HistoryVerdict::Ok,
            Some(op) => HistoryVerdict::Violation {
                property: "every client transfer is valid",
                detail: format!("{op:?}"),
            },
        }
    }
}

/// The seed's own configuration: 3–5 nodes, up to 100 groups, 60 simulated seconds, the
/// seed's fault mix.
fn config(seed: u64) -> SimConfig {
    SimConfig::for_seed(seed)
}

#[test]
fn money_is_conserved_under_faults() {
    let mut applied = 0;
    for seed in 0..20 {
        match Simulation::with_app(config(seed), LedgerApp).run() {
            Ok(report) => applied += report.applied,
            Err(v) => panic!("{v}"),
        }
    }
    assert!(applied > 0);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = Simulation::with_app(config(3), LedgerApp)
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    let b = Simulation::with_app(config(3), LedgerApp)
        .run()
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(a.trace_hash, b.trace_hash);
}

/// A broken state machine is caught: a ledger that mints money on every transfer.
#[test]
fn a_broken_ledger_is_reported() {
    struct Minting;
    impl SimApp for Minting {
        type Replica = Replica;
        fn new_replica(&self, node: NodeId, group: GroupId) -> Replica {
            LedgerApp.new_replica(node, group)
        }
        fn next_command(&mut self, group: GroupId, rng: &mut SimRng) -> Vec<u8> {
            LedgerApp.next_command(group, rng)
        }
        fn check_replicas(
            &self,
            group: GroupId,
            replicas: &[(NodeId, &Replica)],
        ) -> Result<(), String> {
            // The same invariant, over replicas that mint one unit on every apply.
            let minted: Vec<(NodeId, Replica)> = replicas
                .iter()
                .map(|(n, r)| {
                    let mut l = r.0.clone();
                    l.balances[0] += 1;
                    (*n, Replica(l))
                })
                .collect();
            let view: Vec<(NodeId, &Replica)> = minted.iter().map(|(n, r)| (*n, r)).collect();
            LedgerApp.check_replicas(group, &view)
        }
    }
    let v = Simulation::with_app(config(1), Minting)
        .run()
        .expect_err("minting breaks conservation");
    assert!(v.invariant.contains("check_replicas"), "{v}");
}
