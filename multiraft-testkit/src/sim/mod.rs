//! A deterministic whole-cluster simulator: N nodes × G groups in one thread, every random
//! choice drawn from one `u64` seed, with fault injection and safety invariants checked
//! after every step.
//!
//! [`Simulation`] drives the sans-IO [`Node`] layer of `multiraft-core` directly — no tokio,
//! no threads, no wall clock. It keeps, per node:
//!
//! - a [`Node`] (absent while the node is down);
//! - a *durable image*: the groups' hard state, membership and log exactly as the writes
//!   acknowledged with [`Node::advance`] left them. A crash drops the node's memory and any
//!   write not yet advanced; a restart rebuilds the node with [`Node::new`] and
//!   [`Node::restore`] from the image. So "advanced" means "durable", as the storage
//!   contract says;
//! - a logical clock that ticks the node at its own rate (up to 2× the nominal one).
//!
//! Messages travel through a simulated network: a queue of deliveries ordered by simulated
//! time, with loss, duplication, delay and reordering, and partitions (symmetric, one-way,
//! bridge) that start and heal.
//!
//! Clients drive a key-value store (put / get / compare-and-set, a few keys per group)
//! through [`Node::propose`] on the node believed to lead each group. Every replica applies
//! the committed commands to its own copy; the proposing node's result is the client's
//! answer. Each operation is recorded with its invocation and return times and its outcome:
//! applied, rejected (definitely not applied), or indeterminate (its node crashed, or the run
//! ended first). At the end the history is checked by the
//! [Wing–Gong–Lowe linearizability checker](linearizability).
//!
//! One *step* is one event: a delivered batch, a tick of one node, a completed write, a
//! proposal, or a fault. After each step the [invariants](self#invariants) are checked on
//! every group the step touched. After the fault phase, every fault heals and the
//! *liveness phase* requires every group to have a leader and to commit a new entry within
//! 10 election timeouts.
//!
//! A run returns a [`SimReport`] (with the trace hash: the same seed always gives the same
//! hash) or a [`Violation`], whose `Display` prints the seed, the invariant, the last trace
//! lines and the command that replays the run.
//!
//! # Invariants
//!
//! One per file in `src/sim/invariants/`, each citing its section of the Raft paper:
//! election safety (§5.2), log matching (§5.3), leader completeness (§5.4), state machine
//! safety (§5.4.3), committed entries never change (§5.4), monotonic term / commit / applied
//! (Figure 2), and durable-before-acknowledged / nothing acknowledged lost across a crash
//! (Figure 2, dissertation §3.8). Linearizability of the client history is checked once, at
//! the end of the run. With `Config::strict` on (the default here) the core's own
//! assertions also run, and a panic in the core is reported as a violation.
//!
//! # Example
//!
//! A downstream crate can soak its configuration in its own CI:
//!
//! ```
//! use multiraft_testkit::sim::{SimConfig, Simulation};
//!
//! for seed in 0..3 {
//!     let mut config = SimConfig::for_seed(seed);
//!     config.groups = 4;
//!     config.secs = 5;
//!     match Simulation::new(config).run() {
//!         Ok(report) => assert!(report.steps > 0),
//!         Err(violation) => panic!("{violation}"),
//!     }
//! }
//! ```
//!
//! # Design notes
//!
//! - The durable image is kept by the simulator instead of a [`MemStorage`](crate::MemStorage)
//!   so that the run stays synchronous and a crash is exact: everything advanced survives,
//!   nothing else does.
//! - The core keeps its groups in a `HashMap`, so the order of groups inside one ready or one
//!   batch differs between processes. Per group the behaviour is the same, so the trace hash
//!   sorts each ready's and each batch's contents by group before hashing.

mod hash;
mod invariants;
mod kv;
pub mod linearizability;
mod rng;
mod trace;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use multiraft_core::{
    Config, Event, GroupId, LoadedGroup, Membership, MessageBatch, Node, NodeId, Payload,
    ProposalId, Ready, WriteBatch, group::Role,
};

pub use hash::TraceHash;
pub use rng::SimRng;

use invariants::{Checker, Failure, sorted_groups};
use kv::KvReplica;
use linearizability::{KvOp, KvOperation, KvOutcome, Linearizability, check_kv};
use trace::{Trace, TraceRec};

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
    /// Trace lines kept for a [`Violation`].
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

/// A safety or liveness property the run broke.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The property, with its paper section.
    pub invariant: String,
    /// The seed of the run.
    pub seed: u64,
    /// The step at which it was detected.
    pub step: u64,
    /// Simulated time of detection, in microseconds.
    pub at_us: u64,
    /// What was seen.
    pub detail: String,
    /// The last trace lines before the violation, oldest first.
    pub trace_tail: Vec<String>,
    /// The run's configuration, in one line (nodes, groups, faults, core options).
    pub setup: String,
    /// The command that replays the run.
    pub replay: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "violation of {}", self.invariant)?;
        writeln!(
            f,
            "  seed {} at step {} ({}.{:06} simulated s)",
            self.seed,
            self.step,
            self.at_us / 1_000_000,
            self.at_us % 1_000_000
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "  setup: {}", self.setup)?;
        writeln!(f, "  last {} trace lines:", self.trace_tail.len())?;
        for l in &self.trace_tail {
            writeln!(f, "    {l}")?;
        }
        write!(f, "  replay: {}", self.replay)
    }
}

impl std::error::Error for Violation {}

/// What a run did, when it broke nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Hash of every delivered batch, ready, tick and fault: equal for equal seeds.
    pub trace_hash: u64,
    /// Simulated time covered, in microseconds.
    pub simulated_us: u64,
    /// Batches delivered.
    pub batches_delivered: u64,
    /// Batches lost, or dropped by a partition or a down node.
    pub batches_dropped: u64,
    /// Client proposals made.
    pub proposals: u64,
    /// Proposals applied on the node that took them.
    pub applied: u64,
    /// Proposals definitely rejected.
    pub rejected: u64,
    /// Proposals with no definite outcome (the node crashed, or the run ended first).
    pub indeterminate: u64,
    /// Times a replica became leader.
    pub leader_changes: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Storage write failures (each stops a node).
    pub storage_failures: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Simulated microseconds from healing to every group having committed a new entry.
    pub liveness_us: u64,
    /// 1 when the linearizability search gave up (too many concurrent operations on one
    /// key), so the history was not judged.
    pub linearizability_unknown: u64,
}

/// One node as the simulator holds it.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    /// `None` while the node is down.
    pub(crate) node: Option<Node>,
    /// What every advanced write left: survives crashes.
    pub(crate) durable: BTreeMap<GroupId, LoadedGroup>,
    /// Bumped at every crash, so that events of the previous life are ignored.
    incarnation: u64,
    /// A ready whose write is in flight.
    pending: Option<Pending>,
    /// Simulated microseconds between two ticks of this node.
    tick_us: u64,
    /// The node's copy of each group's key-value store; rebuilt by re-applying after a
    /// restart.
    kv: HashMap<GroupId, KvReplica>,
}

struct Pending {
    number: u64,
    write: WriteBatch,
    send_after_write: Vec<MessageBatch>,
}

enum Ev {
    Deliver(MessageBatch),
    Tick { node: usize, incarnation: u64 },
    WriteDone { node: usize, incarnation: u64 },
    Propose,
    Chaos,
    Restart { node: usize },
    HealPartition { epoch: u64 },
    Heal,
    Probe,
}

struct Scheduled {
    at_us: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: earliest first.
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Setup,
    Faults,
    Liveness,
}

struct Liveness {
    deadline_us: u64,
    healed_us: u64,
    /// Per group: the highest commit index at healing.
    commit_at_heal: BTreeMap<GroupId, u64>,
    done: BTreeSet<GroupId>,
    last_marker_us: BTreeMap<GroupId, u64>,
}

/// A deterministic simulation of a whole cluster. See the [module docs](self).
pub struct Simulation {
    cfg: SimConfig,
    rng: SimRng,
    nodes: Vec<SimNode>,
    /// Each group's members (node indexes).
    groups: BTreeMap<GroupId, Vec<usize>>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    now_us: u64,
    end_us: u64,
    heal_us: u64,
    tick_us: u64,
    phase: Phase,
    /// Directed links that drop everything: (from, to) node indexes.
    blocked: BTreeSet<(usize, usize)>,
    partition_epoch: u64,
    checker: Checker,
    trace: Trace,
    hash: TraceHash,
    touched: Vec<(usize, GroupId)>,
    /// Per group: (term, leader) last reported.
    leader_hint: HashMap<GroupId, (u64, Option<NodeId>)>,
    /// Proposals awaiting an outcome: their position in `history`.
    pending_proposals: HashMap<ProposalId, usize>,
    /// Every client operation, for the linearizability check at the end.
    history: Vec<KvOperation>,
    next_seq: u64,
    liveness: Option<Liveness>,
    report: SimReport,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.cfg.seed)
            .field("now_us", &self.now_us)
            .field("steps", &self.report.steps)
            .finish_non_exhaustive()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SimRng::new(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

impl Simulation {
    /// A simulation of `config`; nothing runs until [`Simulation::run`].
    pub fn new(config: SimConfig) -> Simulation {
        let mut rng = SimRng::new(config.seed);
        let base_tick_us = config.core.tick_interval.as_micros().max(1) as u64;
        let nodes = (0..config.nodes.clamp(1, 9))
            .map(|i| {
                let rate_milli = if config.faults.clock_skew {
                    rng.range(1000, 2000)
                } else {
                    1000
                };
                SimNode {
                    id: NodeId(i as u64 + 1),
                    node: None,
                    durable: BTreeMap::new(),
                    incarnation: 0,
                    pending: None,
                    tick_us: (base_tick_us * 1000 / rate_milli).max(1),
                    kv: HashMap::new(),
                }
            })
            .collect();
        // Liveness: 10 election timeouts at the nominal clock rate.
        let window_us = 10 * u64::from(config.core.election_timeout_max_ticks) * base_tick_us;
        let secs_us = config.secs.saturating_mul(1_000_000);
        let heal_us = secs_us.saturating_sub(window_us).max(secs_us / 2);
        let end_us = secs_us.max(heal_us + window_us + base_tick_us);
        Simulation {
            trace: Trace::new(config.trace_lines),
            report: SimReport {
                seed: config.seed,
                ..Default::default()
            },
            cfg: config,
            rng,
            nodes,
            groups: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now_us: 0,
            end_us,
            heal_us,
            tick_us: base_tick_us,
            phase: Phase::Setup,
            blocked: BTreeSet::new(),
            partition_epoch: 0,
            checker: Checker::new(),
            hash: TraceHash::new(),
            touched: Vec::new(),
            leader_hint: HashMap::new(),
            pending_proposals: HashMap::new(),
            history: Vec::new(),
            next_seq: 0,
            liveness: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Runs to the end, checking every invariant after every step. The violation is boxed:
    /// it carries the trace tail and is large.
    pub fn run(mut self) -> Result<SimReport, Box<Violation>> {
        let result = catch_unwind(AssertUnwindSafe(|| self.run_inner()));
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(f)) => Some(f),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".to_string());
                Some(Failure {
                    invariant: "no panic (the core's strict checks and assertions)",
                    detail: text,
                })
            }
        };
        match failure {
            None => {
                self.report.trace_hash = self.hash.value();
                self.report.simulated_us = self.now_us;
                self.report.indeterminate += self.pending_proposals.len() as u64;
                Ok(self.report)
            }
            Some(f) => Err(Box::new(Violation {
                invariant: f.invariant.to_string(),
                seed: self.cfg.seed,
                step: self.report.steps,
                at_us: self.now_us,
                detail: f.detail,
                trace_tail: self.trace.lines(),
                setup: self.cfg.summary(),
                replay: self.cfg.replay_command(),
            })),
        }
    }

    fn run_inner(&mut self) -> Result<(), Failure> {
        self.setup()?;
        while let Some(s) = self.queue.pop() {
            if s.at_us > self.end_us {
                break;
            }
            self.now_us = s.at_us;
            self.report.steps += 1;
            self.handle(s.ev)?;
            self.check_touched()?;
        }
        self.now_us = self.end_us;
        if self
            .liveness
            .as_ref()
            .is_some_and(|l| l.done.len() < self.groups.len())
        {
            return Err(self.liveness_failure());
        }
        self.checker.final_check(&self.nodes)?;
        self.check_linearizability()
    }

    /// The clients' history against the key-value model (Wing–Gong–Lowe).
    fn check_linearizability(&mut self) -> Result<(), Failure> {
        match check_kv(&self.history) {
            Linearizability::Ok => Ok(()),
            Linearizability::Unknown { .. } => {
                self.report.linearizability_unknown += 1;
                Ok(())
            }
            Linearizability::Violation { key } => {
                let ops: Vec<String> = self
                    .history
                    .iter()
                    .filter(|o| o.op.key() == key && o.outcome != KvOutcome::Failed)
                    .take(30)
                    .map(|o| {
                        format!(
                            "n{} {:?} [{}..{}] {:?}",
                            o.client,
                            o.op,
                            o.invoked_at,
                            if o.returned_at == u64::MAX {
                                "?".to_string()
                            } else {
                                o.returned_at.to_string()
                            },
                            o.outcome
                        )
                    })
                    .collect();
                Err(Failure {
                    invariant: "linearizability of the key-value clients (Wing–Gong–Lowe)",
                    detail: format!(
                        "group {} key {}: no linearization of: {}",
                        key / kv::KEYS_PER_GROUP,
                        key % kv::KEYS_PER_GROUP,
                        ops.join("; ")
                    ),
                })
            }
        }
    }

    fn schedule(&mut self, after_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at_us: self.now_us + after_us,
            seq: self.seq,
            ev,
        });
    }

    fn note(&mut self, text: String) {
        self.trace.push(TraceRec::Note {
            at_us: self.now_us,
            text,
        });
    }

    fn node_seed(&self, node: usize, incarnation: u64) -> u64 {
        mix(mix(self.cfg.seed, node as u64 + 1), incarnation)
    }

    fn setup(&mut self) -> Result<(), Failure> {
        let n = self.nodes.len();
        for i in 0..n {
            let node = Node::new(
                self.nodes[i].id,
                self.cfg.core.clone(),
                self.node_seed(i, 0),
            )
            .map_err(|e| Failure {
                invariant: "valid configuration",
                detail: e.to_string(),
            })?;
            self.nodes[i].node = Some(node);
        }
        for g in 1..=self.cfg.groups as u64 {
            let mut members: Vec<usize> = (0..n).collect();
            if n > 3 && self.rng.chance(700) {
                // Three replicas on a random subset, so that memberships overlap.
                for k in (1..n).rev() {
                    let j = self.rng.below(k as u64 + 1) as usize;
                    members.swap(k, j);
                }
                members.truncate(3);
                members.sort_unstable();
            }
            let membership = Membership::voters(members.iter().map(|i| *i as u64 + 1));
            for &i in &members {
                let node = self.nodes[i].node.as_mut().expect("running");
                node.create_group(GroupId(g), membership.clone())
                    .map_err(|e| Failure {
                        invariant: "group creation",
                        detail: e.to_string(),
                    })?;
            }
            self.groups.insert(GroupId(g), members);
        }
        for i in 0..n {
            self.drive(i)?;
        }
        self.phase = Phase::Faults;
        for i in 0..n {
            let first = 1 + self.rng.below(self.nodes[i].tick_us);
            self.schedule(
                first,
                Ev::Tick {
                    node: i,
                    incarnation: 0,
                },
            );
        }
        let chaos = self.rng.range(50_000, 500_000);
        self.schedule(chaos, Ev::Chaos);
        let p = self.proposal_gap();
        self.schedule(p, Ev::Propose);
        self.schedule(self.heal_us, Ev::Heal);
        Ok(())
    }

    fn proposal_gap(&mut self) -> u64 {
        let mean = 1_000_000 / self.cfg.proposals_per_sec.max(1);
        self.rng.range(1, 2 * mean)
    }

    fn is_up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Failure> {
        match ev {
            Ev::Deliver(batch) => self.deliver(batch),
            Ev::Tick { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation || !self.is_up(node) {
                    return Ok(());
                }
                self.hash.u64(1);
                self.hash.u64(node as u64);
                self.hash.u64(self.now_us);
                let n = self.nodes[node].node.as_mut().expect("up");
                n.tick();
                for g in sorted_groups(n) {
                    self.touched.push((node, g));
                }
                let next = self.nodes[node].tick_us;
                self.schedule(next, Ev::Tick { node, incarnation });
                self.drive(node)
            }
            Ev::WriteDone { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                if let Some(p) = self.nodes[node].pending.take() {
                    self.complete_write(node, p)?;
                }
                self.drive(node)
            }
            Ev::Propose => {
                self.propose_random()?;
                let gap = self.proposal_gap();
                self.schedule(gap, Ev::Propose);
                Ok(())
            }
            Ev::Chaos => {
                if self.phase == Phase::Faults {
                    self.chaos()?;
                    let gap = self.rng.range(100_000, 500_000);
                    self.schedule(gap, Ev::Chaos);
                }
                Ok(())
            }
            Ev::Restart { node } => {
                if self.phase == Phase::Faults && !self.is_up(node) {
                    self.restart(node)?;
                }
                Ok(())
            }
            Ev::HealPartition { epoch } => {
                if epoch == self.partition_epoch && !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.hash.u64(7);
                    self.note("partition healed".to_string());
                }
                Ok(())
            }
            Ev::Heal => self.heal(),
            Ev::Probe => self.probe(),
        }
    }

    fn check_touched(&mut self) -> Result<(), Failure> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &(i, g) in &touched {
            self.checker.after_step(&self.nodes, i, g)?;
        }
        touched.clear();
        self.touched = touched;
        Ok(())
    }

    // ----- network ---------------------------------------------------------------------------

    fn latency_us(&mut self) -> u64 {
        let base = self.rng.range(200, 2_000);
        let max_delay = if self.phase == Phase::Faults {
            self.cfg.faults.max_delay_ms * 1000
        } else {
            0
        };
        base + self.rng.below(max_delay + 1)
    }

    fn send(&mut self, from: usize, batch: MessageBatch) -> Result<(), Failure> {
        for m in &batch.messages {
            self.checker.on_send(&self.nodes, from, m)?;
        }
        let to = batch.to.0 as usize - 1;
        let faulty = self.phase == Phase::Faults;
        if self.blocked.contains(&(from, to))
            || faulty && self.rng.chance(self.cfg.faults.loss_per_mille)
        {
            self.report.batches_dropped += 1;
            return Ok(());
        }
        if faulty && self.rng.chance(self.cfg.faults.duplicate_per_mille) {
            let d = self.latency_us();
            self.schedule(d, Ev::Deliver(batch.clone()));
        }
        let d = self.latency_us();
        self.schedule(d, Ev::Deliver(batch));
        Ok(())
    }

    fn deliver(&mut self, batch: MessageBatch) -> Result<(), Failure> {
        let (from, to) = (batch.from.0 as usize - 1, batch.to.0 as usize - 1);
        if !self.is_up(to) || self.blocked.contains(&(from, to)) {
            self.report.batches_dropped += 1;
            return Ok(());
        }
        self.report.batches_delivered += 1;
        self.hash.u64(2);
        self.hash.u64(self.now_us);
        self.hash.u64(batch.from.0);
        self.hash.u64(batch.to.0);
        let mut order: Vec<usize> = (0..batch.messages.len()).collect();
        order.sort_by_key(|&k| batch.messages[k].group);
        for k in order {
            self.hash.message(&batch.messages[k]);
            self.touched.push((to, batch.messages[k].group));
        }
        self.trace.push(TraceRec::Deliver {
            at_us: self.now_us,
            batch: batch.clone(),
        });
        self.nodes[to].node.as_mut().expect("up").step(batch);
        self.drive(to)
    }

    // ----- node IO ---------------------------------------------------------------------------

    /// Takes readies from node `i` until it has none or a write is in flight.
    fn drive(&mut self, i: usize) -> Result<(), Failure> {
        loop {
            let sn = &mut self.nodes[i];
            if sn.pending.is_some() {
                return Ok(());
            }
            let Some(node) = sn.node.as_mut() else {
                return Ok(());
            };
            let Some(ready) = node.ready() else {
                return Ok(());
            };
            self.process_ready(i, ready)?;
        }
    }

    fn hash_ready(&mut self, i: usize, ready: &Ready) {
        let h = &mut self.hash;
        h.u64(3);
        h.u64(i as u64);
        h.u64(ready.number);
        let mut writes: Vec<_> = ready.write.groups.iter().collect();
        writes.sort_by_key(|w| w.group);
        for w in writes {
            h.u64(w.group.0);
            h.u64(u64::from(w.remove));
            if let Some(hs) = &w.hard_state {
                h.hard_state(hs);
            }
            for e in &w.entries {
                h.entry(e);
            }
        }
        let mut applies: Vec<_> = ready.apply.iter().collect();
        applies.sort_by_key(|a| a.group);
        for a in applies {
            h.u64(a.group.0);
            for e in &a.entries {
                h.u64(e.index);
            }
        }
        h.u64(ready.rejected.len() as u64);
    }

    fn process_ready(&mut self, i: usize, ready: Ready) -> Result<(), Failure> {
        self.hash_ready(i, &ready);
        self.trace.push(TraceRec::Ready {
            at_us: self.now_us,
            node: self.nodes[i].id,
            number: ready.number,
            writes: ready.write.groups.len(),
            entries: ready.write.entry_count(),
            applies: ready.apply.iter().map(|a| a.entries.len()).sum(),
            sends: ready.send_now.len() + ready.send_after_write.len(),
        });
        self.checker.on_ready(&self.nodes, i, &ready)?;
        for w in &ready.write.groups {
            self.touched.push((i, w.group));
        }
        let Ready {
            number,
            write,
            send_now,
            send_after_write,
            apply,
            rejected,
            events,
            ..
        } = ready;
        for b in send_now {
            self.send(i, b)?;
        }
        let me = self.nodes[i].id;
        for a in &apply {
            self.touched.push((i, a.group));
            for e in &a.entries {
                let Payload::Command { id, data } = &e.payload else {
                    continue;
                };
                let kv = self.nodes[i].kv.entry(a.group).or_default();
                let result = kv.apply(*id, data);
                if id.node == me
                    && let Some(k) = self.pending_proposals.remove(id)
                {
                    self.report.applied += 1;
                    let op = &mut self.history[k];
                    op.returned_at = self.now_us;
                    op.outcome = match result {
                        Some(r) => KvOutcome::Ok(r),
                        None => KvOutcome::Indeterminate,
                    };
                }
            }
        }
        for r in &rejected {
            if let Some(k) = self.pending_proposals.remove(&r.id) {
                self.report.rejected += 1;
                // A forwarded proposal the network duplicated may be refused in one copy and
                // appended in the other, so with duplication a refusal is not definite.
                if self.cfg.faults.duplicate_per_mille == 0 {
                    self.history[k].outcome = KvOutcome::Failed;
                }
            }
        }
        for e in &events {
            if let Event::LeaderChanged {
                group,
                term,
                leader,
            } = e
            {
                if *leader == Some(me) {
                    self.report.leader_changes += 1;
                    self.note(format!("{me} leads {group} in term {term}"));
                }
                let hint = self.leader_hint.entry(*group).or_insert((0, None));
                if *term >= hint.0 {
                    *hint = (*term, *leader);
                }
            }
        }
        let faulty = self.phase == Phase::Faults;
        if faulty && self.cfg.faults.storage_failures && !write.is_empty() && self.rng.chance(2) {
            self.report.storage_failures += 1;
            self.note(format!(
                "{me}: storage write of ready {number} failed; node stops"
            ));
            self.hash.u64(4);
            self.take_down(i);
            let after = self.rng.range(200_000, 3_000_000);
            self.schedule(after, Ev::Restart { node: i });
            return Ok(());
        }
        let pending = Pending {
            number,
            write,
            send_after_write,
        };
        let slow = faulty && self.cfg.faults.slow_storage && self.rng.chance(500);
        if slow {
            let delay = self.rng.range(50, 3_000);
            let incarnation = self.nodes[i].incarnation;
            self.nodes[i].pending = Some(pending);
            self.schedule(
                delay,
                Ev::WriteDone {
                    node: i,
                    incarnation,
                },
            );
            Ok(())
        } else {
            self.complete_write(i, pending)
        }
    }

    /// The write of `p` is durable: apply it to the image, advance, send what waited.
    fn complete_write(&mut self, i: usize, p: Pending) -> Result<(), Failure> {
        let sn = &mut self.nodes[i];
        for w in p.write.groups {
            self.touched.push((i, w.group));
            if w.remove {
                sn.durable.remove(&w.group);
                continue;
            }
            let img = sn.durable.entry(w.group).or_insert_with(|| LoadedGroup {
                group: w.group,
                ..Default::default()
            });
            if let Some(m) = w.membership {
                img.membership = m;
            }
            if let Some(hs) = w.hard_state {
                img.hard_state = hs;
            }
            if let Some(first) = w.entries.first() {
                // A hole was reported by the durable-acks invariant at ready time.
                img.entries.truncate(first.index.saturating_sub(1) as usize);
                img.entries.extend(w.entries);
            }
            if let Some(to) = w.compact_to {
                // The image keeps logs from index 1; the core does not compact yet.
                return Err(Failure {
                    invariant: "no log compaction",
                    detail: format!("{}: compaction to {to} issued", w.group),
                });
            }
        }
        sn.node.as_mut().expect("up").advance(p.number);
        for b in p.send_after_write {
            self.send(i, b)?;
        }
        Ok(())
    }

    // ----- faults ----------------------------------------------------------------------------

    /// The node loses its memory and any write in flight.
    fn take_down(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        sn.node = None;
        sn.pending = None;
        sn.incarnation += 1;
        sn.kv.clear();
        let me = sn.id;
        self.checker.on_crash(i);
        let lost: Vec<ProposalId> = self
            .pending_proposals
            .keys()
            .filter(|id| id.node == me)
            .copied()
            .collect();
        for id in lost {
            self.pending_proposals.remove(&id);
            self.report.indeterminate += 1;
        }
    }

    fn restart(&mut self, i: usize) -> Result<(), Failure> {
        let incarnation = self.nodes[i].incarnation;
        let seed = self.node_seed(i, incarnation);
        let mut node = Node::new(self.nodes[i].id, self.cfg.core.clone(), seed).expect("validated");
        node.restore(self.nodes[i].durable.values().cloned().collect())
            .map_err(|e| Failure {
                invariant: "restart from durable state",
                detail: e.to_string(),
            })?;
        for g in sorted_groups(&node) {
            self.touched.push((i, g));
        }
        self.nodes[i].node = Some(node);
        self.hash.u64(5);
        self.hash.u64(i as u64);
        self.note(format!(
            "{} restarts from its durable image",
            self.nodes[i].id
        ));
        self.checker.on_restart(&self.nodes, i)?;
        let first = 1 + self.rng.below(self.nodes[i].tick_us);
        self.schedule(
            first,
            Ev::Tick {
                node: i,
                incarnation,
            },
        );
        self.drive(i)
    }

    fn chaos(&mut self) -> Result<(), Failure> {
        let n = self.nodes.len();
        if self.cfg.faults.crashes && self.rng.chance(150) {
            let i = self.rng.below(n as u64) as usize;
            if self.is_up(i) {
                self.report.crashes += 1;
                self.hash.u64(6);
                self.hash.u64(i as u64);
                self.note(format!("{} crashes", self.nodes[i].id));
                self.take_down(i);
                let after = self.rng.range(100_000, 5_000_000);
                self.schedule(after, Ev::Restart { node: i });
            }
        }
        if self.cfg.faults.partitions && self.blocked.is_empty() && n > 1 && self.rng.chance(120) {
            self.partition();
            let after = self.rng.range(300_000, 6_000_000);
            let epoch = self.partition_epoch;
            self.schedule(after, Ev::HealPartition { epoch });
        }
        Ok(())
    }

    fn partition(&mut self) {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            order.swap(k, j);
        }
        self.partition_epoch += 1;
        self.report.partitions += 1;
        let kind = self.rng.below(3);
        let (bridge, rest) = if kind == 2 && n >= 3 {
            (Some(order[0]), &order[1..])
        } else {
            (None, &order[..])
        };
        let cut = self.rng.range(1, rest.len() as u64 - 1) as usize;
        let (a, b) = rest.split_at(cut.min(rest.len() - 1).max(1));
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                if kind != 1 {
                    self.blocked.insert((y, x));
                }
            }
        }
        let ids = |s: &[usize]| {
            s.iter()
                .map(|i| self.nodes[*i].id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = match (kind, bridge) {
            (1, _) => format!("one-way partition: {} cannot reach {}", ids(a), ids(b)),
            (_, Some(br)) => format!(
                "bridge partition: {} | {} | {}, bridged by {}",
                ids(a),
                ids(b),
                "",
                self.nodes[br].id
            ),
            _ => format!("partition: {} | {}", ids(a), ids(b)),
        };
        self.hash.u64(8);
        for &(x, y) in &self.blocked {
            self.hash.u64(x as u64);
            self.hash.u64(y as u64);
        }
        self.note(text);
    }

    // ----- client workload -------------------------------------------------------------------

    /// Proposes to `group` through the node believed to lead it (any live member otherwise,
    /// which forwards).
    fn propose_to(&mut self, group: GroupId) -> Result<(), Failure> {
        let key = self.rng.below(kv::KEYS_PER_GROUP);
        let op = match self.rng.below(10) {
            0..=3 => KvOp::Put {
                key,
                value: self.rng.below(8),
            },
            4..=6 => KvOp::Get { key },
            _ => KvOp::Cas {
                key,
                expected: if self.rng.chance(200) {
                    None
                } else {
                    Some(self.rng.below(8))
                },
                new: self.rng.below(8),
            },
        };
        let members = self.groups[&group].clone();
        let hinted = self
            .leader_hint
            .get(&group)
            .and_then(|(_, l)| *l)
            .map(|l| l.0 as usize - 1)
            .filter(|i| self.is_up(*i));
        let target = match hinted {
            Some(i) => i,
            None => {
                let up: Vec<usize> = members.into_iter().filter(|i| self.is_up(*i)).collect();
                if up.is_empty() {
                    return Ok(());
                }
                up[self.rng.below(up.len() as u64) as usize]
            }
        };
        self.next_seq += 1;
        let id = ProposalId {
            node: self.nodes[target].id,
            seq: self.next_seq,
        };
        let data = kv::encode(&op);
        self.report.proposals += 1;
        self.hash.u64(9);
        self.hash.u64(id.seq);
        let node = self.nodes[target].node.as_mut().expect("up");
        let global = match op {
            KvOp::Put { key, value } => KvOp::Put {
                key: kv::global_key(group, key),
                value,
            },
            KvOp::Get { key } => KvOp::Get {
                key: kv::global_key(group, key),
            },
            KvOp::Cas { key, expected, new } => KvOp::Cas {
                key: kv::global_key(group, key),
                expected,
                new,
            },
        };
        let record = KvOperation::new(
            id.node.0,
            global,
            self.now_us,
            u64::MAX,
            KvOutcome::Indeterminate,
        );
        match node.propose(group, id, data) {
            Ok(()) => {
                self.pending_proposals.insert(id, self.history.len());
                self.history.push(record);
                self.touched.push((target, group));
                self.drive(target)
            }
            Err(_) => {
                self.report.rejected += 1;
                Ok(())
            }
        }
    }

    fn propose_random(&mut self) -> Result<(), Failure> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let g = GroupId(1 + self.rng.below(self.groups.len() as u64));
        self.propose_to(g)
    }

    // ----- liveness --------------------------------------------------------------------------

    fn heal(&mut self) -> Result<(), Failure> {
        self.phase = Phase::Liveness;
        self.blocked.clear();
        self.hash.u64(10);
        self.note("all faults heal; liveness phase".to_string());
        for i in 0..self.nodes.len() {
            if !self.is_up(i) {
                self.restart(i)?;
            }
        }
        let mut commit_at_heal = BTreeMap::new();
        for (g, members) in &self.groups {
            let c = members
                .iter()
                .filter_map(|i| self.nodes[*i].node.as_ref()?.group_status(*g))
                .map(|s| s.commit)
                .max()
                .unwrap_or(0);
            commit_at_heal.insert(*g, c);
        }
        let window = 10 * u64::from(self.cfg.core.election_timeout_max_ticks) * self.tick_us;
        self.liveness = Some(Liveness {
            deadline_us: self.now_us + window,
            healed_us: self.now_us,
            commit_at_heal,
            done: BTreeSet::new(),
            last_marker_us: BTreeMap::new(),
        });
        self.schedule(self.tick_us, Ev::Probe);
        Ok(())
    }

    fn probe(&mut self) -> Result<(), Failure> {
        let Some(mut l) = self.liveness.take() else {
            return Ok(());
        };
        let timeout = u64::from(self.cfg.core.election_timeout_max_ticks) * self.tick_us;
        let mut markers = Vec::new();
        for (g, members) in &self.groups {
            if l.done.contains(g) {
                continue;
            }
            let statuses: Vec<_> = members
                .iter()
                .filter_map(|i| self.nodes[*i].node.as_ref()?.group_status(*g))
                .collect();
            let max_term = statuses.iter().map(|s| s.term).max().unwrap_or(0);
            let ok = statuses.iter().any(|s| {
                s.role == Role::Leader && s.term == max_term && s.commit > l.commit_at_heal[g]
            });
            if ok {
                l.done.insert(*g);
            } else if self.now_us - l.last_marker_us.get(g).copied().unwrap_or(0) >= timeout {
                l.last_marker_us.insert(*g, self.now_us);
                markers.push(*g);
            }
        }
        let all_done = l.done.len() == self.groups.len();
        if all_done && self.report.liveness_us == 0 {
            self.report.liveness_us = (self.now_us - l.healed_us).max(1);
        }
        let late = self.now_us >= l.deadline_us;
        self.liveness = Some(l);
        if all_done {
            return Ok(());
        }
        if late {
            return Err(self.liveness_failure());
        }
        for g in markers {
            self.propose_to(g)?;
        }
        self.schedule(self.tick_us, Ev::Probe);
        Ok(())
    }

    fn liveness_failure(&self) -> Failure {
        let l = self.liveness.as_ref().expect("liveness phase");
        let mut detail = format!(
            "{} of {} groups have no leader that committed a new entry {} ms after healing:",
            self.groups.len() - l.done.len(),
            self.groups.len(),
            (self.now_us - l.healed_us) / 1000
        );
        for (g, members) in self
            .groups
            .iter()
            .filter(|(g, _)| !l.done.contains(g))
            .take(3)
        {
            detail.push_str(&format!(" {g} (commit at heal {}):", l.commit_at_heal[g]));
            for i in members {
                if let Some(s) = self.nodes[*i]
                    .node
                    .as_ref()
                    .and_then(|n| n.group_status(*g))
                {
                    detail.push_str(&format!(
                        " [{} {:?} t{} last {} commit {} persisted {} applied {} leader {:?}]",
                        self.nodes[*i].id,
                        s.role,
                        s.term,
                        s.last_index,
                        s.commit,
                        s.persisted,
                        s.applied,
                        s.leader
                    ));
                }
            }
        }
        Failure {
            invariant: "liveness: a leader commits a new entry within 10 election timeouts of healing",
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Faults, SimConfig, Simulation};

    fn small(seed: u64) -> SimConfig {
        let mut c = SimConfig::for_seed(seed);
        c.groups = c.groups.min(8);
        c.secs = 20;
        c
    }

    #[test]
    fn fault_free_run_commits_and_is_live() {
        let mut c = small(1);
        c.faults = Faults::none();
        let r = Simulation::new(c).run().unwrap_or_else(|v| panic!("{v}"));
        assert!(r.applied > 0, "{r:?}");
        assert!(r.liveness_us > 0);
        assert_eq!(r.batches_dropped, 0);
    }

    #[test]
    fn every_fault_at_once() {
        for seed in 0..4 {
            let mut c = small(seed);
            c.faults = Faults::all();
            let r = Simulation::new(c).run().unwrap_or_else(|v| panic!("{v}"));
            assert!(r.crashes + r.partitions + r.storage_failures > 0, "{r:?}");
        }
    }

    #[test]
    fn violation_prints_seed_trace_and_replay_command() {
        let c = SimConfig::for_seed(77);
        let v = super::Violation {
            invariant: "election safety (Raft §5.2)".to_string(),
            seed: 77,
            step: 12,
            at_us: 1_500_000,
            detail: "g1: both n1 and n2 became leader in term 3".to_string(),
            trace_tail: vec!["line one".to_string(), "line two".to_string()],
            setup: c.summary(),
            replay: c.replay_command(),
        };
        let text = v.to_string();
        assert!(text.contains("violation of election safety"), "{text}");
        assert!(
            text.contains("seed 77 at step 12 (1.500000 simulated s)"),
            "{text}"
        );
        assert!(text.contains("    line two"), "{text}");
        assert!(
            text.contains(&format!(
                "cargo run --release -p multiraft-testkit --bin sim -- --seeds 1 --start 77 --nodes {} --groups {} --secs 60",
                c.nodes, c.groups
            )),
            "{text}"
        );
    }

    #[test]
    fn same_seed_same_trace_hash() {
        let a = Simulation::new(small(42))
            .run()
            .unwrap_or_else(|v| panic!("{v}"));
        let b = Simulation::new(small(42))
            .run()
            .unwrap_or_else(|v| panic!("{v}"));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a, b);
        let c = Simulation::new(small(43))
            .run()
            .unwrap_or_else(|v| panic!("{v}"));
        assert_ne!(a.trace_hash, c.trace_hash);
    }
}
