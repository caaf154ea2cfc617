//! The layering the crate docs promise, checked on the source: the packet core names nothing
//! from `dpdk` (so it builds and is tested without DPDK, and no import cycle runs through the
//! wrapper), and inside `dpdk/` imports point one way.
//!
//! A source check rather than only `cargo build --no-default-features`: that build passes as
//! long as the imported item happens to be built without the feature (as `dpdk::prefetch`
//! was), which is exactly how the cycle came in.

use std::fs;
use std::path::{Path, PathBuf};

/// Modules (first path component under src/) that are not packet core: the DPDK wrapper and
/// the worker loop that joins it to the pipeline. `lib.rs` only declares modules.
const NOT_CORE: &[&str] = &["dpdk", "worker.rs", "lib.rs"];

/// For each file of `dpdk/`, the siblings it may import. Anything else (in particular an
/// import back down the list) is a cycle in the making.
const DPDK_IMPORTS: &[(&str, &[&str])] = &[
    ("error.rs", &[]),
    ("mbuf.rs", &["error"]),
    ("ring.rs", &["error", "mbuf"]),
    ("port.rs", &["error", "mbuf"]),
    ("burst.rs", &["mbuf", "port", "ring"]),
    ("eal.rs", &["error"]),
    ("rss.rs", &[]),
    ("telemetry.rs", &["error"]),
    ("mod.rs", &["burst", "eal", "error", "mbuf", "port", "ring", "rss", "telemetry"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source with `//` comments and string literals blanked, so that docs and
/// `feature = "dpdk"` do not count as uses.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
                out.push(' ');
            } else if c == '"' {
                in_str = true;
                out.push(' ');
            } else if c == '/' && chars.peek() == Some(&'/') {
                break;
            } else {
                out.push(c);
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        }
        out.push('\n');
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Lines (1-based) where `word` appears as a whole identifier in `code`.
fn uses_of(code: &str, word: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(word) {
            let start = from + at;
            let end = start + word.len();
            let before = line[..start].chars().next_back();
            let after = line[end..].chars().next();
            if !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char) {
                lines.push(n + 1);
                break;
            }
            from = end;
        }
    }
    lines
}

/// Every place a packet-core source names `dpdk` or `dpdk_sys`, as "file:line".
fn core_violations(file: &str, source: &str) -> Vec<String> {
    let code = code_only(source);
    let mut found: Vec<usize> = uses_of(&code, "dpdk").into_iter().chain(uses_of(&code, "dpdk_sys")).collect();
    found.sort_unstable();
    found.into_iter().map(|n| format!("{file}:{n}")).collect()
}

/// Siblings of `dpdk/` that `source` reaches through `super::` but may not.
fn dpdk_violations(file: &str, source: &str, allowed: &[&str]) -> Vec<String> {
    let code = code_only(source);
    let siblings = DPDK_IMPORTS.iter().map(|(f, _)| f.trim_end_matches(".rs")).filter(|m| *m != "mod");
    let mut out = Vec::new();
    for sibling in siblings {
        if allowed.contains(&sibling) || format!("{sibling}.rs") == file {
            continue;
        }
        for n in uses_of(&code, &format!("super::{sibling}")) {
            out.push(format!("dpdk/{file}:{n} imports {sibling}"));
        }
        if file == "mod.rs" {
            continue;
        }
        for n in uses_of(&code, &format!("crate::dpdk::{sibling}")) {
            out.push(format!("dpdk/{file}:{n} imports {sibling}"));
        }
    }
    out
}

#[test]
fn packet_core_imports_nothing_from_dpdk() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut checked = 0;
    let mut violations = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(src()).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap();
        if NOT_CORE.contains(&top) {
            continue;
        }
        let source = fs::read_to_string(path).unwrap();
        violations.extend(core_violations(&rel.display().to_string(), &source));
        checked += 1;
    }
    // The walk found the core (a moved src/ would otherwise pass vacuously).
    assert!(checked >= 30, "only {checked} packet-core files found under {}", src().display());
    assert!(
        violations.is_empty(),
        "the packet core must not name dpdk (move what it needs out of dpdk/, as cpu_hint.rs did):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn dpdk_imports_point_one_way() {
    let dir = src().join("dpdk");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let Some((_, allowed)) = DPDK_IMPORTS.iter().find(|(f, _)| *f == name) else {
            violations.push(format!("dpdk/{name} is not in DPDK_IMPORTS: say what it may import"));
            continue;
        };
        violations.extend(dpdk_violations(name, &fs::read_to_string(path).unwrap(), allowed));
    }
    assert!(violations.is_empty(), "imports inside dpdk/ must point one way:\n  {}", violations.join("\n  "));
}

// The checks themselves, on known-bad and known-good text, so that they can fail.

#[test]
fn core_check_finds_imports_and_ignores_docs_and_features() {
    let bad = "use crate::dpdk::prefetch;\nfn f() { super::dpdk::x(); }\nuse crate::{dpdk, wire};\n";
    assert_eq!(core_violations("a.rs", bad), ["a.rs:1", "a.rs:2", "a.rs:3"]);
    assert_eq!(core_violations("b.rs", "use dpdk_sys::rte_mbuf;\n"), ["b.rs:1"]);
    let fine =
        "//! Unlike dpdk, this is pure.\n#[cfg(feature = \"dpdk\")]\nlet s = \"a \\\" dpdk\";\nfn dpdk_free() {}\n";
    assert_eq!(core_violations("c.rs", fine), Vec::<String>::new());
}

#[test]
fn dpdk_check_finds_an_import_back_down() {
    let mbuf = "use super::error::DpdkError;\nuse super::port::Port;\n";
    assert_eq!(dpdk_violations("mbuf.rs", mbuf, &["error"]), ["dpdk/mbuf.rs:2 imports port"]);
    let burst = "use super::mbuf::Mbuf;\nuse super::ring::RingConsumer;\n";
    assert_eq!(dpdk_violations("burst.rs", burst, &["mbuf", "port", "ring"]), Vec::<String>::new());
}
