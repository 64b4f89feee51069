//! The snapshot lane: snapshot chunks travel on a stream of their own, and a snapshot lane
//! backed up to its limits holds up neither heartbeats nor appends.
//!
//! The peer here is a raw quinn client with node 1's certificate that reads every stream
//! node 2's transport opens toward it, except that it stops reading the stream whose first
//! frame is a snapshot chunk — a peer that does not keep up with a large transfer. QUIC flow
//! control then holds that stream, its writer and its queue fill, and further chunks drop:
//! all of it deterministic, whatever the timing.

mod common;

use std::sync::Arc;

use common::*;
use multiraft_core::{
    Bytes, Entry, GroupId, Membership, Message, MessageBatch, MessageBody, NodeId, Payload,
    ProposalId, SnapshotChunk, SnapshotMeta, Transport,
};
use multiraft_transport_quic::frame::{self, FRAME_HEADER_BYTES, FrameLimits};
use multiraft_transport_quic::tls::ALPN;
use multiraft_transport_quic::{QuicConfig, QuicTransport};
use tokio::sync::{Notify, mpsc};

const CHUNK_BYTES: usize = 256 << 10;

fn message(group: u64, body: MessageBody) -> Message {
    Message {
        group: GroupId(group),
        from: NodeId(2),
        to: NodeId(1),
        term: 3,
        body,
    }
}

fn batch(messages: Vec<Message>) -> MessageBatch {
    MessageBatch {
        from: NodeId(2),
        to: NodeId(1),
        messages,
    }
}

fn chunk(seq: u32) -> Message {
    message(
        7,
        MessageBody::InstallSnapshot {
            chunk: Box::new(SnapshotChunk {
                meta: SnapshotMeta {
                    index: 100,
                    term: 3,
                    membership: Membership::voters([1, 2]),
                },
                seq,
                data: Bytes::from(vec![seq as u8; CHUNK_BYTES]),
                last: false,
            }),
        },
    )
}

fn heartbeat(group: u64) -> Message {
    message(
        group,
        MessageBody::Heartbeat {
            commit: 1,
            round: 0,
        },
    )
}

fn append(group: u64) -> Message {
    message(
        group,
        MessageBody::Append {
            prev_index: 10,
            prev_term: 2,
            entries: vec![Entry {
                index: 11,
                term: 3,
                payload: Payload::Command {
                    id: ProposalId {
                        node: NodeId(2),
                        seq: 1,
                    },
                    data: Bytes::from_static(b"x"),
                },
            }]
            .into(),
            commit: 10,
        },
    )
}

fn is_chunk(m: &Message) -> bool {
    matches!(m.body, MessageBody::InstallSnapshot { .. })
}

/// Reads frames off one stream into `out` as `(stream id, batch)`. Once a frame of snapshot
/// chunks has arrived on it, waits for `resume` before reading on.
async fn read_frames(
    mut recv: quinn::RecvStream,
    out: mpsc::UnboundedSender<(u64, MessageBatch)>,
    resume: Arc<Notify>,
) {
    let id = recv.id().index();
    let mut paused = false;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    while recv.read_exact(&mut header).await.is_ok() {
        let len = frame::decode_header(&header, &FrameLimits::default()).unwrap();
        let mut payload = vec![0u8; len];
        if recv.read_exact(&mut payload).await.is_err() {
            return;
        }
        let batch = frame::decode_payload(&payload).unwrap();
        let chunks = batch.messages.iter().any(is_chunk);
        let _ = out.send((id, batch));
        if chunks && !paused {
            paused = true;
            resume.notified().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backed_up_snapshot_lane_holds_up_neither_heartbeats_nor_appends() {
    let ca = dev_ca();
    let mut config = QuicConfig::new(NodeId(2), loopback(), ca.tls_config(NodeId(2)).unwrap());
    config.limits.snapshot_queue_batches = 4;
    let t2 = QuicTransport::bind(config).unwrap();

    // Node 1 (the lower id dials), with a small stream window so the paused stream fills
    // after about one chunk.
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let crypto = client_crypto(
        &[ca.cert_der()],
        Some(ca.node(NodeId(1)).unwrap().identity()),
        ALPN,
    );
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window(quinn::VarInt::from_u32(CHUNK_BYTES as u32));
    client.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(client);
    let conn = endpoint
        .connect(t2.local_addr().unwrap(), &name(2))
        .unwrap()
        .await
        .unwrap();
    let probe = t2.clone();
    wait_until("node 2 accepted node 1", || {
        probe.connected_peers() == [NodeId(1)]
    })
    .await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let resume = Arc::new(Notify::new());
    let reader = {
        let (conn, resume) = (conn.clone(), resume.clone());
        tokio::spawn(async move {
            while let Ok(recv) = conn.accept_uni().await {
                tokio::spawn(read_frames(recv, tx.clone(), resume.clone()));
            }
        })
    };
    let next = async |rx: &mut mpsc::UnboundedReceiver<(u64, MessageBatch)>| {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a frame arrives")
            .unwrap()
    };

    // The first chunk opens the snapshot stream, whose reader then stops.
    t2.send(batch(vec![chunk(0)]));
    let (snapshot_stream, first) = next(&mut rx).await;
    assert_eq!(first.messages, vec![chunk(0)]);

    // Far more chunks than the stream window, the writer and the queue can hold: the
    // excess is dropped at `send` and counted, on the snapshot lane only.
    const MORE: u32 = 32;
    for seq in 1..=MORE {
        t2.send(batch(vec![chunk(seq)]));
    }
    let s = t2.stats();
    assert!(s.dropped_snapshot > 0, "{s:?}");
    assert_eq!(s.dropped_snapshot, s.dropped_queue_full, "{s:?}");
    // At most the queue (4), the batch in the writer and a couple of chunks of stream
    // window got past `send`.
    assert!(s.dropped_snapshot >= u64::from(MORE) - 8, "{s:?}");

    // Heartbeats (control lane) and appends (data lanes), alone and mixed with a chunk in
    // one batch, arrive while the snapshot lane stays stuck.
    t2.send(batch(vec![heartbeat(1)]));
    t2.send(batch(vec![append(2)]));
    t2.send(batch(vec![heartbeat(3), chunk(MORE + 1), append(4)]));
    let mut other = Vec::new();
    while other.len() < 4 {
        let (stream, b) = next(&mut rx).await;
        assert_ne!(stream, snapshot_stream, "the snapshot stream moved: {b:?}");
        assert!(!b.messages.iter().any(is_chunk), "a chunk off its lane");
        other.extend(b.messages);
    }
    other.sort_by_key(|m| m.group.0);
    assert_eq!(
        other,
        vec![heartbeat(1), append(2), heartbeat(3), append(4)]
    );
    let s = t2.stats();
    assert_eq!(s.dropped_queue_full, s.dropped_snapshot, "{s:?}");

    // Once read again, the stream delivers every chunk that was not dropped, in order and
    // on that stream only.
    let sent = u64::from(MORE) + 2;
    let expected = sent - 1 - t2.stats().dropped_snapshot;
    resume.notify_one();
    let mut last_seq = 0;
    for _ in 0..expected {
        let (stream, b) = next(&mut rx).await;
        assert_eq!(stream, snapshot_stream);
        for m in b.messages {
            let MessageBody::InstallSnapshot { chunk } = m.body else {
                panic!("not a chunk on the snapshot stream: {m:?}");
            };
            assert!(chunk.seq > last_seq, "chunks out of order");
            assert_eq!(chunk.data.len(), CHUNK_BYTES);
            last_seq = chunk.seq;
        }
    }
    assert!(rx.try_recv().is_err(), "more arrived than was queued");
    reader.abort();
    conn.close(0u32.into(), b"done");
    t2.close();
}
