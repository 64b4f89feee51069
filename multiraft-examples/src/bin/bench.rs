//! Throughput and latency of committed proposals: 3 nodes in one process on in-memory
//! storage and network, many groups, many proposals in flight.
//!
//! `cargo run --release -p multiraft-examples --bin bench -- [--groups 1000] [--clients 4096] [--secs 10] [--bytes 16] [--batch 1] [--reads]`
//!
//! Each client is a task that proposes to its group's leader, waits for the result (the
//! entry is committed and applied on the leader), and proposes again. The figure is the
//! number of proposals that completed per second over the measured window, after a warm-up.
//! Latency percentiles come from an HdrHistogram (3 significant figures). `--help` lists the
//! flags. With `--batch N` each client hands over N proposals per call
//! (`MultiRaft::propose_many`) and waits for all of them; each counts, with the latency of
//! its call.
//!
//! With `--reads`, the same cluster then runs two more phases of the same length with the
//! same clients reading instead (`MultiRaft::read` at the leader): ReadIndex, then Lease;
//! each phase prints its rate, and a last line the read rates as multiples of the write
//! rate of the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use multiraft_core::{Bytes, Config, GroupId, NodeId, ReadPolicy};
use multiraft_examples::ClusterNode;
use multiraft_examples::measure::{histogram, process_cpu_secs};
use multiraft_examples::{create_groups, start_mem_cluster};

/// Throughput and latency of committed proposals: 3 nodes in one process on in-memory
/// storage and network.
#[derive(Parser)]
#[command(name = "bench", args_override_self = true)]
struct Args {
    /// Groups replicated on all three nodes (at least 1)
    #[arg(long, default_value_t = 1000)]
    groups: u64,
    /// Closed-loop clients, each proposing to its group's leader (at least 1)
    #[arg(long, default_value_t = 4096)]
    clients: u64,
    /// Seconds measured, after a 2 s warm-up (at least 1)
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Bytes per proposal
    #[arg(long, default_value_t = 16)]
    bytes: usize,
    /// After the writes, measure reads under ReadIndex and under Lease
    #[arg(long)]
    reads: bool,
    /// Proposals each client hands over per call (`propose_many` when above 1); the
    /// figures count proposals
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

/// What the clients of one phase do.
#[derive(Clone, Copy, Debug)]
enum Work {
    Write,
    Read(ReadPolicy),
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.groups = a.groups.max(1);
    a.clients = a.clients.max(1);
    a.secs = a.secs.max(1);
    a.batch = a.batch.max(1);
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    multiraft_examples::init_logging();
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args();
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    config.quiesce = std::env::var("BENCH_QUIESCE").map_or(true, |v| v != "0");
    let cluster = start_mem_cluster(3, &config)
        .await
        .map_err(|e| e.to_string())?;
    let leaders = create_groups(&cluster, args.groups, Duration::from_secs(60)).await?;

    let mut rates = Vec::new();
    let mut phases = vec![Work::Write];
    if args.reads {
        phases.extend([
            Work::Read(ReadPolicy::ReadIndex),
            Work::Read(ReadPolicy::Lease),
        ]);
    }
    for work in phases {
        rates.push(phase(&args, &cluster, &leaders, work).await?);
    }
    if let [writes, read_index, lease] = rates[..] {
        println!(
            "bench: reads per write, same run: ReadIndex {:.2}x, Lease {:.2}x",
            read_index / writes,
            lease / writes
        );
    }
    for n in &cluster {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs one measured phase of `work` with every client; prints its line and returns the
/// rate of completed operations per second.
async fn phase(
    args: &Args,
    cluster: &[ClusterNode],
    leaders: &[NodeId],
    work: Work,
) -> Result<f64, String> {
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    // Latencies go into one histogram, each client flushing its own buffer of
    // `FLUSH_LATENCIES`: memory stays bounded however long the run (a vector of every
    // latency grew by half a gigabyte in ten minutes, and showed as the node's).
    let shared = Arc::new(std::sync::Mutex::new(histogram(std::iter::empty())));
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let g = c % args.groups;
        let node = cluster[leaders[g as usize].0 as usize - 1].handle.clone();
        let (running, measuring, shared) = (running.clone(), measuring.clone(), shared.clone());
        // One payload per client: a single shared one would make every proposal bounce one
        // reference count between the cores, which measures the benchmark, not the library.
        let payload = multiraft_core::Bytes::from(vec![7u8; args.bytes]);
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            while running.load(Ordering::Relaxed) {
                let t = Instant::now();
                let group = GroupId(g + 1);
                // How many operations of this round succeeded, and how many failed.
                let (ok, failed) = match work {
                    Work::Write if batch > 1 => {
                        let commands = vec![payload.clone(); batch];
                        let results = node.propose_many(group, commands).await;
                        let ok = results.iter().filter(|r| r.is_ok()).count();
                        (ok, results.len() - ok)
                    }
                    Work::Write => match node.propose(group, payload.clone()).await {
                        Ok(_) => (1, 0),
                        Err(_) => (0, 1),
                    },
                    Work::Read(policy) => match node.read(group, policy, Bytes::new()).await {
                        Ok(_) => (1, 0),
                        Err(_) => (0, 1),
                    },
                };
                if measuring.load(Ordering::Relaxed) {
                    let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    latencies_us.extend(std::iter::repeat_n(us, ok));
                    errors += failed as u64;
                }
                if latencies_us.len() >= FLUSH_LATENCIES || !running.load(Ordering::Relaxed) {
                    flush(&shared, &mut latencies_us);
                }
            }
            flush(&shared, &mut latencies_us);
            errors
        }));
    }
    let warmup = Duration::from_secs(2);
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = process_cpu_secs();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    running.store(false, Ordering::Relaxed);

    let mut errors = 0;
    for t in tasks {
        errors += t.await.map_err(|e| e.to_string())?;
    }
    let all = shared.lock().map_err(|e| e.to_string())?.clone();
    let pct = |q: f64| all.value_at_quantile(q);
    let cpu_us = cpu.map_or("n/a".to_string(), |c| {
        format!("{:.2}", c * 1e6 / all.len().max(1) as f64)
    });
    let what = match work {
        Work::Write => "committed proposals/s".to_string(),
        Work::Read(policy) => format!("{policy:?} reads/s"),
    };
    println!(
        "bench: nodes=3 groups={} clients={} bytes={} secs={:.1}: {:.0} {what}, latency p50 {} us, p99 {} us, cpu {} us/op, errors {}",
        args.groups,
        args.clients,
        args.bytes,
        elapsed,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        cpu_us,
        errors
    );
    Ok(all.len() as f64 / elapsed)
}

/// Latencies a client keeps before adding them to the shared histogram.
const FLUSH_LATENCIES: usize = 1024;

/// Adds `buffer` to the shared histogram and empties it.
fn flush(shared: &std::sync::Mutex<hdrhistogram::Histogram<u64>>, buffer: &mut Vec<u32>) {
    if buffer.is_empty() {
        return;
    }
    if let Ok(mut h) = shared.lock() {
        for v in buffer.drain(..) {
            // `record` grows the histogram to fit; `saturating_record` would clamp to its
            // current range.
            if h.record(u64::from(v)).is_err() {
                h.saturating_record(u64::from(v));
            }
        }
    }
}
