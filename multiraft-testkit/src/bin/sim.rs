//! Soaks the deterministic simulator over many seeds.
//!
//! ```text
//! cargo run --release -p multiraft-testkit --bin sim -- --seeds N [--start S] [--nodes K] [--groups G] [--secs T] [--rate P] [--trace N] [--jobs J] [-v] [--twice]
//! ```
//!
//! Runs seeds `S..S+N` (each with a fault mix derived from its seed; `--nodes`, `--groups`,
//! `--secs` and `--rate` (proposals per simulated second; by default the seed's rate for the
//! number of groups) override the derived values), prints every violation with its replay
//! command and a progress line now and then, and ends with `sim: <N> seeds, <V> violations`
//! and how many seeds kept nodes down through the liveness phase, and one line of reads
//! (served by policy, failed) and leadership transfers (started, done, failed, refused;
//! drains). A seed that takes more
//! than its step or wall-time budget is a violation, printed like the others.
//! The exit status is 0 only when there were no violations. `-v` prints each run's report;
//! `--trace N` prints the last N trace lines of each seed (deliveries, readies, faults), to
//! read what one seed did (`--seeds 1 --start S --trace 100000`);
//! `--twice` runs every seed twice and counts differing results as a violation. `--jobs`
//! runs that many seeds at once on their own threads (default: the number of CPUs); every
//! seed is still one deterministic single-threaded simulation, so the set of violations does
//! not depend on it — only the order they are printed in. `--help` lists the flags; a flag
//! it does not know, or a value out of range, ends it with status 2.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use multiraft_testkit::sim::{SimConfig, SimReport, Simulation};

/// Soaks the deterministic simulator over many seeds; exits 0 only when no seed violated
/// an invariant.
#[derive(Parser)]
#[command(name = "sim", args_override_self = true)]
struct Args {
    /// Number of seeds to run
    #[arg(long, value_name = "N", default_value_t = 1)]
    seeds: u64,
    /// First seed (runs seeds S..S+N)
    #[arg(long, value_name = "S", default_value_t = 0)]
    start: u64,
    /// Nodes per simulation, 1 to 9 [default: derived from the seed]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: Option<u64>,
    /// Groups per simulation [default: derived from the seed]
    #[arg(long, value_name = "G")]
    groups: Option<u64>,
    /// Simulated seconds per seed [default: derived from the seed]
    #[arg(long, value_name = "T")]
    secs: Option<u64>,
    /// Proposals per simulated second [default: the seed's rate for the number of groups]
    #[arg(long, value_name = "P")]
    rate: Option<u64>,
    /// Print the last N trace lines of each seed (deliveries, readies, faults)
    #[arg(long, value_name = "N")]
    trace: Option<u64>,
    /// Seeds run at once, on their own threads, 1 to 256 [default: the number of CPUs]
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Print each seed's configuration and report
    #[arg(short, long)]
    verbose: bool,
    /// Run every seed twice; differing results are a violation
    #[arg(long)]
    twice: bool,
}

/// Totals shared by the worker threads.
struct Tally {
    started: Instant,
    /// Seeds finished so far.
    done: AtomicU64,
    violations: AtomicU64,
    steps: AtomicU64,
    /// Seeds that kept nodes down (crashed or cut off) through the liveness phase.
    lost_node_seeds: AtomicU64,
    /// Groups those seeds left without a live majority (reported, not failed).
    groups_without_majority: AtomicU64,
    /// Seeds whose linearizability search gave up.
    unknown: AtomicU64,
    /// Reads, leadership moves and snapshots, summed over the seeds (see `moves`).
    moves: [AtomicU64; MOVES],
    /// The longest a node kept down at the heal took to catch up with its hot group.
    late_catch_up_max_us: AtomicU64,
    /// When the last progress line was printed; the lock also keeps lines whole.
    last_progress: Mutex<Instant>,
}

/// How many counters `Tally::moves` holds.
const MOVES: usize = 46;

/// The reads, leadership moves and snapshots of a report, in the order the summary lines
/// print them.
fn moves(r: &SimReport) -> [u64; MOVES] {
    [
        r.reads,
        r.reads_read_index,
        r.reads_lease,
        r.reads_follower,
        r.reads_failed,
        r.transfers_started,
        r.transfers_done,
        r.transfers_failed,
        r.transfers_refused,
        r.drains,
        r.snapshots_taken,
        r.compactions,
        r.installs,
        r.restores,
        r.snapshot_refusals,
        r.changes_started,
        r.changes_done,
        r.changes_failed,
        r.changes_refused,
        r.joint_entered,
        r.joint_left,
        r.promotions,
        r.leader_removals,
        r.replicas_removed,
        r.snapshot_failures,
        r.parked_for_snapshots,
        r.refused_by_admission,
        r.stragglers,
        r.deferred_for_transfers,
        u64::from(r.late_catch_up_us > 0),
        r.late_behind_at_end,
        r.log_lost,
        r.refused_by_table,
        r.removed_untold_joining,
        r.removed_untold_orphaned,
        r.removed_untold_quiesced,
        r.joins_abandoned,
        r.batches_split,
        r.indeterminate,
        r.indeterminate_applied,
        r.backlog_pauses,
        r.peers_declared_down,
        r.declared_down_in_backlog,
        r.long_turns,
        r.beacon_batches,
        r.declared_down_while_beaten,
    ]
}

/// Runs one seed, printing any violation; returns whether it held.
fn run_seed(args: &Args, seed: u64, tally: &Tally) -> bool {
    let mut cfg = SimConfig::for_seed(seed);
    if let Some(n) = args.nodes {
        cfg = cfg.with_nodes(n as usize);
    }
    if let Some(g) = args.groups {
        cfg = cfg.with_groups(g as usize);
    }
    if let Some(s) = args.secs {
        cfg.secs = s;
    }
    if let Some(r) = args.rate {
        cfg.proposals_per_sec = r;
    }
    if args.verbose {
        eprintln!("seed {seed}: {}", cfg.summary());
    }
    let again = args.twice.then(|| Simulation::new(cfg.clone()).run());
    let result = match args.trace {
        Some(lines) => {
            let (result, trace) = Simulation::new(cfg).run_traced(lines as usize);
            println!("seed {seed}: the last {} trace lines", trace.len());
            for line in trace {
                println!("  {line}");
            }
            result
        }
        None => Simulation::new(cfg).run(),
    };
    match result {
        Ok(r) => {
            tally.steps.fetch_add(r.steps, Ordering::Relaxed);
            if r.lost_nodes > 0 {
                tally.lost_node_seeds.fetch_add(1, Ordering::Relaxed);
            }
            let orphaned = r.groups_without_majority;
            tally
                .groups_without_majority
                .fetch_add(orphaned, Ordering::Relaxed);
            tally
                .unknown
                .fetch_add(r.linearizability_unknown, Ordering::Relaxed);
            for (sum, n) in tally.moves.iter().zip(moves(&r)) {
                sum.fetch_add(n, Ordering::Relaxed);
            }
            tally
                .late_catch_up_max_us
                .fetch_max(r.late_catch_up_us, Ordering::Relaxed);
            if args.verbose {
                eprintln!("{r:?}");
            }
            if let Some(again) = again
                && again.as_ref().ok() != Some(&r)
            {
                println!(
                    "violation of determinism: seed {seed} ran twice with different results: {r:?} then {again:?}"
                );
                return false;
            }
            true
        }
        Err(v) => {
            println!("{v}");
            false
        }
    }
}

/// Takes seeds from `next` until the range is used up.
fn worker(args: &Args, next: &AtomicU64, tally: &Tally) {
    let end = args.start.saturating_add(args.seeds);
    loop {
        let seed = next.fetch_add(1, Ordering::Relaxed);
        if seed >= end {
            return;
        }
        if !run_seed(args, seed, tally) {
            tally.violations.fetch_add(1, Ordering::Relaxed);
        }
        let done = tally.done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = tally
            .last_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.elapsed().as_secs() >= 5 || done == args.seeds {
            *last = Instant::now();
            eprintln!(
                "sim: {done}/{} seeds, {} violations, {} steps, {:.1}s",
                args.seeds,
                tally.violations.load(Ordering::Relaxed),
                tally.steps.load(Ordering::Relaxed),
                tally.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A panic inside the core is reported as a violation; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let tally = Tally {
        started: Instant::now(),
        done: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        steps: AtomicU64::new(0),
        lost_node_seeds: AtomicU64::new(0),
        groups_without_majority: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
        moves: std::array::from_fn(|_| AtomicU64::new(0)),
        late_catch_up_max_us: AtomicU64::new(0),
        last_progress: Mutex::new(Instant::now()),
    };
    let next = AtomicU64::new(args.start);
    let jobs = args
        .jobs
        .map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |j| j as usize,
        )
        .min(usize::try_from(args.seeds).unwrap_or(usize::MAX))
        .max(1);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| worker(&args, &next, &tally));
        }
    });
    let violations = tally.violations.load(Ordering::Relaxed);
    println!(
        "sim: {} of the seeds kept a minority of nodes down through the liveness phase ({} groups left without a live majority, reported); {} seeds' linearizability search gave up",
        tally.lost_node_seeds.load(Ordering::Relaxed),
        tally.groups_without_majority.load(Ordering::Relaxed),
        tally.unknown.load(Ordering::Relaxed),
    );
    let m: Vec<u64> = tally
        .moves
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    println!(
        "sim: reads {} (served: read-index {}, lease {}, follower {}; failed {}); transfers started {} (done {}, failed {}), refused {}; drains {}",
        m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]
    );
    println!(
        "sim: snapshots taken {} (failed on purpose {}), compactions {}, installs {}, restores {}, transfers refused for want of a receive slot {}; proposals parked for a snapshot {}",
        m[10], m[24], m[11], m[12], m[13], m[14], m[25]
    );
    println!(
        "sim: proposals without a definite outcome {} (reported indeterminate yet applied {})",
        m[38], m[39]
    );
    println!(
        "sim: proposals refused by admission control {}, at max_pending_proposals {}; batches held back as stragglers {}, split as the QUIC lanes split them {}; proposals taken while a snapshot was deferred for a transfer {}; nodes back behind a hot group caught up {} (within {} ms at most), not by the end {}",
        m[26],
        m[32],
        m[27],
        m[37],
        m[28],
        m[29],
        tally.late_catch_up_max_us.load(Ordering::Relaxed) / 1000,
        m[30]
    );
    println!(
        "sim: membership changes started {} (done {}, failed {}), refused {}; joint configurations entered {}, left {}; promotions {}; leaders removed {}; replicas deleted {} (and joining ones whose change failed or ended unknown {}); replicas joined again that said they lacked entries (LogLost) {}; removed replicas left untold: removed while joining {}, naming no voter that hosts the group {}, quiesced {}",
        m[15],
        m[16],
        m[17],
        m[18],
        m[19],
        m[20],
        m[21],
        m[22],
        m[23],
        m[36],
        m[31],
        m[33],
        m[34],
        m[35]
    );
    println!(
        "sim: busy pauses stepping a backlog {}; peers declared down {} (by a node stepping a backlog {})",
        m[40], m[41], m[42]
    );
    println!(
        "sim: stalled pauses in one long turn {}; beacon batches {}; peers declared down while their beacon beat {}",
        m[43], m[44], m[45]
    );
    println!("sim: {} seeds, {violations} violations", args.seeds);
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
