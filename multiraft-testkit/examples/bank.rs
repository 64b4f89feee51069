//! Your own state machine under the simulator's faults: a bank.
//!
//! Each group holds a few accounts; clients transfer money between accounts of one group,
//! and a transfer without the funds fails. The app's invariant, checked after every step on
//! every live replica: in each group the balances add up to the initial total (money is
//! conserved) and no balance is negative. Clients also read balances, without a log write
//! ([`SimApp::next_query`], answered by [`SimReplica::query`]). Every Raft invariant and
//! the request-outcome invariant (every replica computes the same result at each index) run
//! as usual.
//!
//! ```text
//! cargo run --release -p multiraft-testkit --example bank -- --seeds 200
//! ```
//!
//! prints `bank: 200 seeds, 0 violations`, or each violation (with the command that replays
//! its seed) and exits non-zero. `--start S` starts at seed `S`.
//!
//! Copy this file into your crate: replace [`Bank`] and [`Accounts`] with your state
//! machine, workload and invariant; only public items of `multiraft-testkit` are used.

use multiraft_core::{GroupId, NodeId};
use multiraft_testkit::sim::{SimApp, SimConfig, SimReplica, SimReport, SimRng, Simulation};

/// Accounts per group.
const ACCOUNTS: usize = 4;
/// Each account's opening balance.
const OPENING: i64 = 100;

/// A transfer of `amount` from account `from` to account `to` (of the group it is proposed
/// to), encoded as 10 bytes: `from`, `to`, `amount` (little-endian `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transfer {
    from: u8,
    to: u8,
    amount: u64,
}

impl Transfer {
    fn encode(self) -> Vec<u8> {
        let mut v = vec![self.from, self.to];
        v.extend_from_slice(&self.amount.to_le_bytes());
        v
    }

    fn decode(data: &[u8]) -> Option<Transfer> {
        let [from, to, amount @ ..] = data else {
            return None;
        };
        Some(Transfer {
            from: *from,
            to: *to,
            amount: u64::from_le_bytes(amount.try_into().ok()?),
        })
    }
}

/// What a transfer returns to its client.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TransferResult {
    Done,
    InsufficientFunds,
    /// Not a transfer of this bank (bad bytes or account).
    Invalid,
    /// A balance query's answer (a read, served without a log write).
    Balance(i64),
}

/// One node's copy of one group's accounts.
#[derive(Debug)]
struct Accounts {
    balances: [i64; ACCOUNTS],
    /// The last index applied: replicas of a group are compared at the same index.
    applied: u64,
}

impl SimReplica for Accounts {
    type Output = TransferResult;

    fn apply(&mut self, index: u64, command: &[u8]) -> TransferResult {
        self.applied = index;
        let Some(t) = Transfer::decode(command) else {
            return TransferResult::Invalid;
        };
        let (from, to) = (usize::from(t.from), usize::from(t.to));
        let Ok(amount) = i64::try_from(t.amount) else {
            return TransferResult::Invalid;
        };
        if from >= ACCOUNTS || to >= ACCOUNTS {
            return TransferResult::Invalid;
        }
        if self.balances[from] < amount {
            return TransferResult::InsufficientFunds;
        }
        self.balances[from] -= amount;
        self.balances[to] += amount;
        TransferResult::Done
    }

    /// A balance query: one byte, the account.
    fn query(&self, query: &[u8]) -> Option<TransferResult> {
        Some(match query {
            [account] if usize::from(*account) < ACCOUNTS => {
                TransferResult::Balance(self.balances[usize::from(*account)])
            }
            _ => TransferResult::Invalid,
        })
    }
}

/// The bank: its replicas, its clients and its invariant.
#[derive(Debug, Default)]
struct Bank;

impl SimApp for Bank {
    type Replica = Accounts;

    fn new_replica(&self, _node: NodeId, _group: GroupId) -> Accounts {
        Accounts {
            balances: [OPENING; ACCOUNTS],
            applied: 0,
        }
    }

    /// One client operation in five reads a balance (through `Node::read`, no log write).
    fn next_query(&mut self, _group: GroupId, rng: &mut SimRng) -> Option<Vec<u8>> {
        rng.chance(200)
            .then(|| vec![rng.below(ACCOUNTS as u64) as u8])
    }

    fn next_command(&mut self, _group: GroupId, rng: &mut SimRng) -> Vec<u8> {
        // Amounts up to 1.5 opening balances, so that some transfers fail.
        Transfer {
            from: rng.below(ACCOUNTS as u64) as u8,
            to: rng.below(ACCOUNTS as u64) as u8,
            amount: rng.range(1, OPENING as u64 * 3 / 2),
        }
        .encode()
    }

    fn check_replicas(
        &self,
        group: GroupId,
        replicas: &[(NodeId, &Accounts)],
    ) -> Result<(), String> {
        let total = OPENING * ACCOUNTS as i64;
        for (node, r) in replicas {
            let sum: i64 = r.balances.iter().sum();
            if sum != total {
                return Err(format!(
                    "money is not conserved on {node} of {group} at index {}: balances {:?} add up to {sum}, not {total}",
                    r.applied, r.balances
                ));
            }
            if let Some(b) = r.balances.iter().find(|b| **b < 0) {
                return Err(format!(
                    "a negative balance ({b}) on {node} of {group} at index {}: {:?}",
                    r.applied, r.balances
                ));
            }
        }
        Ok(())
    }
}

/// One seed of the bank under the seed's full fault mix.
fn run_seed(seed: u64) -> Result<SimReport, String> {
    Simulation::with_app(SimConfig::for_seed(seed), Bank)
        .run()
        .map_err(|v| v.to_string())
}

fn main() {
    let mut seeds = 200u64;
    let mut start = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), value) {
            ("--seeds", Some(v)) => seeds = v,
            ("--start", Some(v)) => start = v,
            _ => {
                eprintln!("usage: bank [--seeds N] [--start S]");
                std::process::exit(2);
            }
        }
    }
    let mut violations = 0u64;
    for seed in start..start + seeds {
        if let Err(v) = run_seed(seed) {
            violations += 1;
            eprintln!("{v}\n");
        }
    }
    println!("bank: {seeds} seeds, {violations} violations");
    if violations > 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_round_trip_and_fail_without_funds() {
        let t = Transfer {
            from: 1,
            to: 2,
            amount: 70,
        };
        assert_eq!(Transfer::decode(&t.encode()), Some(t));
        let mut a = Bank.new_replica(NodeId(1), GroupId(1));
        assert_eq!(a.apply(1, &t.encode()), TransferResult::Done);
        assert_eq!(a.apply(2, &t.encode()), TransferResult::InsufficientFunds);
        assert_eq!(a.apply(3, b"x"), TransferResult::Invalid);
        assert_eq!(a.balances, [100, 30, 170, 100]);
        assert_eq!(a.query(&[1]), Some(TransferResult::Balance(30)));
        assert_eq!(a.query(&[9]), Some(TransferResult::Invalid));
        assert!(Bank.check_replicas(GroupId(1), &[(NodeId(1), &a)]).is_ok());
        a.balances[0] = -1;
        assert!(Bank.check_replicas(GroupId(1), &[(NodeId(1), &a)]).is_err());
    }

    #[test]
    fn the_bank_keeps_its_money_under_faults() {
        for seed in 0..3 {
            let mut config = SimConfig::for_seed(seed);
            config.secs = 20;
            let r = Simulation::with_app(config, Bank)
                .run()
                .unwrap_or_else(|v| panic!("{v}"));
            assert!(r.applied > 0, "{r:?}");
            assert!(r.reads_served() > 0, "{r:?}");
        }
    }

    #[test]
    fn same_seed_twice_same_trace_hash() {
        let a = run_seed(11).unwrap_or_else(|v| panic!("{v}"));
        let b = run_seed(11).unwrap_or_else(|v| panic!("{v}"));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a, b);
    }
}
