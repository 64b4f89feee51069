//! Every program answers `--help` with status 0 and names its main flags.

use std::process::Command;

/// Runs `exe --help` and checks the status and that each of `flags` is in the output.
fn check_help(name: &str, exe: &str, flags: &[&str]) {
    let out = Command::new(exe)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} --help exited with {}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Usage:"), "{name} --help:\n{text}");
    for flag in flags {
        assert!(
            text.contains(flag),
            "{name} --help does not name {flag}:\n{text}"
        );
    }
}

#[test]
fn demo_help() {
    check_help(
        "demo",
        env!("CARGO_BIN_EXE_demo"),
        &["--transport", "--storage", "quic", "redb", "mem"],
    );
}

#[test]
fn bench_help() {
    check_help(
        "bench",
        env!("CARGO_BIN_EXE_bench"),
        &["--groups", "--clients", "--secs", "--bytes", "--threads"],
    );
}

#[test]
fn scale_help() {
    check_help(
        "scale",
        env!("CARGO_BIN_EXE_scale"),
        &[
            "--groups",
            "--idle-secs",
            "--skip-raft",
            "--skip-driver",
            "--current-thread",
        ],
    );
}

#[test]
fn redb_bench_help() {
    check_help(
        "redb_bench",
        env!("CARGO_BIN_EXE_redb_bench"),
        &[
            "--secs",
            "--runs",
            "--dir",
            "--load-groups",
            "--load-entries",
            "--e2e-groups",
            "--clients",
            "--compact-secs",
            "--only",
        ],
    );
}

#[test]
fn quic_bench_help() {
    check_help(
        "quic_bench",
        env!("CARGO_BIN_EXE_quic_bench"),
        &["--secs", "--batch", "--window", "--bytes", "--groups"],
    );
}

#[test]
fn cluster_bench_help() {
    check_help(
        "cluster_bench",
        env!("CARGO_BIN_EXE_cluster_bench"),
        &[
            "--groups",
            "--clients",
            "--secs",
            "--runs",
            "--mode",
            "--dir",
            "--child",
            "--snapshot-mib",
            "--redb-cache-mib",
        ],
    );
}

/// A flag a program does not know is a usage error (status 2), not a run.
#[test]
fn restart_bench_help() {
    check_help(
        "restart_bench",
        env!("CARGO_BIN_EXE_restart_bench"),
        &["--groups", "--entries", "--clients"],
    );
}

#[test]
fn kv_help() {
    check_help(
        "kv",
        env!("CARGO_BIN_EXE_kv"),
        &["node", "cluster", "certs", "load"],
    );
    for (sub, flags) in [
        (
            "node",
            &[
                "--id",
                "--data-dir",
                "--certs",
                "--raft",
                "--http",
                "--peer",
                "--groups",
            ][..],
        ),
        (
            "cluster",
            &["--dir", "--nodes", "--groups", "--raft-port", "--http-port"][..],
        ),
        ("certs", &["--dir", "--nodes"][..]),
        (
            "load",
            &["--url", "--clients", "--secs", "--keys", "--write-percent"][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "kv {sub} --help exited with {}",
            out.status
        );
        for flag in flags {
            assert!(
                text.contains(flag),
                "kv {sub} --help does not name {flag}:\n{text}"
            );
        }
    }
}

#[test]
fn unknown_flags_are_refused() {
    for (name, exe) in [
        ("demo", env!("CARGO_BIN_EXE_demo")),
        ("bench", env!("CARGO_BIN_EXE_bench")),
        ("cluster_bench", env!("CARGO_BIN_EXE_cluster_bench")),
        ("restart_bench", env!("CARGO_BIN_EXE_restart_bench")),
        ("kv", env!("CARGO_BIN_EXE_kv")),
    ] {
        let out = Command::new(exe)
            .arg("--no-such-flag")
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.status.code(), Some(2), "{name}");
    }
}

/// Out-of-range or conflicting snapshot-run flags are usage errors (status 2), not runs.
#[test]
fn cluster_bench_refuses_bad_snapshot_flags() {
    for bad in [
        &["--snapshot-mib", "64", "--mode", "mem"][..],
        &["--snapshot-mib", "64", "--mode", "quic"][..],
        &["--snapshot-mib", "2000000"][..],
        &["--snapshot-mib", "-1"][..],
        &["--redb-cache-mib", "0"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cluster_bench"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
