//! A Jepsen-style test over real processes: three `kv` node processes on QUIC and redb,
//! concurrent HTTP clients doing puts, gets and compare-and-sets, and a nemesis that
//! kill -9s a node at random and restarts it. Every operation is recorded with its
//! invocation and completion times (a request that timed out or broke is indeterminate),
//! and the history is checked with the testkit's linearizability checker. A last read of
//! every key after the nemesis stops is part of the history, so an acknowledged write that
//! was lost fails the check.
//!
//! `KV_JEPSEN_SECS` sets the length of the nemesis phase (20 s by default, for CI);
//! `KV_JEPSEN_SEED` the nemesis's and clients' seed (printed).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiraft_examples::kv::client::{ClientError, KvClient};
use multiraft_examples::kv::cluster::LocalCluster;
use multiraft_testkit::sim::SimRng;
use multiraft_testkit::sim::linearizability::{
    KvOp, KvOperation, KvOutcome, KvResult, Linearizability, check_kv,
};

const NODES: usize = 3;
const GROUPS: u64 = 8;
const CLIENTS: u64 = 8;
/// Keys in use at once. Every `KEY_EPOCH` the clients move to fresh keys, which keeps each
/// key's history short enough for the checker however long the run.
const KEYS: u64 = 6;
const KEY_EPOCH: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Counts {
    ok: u64,
    failed: u64,
    indeterminate: u64,
    acknowledged_writes: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_keeps_the_kv_service_linearizable() {
    multiraft_examples::init_logging();
    let secs = env_u64("KV_JEPSEN_SECS").unwrap_or(20);
    let seed = env_u64("KV_JEPSEN_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    println!("kv jepsen: {secs} s of nemesis, seed {seed}");
    let dir = tempfile::Builder::new()
        .prefix("kv-jepsen-")
        .tempdir()
        .unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_kv"));
    let mut cluster = LocalCluster::launch(binary, dir.path(), NODES, GROUPS, READY_TIMEOUT)
        .await
        .unwrap();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let clients: Vec<KvClient> = urls
        .iter()
        .map(|u| KvClient::new(u.clone(), REQUEST_TIMEOUT).unwrap())
        .collect();

    let start = Instant::now();
    let now = move || start.elapsed().as_nanos() as u64;
    let history = Arc::new(Mutex::new(Vec::<KvOperation>::new()));
    let counts = Arc::new(Mutex::new(Counts::default()));
    let nemesis_end = start + Duration::from_secs(secs);

    // The clients.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let clients = clients.clone();
        let history = Arc::clone(&history);
        let counts = Arc::clone(&counts);
        tasks.push(tokio::spawn(async move {
            let mut rng = SimRng::new(seed ^ (c + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut seen: std::collections::HashMap<u64, Option<u64>> = Default::default();
            let mut seq = 0;
            while Instant::now() < nemesis_end {
                let epoch = start.elapsed().as_secs() / KEY_EPOCH.as_secs();
                let key = epoch * KEYS + rng.below(KEYS);
                let client = &clients[rng.below(clients.len() as u64) as usize];
                seq += 1;
                let value = c * 1_000_000_000 + seq;
                let name = format!("k{key}");
                let choice = rng.below(10);
                let invoked_at = now();
                let (op, outcome) = if choice < 4 {
                    let r = client.put(&name, &value.to_string()).await;
                    if r.is_ok() {
                        seen.insert(key, Some(value));
                    }
                    (KvOp::Put { key, value }, r.map(|_| KvResult::Put))
                } else if choice < 8 {
                    let r = client.get(&name).await.map(|v| {
                        let v = v.map(|s| s.parse::<u64>().expect("values are numbers"));
                        seen.insert(key, v);
                        KvResult::Get(v)
                    });
                    (KvOp::Get { key }, r)
                } else {
                    let expected = seen.get(&key).copied().flatten();
                    let new = value;
                    let r = client
                        .cas(
                            &name,
                            expected.map(|v| v.to_string()).as_deref(),
                            Some(&new.to_string()),
                        )
                        .await
                        .map(|r| KvResult::Cas(r.is_ok()));
                    (KvOp::Cas { key, expected, new }, r)
                };
                let returned_at = now();
                let outcome = {
                    let mut counts = counts.lock().unwrap();
                    match outcome {
                        Ok(result) => {
                            counts.ok += 1;
                            if matches!(result, KvResult::Put | KvResult::Cas(true)) {
                                counts.acknowledged_writes += 1;
                            }
                            KvOutcome::Ok(result)
                        }
                        Err(ClientError::Definite(_)) => {
                            counts.failed += 1;
                            KvOutcome::Failed
                        }
                        Err(ClientError::Indeterminate(_)) => {
                            counts.indeterminate += 1;
                            KvOutcome::Indeterminate
                        }
                    }
                };
                let failed = !matches!(outcome, KvOutcome::Ok(_));
                history.lock().unwrap().push(KvOperation::new(
                    c,
                    op,
                    invoked_at,
                    returned_at,
                    outcome,
                ));
                if failed {
                    // Pacing, not waiting for the cluster: a client of a dead node would
                    // otherwise fill the history with refused connections.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    // The nemesis: kill -9 a node, restart it a little later, again and again.
    let mut rng = SimRng::new(seed);
    let mut kills = 0;
    while Instant::now() + Duration::from_millis(1500) < nemesis_end {
        tokio::time::sleep(Duration::from_millis(rng.range(500, 1499))).await;
        let victim = rng.range(1, NODES as u64);
        cluster.kill(victim).unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.range(200, 999))).await;
        cluster.start(victim).unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every node back; then a last read of every key used goes into the history.
    cluster.start_all().unwrap();
    if let Err(e) = cluster.wait_ready(READY_TIMEOUT).await {
        let logs: Vec<String> = (1..=NODES as u64)
            .map(|i| format!("node {i}:\n{}", cluster.log_tail(i, 20)))
            .collect();
        panic!("after the nemesis: {e}\n{}", logs.join("\n"));
    }
    let used: std::collections::BTreeSet<u64> =
        history.lock().unwrap().iter().map(|o| o.op.key()).collect();
    for &key in &used {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let invoked_at = now();
            match clients[0].get(&format!("k{key}")).await {
                Ok(v) => {
                    let v = v.map(|s| s.parse::<u64>().unwrap());
                    history.lock().unwrap().push(KvOperation::new(
                        CLIENTS,
                        KvOp::Get { key },
                        invoked_at,
                        now(),
                        KvOutcome::Ok(KvResult::Get(v)),
                    ));
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "final read of k{key}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let unclean = cluster.stop_all().unwrap();

    let history = history.lock().unwrap().clone();
    let counts = counts.lock().unwrap();
    let verdict = check_kv(&history);
    println!(
        "kv jepsen: {} operations ({} ok, {} failed, {} indeterminate), {} acknowledged writes, {} keys, {kills} kill -9 restarts, verdict {verdict:?}",
        history.len(),
        counts.ok,
        counts.failed,
        counts.indeterminate,
        counts.acknowledged_writes,
        used.len(),
    );
    if let Linearizability::Violation { key } | Linearizability::Unknown { key } = verdict {
        let ops: Vec<String> = history
            .iter()
            .filter(|o| o.op.key() == key)
            .map(|o| format!("{o:?}"))
            .collect();
        panic!("{verdict:?} on k{key} (seed {seed}):\n{}", ops.join("\n"));
    }
    assert_eq!(verdict, Linearizability::Ok);
    assert!(
        counts.ok > 0 && counts.acknowledged_writes > 0,
        "no operation succeeded"
    );
    assert!(kills > 0, "the nemesis killed nothing");
    assert!(unclean.is_empty(), "nodes {unclean:?} did not stop cleanly");
}
