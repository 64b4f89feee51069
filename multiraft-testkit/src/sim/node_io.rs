//! The node IO: taking readies, hashing and tracing them, applying committed commands,
//! serving reads, and completing writes into the durable image.

use multiraft_core::testing::{self, InFlight, Io};
use multiraft_core::{
    Apply, Bytes, Event, GroupId, MessageBatch, Outcome, Payload, Ready, Resolution, SnapshotChunk,
    SnapshotError, TakeSnapshot,
};

use super::app::{ClientOutcome, SimApp, SimReplica};
use super::invariants::{Failure, proposal};
use super::trace::TraceRec;
use super::{Ev, Phase, Simulation, TraceHash};

/// A ready whose write is in flight on a slow disk.
pub(super) type Pending = InFlight;

/// Node `i`'s side of the simulation while it does one of its readies through the shared
/// ready loop: its sends go on the simulated network, its applies to its key-value replica,
/// and its outcomes to the clients' history and the request-outcome invariant. The first
/// failure is kept; everything after it is ignored.
struct SimIo<'a, A: SimApp> {
    sim: &'a mut Simulation<A>,
    i: usize,
    failure: Option<Failure>,
}

impl<A: SimApp> SimIo<'_, A> {
    fn check(&mut self, r: Result<(), Failure>) {
        if self.failure.is_none()
            && let Err(f) = r
        {
            self.failure = Some(f);
        }
    }

    fn finish(self) -> Result<(), Failure> {
        self.failure.map_or(Ok(()), Err)
    }
}

impl<A: SimApp> Io for SimIo<'_, A> {
    fn send(&mut self, batch: MessageBatch) {
        let r = self.sim.send(self.i, batch);
        self.check(r);
    }

    fn apply(&mut self, a: Apply) {
        let (sim, i) = (&mut *self.sim, self.i);
        let me = sim.nodes[i].id;
        sim.touched.push((i, a.group));
        sim.app_touched.push(a.group);
        if let Some(last) = a.entries.last() {
            sim.applied_to[i].insert(a.group, last.index);
        }
        sim.count_memberships(a.group, &a.entries);
        if let Some(last) = a.entries.last() {
            let judged = sim.judge_deletions(a.group, last.index);
            self.check(judged);
        }
        let (sim, i) = (&mut *self.sim, self.i);
        let mut requests = a.requests.iter().peekable();
        // Only the first violation is reported (see `SimIo::check`).
        let mut violation: Option<String> = None;
        for e in &a.entries {
            let Payload::Command { id, data } = &e.payload else {
                continue;
            };
            let replica = sim.replicas[i]
                .entry(a.group)
                .or_insert_with(|| sim.app.new_replica(me, a.group));
            let result = replica.apply(e.index, data);
            if let Some(&k) = sim.proposal_ops.get(id) {
                sim.first_applied
                    .entry(k)
                    .or_insert_with(|| (sim.now_us, result.clone()));
            }
            let mut r = sim.checker.requests.applied(a.group, e.index, *id, &result);
            if let Some(&(_, request)) = requests.next_if(|(index, _)| *index == e.index) {
                let mine = proposal(me, request);
                if r.is_ok() {
                    r = sim
                        .checker
                        .requests
                        .reported_applied(mine, a.group, e.index, *id, &result);
                }
                if let Some(k) = sim.pending_proposals.remove(&mine) {
                    sim.report.applied += 1;
                    let op = &mut sim.history[k];
                    op.returned_at_us = Some(sim.now_us);
                    op.outcome = ClientOutcome::Applied(result);
                }
            }
            violation = violation.or(r.err());
        }
        if let Some(&(index, request)) = requests.next() {
            violation = violation.or(Some(format!(
                "{me} reported request {} applied by {}/{index}, which is not a command applied in that ready",
                request.0, a.group
            )));
        }
        if let Some(detail) = violation {
            let failure = sim.checker.requests_failure(detail);
            self.check(Err(failure));
        }
    }

    fn outcome(&mut self, o: Outcome) {
        let sim = &mut *self.sim;
        let id = proposal(sim.nodes[self.i].id, o.request);
        let r = match o.resolution {
            Resolution::Rejected(_) => {
                if let Some(k) = sim.pending_proposals.remove(&id) {
                    sim.report.rejected += 1;
                    sim.history[k].outcome = ClientOutcome::Rejected;
                }
                sim.checker.requests.reported_rejected(id)
            }
            Resolution::Indeterminate(_) => {
                if sim.pending_proposals.remove(&id).is_some() {
                    sim.report.indeterminate += 1;
                }
                sim.checker.requests.reported_indeterminate(id)
            }
            Resolution::ReadFailed(_) => {
                sim.read_failed(id);
                sim.checker.requests.reported_read_failed(id)
            }
            Resolution::TransferFailed(_) => {
                if sim.pending_transfers.remove(&id) {
                    sim.report.transfers_failed += 1;
                }
                sim.checker.requests.reported_transfer_failed(id)
            }
            Resolution::MembershipChanged(m) => sim
                .change_ended(id, Some(&m))
                .and_then(|()| sim.checker.requests.reported_change_ended(id)),
            Resolution::MembershipChangeFailed(e) => {
                let r = sim.change_ended(id, None);
                let r = r.and_then(|()| sim.checker.requests.reported_change_ended(id));
                r.and_then(|()| sim.check_catch_up_timeout(self.i, o.group, &e))
            }
            Resolution::Done => {
                if sim.pending_transfers.remove(&id) {
                    sim.report.transfers_done += 1;
                }
                sim.checker.requests.reported_done(id)
            }
            other => Err(format!(
                "{} reported request {} ended as {other:?}, which the simulator does not know",
                id.node, id.seq
            )),
        };
        let r = r.map_err(|detail| sim.checker.requests_failure(detail));
        self.check(r);
    }

    fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        let (sim, i) = (&mut *self.sim, self.i);
        let me = sim.nodes[i].id;
        let replica = sim.replicas[i]
            .entry(take.group)
            .or_insert_with(|| sim.app.new_replica(me, take.group));
        let data = Bytes::from(replica.snapshot().ok_or(SnapshotError::Unsupported)?);
        if sim.phase == Phase::Faults {
            let mut h = TraceHash::new();
            for v in [sim.cfg.seed, i as u64, take.group.0, take.meta.index] {
                h.u64(v);
            }
            if h.value() % 1000 < u64::from(sim.cfg.faults.snapshot_failure_per_mille) {
                sim.report.snapshot_failures += 1;
                return Err(SnapshotError::Failed("simulated".into()));
            }
        }
        sim.report.snapshots_taken += 1;
        sim.taken.insert((i, take.group, take.meta.index));
        // In one to three pieces, which the node splits further into its chunk size.
        let pieces = 1 + sim.rng.below(3) as usize;
        let step = data.len().div_ceil(pieces).max(1);
        Ok((0..data.len())
            .step_by(step)
            .map(|at| data.slice(at..(at + step).min(data.len())))
            .collect())
    }

    fn snapshot_later(&mut self, take: &TakeSnapshot, chunks: &[Bytes]) -> bool {
        let sim = &mut *self.sim;
        if !sim.cfg.faults.slow_snapshots || sim.phase != Phase::Faults || sim.rng.chance(500) {
            return false;
        }
        let mut delay = sim.rng.range(1_000, 200_000);
        // One build in ten takes 15 times as long (up to 3 s), so that a leader parks
        // proposals for many election timeouts and loses its leadership meanwhile now and
        // then. Decided from the same draw, so that no other random choice of the seed moves.
        if delay.is_multiple_of(10) {
            delay *= 15;
        }
        let ev = Ev::SnapshotBuilt {
            node: self.i,
            incarnation: sim.nodes[self.i].incarnation,
            group: take.group,
            index: take.meta.index,
            chunks: chunks.to_vec(),
        };
        sim.schedule(delay, ev);
        true
    }

    fn snapshot_chunk(&mut self, group: GroupId, index: u64, seq: u32) -> Option<SnapshotChunk> {
        self.sim.nodes[self.i]
            .durable
            .snapshot_chunk(group, index, seq)
    }

    fn restore(&mut self, group: GroupId, chunk: &SnapshotChunk) {
        let (sim, i) = (&mut *self.sim, self.i);
        let buffer = sim.restoring.entry((i, group)).or_default();
        if chunk.seq == 0 {
            buffer.clear();
        }
        buffer.extend_from_slice(&chunk.data);
        if !chunk.last {
            return;
        }
        let data = sim.restoring.remove(&(i, group)).unwrap_or_default();
        let me = sim.nodes[i].id;
        let mut replica = sim.app.new_replica(me, group);
        if !replica.restore(&data) {
            let failure = Failure {
                invariant: "snapshots restore",
                detail: format!(
                    "{me}: the app refused the snapshot of {group} at {} ({} bytes, last chunk {})",
                    chunk.meta.index,
                    data.len(),
                    chunk.seq
                ),
            };
            return self.check(Err(failure));
        }
        sim.replicas[i].insert(group, replica);
        sim.applied_to[i].insert(group, chunk.meta.index);
        sim.app_touched.push(group);
        sim.report.restores += 1;
    }

    fn event(&mut self, e: Event) {
        let sim = &mut *self.sim;
        let me = sim.nodes[self.i].id;
        if let Event::MembershipChanged { group, membership } = &e
            && membership.is_joint()
            && sim.phase == Phase::Faults
            && sim.rng.chance(super::changes::JOINT_FAULT_PER_MILLE)
        {
            // Faults while the configuration is joint, where joint consensus earns its keep.
            let (node, group) = (self.i, *group);
            let after = sim.rng.range(0, 500);
            sim.schedule(after, Ev::JointFault { node, group });
        }
        if let Event::ReplicaRemoved { group } = e {
            // Deleted a moment later, as an application reacting to the event would.
            let incarnation = sim.nodes[self.i].incarnation;
            let node = self.i;
            let after = 1 + sim.rng.below(sim.tick_us);
            sim.schedule(
                after,
                Ev::RemoveReplica {
                    node,
                    group,
                    incarnation,
                    why: super::changes::Deletion::Removed,
                },
            );
            return;
        }
        if let Event::LeaderChanged {
            group,
            term,
            leader,
        } = e
        {
            if leader == Some(me) {
                sim.report.leader_changes += 1;
                sim.note(format!("{me} leads {group} in term {term}"));
            }
            let hint = sim.leader_hint.entry(group).or_insert((0, None));
            if term >= hint.0 {
                *hint = (term, leader);
            }
        }
    }
}

impl<A: SimApp> Simulation<A> {
    /// Takes readies from node `i` until it has none or a write is in flight. While one is,
    /// what may leave before it leaves now (`Node::take_sends`: a leader's appends and
    /// heartbeats), as the driver does on every wake.
    pub(super) fn drive(&mut self, i: usize) -> Result<(), Failure> {
        if self.is_busy(i) {
            return Ok(());
        }
        loop {
            let sn = &mut self.nodes[i];
            if sn.pending.is_some() {
                let sends = sn.node.as_mut().map(|n| n.take_sends()).unwrap_or_default();
                for batch in sends {
                    self.send(i, batch)?;
                }
                return Ok(());
            }
            let Some(node) = sn.node.as_mut() else {
                return Ok(());
            };
            let Some(ready) = node.ready() else {
                return Ok(());
            };
            self.readies += 1;
            self.check_budget()?;
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
            for c in &w.snapshot {
                h.u64(c.meta.index);
                h.u64(u64::from(c.seq));
                h.u64(c.data.len() as u64);
            }
            h.u64(w.log_reset.map_or(0, |c| c.index));
            h.u64(w.compact_to.unwrap_or(0));
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
        h.u64(ready.outcomes.len() as u64);
        h.u64(ready.reads.len() as u64);
        h.u64(ready.snapshots.len() as u64);
        h.u64(ready.chunk_reads.len() as u64);
        h.u64(ready.restores.len() as u64);
    }

    fn process_ready(&mut self, i: usize, mut ready: Ready) -> Result<(), Failure> {
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
        // The shared ready loop knows nothing of reads: they are served here, right after
        // the applies of the same ready (which `begin` does), as `Ready::reads` requires.
        let reads = std::mem::take(&mut ready.reads);
        let mut io = SimIo {
            sim: self,
            i,
            failure: None,
        };
        // The node is out of its slot while the shared loop holds it; nothing `SimIo` does
        // looks at it.
        let Some(mut node) = io.sim.nodes[i].node.take() else {
            return Err(down(io.sim.nodes[i].id));
        };
        let pending = testing::begin(&mut node, ready, &mut io);
        io.sim.nodes[i].node = Some(node);
        io.finish()?;
        self.serve_reads(i, reads)?;
        let me = self.nodes[i].id;
        let faulty = self.phase == Phase::Faults;
        let write_empty = pending.write().is_empty();
        if faulty && self.cfg.faults.storage_failures && !write_empty && self.rng.chance(2) {
            self.report.storage_failures += 1;
            self.note(format!(
                "{me}: storage write of ready {} failed; node stops",
                pending.number()
            ));
            self.hash.u64(4);
            self.take_down(i);
            let after = self.rng.range(200_000, 3_000_000);
            self.schedule(after, Ev::Restart { node: i });
            return Ok(());
        }
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

    /// The write of `p` is durable: apply it to the image, advance, send what waited and
    /// report the outcomes and events.
    pub(super) fn complete_write(&mut self, i: usize, mut p: Pending) -> Result<(), Failure> {
        for w in p.take_write().groups {
            self.touched.push((i, w.group));
            if w.compact_to.is_some() {
                self.report.compactions += 1;
            }
            if let Some(meta) = w.completed_snapshot()
                && !self.taken.remove(&(i, w.group, meta.index))
            {
                self.report.installs += 1;
            }
            let group = w.group;
            self.nodes[i].durable.write(w).map_err(|detail| Failure {
                invariant: "storage contract (the node builds only valid writes)",
                detail: format!("{} {group}: {detail}", self.nodes[i].id),
            })?;
        }
        let Some(mut node) = self.nodes[i].node.take() else {
            return Err(down(self.nodes[i].id));
        };
        let durable = p.acknowledge(&mut node);
        let mut io = SimIo {
            sim: self,
            i,
            failure: None,
        };
        durable.deliver(&mut node, &mut io);
        io.sim.nodes[i].node = Some(node);
        io.finish()
    }

    /// At the end of the run: every write in flight completes, then every running node stops,
    /// ending the requests it still holds.
    pub(super) fn stop_nodes(&mut self) -> Result<(), Failure> {
        for i in 0..self.nodes.len() {
            if let Some(p) = self.nodes[i].pending.take() {
                self.complete_write(i, p)?;
            }
            let Some(node) = self.nodes[i].node.as_mut() else {
                continue;
            };
            let outcomes = node.stop();
            let mut io = SimIo {
                sim: self,
                i,
                failure: None,
            };
            for o in outcomes {
                io.outcome(o);
            }
            io.finish()?;
        }
        self.report.indeterminate_applied = self.checker.requests.indeterminate_applied();
        self.checker
            .requests
            .finish()
            .map_err(|detail| self.checker.requests_failure(detail))
    }
}

/// A ready or a write of a node that is down: a bug in the simulator's own bookkeeping.
fn down(node: multiraft_core::NodeId) -> Failure {
    Failure {
        invariant: "simulator bookkeeping",
        detail: format!("{node}: a ready's IO for a node that is down"),
    }
}
