//! A deterministic whole-cluster simulator: N nodes × G groups in one thread, every random
//! choice drawn from one `u64` seed, with fault injection and safety invariants checked
//! after every step.
//!
//! [`Simulation`] drives the sans-IO [`Node`] layer of `multiraft-core` directly — no tokio,
//! no threads, no wall clock in what it simulates (only its `max_wall` budget reads one: a
//! run stopped by it may not stop so on a faster machine). It keeps, per node:
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
//! time, with loss, duplication (of every message but forwarded proposals, which the
//! `Transport` contract delivers at most once), delay and reordering, stragglers (a batch
//! held back 50 ms – 2 s, arriving after elections, quiesce notices or refusals sent since),
//! batches split as the QUIC transport's lanes split them (each piece lost and delayed on
//! its own), and partitions (symmetric, one-way, bridge) that start and heal.
//!
//! The application is pluggable ([`SimApp`], see [its contract](SimApp)): a state machine
//! replicated per node and group, a client workload, an invariant checked after every step
//! and a check of the client history at the end. [`Simulation::new`] runs the built-in
//! [`KvApp`]: clients drive a key-value store (put / get / compare-and-set, a few keys per
//! group), and at the end the history is checked by the
//! [Wing–Gong–Lowe linearizability checker](linearizability).
//! [`Simulation::with_app`] runs a downstream crate's own (see `examples/bank.rs`).
//!
//! Clients propose the app's commands through [`Node::propose`] on the node believed to lead
//! each group, now and then in bursts through one member. Every replica applies the
//! committed commands to its own copy; the proposing node's result is the client's answer.
//! Each operation is recorded ([`ClientOp`]) with its invocation and return times and the
//! outcome the node reported: applied, rejected (definitely not applied), or indeterminate
//! (leadership changed, timed out, its node crashed, or the run ended first).
//!
//! Most of the key-value app's gets are reads without a log write ([`Node::read`], under a
//! `ReadPolicy` drawn per read — ReadIndex, Lease or Follower — through a random member),
//! served from that node's replica right after the applies of the ready that reached the
//! read point, and checked for linearizability with the rest of the history. Leases run at
//! the bound the seed's clock skew allows ([`Faults::safe_lease_ticks`]). In the fault mix,
//! leaders now and then hand a group to another voter ([`Node::transfer_leader`]) and
//! nodes drain ([`Node::drain`]); every read and transfer must end exactly once.
//!
//! One *step* is one event: a delivered batch, a tick of one node, a completed write, a
//! proposal, or a fault. After each step the [invariants](self#invariants) are checked on
//! every group the step touched. After the fault phase, every fault heals (but for the nodes
//! lost for good, in some seeds) and the *liveness phase* requires every group with a live
//! majority to have a leader and to commit a new entry within 10 election timeouts, and then
//! to keep that leader to the end of the run: with nothing failing, no group elects again.
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
//! (Figure 2), durable-before-acknowledged / nothing acknowledged lost across a crash
//! (Figure 2, dissertation §3.8), and request outcomes (docs/design.md §5: a request reported
//! rejected is never applied, one reported applied was applied once where reported, every
//! request ends exactly once — checked on every apply and outcome, and at the end after the
//! nodes still up are stopped; and every replica computes the same result at each index).
//! The app's own invariant ([`SimApp::check_replicas`]) runs after every step on the groups
//! whose replicas changed; its history check (for [`KvApp`], linearizability) once, at the
//! end of the run. With `Config::strict` on (the default here) the core's own
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
//! And its own state machine, workload and invariant (here a counter per group that stays
//! under a bound; `examples/bank.rs` is a fuller one):
//!
//! ```
//! use multiraft_core::{GroupId, NodeId};
//! use multiraft_testkit::sim::{SimApp, SimConfig, SimReplica, SimRng, Simulation};
//!
//! struct Counter(u64);
//!
//! impl SimReplica for Counter {
//!     type Output = u64;
//!     fn apply(&mut self, _index: u64, command: &[u8]) -> u64 {
//!         self.0 += u64::from(command.first().copied().unwrap_or(0));
//!         self.0
//!     }
//! }
//!
//! struct Counters;
//!
//! impl SimApp for Counters {
//!     type Replica = Counter;
//!     fn new_replica(&self, _node: NodeId, _group: GroupId) -> Counter {
//!         Counter(0)
//!     }
//!     fn next_command(&mut self, _group: GroupId, rng: &mut SimRng) -> Vec<u8> {
//!         vec![rng.below(10) as u8]
//!     }
//!     fn check_replicas(
//!         &self,
//!         _group: GroupId,
//!         replicas: &[(NodeId, &Counter)],
//!     ) -> Result<(), String> {
//!         match replicas.iter().find(|(_, c)| c.0 > 1_000_000) {
//!             Some((node, c)) => Err(format!("{node} counted {}", c.0)),
//!             None => Ok(()),
//!         }
//!     }
//! }
//!
//! let mut config = SimConfig::for_seed(1);
//! config.groups = 2;
//! config.secs = 5;
//! let report = Simulation::with_app(config, Counters)
//!     .run()
//!     .unwrap_or_else(|v| panic!("{v}"));
//! assert!(report.applied > 0);
//! ```
//!
//! # Design notes
//!
//! - The durable image is kept by the simulator instead of a [`MemStorage`](crate::MemStorage)
//!   so that the run stays synchronous and a crash is exact: everything advanced survives,
//!   nothing else does.
//! - The trace hash sorts each ready's and each batch's contents by group before hashing, so
//!   that it depends on what each group did, not on the order the node listed groups in.
//! - The simulator does every ready through the core's shared ready loop
//!   ([`multiraft_core::testing`]), so the IO order it checks is the one the tests and the
//!   driver keep; outcomes come from the node's own request table, as in production.

mod app;
mod changes;
mod config;
mod disk;
mod faults;
mod hash;
mod invariants;
mod kv;
pub mod linearizability;
mod liveness;
mod network;
mod node_io;
mod pauses;
mod reads;
mod report;
mod rng;
#[cfg(test)]
mod tests;
mod trace;
mod transfers;
mod workload;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use multiraft_core::{
    GroupId, Membership, MembershipChange, MessageBatch, Node, NodeId, ProposalId,
};

pub use app::{AppOutput, ClientOp, ClientOutcome, HistoryVerdict, SimApp, SimReplica};
pub use config::{
    DEFAULT_CRASH_PER_MILLE, DEFAULT_DRAIN_PER_MILLE, DEFAULT_MAX_STEPS, DEFAULT_MAX_WALL,
    DEFAULT_MEMBERSHIP_PER_MILLE, DEFAULT_PARTITION_PER_MILLE, DEFAULT_TRANSFER_PER_MILLE, Faults,
    MAX_DELAY_MS, MAX_TICK_RATE_MILLI, MIN_TICK_RATE_MILLI, STRAGGLER_MAX_MS, STRAGGLER_MIN_MS,
    SimConfig,
};
pub use hash::TraceHash;
pub use kv::{KvApp, KvReplica};
pub use pauses::DEFAULT_PAUSE_PER_MILLE;
pub use report::{SimReport, Violation};
pub use rng::SimRng;

use invariants::{Checker, Failure, sorted_groups};

use liveness::Liveness;
use node_io::Pending;
use trace::{Trace, TraceRec};

/// One node as the simulator holds it.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    /// `None` while the node is down.
    pub(crate) node: Option<Node>,
    /// What every advanced write left: survives crashes.
    pub(crate) durable: disk::Disk,
    /// Bumped at every crash, so that events of the previous life are ignored.
    incarnation: u64,
    /// A ready whose write is in flight.
    pending: Option<Pending>,
    /// Simulated microseconds between two ticks of this node.
    tick_us: u64,
    /// Until when the node is paused ([`Faults::pauses`]); 0 once it resumed.
    paused_until_us: u64,
    /// Ticks that came while it was paused: served as one when it resumes.
    missed_ticks: u64,
    /// When the pause began, if it is one long turn of its loop rather than a paused
    /// process: its beacon beats meanwhile, as the driver's does; 0 otherwise.
    turn_began_us: u64,
    /// Batches its inbox can still hold while it is paused or steps a backlog.
    inbox_room: u64,
    /// What came for it while it was paused (but ticks), or its batches while it steps a
    /// backlog, in order: handled when it resumes.
    held: Vec<Ev>,
    /// Until when its loop is busy ([`Faults::pauses`]): it serves its ticks and steps what
    /// comes, but takes no ready; 0 once over.
    busy_until_us: u64,
    /// Whether that busy loop steps a backlog: what comes waits in its inbox (as in
    /// `held`, `inbox_room` bounding it) until the pause ends.
    backlog: bool,
    /// The senders of the batches that reached its inbox, held or dropped as full, since its
    /// last tick: told to the node before the next one, as the driver does
    /// (`Node::batch_arrived`).
    arrived: BTreeSet<NodeId>,
}

enum Ev {
    Deliver(MessageBatch),
    Tick {
        node: usize,
        incarnation: u64,
    },
    WriteDone {
        node: usize,
        incarnation: u64,
    },
    /// A snapshot taken `delay` earlier reaches `node` (`Faults::slow_snapshots`).
    SnapshotBuilt {
        node: usize,
        incarnation: u64,
        group: GroupId,
        index: u64,
        chunks: Vec<multiraft_core::Bytes>,
    },
    Propose,
    Chaos,
    Restart {
        node: usize,
    },
    /// A fault aimed at a joint configuration `node` just entered for `group`.
    JointFault {
        node: usize,
        group: GroupId,
    },
    /// Delete a replica (in the node's life `incarnation`) that reported itself removed,
    /// or that joined for a change that failed and that no leader added (`why`).
    RemoveReplica {
        node: usize,
        group: GroupId,
        incarnation: u64,
        why: changes::Deletion,
    },
    HealPartition {
        epoch: u64,
    },
    /// A paused node (in its life `incarnation`) resumes, or a busy one takes its readies
    /// again (`Faults::pauses`).
    Resume {
        node: usize,
        incarnation: u64,
    },
    /// Clients' reads that waited for a paused node reach it once it resumed.
    WaitingReads {
        node: usize,
        incarnation: u64,
    },
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

/// A deterministic simulation of a whole cluster running the application `A` (by default
/// the built-in key-value store, [`KvApp`]). See the [module docs](self).
pub struct Simulation<A: SimApp = KvApp> {
    cfg: SimConfig,
    app: A,
    /// Whether the app is the built-in one the `sim` binary runs, so that the binary's
    /// command replays a violation.
    builtin_app: bool,
    /// Per node (by index): its replica of each group, made at the first apply of the group
    /// and dropped at a crash (then rebuilt by re-applying the log from index 1).
    replicas: Vec<BTreeMap<GroupId, A::Replica>>,
    /// Groups whose replicas changed in this step: the app's invariant looks at them.
    app_touched: Vec<GroupId>,
    rng: SimRng,
    nodes: Vec<SimNode>,
    /// Each group's hosts: the nodes (indexes) with a replica of it, ascending. Membership
    /// changes add and delete replicas; who votes is each replica's own membership.
    groups: BTreeMap<GroupId, Vec<usize>>,
    /// Membership changes awaiting an outcome, to count how they ended, each with the group
    /// and node of the replica it started a join for: deleted if the change fails and no
    /// leader added it, as `MultiRaft::join_group` asks of an application.
    pending_changes: HashMap<ProposalId, (MembershipChange, Option<(GroupId, usize)>)>,
    /// Replicas deleted while voters of their group's membership as last applied, to be
    /// judged once a replica has applied through the commit index known then
    /// (`Simulation::judge_deletions`).
    deleted_voters: Vec<changes::DeletedVoter>,
    /// The last join of each node (index) and group: the change it was made for, and the
    /// term of the leader that took it (`Deletion::AbandonedJoin`).
    joins: HashMap<(usize, GroupId), (ProposalId, u64)>,
    /// Per group: the last committed membership entry counted in the report, and its
    /// membership.
    committed_memberships: HashMap<GroupId, (u64, Membership)>,
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
    /// Nodes lost for good in the liveness phase (crashed or cut off).
    lost: BTreeSet<usize>,
    /// When the run started, for the wall-time budget.
    started: std::time::Instant,
    /// Readies taken from every node: work that counts toward the step budget.
    readies: u64,
    checker: Checker<AppOutput<A>>,
    trace: Trace,
    hash: TraceHash,
    touched: Vec<(usize, GroupId)>,
    /// Per group: (term, leader) last reported.
    leader_hint: HashMap<GroupId, (u64, Option<NodeId>)>,
    /// Proposals awaiting an outcome: their position in `history`.
    pending_proposals: HashMap<ProposalId, usize>,
    /// Reads awaiting their read point or failure: their position in `history`.
    pending_reads: HashMap<ProposalId, usize>,
    /// Per node (by index): the last index of each group it applied in this life, to check
    /// each read point against (a `ReadPoint` promises the applies of its ready reached it).
    applied_to: Vec<HashMap<GroupId, u64>>,
    /// Leadership transfers awaiting an outcome, to count how they ended.
    pending_transfers: HashSet<ProposalId>,
    /// Snapshots taken and not yet written, by (node, group, index): a completed snapshot
    /// in a write that is not one of them was installed from a leader.
    taken: HashSet<(usize, GroupId, u64)>,
    /// Snapshot bytes read back so far, by (node, group), while a replica is restored.
    restoring: HashMap<(usize, GroupId), Vec<u8>>,
    /// Every client operation, for the app's history check at the end.
    history: Vec<ClientOp<AppOutput<A>>>,
    /// Every proposal taken: its position in `history`, kept after it ended, so that a
    /// replica applying its entry finds it.
    proposal_ops: HashMap<ProposalId, usize>,
    /// By position in `history`: when a replica first applied the proposal, and the
    /// state machine's output. The check resolves an indeterminate outcome by it and
    /// ends an operation's interval there (the entry committed before any apply).
    first_applied: HashMap<usize, (u64, AppOutput<A>)>,
    liveness: Option<Liveness>,
    report: SimReport,
}

impl<A: SimApp> fmt::Debug for Simulation<A> {
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

impl Simulation<KvApp> {
    /// A simulation of `config` running the built-in key-value app ([`KvApp`]); nothing runs
    /// until [`Simulation::run`].
    pub fn new(config: SimConfig) -> Simulation<KvApp> {
        let mut sim = Simulation::with_app(config, KvApp);
        sim.builtin_app = true;
        sim
    }
}

impl<A: SimApp> Simulation<A> {
    /// A simulation of `config` running `app`: its state machine on every replica, its
    /// workload as the clients and its invariants after every step and at the end, under
    /// the faults of `config`. Nothing runs until [`Simulation::run`].
    pub fn with_app(config: SimConfig, app: A) -> Simulation<A> {
        let mut rng = SimRng::new(config.seed);
        let base_tick_us = config.core.tick_interval.as_micros().max(1) as u64;
        let nodes = (0..config.nodes.clamp(1, 9))
            .map(|i| {
                let rate_milli = if config.faults.clock_skew {
                    rng.range(MIN_TICK_RATE_MILLI, MAX_TICK_RATE_MILLI)
                } else {
                    MIN_TICK_RATE_MILLI
                };
                let tick_us = (base_tick_us * MIN_TICK_RATE_MILLI / rate_milli).max(1);
                SimNode::down(NodeId(i as u64 + 1), tick_us)
            })
            .collect::<Vec<_>>();
        // Liveness: 10 election timeouts at the nominal clock rate.
        let window_us = 10 * u64::from(config.core.election_timeout_max_ticks) * base_tick_us;
        let secs_us = config.secs.saturating_mul(1_000_000);
        let heal_us = secs_us.saturating_sub(window_us).max(secs_us / 2);
        let end_us = secs_us.max(heal_us + window_us + base_tick_us);
        let applied_to = nodes.iter().map(|_| HashMap::new()).collect();
        Simulation {
            trace: Trace::new(config.trace_lines),
            report: SimReport {
                seed: config.seed,
                ..Default::default()
            },
            cfg: config,
            rng,
            app,
            builtin_app: false,
            replicas: nodes.iter().map(|_| BTreeMap::new()).collect(),
            app_touched: Vec::new(),
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
            lost: BTreeSet::new(),
            started: std::time::Instant::now(),
            readies: 0,
            checker: Checker::new(),
            hash: TraceHash::new(),
            touched: Vec::new(),
            leader_hint: HashMap::new(),
            pending_proposals: HashMap::new(),
            pending_reads: HashMap::new(),
            applied_to,
            pending_transfers: HashSet::new(),
            pending_changes: HashMap::new(),
            joins: HashMap::new(),
            deleted_voters: Vec::new(),
            committed_memberships: HashMap::new(),
            taken: HashSet::new(),
            restoring: HashMap::new(),
            history: Vec::new(),
            proposal_ops: HashMap::new(),
            first_applied: HashMap::new(),
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
        self.run_to_end()
    }

    /// Runs to the end like [`Simulation::run`], keeping the last `lines` trace lines
    /// (deliveries, readies, faults, notes), and returns them whatever the result: the
    /// "run one seed verbosely" entry point, for reading what a seed did. The `sim` binary's
    /// `--trace N` prints them.
    pub fn run_traced(mut self, lines: usize) -> (Result<SimReport, Box<Violation>>, Vec<String>) {
        self.trace = Trace::new(lines);
        let result = self.run_to_end();
        (result, self.trace.lines())
    }

    fn run_to_end(&mut self) -> Result<SimReport, Box<Violation>> {
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
                Ok(self.report.clone())
            }
            Some(f) => Err(Box::new(Violation {
                invariant: f.invariant.to_string(),
                seed: self.cfg.seed,
                step: self.report.steps,
                at_us: self.now_us,
                detail: f.detail,
                trace_tail: self.trace.lines(),
                setup: self.cfg.summary(),
                replay: if self.builtin_app {
                    self.cfg.replay_command()
                } else {
                    format!(
                        "Simulation::with_app with the same app and SimConfig (seed {}, as in \
                         `setup`); the `sim` binary runs only the built-in key-value app",
                        self.cfg.seed
                    )
                },
            })),
        }
    }

    fn run_inner(&mut self) -> Result<(), Failure> {
        self.cfg.validate().map_err(|detail| Failure {
            invariant: "a valid simulation configuration",
            detail,
        })?;
        self.setup()?;
        self.started = std::time::Instant::now();
        while let Some(s) = self.queue.pop() {
            if s.at_us > self.end_us {
                break;
            }
            self.now_us = s.at_us;
            self.report.steps += 1;
            self.handle(s.ev)?;
            self.check_touched()?;
            self.check_budget()?;
        }
        self.now_us = self.end_us;
        self.late_at_end();
        if self
            .liveness
            .as_ref()
            .is_some_and(|l| l.done.len() < self.groups.len())
        {
            return Err(self.liveness_failure());
        }
        self.checker.final_check(&self.nodes)?;
        self.stop_nodes()?;
        self.check_history()
    }

    /// Fails the run once it used its budget: steps and readies together against
    /// `max_steps` (a node that never stops producing readies livelocks inside one step),
    /// wall time against `max_wall`, looked at every 4,096 units of work.
    pub(super) fn check_budget(&self) -> Result<(), Failure> {
        let work = self.report.steps + self.readies;
        if work >= self.cfg.max_steps {
            let limit = format!("{} steps and readies", self.cfg.max_steps);
            return Err(self.budget_failure("steps", limit));
        }
        if work.is_multiple_of(4096) && self.started.elapsed() > self.cfg.max_wall {
            let wall = format!(
                "{:?} of wall time, which the machine's speed sets: a replay elsewhere may \
                 finish; max_steps is the bound a seed reproduces",
                self.cfg.max_wall
            );
            return Err(self.budget_failure("wall time", wall));
        }
        Ok(())
    }

    /// A seed that ran out of its budget: a livelock, or a run far slower than any normal
    /// seed, reported instead of hanging.
    fn budget_failure(&self, what: &str, limit: String) -> Failure {
        Failure {
            invariant: "the seed's budget (max_steps, max_wall): no livelock",
            detail: format!(
                "the run used its {what} budget ({limit}) at {}.{:06} of {} simulated s",
                self.now_us / 1_000_000,
                self.now_us % 1_000_000,
                self.end_us / 1_000_000
            ),
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
            let mut node = Node::new(
                self.nodes[i].id,
                self.cfg.core.clone(),
                self.node_seed(i, 0),
            )
            .map_err(|e| Failure {
                invariant: "valid configuration",
                detail: e.to_string(),
            })?;
            // Lives are numbered upward, as the driver's wall clock numbers them: the first
            // below every restart's (`incarnation << 40`). Named by the seed, a first life
            // could number above the next one, and its delayed beats then passed for the
            // live life (seed 13002983).
            node.start_requests_at(1);
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
                let sn = &mut self.nodes[i];
                let node = sn.node.as_mut().expect("running");
                let request = node
                    .create_group(GroupId(g), membership.clone())
                    .map_err(|e| Failure {
                        invariant: "group creation",
                        detail: e.to_string(),
                    })?;
                let id = invariants::proposal(sn.id, request);
                self.checker
                    .requests
                    .took(id, GroupId(g))
                    .map_err(|detail| self.checker.requests_failure(detail))?;
            }
            self.committed_memberships
                .insert(GroupId(g), (0, membership.clone()));
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

    /// A random member of `group` that can be called (up, not paused), if any.
    fn random_live_member(&mut self, group: GroupId) -> Option<usize> {
        let up: Vec<usize> = self.groups[&group]
            .iter()
            .copied()
            .filter(|i| self.can_call(*i))
            .collect();
        (!up.is_empty()).then(|| up[self.rng.below(up.len() as u64) as usize])
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Failure> {
        let Some(ev) = self.hold_for_pause(ev)? else {
            return Ok(());
        };
        match ev {
            Ev::Deliver(batch) => self.deliver(batch),
            Ev::Tick { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation || !self.is_up(node) {
                    return Ok(());
                }
                self.hash.u64(1);
                self.hash.u64(node as u64);
                self.hash.u64(self.now_us);
                self.serve_tick(node, 0);
                let n = self.nodes[node].node.as_mut().expect("up");
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
            Ev::SnapshotBuilt {
                node,
                incarnation,
                group,
                index,
                chunks,
            } => {
                if self.nodes[node].incarnation != incarnation || !self.is_up(node) {
                    return Ok(());
                }
                self.hash.u64(10);
                let n = self.nodes[node].node.as_mut().expect("up");
                multiraft_core::testing::hand_over_snapshot(n, group, index, chunks);
                self.touched.push((node, group));
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
            Ev::RemoveReplica {
                node,
                group,
                incarnation,
                why,
            } => self.remove_replica(node, group, incarnation, why),
            Ev::JointFault { node, group } => self.joint_fault(node, group),
            Ev::HealPartition { epoch } => {
                if epoch == self.partition_epoch && !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.hash.u64(7);
                    self.note("partition healed".to_string());
                }
                Ok(())
            }
            Ev::Resume { node, incarnation } => self.resume(node, incarnation),
            Ev::WaitingReads { node, incarnation } => self.waiting_reads(node, incarnation),
            Ev::Heal => self.heal(),
            Ev::Probe => self.probe(),
        }
    }

    fn check_touched(&mut self) -> Result<(), Failure> {
        self.check_app()?;
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

    /// The app's invariant over the replicas (on nodes that are up) of each group whose
    /// replicas changed in this step.
    fn check_app(&mut self) -> Result<(), Failure> {
        if self.app_touched.is_empty() {
            return Ok(());
        }
        let mut groups = std::mem::take(&mut self.app_touched);
        groups.sort_unstable();
        groups.dedup();
        let mut result = Ok(());
        for &g in &groups {
            let replicas: Vec<(NodeId, &A::Replica)> = self
                .replicas
                .iter()
                .enumerate()
                .filter(|(i, _)| self.is_up(*i))
                .filter_map(|(i, r)| r.get(&g).map(|r| (self.nodes[i].id, r)))
                .collect();
            if let Err(detail) = self.app.check_replicas(g, &replicas) {
                result = Err(Failure {
                    invariant: "the application's invariant (SimApp::check_replicas)",
                    detail: format!("{g}: {detail}"),
                });
                break;
            }
        }
        groups.clear();
        self.app_touched = groups;
        result
    }
}

impl SimNode {
    /// Node `id`, not started, with nothing durable, ticking every `tick_us`.
    pub(crate) fn down(id: NodeId, tick_us: u64) -> SimNode {
        SimNode {
            id,
            node: None,
            durable: disk::Disk::default(),
            incarnation: 0,
            pending: None,
            paused_until_us: 0,
            missed_ticks: 0,
            turn_began_us: 0,
            inbox_room: 0,
            held: Vec::new(),
            busy_until_us: 0,
            backlog: false,
            arrived: BTreeSet::new(),
            tick_us,
        }
    }
}
