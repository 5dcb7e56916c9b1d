//! Fixtures shared by the end-to-end tests: a private bpffs mount and a veth
//! pair with a namespace, both removed in Drop even when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use dpdbg::sys;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: tests run in parallel.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub struct TestBpffs {
    path: PathBuf,
}

impl TestBpffs {
    pub fn new() -> TestBpffs {
        let path = tempfile::Builder::new().prefix("dpdbg-test-bpffs-").tempdir().unwrap().keep();
        sys::mount_bpffs(&path).expect("mount a private bpffs");
        TestBpffs { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestBpffs {
    fn drop(&mut self) {
        let pins = dpdbg::datapath::Pins::new(&self.path);
        if pins.root().exists() {
            let _ = dpdbg::datapath::unload(&self.path);
        }
        let _ = sys::unmount(&self.path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth pair: `host` in this namespace, its peer in namespace `netns`.
pub struct Veth {
    pub host: String,
    pub netns: String,
}

impl Veth {
    pub fn new() -> Veth {
        let host = unique("dpt");
        let netns = format!("{host}-ns");
        sh("ip", &["netns", "add", &netns]);
        let v = Veth { host: host.clone(), netns: netns.clone() };
        sh("ip", &["link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &netns]);
        sh("ip", &["link", "set", &host, "up"]);
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
        let _ = Command::new("ip").args(["link", "del", &self.host]).output();
    }
}

/// Program ids bpftool lists right now.
pub fn bpftool_prog_ids() -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&sh("bpftool", &["-j", "prog", "show"])).unwrap();
    v.as_array().unwrap().iter().filter_map(|p| p["id"].as_u64()).collect()
}

/// (link id, prog id) of every BPF link bpftool lists right now.
pub fn bpftool_links() -> Vec<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(&sh("bpftool", &["-j", "link", "show"])).unwrap();
    v.as_array().unwrap().iter().map(|l| (l["id"].as_u64().unwrap(), l["prog_id"].as_u64().unwrap_or(0))).collect()
}

/// Map ids bpftool lists right now.
pub fn bpftool_map_ids() -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&sh("bpftool", &["-j", "map", "show"])).unwrap();
    v.as_array().unwrap().iter().filter_map(|p| p["id"].as_u64()).collect()
}
