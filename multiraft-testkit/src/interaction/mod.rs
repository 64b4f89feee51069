//! Data-driven interaction scripts, in the manner of etcd-io/raft's `testdata/*.txt`.
//!
//! A script is a sequence of blocks. Each block is a command line, a line `----`, and the
//! expected output, ended by a blank line. Lines starting with `#` are comments. The runner
//! drives real [`Node`]s (the sans-IO node layer) hosting the groups `g1`..`gK` (one group,
//! `g1`, unless `add-nodes` asks for more) through the commands, prints what they produce,
//! and compares it with the expected output. With the environment variable
//! `MULTIRAFT_REWRITE=1`, the runner writes the actual output into the file instead, so a
//! new script is written by listing the commands and running once — after which its output
//! must be read and checked by a person.
//!
//! ```text
//! campaign 1
//! ----
//! ok
//!
//! stabilize
//! ----
//! > 1 ready 2
//!   after-write: 1->2 PreVote term=1 last=0/0
//!   after-write: 1->3 PreVote term=1 last=0/0
//! 1->2 PreVote term=1 last=0/0
//! 1->3 PreVote term=1 last=0/0
//! > 2 ready 2
//!   after-write: 2->1 PreVoteResponse term=1 granted
//! ...
//! ```
//!
//! A `> N ready K` line starts what node N's ready number K held: `hs` (hard state to persist),
//! `entries`, `send-now` and `after-write` messages, `apply`, `read`s served, `rejected` proposals,
//! failed reads and transfers, and `event`s. A line without indentation is a message being
//! delivered (with `(cut)`, `(dropped)` or `(node down)` when it was not). Entries print as
//! `term/index`.
//!
//! Each ready is one storage write, whatever the number of groups it holds. When the nodes
//! host more than one group, everything that belongs to one group names it: a group's
//! messages print as `1->2 g2 Append ...`, a ready's lines as `hs: g2 ...`,
//! `entries: g2 ...`, `apply: g2 ...`, `rejected: g2 ...`, `event: g2 ...`, and status
//! lines as `g2 1: Leader ...`. The node-level coalesced heartbeats
//! (`Heartbeats [g1 term=.. commit=.., g2 ...]`) and their acknowledgements name the group
//! of every item. With one group the output names none.
//!
//! # Commands
//!
//! | command | effect |
//! |---|---|
//! | `add-nodes N [groups=K] [learners=A,B] [pre-vote=false] [check-quorum=false] [quiesce=false] [max-inflight=K] [max-ready-groups=K] [max-ready-entries=K]` | nodes 1..=N, all hosting `g1`..`gK` (default K=1); the listed nodes are learners of every group; the other options set the [`Config`] fields of the same name (the runner starts from `Config::default()`, so quiescence is on) |
//! | `campaign N [group=G]` | node N starts an election now for group G: `gK`, a list `g1,g3`, or `all` (default `g1`) |
//! | `tick N\|all [COUNT]` | advance the logical clock |
//! | `propose N [group=gK] TEXT` | node N proposes TEXT to group `gK` (default `g1`) |
//! | `read N [group=gK] read-index\|lease\|follower` | node N starts a read of `gK`; prints `served at once: index=I` when the lease serves it on the spot; a ready prints `read: "read POLICY" index=I` when it serves one, `read failed: ...` when one fails |
//! | `transfer N [group=gK] TO` | node N hands leadership of `gK` to node TO; a ready prints `transferred: ...` or `transfer failed: ...` when it ends |
//! | `add-node N` | a new node N that hosts no group yet (a machine joining the cluster) |
//! | `join N [group=gK] voters=A,B [learners=C]` | node N starts a replica of `gK` joining the running group whose membership is that (`Node::join_group`): it waits to be added and caught up |
//! | `remove-group N [group=gK]` | node N stops hosting `gK` and deletes it (after `event: removed`) |
//! | `change N [group=gK] add-learner X \| add-voter X \| promote X \| remove X \| replace OLD NEW` | node N (the leader) changes the membership of `gK`; a ready prints `membership changed: ...` or `membership change failed: ...` when it ends |
//! | `membership [group=gK]` | the membership in force on every node's replica of `gK` (`-` where it hosts none) |
//! | `process-ready N\|all` | take a ready, persist its write, advance, queue its messages |
//! | `deliver [from=A] [to=B] [drop]` | deliver (or drop) the queued messages that match |
//! | `stabilize [quiet]` | process readies and deliver until nothing moves; `quiet` prints nothing (to set up a scene, such as elections, that other scripts show; follow it with `status`) |
//! | `partition A,B C,D` | cut every link between the two sides, both ways |
//! | `block A B` | cut the link from A to B only |
//! | `heal` | restore every link |
//! | `crash N` | node N loses everything not persisted; its queued messages are lost |
//! | `restart N` | node N restarts from what it persisted |
//! | `status [group=G]` | role, term, vote, leader, log positions and quiescence of every node, for group G (`gK`, a list, or `all`; default `all`) |
//! | `log N [group=gK]` | the entries of node N in group `gK` (default `g1`) |
//! | `storage N\|all` | the storage writes node N made so far, and the entries they held |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use multiraft_core::node::{Ready, Resolution};
use multiraft_core::testing::{self, Io};
use multiraft_core::{
    Config, Entry, Event, GroupId, Membership, MembershipChange, Message, MessageBatch,
    MessageBody, Node, NodeId, Payload, ProposalId, ReadPolicy, ReadStart, RequestId, Storage,
};

use crate::storage::MemStorage;

mod print; // status lines, readies, messages and entries as scripts show them

/// The group a command acts on when it names none.
const DEFAULT_GROUP: GroupId = GroupId(1);

/// Runs the script at `path`; `Err` describes the first block whose output differs. With
/// `MULTIRAFT_REWRITE=1` in the environment, rewrites the file with the actual outputs.
pub fn run_file(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rewrite = std::env::var("MULTIRAFT_REWRITE").is_ok_and(|v| v == "1");
    let (outcome, rewritten) = run_script(&text);
    if rewrite {
        std::fs::write(path, rewritten).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    outcome.map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs a script given as text. Returns the comparison outcome and the script with every
/// block's output replaced by the actual one.
pub fn run_script(text: &str) -> (Result<(), String>, String) {
    let mut world = World::default();
    let mut rewritten = String::new();
    let mut first_error = None;
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            continue;
        }
        let command = line.trim();
        let mut expected = Vec::new();
        let mut has_separator = false;
        if let Some((_, l)) = lines.peek()
            && l.trim() == "----"
        {
            lines.next();
            has_separator = true;
            while let Some((_, l)) = lines.peek() {
                if l.trim().is_empty() {
                    break;
                }
                expected.push(l.to_string());
                lines.next();
            }
        }
        let actual = match world.run(command) {
            Ok(out) if out.trim().is_empty() => "ok".to_string(),
            Ok(out) => out.trim_end().to_string(),
            Err(e) => format!("error: {e}"),
        };
        let _ = write!(rewritten, "{command}\n----\n{actual}\n");
        if first_error.is_none() {
            if !has_separator {
                first_error = Some(format!("line {}: `{command}` has no `----` line", n + 1));
            } else if expected.join("\n") != actual {
                first_error = Some(format!(
                    "line {}: `{command}`\n--- expected\n{}\n--- actual\n{actual}\n",
                    n + 1,
                    expected.join("\n")
                ));
            }
        }
    }
    (first_error.map_or(Ok(()), Err), rewritten)
}

/// Polls a future that completes at once (the testkit's storage never waits).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("MemStorage futures complete at once"),
    }
}

#[derive(Default)]
struct World {
    config: Config,
    /// `None` while crashed.
    nodes: BTreeMap<u64, Option<Node>>,
    disks: BTreeMap<u64, MemStorage>,
    /// Sent and not yet delivered, in order.
    queue: Vec<MessageBatch>,
    /// Cut links (from, to).
    cut: BTreeSet<(u64, u64)>,
    /// Node lives started so far: each life's request ids start past the last one's.
    lives: u64,
    /// Proposal text by proposal id, to print proposals readably.
    texts: BTreeMap<ProposalId, String>,
    /// The groups every node hosts, in id order.
    groups: Vec<GroupId>,
}

/// The network of a script: what a ready sends joins the queue of undelivered batches.
struct Wire<'a>(&'a mut Vec<MessageBatch>);

impl Io for Wire<'_> {
    fn send(&mut self, batch: MessageBatch) {
        self.0.push(batch);
    }
}

/// Does `ready` through the shared ready loop, with `disk` as its storage.
fn persist(
    node: &mut Node,
    ready: Ready,
    disk: &MemStorage,
    queue: &mut Vec<MessageBatch>,
) -> Result<(), String> {
    let mut in_flight = testing::begin(node, ready, &mut Wire(queue));
    now(disk.write(in_flight.take_write())).map_err(|e| e.to_string())?;
    in_flight.acknowledge(node).deliver(node, &mut Wire(queue));
    Ok(())
}

fn parse_ids(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("not a node id: {p}")))
        .collect()
}

fn parse_bool(v: &str) -> Result<bool, String> {
    v.parse().map_err(|_| format!("not a bool: {v}"))
}

fn parse_number(v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("bad number {v}"))
}

/// A group name, `gN`.
fn parse_group(s: &str) -> Result<GroupId, String> {
    s.strip_prefix('g')
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .map(GroupId)
        .ok_or(format!("not a group: {s}"))
}

/// Splits `args` into the value of a `group=` argument, if any, and the rest.
fn take_group_arg<'a>(args: &[&'a str]) -> (Option<&'a str>, Vec<&'a str>) {
    let mut group = None;
    let mut rest = Vec::new();
    for a in args {
        match a.strip_prefix("group=") {
            Some(g) => group = Some(g),
            None => rest.push(*a),
        }
    }
    (group, rest)
}

impl World {
    fn run(&mut self, command: &str) -> Result<String, String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let args = &words[1..];
        match words[0] {
            "add-nodes" => self.add_nodes(args),
            "campaign" => {
                let (group, rest) = take_group_arg(args);
                let n = self.node_arg(rest.first())?;
                for g in self.groups_arg(group, &[DEFAULT_GROUP])? {
                    self.node_mut(n)?.campaign(g).map_err(|e| e.to_string())?;
                }
                Ok(String::new())
            }
            "tick" => {
                let count: u32 = match args.get(1) {
                    Some(c) => c.parse().map_err(|_| format!("not a count: {c}"))?,
                    None => 1,
                };
                for n in self.targets(args.first())? {
                    for _ in 0..count {
                        self.node_mut(n)?.tick();
                    }
                }
                Ok(String::new())
            }
            "propose" => {
                let n = self.node_arg(args.first())?;
                let (group, text) = match args.get(1).and_then(|a| a.strip_prefix("group=")) {
                    Some(g) => (parse_group(g)?, args[2..].join(" ")),
                    None => (DEFAULT_GROUP, args[1..].join(" ")),
                };
                match self.node_mut(n)?.propose(group, text.clone().into()) {
                    Ok(request) => self.name_request(n, request, text),
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "read" => {
                let n = self.node_arg(args.first())?;
                let (group, rest) = take_group_arg(&args[1..]);
                let group = self.group_arg(group)?;
                let policy = match rest.first().copied() {
                    Some("read-index") => ReadPolicy::ReadIndex,
                    Some("lease") => ReadPolicy::Lease,
                    Some("follower") => ReadPolicy::Follower,
                    other => return Err(format!("not a read policy: {other:?}")),
                };
                match self.node_mut(n)?.read(group, policy) {
                    Ok(ReadStart::Now { index }) => Ok(format!("served at once: index={index}")),
                    Ok(ReadStart::Taken(request)) => {
                        self.name_request(n, request, format!("read {}", rest[0]))
                    }
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "transfer" => {
                let n = self.node_arg(args.first())?;
                let (group, rest) = take_group_arg(&args[1..]);
                let group = self.group_arg(group)?;
                let to = self.node_arg(rest.first())?;
                match self.node_mut(n)?.transfer_leader(group, NodeId(to)) {
                    Ok(request) => self.name_request(n, request, format!("transfer to {to}")),
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "add-node" => {
                let n = self.node_arg(args.first())?;
                if self.nodes.contains_key(&n) {
                    return Err(format!("node {n} exists"));
                }
                let node =
                    Node::new(NodeId(n), self.config.clone(), n).map_err(|e| e.to_string())?;
                self.nodes.insert(n, Some(node));
                self.disks.insert(n, MemStorage::new());
                Ok(String::new())
            }
            "join" => {
                let n = self.node_arg(args.first())?;
                let (group, rest) = take_group_arg(&args[1..]);
                let group = self.group_arg(group)?;
                let mut membership = Membership::default();
                for a in rest {
                    match a.split_once('=') {
                        Some(("voters", v)) => membership = Membership::voters(parse_ids(v)?),
                        Some(("learners", v)) => {
                            membership = membership.with_learners(parse_ids(v)?)
                        }
                        _ => return Err(format!("unknown argument {a}")),
                    }
                }
                match self.node_mut(n)?.join_group(group, membership) {
                    Ok(_) => Ok(String::new()),
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "remove-group" => {
                let n = self.node_arg(args.first())?;
                let (group, _) = take_group_arg(&args[1..]);
                let group = self.group_arg(group)?;
                match self.node_mut(n)?.remove_group(group) {
                    Ok(_) => Ok(String::new()),
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "change" => {
                let n = self.node_arg(args.first())?;
                let (group, rest) = take_group_arg(&args[1..]);
                let group = self.group_arg(group)?;
                let x = NodeId(self.node_arg(rest.get(1))?);
                let change = match rest.first().copied() {
                    Some("add-learner") => MembershipChange::AddLearner(x),
                    Some("add-voter") => MembershipChange::AddVoter(x),
                    Some("promote") => MembershipChange::Promote(x),
                    Some("remove") => MembershipChange::Remove(x),
                    Some("replace") => MembershipChange::Replace {
                        old: x,
                        new: NodeId(self.node_arg(rest.get(2))?),
                    },
                    other => return Err(format!("not a membership change: {other:?}")),
                };
                match self.node_mut(n)?.change_membership(group, change) {
                    Ok(request) => self.name_request(n, request, rest.join(" ")),
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "membership" => {
                let (group, _) = take_group_arg(args);
                let group = self.group_arg(group)?;
                let mut out = String::new();
                for (n, node) in &self.nodes {
                    let m = match node {
                        None => "crashed".to_string(),
                        Some(node) => node
                            .replica(group)
                            .map_or("-".to_string(), |r| print::fmt_membership(r.membership())),
                    };
                    let _ = writeln!(out, "{n}: {m}");
                }
                Ok(out)
            }
            "process-ready" => {
                let mut out = String::new();
                for n in self.targets(args.first())? {
                    self.process_ready(n, &mut out)?;
                }
                Ok(out)
            }
            "deliver" => self.deliver(args),
            "stabilize" => match args {
                [] => self.stabilize(),
                ["quiet"] => self.stabilize().map(|_| String::new()),
                _ => Err(format!("unknown argument {}", args.join(" "))),
            },
            "partition" => {
                let a = parse_ids(args.first().ok_or("partition needs two sides")?)?;
                let b = parse_ids(args.get(1).ok_or("partition needs two sides")?)?;
                for x in &a {
                    for y in &b {
                        self.cut.insert((*x, *y));
                        self.cut.insert((*y, *x));
                    }
                }
                Ok(String::new())
            }
            "block" => {
                let a = self.node_arg(args.first())?;
                let b = self.node_arg(args.get(1))?;
                self.cut.insert((a, b));
                Ok(String::new())
            }
            "heal" => {
                self.cut.clear();
                Ok(String::new())
            }
            "crash" => {
                let n = self.node_arg(args.first())?;
                self.node_mut(n)?;
                self.nodes.insert(n, None);
                self.queue.retain(|b| b.from.0 != n && b.to.0 != n);
                Ok(String::new())
            }
            "restart" => {
                let n = self.node_arg(args.first())?;
                if matches!(self.nodes.get(&n), Some(Some(_))) {
                    return Err(format!("node {n} is running"));
                }
                let loaded = now(self.disk(n)?.load()).map_err(|e| e.to_string())?;
                let mut node =
                    Node::new(NodeId(n), self.config.clone(), n).map_err(|e| e.to_string())?;
                self.lives += 1;
                node.start_requests_at(self.lives << 32);
                node.restore(loaded).map_err(|e| e.to_string())?;
                self.nodes.insert(n, Some(node));
                Ok(String::new())
            }
            "status" => {
                let (group, rest) = take_group_arg(args);
                if let Some(a) = rest.first() {
                    return Err(format!("unknown argument {a}"));
                }
                let all = self.groups.clone();
                let groups = self.groups_arg(group, &all)?;
                Ok(self.status(&groups))
            }
            "storage" => {
                let mut out = String::new();
                for n in self.targets(args.first())? {
                    let disk = self.disk(n)?;
                    let _ = writeln!(
                        out,
                        "{n}: writes={} entries={}",
                        disk.write_count(),
                        disk.entries_written()
                    );
                }
                Ok(out)
            }
            "log" => {
                let (group, rest) = take_group_arg(args);
                let group = group.map_or(Ok(DEFAULT_GROUP), parse_group)?;
                let n = self.node_arg(rest.first())?;
                let node = self.node_ref(n)?;
                let g = node.replica(group).ok_or("no group")?;
                let last = g.status().last_index;
                let lines: Vec<String> = g
                    .entries(1, last + 1)
                    .iter()
                    .map(|e| self.fmt_entry(e))
                    .collect();
                Ok(if lines.is_empty() {
                    "(empty)".to_string()
                } else {
                    lines.join("\n")
                })
            }
            other => Err(format!("unknown command {other}")),
        }
    }

    fn add_nodes(&mut self, args: &[&str]) -> Result<String, String> {
        let count: u64 = args
            .first()
            .and_then(|c| c.parse().ok())
            .ok_or("add-nodes needs a count")?;
        let mut learners = Vec::new();
        let mut groups = 1;
        let mut config = Config::default();
        config.strict = true;
        for a in &args[1..] {
            let (k, v) = a
                .split_once('=')
                .ok_or(format!("expected key=value: {a}"))?;
            match k {
                "groups" => groups = parse_number(v)?,
                "learners" => learners = parse_ids(v)?,
                "pre-vote" => config.pre_vote = parse_bool(v)?,
                "check-quorum" => config.check_quorum = parse_bool(v)?,
                "quiesce" => config.quiesce = parse_bool(v)?,
                "max-inflight" => config.max_inflight_appends = parse_number(v)?,
                "max-ready-groups" => config.max_ready_groups = parse_number(v)?,
                "max-ready-entries" => config.max_ready_entries = parse_number(v)?,
                _ => return Err(format!("unknown option {k}")),
            }
        }
        self.config = config;
        self.groups = (1..=groups as u64).map(GroupId).collect();
        let voters = (1..=count).filter(|n| !learners.contains(n));
        let membership = Membership::voters(voters).with_learners(learners);
        for n in 1..=count {
            let mut node =
                Node::new(NodeId(n), self.config.clone(), n).map_err(|e| e.to_string())?;
            for g in &self.groups {
                node.create_group(*g, membership.clone())
                    .map_err(|e| e.to_string())?;
            }
            let disk = MemStorage::new();
            // The creation is persisted silently: scripts start from created groups.
            let ready = node.ready().ok_or("no creation ready")?;
            persist(&mut node, ready, &disk, &mut Vec::new())?;
            self.nodes.insert(n, Some(node));
            self.disks.insert(n, disk);
        }
        Ok(String::new())
    }

    /// The groups a `group=` argument names (`gN`, `gA,gB`, or `all`), or `default`.
    /// Remembers what request `request` of node `n` is, for the lines that print it;
    /// the command itself prints nothing.
    fn name_request(&mut self, n: u64, request: RequestId, text: String) -> Result<String, String> {
        let id = ProposalId {
            node: NodeId(n),
            seq: request.0,
        };
        self.texts.insert(id, text);
        Ok(String::new())
    }

    fn groups_arg(&self, arg: Option<&str>, default: &[GroupId]) -> Result<Vec<GroupId>, String> {
        match arg {
            None => Ok(default.to_vec()),
            Some("all") => Ok(self.groups.clone()),
            Some(list) => list.split(',').map(parse_group).collect(),
        }
    }

    /// The one group a command acts on: the first of its `group=` list, or the default
    /// group. An empty list (`group=all` where no group was made) is an error, not a panic.
    fn group_arg(&self, arg: Option<&str>) -> Result<GroupId, String> {
        let groups = self.groups_arg(arg, &[DEFAULT_GROUP])?;
        groups
            .first()
            .copied()
            .ok_or_else(|| "no group".to_string())
    }

    /// Node `n`'s storage, which it keeps across crashes.
    fn disk(&self, n: u64) -> Result<&MemStorage, String> {
        self.disks.get(&n).ok_or_else(|| format!("no node {n}"))
    }

    /// Whether the nodes host more than one group, so that output must name groups.
    fn multi(&self) -> bool {
        self.groups.len() > 1
    }

    /// `"g2 "` when output must name groups, else nothing.
    fn tag(&self, group: GroupId) -> String {
        if self.multi() {
            format!("{group} ")
        } else {
            String::new()
        }
    }

    fn node_arg(&self, arg: Option<&&str>) -> Result<u64, String> {
        let a = arg.ok_or("expected a node id")?;
        a.parse().map_err(|_| format!("not a node id: {a}"))
    }

    fn targets(&self, arg: Option<&&str>) -> Result<Vec<u64>, String> {
        match arg {
            Some(&"all") | None => Ok(self
                .nodes
                .iter()
                .filter(|(_, n)| n.is_some())
                .map(|(id, _)| *id)
                .collect()),
            Some(_) => Ok(vec![self.node_arg(arg)?]),
        }
    }

    fn node_mut(&mut self, n: u64) -> Result<&mut Node, String> {
        match self.nodes.get_mut(&n) {
            Some(Some(node)) => Ok(node),
            Some(None) => Err(format!("node {n} is crashed")),
            None => Err(format!("no node {n}")),
        }
    }

    fn node_ref(&self, n: u64) -> Result<&Node, String> {
        match self.nodes.get(&n) {
            Some(Some(node)) => Ok(node),
            Some(None) => Err(format!("node {n} is crashed")),
            None => Err(format!("no node {n}")),
        }
    }

    /// Takes node `n`'s ready, persists it, advances, queues its messages, and prints it.
    /// Returns whether there was one.
    fn process_ready(&mut self, n: u64, out: &mut String) -> Result<bool, String> {
        let Some(ready) = self.node_mut(n)?.ready() else {
            return Ok(false);
        };
        self.print_ready(n, &ready, out);
        let mut queue = std::mem::take(&mut self.queue);
        let disk = self.disk(n)?.clone();
        let done = persist(self.node_mut(n)?, ready, &disk, &mut queue);
        self.queue = queue;
        done.map(|()| true)
    }

    fn deliver(&mut self, args: &[&str]) -> Result<String, String> {
        let (mut from, mut to, mut drop) = (None, None, false);
        for a in args {
            match a.split_once('=') {
                Some(("from", v)) => from = Some(v.parse::<u64>().map_err(|_| "bad from")?),
                Some(("to", v)) => to = Some(v.parse::<u64>().map_err(|_| "bad to")?),
                None if *a == "drop" => drop = true,
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        let matches =
            |b: &MessageBatch| from.is_none_or(|f| b.from.0 == f) && to.is_none_or(|t| b.to.0 == t);
        let (chosen, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|b| matches(b));
        self.queue = rest;
        let mut out = String::new();
        for batch in chosen {
            self.deliver_batch(batch, drop, &mut out);
        }
        Ok(out)
    }

    fn deliver_batch(&mut self, batch: MessageBatch, drop: bool, out: &mut String) {
        let (f, t) = (batch.from.0, batch.to.0);
        let cut = self.cut.contains(&(f, t));
        let down = !matches!(self.nodes.get(&t), Some(Some(_)));
        for m in &batch.messages {
            let tag = if drop {
                " (dropped)"
            } else if cut {
                " (cut)"
            } else if down {
                " (node down)"
            } else {
                ""
            };
            let _ = writeln!(out, "{}{tag}", self.fmt_message(m));
        }
        if !drop
            && !cut
            && let Some(Some(node)) = self.nodes.get_mut(&t)
        {
            node.step(batch);
        }
    }

    fn stabilize(&mut self) -> Result<String, String> {
        let mut out = String::new();
        for _ in 0..1000 {
            let mut moved = false;
            for n in self.targets(None)? {
                moved |= self.process_ready(n, &mut out)?;
            }
            let queued = std::mem::take(&mut self.queue);
            moved |= !queued.is_empty();
            for batch in queued {
                self.deliver_batch(batch, false, &mut out);
            }
            if !moved {
                return Ok(out);
            }
        }
        Err("did not stabilize in 1000 rounds".to_string())
    }
}
