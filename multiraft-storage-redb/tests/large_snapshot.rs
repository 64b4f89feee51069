//! A large snapshot through `RedbStorage`: written as 1 MiB chunks, one batch each, while
//! another group keeps appending, five times over. Checks that chunk data stays out of the
//! write-ahead records (so out of the writer's memory), that every chunk reads back one at
//! a time, that the process's peak memory grows by far less than a snapshot, and that
//! the file stays bounded as each snapshot replaces the one before.
//!
//! `MULTIRAFT_SNAPSHOT_MIB` sets the snapshot size in MiB (default 32; 1024 for the 1 GiB
//! case). Alone in its test binary so that the process's peak memory is this test's.

mod common;

use common::{TempDir, entry};
use multiraft_core::{
    Bytes, GroupId, GroupWrite, Membership, SnapshotChunk, SnapshotMeta, Storage, WriteBatch,
};
use multiraft_storage_redb::{RedbOptions, RedbStorage};

const MIB: u64 = 1 << 20;

fn snapshot_mib() -> u32 {
    std::env::var("MULTIRAFT_SNAPSHOT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

/// Chunk `seq` of snapshot `round`: 1 MiB naming both in every 8 bytes (with a position
/// counter), so a chunk from the wrong snapshot, position or offset is visible.
fn chunk_data(round: u64, seq: u32) -> Bytes {
    let mut data = Vec::with_capacity(MIB as usize);
    for word in 0..MIB / 8 {
        let value = (round << 56) ^ (u64::from(seq) << 32) ^ word;
        data.extend_from_slice(&value.to_le_bytes());
    }
    Bytes::from(data)
}

fn meta(round: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: round * 1_000,
        term: round,
        membership: Membership::voters([1, 2, 3]),
    }
}

/// The process's peak resident memory so far, in bytes (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_in_one_mib_chunks_stays_out_of_memory_and_bounds_the_file() {
    let dir = TempDir::new("large-snapshot");
    let path = dir.path().join("log.redb");
    // A small page cache, so that it does not hide what the writer keeps.
    let options = RedbOptions::default().with_cache_size_bytes(4 * MIB as usize);
    let s = RedbStorage::open(&path, options.clone()).unwrap();
    let (g, other) = (GroupId(1), GroupId(2));
    let chunks = snapshot_mib();
    let size = u64::from(chunks) * MIB;
    let baseline = peak_rss();
    let mut next = 1;
    let mut largest_file = 0;
    let rounds = 5;
    for round in 1..=rounds {
        let m = meta(round);
        for seq in 0..chunks {
            let chunk = SnapshotChunk {
                meta: m.clone(),
                seq,
                data: chunk_data(round, seq),
                last: seq + 1 == chunks,
            };
            let append = GroupWrite::new(other).with_entries(vec![entry(next, 1, "x")]);
            next += 1;
            let w = GroupWrite::new(g).with_snapshot_chunk(chunk);
            s.write(WriteBatch::from(vec![w, append])).await.unwrap();
            let tail = s.stats().tail_bytes;
            assert!(
                tail < MIB / 4,
                "round {round}, chunk {seq}: {tail} bytes of write-ahead records: chunk data \
                 went through them"
            );
            if round > 1 && seq == chunks / 2 {
                // The previous snapshot stays readable while this one is incoming.
                let old = s.snapshot_chunk(g, meta(round - 1).index, 0).await.unwrap();
                assert_eq!(old.map(|c| c.data), Some(chunk_data(round - 1, 0)));
            }
            largest_file = largest_file.max(std::fs::metadata(&path).unwrap().len());
        }
        for seq in 0..chunks {
            let read = s.snapshot_chunk(g, m.index, seq).await.unwrap();
            let read = read.unwrap_or_else(|| panic!("round {round}: chunk {seq} is missing"));
            assert!(
                read.data == chunk_data(round, seq),
                "round {round}: chunk {seq}"
            );
            assert_eq!(read.last, seq + 1 == chunks);
        }
        assert_eq!(s.snapshot_chunk(g, m.index, chunks).await.unwrap(), None);
        if round > 1 {
            let old = s.snapshot_chunk(g, meta(round - 1).index, 0).await.unwrap();
            assert_eq!(old, None, "round {round}: the replaced snapshot");
        }
    }
    eprintln!(
        "{rounds} snapshots of {chunks} MiB: file at most {:.1} MiB; peak memory {:?} MiB, {:?} MiB \
         before the first",
        largest_file as f64 / MIB as f64,
        peak_rss().map(|b| b / MIB),
        baseline.map(|b| b / MIB)
    );
    // One complete and one incoming snapshot at a time (2 sizes), plus redb's growth steps
    // (it doubles a small file, then grows by regions): about 3 sizes. Keeping replaced
    // snapshots would take 5, and storing 1 MiB chunks whole (a 2 MiB page each) 4.
    assert!(
        largest_file <= size * 7 / 2 + 8 * MIB,
        "the file grew to {largest_file} bytes for snapshots of {size}"
    );
    if let (Some(before), Some(after)) = (baseline, peak_rss()) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < 24 * MIB,
            "peak memory grew by {} MiB writing and reading snapshots of {chunks} MiB",
            grown / MIB
        );
    }

    drop(s);
    let s = RedbStorage::open(&path, options).unwrap();
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded[0].snapshot, Some(meta(rounds)));
    assert_eq!(loaded[1].entries.len() as u64, next - 1);
    for seq in [0, chunks / 2, chunks - 1] {
        let read = s.snapshot_chunk(g, meta(rounds).index, seq).await.unwrap();
        assert!(
            read.is_some_and(|c| c.data == chunk_data(rounds, seq)),
            "chunk {seq}"
        );
    }
}
