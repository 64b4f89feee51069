//! Soaks the deterministic simulator over many seeds.
//!
//! ```text
//! cargo run --release -p multiraft-testkit --bin sim -- --seeds N [--start S] [--nodes K] [--groups G] [--secs T] [-v] [--twice]
//! ```
//!
//! Runs seeds `S..S+N` (each with a fault mix derived from its seed; `--nodes`, `--groups`
//! and `--secs` override the derived values), prints every violation with its replay
//! command and a progress line now and then, and ends with `sim: <N> seeds, <V> violations`.
//! The exit status is 0 only when there were no violations. `-v` prints each run's report;
//! `--twice` runs every seed twice and counts differing results as a violation.

use std::process::ExitCode;
use std::time::Instant;

use multiraft_testkit::sim::{SimConfig, Simulation};

struct Args {
    seeds: u64,
    start: u64,
    nodes: Option<usize>,
    groups: Option<usize>,
    secs: Option<u64>,
    verbose: bool,
    twice: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: 1,
        start: 0,
        nodes: None,
        groups: None,
        secs: None,
        verbose: false,
        twice: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--seeds" => a.seeds = value()?,
            "--start" => a.start = value()?,
            "--nodes" => a.nodes = Some(value()? as usize),
            "--groups" => a.groups = Some(value()? as usize),
            "--secs" => a.secs = Some(value()?),
            "-v" | "--verbose" => a.verbose = true,
            "--twice" => a.twice = true,
            "-h" | "--help" => {
                return Err(
                    "usage: sim --seeds N [--start S] [--nodes K] [--groups G] [--secs T] [-v] [--twice]"
                        .to_string(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(n) = a.nodes
        && !(1..=9).contains(&n)
    {
        return Err("--nodes must be 1 to 9".to_string());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // A panic inside the core is reported as a violation; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut violations = 0u64;
    let mut steps = 0u64;
    for seed in args.start..args.start.saturating_add(args.seeds) {
        let mut cfg = SimConfig::for_seed(seed);
        if let Some(n) = args.nodes {
            cfg.nodes = n;
        }
        if let Some(g) = args.groups {
            cfg.groups = g;
        }
        if let Some(s) = args.secs {
            cfg.secs = s;
        }
        if args.verbose {
            eprintln!("seed {seed}: {}", cfg.summary());
        }
        let again = args.twice.then(|| Simulation::new(cfg.clone()).run());
        match Simulation::new(cfg).run() {
            Ok(r) => {
                steps += r.steps;
                if args.verbose {
                    eprintln!("{r:?}");
                }
                if let Some(again) = again
                    && again.as_ref().ok() != Some(&r)
                {
                    violations += 1;
                    println!(
                        "violation of determinism: seed {seed} ran twice with different results: {r:?} then {again:?}"
                    );
                }
            }
            Err(v) => {
                violations += 1;
                println!("{v}");
            }
        }
        let done = seed - args.start + 1;
        if last_progress.elapsed().as_secs() >= 5 || done == args.seeds {
            last_progress = Instant::now();
            eprintln!(
                "sim: {done}/{} seeds, {violations} violations, {steps} steps, {:.1}s",
                args.seeds,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("sim: {} seeds, {violations} violations", args.seeds);
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
