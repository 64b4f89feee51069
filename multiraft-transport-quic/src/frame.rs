//! The wire format: versioned, length-prefixed frames, each carrying one postcard-encoded
//! [`MessageBatch`].
//!
//! # Layout
//!
//! ```text
//! offset  size  field
//! 0       1     version   FRAME_VERSION (2); anything else is FrameError::UnknownVersion
//! 1       1     kind      FRAME_KIND_BATCH (0); anything else is FrameError::UnknownKind
//! 2       2     reserved  must be zero
//! 4       4     length    payload bytes, u32 big-endian, 1..=FrameLimits::max_frame_bytes
//! 8       len   payload   postcard(MessageBatch), nothing after it
//! ```
//!
//! A receiver reads the 8-byte header, checks the length against
//! [`FrameLimits::max_frame_bytes`] *before* allocating the payload buffer, reads exactly
//! `length` bytes, decodes them with [`postcard::take_from_bytes`] and rejects any trailing
//! bytes, then [`validate`]s the batch against the authenticated peer and the limits.
//!
//! The Raft-level rules (term and index relations, reserved ids, counts inside a message,
//! node-level messages) are the core's [`MessageBatch::validate`], which every node also
//! applies to every batch it steps. This module adds only what concerns frames and the
//! connection: the header and length, postcard decoding, the number of messages in one
//! frame, and that the batch and each message in it come from the authenticated peer and
//! are addressed to this node.
//!
//! A node's batch that is split across lanes becomes several frames, each a complete
//! [`MessageBatch`] with the same `from` and `to`.
//!
//! # Memory
//!
//! Decoding is bounded by the payload slice: postcard never allocates more elements than the
//! slice could hold, and no type on the wire has zero-sized sequence elements (every
//! [`Message`](multiraft_core::Message), [`Entry`](multiraft_core::Entry), proposal and
//! proposal id takes at least one encoded byte), so a forged sequence length cannot make the
//! decoder loop without consuming input. Small elements expand in memory: a 3-byte `Noop`
//! entry decodes to a 72-byte [`Entry`](multiraft_core::Entry) in a vector that grows by
//! doubling and is then copied into shared [`Entries`](multiraft_core::Entries), and a
//! 9-byte membership entry adds a boxed membership and three tree nodes. Measured with a
//! counting allocator (`tests/decode_memory.rs`), the worst of the shapes measured takes
//! 66.7 × its length while it decodes (one append of membership entries with one node in
//! each set; 56 × with `Noop` entries, 48 × for the smallest messages): 267 MiB at the
//! default limit. The documented bound is 72 × `max_frame_bytes` (288 MiB at the
//! default). Only an authenticated peer can send such a frame, and [`validate`] rejects it
//! right after decoding (too many messages, or too many entries in one). Decoding does not
//! yield, so frames decode at most one per runtime worker thread at once.

use multiraft_core::{InvalidMessage, MessageBatch, MessageLimits, NodeId};

/// The only frame version this crate speaks. 2 since `AppendResponse` carries `joined`: a
/// node of version 1 would misread a batch holding it where it did not fail outright, so
/// it refuses the frame by its version instead.
pub const FRAME_VERSION: u8 = 2;

/// The frame kind of a [`MessageBatch`] frame (other kinds, such as snapshot chunks, are
/// reserved for later versions).
pub const FRAME_KIND_BATCH: u8 = 0;

/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Default [`FrameLimits::max_frame_bytes`]: 4 MiB. The node layer's defaults cap one append
/// at `max_append_bytes` (1 MiB) plus one entry of at most `max_proposal_bytes` (1 MiB), so
/// any single message fits with room to spare, while a hostile frame's transient decode
/// memory (at most 72 × this, see the module docs) stays bounded.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 4 << 20;

/// Default [`FrameLimits::max_messages_per_frame`]: 65,536, more than one ready produces
/// for one peer with the core's default `max_ready_groups` (16,384 groups × a few messages),
/// and small enough that a frame of tiny messages is rejected.
pub const DEFAULT_MAX_MESSAGES_PER_FRAME: usize = 65_536;

/// Limits a receiver enforces on every frame. Every field has a `DEFAULT_*` constant whose
/// doc comment gives the reason for its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest accepted payload length, checked before the payload buffer is allocated.
    pub max_frame_bytes: u32,
    /// Most messages in one frame. A frame-level bound: the core puts none on a whole
    /// batch, which the transport splits into frames.
    pub max_messages_per_frame: usize,
    /// Counts inside one message (entries, proposals, beats), checked by
    /// [`MessageBatch::validate`]. The default is the core's, which every node enforces
    /// anyway; a tighter value refuses more here, a looser one gains nothing.
    pub message: MessageLimits,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_messages_per_frame: DEFAULT_MAX_MESSAGES_PER_FRAME,
            message: MessageLimits::default(),
        }
    }
}

/// Why a frame was refused. Any of these on an authenticated connection closes it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header names a version this build does not speak.
    #[error("unknown frame version {version} (this build speaks version {FRAME_VERSION})")]
    UnknownVersion {
        /// The version in the header.
        version: u8,
    },
    /// The header names a frame kind this version does not define.
    #[error("unknown frame kind {kind}")]
    UnknownKind {
        /// The kind in the header.
        kind: u8,
    },
    /// The reserved header bytes are not zero.
    #[error("reserved header bits set")]
    ReservedBitsSet,
    /// The declared payload length is zero.
    #[error("empty frame")]
    Empty,
    /// The declared payload length exceeds the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The declared length.
        len: u64,
        /// [`FrameLimits::max_frame_bytes`].
        max: u32,
    },
    /// Fewer bytes than the header or the declared length.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The payload is not a postcard-encoded [`MessageBatch`].
    #[error("undecodable payload: {0}")]
    Decode(postcard::Error),
    /// The batch could not be encoded (not produced by the core's types).
    #[error("unencodable batch: {0}")]
    Encode(postcard::Error),
    /// The payload decoded, but bytes were left after it.
    #[error("{count} trailing bytes after the batch")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A batch that would not fit in one frame (raised when encoding).
    #[error("encoded batch of {len} bytes exceeds the frame limit of {max} bytes")]
    BatchTooLarge {
        /// Encoded length.
        len: usize,
        /// [`FrameLimits::max_frame_bytes`].
        max: u32,
    },
    /// The batch's `from` is not the node the connection authenticated.
    #[error("batch claims to be from {claimed}, but the peer is {authenticated}")]
    WrongSender {
        /// `MessageBatch::from`.
        claimed: NodeId,
        /// The node id in the peer's certificate.
        authenticated: NodeId,
    },
    /// The batch is addressed to another node.
    #[error("batch addressed to {to}, but this node is {local}")]
    WrongReceiver {
        /// `MessageBatch::to`.
        to: NodeId,
        /// This node.
        local: NodeId,
    },
    /// A message inside the batch disagrees with the batch's `from` or `to`.
    #[error("message {index} is from {from} to {to}, unlike its batch")]
    InconsistentMessage {
        /// Position in the batch.
        index: usize,
        /// The message's `from`.
        from: NodeId,
        /// The message's `to`.
        to: NodeId,
    },
    /// The batch breaks a rule that holds for every honest sender (term and index
    /// relations, reserved node ids, counts inside a message, node-level messages): the
    /// core's [`MessageBatch::validate`] refused it.
    #[error("invalid batch: {0}")]
    InvalidMessage(#[from] InvalidMessage),
    /// More messages in the frame than [`FrameLimits::max_messages_per_frame`].
    #[error("{count} messages in a frame exceed the limit of {max}")]
    TooManyMessages {
        /// How many there were.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Appends one frame carrying `batch` to `out`.
///
/// On an error, `out` is left as it was: the frames already in it (a lane coalesces
/// several into one write) are still sent.
pub fn encode(
    batch: &MessageBatch,
    limits: &FrameLimits,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    encode_frame(batch, limits, out)
}

/// [`encode`] for any value, so that a failing serializer can be tested: the core's
/// types never fail to encode.
fn encode_frame<T: serde::Serialize>(
    value: &T,
    limits: &FrameLimits,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[FRAME_VERSION, FRAME_KIND_BATCH, 0, 0, 0, 0, 0, 0]);
    // Written in place, through `&mut Vec`: a serializer error hands back no buffer, so
    // one taken by value would lose the frames before this one.
    if let Err(e) = postcard::to_io(value, &mut *out) {
        out.truncate(start);
        return Err(FrameError::Encode(e));
    }
    let len = out.len() - start - FRAME_HEADER_BYTES;
    if len > limits.max_frame_bytes as usize {
        out.truncate(start);
        return Err(FrameError::BatchTooLarge {
            len,
            max: limits.max_frame_bytes,
        });
    }
    out[start + 4..start + 8].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Checks a frame header and returns the payload length to read next. The length is checked
/// against [`FrameLimits::max_frame_bytes`] here, before anyone allocates for it.
pub fn decode_header(
    header: &[u8; FRAME_HEADER_BYTES],
    limits: &FrameLimits,
) -> Result<usize, FrameError> {
    if header[0] != FRAME_VERSION {
        return Err(FrameError::UnknownVersion { version: header[0] });
    }
    if header[1] != FRAME_KIND_BATCH {
        return Err(FrameError::UnknownKind { kind: header[1] });
    }
    if header[2] != 0 || header[3] != 0 {
        return Err(FrameError::ReservedBitsSet);
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > limits.max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: limits.max_frame_bytes,
        });
    }
    Ok(len as usize)
}

/// Decodes a frame payload (the bytes after the header) into a batch, rejecting trailing
/// bytes. Does not [`validate`] it.
pub fn decode_payload(payload: &[u8]) -> Result<MessageBatch, FrameError> {
    let (batch, rest) =
        postcard::take_from_bytes::<MessageBatch>(payload).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { count: rest.len() });
    }
    Ok(batch)
}

/// Decodes the first frame in `bytes`: header checks, payload decode and structural checks
/// of [`validate_structure`]. Returns the batch and the bytes consumed. This is what the
/// fuzz target and the property tests drive; the transport reads header and payload from a
/// stream separately and calls the same functions.
pub fn decode_frame(
    bytes: &[u8],
    limits: &FrameLimits,
) -> Result<(MessageBatch, usize), FrameError> {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(FrameError::Truncated {
            needed: FRAME_HEADER_BYTES,
            available: bytes.len(),
        });
    };
    let len = decode_header(header, limits)?;
    let end = FRAME_HEADER_BYTES + len;
    let Some(payload) = bytes.get(FRAME_HEADER_BYTES..end) else {
        return Err(FrameError::Truncated {
            needed: end,
            available: bytes.len(),
        });
    };
    let batch = decode_payload(payload)?;
    validate_structure(&batch, limits)?;
    Ok((batch, end))
}

/// Validates a decoded batch received from the authenticated `peer` by `local`: the
/// batch's sender is the peer, its receiver is this node, and [`validate_structure`] holds.
pub fn validate(
    batch: &MessageBatch,
    peer: NodeId,
    local: NodeId,
    limits: &FrameLimits,
) -> Result<(), FrameError> {
    if batch.from != peer {
        return Err(FrameError::WrongSender {
            claimed: batch.from,
            authenticated: peer,
        });
    }
    if batch.to != local {
        return Err(FrameError::WrongReceiver {
            to: batch.to,
            local,
        });
    }
    validate_structure(batch, limits)
}

/// Checks what holds for every batch an honest node sends, whoever receives it: at most
/// [`FrameLimits::max_messages_per_frame`] messages; every message's `from`/`to` equal the
/// batch's; and the core's [`MessageBatch::validate`] with [`FrameLimits::message`] (no
/// reserved node id in the batch, the term and index relations of every message body,
/// counts inside each message, node-level messages only in `GroupId::NODE`).
pub fn validate_structure(batch: &MessageBatch, limits: &FrameLimits) -> Result<(), FrameError> {
    if batch.messages.len() > limits.max_messages_per_frame {
        return Err(FrameError::TooManyMessages {
            count: batch.messages.len(),
            max: limits.max_messages_per_frame,
        });
    }
    for (index, m) in batch.messages.iter().enumerate() {
        if m.from != batch.from || m.to != batch.to {
            return Err(FrameError::InconsistentMessage {
                index,
                from: m.from,
                to: m.to,
            });
        }
    }
    batch.validate(&limits.message)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiraft_core::{Bytes, Entry, GroupId, Message, MessageBody, Payload, ProposalId};

    fn msg(body: MessageBody) -> Message {
        Message {
            group: GroupId(3),
            from: NodeId(1),
            to: NodeId(2),
            term: 5,
            body,
        }
    }

    fn batch(messages: Vec<Message>) -> MessageBatch {
        MessageBatch {
            from: NodeId(1),
            to: NodeId(2),
            messages,
        }
    }

    fn append(prev_index: u64, prev_term: u64, terms: &[u64]) -> MessageBody {
        MessageBody::Append {
            prev_index,
            prev_term,
            entries: terms
                .iter()
                .enumerate()
                .map(|(i, t)| Entry {
                    index: prev_index + 1 + i as u64,
                    term: *t,
                    payload: Payload::Command {
                        id: ProposalId {
                            node: NodeId(1),
                            seq: i as u64,
                        },
                        data: Bytes::from_static(b"data"),
                    },
                })
                .collect(),
            commit: prev_index,
        }
    }

    fn framed(b: &MessageBatch) -> Vec<u8> {
        let mut out = Vec::new();
        encode(b, &FrameLimits::default(), &mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_and_validates() {
        let b = batch(vec![
            msg(append(4, 2, &[3, 5])),
            msg(MessageBody::Heartbeat {
                commit: 4,
                round: 0,
            }),
            msg(MessageBody::Vote {
                pre_vote: false,
                last_index: 4,
                last_term: 5,
                transfer: true,
            }),
            msg(MessageBody::HeartbeatResponse { round: 9 << 20 | 3 }),
            msg(MessageBody::TimeoutNow),
            msg(MessageBody::ReadIndex { ids: vec![7, 8] }),
            msg(MessageBody::ReadIndexResponse {
                ids: vec![7, 8],
                index: Some(4),
            }),
        ]);
        let bytes = framed(&b);
        let (decoded, used) = decode_frame(&bytes, &FrameLimits::default()).unwrap();
        assert_eq!((decoded.clone(), used), (b, bytes.len()));
        validate(&decoded, NodeId(1), NodeId(2), &FrameLimits::default()).unwrap();
        assert!(matches!(
            validate(&decoded, NodeId(3), NodeId(2), &FrameLimits::default()),
            Err(FrameError::WrongSender { .. })
        ));
        assert!(matches!(
            validate(&decoded, NodeId(1), NodeId(3), &FrameLimits::default()),
            Err(FrameError::WrongReceiver { .. })
        ));
    }

    #[test]
    fn header_checks_come_before_allocation() {
        let limits = FrameLimits::default();
        let mut h = [FRAME_VERSION, FRAME_KIND_BATCH, 0, 0, 0, 0, 0, 0];
        h[4..].copy_from_slice(&(1u32 << 30).to_be_bytes());
        assert_eq!(
            decode_header(&h, &limits),
            Err(FrameError::TooLarge {
                len: 1 << 30,
                max: DEFAULT_MAX_FRAME_BYTES
            })
        );
        // Version 1, an earlier build's, is refused as any other.
        for version in [1, 3] {
            assert_eq!(
                decode_header(&[version, 0, 0, 0, 0, 0, 0, 1], &limits),
                Err(FrameError::UnknownVersion { version })
            );
        }
        let v = FRAME_VERSION;
        assert_eq!(
            decode_header(&[v, 9, 0, 0, 0, 0, 0, 1], &limits),
            Err(FrameError::UnknownKind { kind: 9 })
        );
        assert_eq!(
            decode_header(&[v, 0, 0, 1, 0, 0, 0, 1], &limits),
            Err(FrameError::ReservedBitsSet)
        );
        assert_eq!(
            decode_header(&[v, 0, 0, 0, 0, 0, 0, 0], &limits),
            Err(FrameError::Empty)
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let b = batch(vec![msg(MessageBody::HeartbeatResponse { round: 0 })]);
        let mut bytes = framed(&b);
        bytes.push(0);
        let len = (bytes.len() - FRAME_HEADER_BYTES) as u32;
        bytes[4..8].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            decode_frame(&bytes, &FrameLimits::default()),
            Err(FrameError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn oversized_batches_are_not_encoded() {
        let limits = FrameLimits {
            max_frame_bytes: 16,
            ..FrameLimits::default()
        };
        let b = batch(vec![msg(append(0, 0, &[1, 1, 1]))]);
        let mut out = vec![7];
        assert!(matches!(
            encode(&b, &limits, &mut out),
            Err(FrameError::BatchTooLarge { .. })
        ));
        assert_eq!(out, [7]);
    }

    /// A value that fails to encode leaves the frames already coalesced in the buffer
    /// (they were lost with it: the buffer was handed to the serializer by value).
    #[test]
    fn an_unencodable_value_keeps_the_frames_before_it() {
        struct Unencodable;
        impl serde::Serialize for Unencodable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("unencodable"))
            }
        }
        let limits = FrameLimits::default();
        let mut out = Vec::new();
        encode(&batch(vec![msg(append(0, 0, &[1]))]), &limits, &mut out).unwrap();
        let before = out.clone();
        assert!(matches!(
            encode_frame(&Unencodable, &limits, &mut out),
            Err(FrameError::Encode(_))
        ));
        assert_eq!(out, before);
        assert!(decode_frame(&out, &limits).is_ok());
    }

    /// The core's rules (`MessageBatch::validate`) are enforced on every frame; the rules
    /// themselves are tested in the core.
    #[test]
    fn dishonest_messages_are_rejected() {
        let limits = FrameLimits::default();
        let bad = [
            append(4, 6, &[]),     // prev_term above term
            append(4, 2, &[1]),    // entry term below prev_term
            append(4, 2, &[3, 6]), // entry term above term
            MessageBody::Vote {
                pre_vote: false,
                last_index: 1,
                last_term: 9,
                transfer: false,
            },
            MessageBody::ProposeRejected {
                ids: vec![],
                leader_hint: Some(NodeId(0)),
                reason: multiraft_core::Refusal::NotLeader,
            },
        ];
        for body in bad {
            let b = batch(vec![msg(body.clone())]);
            assert!(
                matches!(
                    validate_structure(&b, &limits),
                    Err(FrameError::InvalidMessage(_))
                ),
                "{body:?}"
            );
        }
        // Non-consecutive entries.
        let mut body = append(4, 2, &[3, 3]);
        if let MessageBody::Append { entries, .. } = &mut body {
            entries.make_mut()[1].index = 9;
        }
        assert!(matches!(
            validate_structure(&batch(vec![msg(body)]), &limits),
            Err(FrameError::InvalidMessage(
                InvalidMessage::NonConsecutiveEntries { .. }
            ))
        ));
        // Index overflow.
        let body = MessageBody::Append {
            prev_index: u64::MAX,
            prev_term: 1,
            entries: vec![Entry {
                index: 0,
                term: 1,
                payload: Payload::Noop,
            }]
            .into(),
            commit: 0,
        };
        assert!(matches!(
            validate_structure(&batch(vec![msg(body)]), &limits),
            Err(FrameError::InvalidMessage(
                InvalidMessage::EntryIndexOverflow { .. }
            ))
        ));
        // A reserved node id in the batch header.
        let mut b = batch(vec![]);
        b.from = NodeId(0);
        assert!(matches!(
            validate_structure(&b, &limits),
            Err(FrameError::InvalidMessage(
                InvalidMessage::ReservedNodeInBatch { .. }
            ))
        ));
        // A message whose from differs from the batch's.
        let mut m = msg(MessageBody::HeartbeatResponse { round: 0 });
        m.from = NodeId(7);
        assert!(matches!(
            validate_structure(&batch(vec![m]), &limits),
            Err(FrameError::InconsistentMessage { index: 0, .. })
        ));
    }

    #[test]
    fn coalesced_heartbeats_are_node_level_and_counted() {
        let mut limits = FrameLimits::default();
        limits.message.max_beats_per_message = 2;
        let acks = |n: u64| MessageBody::HeartbeatAcks {
            acks: (0..n)
                .map(|g| multiraft_core::Ack {
                    group: GroupId(g + 1),
                    term: 1,
                    round: 0,
                })
                .collect(),
        };
        let mut m = msg(acks(2));
        m.group = GroupId::NODE;
        validate_structure(&batch(vec![m.clone()]), &limits).unwrap();
        m.body = acks(3);
        assert!(matches!(
            validate_structure(&batch(vec![m]), &limits),
            Err(FrameError::InvalidMessage(InvalidMessage::TooManyItems {
                what: "acks",
                ..
            }))
        ));
        // In an ordinary group: refused.
        assert!(matches!(
            validate_structure(&batch(vec![msg(acks(1))]), &limits),
            Err(FrameError::InvalidMessage(
                InvalidMessage::NodeLevelOutsideNodeGroup { .. }
            ))
        ));
    }

    #[test]
    fn counts_are_limited() {
        let mut limits = FrameLimits {
            max_messages_per_frame: 2,
            ..FrameLimits::default()
        };
        limits.message.max_items_per_message = 2;
        let three = batch(vec![msg(MessageBody::HeartbeatResponse { round: 0 }); 3]);
        assert_eq!(
            validate_structure(&three, &limits),
            Err(FrameError::TooManyMessages { count: 3, max: 2 })
        );
        let big = batch(vec![msg(append(0, 0, &[1, 1, 1]))]);
        assert_eq!(
            validate_structure(&big, &limits),
            Err(FrameError::InvalidMessage(InvalidMessage::TooManyItems {
                index: 0,
                what: "entries",
                count: 3,
                max: 2
            }))
        );
    }

    /// A forged sequence length far beyond the payload fails fast (postcard bounds decoding
    /// by the slice) instead of allocating or looping.
    #[test]
    fn forged_sequence_lengths_fail_fast() {
        // from=1, to=2, then a varint message count of 2^63.
        let payload = [
            1, 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        assert!(matches!(
            decode_payload(&payload),
            Err(FrameError::Decode(_))
        ));
    }

    /// No element type on the wire is zero-sized when encoded, so a sequence length always
    /// costs input bytes (NOTES.md: a huge `Vec<()>` is a CPU loop).
    #[test]
    fn no_zero_sized_sequence_elements() {
        let smallest = msg(MessageBody::HeartbeatResponse { round: 0 });
        assert!(!postcard::to_allocvec(&smallest).unwrap().is_empty());
        let noop = Entry {
            index: 0,
            term: 0,
            payload: Payload::Noop,
        };
        assert!(!postcard::to_allocvec(&noop).unwrap().is_empty());
        let id = ProposalId {
            node: NodeId(0),
            seq: 0,
        };
        assert!(!postcard::to_allocvec(&id).unwrap().is_empty());
        assert!(
            !postcard::to_allocvec(&(id, Bytes::new()))
                .unwrap()
                .is_empty()
        );
    }
}
