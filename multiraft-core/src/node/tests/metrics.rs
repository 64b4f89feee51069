//! What the node records in its metrics (`crate::metrics`), seen through `metrics-util`'s
//! `DebuggingRecorder` installed for the node alone.

use super::*;
use crate::testing::Io;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// The storage metrics record each ready's write as it is — its entries and bytes, as
/// `WriteBatch::entry_count` and `WriteBatch::size_bytes` count them, snapshot chunks
/// included — though the node counts them while it makes the ready, not from the batch.
#[test]
fn the_write_metrics_count_each_write_as_it_is() {
    /// Snapshots of two chunks, 345 bytes.
    struct Chunks;
    impl Io for Chunks {
        fn send(&mut self, _batch: MessageBatch) {}
        fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, crate::SnapshotError> {
            Ok(vec![Bytes::from(vec![1; 300]), Bytes::from(vec![2; 45])])
        }
    }

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let config = Config {
        snapshot_entries: 4,
        ..strict()
    };
    let mut node = ::metrics::with_local_recorder(&recorder, || new_node(1, config));
    let (mut expected, mut chunk_writes) = (Vec::new(), 0);
    let mut settle = |node: &mut Node| {
        while let Some(ready) = node.ready() {
            let w = &ready.write;
            chunk_writes += w.groups.iter().filter(|w| !w.snapshot.is_empty()).count();
            if !w.is_empty() {
                expected.push((w.entry_count() as f64, w.size_bytes() as f64));
            }
            crate::testing::run(node, ready, &mut Chunks).unwrap();
        }
    };
    for group in 1..=3 {
        node.create_group(g(group), Membership::voters([1]))
            .unwrap();
        node.campaign(g(group)).unwrap();
    }
    settle(&mut node);
    for (i, size) in [1, 10, 100, 1_000, 7, 0].repeat(4).into_iter().enumerate() {
        let group = g(1 + i as u64 % 3);
        node.propose(group, Bytes::from(vec![7; size])).unwrap();
        settle(&mut node);
    }
    assert!(chunk_writes > 0, "snapshot chunks were written");

    let mut recorded = (Vec::new(), Vec::new());
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Histogram(values) = value else {
            continue;
        };
        let values: Vec<f64> = values.iter().map(|v| v.into_inner()).collect();
        match key.key().name() {
            crate::metrics::STORAGE_WRITE_ENTRIES => recorded.0 = values,
            crate::metrics::STORAGE_WRITE_BYTES => recorded.1 = values,
            _ => {}
        }
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let (entries, bytes): (Vec<f64>, Vec<f64>) = expected.into_iter().unzip();
    assert_eq!(sorted(recorded.0), sorted(entries));
    assert_eq!(sorted(recorded.1), sorted(bytes));
}
