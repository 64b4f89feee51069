//! Not a property of Raft but a bound of the node's: at most `max_snapshot_sends` snapshot
//! transfers hold a send slot at once (docs/design.md §4.6, "Sending one"). A transfer takes
//! a slot in a ready, which then asks for its first chunk; so the bound is checked after
//! each ready that reads chunks.

use multiraft_core::Ready;

use super::{Check, Invariant, SimNode};

pub(super) struct SendSlots;

impl Invariant for SendSlots {
    fn name(&self) -> &'static str {
        "at most max_snapshot_sends snapshot transfers at once on a node"
    }

    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        let Some(n) = nodes[node]
            .node
            .as_ref()
            .filter(|_| !ready.chunk_reads.is_empty())
        else {
            return Ok(());
        };
        let sending: Vec<_> = n
            .group_ids()
            .filter_map(|g| n.replica(g).map(|r| (g, r)))
            .flat_map(|(g, r)| {
                (r.followers().into_iter())
                    .filter(|f| r.is_sending_snapshot(f.node))
                    .map(move |f| (g, f.node))
            })
            .collect();
        let bound = n.config().max_snapshot_sends;
        if sending.len() > bound {
            return Err(format!(
                "{} sends {} snapshots at once, more than {bound}: {sending:?}",
                nodes[node].id,
                sending.len()
            ));
        }
        Ok(())
    }
}
