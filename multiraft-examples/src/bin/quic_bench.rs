//! Raft messages per second and round trips between two nodes over one QUIC connection on
//! loopback, batched as the node layer batches (one batch per destination per cycle, many
//! groups' messages in it).
//!
//! `cargo run --release -p multiraft-examples --bin quic_bench -- [--secs 5] [--batch 256] [--window 8] [--bytes 64] [--groups 1000]`
//!
//! Node 1 keeps `window` batches in flight to node 2, each of `batch` AppendEntries
//! messages (one `bytes`-byte entry each) spread over `groups` groups. Node 2 answers every
//! append with an AppendResponse, batched the same way. A batch's round trip ends when all
//! of its responses are back. Reported: appends delivered per second (one way), all raft
//! messages per second (both ways), and round-trip p50/p99 under that load; then p50/p99 of
//! an unloaded single-heartbeat ping-pong (percentiles from an HdrHistogram, 3 significant
//! figures). `--help` lists the flags.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use multiraft_core::{
    Bytes, Entry, GroupId, Inbox, Message, MessageBatch, MessageBody, NodeId, Payload, ProposalId,
    Transport,
};
use multiraft_examples::measure::{histogram, nanos, quantile};
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::tls::ClusterId;
use multiraft_transport_quic::{QuicConfig, QuicTransport};
use tokio::sync::mpsc::Receiver;

/// Raft messages per second and round trips between two nodes over one QUIC connection on
/// loopback.
#[derive(Parser)]
#[command(name = "quic_bench", args_override_self = true)]
struct Args {
    /// Seconds measured, after a 1 s warm-up (at least 1)
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// AppendEntries messages per batch (at least 1)
    #[arg(long, default_value_t = 256)]
    batch: u64,
    /// Batches kept in flight (at least 1)
    #[arg(long, default_value_t = 8)]
    window: u64,
    /// Bytes per entry
    #[arg(long, default_value_t = 64)]
    bytes: usize,
    /// Groups the messages are spread over (at least 1)
    #[arg(long, default_value_t = 1000)]
    groups: u64,
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.secs = a.secs.max(1);
    a.batch = a.batch.max(1);
    a.window = a.window.max(1);
    a.groups = a.groups.max(1);
    a
}

/// Waiting longer than this for any response means something was dropped.
const STALL: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    multiraft_examples::init_logging();
    if let Err(e) = run().await {
        eprintln!("quic_bench: {e}");
        std::process::exit(1);
    }
}

fn appends(seq: u64, args: &Args, data: &Bytes) -> MessageBatch {
    let messages = (0..args.batch)
        .map(|i| {
            let group = (seq * args.batch + i) % args.groups + 1;
            Message {
                group: GroupId(group),
                from: NodeId(1),
                to: NodeId(2),
                term: 1,
                body: MessageBody::Append {
                    // The batch's sequence number rides in prev_index.
                    prev_index: seq,
                    prev_term: 1,
                    entries: vec![Entry {
                        index: seq + 1,
                        term: 1,
                        payload: Payload::Command {
                            id: ProposalId {
                                node: NodeId(1),
                                seq,
                            },
                            data: data.clone(),
                        },
                    }]
                    .into(),
                    commit: seq,
                },
            }
        })
        .collect();
    MessageBatch {
        from: NodeId(1),
        to: NodeId(2),
        messages,
    }
}

/// Node 2: answers every append with an AppendResponse carrying its sequence number, and
/// every heartbeat with a heartbeat response.
async fn echo(t2: QuicTransport, mut rx2: Receiver<MessageBatch>) {
    while let Some(batch) = rx2.recv().await {
        let messages = batch
            .messages
            .into_iter()
            .map(|m| {
                let body = match m.body {
                    MessageBody::Append { prev_index, .. } => MessageBody::AppendResponse {
                        success: true,
                        index: prev_index,
                        hint_index: 0,
                        hint_term: 0,
                        joined: true,
                    },
                    _ => MessageBody::HeartbeatResponse { round: 0 },
                };
                Message {
                    group: m.group,
                    from: NodeId(2),
                    to: NodeId(1),
                    term: m.term,
                    body,
                }
            })
            .collect();
        t2.send(MessageBatch {
            from: NodeId(2),
            to: NodeId(1),
            messages,
        });
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args();
    let ca = DevCa::new(ClusterId::new("bench").map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let loopback = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let c2 = QuicConfig::new(
        NodeId(2),
        loopback,
        ca.tls_config(NodeId(2)).map_err(|e| e.to_string())?,
    );
    let t2 = QuicTransport::bind(c2).map_err(|e| e.to_string())?;
    let (inbox2, rx2) = Inbox::channel(4096);
    t2.attach(NodeId(2), inbox2).map_err(|e| e.to_string())?;
    let mut c1 = QuicConfig::new(
        NodeId(1),
        loopback,
        ca.tls_config(NodeId(1)).map_err(|e| e.to_string())?,
    );
    c1.peers
        .insert(NodeId(2), t2.local_addr().map_err(|e| e.to_string())?);
    let t1 = QuicTransport::bind(c1).map_err(|e| e.to_string())?;
    let (inbox1, mut rx1) = Inbox::channel(4096);
    t1.attach(NodeId(1), inbox1).map_err(|e| e.to_string())?;
    tokio::spawn(echo(t2.clone(), rx2));
    let connected = Instant::now();
    while t1.connected_peers().is_empty() || t2.connected_peers().is_empty() {
        if connected.elapsed() > STALL {
            return Err("no connection".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Loaded: `window` batches in flight.
    let data = Bytes::from(vec![0x5A; args.bytes]);
    let mut outstanding: HashMap<u64, (Instant, u64)> = HashMap::new();
    let mut next_seq = 0u64;
    let warmup = Duration::from_secs(1);
    let started = Instant::now();
    let mut measure_from: Option<Instant> = None;
    let mut rtts = Vec::new();
    let mut completed_batches = 0u64;
    let measure = Duration::from_secs(args.secs);
    loop {
        while (outstanding.len() as u64) < args.window {
            outstanding.insert(next_seq, (Instant::now(), args.batch));
            t1.send(appends(next_seq, &args, &data));
            next_seq += 1;
        }
        let batch = tokio::time::timeout(STALL, rx1.recv())
            .await
            .map_err(|_| format!("stalled; stats {:?} / {:?}", t1.stats(), t2.stats()))?
            .ok_or("inbox closed")?;
        let now = Instant::now();
        for m in &batch.messages {
            if let MessageBody::AppendResponse { index, .. } = m.body {
                let done = match outstanding.get_mut(&index) {
                    Some((sent, left)) => {
                        *left -= 1;
                        (*left == 0).then_some(*sent)
                    }
                    None => None,
                };
                if let Some(sent) = done {
                    outstanding.remove(&index);
                    if measure_from.is_some() {
                        rtts.push(nanos(now - sent));
                        completed_batches += 1;
                    }
                }
            }
        }
        if measure_from.is_none() && started.elapsed() >= warmup {
            measure_from = Some(now);
        }
        if let Some(from) = measure_from
            && now - from >= measure
        {
            break;
        }
    }
    let elapsed = measure_from
        .ok_or("the measurement never started")?
        .elapsed()
        .as_secs_f64();
    // Drain what is still in flight so the ping phase starts clean.
    while !outstanding.is_empty() {
        let batch = tokio::time::timeout(STALL, rx1.recv())
            .await
            .map_err(|_| "stalled draining")?
            .ok_or("inbox closed")?;
        for m in &batch.messages {
            if let MessageBody::AppendResponse { index, .. } = m.body
                && let Some((_, left)) = outstanding.get_mut(&index)
            {
                *left -= 1;
                if *left == 0 {
                    outstanding.remove(&index);
                }
            }
        }
    }
    let rtts = histogram(rtts);
    let one_way = (completed_batches * args.batch) as f64 / elapsed;
    println!(
        "loaded: batch {} x window {} x {} B entries over {} groups, {:.1} s",
        args.batch, args.window, args.bytes, args.groups, elapsed
    );
    println!(
        "  appends delivered/s (one way): {:.0}   raft messages/s (both ways): {:.0}   batches/s: {:.0}",
        one_way,
        2.0 * one_way,
        completed_batches as f64 / elapsed
    );
    println!(
        "  batch round trip p50 {:?}  p99 {:?}",
        quantile(&rtts, 0.50),
        quantile(&rtts, 0.99)
    );

    // Unloaded: one heartbeat at a time.
    let mut pings = Vec::new();
    for i in 0..2000u64 {
        let sent = Instant::now();
        t1.send(MessageBatch {
            from: NodeId(1),
            to: NodeId(2),
            messages: vec![Message {
                group: GroupId(i % args.groups + 1),
                from: NodeId(1),
                to: NodeId(2),
                term: 1,
                body: MessageBody::Heartbeat {
                    commit: i,
                    round: 0,
                },
            }],
        });
        let got = tokio::time::timeout(STALL, rx1.recv())
            .await
            .map_err(|_| "ping stalled")?
            .ok_or("inbox closed")?;
        if i >= 200 {
            pings.push(nanos(sent.elapsed()));
        }
        debug_assert!(matches!(
            got.messages[0].body,
            MessageBody::HeartbeatResponse { round: 0 }
        ));
    }
    let pings = histogram(pings);
    println!(
        "unloaded heartbeat ping-pong: p50 {:?}  p99 {:?}",
        quantile(&pings, 0.50),
        quantile(&pings, 0.99)
    );
    let s1 = t1.stats();
    let s2 = t2.stats();
    println!(
        "drops: node1 {} node2 {} (queue full {} / {})",
        s1.dropped_queue_full
            + s1.dropped_unconnected
            + s1.dropped_write_error
            + s1.inbound_dropped,
        s2.dropped_queue_full
            + s2.dropped_unconnected
            + s2.dropped_write_error
            + s2.inbound_dropped,
        s1.dropped_queue_full,
        s2.dropped_queue_full
    );
    t1.close();
    t2.close();
    Ok(())
}
