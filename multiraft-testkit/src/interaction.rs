//! Data-driven interaction scripts, in the manner of etcd-io/raft's `testdata/*.txt`.
//!
//! A script is a sequence of blocks. Each block is a command line, a line `----`, and the
//! expected output, ended by a blank line. Lines starting with `#` are comments. The runner
//! drives real [`Node`]s (the sans-IO node layer) hosting one group, `g1`, through the
//! commands, prints what they produce, and compares it with the expected output. With the
//! environment variable `MULTIRAFT_REWRITE=1`, the runner writes the actual output into the
//! file instead, so a new script is written by listing the commands and running once —
//! after which its output must be read and checked by a person.
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
//! A `> N ready K` line starts what node N's ready number K held: `hs` (hard state to
//! persist), `entries`, `send-now` and `after-write` messages, `apply`, `rejected` proposals
//! and `event`s. A line without indentation is a message being delivered (with `(cut)`,
//! `(dropped)` or `(node down)` when it was not). Entries print as `term/index`.
//!
//! # Commands
//!
//! | command | effect |
//! |---|---|
//! | `add-nodes N [learners=A,B] [pre-vote=false] [check-quorum=false] [max-inflight=K]` | nodes 1..=N, all hosting `g1`; the listed nodes are learners |
//! | `campaign N` | node N starts an election now |
//! | `tick N\|all [COUNT]` | advance the logical clock |
//! | `propose N TEXT` | node N proposes TEXT to `g1` |
//! | `process-ready N\|all` | take a ready, persist its write, advance, queue its messages |
//! | `deliver [from=A] [to=B] [drop]` | deliver (or drop) the queued messages that match |
//! | `stabilize` | process readies and deliver until nothing moves |
//! | `partition A,B C,D` | cut every link between the two sides, both ways |
//! | `block A B` | cut the link from A to B only |
//! | `heal` | restore every link |
//! | `crash N` | node N loses everything not persisted; its queued messages are lost |
//! | `restart N` | node N restarts from what it persisted |
//! | `status` | role, term, vote, leader, log positions and quiescence of every node |
//! | `log N` | the entries of node N |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use multiraft_core::node::{Ready, Resolution};
use multiraft_core::testing::{self, Io};
use multiraft_core::{
    Config, Entry, Event, GroupId, Membership, Message, MessageBatch, MessageBody, Node, NodeId,
    Payload, ProposalId, Storage,
};

use crate::storage::MemStorage;

/// The one group every script node hosts.
const GROUP: GroupId = GroupId(1);

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
    let mut in_flight = testing::begin(ready, &mut Wire(queue));
    now(disk.write(in_flight.take_write())).map_err(|e| e.to_string())?;
    in_flight.acknowledge(node).deliver(&mut Wire(queue));
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

impl World {
    fn run(&mut self, command: &str) -> Result<String, String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let args = &words[1..];
        match words[0] {
            "add-nodes" => self.add_nodes(args),
            "campaign" => {
                let n = self.node_arg(args.first())?;
                self.node_mut(n)?
                    .campaign(GROUP)
                    .map_err(|e| e.to_string())?;
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
                let text = args[1..].join(" ");
                match self.node_mut(n)?.propose(GROUP, text.clone().into()) {
                    Ok(request) => {
                        let id = ProposalId {
                            node: NodeId(n),
                            seq: request.0,
                        };
                        self.texts.insert(id, text);
                        Ok(String::new())
                    }
                    Err(e) => Ok(format!("rejected: {e:?}")),
                }
            }
            "process-ready" => {
                let mut out = String::new();
                for n in self.targets(args.first())? {
                    self.process_ready(n, &mut out)?;
                }
                Ok(out)
            }
            "deliver" => self.deliver(args),
            "stabilize" => self.stabilize(),
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
                let loaded = now(self.disks[&n].load()).map_err(|e| e.to_string())?;
                let mut node =
                    Node::new(NodeId(n), self.config.clone(), n).map_err(|e| e.to_string())?;
                self.lives += 1;
                node.start_requests_at(self.lives << 32);
                node.restore(loaded).map_err(|e| e.to_string())?;
                self.nodes.insert(n, Some(node));
                Ok(String::new())
            }
            "status" => Ok(self.status()),
            "log" => {
                let n = self.node_arg(args.first())?;
                let node = self.node_ref(n)?;
                let g = node.replica(GROUP).ok_or("no group")?;
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
        let mut config = Config::default();
        config.strict = true;
        for a in &args[1..] {
            let (k, v) = a
                .split_once('=')
                .ok_or(format!("expected key=value: {a}"))?;
            match k {
                "learners" => learners = parse_ids(v)?,
                "pre-vote" => config.pre_vote = parse_bool(v)?,
                "check-quorum" => config.check_quorum = parse_bool(v)?,
                "max-inflight" => {
                    config.max_inflight_appends =
                        v.parse().map_err(|_| format!("bad number {v}"))?
                }
                _ => return Err(format!("unknown option {k}")),
            }
        }
        self.config = config;
        let voters = (1..=count).filter(|n| !learners.contains(n));
        let membership = Membership::voters(voters).with_learners(learners);
        for n in 1..=count {
            let mut node =
                Node::new(NodeId(n), self.config.clone(), n).map_err(|e| e.to_string())?;
            node.create_group(GROUP, membership.clone())
                .map_err(|e| e.to_string())?;
            let disk = MemStorage::new();
            // The creation is persisted silently: scripts start from created groups.
            let ready = node.ready().ok_or("no creation ready")?;
            persist(&mut node, ready, &disk, &mut Vec::new())?;
            self.nodes.insert(n, Some(node));
            self.disks.insert(n, disk);
        }
        Ok(String::new())
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
        let disk = self.disks[&n].clone();
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

    fn status(&self) -> String {
        let mut out = String::new();
        for (n, node) in &self.nodes {
            let Some(node) = node else {
                let _ = writeln!(out, "{n}: crashed");
                continue;
            };
            let Some(s) = node.group_status(GROUP) else {
                let _ = writeln!(out, "{n}: no group");
                continue;
            };
            let quiet = node.replica(GROUP).is_some_and(|g| g.is_quiesced());
            let _ = writeln!(
                out,
                "{n}: {:?} term={} vote={} leader={} last={} commit={} applied={}{}",
                s.role,
                s.term,
                s.vote.map_or("-".to_string(), |v| v.0.to_string()),
                s.leader.map_or("-".to_string(), |v| v.0.to_string()),
                s.last_index,
                s.commit,
                s.applied,
                if quiet { " quiesced" } else { "" }
            );
        }
        out
    }

    fn print_ready(&self, n: u64, ready: &Ready, out: &mut String) {
        let _ = writeln!(out, "> {n} ready {}", ready.number);
        for w in &ready.write.groups {
            if let Some(hs) = w.hard_state {
                let vote = hs.vote.map_or("-".to_string(), |v| v.0.to_string());
                let _ = writeln!(
                    out,
                    "  hs: term={} vote={vote} commit={}",
                    hs.term, hs.commit
                );
            }
            if !w.entries.is_empty() {
                let list: Vec<String> = w.entries.iter().map(|e| self.fmt_entry(e)).collect();
                let _ = writeln!(out, "  entries: {}", list.join(", "));
            }
        }
        for (label, batches) in [
            ("send-now", &ready.send_now),
            ("after-write", &ready.send_after_write),
        ] {
            for m in batches.iter().flat_map(|b| &b.messages) {
                let _ = writeln!(out, "  {label}: {}", self.fmt_message(m));
            }
        }
        for a in &ready.apply {
            let list: Vec<String> = a.entries.iter().map(|e| self.fmt_entry(e)).collect();
            let _ = writeln!(out, "  apply: {}", list.join(", "));
        }
        for o in &ready.outcomes {
            let text = self.fmt_text(ProposalId {
                node: NodeId(n),
                seq: o.request.0,
            });
            match &o.resolution {
                Resolution::Rejected(e) => {
                    let _ = writeln!(out, "  rejected: {text} {e:?}");
                }
                Resolution::Indeterminate(why) => {
                    let _ = writeln!(out, "  indeterminate: {text} {why:?}");
                }
                _ => {}
            }
        }
        for e in &ready.events {
            if let Event::LeaderChanged { term, leader, .. } = e {
                let l = leader.map_or("-".to_string(), |l| l.0.to_string());
                let _ = writeln!(out, "  event: term={term} leader={l}");
            }
        }
    }

    fn fmt_text(&self, id: ProposalId) -> String {
        format!("{:?}", self.texts.get(&id).map_or("?", String::as_str))
    }

    fn fmt_entry(&self, e: &Entry) -> String {
        match &e.payload {
            Payload::Noop => format!("{}/{} noop", e.term, e.index),
            Payload::Command { id, .. } => {
                format!("{}/{} {}", e.term, e.index, self.fmt_text(*id))
            }
            _ => format!("{}/{} ?", e.term, e.index),
        }
    }

    fn fmt_message(&self, m: &Message) -> String {
        let head = format!("{}->{}", m.from.0, m.to.0);
        let body = match &m.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
            } => format!(
                "{} term={} last={last_term}/{last_index}",
                if *pre_vote { "PreVote" } else { "Vote" },
                m.term
            ),
            MessageBody::VoteResponse { pre_vote, granted } => format!(
                "{} term={} {}",
                if *pre_vote {
                    "PreVoteResponse"
                } else {
                    "VoteResponse"
                },
                m.term,
                if *granted { "granted" } else { "rejected" }
            ),
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                let list: Vec<String> = entries.iter().map(|e| self.fmt_entry(e)).collect();
                format!(
                    "Append term={} prev={prev_term}/{prev_index} commit={commit} [{}]",
                    m.term,
                    list.join(", ")
                )
            }
            MessageBody::AppendResponse {
                success: true,
                index,
                ..
            } => format!("AppendResponse term={} ok index={index}", m.term),
            MessageBody::AppendResponse {
                index,
                hint_index,
                hint_term,
                ..
            } => format!(
                "AppendResponse term={} reject index={index} hint={hint_term}/{hint_index}",
                m.term
            ),
            MessageBody::Heartbeat { commit } => {
                format!("Heartbeat term={} commit={commit}", m.term)
            }
            MessageBody::HeartbeatResponse => format!("HeartbeatResponse term={}", m.term),
            MessageBody::Quiesce { commit } => format!("Quiesce term={} commit={commit}", m.term),
            MessageBody::Heartbeats { beats } => {
                let list: Vec<String> = beats
                    .iter()
                    .map(|b| {
                        let q = if b.quiesce { " quiesce" } else { "" };
                        format!("{} term={} commit={}{q}", b.group, b.term, b.commit)
                    })
                    .collect();
                format!("Heartbeats [{}]", list.join(", "))
            }
            MessageBody::HeartbeatAcks { acks } => {
                let list: Vec<String> = acks.iter().map(|(g, t)| format!("{g} term={t}")).collect();
                format!("HeartbeatAcks [{}]", list.join(", "))
            }
            MessageBody::Propose { proposals } => {
                let list: Vec<String> =
                    proposals.iter().map(|(id, _)| self.fmt_text(*id)).collect();
                format!("Propose [{}]", list.join(", "))
            }
            MessageBody::ProposeRejected { ids, leader_hint } => {
                let list: Vec<String> = ids.iter().map(|id| self.fmt_text(*id)).collect();
                let l = leader_hint.map_or("-".to_string(), |l| l.0.to_string());
                format!("ProposeRejected [{}] leader={l}", list.join(", "))
            }
            _ => "?".to_string(),
        };
        format!("{head} {body}")
    }
}
