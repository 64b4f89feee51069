//! `RedbStorage` against the testkit's storage conformance suite: the properties every
//! `Storage` implementation must have, shared with `MemStorage`.

mod common;

use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::conformance::{self, Subject};

/// Each fresh storage is a new file in one temporary directory; a reopen closes the
/// database and opens the same file again.
struct Redb {
    dir: common::TempDir,
    files: u32,
    paths: Vec<std::path::PathBuf>,
    options: RedbOptions,
}

impl Subject for Redb {
    type Storage = RedbStorage;

    fn fresh(&mut self) -> RedbStorage {
        self.files += 1;
        let path = self
            .dir
            .path()
            .join(format!("conformance-{}.redb", self.files));
        self.paths.push(path.clone());
        RedbStorage::open(&path, self.options.clone()).expect("open a fresh database")
    }

    fn reopen(&mut self, storage: RedbStorage) -> RedbStorage {
        drop(storage);
        let path = self.paths.last().expect("a database was opened").clone();
        RedbStorage::open(&path, self.options.clone()).expect("reopen the database")
    }
}

/// With the default checkpoint size (the suite's writes stay in the write-ahead table) and
/// with a checkpoint after every write (everything is read from the group and log tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_storage_passes_the_conformance_suite() {
    for checkpoint_bytes in [RedbOptions::DEFAULT_CHECKPOINT_BYTES, 0] {
        let mut subject = Redb {
            dir: common::TempDir::new("conformance"),
            files: 0,
            paths: Vec::new(),
            options: RedbOptions::default().with_checkpoint_bytes(checkpoint_bytes),
        };
        conformance::check_all(&mut subject).await;
    }
}
