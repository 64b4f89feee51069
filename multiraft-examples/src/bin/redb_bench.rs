//! The shared log on redb: durable commit throughput by number of groups, the raw ingest
//! rate of redb itself, and the time to load 100,000 groups at start.
//!
//! `cargo run --release -p multiraft-examples --bin redb_bench -- [--secs 5] [--runs 3] [--dir PATH] [--load-groups 100000] [--load-entries 10] [--e2e-groups 1000] [--clients 4096] [--checkpoint-mib N] [--e2e-file] [--e2e-delay-us U] [--compact-secs 30] [--only groups,raw,load,compact,e2e]`
//!
//! Every figure is printed for each run and as the median of the runs.
//!
//! - **groups N** (N = 1, 100, 1,000, 10,000): what the node layer does when N groups all
//!   have one 16-byte proposal per cycle: each `RedbStorage::write` is one `WriteBatch`
//!   holding, for every one of the N groups, one entry and its hard state (the commit index
//!   moves), and is one durable redb transaction (one fsync). The next batch is issued when
//!   the previous one returns, as the driver does. Reported: storage commits/s, durable
//!   entries/s, entries per commit, median commit latency.
//! - **raw**: three redb databases (three files) written concurrently by three threads, each
//!   in 1,000-row durable transactions of log-shaped rows (`(u64, u64)` key, 26-byte value):
//!   total rows/s. The ceiling for the shared log of three nodes on one machine.
//! - **load**: a database holding `--load-groups` groups (3 voters, a hard state and
//!   `--load-entries` 16-byte entries each) is closed, then timed: `RedbStorage::open` and
//!   `Storage::load` of every group. The OS page cache is warm (the file was just written).
//! - **compact**: a steady workload on one database — 1,000 groups, one 16-byte entry each
//!   per durable commit — for `--compact-secs` seconds, first without compaction, then (on a
//!   fresh file) with every group compacting to all but its last 100 entries every 10
//!   commits; the file size each second. redb reuses freed pages, so with compaction the
//!   file should stop growing.
//! - **e2e**: 3 nodes in one process, each on its own `RedbStorage` file, on the testkit's
//!   in-memory network; `--e2e-groups` groups, `--clients` closed-loop clients proposing
//!   16-byte commands to their group's leader; committed (applied on the leader) proposals/s
//!   after a 2 s warm-up, and the CPU time of the process per proposal; 10 ms ticks, 1–2 s
//!   election timeouts. Each run first measures the same cluster on the testkit's
//!   `MemStorage` (same clients, same latency recording as `bench`), then on redb, and
//!   prints the ratio of the two: the durable figure against the in-memory one of the same
//!   minute, which is how the project states its durable target (this box's speed swings
//!   more than 2× from one minute to the next). Compared with **raw** measured in the same
//!   run too (`--only raw,e2e` runs just these two): every committed proposal is one log
//!   row in each of the three databases, so the raw rate of the three divided by three is
//!   the proposal rate the disk allows. With `--e2e-file`, each run then measures the
//!   cluster a third time on `MemStorage` whose every write also appends the batch to a
//!   plain file and syncs it (one `write` and one `fdatasync` per batch, on a thread of its
//!   own): the least any durable log with one sync per batch costs here, to tell redb's
//!   own cost from durability's. With `--e2e-delay-us U`, once more on `MemStorage` whose
//!   every write is held `U` µs on such a thread, sleeping: what the write's latency alone
//!   costs the pipeline, with no CPU spent on durability.
//!
//! Latency percentiles come from an HdrHistogram (3 significant figures). Files go to a
//! fresh directory under `--dir` (default: the system temp directory), removed at the end.
//! `--only` takes a comma-separated list; `--help` lists the flags.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use multiraft_core::{
    Bytes, Config, Entry, GroupId, GroupWrite, HardState, LoadedGroup, Membership, MultiRaft,
    NodeId, Payload, ProposalId, SnapshotChunk, Storage, StorageError, WriteBatch,
};
use multiraft_examples::measure::{
    LatencyBuffer, histogram, load_average, median, nanos, process_cpu_secs, quantile,
};
use multiraft_examples::{
    ClusterNode, IndexMachine, create_groups, loop_runtimes, on_loop_runtime,
};
use multiraft_storage_redb::redb::{self, ReadableDatabase as _};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::{MemNetwork, MemStorage};

/// The shared log on redb: durable commit throughput by number of groups, the raw ingest
/// rate of redb itself, load time, compaction and end to end.
#[derive(Parser)]
#[command(name = "redb_bench", args_override_self = true)]
struct Args {
    /// Seconds per measurement (at least 1)
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Runs of each measurement; the median is reported (at least 1)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Parent of the fresh directory the files go to [default: the system temp directory]
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// Groups in the database the load measurement opens (at least 1)
    #[arg(long, default_value_t = 100_000)]
    load_groups: u64,
    /// Entries per group in that database
    #[arg(long, default_value_t = 10)]
    load_entries: u64,
    /// Groups of the end-to-end measurement (at least 1)
    #[arg(long, default_value_t = 1_000)]
    e2e_groups: u64,
    /// Closed-loop clients of the end-to-end measurement (at least 1)
    #[arg(long, default_value_t = 4_096)]
    clients: u64,
    /// Run the three nodes' event loops of the end-to-end measurement on this many
    /// runtimes of one thread each, apart from the clients' runtime (`Builder::runtime`);
    /// 0: on the clients' runtime
    #[arg(long, default_value_t = 0)]
    loop_threads: usize,
    /// `RedbOptions::checkpoint_bytes` of the end-to-end measurement's databases, in MiB
    /// [default: the library's default]
    #[arg(long)]
    checkpoint_mib: Option<usize>,
    /// After each e2e run on redb, run the same cluster once more on `MemStorage` with every
    /// batch also appended to a plain file and synced before the write returns: what any
    /// durable log must pay at least (encoding, one write and one `fdatasync` per batch), for
    /// comparison with redb's figure
    #[arg(long)]
    e2e_file: bool,
    /// After each e2e run on redb, run the same cluster once more on `MemStorage` with every
    /// write held this many microseconds on a thread that sleeps meanwhile: what the write's
    /// latency alone costs, with no CPU spent on durability
    #[arg(long)]
    e2e_delay_us: Option<u64>,
    /// Seconds of each compaction workload (at least 2)
    #[arg(long, default_value_t = 30)]
    compact_secs: u64,
    /// Run only these measurements (comma-separated) [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Option<Vec<Part>>,
}

/// The measurements `--only` picks from.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Durable commit throughput by number of groups
    Groups,
    /// Raw redb ingest, three databases at once
    Raw,
    /// Time to open and load many groups
    Load,
    /// File size over time, without and with compaction
    Compact,
    /// Three nodes on redb in one process
    E2e,
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.secs = a.secs.max(1);
    a.runs = a.runs.max(1);
    a.load_groups = a.load_groups.max(1);
    a.e2e_groups = a.e2e_groups.max(1);
    a.clients = a.clients.max(1);
    a.compact_secs = a.compact_secs.max(2);
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    multiraft_examples::init_logging();
    if let Err(e) = run().await {
        eprintln!("redb_bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("multiraft-redb-bench-")
        .tempdir_in(&parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let wants = |part: Part| args.only.as_ref().is_none_or(|o| o.contains(&part));
    println!(
        "redb_bench: {} s per measurement, median of {} runs, files in {}",
        args.secs,
        args.runs,
        dir.path().display()
    );
    let secs = Duration::from_secs(args.secs);
    if wants(Part::Groups) {
        for groups in [1u64, 100, 1_000, 10_000] {
            let mut runs = Vec::new();
            for run in 0..args.runs {
                let path = dir.path().join(format!("groups-{groups}-{run}.redb"));
                let r = bench_groups(&path, groups, secs).await?;
                println!(
                    "  groups={groups:<6} run {run}: {:>9.0} commits/s {:>10.0} entries/s, {:>6.0} entries/commit, commit p50 {:.3} ms p99 {:.3} ms, {} checkpoints (longest {:.1} ms)",
                    r.commits_per_sec,
                    r.entries_per_sec,
                    r.entries_per_sec / r.commits_per_sec,
                    r.p50_commit_ms,
                    r.p99_commit_ms,
                    r.checkpoints,
                    r.max_checkpoint_ms
                );
                runs.push(r);
            }
            let commits = median(runs.iter().map(|r| r.commits_per_sec));
            let entries = median(runs.iter().map(|r| r.entries_per_sec));
            let p50 = median(runs.iter().map(|r| r.p50_commit_ms));
            let p99 = median(runs.iter().map(|r| r.p99_commit_ms));
            println!(
                "groups={groups:<6} median: {commits:>9.0} commits/s {entries:>10.0} entries/s, {:>6.0} entries/commit, commit p50 {p50:.3} ms p99 {p99:.3} ms (load {})",
                entries / commits,
                load_average()
            );
        }
    }
    let mut raw_medians = Vec::new();
    if wants(Part::Raw) {
        for shape in [KeyShape::Groups, KeyShape::Sequential] {
            let mut runs = Vec::new();
            for run in 0..args.runs {
                let paths: Vec<PathBuf> = (0..3)
                    .map(|i| dir.path().join(format!("raw-{shape:?}-{run}-{i}.redb")))
                    .collect();
                let rows = tokio::task::spawn_blocking({
                    let paths = paths.clone();
                    move || bench_raw(&paths, shape, secs)
                })
                .await
                .map_err(|e| e.to_string())??;
                println!(
                    "  raw {} run {run}: {rows:>10.0} rows/s (3 databases, 1,000-row durable transactions)",
                    shape.name()
                );
                runs.push(rows);
            }
            let m = median(runs);
            raw_medians.push((shape, m));
            println!(
                "raw {} median: {m:>10.0} rows/s (3 databases, 1,000-row durable transactions) (load {})",
                shape.name(),
                load_average()
            );
        }
    }
    if wants(Part::Load) {
        let path = dir.path().join("load.redb");
        let build = Instant::now();
        build_load_db(&path, args.load_groups, args.load_entries).await?;
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!(
            "  load: built {} groups x {} entries in {:.1} s, file {:.1} MiB",
            args.load_groups,
            args.load_entries,
            build.elapsed().as_secs_f64(),
            size as f64 / (1 << 20) as f64
        );
        let mut runs = Vec::new();
        for run in 0..args.runs {
            let start = Instant::now();
            let storage = RedbStorage::open(&path, RedbOptions::default())
                .map_err(|e| format!("open: {e}"))?;
            let opened = start.elapsed();
            let loaded = storage.load().await.map_err(|e| format!("load: {e}"))?;
            let total = start.elapsed();
            if loaded.len() as u64 != args.load_groups {
                return Err(format!("loaded {} groups", loaded.len()));
            }
            drop(loaded);
            drop(storage);
            println!(
                "  load run {run}: open {:.3} s, open+load {:.3} s",
                opened.as_secs_f64(),
                total.as_secs_f64()
            );
            runs.push(total.as_secs_f64());
        }
        println!(
            "load median: {:.3} s for {} groups x {} entries (open + load) (load {})",
            median(runs),
            args.load_groups,
            args.load_entries,
            load_average()
        );
    }
    if wants(Part::Compact) {
        for compact in [false, true] {
            let path = dir.path().join(format!("compact-{compact}.redb"));
            let samples = bench_compaction(&path, compact, args.compact_secs).await?;
            let label = if compact {
                "with compaction (every 10 commits, each group keeps its last 100 entries)"
            } else {
                "without compaction"
            };
            let series: Vec<String> = samples
                .iter()
                .map(|(t, size)| format!("{t}s {:.1}", *size as f64 / (1 << 20) as f64))
                .collect();
            println!(
                "compact: file size in MiB over time, {label}: {}",
                series.join(", ")
            );
            let half = samples.get(samples.len() / 2).map_or(0, |s| s.1);
            let last = samples.last().map_or(0, |s| s.1);
            println!(
                "compact: {label}: {:.1} MiB at half time, {:.1} MiB at the end (load {})",
                half as f64 / (1 << 20) as f64,
                last as f64 / (1 << 20) as f64,
                load_average()
            );
        }
    }
    if wants(Part::E2e) {
        let (mut rates, mut ratios) = (Vec::new(), Vec::new());
        let runtimes = loop_runtimes(args.loop_threads);
        let options = args
            .checkpoint_mib
            .map_or_else(RedbOptions::default, |mib| {
                RedbOptions::default().with_checkpoint_bytes(mib << 20)
            });
        let shape = (args.e2e_groups, args.clients);
        for run in 0..args.runs {
            // The same cluster on in-memory storage first, then on redb: one pair per run,
            // so that the ratio compares two figures of the same minute on this box.
            let memory = bench_e2e(&E2eStorage::Memory, &runtimes, shape, secs).await?;
            print_e2e(run, "in memory", &memory, shape);
            let paths: Vec<PathBuf> = (1..=3)
                .map(|i| dir.path().join(format!("e2e-{run}-node{i}.redb")))
                .collect();
            let storage = E2eStorage::Redb(paths, options.clone());
            let durable = bench_e2e(&storage, &runtimes, shape, secs).await?;
            print_e2e(run, "on redb", &durable, shape);
            if args.e2e_file {
                let paths: Vec<PathBuf> = (1..=3)
                    .map(|i| dir.path().join(format!("e2e-{run}-node{i}.log")))
                    .collect();
                let file = bench_e2e(&E2eStorage::File(paths), &runtimes, shape, secs).await?;
                print_e2e(run, "on an appended file", &file, shape);
                println!(
                    "  e2e run {run}: on an appended file / in memory: {:.2}x the rate, {:.2}x the CPU per proposal",
                    file.rate / memory.rate,
                    file.cpu_us / memory.cpu_us
                );
            }
            if let Some(us) = args.e2e_delay_us {
                let delay = Duration::from_micros(us);
                let held = bench_e2e(&E2eStorage::Delay(delay), &runtimes, shape, secs).await?;
                print_e2e(run, &format!("with writes held {us} us"), &held, shape);
                println!(
                    "  e2e run {run}: with writes held {us} us / in memory: {:.2}x the rate, {:.2}x the CPU per proposal",
                    held.rate / memory.rate,
                    held.cpu_us / memory.cpu_us
                );
            }
            let ratio = durable.rate / memory.rate;
            println!(
                "  e2e run {run}: on redb / in memory: {ratio:.2}x the rate, {:.2}x the CPU per proposal",
                durable.cpu_us / memory.cpu_us
            );
            rates.push(durable.rate);
            ratios.push(ratio);
        }
        let m = median(rates);
        println!(
            "e2e median: {m:>10.0} committed proposals/s (3 nodes on redb, {} groups, {} clients, 16-byte proposals), {:.2}x the in-memory rate of the same runs (load {})",
            args.e2e_groups,
            args.clients,
            median(ratios),
            load_average()
        );
        for (shape, raw) in raw_medians {
            // Every committed proposal is stored by each of the three databases, so a cluster
            // storing one row per entry at the raw rate would commit raw / 3 proposals/s.
            println!(
                "e2e / raw {}: {:.2}x the raw rate of all three ({raw:.0} rows/s), {:.2}x one database's share",
                shape.name(),
                m / raw,
                m / (raw / 3.0),
            );
        }
    }
    Ok(())
}

struct GroupsResult {
    commits_per_sec: f64,
    entries_per_sec: f64,
    p50_commit_ms: f64,
    p99_commit_ms: f64,
    /// Checkpoints during the measurement, and the longest.
    checkpoints: u64,
    max_checkpoint_ms: f64,
}

fn command(node: u64, seq: u64, index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command {
            id: ProposalId {
                node: NodeId(node),
                seq,
            },
            data: Bytes::from_static(b"0123456789abcdef"),
        },
    }
}

/// One batch in which each of `groups` groups appends the entry at `index` and moves its
/// commit index.
fn cycle_batch(groups: u64, index: u64, seq: &mut u64) -> WriteBatch {
    let groups: Vec<GroupWrite> = (1..=groups)
        .map(|g| {
            *seq += 1;
            let hard_state = HardState {
                term: 1,
                vote: Some(NodeId(1)),
                commit: index - 1,
            };
            GroupWrite::new(GroupId(g))
                .with_hard_state(hard_state)
                .with_entries(vec![command(1, *seq, index, 1)])
        })
        .collect();
    WriteBatch::from(groups)
}

/// A steady workload — 1,000 groups, one 16-byte entry each per durable commit — for `secs`
/// seconds, with or without compaction; returns (second, file size in bytes) samples.
async fn bench_compaction(
    path: &Path,
    compact: bool,
    secs: u64,
) -> Result<Vec<(u64, u64)>, String> {
    const GROUPS: u64 = 1_000;
    /// Entries each group keeps when it compacts, and how often it does.
    const KEEP: u64 = 100;
    const EVERY: u64 = 10;
    let storage =
        RedbStorage::open(path, RedbOptions::default()).map_err(|e| format!("open: {e}"))?;
    let start = Instant::now();
    let (mut index, mut seq) = (1, 0);
    let mut samples = Vec::new();
    while start.elapsed().as_secs() < secs {
        let mut batch = cycle_batch(GROUPS, index, &mut seq);
        if compact && index % EVERY == 0 && index > KEEP {
            for w in &mut batch.groups {
                w.compact_to = Some(index - KEEP);
            }
        }
        storage
            .write(batch)
            .await
            .map_err(|e| format!("write: {e}"))?;
        index += 1;
        let second = start.elapsed().as_secs();
        if samples.last().is_none_or(|&(t, _)| t < second) {
            let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
            samples.push((second, size));
        }
    }
    Ok(samples)
}

async fn bench_groups(path: &Path, groups: u64, secs: Duration) -> Result<GroupsResult, String> {
    let storage =
        RedbStorage::open(path, RedbOptions::default()).map_err(|e| format!("open: {e}"))?;
    let write = |b| {
        let s = storage.clone();
        async move { s.write(b).await.map_err(|e| format!("write: {e}")) }
    };
    // Create the groups, then warm up for a tenth of the measurement.
    let created: Vec<GroupWrite> = (1..=groups)
        .map(|g| GroupWrite::new(GroupId(g)).with_membership(Membership::voters([1, 2, 3])))
        .collect();
    write(WriteBatch::from(created)).await?;
    let mut index = 1;
    let mut seq = 0;
    let warm = Instant::now();
    while warm.elapsed() < secs / 10 {
        write(cycle_batch(groups, index, &mut seq)).await?;
        index += 1;
    }
    let mut latencies = Vec::new();
    let mut next = cycle_batch(groups, index, &mut seq);
    let before = storage.stats();
    let start = Instant::now();
    let mut entries = 0u64;
    while start.elapsed() < secs {
        let batch = std::mem::take(&mut next);
        entries += batch.entry_count() as u64;
        let t = Instant::now();
        let pending = write(batch);
        // Build the next batch while this one commits, as the node steps groups meanwhile.
        index += 1;
        let (done, built) = tokio::join!(pending, async { cycle_batch(groups, index, &mut seq) });
        done?;
        next = built;
        latencies.push(nanos(t.elapsed()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = storage.stats();
    let latencies = histogram(latencies);
    let at = |q: f64| quantile(&latencies, q).as_secs_f64() * 1e3;
    Ok(GroupsResult {
        commits_per_sec: latencies.len() as f64 / elapsed,
        entries_per_sec: entries as f64 / elapsed,
        p50_commit_ms: at(0.5),
        p99_commit_ms: at(0.99),
        checkpoints: after.checkpoints - before.checkpoints,
        max_checkpoint_ms: after.checkpoint_micros_max as f64 / 1e3,
    })
}

const RAW_TABLE: redb::TableDefinition<'static, (u64, u64), &[u8]> =
    redb::TableDefinition::new("raw");

/// The keys of the raw benchmark's rows.
#[derive(Clone, Copy, Debug)]
enum KeyShape {
    /// One row for each of 1,000 groups per transaction, `(group, index)`: how a log table
    /// keyed by group sees a cycle in which every group appends one entry.
    Groups,
    /// 1,000 consecutive keys per transaction: appends to a single sequence, redb's
    /// cheapest write.
    Sequential,
}

impl KeyShape {
    fn name(self) -> &'static str {
        match self {
            KeyShape::Groups => "group-keyed",
            KeyShape::Sequential => "sequential",
        }
    }

    fn key(self, index: u64, row: u64) -> (u64, u64) {
        match self {
            KeyShape::Groups => (row, index),
            KeyShape::Sequential => (0, index * 1_000 + row),
        }
    }
}

/// Three databases, three writer threads, 1,000-row durable transactions of 26-byte values;
/// total rows/s.
fn bench_raw(paths: &[PathBuf], shape: KeyShape, secs: Duration) -> Result<f64, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let start_line = Arc::new(std::sync::Barrier::new(paths.len() + 1));
    let mut threads = Vec::new();
    for path in paths {
        let (path, stop, rows, start_line) = (
            path.clone(),
            Arc::clone(&stop),
            Arc::clone(&rows),
            Arc::clone(&start_line),
        );
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let mut builder = redb::Database::builder();
            builder.set_cache_size(RedbOptions::DEFAULT_CACHE_SIZE_BYTES);
            // At the start line whether or not the database opened: a thread that returned
            // before it left the others, and the main thread, waiting for good (review).
            let db = builder.create(&path);
            start_line.wait();
            let db = db.map_err(|e| e.to_string())?;
            let value = [7u8; 26];
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                index += 1;
                let mut txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.set_durability(redb::Durability::Immediate)
                    .map_err(|e| e.to_string())?;
                {
                    let mut t = txn.open_table(RAW_TABLE).map_err(|e| e.to_string())?;
                    for row in 0..1_000u64 {
                        t.insert(shape.key(index, row), value.as_slice())
                            .map_err(|e| e.to_string())?;
                    }
                }
                txn.commit().map_err(|e| e.to_string())?;
                rows.fetch_add(1_000, Ordering::Relaxed);
            }
            // Touch the read path once so the database is known good.
            let read = db.begin_read().map_err(|e| e.to_string())?;
            read.open_table(RAW_TABLE).map_err(|e| e.to_string())?;
            Ok(())
        }));
    }
    start_line.wait();
    let start = Instant::now();
    let before = rows.load(Ordering::Relaxed);
    std::thread::sleep(secs);
    let after = rows.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "raw writer panicked".to_string())??;
    }
    Ok((after - before) as f64 / elapsed)
}

/// `groups` groups with 3 voters, a hard state and `entries` entries each, written 1,000
/// groups per batch.
async fn build_load_db(path: &Path, groups: u64, entries: u64) -> Result<(), String> {
    let storage =
        RedbStorage::open(path, RedbOptions::default()).map_err(|e| format!("open: {e}"))?;
    let mut seq = 0;
    for chunk_start in (1..=groups).step_by(1_000) {
        let chunk_end = (chunk_start + 999).min(groups);
        let writes: Vec<GroupWrite> = (chunk_start..=chunk_end)
            .map(|g| {
                let hard_state = HardState {
                    term: 2,
                    vote: Some(NodeId(1 + g % 3)),
                    commit: entries,
                };
                let log: Vec<Entry> = (1..=entries)
                    .map(|i| {
                        seq += 1;
                        command(1 + g % 3, seq, i, 2)
                    })
                    .collect();
                GroupWrite::new(GroupId(g))
                    .with_membership(Membership::voters([1, 2, 3]))
                    .with_hard_state(hard_state)
                    .with_entries(log)
            })
            .collect();
        let batch = WriteBatch::from(writes);
        storage
            .write(batch)
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

struct E2eResult {
    rate: f64,
    errors: u64,
    /// CPU time of the whole process per committed proposal over the measured window,
    /// microseconds.
    cpu_us: f64,
    /// Proposal latency (propose to applied result), milliseconds.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Checkpoints of the three databases during the measurement, and the longest.
    checkpoints: u64,
    max_checkpoint_ms: f64,
}

/// What the end-to-end measurement's nodes store their logs in.
enum E2eStorage {
    /// The testkit's `MemStorage`: the same cluster with nothing durable, for the ratio.
    Memory,
    /// `MemStorage`, each batch also appended to a file (one per node, at these paths) and
    /// synced before the write returns ([`FileLog`]).
    File(Vec<PathBuf>),
    /// `MemStorage`, each write held this long on a thread that sleeps ([`FileLog`] with
    /// [`Sink::Sleep`]).
    Delay(Duration),
    /// One redb file per node, at these paths.
    Redb(Vec<PathBuf>, RedbOptions),
}

fn print_e2e(run: usize, on: &str, r: &E2eResult, (groups, clients): (u64, u64)) {
    println!(
        "  e2e run {run}: {:>10.0} committed proposals/s (3 nodes {on}, {groups} groups, {clients} clients, 16-byte proposals), cpu {:.2} us/op, {} errors, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, {} checkpoints (longest {:.1} ms)",
        r.rate,
        r.cpu_us,
        r.errors,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.checkpoints,
        r.max_checkpoint_ms
    );
}

/// Three nodes on `storage`; closed-loop clients; committed proposals/s, errors, latency.
async fn bench_e2e(
    storage: &E2eStorage,
    runtimes: &[tokio::runtime::Handle],
    (groups, clients): (u64, u64),
    secs: Duration,
) -> Result<E2eResult, String> {
    let network = MemNetwork::new();
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    // 1-2 s election timeouts: while a storage write is in flight the driver sends nothing
    // (heartbeats included), and a 10,000-row commit on a busy disk can take 100 ms or more.
    config.election_timeout_min_ticks = 100;
    config.election_timeout_max_ticks = 200;
    let mut cluster = Vec::new();
    let mut storages = Vec::new();
    for i in 1..=3u64 {
        let builder = MultiRaft::builder(NodeId(i), config.clone());
        let builder = match storage {
            E2eStorage::Memory => builder.storage(MemStorage::new()),
            E2eStorage::File(paths) => {
                let path = paths.get(i as usize - 1).ok_or("three paths")?;
                let file = std::fs::File::create(path).map_err(|e| format!("create: {e}"))?;
                builder.storage(FileLog::start(Sink::File(file)).map_err(|e| e.to_string())?)
            }
            E2eStorage::Delay(delay) => {
                builder.storage(FileLog::start(Sink::Sleep(*delay)).map_err(|e| e.to_string())?)
            }
            E2eStorage::Redb(paths, options) => {
                let path = paths.get(i as usize - 1).ok_or("three paths")?;
                let redb =
                    RedbStorage::open(path, options.clone()).map_err(|e| format!("open: {e}"))?;
                storages.push(redb.clone());
                builder.storage(redb)
            }
        };
        let builder = builder
            .transport(network.transport(NodeId(i)))
            .state_machines(|_| IndexMachine::default())
            .seed(i);
        let handle = on_loop_runtime(builder, runtimes, i)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        cluster.push(ClusterNode {
            handle,
            applied: Arc::new(AtomicU64::new(0)),
        });
    }
    let leaders = create_groups(&cluster, groups, Duration::from_secs(120)).await?;
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    // Microseconds, each client through its own `LatencyBuffer`, as in `bench`.
    let shared = Arc::new(Mutex::new(histogram(std::iter::empty())));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let g = c % groups;
        let node = cluster[leaders[g as usize].0 as usize - 1].handle.clone();
        let (running, measuring) = (Arc::clone(&running), Arc::clone(&measuring));
        let mut latencies = LatencyBuffer::new(Arc::clone(&shared));
        let payload = Bytes::from(vec![7u8; 16]);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut first_error = None;
            while running.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = node.propose(GroupId(g + 1), payload.clone()).await;
                let latency = sent.elapsed();
                if let Err(e) = &r {
                    first_error.get_or_insert_with(|| e.to_string());
                    // Do not spin on a refusal: it would measure the retry loop.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if measuring.load(Ordering::Relaxed) {
                    if r.is_ok() {
                        ok += 1;
                        latencies.record(latency, 1);
                    } else {
                        errors += 1;
                    }
                }
            }
            (ok, errors, first_error)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let checkpoint_stats = |s: &[RedbStorage]| -> (u64, u64) {
        s.iter().fold((0, 0), |(n, max), s| {
            let st = s.stats();
            (n + st.checkpoints, max.max(st.checkpoint_micros_max))
        })
    };
    let (checkpoints_before, _) = checkpoint_stats(&storages);
    measuring.store(true, Ordering::Relaxed);
    let (start, cpu_before) = (Instant::now(), process_cpu_secs());
    tokio::time::sleep(secs).await;
    measuring.store(false, Ordering::Relaxed);
    let (elapsed, cpu_after) = (start.elapsed().as_secs_f64(), process_cpu_secs());
    let (checkpoints_after, max_checkpoint) = checkpoint_stats(&storages);
    running.store(false, Ordering::Relaxed);
    let (mut ok, mut errors) = (0, 0);
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for t in tasks {
        let (o, e, first) = t.await.map_err(|e| e.to_string())?;
        ok += o;
        errors += e;
        if let Some(first) = first {
            *kinds.entry(first).or_default() += 1;
        }
    }
    for (kind, clients) in kinds {
        println!("    first error of {clients} clients: {kind}");
    }
    for n in &cluster {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    let latencies = shared.lock().map_err(|e| e.to_string())?.clone();
    // Microseconds to milliseconds.
    let at = |q: f64| latencies.value_at_quantile(q) as f64 / 1e3;
    let cpu = cpu_after.zip(cpu_before).map_or(f64::NAN, |(a, b)| a - b);
    Ok(E2eResult {
        rate: ok as f64 / elapsed,
        errors,
        cpu_us: cpu * 1e6 / (ok as f64).max(1.0),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: latencies.max() as f64 / 1e3,
        checkpoints: checkpoints_after - checkpoints_before,
        max_checkpoint_ms: max_checkpoint as f64 / 1e3,
    })
}

/// `MemStorage` whose writes first go through a thread of their own, as `RedbStorage`'s do,
/// to a [`Sink`]: appended to a file and synced (the least a durable log costs on this
/// disk), or only held for a while. Nothing reads the file; it is a measuring stick, not a
/// storage.
struct FileLog {
    memory: MemStorage,
    jobs: std::sync::mpsc::Sender<FileJob>,
}

type FileJob = (
    WriteBatch,
    tokio::sync::oneshot::Sender<(WriteBatch, std::io::Result<()>)>,
);

/// Where a [`FileLog`]'s thread puts each batch before the write returns.
enum Sink {
    /// The batch's group writes (group, hard state, entries; postcard) appended to this file
    /// and synced.
    File(std::fs::File),
    /// Nothing written: the thread sleeps this long.
    Sleep(Duration),
}

impl Sink {
    /// Puts `batch` here; `buffer` is the encoding's, kept between batches.
    fn put(&mut self, batch: &WriteBatch, buffer: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write as _;
        let file = match self {
            Sink::Sleep(delay) => {
                std::thread::sleep(*delay);
                return Ok(());
            }
            Sink::File(file) => file,
        };
        buffer.clear();
        let writes: Vec<_> = batch
            .groups
            .iter()
            .map(|w| (w.group.0, w.hard_state, &w.entries))
            .collect();
        let bytes =
            postcard::to_extend(&writes, std::mem::take(buffer)).map_err(std::io::Error::other)?;
        let written = file.write_all(&bytes).and_then(|()| file.sync_data());
        *buffer = bytes;
        written
    }
}

impl FileLog {
    fn start(mut sink: Sink) -> std::io::Result<FileLog> {
        let (jobs, received) = std::sync::mpsc::channel::<FileJob>();
        std::thread::Builder::new()
            .name("file-log-writer".into())
            .spawn(move || {
                let mut buffer = Vec::new();
                while let Ok((batch, reply)) = received.recv() {
                    let result = sink.put(&batch, &mut buffer);
                    let _ = reply.send((batch, result));
                }
            })?;
        Ok(FileLog {
            memory: MemStorage::new(),
            jobs,
        })
    }
}

#[async_trait::async_trait]
impl Storage for FileLog {
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.jobs
            .send((batch, reply))
            .map_err(|_| StorageError::Io(std::io::Error::other("file log writer gone")))?;
        let (batch, result) = done
            .await
            .map_err(|_| StorageError::Io(std::io::Error::other("file log writer gone")))?;
        result?;
        self.memory.write(batch).await
    }

    async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError> {
        self.memory.load().await
    }

    async fn entries(
        &self,
        group: GroupId,
        low: u64,
        high: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.memory.entries(group, low, high).await
    }

    async fn term(&self, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
        self.memory.term(group, index).await
    }

    async fn snapshot_chunk(
        &self,
        group: GroupId,
        index: u64,
        seq: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        self.memory.snapshot_chunk(group, index, seq).await
    }
}
