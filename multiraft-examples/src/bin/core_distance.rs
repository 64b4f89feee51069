//! How far apart this machine's cores are now: the time a cache line takes to go from one
//! thread to another and back.
//!
//! `cargo run --release -p multiraft-examples --bin core_distance -- [--trips 2000000] [--runs 1]`
//!
//! Two threads pass a counter back and forth through one atomic, each waiting (spinning)
//! for the other's increment, and the program prints the mean time of a round trip. On the
//! 2-core machines of BENCHMARKS.md the figure has two levels, 56–135 ns and 360–420 ns,
//! switching within seconds, and every benchmark that moves data between its threads runs
//! at about half its speed in the slow one (BENCHMARKS.md, "Small snapshots handed over on
//! the loop; the machine's two speeds"): run it before and after a benchmark to tell which
//! level the benchmark ran in. With fewer than two cores free the two threads share one,
//! and the figure is the scheduler's, not the cores'.
//!
//! `--help` lists the flags.

use std::time::Duration;

use clap::Parser;
use multiraft_examples::measure::core_round_trip_ns;

/// At most this long per run, whatever `--trips`: a run on one free core, its threads
/// taking turns, would otherwise take minutes.
const ROUND_TRIPS_WITHIN: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(about = "The round-trip time of a cache line between two threads")]
struct Args {
    /// Round trips per run.
    #[arg(long, default_value_t = 2_000_000)]
    trips: u64,
    /// Runs, one line each.
    #[arg(long, default_value_t = 1)]
    runs: u32,
}

fn main() {
    let args = Args::parse();
    for _ in 0..args.runs {
        let ns = core_round_trip_ns(args.trips, ROUND_TRIPS_WITHIN);
        println!("core_distance: round trip {ns:.1} ns");
    }
}
