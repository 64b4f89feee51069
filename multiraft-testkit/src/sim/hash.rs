//! [`TraceHash`]: a stable hash of everything a simulation did.

use multiraft_core::{Entry, HardState, Message, MessageBody, Payload};

/// FNV-1a, 64 bit, written out by hand so that its output never changes between Rust
/// versions or platforms (unlike `std`'s `DefaultHasher`). Two runs of one seed must give
/// the same value; that is the determinism check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash::new()
    }
}

impl TraceHash {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The empty hash.
    pub fn new() -> TraceHash {
        TraceHash(Self::OFFSET)
    }

    /// The hash value so far.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// Mixes in bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Mixes in one number (little endian).
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn hard_state(&mut self, hs: &HardState) {
        self.u64(hs.term);
        self.u64(hs.vote.map_or(0, |n| n.0));
        self.u64(hs.commit);
    }

    pub(crate) fn entry(&mut self, e: &Entry) {
        self.u64(e.index);
        self.u64(e.term);
        match &e.payload {
            Payload::Command { id, data } => {
                self.u64(1);
                self.u64(id.node.0);
                self.u64(id.seq);
                self.u64(data.len() as u64);
                self.bytes(data);
            }
            _ => self.u64(0),
        }
    }

    pub(crate) fn message(&mut self, m: &Message) {
        self.u64(m.group.0);
        self.u64(m.from.0);
        self.u64(m.to.0);
        self.u64(m.term);
        match &m.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
                transfer,
            } => {
                self.u64(1);
                self.u64(u64::from(*pre_vote) | u64::from(*transfer) << 1);
                self.u64(*last_index);
                self.u64(*last_term);
            }
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.u64(2);
                self.u64(u64::from(*pre_vote));
                self.u64(u64::from(*granted));
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.u64(3);
                self.u64(*prev_index);
                self.u64(*prev_term);
                self.u64(*commit);
                for e in entries {
                    self.entry(e);
                }
            }
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
                joined,
            } => {
                self.u64(4);
                self.u64(u64::from(*success));
                self.u64(*index);
                self.u64(*hint_index);
                self.u64(*hint_term);
                self.u64(u64::from(*joined));
            }
            MessageBody::Heartbeat { commit, round } => {
                self.u64(5);
                self.u64(*commit);
                self.u64(*round);
            }
            MessageBody::HeartbeatResponse { round } => {
                self.u64(6);
                self.u64(*round);
            }
            MessageBody::Propose { proposals } => {
                self.u64(7);
                for (id, data) in proposals {
                    self.u64(id.node.0);
                    self.u64(id.seq);
                    self.bytes(data);
                }
            }
            MessageBody::ProposeRejected {
                ids, leader_hint, ..
            } => {
                self.u64(8);
                for id in ids {
                    self.u64(id.node.0);
                    self.u64(id.seq);
                }
                self.u64(leader_hint.map_or(0, |n| n.0));
            }
            MessageBody::LogLost {
                last_index,
                last_term,
            } => {
                self.u64(9);
                self.u64(*last_index);
                self.u64(*last_term);
            }
            MessageBody::Unheard { replica, term } => {
                self.u64(10);
                self.u64(replica.0);
                self.u64(*term);
            }
            _ => self.u64(0xff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TraceHash;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of FNV-1a 64.
        let mut h = TraceHash::new();
        assert_eq!(h.value(), 0xcbf2_9ce4_8422_2325);
        h.bytes(b"a");
        assert_eq!(h.value(), 0xaf63_dc4c_8601_ec8c);
        let mut h = TraceHash::new();
        h.bytes(b"foobar");
        assert_eq!(h.value(), 0x8594_4171_f739_67e8);
    }
}
