//! Pauses ([`Faults::pauses`](super::Faults)): a node's event loop stalls, as under
//! overload or when its process or machine is paused. Meanwhile it takes no input and serves
//! no tick; what reaches it waits. When it resumes, it serves one tick counting the ticks it
//! missed ([`Node::tick_late`](multiraft_core::Node::tick_late)), as the driver does, and
//! then takes what waited, in order. Its inbox has room for a few dozen batches, drawn per
//! pause; what comes beyond is dropped, as a full inbox drops it. So the node may resume
//! without a word from a leader elected meanwhile.
//!
//! In a third of the pauses the loop is busy rather than stalled: it serves its ticks and
//! steps what comes, but takes no ready, as a driver does while it steps a backlog of
//! inbound batches. Its groups' outputs wait in their buffers meanwhile, where a new
//! heartbeat, vote request or `Unheard` replaces its unsent predecessor (docs/design.md
//! §4.4), and its peers hear nothing from it but what a write already in flight releases.

use multiraft_core::{GroupId, ReadPolicy};

use super::app::SimApp;
use super::invariants::{Failure, sorted_groups};
use super::{Ev, Simulation};

/// The chance, at each chaos step, that a random node pauses, in per mille.
pub const DEFAULT_PAUSE_PER_MILLE: u32 = 100;

/// How long a pause lasts, in simulated microseconds: from a few ticks to a few election
/// timeouts at the default tick, so that the node's peers declare it down and its groups
/// elect other leaders while it sleeps, in some pauses and not in others.
const PAUSE_US: (u64, u64) = (100_000, 3_000_000);

/// The most batches a paused node's inbox holds, drawn per pause (none in a third of the
/// stalled pauses, where every batch that comes is dropped): up to a good part of what a pause
/// brings.
const PAUSE_INBOX_BATCHES: u64 = 256;

impl<A: SimApp> Simulation<A> {
    /// Whether node `i` is paused now.
    pub(super) fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused_until_us > self.now_us
    }

    /// Whether node `i`'s loop is busy now: it takes no ready.
    pub(super) fn is_busy(&self, i: usize) -> bool {
        self.nodes[i].busy_until_us > self.now_us
    }

    /// Whether a client or operator can call node `i` now: it is up and not paused (a
    /// call to a paused node would wait; the simulator's clients call another).
    pub(super) fn can_call(&self, i: usize) -> bool {
        self.is_up(i) && !self.is_paused(i)
    }

    /// The chaos step's pause, at its rate: a random node that is up stalls.
    pub(super) fn pause_random(&mut self) {
        if !self.cfg.faults.pauses || !self.rng.chance(DEFAULT_PAUSE_PER_MILLE) {
            return;
        }
        let i = self.rng.below(self.nodes.len() as u64) as usize;
        // Not one already busy: a busy pause ending in the same microsecond would drive a
        // stalled node (review).
        if !self.can_call(i) || self.nodes[i].busy_until_us != 0 {
            return;
        }
        let us = self.rng.range(PAUSE_US.0, PAUSE_US.1);
        let incarnation = self.nodes[i].incarnation;
        if self.rng.chance(333) {
            self.nodes[i].busy_until_us = self.now_us + us;
            self.report.pauses += 1;
            self.hash.u64(16);
            self.hash.u64(i as u64);
            self.note(format!(
                "{} is busy for {} ms: no ready",
                self.nodes[i].id,
                us / 1000
            ));
            let resume = Ev::Resume {
                node: i,
                incarnation,
            };
            self.schedule(us, resume);
            return;
        }
        // A full inbox in a third of the stalled pauses: the node hears nothing of what happened.
        let room = if self.rng.chance(333) {
            0
        } else {
            self.rng.range(1, PAUSE_INBOX_BATCHES)
        };
        self.nodes[i].paused_until_us = self.now_us + us;
        self.nodes[i].missed_ticks = 0;
        self.nodes[i].inbox_room = room;
        self.report.pauses += 1;
        self.hash.u64(14);
        self.hash.u64(i as u64);
        self.note(format!("{} pauses for {} ms", self.nodes[i].id, us / 1000));
        self.schedule(
            us,
            Ev::Resume {
                node: i,
                incarnation,
            },
        );
    }

    /// Holds `ev` back if it is for a paused node: a tick is counted as missed (and the
    /// next one scheduled), a batch beyond the room left in its inbox is dropped, anything
    /// else waits until the node resumes. Returns the event when it is to be handled now.
    pub(super) fn hold_for_pause(&mut self, ev: Ev) -> Option<Ev> {
        let node = match &ev {
            Ev::Deliver(batch) => batch.to.0 as usize - 1,
            Ev::Tick { node, .. }
            | Ev::WriteDone { node, .. }
            | Ev::SnapshotBuilt { node, .. }
            | Ev::RemoveReplica { node, .. } => *node,
            _ => return Some(ev),
        };
        if !self.is_paused(node) {
            return Some(ev);
        }
        if let Ev::Tick { node, incarnation } = ev {
            if incarnation == self.nodes[node].incarnation {
                self.nodes[node].missed_ticks += 1;
                let next = self.nodes[node].tick_us;
                self.schedule(next, Ev::Tick { node, incarnation });
            }
            return None;
        }
        if let Ev::Deliver(_) = ev {
            if self.nodes[node].inbox_room == 0 {
                self.report.batches_dropped += 1;
                return None;
            }
            self.nodes[node].inbox_room -= 1;
        }
        self.nodes[node].held.push(ev);
        None
    }

    /// Node `i` (in life `incarnation`) resumes: one tick for the ticks it missed, then
    /// what waited comes in the order it came.
    pub(super) fn resume(&mut self, i: usize, incarnation: u64) -> Result<(), Failure> {
        let sn = &self.nodes[i];
        if sn.incarnation == incarnation
            && sn.busy_until_us != 0
            && sn.paused_until_us == 0
            && self.is_up(i)
        {
            // A busy loop takes the readies that waited.
            self.nodes[i].busy_until_us = 0;
            self.note(format!("{} is no longer busy", self.nodes[i].id));
            return self.drive(i);
        }
        if sn.incarnation != incarnation || sn.paused_until_us == 0 || !self.is_up(i) {
            return Ok(()); // crashed meanwhile, or resumed already (at the heal)
        }
        self.nodes[i].paused_until_us = 0;
        let missed = std::mem::take(&mut self.nodes[i].missed_ticks);
        self.note(format!(
            "{} resumes ({missed} ticks missed)",
            self.nodes[i].id
        ));
        // What waited comes now, in the order it came (after this event), and then the
        // clients that waited for the node: the driver takes calls after the inbox.
        for ev in std::mem::take(&mut self.nodes[i].held) {
            self.schedule(0, ev);
        }
        self.schedule(
            0,
            Ev::WaitingReads {
                node: i,
                incarnation,
            },
        );
        if missed == 0 {
            return Ok(());
        }
        self.hash.u64(15);
        self.hash.u64(i as u64);
        let node = self.nodes[i].node.as_mut().expect("up");
        node.tick_late(missed - 1);
        for g in sorted_groups(node) {
            self.touched.push((i, g));
        }
        self.drive(i)
    }

    /// The reads that waited for node `i` while it was paused: through it, under a lease,
    /// of half the groups it hosts. The likeliest moment for a stale lease read: the node
    /// may have led before the pause, and not heard yet of a leader elected meanwhile.
    pub(super) fn waiting_reads(&mut self, i: usize, incarnation: u64) -> Result<(), Failure> {
        if self.nodes[i].incarnation != incarnation || !self.can_call(i) {
            return Ok(());
        }
        let hosted: Vec<GroupId> = (self.groups.iter())
            .filter(|(_, hosts)| hosts.contains(&i))
            .map(|(g, _)| *g)
            .collect();
        for g in hosted {
            if self.rng.chance(500)
                && let Some(query) = self.app.next_query(g, &mut self.rng)
            {
                self.read_via(g, i, ReadPolicy::Lease, query)?;
            }
        }
        Ok(())
    }

    /// Every pause ends now (the liveness phase: every fault heals).
    pub(super) fn resume_all(&mut self) -> Result<(), Failure> {
        for i in 0..self.nodes.len() {
            if self.is_paused(i) || self.nodes[i].busy_until_us != 0 {
                let incarnation = self.nodes[i].incarnation;
                self.resume(i, incarnation)?;
            }
        }
        Ok(())
    }
}
