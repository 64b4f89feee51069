//! The shape of the core's source, checked so that it stays what docs/design.md §3 describes:
//! a thin driver, files small enough to read, no import cycle among the core's modules, and
//! `Node::advance` called only by the driver, the shared ready loop and the crate-root
//! example (every other caller goes through `multiraft_core::testing`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines that are neither blank nor comments.
fn code_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .count()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue; // build output
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_driver_is_thin() {
    let lines = code_lines(&read(&src().join("driver.rs")));
    assert!(
        lines <= 250,
        "driver.rs has {lines} lines of code (at most 250)"
    );
}

#[test]
fn no_source_file_is_over_700_lines_of_code() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in files {
        let lines = code_lines(&read(&f));
        assert!(lines <= 700, "{} has {lines} lines of code", f.display());
    }
}

/// The top-level module a source file belongs to (`node/ready.rs` → `node`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn no_import_cycle_among_core_modules() {
    let lib = read(&src().join("lib.rs"));
    // Items re-exported at the crate root, and the module each comes from, so that
    // `crate::Config` counts as a use of `config`.
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        for item in items.split(|c: char| !c.is_alphanumeric() && c != '_') {
            if !item.is_empty() {
                reexported.insert(item.to_string(), module.to_string());
            }
        }
    }
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "lib")
        .collect();
    for f in &files {
        let module = module_of(f);
        let name = f.file_name().expect("a name").to_string_lossy();
        if module == "lib" || f.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        if name.ends_with("tests.rs") {
            continue;
        }
        let text = read(f);
        // Unit tests may use anything; only the code the crate ships counts.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let word: String = part
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let target = if modules.contains(&word) {
                    Some(word)
                } else {
                    reexported.get(&word).cloned()
                };
                if let Some(t) = target.filter(|t| *t != module) {
                    deps.entry(module.clone()).or_default().insert(t);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        visit(m, &deps, &mut Vec::new(), &mut done);
    }
    assert!(
        deps.contains_key("driver"),
        "the scan found the driver's imports"
    );
}

#[test]
fn only_the_driver_the_ready_loop_and_the_crate_example_call_advance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let allowed = [
        root.join("multiraft-core/src/driver.rs"),
        root.join("multiraft-core/src/testing.rs"),
        root.join("multiraft-core/src/lib.rs"),
        // Its definition, and the panic message that names it.
        root.join("multiraft-core/src/node/ready.rs"),
    ];
    let mut files = Vec::new();
    for krate in [
        "multiraft-core",
        "multiraft-testkit",
        "multiraft-storage-redb",
        "multiraft-transport-quic",
        "multiraft-examples",
    ] {
        rust_files(&root.join(krate), &mut files);
    }
    for f in files {
        if allowed.contains(&f) || f.ends_with("tests/layout.rs") {
            continue;
        }
        let text = read(&f);
        assert!(
            !text.contains("advance("),
            "{} calls advance( outside the driver and the shared ready loop",
            f.display()
        );
    }
}
