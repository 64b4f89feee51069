//! Runs every interaction script in `testdata/`. Set `MULTIRAFT_REWRITE=1` to rewrite the
//! expected outputs from the actual ones (then read the diff before committing it).

#[test]
fn interaction_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    scripts.sort();
    let failures: Vec<String> = scripts
        .iter()
        .filter_map(|p| multiraft_testkit::interaction::run_file(p).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} script(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        scripts.len() >= 20,
        "expected at least 20 scripts, found {}",
        scripts.len()
    );
}
