//! Leadership moved on purpose, in the fault mix: a leader hands one group to another voter
//! ([`Node::transfer_leader`]), or a node hands off every group it leads ([`Node::drain`]).
//! Each transfer the node takes is a request that must end exactly once (done or failed),
//! and one reported done must have left its target leading (the request-outcome invariant).

use multiraft_core::{GroupId, Node, NodeId, ProposalId, RequestId, TransferError};

use super::Simulation;
use super::app::SimApp;
use super::invariants::{Failure, Kind, proposal};

impl<A: SimApp> Simulation<A> {
    /// The chaos step's transfers and drains, each at its rate.
    pub(super) fn move_leadership(&mut self) -> Result<(), Failure> {
        let faults = &self.cfg.faults;
        let (transfer, drain) = (faults.transfer_per_mille, faults.drain_per_mille);
        if transfer > 0 && self.rng.chance(transfer) {
            self.transfer_random()?;
        }
        if drain > 0 && self.rng.chance(drain) {
            self.drain_random()?;
        }
        Ok(())
    }

    /// The leader of a random group (the live member that believes it leads in the highest
    /// term; a stale one's transfer just fails) hands it to a random other member.
    fn transfer_random(&mut self) -> Result<(), Failure> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let g = GroupId(1 + self.rng.below(self.groups.len() as u64));
        let Some(i) = self.believed_leader(g) else {
            return Ok(());
        };
        let members = self.groups[&g].clone();
        let others: Vec<usize> = members.into_iter().filter(|m| *m != i).collect();
        if others.is_empty() {
            return Ok(());
        }
        let to = self.nodes[others[self.rng.below(others.len() as u64) as usize]].id;
        let node = self.nodes[i].node.as_mut().expect("up");
        let term = term_of(node, g);
        let result = node.transfer_leader(g, to);
        self.note(format!("{} transfers {g} to {to}", self.nodes[i].id));
        self.took_transfer(i, g, to, term, result)?;
        self.drive(i)
    }

    /// A random live node drains: every group it leads goes to another live voter.
    fn drain_random(&mut self) -> Result<(), Failure> {
        let n = self.nodes.len() as u64;
        let i = self.rng.below(n) as usize;
        if self.is_paused(i) {
            return Ok(());
        }
        let Some(node) = self.nodes[i].node.as_mut() else {
            return Ok(());
        };
        let terms: Vec<(GroupId, u64)> = super::invariants::sorted_groups(node)
            .into_iter()
            .map(|g| (g, term_of(node, g)))
            .collect();
        // In group order (`Node::led_groups`), so the run does not depend on hash order.
        let started = node.drain();
        self.report.drains += 1;
        self.note(format!(
            "{} drains ({} groups led)",
            self.nodes[i].id,
            started.len()
        ));
        for (g, result) in started {
            let term = terms
                .iter()
                .find(|(t, _)| *t == g)
                .map_or(0, |(_, term)| *term);
            // The target the node chose (the request names it only through the group).
            let to = self.nodes[i]
                .node
                .as_ref()
                .and_then(|n| n.replica(g)?.transfer_target())
                .filter(|_| result.is_ok())
                .unwrap_or(self.nodes[i].id);
            self.took_transfer(i, g, to, term, result)?;
        }
        self.drive(i)
    }

    /// Node `i` answered a transfer of `g` to `to`, started in `term`, with `result`.
    fn took_transfer(
        &mut self,
        i: usize,
        g: GroupId,
        to: NodeId,
        term: u64,
        result: Result<RequestId, TransferError>,
    ) -> Result<(), Failure> {
        let request = match result {
            Ok(request) => request,
            Err(_) => {
                self.report.transfers_refused += 1;
                return Ok(());
            }
        };
        let id: ProposalId = proposal(self.nodes[i].id, request);
        self.hash.u64(12);
        self.hash.u64(g.0);
        self.hash.u64(id.seq);
        self.report.transfers_started += 1;
        self.checker
            .requests
            .took_kind(id, g, Kind::Transfer { to, term })
            .map_err(|detail| self.checker.requests_failure(detail))?;
        self.pending_transfers.insert(id);
        self.touched.push((i, g));
        Ok(())
    }
}

/// The term of `group` on `node` (0 if it does not host it).
fn term_of(node: &Node, group: GroupId) -> u64 {
    node.replica(group).map_or(0, |r| r.leadership().0)
}
