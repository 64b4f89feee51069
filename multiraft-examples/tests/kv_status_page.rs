//! The status page in a real browser: three `kv` node processes, then headless Chromium
//! loads node 1's page, lets its script fetch `/status.json` and draw, and the test reads
//! the resulting DOM: every group the node hosts is listed with its leader, and both peers
//! are listed as live.
//!
//! Needs Chromium, so it is ignored by default: `cargo test -p multiraft-examples --test
//! kv_status_page -- --ignored` (`.ci/run` does so when a browser is installed).
//! `CHROMIUM` names the browser binary; otherwise `chromium`, `chromium-browser` or
//! `google-chrome` is looked for on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use multiraft_examples::kv::cluster::LocalCluster;

const GROUPS: u64 = 12;

fn browser() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// The value of `attribute="…"` in an HTML tag.
fn attribute<'a>(tag: &'a str, attribute: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run with --ignored"]
async fn the_status_page_lists_every_group_with_its_leader() {
    let browser = browser().expect("no Chromium found: set CHROMIUM or install chromium");
    let dir = tempfile::Builder::new()
        .prefix("kv-status-")
        .tempdir()
        .unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_kv"));
    let mut cluster = LocalCluster::launch(binary, dir.path(), 3, GROUPS, Duration::from_secs(60))
        .await
        .unwrap();
    let url = format!("{}/", cluster.nodes[0].url());
    let shot = dir.path().join("status.png");
    // `--virtual-time-budget` lets the page's script run (fetch and draw) before the DOM is
    // dumped; `timeout` bounds a browser that hangs.
    let run = |extra: &str| {
        Command::new("timeout")
            .arg("60")
            .arg(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=5000",
            ])
            .arg(extra)
            .arg(&url)
            .output()
            .expect("run the browser")
    };
    let out = run("--dump-dom");
    assert!(
        out.status.success(),
        "browser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page never drew its status:\n{dom}"
    );

    let rows: Vec<(u64, String)> = dom
        .match_indices("<tr data-group=")
        .map(|(at, _)| {
            let tag = &dom[at..at + dom[at..].find('>').unwrap()];
            let group = attribute(tag, "data-group").unwrap().parse().unwrap();
            (group, attribute(tag, "data-leader").unwrap().to_string())
        })
        .collect();
    let groups: Vec<u64> = rows.iter().map(|(g, _)| *g).collect();
    assert_eq!(
        groups,
        (1..=GROUPS).collect::<Vec<_>>(),
        "groups listed:\n{dom}"
    );
    for (group, leader) in &rows {
        let leader: u64 = leader
            .parse()
            .unwrap_or_else(|_| panic!("group {group} shows no leader:\n{dom}"));
        assert!((1..=3).contains(&leader), "group {group}: leader {leader}");
    }
    assert!(dom.contains(">live<"), "no live peer shown:\n{dom}");
    assert!(!dom.contains(">down<"), "a peer shown down:\n{dom}");

    // A screenshot for whoever looks at the run (not checked).
    let _ = run(&format!("--screenshot={}", shot.display()));
    println!(
        "status page: {} groups with leaders; screenshot {}",
        rows.len(),
        shot.display()
    );
    assert!(cluster.stop_all().unwrap().is_empty());
}
