//! Pauses ([`Faults::pauses`](super::Faults)): a node's event loop stalls, as under
//! overload or when its process or machine is paused. Meanwhile it takes no input and serves
//! no tick; what reaches it waits. When it resumes, it serves one tick counting the ticks it
//! missed ([`Node::tick_late`](multiraft_core::Node::tick_late)), as the driver does, and
//! then takes what waited, in order. Its inbox has room for a few dozen batches, drawn per
//! pause; what comes beyond is dropped, as a full inbox drops it. So the node may resume
//! without a word from a leader elected meanwhile.
//!
//! Half of the stalled pauses (those of an even length) are one long turn of a loop whose
//! process runs, rather than a paused process: its beacon beats for it a few times a liveness
//! timeout once the turn has lasted a tick, up to `MAX_BEACON_TIMEOUTS` liveness timeouts
//! (`Node::beacon_batches`, docs/design.md §4.3), so its peers hear it while it serves nothing.
//!
//! In a third of the pauses the loop is busy rather than stalled: it serves its ticks and
//! steps what comes, but takes no ready, as a driver does while it steps a backlog of
//! inbound batches. Its groups' outputs wait in their buffers meanwhile, where a new
//! heartbeat, vote request or `Unheard` replaces its unsent predecessor (docs/design.md
//! §4.4), and its peers hear nothing from it but what a write already in flight releases.
//! In half of the busy pauses (those of an even length) what comes waits too, in an inbox
//! of 1–256 batches, until the pause ends: ticks served meanwhile would count its
//! peers silent but for the arrivals the node is told of before each tick
//! (`Node::batch_arrived`). Those arrivals are told in stalled pauses too, before the
//! late tick, as the driver's inbox notes them while its loop stalls.

use multiraft_core::{BEACON_WAKES_PER_TIMEOUT, GroupId, MAX_BEACON_TIMEOUTS, NodeId, ReadPolicy};

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
            // Of the length already drawn, so that the seeds' later draws stay as they were.
            self.nodes[i].backlog = us.is_multiple_of(2);
            self.nodes[i].inbox_room = 1 + (us >> 1) % PAUSE_INBOX_BATCHES;
            self.report.backlog_pauses += u64::from(self.nodes[i].backlog);
            self.report.pauses += 1;
            self.hash.u64(16);
            self.hash.u64(i as u64);
            self.note(format!(
                "{} is busy for {} ms: no ready{}",
                self.nodes[i].id,
                us / 1000,
                if self.nodes[i].backlog {
                    ", inputs wait"
                } else {
                    ""
                }
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
        // Of the length already drawn, so that the seeds' later draws stay as they were.
        let long_turn = us.is_multiple_of(2);
        self.nodes[i].turn_began_us = if long_turn { self.now_us } else { 0 };
        self.report.long_turns += u64::from(long_turn);
        self.report.pauses += 1;
        self.hash.u64(14);
        self.hash.u64(i as u64);
        self.note(format!(
            "{} pauses for {} ms{}",
            self.nodes[i].id,
            us / 1000,
            if long_turn { ", in one long turn" } else { "" }
        ));
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
    /// else waits until the node resumes. A busy node stepping a backlog holds batches
    /// alike, and nothing else. Its inbox notes the sender of every batch that reaches it,
    /// held or dropped; a batch on a link cut meanwhile never reaches it. Returns the event
    /// when it is to be handled now. A tick of a node stalled in one long turn has its
    /// beacon beat.
    pub(super) fn hold_for_pause(&mut self, ev: Ev) -> Result<Option<Ev>, Failure> {
        if let Ev::Deliver(batch) = &ev {
            let (from, to) = (batch.from.0 as usize - 1, batch.to.0 as usize - 1);
            // Until its resume is handled, not `is_busy`: that ends in the microsecond the
            // resume comes, and a batch of that microsecond overtook the backlog (review).
            let backlogged = self.nodes[to].busy_until_us != 0 && self.nodes[to].backlog;
            if self.is_paused(to) || backlogged {
                if self.blocked.contains(&(from, to)) {
                    // Held, it took the inbox's room, and crossed the cut if the partition
                    // healed before the pause ended (review).
                    self.report.batches_dropped += 1;
                    return Ok(None);
                }
                self.nodes[to].arrived.insert(batch.from);
                if !self.is_paused(to) {
                    return Ok(self.hold_batch(to, ev));
                }
            }
        }
        let node = match &ev {
            Ev::Deliver(batch) => batch.to.0 as usize - 1,
            Ev::Tick { node, .. }
            | Ev::WriteDone { node, .. }
            | Ev::SnapshotBuilt { node, .. }
            | Ev::RemoveReplica { node, .. } => *node,
            _ => return Ok(Some(ev)),
        };
        if !self.is_paused(node) {
            return Ok(Some(ev));
        }
        if let Ev::Tick { node, incarnation } = ev {
            if incarnation == self.nodes[node].incarnation {
                self.nodes[node].missed_ticks += 1;
                let next = self.nodes[node].tick_us;
                self.schedule(next, Ev::Tick { node, incarnation });
                self.beacon_beats(node)?;
            }
            return Ok(None);
        }
        if let Ev::Deliver(_) = ev {
            return Ok(self.hold_batch(node, ev));
        }
        self.nodes[node].held.push(ev);
        Ok(None)
    }

    /// Node `i`, stalled in one long turn of its loop, has its beacon beat, as the driver's
    /// does: once the turn has lasted a tick, `BEACON_WAKES_PER_TIMEOUT` times a liveness
    /// timeout (rounded up to whole ticks, at least one), until it has lasted
    /// `MAX_BEACON_TIMEOUTS` liveness timeouts.
    fn beacon_beats(&mut self, i: usize) -> Result<(), Failure> {
        let Some(node) = self.nodes[i].node.as_ref().filter(|_| self.beacon_on(i)) else {
            return Ok(());
        };
        let timeout = node.config().election_timeout_min_ticks;
        let period = u64::from(timeout.div_ceil(BEACON_WAKES_PER_TIMEOUT).max(1));
        if !self.nodes[i].missed_ticks.is_multiple_of(period) {
            return Ok(());
        }
        let batches = node.beacon_batches();
        self.report.beacon_batches += batches.len() as u64;
        for batch in batches {
            self.send(i, batch)?;
        }
        Ok(())
    }

    /// Whether node `i` is up and stalled in one long turn of its loop that has lasted a
    /// tick and at most `MAX_BEACON_TIMEOUTS` liveness timeouts: its beacon beats.
    fn beacon_on(&self, i: usize) -> bool {
        let (began, tick_us) = (self.nodes[i].turn_began_us, self.nodes[i].tick_us);
        let Some(node) = self.nodes[i].node.as_ref().filter(|_| began != 0) else {
            return false;
        };
        let timeout_us = tick_us * u64::from(node.config().election_timeout_min_ticks);
        let turn = self.now_us - began;
        turn >= tick_us && turn <= timeout_us * u64::from(MAX_BEACON_TIMEOUTS)
    }

    /// Holds a batch for `node` if its inbox has room, else drops it.
    fn hold_batch(&mut self, node: usize, ev: Ev) -> Option<Ev> {
        if self.nodes[node].inbox_room == 0 {
            self.report.batches_dropped += 1;
            return None;
        }
        self.nodes[node].inbox_room -= 1;
        self.nodes[node].held.push(ev);
        None
    }

    /// Node `i` (up) serves a tick that comes `missed` ticks late, told first, as the
    /// driver tells it, the senders of the batches that reached its inbox since its last
    /// tick; counts the peers it declares down.
    pub(super) fn serve_tick(&mut self, i: usize, missed: u64) {
        let backlogged = self.nodes[i].busy_until_us != 0 && self.nodes[i].backlog;
        let arrived = std::mem::take(&mut self.nodes[i].arrived);
        // The peers whose beacons beat now, and which of them this node holds live.
        let beaten: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&j| j != i && self.beacon_on(j))
            .map(|j| self.nodes[j].id)
            .filter(|id| self.nodes[i].node.as_ref().and_then(|n| n.peer_live(*id)) == Some(true))
            .collect();
        let node = self.nodes[i].node.as_mut().expect("up");
        for from in arrived {
            self.hash.u64(17);
            self.hash.u64(from.0);
            node.batch_arrived(from);
        }
        let before = node.stats().peers_declared_down;
        node.tick_late(missed);
        let declared = node.stats().peers_declared_down - before;
        self.report.peers_declared_down += declared;
        let beaten_down = beaten.iter().filter(|p| node.peer_live(**p) == Some(false));
        self.report.declared_down_while_beaten += beaten_down.count() as u64;
        if backlogged && declared > 0 {
            self.report.declared_down_in_backlog += declared;
            let id = self.nodes[i].id;
            self.note(format!(
                "{id}, stepping a backlog, declared {declared} down"
            ));
        }
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
            // A busy loop takes the readies that waited, then the backlog that waited.
            self.nodes[i].busy_until_us = 0;
            self.nodes[i].backlog = false;
            self.note(format!("{} is no longer busy", self.nodes[i].id));
            for ev in std::mem::take(&mut self.nodes[i].held) {
                self.schedule(0, ev);
            }
            return self.drive(i);
        }
        if sn.incarnation != incarnation || sn.paused_until_us == 0 || !self.is_up(i) {
            return Ok(()); // crashed meanwhile, or resumed already (at the heal)
        }
        self.nodes[i].paused_until_us = 0;
        self.nodes[i].turn_began_us = 0;
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
        self.serve_tick(i, missed - 1);
        let node = self.nodes[i].node.as_mut().expect("up");
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
