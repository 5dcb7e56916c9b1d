//! The core's layers stay leaf-like (issue 20): the flow decoding (`src/flow/`)
//! imports neither the event readers (`events`) nor the loader (`datapath`),
//! and the event readers do not import the loader. Records and their decoding
//! live below both in `abi::record`, the pin layout and `Transport` in `pins`.
//! Read from the source, so a `use` that comes back fails here, whatever the
//! compiler would accept.

use std::path::{Path, PathBuf};

/// Each rule: the module directory under src/ and the crate modules its
/// files must not name.
const RULES: &[(&str, &[&str])] = &[("flow", &["events", "datapath"]), ("events", &["datapath"])];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The source without comments and string literals, so a doc comment that
/// mentions `crate::events` is no import.
fn code_of(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\''), not a lifetime.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The code's tokens: identifiers, `::`, and any other character alone.
fn tokens(code: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut t = c.to_string();
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                t.push(n);
                chars.next();
            }
            out.push(t);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push("::".into());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

/// Every crate module a file's code names at the start of a path:
/// `crate::m`, `super::m` when that `super` (repeated `depth` times) is the
/// crate root, and each member of a group, `crate::{m, n::x}`.
fn crate_modules_named(code: &str, depth: usize) -> Vec<String> {
    let t = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts_path = i == 0 || t[i - 1] != "::";
        let mut j = i;
        let from_root = if t[i] == "crate" && t.get(i + 1).is_some_and(|n| n == "::") {
            j = i + 2;
            true
        } else if t[i] == "super" {
            let mut supers = 0;
            while t.get(j).is_some_and(|n| n == "super") && t.get(j + 1).is_some_and(|n| n == "::") {
                supers += 1;
                j += 2;
            }
            supers == depth && depth > 0
        } else {
            false
        };
        if !(starts_path && from_root) {
            i = j.max(i + 1);
            continue;
        }
        if t.get(j).is_some_and(|n| n == "{") {
            // The first segment of each member of the group.
            let mut level = 0;
            let mut first = true;
            for tok in &t[j + 1..] {
                match tok.as_str() {
                    "{" => level += 1,
                    "}" if level == 0 => break,
                    "}" => level -= 1,
                    "," if level == 0 => first = true,
                    name if first && level == 0 => {
                        out.push(name.to_string());
                        first = false;
                    }
                    _ => {}
                }
            }
        } else if let Some(name) = t.get(j) {
            out.push(name.clone());
        }
        i = j.max(i + 1);
    }
    out
}

/// How many `super::` reach the crate root from this file of `src/<dir>/`.
fn depth_to_root(src: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(src).unwrap();
    let dirs = rel.components().count() - 1;
    // mod.rs is its directory's module; any other file is one below it.
    if file.file_name().is_some_and(|n| n == "mod.rs") { dirs } else { dirs + 1 }
}

fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, forbidden) in RULES {
        for file in rust_files(&src.join(dir)) {
            let code = code_of(&std::fs::read_to_string(&file).unwrap());
            for m in crate_modules_named(&code, depth_to_root(src, &file)) {
                if forbidden.contains(&m.as_str()) {
                    found.push(format!(
                        "{} names crate::{m}",
                        file.strip_prefix(src.parent().unwrap()).unwrap().display()
                    ));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn flow_and_events_import_nothing_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "layering broken (flow/ must not import events or datapath, events/ must not import datapath; \
         records and their decoding are abi::record, Transport and the pin layout are pins):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_check_sees_every_form_of_import() {
    let named = |code: &str, depth| crate_modules_named(&code_of(code), depth);
    assert_eq!(named("use crate::events::EventRef;", 1), ["events"]);
    assert_eq!(named("use crate::{abi, datapath::Pins};", 1), ["abi", "datapath"]);
    assert_eq!(named("use crate::{abi::{self, EventHdr}, events};", 1), ["abi", "events"]);
    assert_eq!(named("let t = crate::datapath::Transport::Perf;", 1), ["datapath"]);
    assert_eq!(named("use super::super::events::Event;", 2), ["events"]);
    assert_eq!(named("use super::events::Event;", 1), ["events"]);
    // `super::` of a file below flow/ is flow itself, not the crate.
    assert!(named("use super::Packet; use super::events::X;", 2).is_empty());
    assert_eq!(named("pub(crate) use crate :: {\n    events ,\n};", 1), ["events"]);
    // Comments and strings are not imports.
    assert!(named("// crate::events\n/* crate::datapath */ let s = \"crate::events\";", 1).is_empty());
}

#[test]
fn the_check_fails_on_an_import_put_back() {
    // The mutation check: a copy of flow/ and events/ with one of the old
    // imports re-added is refused, naming the file.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("src");
    for dir in ["flow", "events"] {
        for file in rust_files(&src.join(dir)) {
            let to = copy.join(file.strip_prefix(&src).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&file, &to).unwrap();
        }
    }
    assert!(violations(&copy).is_empty(), "the copy starts clean");
    for (file, line, expect) in [
        ("flow/mod.rs", "use crate::events::EventRef;", "src/flow/mod.rs names crate::events"),
        ("flow/filter.rs", "use crate::datapath::Transport;", "src/flow/filter.rs names crate::datapath"),
        ("flow/filter.rs", "use super::super::events::Event;", "src/flow/filter.rs names crate::events"),
        ("events/mod.rs", "use crate::datapath::{Pins, Transport};", "src/events/mod.rs names crate::datapath"),
    ] {
        let path = copy.join(file);
        let orig = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{line}\n{orig}")).unwrap();
        assert_eq!(violations(&copy), [expect], "after re-adding {line:?} to {file}");
        std::fs::write(&path, orig).unwrap();
    }
}
