//! The built-in application: a key-value store ([`KvApp`]), its command encoding, its
//! client workload and the linearizability check of its history.
//!
//! Every replica applies committed commands to its own copy. A proposal is appended at most
//! once (forwarded proposals are never duplicated), so the store keeps no client-session
//! table; a duplicate would be reported by the request-outcome invariant (one proposal
//! applied at two indexes) before the history is checked.

use std::collections::HashMap;

use multiraft_core::{Bytes, GroupId, NodeId};

use super::SimRng;
use super::app::{ClientOp, ClientOutcome, HistoryVerdict, SimApp, SimReplica};
use super::linearizability::{
    Key, KvOp, KvOperation, KvOutcome, KvResult, Linearizability, Value, check_kv,
};

/// Keys per group: few, so that operations on one key are concurrent often.
pub(crate) const KEYS_PER_GROUP: u64 = 4;

/// The checker's key for `key` of `group`: keys of different groups never collide.
pub(crate) fn global_key(group: GroupId, key: Key) -> Key {
    group.0 * KEYS_PER_GROUP + key
}

pub(crate) fn encode(op: &KvOp) -> Bytes {
    let (tag, key, a, b) = match op {
        KvOp::Put { key, value } => (0u8, *key, *value, 0),
        KvOp::Get { key } => (1, *key, 0, 0),
        KvOp::Cas {
            key,
            expected: None,
            new,
        } => (2, *key, *new, 0),
        KvOp::Cas {
            key,
            expected: Some(e),
            new,
        } => (3, *key, *new, *e),
    };
    let mut v = Vec::with_capacity(25);
    v.push(tag);
    for x in [key, a, b] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

pub(crate) fn decode(data: &[u8]) -> Option<KvOp> {
    if data.len() != 25 {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(data[1 + 8 * i..9 + 8 * i].try_into().expect("8"));
    let (key, a, b) = (word(0), word(1), word(2));
    Some(match data[0] {
        0 => KvOp::Put { key, value: a },
        1 => KvOp::Get { key },
        2 => KvOp::Cas {
            key,
            expected: None,
            new: a,
        },
        3 => KvOp::Cas {
            key,
            expected: Some(b),
            new: a,
        },
        _ => return None,
    })
}

/// One replica's copy of one group's store: the [`SimApp::Replica`] of [`KvApp`].
#[derive(Debug, Default)]
pub struct KvReplica {
    map: HashMap<Key, Value>,
}

impl SimReplica for KvReplica {
    /// `None` for bytes that are not a command of this model.
    type Output = Option<KvResult>;

    fn apply(&mut self, _index: u64, data: &[u8]) -> Option<KvResult> {
        Some(match decode(data)? {
            KvOp::Put { key, value } => {
                self.map.insert(key, value);
                KvResult::Put
            }
            KvOp::Get { key } => KvResult::Get(self.map.get(&key).copied()),
            KvOp::Cas { key, expected, new } => {
                let ok = self.map.get(&key).copied() == expected;
                if ok {
                    self.map.insert(key, new);
                }
                KvResult::Cas(ok)
            }
        })
    }

    /// A get, answered from the replica's map; anything else is not a query of this model
    /// (answered `None`, as `apply` answers bytes it cannot decode).
    fn query(&self, query: &[u8]) -> Option<Option<KvResult>> {
        Some(match decode(query) {
            Some(KvOp::Get { key }) => Some(KvResult::Get(self.map.get(&key).copied())),
            _ => None,
        })
    }

    /// The map as (key, value) pairs of little-endian words, in key order.
    fn snapshot(&self) -> Option<Vec<u8>> {
        let mut pairs: Vec<(&Key, &Value)> = self.map.iter().collect();
        pairs.sort_unstable();
        Some(
            pairs
                .into_iter()
                .flat_map(|(k, v)| k.to_le_bytes().into_iter().chain(v.to_le_bytes()))
                .collect(),
        )
    }

    fn restore(&mut self, snapshot: &[u8]) -> bool {
        if !snapshot.len().is_multiple_of(16) {
            return false;
        }
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        self.map = snapshot
            .chunks_exact(16)
            .map(|p| (word(&p[..8]), word(&p[8..])))
            .collect();
        true
    }
}

/// The built-in application, run by [`Simulation::new`](super::Simulation::new): a
/// key-value store per group (put / get / compare-and-set on a few keys, so that operations
/// on one key are often concurrent; most gets are reads without a log write, served under
/// every `ReadPolicy`), whose client history is checked at the end by the
/// [Wing–Gong–Lowe linearizability checker](super::linearizability). It has no per-step
/// invariant of its own: the Raft invariants and the request-outcome invariant (every
/// replica computes the same result at each index) cover its replicas.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvApp;

impl SimApp for KvApp {
    type Replica = KvReplica;

    fn new_replica(&self, _node: NodeId, _group: GroupId) -> KvReplica {
        KvReplica::default()
    }

    /// Three client operations in ten are gets served as reads (`Node::read`, no log
    /// write); `next_command` makes the rest.
    fn next_query(&mut self, _group: GroupId, rng: &mut SimRng) -> Option<Vec<u8>> {
        rng.chance(300).then(|| {
            let key = rng.below(KEYS_PER_GROUP);
            encode(&KvOp::Get { key }).to_vec()
        })
    }

    /// Puts, compare-and-sets, and now and then a get through the log (most gets are reads,
    /// see `next_query`; both kinds are checked against each other).
    fn next_command(&mut self, _group: GroupId, rng: &mut SimRng) -> Vec<u8> {
        let key = rng.below(KEYS_PER_GROUP);
        let op = match rng.below(10) {
            0..=4 => KvOp::Put {
                key,
                value: rng.below(8),
            },
            5 => KvOp::Get { key },
            _ => KvOp::Cas {
                key,
                expected: if rng.chance(200) {
                    None
                } else {
                    Some(rng.below(8))
                },
                new: rng.below(8),
            },
        };
        encode(&op).to_vec()
    }

    fn check_history(&mut self, history: &[ClientOp<Option<KvResult>>]) -> HistoryVerdict {
        let ops: Vec<KvOperation> = history
            .iter()
            .filter_map(|o| {
                let op = decode(&o.command)?;
                let op = match op {
                    KvOp::Put { key, value } => KvOp::Put {
                        key: global_key(o.group, key),
                        value,
                    },
                    KvOp::Get { key } => KvOp::Get {
                        key: global_key(o.group, key),
                    },
                    KvOp::Cas { key, expected, new } => KvOp::Cas {
                        key: global_key(o.group, key),
                        expected,
                        new,
                    },
                };
                let outcome = match &o.outcome {
                    ClientOutcome::Applied(Some(r)) => KvOutcome::Ok(r.clone()),
                    ClientOutcome::Applied(None) | ClientOutcome::Indeterminate => {
                        KvOutcome::Indeterminate
                    }
                    ClientOutcome::Rejected => KvOutcome::Failed,
                };
                Some(KvOperation::new(
                    o.client.0,
                    op,
                    o.invoked_at_us,
                    o.returned_at_us.unwrap_or(u64::MAX),
                    outcome,
                ))
            })
            .collect();
        match check_kv(&ops) {
            Linearizability::Ok => HistoryVerdict::Ok,
            Linearizability::Unknown { .. } => HistoryVerdict::Unknown,
            Linearizability::Violation { key } => {
                let text: Vec<String> = ops
                    .iter()
                    .filter(|o| o.op.key() == key && o.outcome != KvOutcome::Failed)
                    .take(30)
                    .map(|o| {
                        format!(
                            "n{} {:?} [{}..{}] {:?}",
                            o.client,
                            o.op,
                            o.invoked_at,
                            if o.returned_at == u64::MAX {
                                "?".to_string()
                            } else {
                                o.returned_at.to_string()
                            },
                            o.outcome
                        )
                    })
                    .collect();
                HistoryVerdict::Violation {
                    property: "linearizability of the key-value clients (Wing–Gong–Lowe)",
                    detail: format!(
                        "group {} key {}: no linearization of: {}",
                        key / KEYS_PER_GROUP,
                        key % KEYS_PER_GROUP,
                        text.join("; ")
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for op in [
            KvOp::Put { key: 1, value: 2 },
            KvOp::Get { key: 3 },
            KvOp::Cas {
                key: 4,
                expected: None,
                new: 5,
            },
            KvOp::Cas {
                key: 6,
                expected: Some(7),
                new: 8,
            },
        ] {
            assert_eq!(decode(&encode(&op)), Some(op));
        }
        assert_eq!(decode(b"g1:7"), None);
    }

    #[test]
    fn replicas_apply_puts_gets_and_cas() {
        let mut r = KvReplica::default();
        let put = encode(&KvOp::Put { key: 1, value: 1 });
        let cas = encode(&KvOp::Cas {
            key: 1,
            expected: Some(1),
            new: 2,
        });
        assert_eq!(r.apply(1, &put), Some(KvResult::Put));
        assert_eq!(r.apply(2, &cas), Some(KvResult::Cas(true)));
        assert_eq!(r.apply(3, &cas), Some(KvResult::Cas(false)));
        let get = encode(&KvOp::Get { key: 1 });
        assert_eq!(r.apply(4, &get), Some(KvResult::Get(Some(2))));
        assert_eq!(r.apply(5, b"g1:7"), None);
    }
}
