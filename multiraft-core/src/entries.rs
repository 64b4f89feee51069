//! [`Entries`]: consecutive log entries shared, not copied, between the log that holds them
//! and everything that carries them on: storage writes, appends to followers, applies.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entry::Entry;

/// Consecutive log entries, shared: a clone is one reference count, never a copy of the
/// entries. Reads as a slice (`Deref<Target = [Entry]>`).
///
/// A group's log keeps the entries each cycle brought as one shared run, and hands the same
/// run to the storage write, to the appends for every follower and to the apply: copying
/// them instead cost each entry four copies on the leader and two on each follower, each
/// copy a reference count on the payload's buffer taken and dropped, a fifth of the whole
/// node's time at one busy group (docs/design.md §4.8). A sub-range ([`Entries::slice`])
/// shares the run too, so an `Entries` may keep a whole run alive for a few of its
/// entries: at most one run's worth, and a run is what one append brought
/// (`Config::max_append_entries`, `max_append_bytes`) or what a leader appended between two
/// cycles (within `Config::max_uncommitted_bytes`).
#[derive(Clone, Default)]
pub struct Entries {
    /// The shared run; `None` when empty, so that empty `Entries` allocate nothing.
    run: Option<Arc<[Entry]>>,
    /// The part of the run these entries are.
    range: Range<usize>,
}

impl Entries {
    /// No entries.
    pub fn new() -> Entries {
        Entries::default()
    }

    /// The entries of `range` (positions in `self`), sharing the run.
    ///
    /// # Panics
    ///
    /// If `range` is not within `0..self.len()`, as slicing does.
    pub fn slice(&self, range: Range<usize>) -> Entries {
        let _ = &self[range.clone()];
        match &self.run {
            Some(run) if !range.is_empty() => Entries {
                run: Some(Arc::clone(run)),
                range: self.range.start + range.start..self.range.start + range.end,
            },
            _ => Entries::default(),
        }
    }

    /// The entries, to change: copied into a run of their own first unless these entries
    /// are the whole of a run nothing else shares (copy on write, as `Arc::make_mut`).
    pub fn make_mut(&mut self) -> &mut [Entry] {
        let whole = self
            .run
            .as_ref()
            .is_some_and(|r| self.range == (0..r.len()));
        if !whole || self.run.as_mut().is_some_and(|r| Arc::get_mut(r).is_none()) {
            *self = self.iter().cloned().collect();
        }
        match &mut self.run {
            Some(run) => Arc::get_mut(run).map_or(&mut [], |r| &mut r[..]),
            None => &mut [],
        }
    }

    /// The entries as a vector of their own (copies).
    pub fn to_vec(&self) -> Vec<Entry> {
        self.deref().to_vec()
    }
}

impl Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match &self.run {
            Some(run) => &run[self.range.clone()],
            None => &[],
        }
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(entries: Vec<Entry>) -> Entries {
        if entries.is_empty() {
            return Entries::default();
        }
        let len = entries.len();
        Entries {
            run: Some(Arc::from(entries)),
            range: 0..len,
        }
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Entries {
        let run: Arc<[Entry]> = iter.into_iter().collect();
        if run.is_empty() {
            return Entries::default();
        }
        let len = run.len();
        Entries {
            run: Some(run),
            range: 0..len,
        }
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.deref() == other.deref()
    }
}

impl Eq for Entries {}

impl PartialEq<Vec<Entry>> for Entries {
    fn eq(&self, other: &Vec<Entry>) -> bool {
        self.deref() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[Entry; N]> for Entries {
    fn eq(&self, other: &[Entry; N]) -> bool {
        self.deref() == other.as_slice()
    }
}

/// Encoded as a sequence of entries, exactly as a `Vec<Entry>` is.
impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.deref().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        Vec::<Entry>::deserialize(deserializer).map(Entries::from)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::entry::Payload;

    /// Entries `low..high`, of term 1, in one run (also for [`crate::entry_runs`]'s tests).
    pub(crate) fn entries(low: u64, high: u64) -> Entries {
        (low..high)
            .map(|index| Entry {
                index,
                term: 1,
                payload: Payload::Noop,
            })
            .collect()
    }

    fn indexes(e: &Entries) -> Vec<u64> {
        e.iter().map(|e| e.index).collect()
    }

    #[test]
    fn a_slice_of_a_slice_shares_the_run_at_the_right_place() {
        let all = entries(1, 11);
        let middle = all.slice(2..8);
        assert_eq!(indexes(&middle), [3, 4, 5, 6, 7, 8]);
        let inner = middle.slice(1..3);
        assert_eq!(indexes(&inner), [4, 5]);
        assert!(Arc::ptr_eq(
            all.run.as_ref().unwrap(),
            inner.run.as_ref().unwrap()
        ));
        assert!(middle.slice(3..3).is_empty());
        assert!(middle.slice(3..3).run.is_none());
    }

    #[test]
    #[should_panic]
    fn a_slice_past_the_end_panics_like_a_slice() {
        let _ = entries(1, 4).slice(2..5);
    }

    #[test]
    fn encoded_as_a_vector_of_entries() {
        let e = entries(5, 8);
        let as_vec = serde_json::to_string(&e.to_vec()).unwrap();
        assert_eq!(serde_json::to_string(&e.slice(0..3)).unwrap(), as_vec);
        let back: Entries = serde_json::from_str(&as_vec).unwrap();
        assert_eq!(back, e);
    }
}
