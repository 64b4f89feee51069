//! The metrics a running cluster records (`multiraft_core::metrics`), seen through
//! `metrics-util`'s `DebuggingRecorder`. Installed as the global recorder, so this file is
//! its own test binary with one test: the driver runs on tokio's worker threads, which a
//! thread-local recorder would not see.

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use multiraft_core::metrics::{
    COMMIT_LATENCY_SECONDS, ELECTIONS_TOTAL, ELECTIONS_WON_TOTAL, GROUPS, GROUPS_ACTIVE,
    GROUPS_QUIESCED, LEADER_CHANGES_TOTAL, PEER_FAILURES_TOTAL, PEERS_DOWN, PROPOSALS_TOTAL,
    READY_SECONDS, STORAGE_WRITE_BYTES, STORAGE_WRITE_ENTRIES, STORAGE_WRITE_SECONDS,
};
use multiraft_core::{GroupId, ProposeError};

mod common;

use common::{Cluster, test_config, wait_for};

/// A series: its name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// What the recorder saw so far. A snapshot of the `DebuggingRecorder` takes the counters
/// and histogram samples out (and zeroes the gauges), so counts are summed over snapshots
/// and gauges keep the last fresh value read.
struct Seen {
    snapshotter: Snapshotter,
    counters: BTreeMap<Series, u64>,
    samples: BTreeMap<Series, usize>,
    gauges: BTreeMap<Series, f64>,
}

impl Seen {
    fn update(&mut self) {
        let mut gauges = BTreeMap::new();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let series = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(series).or_default() += n,
                DebugValue::Histogram(v) => *self.samples.entry(series).or_default() += v.len(),
                DebugValue::Gauge(g) => {
                    gauges.insert(series, g.into_inner());
                }
            }
        }
        // A snapshot zeroes the gauges, and a node sets its three group gauges together
        // (on each tick and ready): keep a node's readings only when they are fresh, which
        // a nonzero group count shows (every node hosts groups here).
        for n in 1..=3u64 {
            let node = vec![("node".to_owned(), n.to_string())];
            // The peers-down gauge is set on every tick, alone: a nonzero reading is fresh.
            let down = (PEERS_DOWN.to_owned(), node.clone());
            if let Some(v) = gauges.get(&down).filter(|v| **v > 0.0) {
                self.gauges.insert(down, *v);
            }
            if gauges.get(&(GROUPS.to_owned(), node.clone())) > Some(&0.0) {
                for name in [GROUPS, GROUPS_ACTIVE, GROUPS_QUIESCED] {
                    let series = (name.to_owned(), node.clone());
                    if let Some(v) = gauges.get(&series) {
                        self.gauges.insert(series, *v);
                    }
                }
            }
        }
    }

    /// The sum of `name` over every series whose labels include `with`.
    fn counter(&self, name: &str, with: &[(&str, &str)]) -> u64 {
        sum(&self.counters, name, with)
    }

    /// Samples recorded into histogram `name`, over every node.
    fn samples(&self, name: &str) -> usize {
        sum(&self.samples, name, &[])
    }

    /// Gauge `name` of node `node`.
    fn gauge(&self, name: &str, node: u64) -> f64 {
        let series = (name.to_owned(), vec![("node".into(), node.to_string())]);
        self.gauges.get(&series).copied().unwrap_or(-1.0)
    }
}

fn sum<T: Copy + std::iter::Sum<T>>(
    map: &BTreeMap<Series, T>,
    name: &str,
    with: &[(&str, &str)],
) -> T {
    map.iter()
        .filter(|((n, labels), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_records_proposals_latencies_writes_group_gauges_and_peer_failures() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let seen = std::sync::Mutex::new(Seen {
        snapshotter,
        counters: BTreeMap::new(),
        samples: BTreeMap::new(),
        gauges: BTreeMap::new(),
    });
    let check = |cond: &dyn Fn(&Seen) -> bool| {
        let mut s = seen.lock().unwrap();
        s.update();
        cond(&s)
    };

    let config = test_config();
    assert!(config.quiesce, "the test config quiesces idle groups");
    const GROUPS_N: u64 = 8;
    let mut c = Cluster::start(3, config).await;
    c.create(1..=GROUPS_N).await;
    // Every node hosts the groups, and they are active: no election is over yet (the
    // election timeout is 200 ms at least).
    wait_for(|| {
        std::future::ready(
            check(&|s| {
                (1..=3).all(|n| {
                    s.gauge(GROUPS, n) == GROUPS_N as f64 && s.gauge(GROUPS_ACTIVE, n) > 0.0
                })
            })
            .then_some(()),
        )
    })
    .await;

    const PER_GROUP: u64 = 5;
    for g in 1..=GROUPS_N {
        let leader = c.leader(g).await;
        for i in 0..PER_GROUP {
            c.node(leader.0)
                .propose(GroupId(g), format!("g{g}-{i}"))
                .await
                .expect("applied");
        }
    }
    let missing = c.node(1).propose(GroupId(999), "nowhere").await;
    assert_eq!(missing, Err(ProposeError::GroupNotFound(GroupId(999))));

    let proposed = (GROUPS_N * PER_GROUP) as usize;
    // The driver records a ready's latencies right after its applies, which is after it
    // answered them: wait for the last samples.
    wait_for(|| {
        std::future::ready(check(&|s| s.samples(COMMIT_LATENCY_SECONDS) >= proposed).then_some(()))
    })
    .await;
    // Then the groups go quiet: every group quiesced on every node.
    wait_for(|| {
        std::future::ready(
            check(&|s| {
                (1..=3).all(|n| {
                    s.gauge(GROUPS_QUIESCED, n) == GROUPS_N as f64
                        && s.gauge(GROUPS_ACTIVE, n) == 0.0
                })
            })
            .then_some(()),
        )
    })
    .await;

    {
        let s = seen.lock().unwrap();
        let applied = s.counter(PROPOSALS_TOTAL, &[("outcome", "applied")]);
        assert_eq!(applied, proposed as u64, "one applied outcome per proposal");
        assert_eq!(s.samples(COMMIT_LATENCY_SECONDS), proposed);
        let not_found = s.counter(
            PROPOSALS_TOTAL,
            &[("node", "1"), ("outcome", "group_not_found")],
        );
        assert_eq!(not_found, 1);
        let ended = s.counter(PROPOSALS_TOTAL, &[]);
        assert_eq!(ended, proposed as u64 + 1, "nothing else ended: {ended}");
        // Each group elected a leader, which every replica learned of.
        assert!(s.counter(ELECTIONS_WON_TOTAL, &[]) >= GROUPS_N);
        assert!(s.counter(ELECTIONS_TOTAL, &[]) >= s.counter(ELECTIONS_WON_TOTAL, &[]));
        assert!(s.counter(LEADER_CHANGES_TOTAL, &[]) >= 3 * GROUPS_N);
        // Every node wrote (creations, votes, entries) and ran readies.
        for name in [
            STORAGE_WRITE_SECONDS,
            STORAGE_WRITE_ENTRIES,
            STORAGE_WRITE_BYTES,
            READY_SECONDS,
        ] {
            for n in 1..=3u64 {
                let node = n.to_string();
                let samples = sum(&s.samples, name, &[("node", node.as_str())]);
                assert!(samples > 0, "{name} of node {n} has no sample");
            }
        }
    }

    // Node 3 stops: the other two declare it down, and say so.
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    wait_for(|| {
        std::future::ready(
            check(&|s| {
                (1..=2).all(|n| {
                    let node = n.to_string();
                    let silent = [("node", node.as_str()), ("kind", "silent")];
                    s.gauge(PEERS_DOWN, n) == 1.0 && s.counter(PEER_FAILURES_TOTAL, &silent) >= 1
                })
            })
            .then_some(()),
        )
    })
    .await;
    c.shutdown().await;
}
