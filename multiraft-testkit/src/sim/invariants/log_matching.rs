//! **Log matching**: if two logs contain an entry with the same index and term, the logs are
//! identical in all entries up through that index (Raft §5.3, Figure 3).
//!
//! Checked through a registry of every (group, index, term) ever written by any replica:
//! the entry and the term of the entry before it. Two replicas writing the same (index,
//! term) must write the same entry with the same predecessor term; by induction on the index
//! that is exactly the log matching property, checked pairwise for every pair of replicas
//! without comparing whole logs.

use std::collections::HashMap;

use multiraft_core::{Entry, GroupId, Ready};

use super::{Check, Invariant, SimNode};

#[derive(Default)]
pub(crate) struct LogMatching {
    seen: HashMap<(GroupId, u64, u64), (Entry, u64)>,
}

impl LogMatching {
    fn register(&mut self, group: GroupId, e: &Entry, prev_term: u64) -> Check {
        match self.seen.get(&(group, e.index, e.term)) {
            None => {
                self.seen
                    .insert((group, e.index, e.term), (e.clone(), prev_term));
                Ok(())
            }
            Some((other, other_prev)) => {
                if other != e {
                    Err(format!(
                        "{group}: two different entries at index {} term {}: {:?} and {:?}",
                        e.index, e.term, other.payload, e.payload
                    ))
                } else if *other_prev != prev_term {
                    Err(format!(
                        "{group}: entries at index {} term {} follow different terms ({} and {}) at index {}",
                        e.index,
                        e.term,
                        other_prev,
                        prev_term,
                        e.index - 1
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Registers a whole log, consecutive from index `first`, whose previous entry (the
    /// last compacted one) has term `prev_term`.
    pub(crate) fn check_log(
        &mut self,
        group: GroupId,
        first: u64,
        mut prev_term: u64,
        log: &[Entry],
    ) -> Check {
        for (i, e) in log.iter().enumerate() {
            if e.index != first + i as u64 {
                return Err(format!(
                    "{group}: log has index {} at position {}",
                    e.index,
                    first + i as u64
                ));
            }
            self.register(group, e, prev_term)?;
            prev_term = e.term;
        }
        Ok(())
    }
}

impl Invariant for LogMatching {
    fn name(&self) -> &'static str {
        "log matching (Raft §5.3)"
    }

    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        let n = nodes[node].node.as_ref().expect("running");
        for w in &ready.write.groups {
            let mut prev: Option<&Entry> = None;
            for e in &w.entries {
                let prev_term = if let Some(p) = prev {
                    p.term
                } else if e.index <= 1 {
                    0
                } else {
                    let replica = n.replica(w.group);
                    match replica.and_then(|r| r.term_at(e.index - 1)) {
                        Some(p) => p,
                        None => {
                            return Err(format!(
                                "{}: {} writes index {} but holds no entry {}",
                                w.group,
                                nodes[node].id,
                                e.index,
                                e.index - 1
                            ));
                        }
                    }
                };
                if let Some(p) = prev
                    && e.index != p.index + 1
                {
                    return Err(format!(
                        "{}: {} writes non-consecutive entries {} then {}",
                        w.group, nodes[node].id, p.index, e.index
                    ));
                }
                self.register(w.group, e, prev_term)?;
                prev = Some(e);
            }
        }
        Ok(())
    }
}
