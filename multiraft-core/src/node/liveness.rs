//! Node liveness: which peer nodes this node shares a group with, and whether each is heard
//! from. Failure detection costs one beat per node pair per tick, not one per group
//! (docs/design.md §4), which is what lets idle groups quiesce.

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::membership::Membership;
use crate::message::{Liveness, ROUND_SEQ_BITS};

/// What the node knows of one peer node.
#[derive(Debug)]
struct Peer {
    /// The tick at which a batch from it last arrived.
    last_heard: u64,
    /// Heard from within the liveness timeout (`Config::election_timeout_min_ticks`).
    live: bool,
    /// How many hosted groups have a replica there; the peer is forgotten at zero.
    groups: usize,
    /// The peer's incarnation, once heard.
    incarnation: Option<u64>,
    /// The highest round received from the peer in that incarnation: echoed back to it.
    last_round: u64,
    /// The tick before which the peer's node is known to keep hearing this node: its echo
    /// of our round sent at tick `t` gives `t + lease_ticks`.
    lease_until: u64,
    /// The tick since which that lease has held without a break: a quiesced leader counts
    /// only a peer lease that held since before it went quiet.
    leased_since: u64,
}

/// The peers of one node, in id order (the order reaches outputs: liveness beats).
#[derive(Debug, Default)]
pub(super) struct Peers {
    peers: BTreeMap<NodeId, Peer>,
}

impl Peers {
    /// Counts a hosted group with `membership`: its other replicas' nodes become (or stay)
    /// peers. A new peer starts live, heard from at `now`.
    pub(super) fn add(&mut self, me: NodeId, membership: &Membership, now: u64) {
        for n in membership.replicas() {
            if n != me {
                let p = self.peers.entry(n).or_insert(Peer {
                    last_heard: now,
                    live: true,
                    groups: 0,
                    incarnation: None,
                    last_round: 0,
                    lease_until: 0,
                    leased_since: 0,
                });
                p.groups += 1;
            }
        }
    }

    /// Forgets one hosted group with `membership`.
    pub(super) fn remove(&mut self, membership: &Membership) {
        for n in membership.replicas() {
            if let Some(p) = self.peers.get_mut(&n) {
                p.groups -= 1;
                if p.groups == 0 {
                    self.peers.remove(&n);
                }
            }
        }
    }

    /// A batch from `from` arrived at tick `now`.
    pub(super) fn heard(&mut self, from: NodeId, now: u64) {
        if let Some(p) = self.peers.get_mut(&from) {
            p.last_heard = now;
            p.live = true;
        }
    }

    /// The liveness part of a heartbeat message from `from` arrived at tick `now`. `mine`
    /// is this node's (incarnation, last round issued). Returns whether the peer restarted
    /// (a new incarnation): its groups' earlier promises and leadership are gone.
    pub(super) fn beat(
        &mut self,
        from: NodeId,
        liveness: &Liveness,
        mine: (u64, u64),
        now: u64,
        lease_ticks: u64,
    ) -> bool {
        let Some(p) = self.peers.get_mut(&from) else {
            return false;
        };
        let mut restarted = false;
        if p.incarnation != Some(liveness.incarnation) {
            // A new life: whatever its groups promised before is gone.
            restarted = p.incarnation.is_some();
            p.incarnation = Some(liveness.incarnation);
            p.last_round = 0;
            p.lease_until = 0;
        }
        p.last_round = p.last_round.max(liveness.round);
        let (incarnation, round) = mine;
        if liveness.echo_incarnation == incarnation && liveness.echo != 0 && liveness.echo <= round
        {
            let until = (liveness.echo >> ROUND_SEQ_BITS) + lease_ticks;
            if until > now {
                if p.lease_until <= now {
                    // The lease lapsed (or never held): it starts again now.
                    p.leased_since = now;
                }
                p.lease_until = p.lease_until.max(until);
            }
        }
        restarted
    }

    /// The liveness part of the next heartbeat message to `to`.
    pub(super) fn liveness_to(&self, to: NodeId, incarnation: u64, round: u64) -> Liveness {
        let p = self.peers.get(&to);
        Liveness {
            incarnation,
            round,
            echo: p.map_or(0, |p| p.last_round),
            echo_incarnation: p.and_then(|p| p.incarnation).unwrap_or(0),
        }
    }

    /// If `peer`'s lease holds at tick `now`, the tick since which it has held without a
    /// break.
    pub(super) fn leased_since(&self, peer: NodeId, now: u64) -> Option<u64> {
        self.peers
            .get(&peer)
            .filter(|p| p.lease_until > now)
            .map(|p| p.leased_since)
    }

    /// At tick `now`, declares down every live peer not heard from for more than `timeout`
    /// ticks, and returns them.
    pub(super) fn expire(&mut self, now: u64, timeout: u64) -> Vec<NodeId> {
        let mut down = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if p.live && now - p.last_heard > timeout {
                p.live = false;
                down.push(*id);
            }
        }
        down
    }

    /// Whether `peer` is live; `None` for a node that is not a peer.
    pub(super) fn live(&self, peer: NodeId) -> Option<bool> {
        self.peers.get(&peer).map(|p| p.live)
    }

    /// Every peer, in id order.
    pub(super) fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }

    /// Whether there are no peers.
    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}
