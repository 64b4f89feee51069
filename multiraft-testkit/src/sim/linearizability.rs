//! A linearizability checker for a key-value store: the Wing–Gong–Lowe algorithm (Wing &
//! Gong 1993, with Lowe's memoisation, "Testing for linearizability", 2017), as in Knossos
//! and Porcupine.
//!
//! A history is a list of [`KvOperation`]s, each with the time its client invoked it, the
//! time it returned, and its [`KvOutcome`]:
//!
//! - `Ok(result)`: it took effect, once, between invocation and return;
//! - `Failed`: it definitely did not take effect (a definite rejection), so it is ignored;
//! - `Indeterminate`: it may or may not have taken effect, at any time after invocation
//!   (a timeout, a crash, a leader change after the entry was appended). Its return time is
//!   ignored.
//!
//! Operations on different keys never constrain each other (linearizability is *local*,
//! Herlihy & Wing 1990 §3.5), so the history is split per key and each key is checked on its
//! own, which keeps the search small.
//!
//! The search lines up invocations and returns by time and tries, depth first, to linearize
//! each pending operation whose invocation has been seen, backtracking when a return is
//! reached before its operation was linearized. Memoisation: a (set of linearized
//! operations, state) pair already explored is never explored again. An indeterminate
//! operation has no return event, so the search may leave it out; a history is accepted
//! once every *completed* operation is linearized.
//!
//! ```
//! use multiraft_testkit::sim::linearizability::{
//!     KvOp, KvOperation, KvOutcome, KvResult, Linearizability, check_kv,
//! };
//!
//! let history = vec![
//!     KvOperation::new(1, KvOp::Put { key: 1, value: 7 }, 0, 10, KvOutcome::Ok(KvResult::Put)),
//!     // Reads 7 after the write returned: fine.
//!     KvOperation::new(2, KvOp::Get { key: 1 }, 11, 12, KvOutcome::Ok(KvResult::Get(Some(7)))),
//! ];
//! assert_eq!(check_kv(&history), Linearizability::Ok);
//!
//! // Reading nothing after the write returned is not linearizable.
//! let stale = vec![
//!     history[0].clone(),
//!     KvOperation::new(2, KvOp::Get { key: 1 }, 11, 12, KvOutcome::Ok(KvResult::Get(None))),
//! ];
//! assert_eq!(check_kv(&stale), Linearizability::Violation { key: 1 });
//! ```

use std::collections::{BTreeMap, HashSet};

/// A key of the model store.
pub type Key = u64;
/// A value of the model store.
pub type Value = u64;

/// An operation on the key-value model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Key,
        /// The new value.
        value: Value,
    },
    /// Reads `key`.
    Get {
        /// The key.
        key: Key,
    },
    /// Sets `key` to `new` if it currently holds `expected` (`None`: absent).
    Cas {
        /// The key.
        key: Key,
        /// The value the key must hold.
        expected: Option<Value>,
        /// The value to set.
        new: Value,
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> Key {
        match self {
            KvOp::Put { key, .. } | KvOp::Get { key } | KvOp::Cas { key, .. } => *key,
        }
    }
}

/// What a completed operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvResult {
    /// A put completed.
    Put,
    /// A get returned this value (`None`: absent).
    Get(Option<Value>),
    /// A compare-and-set succeeded (`true`) or found another value (`false`).
    Cas(bool),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutcome {
    /// It took effect with this result.
    Ok(KvResult),
    /// It definitely did not take effect.
    Failed,
    /// It may or may not have taken effect.
    Indeterminate,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvOperation {
    /// The client that issued it (for reports; the checker does not need it).
    pub client: u64,
    /// The operation.
    pub op: KvOp,
    /// When the client invoked it.
    pub invoked_at: u64,
    /// When it returned (ignored unless the outcome is `Ok`).
    pub returned_at: u64,
    /// How it ended.
    pub outcome: KvOutcome,
}

impl KvOperation {
    /// An operation record.
    pub fn new(
        client: u64,
        op: KvOp,
        invoked_at: u64,
        returned_at: u64,
        outcome: KvOutcome,
    ) -> KvOperation {
        KvOperation {
            client,
            op,
            invoked_at,
            returned_at,
            outcome,
        }
    }
}

/// The verdict of [`check_kv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linearizability {
    /// Some order of the operations, each within its real-time bounds, explains every
    /// result.
    Ok,
    /// No such order exists for the operations on `key`.
    Violation {
        /// The first key (in key order) whose history is shown not linearizable.
        key: Key,
    },
    /// No key is shown not linearizable, but the search for `key` (the first such, in key
    /// order) gave up after [`SEARCH_STEPS_MAX`] steps.
    Unknown {
        /// The key.
        key: Key,
    },
}

/// Search steps per key before [`check_kv`] gives up with [`Linearizability::Unknown`].
/// The search is exponential in the worst case (the problem is NP-complete); memoisation
/// keeps real histories far below this, and the limit keeps a pathological one from
/// hanging a test.
pub const SEARCH_STEPS_MAX: u64 = 10_000_000;

/// Checks a key-value history for linearizability, key by key.
pub fn check_kv(history: &[KvOperation]) -> Linearizability {
    let mut per_key: BTreeMap<Key, Vec<&KvOperation>> = BTreeMap::new();
    for op in history {
        // A failed operation took no effect, and a read that never returned neither changed
        // the value nor showed one: neither constrains any order. Kept, each unanswered
        // read doubled the states the search can visit.
        let unanswered_read =
            matches!(op.op, KvOp::Get { .. }) && op.outcome == KvOutcome::Indeterminate;
        if op.outcome != KvOutcome::Failed && !unanswered_read {
            per_key.entry(op.op.key()).or_default().push(op);
        }
    }
    // Every key is checked, even past one whose search gave up: a violation anywhere
    // outranks an undecided key.
    let mut undecided = None;
    for (key, ops) in per_key {
        match check_key(&ops) {
            Some(true) => {}
            Some(false) => return Linearizability::Violation { key },
            None => {
                undecided.get_or_insert(key);
            }
        }
    }
    match undecided {
        Some(key) => Linearizability::Unknown { key },
        None => Linearizability::Ok,
    }
}

/// The model: applies `op` with its outcome to `state`. `None` if the outcome is impossible
/// from `state`.
fn step(state: Option<Value>, op: &KvOp, outcome: &KvOutcome) -> Option<Option<Value>> {
    let known = match outcome {
        KvOutcome::Ok(r) => Some(r),
        _ => None,
    };
    match (op, known) {
        (KvOp::Put { value, .. }, None | Some(KvResult::Put)) => Some(Some(*value)),
        (KvOp::Get { .. }, None) => Some(state),
        (KvOp::Get { .. }, Some(KvResult::Get(v))) => (*v == state).then_some(state),
        (KvOp::Cas { expected, new, .. }, None) => Some(if state == *expected {
            Some(*new)
        } else {
            state
        }),
        (KvOp::Cas { expected, new, .. }, Some(KvResult::Cas(ok))) => {
            if (state == *expected) != *ok {
                None
            } else if *ok {
                Some(Some(*new))
            } else {
                Some(state)
            }
        }
        _ => None, // a result of the wrong kind
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Call,
    Return,
}

/// Wing–Gong–Lowe over one key. `None` when the step budget ran out.
fn check_key(ops: &[&KvOperation]) -> Option<bool> {
    // Events: (time, kind order, op). Calls sort before returns at equal times, so touching
    // operations count as concurrent (the permissive choice).
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoked_at, 0, i));
        if matches!(op.outcome, KvOutcome::Ok(_)) {
            events.push((op.returned_at.max(op.invoked_at), 1, i));
        }
    }
    events.sort_unstable();
    let n = events.len();
    // Doubly linked list over events; node 0 is the head sentinel, event k is node k + 1.
    let mut next: Vec<usize> = (1..=n + 1).collect();
    let mut prev: Vec<usize> = (0..n + 2).map(|i| i.saturating_sub(1)).collect();
    let end = n + 1;
    next.push(end);
    let kind: Vec<Kind> = events
        .iter()
        .map(|e| if e.1 == 0 { Kind::Call } else { Kind::Return })
        .collect();
    let op_of: Vec<usize> = events.iter().map(|e| e.2).collect();
    let mut call_node = vec![0; ops.len()];
    let mut ret_node = vec![None; ops.len()];
    for (k, e) in events.iter().enumerate() {
        if e.1 == 0 {
            call_node[e.2] = k + 1;
        } else {
            ret_node[e.2] = Some(k + 1);
        }
    }
    let mut returns_left = ret_node.iter().filter(|r| r.is_some()).count();

    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<Value>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    let mut state: Option<Value> = None;
    let mut entry = next[0];
    let mut steps = 0u64;

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        let (p, q) = (prev[node], next[node]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        let (p, q) = (prev[node], next[node]);
        next[p] = node;
        prev[q] = node;
    };

    loop {
        if returns_left == 0 {
            return Some(true);
        }
        steps += 1;
        if steps > SEARCH_STEPS_MAX {
            return None;
        }
        debug_assert!(entry != end, "a return event is always ahead");
        let node = entry;
        let i = op_of[node - 1];
        match kind[node - 1] {
            Kind::Call => {
                if let Some(new_state) = step(state, &ops[i].op, &ops[i].outcome) {
                    linearized[i / 64] |= 1 << (i % 64);
                    if cache.insert((linearized.clone(), new_state)) {
                        stack.push((node, state));
                        state = new_state;
                        unlink(&mut next, &mut prev, node);
                        if let Some(r) = ret_node[i] {
                            unlink(&mut next, &mut prev, r);
                            returns_left -= 1;
                        }
                        entry = next[0];
                        continue;
                    }
                    linearized[i / 64] &= !(1 << (i % 64));
                }
                entry = next[node];
            }
            Kind::Return => {
                // This operation returned before it could be linearized: undo the last choice.
                let Some((call, old_state)) = stack.pop() else {
                    return Some(false);
                };
                let j = op_of[call - 1];
                linearized[j / 64] &= !(1 << (j % 64));
                state = old_state;
                if let Some(r) = ret_node[j] {
                    relink(&mut next, &mut prev, r);
                    returns_left += 1;
                }
                relink(&mut next, &mut prev, call);
                entry = next[call];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        KvOp::{self, Cas, Get, Put},
        KvOperation, KvOutcome, KvResult, Linearizability, check_kv,
    };

    fn ok(client: u64, op: KvOp, from: u64, to: u64, r: KvResult) -> KvOperation {
        KvOperation::new(client, op, from, to, KvOutcome::Ok(r))
    }
    fn unknown(client: u64, op: KvOp, from: u64) -> KvOperation {
        KvOperation::new(client, op, from, u64::MAX, KvOutcome::Indeterminate)
    }
    fn put(key: u64, value: u64) -> KvOp {
        Put { key, value }
    }
    fn get(key: u64) -> KvOp {
        Get { key }
    }
    fn cas(key: u64, expected: Option<u64>, new: u64) -> KvOp {
        Cas { key, expected, new }
    }

    // ----- linearizable histories ------------------------------------------------------------

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            ok(1, get(1), 2, 3, KvResult::Get(Some(1))),
            ok(1, cas(1, Some(1), 2), 4, 5, KvResult::Cas(true)),
            ok(1, cas(1, Some(1), 3), 6, 7, KvResult::Cas(false)),
            ok(1, get(1), 8, 9, KvResult::Get(Some(2))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    #[test]
    fn concurrent_reads_may_see_either_side_of_a_write() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            ok(2, put(1, 2), 2, 10, KvResult::Put),
            ok(3, get(1), 3, 4, KvResult::Get(Some(2))),
            ok(4, get(1), 5, 6, KvResult::Get(Some(2))),
            ok(5, get(1), 3, 11, KvResult::Get(Some(1))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    #[test]
    fn indeterminate_write_that_took_effect() {
        let h = vec![
            unknown(1, put(1, 5), 0),
            ok(2, get(1), 10, 11, KvResult::Get(Some(5))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    #[test]
    fn indeterminate_write_that_never_took_effect() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            unknown(2, put(1, 9), 2),
            ok(3, get(1), 5, 6, KvResult::Get(Some(1))),
            ok(3, get(1), 7, 8, KvResult::Get(Some(1))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    #[test]
    fn indeterminate_write_taking_effect_late() {
        // Takes effect after the first read, long after its client gave up.
        let h = vec![
            unknown(1, cas(1, None, 3), 0),
            ok(2, get(1), 5, 6, KvResult::Get(None)),
            ok(2, get(1), 100, 101, KvResult::Get(Some(3))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    #[test]
    fn failed_operations_are_ignored_and_keys_are_independent() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            KvOperation::new(2, put(1, 2), 2, 3, KvOutcome::Failed),
            ok(3, put(2, 7), 0, 10, KvResult::Put),
            ok(1, get(1), 4, 5, KvResult::Get(Some(1))),
            ok(4, get(2), 11, 12, KvResult::Get(Some(7))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Ok);
    }

    // ----- non-linearizable histories --------------------------------------------------------

    #[test]
    fn stale_read_after_write_returned() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            ok(2, put(1, 2), 2, 3, KvResult::Put),
            ok(3, get(1), 4, 5, KvResult::Get(Some(1))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn reads_going_back_in_time() {
        // Two reads during one write: once the new value is seen, the old one cannot be.
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            ok(2, put(1, 2), 2, 20, KvResult::Put),
            ok(3, get(1), 3, 4, KvResult::Get(Some(2))),
            ok(3, get(1), 5, 6, KvResult::Get(Some(1))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn two_successful_cas_from_the_same_value() {
        let h = vec![
            ok(1, put(1, 0), 0, 1, KvResult::Put),
            ok(2, cas(1, Some(0), 1), 2, 10, KvResult::Cas(true)),
            ok(3, cas(1, Some(0), 2), 2, 10, KvResult::Cas(true)),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn read_of_a_value_never_written() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            unknown(2, put(1, 2), 2),
            ok(3, get(1), 3, 4, KvResult::Get(Some(3))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn indeterminate_write_cannot_take_effect_before_its_invocation() {
        let h = vec![
            ok(1, get(1), 0, 1, KvResult::Get(Some(5))),
            unknown(2, put(1, 5), 2),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn indeterminate_write_taking_effect_twice() {
        // The value appears, disappears, then appears again: one write cannot do that.
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            unknown(2, put(1, 2), 2),
            ok(3, get(1), 3, 4, KvResult::Get(Some(2))),
            ok(4, put(1, 1), 5, 6, KvResult::Put),
            ok(3, get(1), 7, 8, KvResult::Get(Some(2))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn failed_write_must_not_be_seen() {
        let h = vec![
            KvOperation::new(1, put(1, 4), 0, 1, KvOutcome::Failed),
            ok(2, get(1), 2, 3, KvResult::Get(Some(4))),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn the_violating_key_is_reported() {
        let h = vec![
            ok(1, put(1, 1), 0, 1, KvResult::Put),
            ok(1, get(1), 2, 3, KvResult::Get(Some(1))),
            ok(2, put(2, 1), 0, 1, KvResult::Put),
            ok(2, get(2), 2, 3, KvResult::Get(None)),
        ];
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 2 });
    }

    /// A key whose search gives up leaves the later keys checked: a stale read of key 2 is
    /// found behind key 1's undecided history. Regression (review): the check stopped at
    /// the first undecided key, and the heavy-fault seeds where searches give up are where
    /// a stale read is likeliest.
    #[test]
    fn an_undecided_key_leaves_the_later_keys_checked() {
        // Thirty writes that never returned and a read of a value none wrote: no order
        // explains the read, and showing it means trying every subset of the writes.
        let mut h: Vec<_> = (0..30).map(|c| unknown(c, put(1, c), 0)).collect();
        h.push(ok(99, get(1), 100, 101, KvResult::Get(Some(999))));
        assert_eq!(check_kv(&h), Linearizability::Unknown { key: 1 });
        h.push(ok(100, put(2, 1), 0, 1, KvResult::Put));
        h.push(ok(100, get(2), 2, 3, KvResult::Get(None)));
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 2 });
    }

    /// A read that never returned constrains nothing: it is left out of the search, and
    /// reads by the dozen that timed out do not make a short history undecidable.
    #[test]
    fn unanswered_reads_do_not_hide_a_stale_read() {
        let mut h: Vec<_> = (0..40).map(|c| unknown(c, get(1), 0)).collect();
        h.push(ok(100, put(1, 1), 0, 1, KvResult::Put));
        h.push(ok(100, get(1), 2, 3, KvResult::Get(None)));
        assert_eq!(check_kv(&h), Linearizability::Violation { key: 1 });
    }

    #[test]
    fn long_generated_histories_are_checked_quickly() {
        // Five clients, 400 operations on 3 keys, each taking effect at a random point
        // inside its own interval: linearizable by construction. Then one read is corrupted.
        let mut rng = crate::sim::SimRng::new(3);
        let mut state = [None::<u64>; 3];
        let mut h = Vec::new();
        let mut busy_until = [0u64; 5];
        for t in 0..400u64 {
            let at = t * 10;
            let client = rng.below(5) as usize;
            let invoked = busy_until[client].max(at.saturating_sub(rng.below(30)));
            let returned = (at + rng.range(1, 30)).max(invoked);
            busy_until[client] = returned + 1;
            let key = rng.below(3);
            let slot = &mut state[key as usize];
            let (op, r) = match rng.below(3) {
                0 => {
                    let v = rng.below(4);
                    *slot = Some(v);
                    (put(key, v), KvResult::Put)
                }
                1 => (get(key), KvResult::Get(*slot)),
                _ => {
                    let expected = Some(rng.below(4));
                    let hit = *slot == expected;
                    if hit {
                        *slot = Some(rng.below(4));
                    }
                    (cas(key, expected, slot.unwrap_or(0)), KvResult::Cas(hit))
                }
            };
            // The effect happened at `at`, inside [invoked, returned].
            let op = match (op, &r) {
                (Cas { key, expected, .. }, KvResult::Cas(true)) => Cas {
                    key,
                    expected,
                    new: state[key as usize].unwrap_or(0),
                },
                (op, _) => op,
            };
            h.push(ok(client as u64, op, invoked.min(at), returned.max(at), r));
        }
        assert_eq!(check_kv(&h), Linearizability::Ok);
        let k = h
            .iter()
            .rposition(|o| matches!(o.outcome, KvOutcome::Ok(KvResult::Get(Some(_)))))
            .expect("some read saw a value");
        let key = h[k].op.key();
        h[k].outcome = KvOutcome::Ok(KvResult::Get(Some(99)));
        assert_eq!(check_kv(&h), Linearizability::Violation { key });
    }
}
