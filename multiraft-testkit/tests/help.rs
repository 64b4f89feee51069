//! The `sim` binary answers `--help` with status 0 and names its flags.

use std::process::Command;

#[test]
fn sim_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("--help")
        .output()
        .expect("run sim --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sim --help exited with {}",
        out.status
    );
    for flag in [
        "--seeds",
        "--start",
        "--nodes",
        "--groups",
        "--secs",
        "--rate",
        "--trace",
        "--jobs",
        "--verbose",
        "--twice",
    ] {
        assert!(
            text.contains(flag),
            "sim --help does not name {flag}:\n{text}"
        );
    }
}

#[test]
fn sim_refuses_out_of_range_values() {
    for args in [["--nodes", "10"], ["--jobs", "0"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(args)
            .output()
            .expect("run sim");
        assert_eq!(out.status.code(), Some(2), "sim {args:?}");
    }
}
