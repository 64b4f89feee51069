//! The key-value state machine of one group, its commands and answers, and which group a
//! key belongs to.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use multiraft_core::{Bytes, GroupId, SnapshotChunk, SnapshotData, SnapshotError, StateMachine};
use serde::{Deserialize, Serialize};

/// The most bytes of keys and values one snapshot chunk carries (one more pair may push
/// it over by that pair's size): a snapshot streams in pieces of about this size, whatever
/// the size of the whole state.
pub const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;

/// The group that holds `key`, of `groups` groups numbered from 1: FNV-1a of the key's
/// bytes. Stable across processes, builds and Rust versions (unlike `std`'s `Hasher`s),
/// which every node must agree on.
pub fn group_of(key: &str, groups: u64) -> GroupId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    GroupId(hash % groups.max(1) + 1)
}

/// A write, as proposed to a key's group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Sets `key` to `new` (`None`: removes it) if it holds `expected` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold.
        expected: Option<Bytes>,
        /// What to leave there.
        new: Option<Bytes>,
    },
}

/// What applying a [`KvCommand`] answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvAnswer {
    /// The write took effect; the key held `previous` before.
    Done {
        /// The value before.
        previous: Option<Bytes>,
    },
    /// A compare-and-set found `current` instead of its expected value: nothing changed.
    Mismatch {
        /// What the key holds.
        current: Option<Bytes>,
    },
    /// The command could not be decoded (a client of another version): nothing changed.
    Invalid,
}

impl KvCommand {
    /// The command's bytes, as proposed.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("a KvCommand always serializes"))
    }
}

impl KvAnswer {
    /// Decodes an answer; `None` for bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Option<KvAnswer> {
        postcard::from_bytes(bytes).ok()
    }

    fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("a KvAnswer always serializes"))
    }
}

/// Decodes the answer to a read: the key's value, if any.
pub fn decode_value(bytes: &[u8]) -> Option<Option<Bytes>> {
    postcard::from_bytes(bytes).ok()
}

/// One group's keys and values, in memory. A snapshot is the map streamed as records in
/// chunks of about [`SNAPSHOT_CHUNK_BYTES`]; a restart re-applies the log above the latest
/// snapshot. The map sits behind an `Arc` so that a snapshot is a reference taken at once
/// and read off the event loop, while later writes copy the map only if a snapshot is still
/// being streamed.
#[derive(Debug, Default)]
pub struct KvMachine {
    data: Arc<BTreeMap<String, Bytes>>,
    /// While restoring: the bytes of a record the previous chunk cut (at most one record,
    /// whose size the proposal limit bounds).
    partial: Vec<u8>,
}

impl StateMachine for KvMachine {
    fn apply(&mut self, _index: u64, command: &Bytes) -> Bytes {
        let Ok(command) = postcard::from_bytes::<KvCommand>(command) else {
            return KvAnswer::Invalid.encode();
        };
        let data = Arc::make_mut(&mut self.data);
        let answer = match command {
            KvCommand::Put { key, value } => KvAnswer::Done {
                previous: data.insert(key, value),
            },
            KvCommand::Delete { key } => KvAnswer::Done {
                previous: data.remove(&key),
            },
            KvCommand::Cas { key, expected, new } => {
                let current = data.get(&key).cloned();
                if current != expected {
                    KvAnswer::Mismatch { current }
                } else {
                    match new {
                        Some(v) => data.insert(key, v),
                        None => data.remove(&key),
                    };
                    KvAnswer::Done { previous: current }
                }
            }
        };
        answer.encode()
    }

    /// A query is a key (UTF-8); the answer is its value, encoded for [`decode_value`].
    fn query(&self, query: &Bytes) -> Bytes {
        let value = std::str::from_utf8(query)
            .ok()
            .and_then(|key| self.data.get(key));
        Bytes::from(postcard::to_stdvec(&value).expect("an Option<Bytes> always serializes"))
    }

    /// A stream of records, one per pair: its length (4 bytes, little-endian), then the
    /// pair (postcard). Records are grouped into chunks of about [`SNAPSHOT_CHUNK_BYTES`];
    /// the node may cut the stream elsewhere, and [`KvMachine::restore`] reads it whole.
    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        let data = Arc::clone(&self.data);
        let mut after: Option<String> = None;
        let mut done = false;
        Ok(SnapshotData::lazy(std::iter::from_fn(move || {
            if done {
                return None;
            }
            let range = match &after {
                None => data.range::<String, _>(..),
                Some(k) => data.range::<String, _>((Bound::Excluded(k), Bound::Unbounded)),
            };
            let mut chunk = Vec::new();
            let mut last = None;
            done = true;
            for (k, v) in range {
                if chunk.len() >= SNAPSHOT_CHUNK_BYTES {
                    done = false;
                    break;
                }
                let record = match postcard::to_stdvec(&(k, v)) {
                    Ok(r) => r,
                    Err(e) => return Some(Err(SnapshotError::Failed(e.to_string()))),
                };
                chunk.extend_from_slice(&(record.len() as u32).to_le_bytes());
                chunk.extend_from_slice(&record);
                last = Some(k);
            }
            after = last.cloned();
            // An empty map makes one empty chunk: a restore starts by clearing.
            Some(Ok(Bytes::from(chunk)))
        })))
    }

    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        if chunk.seq == 0 {
            self.data = Arc::default();
            self.partial.clear();
        }
        self.partial.extend_from_slice(&chunk.data);
        let data = Arc::make_mut(&mut self.data);
        let mut at = 0;
        // Every whole record; a record cut by the chunk's end waits for the next chunk.
        while let Some(len) = self.partial.get(at..at + 4) {
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let Some(record) = self.partial.get(at + 4..at + 4 + len) else {
                break;
            };
            let (key, value): (String, Bytes) = postcard::from_bytes(record)
                .map_err(|e| SnapshotError::Failed(format!("a kv snapshot record: {e}")))?;
            data.insert(key, value);
            at += 4 + len;
        }
        self.partial.drain(..at);
        if chunk.last && !self.partial.is_empty() {
            let left = self.partial.len();
            self.partial.clear();
            return Err(SnapshotError::Failed(format!(
                "a kv snapshot ends inside a record ({left} bytes left)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use multiraft_core::{SnapshotError, SnapshotMeta, StateMachine};

    use super::*;

    fn apply(m: &mut KvMachine, c: KvCommand) -> KvAnswer {
        KvAnswer::decode(&m.apply(1, &c.encode())).unwrap()
    }

    fn get(m: &KvMachine, key: &str) -> Option<Bytes> {
        decode_value(&m.query(&Bytes::copy_from_slice(key.as_bytes()))).unwrap()
    }

    #[test]
    fn writes_answer_what_they_found() {
        let mut m = KvMachine::default();
        let put = |k: &str, v: &'static str| KvCommand::Put {
            key: k.into(),
            value: Bytes::from_static(v.as_bytes()),
        };
        assert_eq!(
            apply(&mut m, put("a", "1")),
            KvAnswer::Done { previous: None }
        );
        assert_eq!(
            apply(&mut m, put("a", "2")),
            KvAnswer::Done {
                previous: Some(Bytes::from_static(b"1"))
            }
        );
        let cas = |expected: Option<&'static str>, new: Option<&'static str>| KvCommand::Cas {
            key: "a".into(),
            expected: expected.map(|v| Bytes::from_static(v.as_bytes())),
            new: new.map(|v| Bytes::from_static(v.as_bytes())),
        };
        assert_eq!(
            apply(&mut m, cas(Some("1"), Some("3"))),
            KvAnswer::Mismatch {
                current: Some(Bytes::from_static(b"2"))
            }
        );
        assert_eq!(get(&m, "a"), Some(Bytes::from_static(b"2")));
        assert!(matches!(
            apply(&mut m, cas(Some("2"), None)),
            KvAnswer::Done { .. }
        ));
        assert_eq!(get(&m, "a"), None);
        assert!(matches!(
            apply(&mut m, cas(None, Some("4"))),
            KvAnswer::Done { .. }
        ));
        assert_eq!(
            apply(&mut m, KvCommand::Delete { key: "a".into() }),
            KvAnswer::Done {
                previous: Some(Bytes::from_static(b"4"))
            }
        );
        assert_eq!(
            KvAnswer::decode(&m.apply(2, &Bytes::from_static(b"\xff\xff\xff"))),
            Some(KvAnswer::Invalid)
        );
    }

    /// A state of several chunks survives a snapshot and restore, a snapshot describes the
    /// state when it was taken even if writes follow, and an empty state restores empty.
    #[test]
    fn snapshots_stream_in_chunks_and_restore_the_state() {
        let mut m = KvMachine::default();
        let value = Bytes::from(vec![7u8; 1000]);
        for i in 0..300 {
            apply(
                &mut m,
                KvCommand::Put {
                    key: format!("key-{i:04}"),
                    value: value.clone(),
                },
            );
        }
        let chunks: Vec<Bytes> = m.snapshot().unwrap().map(Result::unwrap).collect();
        apply(
            &mut m,
            KvCommand::Delete {
                key: "key-0000".into(),
            },
        );
        assert!(
            chunks.len() >= 300 * 1000 / SNAPSHOT_CHUNK_BYTES,
            "{} chunks",
            chunks.len()
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.len() <= SNAPSHOT_CHUNK_BYTES + 2048)
        );

        let mut restored = KvMachine::default();
        apply(
            &mut restored,
            KvCommand::Put {
                key: "stale".into(),
                value: value.clone(),
            },
        );
        let meta = SnapshotMeta::default();
        for (seq, data) in chunks.iter().enumerate() {
            let chunk = SnapshotChunk {
                meta: meta.clone(),
                seq: seq as u32,
                data: data.clone(),
                last: seq + 1 == chunks.len(),
            };
            restored.restore(&chunk).unwrap();
        }
        assert_eq!(restored.data.len(), 300);
        assert_eq!(get(&restored, "key-0000"), Some(value));
        assert_eq!(get(&restored, "stale"), None);

        // The node may cut the stream anywhere (`Config::snapshot_chunk_bytes`): records
        // cut in two are read across chunks; a stream that ends inside a record is refused.
        let stream: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let recut: Vec<Bytes> = stream.chunks(777).map(Bytes::copy_from_slice).collect();
        let feed = |m: &mut KvMachine, pieces: &[Bytes]| -> Result<(), SnapshotError> {
            for (seq, data) in pieces.iter().enumerate() {
                m.restore(&SnapshotChunk {
                    meta: meta.clone(),
                    seq: seq as u32,
                    data: data.clone(),
                    last: seq + 1 == pieces.len(),
                })?;
            }
            Ok(())
        };
        let mut again = KvMachine::default();
        feed(&mut again, &recut).unwrap();
        assert_eq!(again.data, restored.data);
        let cut_short = &recut[..recut.len() / 2];
        assert!(matches!(
            feed(&mut again, cut_short),
            Err(SnapshotError::Failed(_))
        ));

        let empty: Vec<Bytes> = KvMachine::default()
            .snapshot()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(empty.len(), 1);
        let chunk = SnapshotChunk {
            meta,
            seq: 0,
            data: empty[0].clone(),
            last: true,
        };
        restored.restore(&chunk).unwrap();
        assert!(restored.data.is_empty());
    }

    /// Every node must map a key to the same group, in every build: fixed values.
    #[test]
    fn keys_map_to_groups_stably() {
        assert_eq!(group_of("", 16), GroupId(0xcbf2_9ce4_8422_2325 % 16 + 1));
        let spread: std::collections::BTreeSet<GroupId> = (0..1000)
            .map(|i| group_of(&format!("key-{i}"), 16))
            .collect();
        assert_eq!(spread.len(), 16);
        assert!((0..100).all(|i| group_of(&format!("k{i}"), 7).0 <= 7));
    }
}
