//! Adding and removing nodes of a running kv cluster over its HTTP admin endpoints, with
//! real processes: node 4 starts with `--join` and is added to every group with one call;
//! node 1 is then removed from every group, its replicas are deleted, and the data stays
//! readable and writable through the others.

use std::path::Path;
use std::time::{Duration, Instant};

use multiraft_examples::kv::admin::{NodeAddrs, NodeChangeBody};
use multiraft_examples::kv::client::{ClientError, KvClient};
use multiraft_examples::kv::cluster::LocalCluster;
use multiraft_examples::kv::status::StatusBody;
use multiraft_testkit::cluster::wait_for;

const GROUPS: u64 = 4;
const WAIT: Duration = Duration::from_secs(60);

/// Node `url`'s status; `None` while it does not serve yet.
async fn status(http: &reqwest::Client, url: &str) -> Option<StatusBody> {
    let response = http.get(format!("{url}/status.json")).send().await.ok()?;
    response.json().await.ok()
}

/// Polls node `url`'s status until `cond` holds, up to [`WAIT`].
async fn wait_status(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    cond: impl Fn(&StatusBody) -> bool,
) {
    let polled = wait_for(WAIT, || async {
        let s = status(http, url).await?;
        cond(&s).then_some(())
    })
    .await;
    if let Err(e) = polled {
        panic!("{what}: {e}; {:?}", status(http, url).await);
    }
}

/// Puts until one is acknowledged: a put of a fixed value may be repeated, and right
/// after a start or a change a group may still change leaders (an indeterminate answer).
async fn put(client: &KvClient, key: &str, value: &str) {
    let deadline = Instant::now() + WAIT;
    while let Err(e) = client.put(key, value).await {
        assert!(Instant::now() < deadline, "put {key}: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_added_and_another_removed_over_http() {
    let dir = tempfile::Builder::new()
        .prefix("kv-membership-")
        .tempdir()
        .unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_kv"));
    let mut cluster = LocalCluster::launch(binary, dir.path(), 3, GROUPS, WAIT)
        .await
        .unwrap();
    let (raft, http_addr) = LocalCluster::free_addrs(1).unwrap()[0];
    let http = reqwest::Client::new();
    let mut urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    urls.push(format!("http://{http_addr}"));
    let client = |i: usize| KvClient::new(urls[i].clone(), Duration::from_secs(5)).unwrap();
    for k in 0..20 {
        put(&client(0), &format!("key-{k}"), &format!("v{k}")).await;
    }
    // Keys a URL would otherwise resolve are keys like any other (review: `x/../y` wrote
    // `y`, `a?b` wrote `a`).
    let awkward = ["x/../y", "a/b?c#d", "%41"];
    for key in awkward {
        put(&client(0), key, key).await;
    }
    for key in awkward {
        assert_eq!(client(1).get(key).await.unwrap().as_deref(), Some(key));
    }
    assert_eq!(client(1).get("y").await.unwrap(), None);

    // Node 4 joins: started with --join, then added with one call to node 1.
    let four = cluster.plan_joiner(raft, http_addr);
    cluster.start(four).unwrap();
    let url4 = cluster.nodes[3].url();
    wait_status(&http, &url4, "node 4 serving its joining replicas", |s| {
        s.groups_hosted == GROUPS as usize
    })
    .await;
    let added: NodeChangeBody = http
        .put(format!("{}/admin/nodes/{four}", cluster.nodes[0].url()))
        .json(&NodeAddrs {
            raft,
            http: http_addr,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(added.ok, "{added:?}");
    wait_status(
        &http,
        &url4,
        "node 4 a voter of every group, caught up",
        |s| {
            s.groups
                .iter()
                .all(|g| g.voters == [1, 2, 3, 4] && g.leader.is_some() && g.applied >= 2)
        },
    )
    .await;
    // It serves every key, linearizably.
    for k in 0..20 {
        assert_eq!(
            client(3).get(&format!("key-{k}")).await.unwrap(),
            Some(format!("v{k}"))
        );
    }

    // Node 1 leaves every group: asked of node 2; node 1 deletes its replicas when told.
    let removed = http
        .delete(format!("{}/admin/nodes/1", cluster.nodes[1].url()))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{:?}", removed.text().await);
    wait_status(
        &http,
        &cluster.nodes[0].url(),
        "node 1's replicas deleted",
        |s| s.groups_hosted == 0,
    )
    .await;
    let without_node_1 = |s: &StatusBody| {
        s.groups
            .iter()
            .all(|g| g.voters == [2, 3, 4] && g.leader.is_some_and(|l| l != 1))
    };
    wait_status(&http, &url4, "every group without node 1", without_node_1).await;
    // Node 3 serves the reads below: what node 4 knows says nothing of when node 3's
    // replicas learn the new leaders. A read at a replica that still took node 1 for
    // leader failed (it timed out, asking node 1, which hosts no replica, for a read
    // index): 2 runs in 10.
    let url3 = cluster.nodes[2].url();
    wait_status(
        &http,
        &url3,
        "node 3's groups without node 1",
        without_node_1,
    )
    .await;
    // Node 1 hosts no group now: its reads fail, they do not report the keys absent.
    assert!(matches!(
        client(0).get("key-0").await,
        Err(ClientError::Definite(_))
    ));
    for k in 0..20 {
        let key = format!("key-{k}");
        assert_eq!(client(2).get(&key).await.unwrap(), Some(format!("v{k}")));
        put(&client(1), &key, "after").await;
        assert_eq!(
            client(3).get(&key).await.unwrap(),
            Some("after".to_string())
        );
    }
    assert!(cluster.stop_all().unwrap().is_empty());
}
