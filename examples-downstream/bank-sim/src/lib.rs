//! A tiny ledger: the state machine this crate would run on multiraft in production, and
//! that its tests (`tests/bank.rs`) run under the deterministic simulator of
//! `multiraft-testkit`.

/// Accounts per ledger.
pub const ACCOUNTS: usize = 3;
/// Each account's opening balance.
pub const OPENING: i64 = 50;

/// A command: move `amount` from account `from` to account `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The account debited.
    pub from: u8,
    /// The account credited.
    pub to: u8,
    /// How much.
    pub amount: u32,
}

impl Transfer {
    /// The command's bytes: `from`, `to`, `amount` (little-endian).
    pub fn encode(self) -> Vec<u8> {
        let mut v = vec![self.from, self.to];
        v.extend_from_slice(&self.amount.to_le_bytes());
        v
    }

    /// The command in `data`, if it is one.
    pub fn decode(data: &[u8]) -> Option<Transfer> {
        let [from, to, amount @ ..] = data else {
            return None;
        };
        Some(Transfer {
            from: *from,
            to: *to,
            amount: u32::from_le_bytes(amount.try_into().ok()?),
        })
    }
}

/// What applying a command answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The money moved.
    Moved,
    /// The debited account had too little; nothing moved.
    NoFunds,
    /// Not a valid transfer; nothing moved.
    Invalid,
}

/// One replica of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// The balances, by account.
    pub balances: [i64; ACCOUNTS],
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            balances: [OPENING; ACCOUNTS],
        }
    }
}

impl Ledger {
    /// Applies a committed command.
    pub fn apply(&mut self, command: &[u8]) -> Answer {
        let Some(t) = Transfer::decode(command) else {
            return Answer::Invalid;
        };
        let (from, to) = (usize::from(t.from), usize::from(t.to));
        if from >= ACCOUNTS || to >= ACCOUNTS {
            return Answer::Invalid;
        }
        let amount = i64::from(t.amount);
        if self.balances[from] < amount {
            return Answer::NoFunds;
        }
        self.balances[from] -= amount;
        self.balances[to] += amount;
        Answer::Moved
    }

    /// The money in the ledger.
    pub fn total(&self) -> i64 {
        self.balances.iter().sum()
    }
}
