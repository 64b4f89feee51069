//! The client side: key-value proposals and the linearizability check of their history.

use multiraft_core::GroupId;

use super::Simulation;
use super::invariants::{Failure, proposal};
use super::kv;
use super::linearizability::{KvOp, KvOperation, KvOutcome, Linearizability, check_kv};

impl Simulation {
    /// Proposes to `group` through the node believed to lead it (any live member otherwise,
    /// which forwards).
    pub(super) fn propose_to(&mut self, group: GroupId) -> Result<(), Failure> {
        self.propose_through(group, None, true)
    }

    /// Proposes to `group` through node `via` (by default the node believed to lead it, any
    /// live member otherwise); `drive` lets the node take a ready at once, as a lone client
    /// would see it.
    fn propose_through(
        &mut self,
        group: GroupId,
        via: Option<usize>,
        drive: bool,
    ) -> Result<(), Failure> {
        let key = self.rng.below(kv::KEYS_PER_GROUP);
        let op = match self.rng.below(10) {
            0..=3 => KvOp::Put {
                key,
                value: self.rng.below(8),
            },
            4..=6 => KvOp::Get { key },
            _ => KvOp::Cas {
                key,
                expected: if self.rng.chance(200) {
                    None
                } else {
                    Some(self.rng.below(8))
                },
                new: self.rng.below(8),
            },
        };
        let members = self.groups[&group].clone();
        let hinted = self
            .leader_hint
            .get(&group)
            .and_then(|(_, l)| *l)
            .map(|l| l.0 as usize - 1)
            .filter(|i| self.is_up(*i));
        let target = match via.or(hinted) {
            Some(i) => i,
            None => {
                let up: Vec<usize> = members.into_iter().filter(|i| self.is_up(*i)).collect();
                if up.is_empty() {
                    return Ok(());
                }
                up[self.rng.below(up.len() as u64) as usize]
            }
        };
        let data = kv::encode(&op);
        self.report.proposals += 1;
        let me = self.nodes[target].id;
        let node = self.nodes[target].node.as_mut().expect("up");
        let global = match op {
            KvOp::Put { key, value } => KvOp::Put {
                key: kv::global_key(group, key),
                value,
            },
            KvOp::Get { key } => KvOp::Get {
                key: kv::global_key(group, key),
            },
            KvOp::Cas { key, expected, new } => KvOp::Cas {
                key: kv::global_key(group, key),
                expected,
                new,
            },
        };
        let record = KvOperation::new(
            me.0,
            global,
            self.now_us,
            u64::MAX,
            KvOutcome::Indeterminate,
        );
        match node.propose(group, data) {
            Ok(request) => {
                let id = proposal(me, request);
                self.hash.u64(9);
                self.hash.u64(id.seq);
                self.checker
                    .requests
                    .took(id, group)
                    .map_err(|detail| self.checker.requests_failure(detail))?;
                self.pending_proposals.insert(id, self.history.len());
                self.history.push(record);
                self.touched.push((target, group));
                if drive { self.drive(target) } else { Ok(()) }
            }
            Err(_) => {
                self.report.rejected += 1;
                Ok(())
            }
        }
    }

    pub(super) fn propose_random(&mut self) -> Result<(), Failure> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let g = GroupId(1 + self.rng.below(self.groups.len() as u64));
        if self.rng.chance(100) {
            // A burst: several clients propose through one member before it takes a ready,
            // so a follower forwards them in one message and a leader appends them in one
            // ready — the batched paths, which one proposal at a time never reaches.
            let up: Vec<usize> = self.groups[&g]
                .iter()
                .copied()
                .filter(|i| self.is_up(*i))
                .collect();
            if up.is_empty() {
                return Ok(());
            }
            let via = up[self.rng.below(up.len() as u64) as usize];
            let count = self.rng.range(2, 4);
            for k in 1..=count {
                self.propose_through(g, Some(via), k == count)?;
            }
            return Ok(());
        }
        self.propose_to(g)
    }

    /// The clients' history against the key-value model (Wing–Gong–Lowe).
    pub(super) fn check_linearizability(&mut self) -> Result<(), Failure> {
        match check_kv(&self.history) {
            Linearizability::Ok => Ok(()),
            Linearizability::Unknown { .. } if self.cfg.require_linearizability_verdict => {
                Err(Failure {
                    invariant: "a linearizability verdict (require_linearizability_verdict)",
                    detail: "the search gave up: too many concurrent operations on one key"
                        .to_string(),
                })
            }
            Linearizability::Unknown { .. } => {
                self.report.linearizability_unknown += 1;
                Ok(())
            }
            Linearizability::Violation { key } => {
                let ops: Vec<String> = self
                    .history
                    .iter()
                    .filter(|o| o.op.key() == key && o.outcome != KvOutcome::Failed)
                    .take(30)
                    .map(|o| {
                        format!(
                            "n{} {:?} [{}..{}] {:?}",
                            o.client,
                            o.op,
                            o.invoked_at,
                            if o.returned_at == u64::MAX {
                                "?".to_string()
                            } else {
                                o.returned_at.to_string()
                            },
                            o.outcome
                        )
                    })
                    .collect();
                Err(Failure {
                    invariant: "linearizability of the key-value clients (Wing–Gong–Lowe)",
                    detail: format!(
                        "group {} key {}: no linearization of: {}",
                        key / kv::KEYS_PER_GROUP,
                        key % kv::KEYS_PER_GROUP,
                        ops.join("; ")
                    ),
                })
            }
        }
    }
}
