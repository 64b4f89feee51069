//! Fault injection: crashes, restarts from the durable image, and partitions (and, in the
//! same chaos step, leadership transfers and drains: `transfers.rs`).

use multiraft_core::{GroupId, Node, ProposalId};

use super::app::SimApp;
use super::changes::ABANDONED_JOIN_CHECKS;
use super::invariants::{Failure, sorted_groups};
use super::{Ev, Simulation};

impl<A: SimApp> Simulation<A> {
    /// The node loses its memory and any write in flight.
    pub(super) fn take_down(&mut self, i: usize) {
        // What waited in its inbox is lost with it.
        let held = self.nodes[i].held.iter();
        self.report.batches_dropped += held.filter(|e| matches!(e, Ev::Deliver(_))).count() as u64;
        let sn = &mut self.nodes[i];
        sn.node = None;
        sn.pending = None;
        sn.paused_until_us = 0;
        sn.turn_began_us = 0;
        sn.busy_until_us = 0;
        sn.backlog = false;
        sn.missed_ticks = 0;
        sn.held.clear();
        sn.arrived.clear();
        sn.incarnation += 1;
        self.app_touched.extend(self.replicas[i].keys().copied());
        self.replicas[i].clear();
        self.applied_to[i].clear();
        self.taken.retain(|(n, _, _)| *n != i);
        self.restoring.retain(|(n, _), _| *n != i);
        let me = self.nodes[i].id;
        self.checker.on_crash(i);
        self.checker.requests.crashed(me);
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
        // Its reads were never served: they changed nothing and leave the history; its
        // transfers end with it (the request-outcome invariant marks both crashed).
        self.pending_reads.retain(|id, _| id.node != me);
        self.pending_transfers.retain(|id| id.node != me);
        // Its changes end indeterminate: a replica that joined for one is the application's
        // to delete if no leader adds it (`MultiRaft::join_group`).
        let mut ended: Vec<ProposalId> = self
            .pending_changes
            .keys()
            .filter(|id| id.node == me)
            .copied()
            .collect();
        // In a fixed order: the checks are scheduled events.
        ended.sort_unstable();
        for id in ended {
            if let Some((_, Some((group, node)))) = self.pending_changes.remove(&id) {
                self.check_abandoned_join(node, group, id, ABANDONED_JOIN_CHECKS);
            }
        }
    }

    pub(super) fn restart(&mut self, i: usize) -> Result<(), Failure> {
        let incarnation = self.nodes[i].incarnation;
        let seed = self.node_seed(i, incarnation);
        let mut node = Node::new(self.nodes[i].id, self.cfg.core.clone(), seed).expect("validated");
        // Each life's request ids start past the last one's: entries re-applied from the
        // log carry the ids of earlier lives and must answer nothing of this one.
        node.start_requests_at(incarnation << 40);
        node.restore(self.nodes[i].durable.groups.values().cloned().collect())
            .map_err(|e| Failure {
                invariant: "restart from durable state",
                detail: e.to_string(),
            })?;
        for g in sorted_groups(&node) {
            self.touched.push((i, g));
        }
        // The node hosts what its durable image held: a creation not yet durable at the
        // crash is gone, a deletion not yet durable is undone.
        for (g, hosts) in self.groups.iter_mut() {
            hosts.retain(|h| *h != i);
            if node.replica(*g).is_some() {
                hosts.push(i);
                hosts.sort_unstable();
            }
        }
        self.nodes[i].node = Some(node);
        self.hash.u64(5);
        self.hash.u64(i as u64);
        self.note(format!(
            "{} restarts from its durable image",
            self.nodes[i].id
        ));
        self.checker.on_restart(&self.nodes, i)?;
        // A replica it joined for a change that ended while it was down: the checks
        // scheduled then were for its last life.
        let mut ended: Vec<(GroupId, ProposalId)> = self
            .joins
            .iter()
            .filter(|((n, _), (id, _))| *n == i && !self.pending_changes.contains_key(id))
            .map(|((_, g), (id, _))| (*g, *id))
            .collect();
        ended.sort_unstable();
        for (g, id) in ended {
            self.check_abandoned_join(i, g, id, ABANDONED_JOIN_CHECKS);
        }
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

    pub(super) fn chaos(&mut self) -> Result<(), Failure> {
        let n = self.nodes.len();
        if self.cfg.faults.crashes && self.rng.chance(self.cfg.faults.crash_per_mille) {
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
        let partition = self.cfg.faults.partition_per_mille;
        if self.cfg.faults.partitions
            && self.blocked.is_empty()
            && n > 1
            && self.rng.chance(partition)
        {
            self.partition();
            let after = self.rng.range(300_000, 6_000_000);
            let epoch = self.partition_epoch;
            self.schedule(after, Ev::HealPartition { epoch });
        }
        self.pause_random();
        self.move_leadership()?;
        self.change_membership_random()
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
}
