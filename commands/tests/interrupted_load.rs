//! Issue 25, item 8: `dpdbg datapath load` killed part-way. Whatever instant
//! the kill lands on, `datapath status` names the state it left (loaded, not
//! loaded, or partial with exactly the pins missing) and exits 0, and the
//! next load completes, cleaning up the remnant and saying so.

mod common;

use common::{Bpffs, dpdbg};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: exit {:?}: {}", o.status.code(), stderr(&o));
    o
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v.as_array().unwrap_or_else(|| panic!("a list: {v}")).iter().map(|s| s.as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// The pins of a complete load that are not on the filesystem now.
fn missing_on_disk(root: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        dpdbg::datapath::Pins::required().into_iter().filter(|p| !root.join(p).exists()).collect();
    out.sort();
    out
}

/// `datapath load`, SIGKILLed after `delay`.
fn killed_load(bpffs: &Path, delay: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(["datapath", "load"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

#[test]
fn a_killed_load_is_named_by_status_and_repaired_by_the_next_load() {
    let fs = Bpffs::new();
    let state = fs.0.join("lab.json");
    let root = fs.0.join("dpdbg");
    let mut every = dpdbg::datapath::Pins::required();
    every.sort();

    // How long a whole load takes here (debug builds, a busy machine): the
    // kills are spread over it, so every stage of the load gets hit.
    let t = Instant::now();
    ok(dpdbg(&fs.0, &state, &["datapath", "load"]), "a first load");
    let full = t.elapsed();
    ok(dpdbg(&fs.0, &state, &["datapath", "unload"]), "unload");
    let steps = 18u32;
    let step = (full / steps).max(Duration::from_millis(10));

    let mut seen = BTreeSet::new();
    for i in 0..=steps + 1 {
        let delay = step * i;
        killed_load(&fs.0, delay);
        let what = format!("killed at {} ms (a load takes {} ms)", delay.as_millis(), full.as_millis());

        let o = ok(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]), &format!("{what}: status"));
        let st: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: {e}"));
        let on_disk = missing_on_disk(&root);
        let marker = root.join("loading").exists();
        let name = st["state"].as_str().unwrap_or_else(|| panic!("{what}: no state: {st}")).to_string();
        match name.as_str() {
            "loaded" => {
                assert!(on_disk.is_empty() && !marker, "{what}: loaded with {on_disk:?} missing, marker {marker}");
                assert_eq!(st["loaded"], true, "{what}");
                assert_eq!(st["programs"].as_array().map(Vec::len), Some(4), "{what}: {st}");
            }
            "not_loaded" => {
                assert_eq!(on_disk, every, "{what}: not loaded with pins on disk");
                assert!(!marker, "{what}: a load's marker is no 'not loaded'");
                assert_eq!(st["loaded"], false, "{what}");
            }
            "partial" => {
                assert_eq!(st["loaded"], false, "{what}");
                assert_eq!(strings(&st["partial"]["missing"]), on_disk, "{what}: the missing pins, as on disk");
                let present: Vec<String> = {
                    let mut p: Vec<String> = every.iter().filter(|p| !on_disk.contains(p)).cloned().collect();
                    p.sort();
                    p
                };
                assert_eq!(strings(&st["partial"]["present"]), present, "{what}");
                assert_eq!(st["partial"]["load_unfinished"], marker, "{what}: {st}");
                assert!(st["busy_pid"].is_null(), "{what}: the killed loader holds no lock: {st}");
                // The table says it too, and what to run.
                let o = ok(dpdbg(&fs.0, &state, &["datapath", "status"]), &format!("{what}: status table"));
                let table = String::from_utf8_lossy(&o.stdout).into_owned();
                assert!(table.contains("Datapath:    partial"), "{what}: {table}");
                assert!(table.contains("dpdbg datapath load"), "{what}: {table}");
                if let Some(first) = on_disk.first() {
                    assert!(table.contains(first.as_str()), "{what}: {table}");
                }
            }
            other => panic!("{what}: state {other:?}: {st}"),
        }

        let o = dpdbg(&fs.0, &state, &["datapath", "load"]);
        let err = stderr(&o);
        if name == "loaded" {
            assert_eq!(o.status.code(), Some(1), "{what}: {err}");
            assert!(err.contains("already loaded"), "{what}: {err}");
        } else {
            assert!(o.status.success(), "{what}: the next load after a {name} state: {err}");
            let note = err.contains("cleaned it up and loaded again");
            assert_eq!(note, name == "partial", "{what}: said it cleaned up exactly when it did: {err}");
            if name == "partial" {
                let unfinished = st["partial"]["load_unfinished"] == true;
                assert_eq!(err.contains("a previous load was interrupted"), unfinished, "{what}: {err}");
                for m in on_disk.iter().take(3) {
                    assert!(err.contains(m.as_str()), "{what}: names {m}: {err}");
                }
            }
            let o = ok(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]), &what);
            let st: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(st["state"], "loaded", "{what}: after the next load: {st}");
        }
        ok(dpdbg(&fs.0, &state, &["datapath", "unload"]), &format!("{what}: unload"));
        assert!(!root.exists(), "{what}: unload leaves nothing");
        eprintln!("{what}: {name} {}", st["partial"]);
        seen.insert(name);
    }
    // Kills spread over a whole load land before, inside and after it.
    assert!(seen.contains("partial"), "no kill landed inside a load: {seen:?}");
}
