//! The metrics the storage records, through the [`metrics`] facade (no recorder is
//! installed by the library; with none, recording is a no-op). The series have no labels;
//! a process with several databases sees their sum.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | [`COMMIT_SECONDS`] | histogram | one durable commit of a batch (its fsync included) |
//! | [`CHECKPOINTS_TOTAL`] | counter | checkpoint steps run |
//! | [`CHECKPOINT_SECONDS`] | histogram | one checkpoint step (one durable transaction) |

use ::metrics::{Counter, Histogram, counter, histogram};

/// Histogram, seconds: the durable commit of one write batch's transaction, which waits
/// for its fsync. Not the whole `Storage::write`: the node records that as
/// `multiraft_storage_write_seconds`.
pub const COMMIT_SECONDS: &str = "multiraft_redb_commit_seconds";
/// Counter: checkpoint steps run (each moves a slice of the write-ahead tail into the
/// group and log tables in one durable transaction).
pub const CHECKPOINTS_TOTAL: &str = "multiraft_redb_checkpoints_total";
/// Histogram, seconds: one checkpoint step.
pub const CHECKPOINT_SECONDS: &str = "multiraft_redb_checkpoint_seconds";

/// The writer thread's handles, registered once when it starts.
pub(crate) struct RedbMetrics {
    pub(crate) commit_seconds: Histogram,
    pub(crate) checkpoints: Counter,
    pub(crate) checkpoint_seconds: Histogram,
}

impl RedbMetrics {
    pub(crate) fn new() -> RedbMetrics {
        RedbMetrics {
            commit_seconds: histogram!(COMMIT_SECONDS),
            checkpoints: counter!(CHECKPOINTS_TOTAL),
            checkpoint_seconds: histogram!(CHECKPOINT_SECONDS),
        }
    }
}
