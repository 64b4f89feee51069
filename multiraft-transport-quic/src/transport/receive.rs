//! The receive side: a reader task per inbound stream that checks each frame against the
//! limits, decodes and validates it, and hands the batch to the inbox.

use std::sync::Arc;

use multiraft_core::{DeliverError, MessageBatch, NodeId};
use quinn::{Connection, ReadExactError, RecvStream, VarInt};

use crate::frame::{self, FRAME_HEADER_BYTES, FrameError};

use super::{CLOSE_PROTOCOL, CLOSE_WRONG_SENDER, Inner, bump, read};

/// A reader's frame buffer above this capacity is released after use, so one large frame
/// does not pin memory for the life of the stream.
const READ_BUFFER_KEEP_BYTES: usize = 1 << 20;

/// Room a frame's buffer starts with (or the frame's length, if less): about a coalesced
/// write (`write_coalesce_bytes`), so most frames are read without regrowth.
const READ_BUFFER_START_BYTES: usize = 64 << 10;

impl Inner {
    fn deliver(&self, batch: MessageBatch) {
        let inbox = read(&self.inbox).clone();
        let r = match inbox {
            Some(inbox) => inbox.deliver(batch),
            None => Err(DeliverError::Stopped),
        };
        match r {
            Ok(()) => bump(&self.stats.batches_delivered, 1),
            Err(_) => {
                bump(&self.stats.inbound_dropped, 1);
                self.dropped.inbound.increment(1);
            }
        }
    }

    fn reject(&self, conn: &Connection, peer: NodeId, e: &FrameError) {
        bump(&self.stats.frames_rejected, 1);
        tracing::warn!(node = %self.node, %peer, error = %e, "refusing frame; closing connection");
        let code = match e {
            FrameError::WrongSender { .. } => CLOSE_WRONG_SENDER,
            _ => CLOSE_PROTOCOL,
        };
        conn.close(VarInt::from_u32(code), b"invalid frame");
    }
}

pub(super) async fn receive_loop(inner: Arc<Inner>, peer: NodeId, conn: Connection) {
    let received = crate::metrics::received(inner.node, peer);
    while let Ok(recv) = conn.accept_uni().await {
        let stream = Stream {
            peer,
            conn: conn.clone(),
            recv,
            received: received.clone(),
        };
        inner.runtime.spawn(read_stream(inner.clone(), stream));
    }
}

/// One inbound stream of a connection from `peer`.
struct Stream {
    peer: NodeId,
    conn: Connection,
    recv: RecvStream,
    /// Bytes of valid frames ([`crate::metrics::BYTES_RECEIVED_TOTAL`]).
    received: metrics::Counter,
}

async fn read_stream(inner: Arc<Inner>, stream: Stream) {
    let Stream {
        peer,
        conn,
        mut recv,
        received,
    } = stream;
    let limits = inner.limits.frame;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut buf = Vec::new();
    loop {
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) | Err(ReadExactError::ReadError(_)) => {
                return; // finished between frames, reset, or the connection is gone
            }
            Err(ReadExactError::FinishedEarly(available)) => {
                let e = FrameError::Truncated {
                    needed: FRAME_HEADER_BYTES,
                    available,
                };
                return inner.reject(&conn, peer, &e);
            }
        }
        let len = match frame::decode_header(&header, &limits) {
            Ok(len) => len,
            Err(e) => return inner.reject(&conn, peer, &e),
        };
        // The length is within the limit; the buffer still grows only with what arrives,
        // so a peer that declares large frames and trickles them holds as much of this
        // node's memory as it sent, not the declared length on each of its streams.
        buf.clear();
        buf.reserve(len.min(READ_BUFFER_START_BYTES));
        while buf.len() < len {
            match recv.read_chunk(len - buf.len(), true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) => {
                    let e = FrameError::Truncated {
                        needed: len,
                        available: buf.len(),
                    };
                    return inner.reject(&conn, peer, &e);
                }
                Err(_) => return, // reset, or the connection is gone
            }
        }
        let batch = match frame::decode_payload(&buf)
            .and_then(|b| frame::validate(&b, peer, inner.node, &limits).map(|()| b))
        {
            Ok(b) => b,
            Err(e) => return inner.reject(&conn, peer, &e),
        };
        bump(&inner.stats.frames_received, 1);
        received.increment((FRAME_HEADER_BYTES + len) as u64);
        inner.deliver(batch);
        if buf.capacity() > READ_BUFFER_KEEP_BYTES {
            buf = Vec::new();
        }
    }
}
