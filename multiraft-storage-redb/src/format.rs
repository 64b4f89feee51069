//! The on-disk format version, the crash-safe creation of a new database file, and the
//! format check at open.

use std::path::Path;

use multiraft_core::StorageError;
use redb::{Database, Durability, ReadableDatabase, TableError};

use crate::codec::{
    CHUNKS_TABLE, FORMAT_KEY, FORMAT_TABLE, GROUPS_TABLE, LOG_TABLE, REMOVED_TABLE,
    SNAPSHOTS_TABLE, WAL_TABLE, redb_error,
};
use crate::storage::RedbOptions;

/// The on-disk format this build reads and writes. Stored at creation and checked at open;
/// any other value is refused. Bumped by any change to the tables or value encodings.
///
/// History: 1 — first format; 2 — the metadata row records the compacted prefix; 3 — batches
/// are committed to a write-ahead table and checkpointed into the group and log tables; 4 —
/// snapshots: the snapshot and chunk tables, and write-ahead records note a group write's
/// log reset.
pub const FORMAT_VERSION: u64 = 4;

/// Creates a new database at `path` through a temporary file of its own, moved to `path`
/// only if no file is there yet, so that a crash never leaves a half-initialized file at
/// `path`, and openers racing to create it end with one database: a rename that replaced
/// the file had an opener that lost the race write to a file no longer at `path`.
///
/// `Ok` once a database is at `path`, this call's or another opener's; whoever opens it
/// first holds it.
pub(crate) fn create_file(path: &Path, options: &RedbOptions) -> Result<(), StorageError> {
    let name = path.file_name().ok_or_else(|| {
        StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = name.to_os_string();
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(CREATING);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // As redb makes a file in place: 0666 less the umask. (`tempfile`'s own 0600 kept
        // out backups and group-shared accounts that could read the file before; review.)
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder.tempfile_in(dir)?.into_temp_path();
    {
        let db = options.builder().create(&temp).map_err(redb_error)?;
        // Commits durably; the database is closed (and synced) when `db` drops.
        check_format(&db)?;
    }
    if let Err(e) = temp.persist_noclobber(path) {
        // Another opener's file got there first (or, having got there, it deleted this
        // one's temporary file): open that one. The temporary file is deleted on drop.
        return if path.try_exists()? {
            Ok(())
        } else {
            Err(e.error.into())
        };
    }
    std::fs::File::open(dir)?.sync_all()?;
    remove_stale_creations(dir, name);
    Ok(())
}

/// The suffix of a database file being created: `<name>.<random>.creating`.
const CREATING: &str = ".creating";

/// Deletes what creations of `name` in `dir` left: files `<name>.<random>.creating` (and
/// `<name>.creating`, which earlier builds used) of a creation a crash interrupted. Called
/// once a database is at the path: a creation still under way then can only fail to move
/// its file there, so deleting its file costs it nothing it could have kept. The random
/// part has no dot, so another database's (`<name>.old`'s, say) are left alone. Best
/// effort: a file it cannot delete (another user's) is left, and the open goes on.
fn remove_stale_creations(dir: &Path, name: &std::ffi::OsStr) {
    let Ok(found) = std::fs::read_dir(dir) else {
        return;
    };
    let name = name.to_string_lossy();
    for found in found.flatten() {
        let file = found.file_name();
        let file = file.to_string_lossy();
        let stale = (file.strip_prefix(&*name))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| {
                rest == &CREATING[1..]
                    || rest
                        .strip_suffix(CREATING)
                        .is_some_and(|random| !random.is_empty() && !random.contains('.'))
            });
        if stale {
            let _ = std::fs::remove_file(found.path());
        }
    }
}

/// Creates the tables and the format version in a new database, or checks them in an
/// existing one.
pub(crate) fn check_format(db: &Database) -> Result<(), StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let found = match read.open_table(FORMAT_TABLE) {
        Ok(table) => Some(
            table
                .get(FORMAT_KEY)
                .map_err(redb_error)?
                .map(|v| v.value()),
        ),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_error(e)),
    };
    match found {
        Some(Some(FORMAT_VERSION)) => Ok(()),
        Some(Some(v)) => Err(StorageError::Corrupt(format!(
            "database format version {v} {}; this build reads version {FORMAT_VERSION} only",
            if v > FORMAT_VERSION {
                "is newer than this build"
            } else {
                "is unknown"
            }
        ))),
        Some(None) => Err(StorageError::Corrupt(
            "the format table exists but holds no version".into(),
        )),
        None => {
            if read.list_tables().map_err(redb_error)?.next().is_some() {
                return Err(StorageError::Corrupt(
                    "the database holds tables but no multiraft format version: not a \
                     multiraft database"
                        .into(),
                ));
            }
            drop(read);
            let mut txn = db.begin_write().map_err(redb_error)?;
            txn.set_durability(Durability::Immediate)
                .map_err(redb_error)?;
            txn.open_table(FORMAT_TABLE)
                .map_err(redb_error)?
                .insert(FORMAT_KEY, FORMAT_VERSION)
                .map_err(redb_error)?;
            txn.open_table(GROUPS_TABLE).map_err(redb_error)?;
            txn.open_table(LOG_TABLE).map_err(redb_error)?;
            txn.open_table(WAL_TABLE).map_err(redb_error)?;
            txn.open_table(REMOVED_TABLE).map_err(redb_error)?;
            txn.open_table(SNAPSHOTS_TABLE).map_err(redb_error)?;
            txn.open_table(CHUNKS_TABLE).map_err(redb_error)?;
            txn.commit().map_err(redb_error)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    /// A new database in memory with the multiraft tables and format version, for tests.
    pub(crate) fn in_memory_database() -> Database {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        check_format(&db).unwrap();
        db
    }

    /// Format check: a database written by a newer build is a typed error, not a panic, and
    /// the file is left untouched.
    #[test]
    fn a_newer_format_version_is_refused_at_open() {
        let backend = InMemoryBackend::new();
        let db = Database::builder().create_with_backend(backend).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(FORMAT_TABLE)
            .unwrap()
            .insert(FORMAT_KEY, FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
        let err = check_format(&db).unwrap_err();
        match err {
            StorageError::Corrupt(msg) => {
                let newer = format!("version {} is newer", FORMAT_VERSION + 1);
                assert!(msg.contains(&newer), "{msg}");
                let ours = format!("reads version {FORMAT_VERSION}");
                assert!(msg.contains(&ours), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_foreign_redb_database_is_refused_at_open() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        let other: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        assert!(
            matches!(check_format(&db), Err(StorageError::Corrupt(m)) if m.contains("not a multiraft"))
        );
    }

    #[test]
    fn a_new_database_gets_the_current_version() {
        let db = in_memory_database();
        check_format(&db).unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(FORMAT_TABLE).unwrap();
        assert_eq!(t.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT_VERSION);
    }
}
