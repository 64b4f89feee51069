//! The node IO: taking readies, hashing and tracing them, applying committed commands, and
//! completing writes into the durable image.

use multiraft_core::{Event, LoadedGroup, MessageBatch, Payload, Ready, WriteBatch};

use super::invariants::Failure;
use super::linearizability::KvOutcome;
use super::trace::TraceRec;
use super::{Ev, Phase, Simulation};

pub(super) struct Pending {
    number: u64,
    write: WriteBatch,
    send_after_write: Vec<MessageBatch>,
}

impl Simulation {
    /// Takes readies from node `i` until it has none or a write is in flight.
    pub(super) fn drive(&mut self, i: usize) -> Result<(), Failure> {
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
    pub(super) fn complete_write(&mut self, i: usize, p: Pending) -> Result<(), Failure> {
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
}
