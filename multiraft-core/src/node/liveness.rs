//! Node liveness: which peer nodes this node shares a group with, and whether each is heard
//! from. Failure detection costs one beat per node pair per tick, not one per group
//! (docs/design.md §4), which is what lets idle groups quiesce.

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::membership::Membership;

/// What the node knows of one peer node.
#[derive(Debug)]
struct Peer {
    /// The tick at which a batch from it last arrived.
    last_heard: u64,
    /// Heard from within the liveness timeout (`Config::election_timeout_min_ticks`).
    live: bool,
    /// How many hosted groups have a replica there; the peer is forgotten at zero.
    groups: usize,
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
