//! The simulated network: latency, loss, duplication, stragglers, batches split as the
//! QUIC transport's lanes split them, partitions, and delivery of batches.

use multiraft_core::{MessageBatch, MessageBody};

use super::app::SimApp;
use super::config::{STRAGGLER_MAX_MS, STRAGGLER_MIN_MS};
use super::invariants::Failure;
use super::trace::TraceRec;
use super::{Ev, Phase, Simulation};

impl<A: SimApp> Simulation<A> {
    fn latency_us(&mut self) -> u64 {
        let base = self.rng.range(200, 2_000);
        let max_delay = if self.phase == Phase::Faults {
            self.cfg.faults.max_delay_ms * 1000
        } else {
            0
        };
        base + self.rng.below(max_delay + 1)
    }

    pub(super) fn send(&mut self, from: usize, batch: MessageBatch) -> Result<(), Failure> {
        for m in &batch.messages {
            self.checker.on_send(&self.nodes, from, m)?;
            if matches!(&m.body, MessageBody::SnapshotAck(a) if a.refused) {
                self.report.snapshot_refusals += 1;
            }
            if matches!(&m.body, MessageBody::LogLost { .. }) {
                self.report.log_lost += 1;
            }
        }
        let faulty = self.phase == Phase::Faults;
        // Drawn only when splits are on, so seeds without them keep their draws.
        let split = self.cfg.faults.split_per_mille;
        if faulty && split > 0 && batch.messages.len() > 1 && self.rng.chance(split) {
            let pieces = lane_pieces(batch);
            // Counted only when cut: a batch all on one lane goes whole.
            self.report.batches_split += u64::from(pieces.len() > 1);
            for piece in pieces {
                self.transmit(from, piece);
            }
            return Ok(());
        }
        self.transmit(from, batch);
        Ok(())
    }

    /// Sends `batch` (or a piece of one) on its way: lost, duplicated, delayed and held
    /// back as the seed's faults say.
    fn transmit(&mut self, from: usize, batch: MessageBatch) {
        let to = batch.to.0 as usize - 1;
        let faulty = self.phase == Phase::Faults;
        if self.blocked.contains(&(from, to))
            || faulty && self.rng.chance(self.cfg.faults.loss_per_mille)
        {
            self.report.batches_dropped += 1;
            return;
        }
        if faulty && self.rng.chance(self.cfg.faults.duplicate_per_mille) {
            // Raft tolerates duplicates, so the simulator duplicates beyond what the
            // `Transport` contract allows — except forwarded proposals: their refusal is
            // definite only because a transport delivers a batch at most once (docs/design.md §5).
            let d = self.latency_us();
            let mut copy = batch.clone();
            copy.messages
                .retain(|m| !matches!(m.body, MessageBody::Propose { .. }));
            if !copy.messages.is_empty() {
                self.schedule(d, Ev::Deliver(copy));
            }
        }
        let mut d = self.latency_us();
        // Drawn only when stragglers are on, so seeds without them keep their draws.
        let stragglers = self.cfg.faults.straggler_per_mille;
        if faulty && stragglers > 0 && self.rng.chance(stragglers) {
            d += 1000 * self.rng.range(STRAGGLER_MIN_MS, STRAGGLER_MAX_MS);
            self.report.stragglers += 1;
        }
        self.schedule(d, Ev::Deliver(batch));
    }

    pub(super) fn deliver(&mut self, batch: MessageBatch) -> Result<(), Failure> {
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
}

/// `batch` cut like the QUIC transport cuts it (`multiraft-transport-quic`, its lanes):
/// snapshot chunks; appends and forwarded proposals, by group, on one of two data lanes
/// (QUIC has `data_lanes`, four by default, by a hash of the group: two are enough to part
/// groups); the rest. Each piece keeps its messages' order.
fn lane_pieces(batch: MessageBatch) -> Vec<MessageBatch> {
    const LANES: usize = 4;
    let lane = |m: &multiraft_core::Message| match m.body {
        MessageBody::InstallSnapshot { .. } => 0,
        MessageBody::Append { .. } | MessageBody::Propose { .. } => 1 + (m.group.0 % 2) as usize,
        _ => 3,
    };
    let mut pieces: Vec<Vec<multiraft_core::Message>> = vec![Vec::new(); LANES];
    for m in batch.messages {
        pieces[lane(&m)].push(m);
    }
    pieces
        .into_iter()
        .filter(|messages| !messages.is_empty())
        .map(|messages| MessageBatch {
            from: batch.from,
            to: batch.to,
            messages,
        })
        .collect()
}
