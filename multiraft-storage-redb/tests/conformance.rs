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
        RedbStorage::open(&path, RedbOptions::default()).expect("open a fresh database")
    }

    fn reopen(&mut self, storage: RedbStorage) -> RedbStorage {
        drop(storage);
        let path = self.paths.last().expect("a database was opened").clone();
        RedbStorage::open(&path, RedbOptions::default()).expect("reopen the database")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_storage_passes_the_conformance_suite() {
    let mut subject = Redb {
        dir: common::TempDir::new("conformance"),
        files: 0,
        paths: Vec::new(),
    };
    conformance::check_all(&mut subject).await;
}
