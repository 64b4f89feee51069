//! kill -9 test: a child process (this test binary, re-executed with an environment
//! variable) writes batches to a real database file and prints the id of each batch whose
//! `write` returned `Ok`; the parent kills it with SIGKILL (`Child::kill`) at random moments,
//! reopens the file and checks that every acknowledged batch is present, and that no batch
//! is partially present. The next child continues on the same file.
//!
//! `MULTIRAFT_KILL_CYCLES` sets the number of kills (default 20).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Rng, TempDir, entry};
use multiraft_core::{Entry, GroupId, GroupWrite, HardState, NodeId, Payload, Storage, WriteBatch};
use multiraft_storage_redb::{RedbOptions, RedbStorage};

/// Set in the child's environment: the database path.
const CHILD_ENV: &str = "MULTIRAFT_KILL9_CHILD_DB";
const GROUPS: u64 = 16;

/// The child's body. Without the environment variable (a normal test run) it does nothing.
#[test]
fn kill9_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(child_writes_until_killed(Path::new(&path)));
}

async fn child_writes_until_killed(path: &Path) {
    // Small checkpoints, so that kills land in checkpoints too.
    let options = RedbOptions::default().with_checkpoint_bytes(16 << 10);
    let storage = RedbStorage::open(path, options).unwrap();
    let loaded = storage.load().await.unwrap();
    let mut last: BTreeMap<u64, u64> = loaded
        .iter()
        .map(|l| (l.group.0, l.entries.len() as u64))
        .collect();
    let mut next_id = loaded
        .iter()
        .flat_map(|l| &l.entries)
        .map(|e| parse(&e.payload).0 + 1)
        .max()
        .unwrap_or(0);
    let mut rng = Rng::new(u64::from(std::process::id()));
    let mut out = std::io::stdout().lock();
    // libtest has printed "test kill9_child ... " without a newline: start a fresh line.
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    loop {
        let id = next_id;
        next_id += 1;
        // Two or three groups per batch, 1–3 entries each, 16 B to 4 KiB per entry.
        let mut groups: Vec<u64> = Vec::new();
        let want = 2 + rng.below(2);
        while (groups.len() as u64) < want {
            let g = rng.below(GROUPS) + 1;
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let counts: Vec<u64> = groups.iter().map(|_| rng.below(3) + 1).collect();
        let total: u64 = counts.iter().sum();
        let mut writes = Vec::new();
        for (g, n) in groups.iter().zip(counts) {
            let first = last.get(g).copied().unwrap_or(0) + 1;
            let entries: Vec<Entry> = (first..first + n)
                .map(|i| {
                    let pad = "x".repeat(16 + rng.below(4096) as usize);
                    entry(i, id + 1, format!("{id}/{total}/{pad}"))
                })
                .collect();
            last.insert(*g, first + n - 1);
            writes.push(
                GroupWrite::new(GroupId(*g))
                    .with_hard_state(HardState {
                        term: id + 1,
                        vote: Some(NodeId(1)),
                        commit: 0,
                    })
                    .with_entries(entries),
            );
        }
        storage.write(WriteBatch::from(writes)).await.unwrap();
        writeln!(out, "ACK {id}").unwrap();
        out.flush().unwrap();
    }
}

/// `(batch id, entries in the batch)` from an entry written by the child.
fn parse(payload: &Payload) -> (u64, u64) {
    let Payload::Command { data, .. } = payload else {
        panic!("unexpected payload {payload:?}");
    };
    let text = std::str::from_utf8(data).unwrap();
    let mut parts = text.splitn(3, '/');
    let id = parts.next().unwrap().parse().unwrap();
    let total = parts.next().unwrap().parse().unwrap();
    (id, total)
}

#[test]
fn kill9_never_loses_an_acknowledged_batch() {
    let cycles: u64 = std::env::var("MULTIRAFT_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();
    let dir = TempDir::new("kill9");
    let path = dir.path().join("log.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(0x0009_1111);
    let mut acked_total = 0usize;
    let mut cycles_with_acks = 0;
    let mut killed_while_writing = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "kill9_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == "READY" {
                        let _ = ready_tx.send(());
                    } else if let Some(id) = line.strip_prefix("ACK ") {
                        acked.lock().unwrap().push(id.parse().unwrap());
                    }
                }
            })
        };
        // Kill at a random moment: sometimes during startup (open and crash recovery), mostly
        // while it is writing (a random time after it reported the database open).
        let during_startup = rng.chance(15);
        if !during_startup {
            ready
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("cycle {cycle}: the child never opened: {e}"));
        }
        let wait = Duration::from_millis(if during_startup {
            rng.below(30)
        } else {
            rng.below(300)
        });
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child ended by itself: {status}");
        reader.join().unwrap();
        let acked = acked.lock().unwrap().clone();

        // Reopen and check every acknowledged batch, and atomicity of every present batch.
        let storage = RedbStorage::open(&path, RedbOptions::default())
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopen fails: {e}"));
        let loaded = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(storage.load())
            .unwrap_or_else(|e| panic!("cycle {cycle}: load fails: {e}"));
        drop(storage);
        let mut present: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for e in loaded.iter().flat_map(|l| &l.entries) {
            let (id, total) = parse(&e.payload);
            let p = present.entry(id).or_insert((0, total));
            p.0 += 1;
        }
        for (id, (count, total)) in &present {
            assert_eq!(
                count, total,
                "cycle {cycle}: batch {id} is partially present"
            );
        }
        for id in &acked {
            assert!(
                present.contains_key(id),
                "cycle {cycle}: acknowledged batch {id} lost (killed after {wait:?})"
            );
        }
        // Nothing unacknowledged beyond the one in flight: batches are sequential.
        if let (Some(max_acked), Some(max_present)) = (acked.iter().max(), present.keys().max()) {
            assert!(*max_present <= max_acked + 1, "cycle {cycle}");
        }
        acked_total += acked.len();
        if !acked.is_empty() {
            cycles_with_acks += 1;
        }
        if !during_startup {
            killed_while_writing += 1;
        }
    }
    eprintln!(
        "{cycles} kills ({killed_while_writing} after the database was open, \
         {cycles_with_acks} after at least one acknowledgement), {acked_total} acknowledged \
         batches, 0 lost, in {:?}",
        started.elapsed()
    );
    assert!(acked_total > 0, "no batch was ever acknowledged");
}
