//! [`EntryRuns`]: consecutive log entries kept as the shared runs they are in, for a storage
//! write to append without joining them first.

use std::fmt;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entries::Entries;
use crate::entry::Entry;

/// Consecutive log entries held as the runs ([`Entries`]) of the group's log they are in,
/// none copied: what a storage write appends for one group ([`GroupWrite::entries`]).
///
/// A follower keeps each append it receives as a run of its own, and a leader freezes its
/// new entries into a run whenever an append needs them before the cycle's write; a write
/// that covers several such runs joined them into one, which copied every entry (7–9 % of
/// the node's time at one busy group; docs/design.md §4.8). Now the write carries the runs
/// as they are. The first run is held inline, so a write of one run (the common case)
/// allocates nothing.
///
/// Encoded as the sequence of its entries, exactly as a `Vec<Entry>` is.
///
/// [`GroupWrite::entries`]: crate::GroupWrite::entries
#[derive(Clone, Default)]
pub struct EntryRuns {
    /// The first run; empty only when every run is.
    first: Entries,
    /// The runs after it, none empty, each starting right after the one before ends.
    rest: Vec<Entries>,
}

impl EntryRuns {
    /// No entries.
    pub fn new() -> EntryRuns {
        EntryRuns::default()
    }

    /// Appends `run`, whose first entry must follow the last entry held (not checked here:
    /// [`GroupWrite::validate`](crate::GroupWrite::validate) checks a write's entries are
    /// consecutive). An empty run adds nothing.
    pub fn push(&mut self, run: Entries) {
        if run.is_empty() {
            return;
        }
        if self.first.is_empty() {
            self.first = run;
        } else {
            self.rest.push(run);
        }
    }

    /// The runs, in order, none empty.
    pub fn runs(&self) -> impl DoubleEndedIterator<Item = &Entries> + '_ {
        std::iter::once(&self.first)
            .filter(|r| !r.is_empty())
            .chain(&self.rest)
    }

    /// The runs, in order, none empty, taken.
    pub fn into_runs(self) -> impl Iterator<Item = Entries> {
        std::iter::once(self.first)
            .filter(|r| !r.is_empty())
            .chain(self.rest)
    }

    /// The entries, in order.
    pub fn iter(&self) -> Iter<'_> {
        std::iter::once(&self.first).chain(&self.rest).flatten()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.first.len() + self.rest.iter().map(|r| r.len()).sum::<usize>()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// The first entry.
    pub fn first(&self) -> Option<&Entry> {
        self.first.first()
    }

    /// The last entry.
    pub fn last(&self) -> Option<&Entry> {
        self.rest.last().unwrap_or(&self.first).last()
    }

    /// The entries as a vector of their own (copies).
    pub fn to_vec(&self) -> Vec<Entry> {
        self.iter().cloned().collect()
    }

    /// The entries as one run: the run itself when there is one, shared; copied into a
    /// new run when there are several (what one value must carry, as an append does).
    pub(crate) fn joined(self) -> Entries {
        if self.rest.is_empty() {
            return self.first;
        }
        self.iter().cloned().collect()
    }
}

/// The entries of an [`EntryRuns`], in order ([`EntryRuns::iter`]).
pub(crate) type Iter<'a> = std::iter::Flatten<
    std::iter::Chain<std::iter::Once<&'a Entries>, std::slice::Iter<'a, Entries>>,
>;

impl<'a> IntoIterator for &'a EntryRuns {
    type Item = &'a Entry;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<Entries> for EntryRuns {
    fn from(run: Entries) -> EntryRuns {
        EntryRuns {
            first: run,
            rest: Vec::new(),
        }
    }
}

impl From<Vec<Entry>> for EntryRuns {
    fn from(entries: Vec<Entry>) -> EntryRuns {
        EntryRuns::from(Entries::from(entries))
    }
}

impl FromIterator<Entries> for EntryRuns {
    fn from_iter<I: IntoIterator<Item = Entries>>(runs: I) -> EntryRuns {
        let mut out = EntryRuns::new();
        out.extend(runs);
        out
    }
}

impl Extend<Entries> for EntryRuns {
    fn extend<I: IntoIterator<Item = Entries>>(&mut self, runs: I) {
        for run in runs {
            self.push(run);
        }
    }
}

impl fmt::Debug for EntryRuns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Equal when the entries are, however they are split into runs.
impl PartialEq for EntryRuns {
    fn eq(&self, other: &EntryRuns) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for EntryRuns {}

impl PartialEq<Vec<Entry>> for EntryRuns {
    fn eq(&self, other: &Vec<Entry>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<const N: usize> PartialEq<[Entry; N]> for EntryRuns {
    fn eq(&self, other: &[Entry; N]) -> bool {
        self.iter().eq(other.iter())
    }
}

/// Encoded as a sequence of entries, exactly as a `Vec<Entry>` is.
impl Serialize for EntryRuns {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The length up front: formats such as postcard need it, and the runs' iterator
        // cannot tell it exactly (`collect_seq` would pass none).
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for e in self {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for EntryRuns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntryRuns, D::Error> {
        Entries::deserialize(deserializer).map(EntryRuns::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::tests::entries as run;

    fn indexes(e: &EntryRuns) -> Vec<u64> {
        e.iter().map(|e| e.index).collect()
    }

    #[test]
    fn runs_are_kept_as_they_came_and_read_as_one_sequence() {
        let mut e = EntryRuns::new();
        assert!(e.is_empty() && e.first().is_none() && e.last().is_none());
        e.push(Entries::new());
        assert!(e.is_empty() && e.runs().count() == 0);
        let (a, b) = (run(3, 6), run(6, 7));
        e.push(a.clone());
        e.push(Entries::new());
        e.push(b.clone());
        assert_eq!(indexes(&e), [3, 4, 5, 6]);
        assert_eq!(e.len(), 4);
        assert_eq!(e.first().map(|x| x.index), Some(3));
        assert_eq!(e.last().map(|x| x.index), Some(6));
        assert_eq!(
            e.iter().rev().map(|x| x.index).collect::<Vec<_>>(),
            [6, 5, 4, 3]
        );
        // The runs themselves: shared with what was pushed, not copied.
        let runs: Vec<&Entries> = e.runs().collect();
        assert_eq!(runs.len(), 2);
        assert!(std::ptr::eq(runs[0].as_ptr(), a.as_ptr()));
        assert!(std::ptr::eq(runs[1].as_ptr(), b.as_ptr()));
        assert_eq!(e.clone().into_runs().count(), 2);
        // Equal to the same entries in one run.
        assert_eq!(e, EntryRuns::from(run(3, 7)));
        assert_ne!(e, EntryRuns::from(run(3, 6)));
        assert_eq!(e, run(3, 7).to_vec());
    }

    #[test]
    fn joined_shares_a_single_run_and_copies_several() {
        let a = run(1, 4);
        let one: EntryRuns = [Entries::new(), a.clone()].into_iter().collect();
        assert!(std::ptr::eq(one.joined().as_ptr(), a.as_ptr()));
        let two: EntryRuns = [a.slice(1..3), run(4, 6)].into_iter().collect();
        let joined = two.joined();
        assert_eq!(
            joined.iter().map(|e| e.index).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert!(!std::ptr::eq(joined.as_ptr(), a[1..].as_ptr()));
        assert!(EntryRuns::new().joined().is_empty());
    }

    #[test]
    fn encoded_as_a_vector_of_entries() {
        let e: EntryRuns = [run(5, 7), run(7, 9)].into_iter().collect();
        let as_vec = serde_json::to_string(&run(5, 9).to_vec()).unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), as_vec);
        let back: EntryRuns = serde_json::from_str(&as_vec).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.runs().count(), 1);
    }
}
