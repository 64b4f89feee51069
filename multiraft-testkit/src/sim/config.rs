//! The run configuration: [`Faults`], [`SimConfig`] and the replay command.

use multiraft_core::Config;

use super::SimRng;

/// Which faults a run injects. Every fault is drawn from the run's seed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// Chance that a batch is lost, in per mille (0–300: up to 30 %).
    pub loss_per_mille: u32,
    /// Chance that a batch is delivered twice, in per mille.
    pub duplicate_per_mille: u32,
    /// Extra random delay per batch, up to this many milliseconds. Batches overtake each
    /// other when it exceeds the base latency (0.2–2 ms), so this is also the reordering.
    pub max_delay_ms: u64,
    /// Partitions (symmetric, one-way, bridge) that start and heal.
    pub partitions: bool,
    /// Nodes crash and restart from their durable image.
    pub crashes: bool,
    /// Nodes' clocks tick at different rates, up to 2× the nominal one.
    pub clock_skew: bool,
    /// A storage write fails now and then; the node stops (it is down until restarted) and
    /// never acknowledges that write.
    pub storage_failures: bool,
    /// Writes take a random time (0–3 ms) to become durable, so inputs keep arriving while a
    /// write is in flight.
    pub slow_storage: bool,
}

impl Faults {
    /// No faults at all: a perfect network, disks and clocks.
    pub fn none() -> Faults {
        Faults {
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            max_delay_ms: 0,
            partitions: false,
            crashes: false,
            clock_skew: false,
            storage_failures: false,
            slow_storage: false,
        }
    }

    /// Every fault, at high rates.
    pub fn all() -> Faults {
        Faults {
            loss_per_mille: 100,
            duplicate_per_mille: 30,
            max_delay_ms: 20,
            partitions: true,
            crashes: true,
            clock_skew: true,
            storage_failures: true,
            slow_storage: true,
        }
    }

    /// A mix derived from `seed`: each fault on or off, rates drawn, so that a range of seeds
    /// covers every combination.
    pub fn from_seed(seed: u64) -> Faults {
        let mut r = SimRng::new(seed ^ 0x00FA_0175_5EED_0001);
        Faults {
            loss_per_mille: if r.chance(700) {
                r.range(0, 300) as u32
            } else {
                0
            },
            duplicate_per_mille: if r.chance(500) {
                r.range(0, 50) as u32
            } else {
                0
            },
            max_delay_ms: if r.chance(700) { r.range(1, 50) } else { 0 },
            partitions: r.chance(600),
            crashes: r.chance(600),
            clock_skew: r.chance(500),
            storage_failures: r.chance(400),
            slow_storage: r.chance(600),
        }
    }
}

/// What to simulate. Build with [`SimConfig::for_seed`] and adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SimConfig {
    /// The seed every random choice comes from.
    pub seed: u64,
    /// Number of nodes (1–9).
    pub nodes: usize,
    /// Number of groups. With more than 3 nodes each group has 3 replicas, or one on every
    /// node, chosen per group from the seed, so memberships overlap.
    pub groups: usize,
    /// Simulated seconds; the last part (at least 10 election timeouts) is the liveness
    /// phase, with every fault healed.
    pub secs: u64,
    /// The faults.
    pub faults: Faults,
    /// Client proposals per simulated second, over all groups.
    pub proposals_per_sec: u64,
    /// Trace lines kept for a [`Violation`](super::Violation).
    pub trace_lines: usize,
    /// The core configuration of every node. `strict` is on by default here.
    pub core: Config,
}

impl SimConfig {
    /// Everything derived from `seed`: 3–5 nodes, 1–100 groups (most runs have few), 60
    /// simulated seconds, [`Faults::from_seed`], and core options (PreVote, CheckQuorum)
    /// and limits (inflight window, entries per append, groups and entries per ready). The `sim` binary and the CI test build
    /// their runs this way, which is what makes the printed replay command exact.
    pub fn for_seed(seed: u64) -> SimConfig {
        let mut r = SimRng::new(seed ^ 0x5EED_C0F1_6000_0001);
        let nodes = r.range(3, 5) as usize;
        let groups = match r.below(10) {
            0..=3 => r.range(1, 5),
            4..=7 => r.range(6, 30),
            _ => r.range(31, 100),
        } as usize;
        let mut core = Config::default();
        core.strict = true;
        // Protocol options and limits vary too, so that the slow paths (probing one entry
        // at a time, full inflight windows, readies cut short) are exercised.
        core.pre_vote = r.chance(800);
        core.check_quorum = r.chance(800);
        if r.chance(300) {
            core.max_inflight_appends = r.range(1, 4) as usize;
        }
        if r.chance(300) {
            core.max_append_entries = r.range(1, 8) as usize;
        }
        if r.chance(200) {
            core.max_ready_groups = r.range(1, 8) as usize;
            core.max_ready_entries = r.range(1, 64) as usize;
        }
        if r.chance(200) {
            core.max_uncommitted_bytes = r.range(core.max_proposal_bytes as u64, 1 << 21) as usize;
        }
        SimConfig {
            seed,
            nodes,
            groups,
            secs: 60,
            faults: Faults::from_seed(seed),
            proposals_per_sec: 20 + groups as u64 / 2,
            trace_lines: 40,
            core,
        }
    }

    /// The configuration in one line, for reports.
    pub fn summary(&self) -> String {
        let c = &self.core;
        format!(
            "{} nodes, {} groups, {} s, {:?}, pre_vote {}, check_quorum {}, inflight {}, append entries {}, ready groups {}, ready entries {}, uncommitted bytes {}",
            self.nodes,
            self.groups,
            self.secs,
            self.faults,
            c.pre_vote,
            c.check_quorum,
            c.max_inflight_appends,
            c.max_append_entries,
            c.max_ready_groups,
            c.max_ready_entries,
            c.max_uncommitted_bytes
        )
    }

    /// The `sim` binary's command line that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run --release -p multiraft-testkit --bin sim -- --seeds 1 --start {} --nodes {} --groups {} --secs {}",
            self.seed, self.nodes, self.groups, self.secs
        )
    }
}
