//! The key-value state machine the simulated clients drive, and its command encoding.
//!
//! Every replica applies committed commands to its own copy. Commands carry their
//! [`ProposalId`]; a replica remembers the result of every id it applied and answers a
//! duplicate (the network may deliver a forwarded proposal twice, so the leader may append
//! it twice) with the first result, without applying it again — the client-session
//! deduplication of Ongaro's dissertation §6.3, without which a duplicated write would take
//! effect twice and the history would not be linearizable.

use std::collections::HashMap;

use multiraft_core::{Bytes, GroupId, ProposalId};

use super::linearizability::{Key, KvOp, KvResult, Value};

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

/// One replica's copy of one group's store.
#[derive(Default)]
pub(crate) struct KvReplica {
    map: HashMap<Key, Value>,
    results: HashMap<ProposalId, KvResult>,
}

impl KvReplica {
    /// Applies a committed command; `None` for bytes that are not a command of this model.
    pub(crate) fn apply(&mut self, id: ProposalId, data: &[u8]) -> Option<KvResult> {
        if let Some(r) = self.results.get(&id) {
            return Some(r.clone());
        }
        let r = match decode(data)? {
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
        };
        self.results.insert(id, r.clone());
        Some(r)
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
    fn duplicates_take_effect_once() {
        let mut r = KvReplica::default();
        let id = |seq| ProposalId {
            node: multiraft_core::NodeId(1),
            seq,
        };
        let put = encode(&KvOp::Put { key: 1, value: 1 });
        let cas = encode(&KvOp::Cas {
            key: 1,
            expected: Some(1),
            new: 2,
        });
        assert_eq!(r.apply(id(1), &put), Some(KvResult::Put));
        assert_eq!(r.apply(id(2), &cas), Some(KvResult::Cas(true)));
        assert_eq!(r.apply(id(1), &put), Some(KvResult::Put), "duplicate");
        let get = encode(&KvOp::Get { key: 1 });
        assert_eq!(r.apply(id(3), &get), Some(KvResult::Get(Some(2))));
    }
}
