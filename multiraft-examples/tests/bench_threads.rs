//! `bench --threads 1` runs the whole cluster, its three event loops and every client, on
//! one worker thread of the runtime, and it makes progress there: nothing in the benchmark
//! or the library waits on a second thread.

use std::process::Command;

#[test]
fn bench_commits_on_one_thread() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--threads", "1", "--groups", "2", "--clients", "4"])
        .args(["--secs", "1", "--warmup-secs", "0"])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench exited with {}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("bench:"))
        .unwrap_or_else(|| panic!("no result line:\n{text}"));
    let rate: u64 = line
        .split("): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"));
    assert!(rate > 0, "nothing committed on one thread: {line}");
    // Which of the machine's speeds the run met, measured around it.
    assert!(line.contains("cores' round trip "), "{line}");
}
