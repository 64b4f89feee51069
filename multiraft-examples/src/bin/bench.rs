//! Throughput and latency of committed proposals: 3 nodes in one process on in-memory
//! storage and network, many groups, many proposals in flight.
//!
//! `cargo run --release -p multiraft-examples --bin bench -- [--groups 1000] [--clients 4096] [--secs 10] [--bytes 16] [--batch 1] [--time-every 1] [--reads] [--rate N] [--matrix] [--warmup-secs 2] [--tick-ms 10] [--loop-threads 0] [--max-commit-wait-ticks N] [--snapshot-entries N]`
//!
//! Each client is a task that proposes to its group's leader, waits for the result (the
//! entry is committed and applied on the leader), and proposes again. Client `c` keeps to
//! group `c % groups`, so at most `min(groups, clients)` groups are ever busy: with 64
//! clients, 64 groups work and the rest stay quiesced however many are hosted. The figure
//! is the number of proposals that completed per second over the measured window, after a
//! warm-up.
//! Latency percentiles come from an HdrHistogram (3 significant figures). Each line also
//! gives the CPU time of the whole process per proposal and the elections during the
//! measured window (campaigns started on every node, pre-votes included:
//! `NodeStats::elections_started`, read at the window's edges) and during the
//! warm-up (from the clients' start, when they all propose at once), the ticks each
//! node served per second with the share its loop served late (`NodeStatus::ticks_missed`),
//! and the verdicts that a peer node was down (`NodeStats::peers_declared_down`): an
//! overloaded loop shows in those first. Proposals refused with `Busy` (admission
//! control, `max_commit_wait_ticks`, or a full submission queue, `max_api_queue`: the node
//! shedding load, docs/design.md §5) are counted apart from the errors, as `refused`; the
//! errors are split by kind: timeouts, leadership (no leader, not the leader, leadership
//! changed: what an overload must not cause), shed by the open loop, other. `--help` lists
//! the flags. With `--batch N` each client hands over N proposals per call
//! (`MultiRaft::propose_many`) and waits for all of them; each counts, with the latency of
//! its call. With `--time-every N` each client times one operation in N (the rate still
//! counts them all).
//!
//! With `--rate N` the load is open loop instead: proposals are offered at N per second
//! whatever the cluster answers, spread over the groups in turn, and each latency counts
//! from the moment its proposal fell due (so a stall shows in the latency, not in a lower
//! offered rate); the line also says how late the generator issued them. At most
//! [`MAX_OPEN_LOOP_IN_FLIGHT`] are outstanding; proposals due beyond that are shed and
//! counted as errors. The rate counts the proposals that completed in the measured window;
//! the latencies, every proposal issued in it, waited for after the window if need be
//! ([`OPEN_LOOP_DRAIN`]).
//!
//! With `--reads`, the same cluster then runs two more phases of the same length with the
//! same clients reading instead (`MultiRaft::read` at the leader): ReadIndex, then Lease;
//! each phase prints its rate, and a last line the read rates as multiples of the write
//! rate of the same run.
//!
//! With `--matrix`, one command gives the whole benchmark matrix: groups ∈ {1, 48, 1,000,
//! 4,096, 16,384} × clients ∈ {64, 4,096}, each point on a fresh cluster, then the
//! open-loop latency at half of the 1,000-group, 4,096-client rate; it ends with the table
//! in Markdown.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use multiraft_core::{
    Bytes, Config, GroupId, Indeterminate, NodeId, ProposeError, ReadError, ReadPolicy,
};
use multiraft_examples::ClusterNode;
use multiraft_examples::measure::{
    LatencyBuffer, core_round_trip_ns, histogram, load_average, micros, process_cpu_secs, record,
};
use multiraft_examples::{create_groups, loop_runtimes, start_mem_cluster_on};

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
    /// Seconds measured, after the warm-up (at least 1)
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seconds of warm-up before the measured window. A fresh cluster's logs grow into
    /// new memory until their first snapshots; at 1,000 and 4,096 busy groups a longer
    /// warm-up measured no faster (BENCHMARKS.md, "An open-loop generator on time")
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
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
    /// Closed loop: each client times one operation in this many (1: every one). Reading
    /// the clock twice per operation and recording it cost about a tenth of the box at one
    /// group (BENCHMARKS.md, "Timing one operation in N"); the rate counts every operation
    /// either way, and the latencies are those of the timed ones
    #[arg(long, default_value_t = 1)]
    time_every: u64,
    /// Open loop: offer this many proposals per second instead of running closed-loop
    /// clients
    #[arg(long)]
    rate: Option<u64>,
    /// Run the whole matrix (groups 1, 48, 1000, 4096, 16384 × clients 64, 4096, then
    /// open loop at half the 1000-group rate) and print it as a table
    #[arg(long)]
    matrix: bool,
    /// Milliseconds per tick (`Config::tick_interval`; heartbeats every 2 ticks, elections
    /// after 10–20). 10 by default, five times the library's default rate, so that the
    /// cost of ticks and heartbeats of busy groups shows
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Run the three nodes' event loops on this many runtimes of one thread each, apart
    /// from the clients' runtime (`Builder::runtime`); 0: on the clients' runtime
    #[arg(long, default_value_t = 0)]
    loop_threads: usize,
    /// Worker threads of the runtime the clients (and, without `--loop-threads`, the
    /// nodes) run on. 1 runs the whole cluster on one thread: no cache line moves between
    /// cores, so the CPU per proposal is the library's own work, steadier from run to run
    /// for comparing two builds (BENCHMARKS.md, "One thread for steadier comparisons")
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// `Config::max_commit_wait_ticks` (admission control); the library's default if not
    /// given
    #[arg(long)]
    max_commit_wait_ticks: Option<u32>,
    /// `Config::snapshot_entries` (entries applied between a group's snapshots); the
    /// library's default if not given
    #[arg(long)]
    snapshot_entries: Option<u64>,
}

/// What the clients of one phase do.
#[derive(Clone, Copy, Debug)]
enum Work {
    Write,
    Read(ReadPolicy),
    /// Proposals offered at this many per second, whatever the answers.
    OpenLoop(u64),
}

/// The figures of one measured phase.
#[derive(Clone, Debug)]
struct Figures {
    groups: u64,
    clients: u64,
    work: Work,
    /// Operations completed per second.
    rate: f64,
    /// Latency percentiles in microseconds: p50, p99, p99.9; `None` when no operation was
    /// timed (with `--time-every N`, clients that each completed fewer than N).
    latency: Option<[u64; 3]>,
    /// Process CPU time per completed operation, in microseconds.
    cpu_us: Option<f64>,
    /// Failed operations, `Busy` refusals apart.
    errors: u64,
    /// Of those, by kind.
    error_kinds: ErrorKinds,
    /// Proposals refused with `Busy` (admission control, a full submission queue).
    refused: u64,
    /// Elections during the measured window.
    elections: u64,
    /// Elections during the warm-up, from the clients' start: the first flood of
    /// proposals is where a loop is likeliest to fall behind.
    warmup_elections: u64,
    /// Ticks each node served per second, on average over the nodes.
    ticks_served: f64,
    /// Of the ticks that fell due, the share a stalled loop served late (%).
    ticks_missed_pct: f64,
    /// Readies each node made per second, on average over the nodes (`NodeStatus::readies`):
    /// against the rate, how many operations share one ready's write and sends.
    readies: f64,
    /// Verdicts, summed over the nodes, that a peer node was down (`NodeStats`).
    peers_declared_down: u64,
    /// Open loop: p50 and p99 (µs) of how late the generator issued each proposal after it
    /// fell due, and of the latency counted from the moment it was issued. The latency
    /// above counts from when it fell due and holds both parts.
    generator: Option<[(u64, u64); 2]>,
    /// A cache line's round trip between two threads, in nanoseconds, just before the
    /// clients started and just after they stopped ([`ROUND_TRIPS`]).
    round_trips: [f64; 2],
}

impl Figures {
    /// The open loop's latency taken apart ([`Figures::generator`]), as printed.
    fn generator_parts(&self) -> Option<String> {
        self.generator.map(|[late, issued]| {
            format!(
                "issued late by the generator: p50 {} us, p99 {} us; from issue: p50 {} us, p99 {} us",
                late.0, late.1, issued.0, issued.1
            )
        })
    }

    /// Latency percentile `i` of [`Figures::latency`] (p50, p99, p99.9), as printed.
    fn latency(&self, i: usize) -> String {
        self.latency.map_or("n/a".into(), |l| l[i].to_string())
    }

    /// CPU µs per operation, as printed.
    fn cpu(&self) -> String {
        self.cpu_us.map_or("n/a".into(), |c| format!("{c:.2}"))
    }

    fn what(&self) -> String {
        match self.work {
            Work::Write => "committed proposals/s".into(),
            Work::Read(policy) => format!("{policy:?} reads/s"),
            Work::OpenLoop(offered) => {
                format!("committed proposals/s (open loop, {offered}/s offered)")
            }
        }
    }
}

/// Matrix points: groups × closed-loop clients.
const MATRIX_GROUPS: [u64; 5] = [1, 48, 1_000, 4_096, 16_384];
const MATRIX_CLIENTS: [u64; 2] = [64, 4_096];

/// Round trips of a cache line between two threads ([`core_round_trip_ns`]) measured before
/// and after each phase, to tell which of the machine's two speeds it ran in: 30–200 ms
/// each on the 2-core machines of BENCHMARKS.md, against seconds of measurement; and at
/// most [`ROUND_TRIPS_WITHIN`], however busy the machine.
const ROUND_TRIPS: u64 = 500_000;
const ROUND_TRIPS_WITHIN: Duration = Duration::from_millis(250);

/// Open loop: proposals outstanding at most. Bounds the bench's own memory when the
/// offered rate is beyond what the cluster can take; what is due beyond it is shed.
const MAX_OPEN_LOOP_IN_FLIGHT: u64 = 65_536;

/// Open loop: how long the generator waits, after the run, for the proposals issued in
/// the measured window that are still outstanding, so that the slowest count in the
/// latencies (every proposal ends by its timeout: 2 s at the default 10 ms tick). What is
/// left after it is counted as a timeout.
const OPEN_LOOP_DRAIN: Duration = Duration::from_secs(10);

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.groups = a.groups.max(1);
    a.clients = a.clients.max(1);
    a.secs = a.secs.max(1);
    a.batch = a.batch.max(1);
    a.time_every = a.time_every.max(1);
    a.threads = a.threads.max(1);
    a
}

fn main() {
    multiraft_examples::init_logging();
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) if args.matrix => runtime.block_on(matrix(&args)),
        Ok(runtime) => runtime.block_on(run(&args)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// A cluster of three nodes with `groups` groups, each with a leader; returns the nodes
/// and each group's leader.
async fn cluster(args: &Args, groups: u64) -> Result<(Vec<ClusterNode>, Vec<NodeId>), String> {
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(args.tick_ms.max(1));
    config.quiesce = std::env::var("BENCH_QUIESCE").map_or(true, |v| v != "0");
    if let Some(ticks) = args.max_commit_wait_ticks {
        config.max_commit_wait_ticks = ticks;
    }
    if let Some(entries) = args.snapshot_entries {
        config.snapshot_entries = entries;
    }
    // Made once: every point of a matrix runs its nodes on the same loop threads.
    static RUNTIMES: OnceLock<Vec<tokio::runtime::Handle>> = OnceLock::new();
    let runtimes = RUNTIMES.get_or_init(|| loop_runtimes(args.loop_threads));
    let cluster = start_mem_cluster_on(3, &config, runtimes)
        .await
        .map_err(|e| e.to_string())?;
    let leaders = create_groups(&cluster, groups, Duration::from_secs(120)).await?;
    Ok((cluster, leaders))
}

async fn shutdown(cluster: Vec<ClusterNode>) -> Result<(), String> {
    for n in &cluster {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn run(args: &Args) -> Result<(), String> {
    let (cluster, leaders) = cluster(args, args.groups).await?;
    let mut rates = Vec::new();
    let mut phases = vec![args.rate.map_or(Work::Write, Work::OpenLoop)];
    if args.reads {
        phases.extend([
            Work::Read(ReadPolicy::ReadIndex),
            Work::Read(ReadPolicy::Lease),
        ]);
    }
    for work in phases {
        let f = phase(args, &cluster, &leaders, work).await?;
        print_line(args, &f);
        rates.push(f.rate);
    }
    if let [writes, read_index, lease] = rates[..] {
        println!(
            "bench: reads per write, same run: ReadIndex {:.2}x, Lease {:.2}x",
            read_index / writes,
            lease / writes
        );
    }
    shutdown(cluster).await
}

fn print_line(args: &Args, f: &Figures) {
    println!(
        "bench: nodes=3 groups={} clients={} bytes={} secs={} (warm-up {} s): {:.0} {}, latency p50 {} us, p99 {} us, p99.9 {} us{}, cpu {} us/op, errors {} (timeouts {}, leadership {}, shed {}, other {}), refused (busy) {}, elections {} (warm-up {}), ticks served {:.0}/s per node ({:.0} % missed), readies {:.0}/s per node, peers declared down {}, cores' round trip {:.0} ns before, {:.0} ns after",
        f.groups,
        f.clients,
        args.bytes,
        args.secs,
        args.warmup_secs,
        f.rate,
        f.what(),
        f.latency(0),
        f.latency(1),
        f.latency(2),
        f.generator_parts()
            .map_or(String::new(), |parts| format!(" ({parts})")),
        f.cpu(),
        f.errors,
        f.error_kinds.timeouts,
        f.error_kinds.leadership,
        f.error_kinds.shed,
        f.error_kinds.other,
        f.refused,
        f.elections,
        f.warmup_elections,
        f.ticks_served,
        f.ticks_missed_pct,
        f.readies,
        f.peers_declared_down,
        f.round_trips[0],
        f.round_trips[1]
    );
}

/// Every point of the matrix on a fresh cluster, then the open-loop latency at half the
/// 1,000-group, 4,096-client rate; prints each line as it comes and the table at the end.
async fn matrix(args: &Args) -> Result<(), String> {
    println!(
        "bench --matrix: secs={} bytes={} load average {} at start",
        args.secs,
        args.bytes,
        load_average()
    );
    let mut rows = Vec::new();
    for groups in MATRIX_GROUPS {
        let (cluster, leaders) = cluster(args, groups).await?;
        for clients in MATRIX_CLIENTS {
            let point = Args {
                groups,
                clients,
                rate: None,
                matrix: false,
                reads: false,
                ..*args
            };
            let f = phase(&point, &cluster, &leaders, Work::Write).await?;
            print_line(args, &f);
            rows.push(f);
        }
        shutdown(cluster).await?;
    }
    let max = rows
        .iter()
        .find(|f| f.groups == 1_000 && f.clients == 4_096)
        .map_or(0.0, |f| f.rate);
    let offered = ((max / 2.0) as u64).max(1);
    let (cluster, leaders) = cluster(args, 1_000).await?;
    let point = Args {
        groups: 1_000,
        rate: Some(offered),
        matrix: false,
        reads: false,
        ..*args
    };
    let f = phase(&point, &cluster, &leaders, Work::OpenLoop(offered)).await?;
    print_line(args, &f);
    rows.push(f);
    shutdown(cluster).await?;

    println!();
    println!(
        "| groups | clients | committed/s | p50 µs | p99 µs | p99.9 µs | CPU µs/proposal | errors | refused | elections (warm-up) | round trip ns |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for f in &rows {
        let clients = match f.work {
            Work::OpenLoop(offered) => format!("open loop {offered}/s"),
            _ => f.clients.to_string(),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.0}, {:.0} |",
            f.groups,
            clients,
            f.rate,
            f.latency(0),
            f.latency(1),
            f.latency(2),
            f.cpu(),
            f.errors,
            f.refused,
            f.elections,
            f.warmup_elections,
            f.round_trips[0],
            f.round_trips[1]
        );
    }
    let at = |g: u64| {
        rows.iter()
            .find(|f| f.groups == g && f.clients == 4_096 && matches!(f.work, Work::Write))
            .map_or(0.0, |f| f.rate)
    };
    println!(
        "\nflatness (4,096 clients): 4,096 groups at {:.1} % of the 48-group rate; 1,000 groups at {:.1} %",
        100.0 * at(4_096) / at(48).max(1.0),
        100.0 * at(1_000) / at(48).max(1.0)
    );
    if let Some(parts) = rows.last().and_then(Figures::generator_parts) {
        println!("open loop, the latency taken apart: {parts}");
    }
    Ok(())
}

/// Counts of every node, summed: what the loops kept up with.
#[derive(Default)]
struct LoopCounts {
    /// Ticks of the nodes' clocks.
    ticks: u64,
    /// Of those, the ones served late.
    missed: u64,
    /// Peers declared down.
    down: u64,
    /// Readies made.
    readies: u64,
    /// Campaigns started (`NodeStats::elections_started`): read at the window's edges, not
    /// counted from the groups' terms, which took a status call per group (seconds under
    /// load, outside the window) and missed campaigns that moved no term (review).
    elections: u64,
}

async fn loop_counts(cluster: &[ClusterNode]) -> Result<LoopCounts, String> {
    let mut sum = LoopCounts::default();
    for node in cluster {
        let status = node.handle.node_status().await.map_err(|e| e.to_string())?;
        sum.ticks += status.ticks;
        sum.missed += status.ticks_missed;
        sum.down += status.stats.peers_declared_down;
        sum.readies += status.readies;
        sum.elections += status.stats.elections_started;
    }
    Ok(sum)
}

/// Runs one measured phase of `work` with every client; returns its figures.
async fn phase(
    args: &Args,
    cluster: &[ClusterNode],
    leaders: &[NodeId],
    work: Work,
) -> Result<Figures, String> {
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    // Latencies go into one histogram, each client through its own `LatencyBuffer`; the
    // operations completed in the window are counted apart (`Tally`): not all are timed.
    let shared = Arc::new(Mutex::new(histogram(std::iter::empty())));
    let mut tasks = Vec::new();
    let tally = Arc::new(Tally::default());
    let before = loop_counts(cluster).await?;
    let round_trip_before = round_trip().await?;
    let parts = Arc::new(Mutex::new(GeneratorParts::default()));
    if let Work::OpenLoop(offered) = work {
        let generator = open_loop(
            offered,
            cluster,
            leaders,
            args.bytes,
            (&running, &measuring),
            (&shared, &tally),
            &parts,
        );
        tasks.push(tokio::spawn(generator));
    } else {
        for c in 0..args.clients {
            let g = c % args.groups;
            let node = cluster[leaders[g as usize].0 as usize - 1].handle.clone();
            let (running, measuring, shared) = (running.clone(), measuring.clone(), shared.clone());
            // One payload per client: a single shared one would make every proposal bounce
            // one reference count between the cores, which measures the benchmark, not the
            // library.
            let payload = Bytes::from(vec![7u8; args.bytes]);
            let (batch, time_every) = (args.batch, args.time_every);
            let tally = tally.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = LatencyBuffer::new(shared);
                // Operations completed in the window; operations until the next timed one.
                let (mut done, mut untimed) = (0u64, 0u64);
                while running.load(Ordering::Relaxed) {
                    let t = (untimed == 0).then(Instant::now);
                    untimed = untimed.checked_sub(1).unwrap_or(time_every - 1);
                    let group = GroupId(g + 1);
                    // The kind of each failure of this round (`Busy` refusals among them),
                    // and how many operations succeeded.
                    let mut failures = Vec::new();
                    let ok = match work {
                        Work::Write if batch > 1 => {
                            let commands = vec![payload.clone(); batch];
                            let results = node.propose_many(group, commands).await;
                            let ok = results.iter().filter(|r| r.is_ok()).count();
                            failures.extend(
                                results
                                    .iter()
                                    .filter_map(|r| r.as_ref().err())
                                    .map(propose_failure),
                            );
                            ok
                        }
                        Work::Write | Work::OpenLoop(_) => {
                            match node.propose(group, payload.clone()).await {
                                Ok(_) => 1,
                                Err(e) => {
                                    failures.push(propose_failure(&e));
                                    0
                                }
                            }
                        }
                        Work::Read(policy) => match node.read(group, policy, Bytes::new()).await {
                            Ok(_) => 1,
                            Err(e) => {
                                failures.push(read_failure(&e));
                                0
                            }
                        },
                    };
                    if failures.contains(&Failure::Refused) {
                        // A refusal comes at once: retried at once, the clients would never
                        // yield, and starve the loops that share their runtime.
                        tokio::time::sleep(REFUSED_BACKOFF).await;
                    }
                    if measuring.load(Ordering::Relaxed) {
                        done += ok as u64;
                        if let Some(t) = t {
                            latencies.record(t.elapsed(), ok);
                        }
                        for f in failures {
                            tally.count(f);
                        }
                    }
                }
                tally.add_completed(done);
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let ticks0 = loop_counts(cluster).await?;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = process_cpu_secs();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let ticks1 = loop_counts(cluster).await?;
    running.store(false, Ordering::Relaxed);
    let (due, missed) = (ticks1.ticks - ticks0.ticks, ticks1.missed - ticks0.missed);

    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let round_trips = [round_trip_before, round_trip().await?];
    let kinds = tally.kinds();
    let all = shared.lock().map_err(|e| e.to_string())?.clone();
    let completed = tally.completed.load(Ordering::Relaxed);
    Ok(Figures {
        groups: args.groups,
        clients: args.clients,
        work,
        rate: completed as f64 / elapsed,
        latency: (!all.is_empty()).then(|| [0.50, 0.99, 0.999].map(|q| all.value_at_quantile(q))),
        cpu_us: cpu.map(|c| c * 1e6 / completed.max(1) as f64),
        errors: kinds.errors(),
        error_kinds: kinds,
        refused: kinds.refused,
        elections: ticks1.elections - ticks0.elections,
        warmup_elections: ticks0.elections - before.elections,
        ticks_served: (due - missed) as f64 / elapsed / cluster.len() as f64,
        ticks_missed_pct: 100.0 * missed as f64 / due.max(1) as f64,
        readies: (ticks1.readies - ticks0.readies) as f64 / elapsed / cluster.len() as f64,
        peers_declared_down: ticks1.down - ticks0.down,
        generator: match work {
            Work::OpenLoop(_) => {
                let parts = parts.lock().map_err(|e| e.to_string())?;
                let p = |h: &Histogram<u64>| (h.value_at_quantile(0.50), h.value_at_quantile(0.99));
                Some([p(&parts.late), p(&parts.from_issue)])
            }
            _ => None,
        },
        round_trips,
    })
}

/// A cache line's round trip between two threads now ([`ROUND_TRIPS`] of them), on a
/// thread of the runtime's blocking pool, out of the way of its workers.
async fn round_trip() -> Result<f64, String> {
    tokio::task::spawn_blocking(|| core_round_trip_ns(ROUND_TRIPS, ROUND_TRIPS_WITHIN))
        .await
        .map_err(|e| e.to_string())
}

/// The open-loop generator: proposals fall due at exact moments, `offered` per second,
/// round robin over the groups, and each latency counts from the moment its proposal fell
/// due, so a generator held up (the runtime busy) shows in full. The generator issues what
/// has fallen due whenever it wakes: at each proposal that ends, and at least every
/// millisecond. How late each went out is kept apart (`parts.late`, printed as "issued
/// late by the generator"), with the latency from issue: that first part is the
/// generator's.
///
/// Why not a timer alone: the runtime's timer has a millisecond step and fired 1.2–1.4 ms
/// after each tick was due, so a generator woken only by it issued every proposal up to
/// that late, and its latencies mixed a millisecond of the generator's own lateness into
/// every figure (BENCHMARKS.md, "An open-loop generator on time"). A thread of its own
/// waking every 100 µs cost the 2-core box more than the proposals (14 µs each at
/// 25,000/s); the answers coming back wake the generator often enough for free.
///
/// One task holds every outstanding proposal (a `FuturesUnordered`) and its own histogram,
/// added to `shared` at the end; its failures go to `tally`. A task spawned per proposal,
/// recording into the shared histogram under its lock, cost the box about as much as the
/// proposal itself (BENCHMARKS.md, "An open-loop generator that costs less than what it
/// measures").
fn open_loop(
    offered: u64,
    cluster: &[ClusterNode],
    leaders: &[NodeId],
    bytes: usize,
    (running, measuring): (&Arc<AtomicBool>, &Arc<AtomicBool>),
    (shared, tally): (&Arc<Mutex<Histogram<u64>>>, &Arc<Tally>),
    parts: &Arc<Mutex<GeneratorParts>>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let handles: Vec<_> = leaders
        .iter()
        .map(|l| cluster[l.0 as usize - 1].handle.clone())
        .collect();
    let (running, measuring) = (running.clone(), measuring.clone());
    let (shared, tally, parts_shared) = (shared.clone(), tally.clone(), parts.clone());
    // One payload per group, as the closed loop has one per client: a single one would
    // bounce its reference count between the cores at every proposal.
    let payloads: Vec<Bytes> = (0..handles.len())
        .map(|_| Bytes::from(vec![7u8; bytes]))
        .collect();
    async move {
        let start = Instant::now();
        let mut latencies = histogram(std::iter::empty());
        let mut parts = GeneratorParts::default();
        // Each ends with its outcome, when it fell due and when it was issued, and whether
        // it counts (issued in the measured window).
        let mut outstanding: FuturesUnordered<_> = FuturesUnordered::new();
        // Of those, the ones issued in the measured window; and the proposals that
        // completed in it (the rate), whenever issued.
        let (mut measured_outstanding, mut completed_in_window) = (0u64, 0u64);
        let mut issued = 0u64;
        let mut next_group = 0usize;
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while running.load(Ordering::Relaxed) {
            tokio::select! {
                biased;
                // One at a time, through the select: polling the set without this task's
                // waker (`now_or_never`) would lose its wake-ups.
                Some((result, times, measured)) = outstanding.next(), if !outstanding.is_empty() => {
                    if succeeded(&result) && measuring.load(Ordering::Relaxed) {
                        completed_in_window += 1;
                    }
                    measured_outstanding -= u64::from(measured);
                    let histograms = [&mut latencies, &mut parts.from_issue];
                    record_outcome(result, times, measured, histograms, &tally);
                }
                _ = interval.tick() => {}
            }
            let now = Instant::now();
            // The proposals due by now at `offered` per second.
            let due_total = ((now - start).as_secs_f64() * offered as f64) as u64;
            while issued < due_total {
                let due = start + Duration::from_secs_f64(issued as f64 / offered as f64);
                issued += 1;
                let measured = measuring.load(Ordering::Relaxed);
                if measured {
                    record(&mut parts.late, micros(now.saturating_duration_since(due)));
                }
                if outstanding.len() as u64 >= MAX_OPEN_LOOP_IN_FLIGHT {
                    if measured {
                        tally.count(Failure::Shed);
                    }
                    continue;
                }
                let group = GroupId(next_group as u64 + 1);
                let (node, payload) = (&handles[next_group], payloads[next_group].clone());
                next_group = (next_group + 1) % handles.len();
                measured_outstanding += u64::from(measured);
                outstanding.push(async move {
                    let times: [Instant; 2] = [due, now];
                    (node.propose(group, payload).await, times, measured)
                });
            }
        }
        // The proposals issued in the window and still outstanding end here (dropped, the
        // slowest of them went unseen: review), within a bound.
        let drain = tokio::time::sleep(OPEN_LOOP_DRAIN);
        tokio::pin!(drain);
        while measured_outstanding > 0 {
            tokio::select! {
                next = outstanding.next() => {
                    let Some((result, times, measured)) = next else { break };
                    measured_outstanding -= u64::from(measured);
                    let histograms = [&mut latencies, &mut parts.from_issue];
                    record_outcome(result, times, measured, histograms, &tally);
                }
                () = &mut drain => break,
            }
        }
        for _ in 0..measured_outstanding {
            tally.count(Failure::Timeout);
        }
        tally.add_completed(completed_in_window);
        // Both grow to fit, so a sum cannot overflow a bucket.
        if let Ok(mut h) = shared.lock() {
            let _ = h.add(&latencies);
        }
        if let Ok(mut p) = parts_shared.lock() {
            let _ = p.late.add(&parts.late);
            let _ = p.from_issue.add(&parts.from_issue);
        }
    }
}

/// The open loop's latency taken apart (µs): how late the generator issued each proposal
/// after it fell due, and the latency from the moment it was issued.
struct GeneratorParts {
    late: Histogram<u64>,
    from_issue: Histogram<u64>,
}

impl Default for GeneratorParts {
    fn default() -> Self {
        GeneratorParts {
            late: histogram(std::iter::empty()),
            from_issue: histogram(std::iter::empty()),
        }
    }
}

/// Whether a proposal succeeded (typed, for a set whose type is still being inferred).
fn succeeded(result: &Result<Bytes, ProposeError>) -> bool {
    result.is_ok()
}

/// Counts one open-loop proposal, which fell due and was issued at `times`, and has
/// ended: if it was issued in the measured window and succeeded, its latency from each of
/// those moments (into `latencies`, in that order); if it failed, its failure's kind.
fn record_outcome(
    result: Result<Bytes, ProposeError>,
    times: [Instant; 2],
    measured: bool,
    latencies: [&mut Histogram<u64>; 2],
    tally: &Tally,
) {
    if !measured {
        return;
    }
    match result {
        Ok(_) => {
            for (h, t) in latencies.into_iter().zip(times) {
                record(h, micros(t.elapsed()));
            }
        }
        Err(e) => tally.count(propose_failure(&e)),
    }
}

/// What kind of failure ended an operation: counted apart, because each says something
/// different about the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Refused with `Busy` (admission control's `max_commit_wait_ticks`, a full submission
    /// queue's `max_api_queue`, or another limit): the node shedding load it cannot serve
    /// in time, by design. Not an error.
    Refused,
    /// No outcome within `Config::proposal_timeout_ticks`.
    Timeout,
    /// The group had no leader, or lost it (`NoLeader`, `NotLeader`, `LeadershipChanged`,
    /// a transfer in progress): what an overload must never cause.
    Leadership,
    /// The open loop shed it: [`MAX_OPEN_LOOP_IN_FLIGHT`] were outstanding.
    Shed,
    /// Anything else.
    Other,
}

fn propose_failure(e: &ProposeError) -> Failure {
    match e {
        ProposeError::Busy { .. } => Failure::Refused,
        ProposeError::Indeterminate(Indeterminate::Timeout) => Failure::Timeout,
        ProposeError::NoLeader
        | ProposeError::NotLeader { .. }
        | ProposeError::TransferInProgress
        | ProposeError::Indeterminate(Indeterminate::LeadershipChanged) => Failure::Leadership,
        _ => Failure::Other,
    }
}

fn read_failure(e: &ReadError) -> Failure {
    match e {
        ReadError::Busy { .. } => Failure::Refused,
        ReadError::Timeout => Failure::Timeout,
        ReadError::NoLeader | ReadError::NotLeader { .. } | ReadError::LeadershipChanged => {
            Failure::Leadership
        }
        _ => Failure::Other,
    }
}

/// The operations of a phase's measured window, counted by every client: those completed,
/// and the failures by kind.
#[derive(Default)]
struct Tally {
    completed: AtomicU64,
    failures: [AtomicU64; 5],
}

impl Tally {
    fn count(&self, f: Failure) {
        self.failures[f as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A client's `n` operations completed in the window, added when it stops.
    fn add_completed(&self, n: u64) {
        self.completed.fetch_add(n, Ordering::Relaxed);
    }

    fn kinds(&self) -> ErrorKinds {
        let n = |f: Failure| self.failures[f as usize].load(Ordering::Relaxed);
        ErrorKinds {
            refused: n(Failure::Refused),
            timeouts: n(Failure::Timeout),
            leadership: n(Failure::Leadership),
            shed: n(Failure::Shed),
            other: n(Failure::Other),
        }
    }
}

/// A phase's failures by kind (see [`Failure`]).
#[derive(Clone, Copy, Debug, Default)]
struct ErrorKinds {
    refused: u64,
    timeouts: u64,
    leadership: u64,
    shed: u64,
    other: u64,
}

impl ErrorKinds {
    /// The failures that count as errors: all but `Busy` refusals.
    fn errors(&self) -> u64 {
        self.timeouts + self.leadership + self.shed + self.other
    }
}

/// How long a closed-loop client waits after a refusal before it proposes again.
const REFUSED_BACKOFF: Duration = Duration::from_millis(1);
