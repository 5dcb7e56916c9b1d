//! `dpdbg tui` as a person uses it: in a terminal (tmux), on the lab, keys
//! sent, the screen read back; and the terminal as it was after quitting.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Bpffs, LabGuard, dpdbg};
use serde_json::Value;

/// A detached tmux session, killed when the test ends however it ends.
struct Tmux(String);

impl Tmux {
    fn start(command: &str) -> Tmux {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("dpdbg-tui-test-{}-{n}", std::process::id());
        let o = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "45", command])
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux is installed (scripts/setup.sh installs it)");
        assert!(o.status.success(), "tmux: {}", String::from_utf8_lossy(&o.stderr));
        Tmux(name)
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let o = Command::new("tmux").args(["send-keys", "-t", &self.0, k]).output().unwrap();
            assert!(o.status.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn screen(&self) -> String {
        let o = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The screen once `ok` holds for it; panics with the last screen after 15 s.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "waited for {what}; the screen shows:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `dpdbg serve`, stopped when the test ends.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

#[test]
fn the_dashboard_in_a_terminal() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let up = dpdbg(&fs.0, &state, &["lab", "up", "-o", "json"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let lab: Value = serde_json::from_slice(&up.stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    let (ip0, ip1) = (eps[0]["ipv4"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());
    let id1 = eps[1]["endpoint_id"].as_u64().unwrap().to_string();
    let host_if = eps[0]["host_if"].as_str().unwrap();
    // Traffic before and during: conntrack entries, then drops once endpoint 2 enforces.
    assert!(dpdbg(&fs.0, &state, &["lab", "traffic"]).status.success());

    // dpdbg serve holds the ring: the dashboard reads its events through the server.
    let socket = dir.path().join("dpdbg.sock");
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(&fs.0)
            .args(["serve", "--socket"])
            .arg(&socket)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "dpdbg serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Twice: on the node (maps read here, events through the server that
    // holds the ring), then from the server alone (`--server`).
    for remote in [false, true] {
        let cmd = if remote {
            format!(
                "{} --server {} tui --refresh 300; echo TUI-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 60",
                env!("CARGO_BIN_EXE_dpdbg"),
                socket.display()
            )
        } else {
            format!(
                "DPDBG_EVENTS_SOCKET={} {} --bpffs {} tui --refresh 300; echo TUI-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 60",
                socket.display(),
                env!("CARGO_BIN_EXE_dpdbg"),
                fs.0.display()
            )
        };
        let title = if remote { "dpdbg serve at" } else { "events through dpdbg serve at" };
        session(&cmd, title, &fs.0, &state, host_if, (ip0, ip1), &id1);
    }
}

/// One dashboard session: every view, keys, and the terminal after quitting.
fn session(
    cmd: &str,
    title: &str,
    bpffs: &std::path::Path,
    state: &std::path::Path,
    host_if: &str,
    (ip0, ip1): (&str, &str),
    id1: &str,
) {
    let t = Tmux::start(cmd);
    let s = t.wait_for("the overview", |s| s.contains("datapath    loaded") && s.contains(host_if));
    assert!(s.contains("1 Overview") && s.contains("6 Programs"), "{s}");
    assert!(s.contains(title), "the title says where the data comes from:\n{s}");

    t.keys(&["2"]);
    let s = t.wait_for("the endpoints", |s| s.contains("IDENTITY") && s.contains(ip1));
    assert!(s.contains(ip0) && s.contains(id1), "{s}");
    assert!(s.contains("lab/ep1") && s.contains("lab/ep2"), "the endpoints' names (issue 26):\n{s}");

    // Conntrack, filtered by typing the first endpoint's address.
    t.keys(&["4", "/"]);
    t.keys(&[ip0, "Enter"]);
    let s = t.wait_for("a filtered conntrack table", |s| s.contains(&format!("filter: {ip0} ")));
    let rows: Vec<&str> = s.lines().filter(|l| ["│tcp ", "│udp ", "│icmp"].iter().any(|p| l.starts_with(p))).collect();
    assert!(!rows.is_empty(), "{s}");
    assert!(rows.iter().all(|r| r.contains(ip0)), "every row has {ip0}:\n{s}");
    assert!(!s.contains("fd00:"), "IPv6 rows are filtered out:\n{s}");

    // Drops: enforce on endpoint 2 with no rule, send traffic, open the newest drop.
    let set = dpdbg(bpffs, state, &["bpf", "endpoint", "set", id1, "--enforce", "ingress"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let _ = dpdbg(bpffs, state, &["lab", "traffic"]);
    t.keys(&["5"]);
    let s = t.wait_for("drops", |s| s.contains("Policy denied (133)"));
    assert!(s.contains(&format!("-> {ip1}")) || s.contains("-> ["), "{s}");
    t.keys(&["g", "Enter"]);
    let s = t.wait_for("a drop's details", |s| s.contains("Ethernet") && s.contains("0000  "));
    assert!(s.contains("IPv4") || s.contains("IPv6"), "{s}");
    // Why it was dropped (issue 23, item 1): explained on the collector's
    // thread against the node's maps (through --server: by the node).
    let s = t.wait_for("the drop explained", |s| s.contains("Why: no rule matched: endpoint"));
    assert!(s.contains("(default deny)") && s.contains("today: the same (DROPPED Policy denied)"), "{s}");

    // Programs: our two, attached to the lab's interfaces.
    t.keys(&["6"]);
    t.wait_for("the programs", |s| s.contains("from_endpoint") && s.contains("to_endpoint") && s.contains("tcx"));

    // Help, then quit: the shell gets its terminal back in canonical mode.
    t.keys(&["?"]);
    t.wait_for("the help", |s| s.contains(" Keys ") && s.contains("quit"));
    t.keys(&["Escape", "q"]);
    let s = t.wait_for("the shell after quitting", |s| s.contains("TUI-EXIT="));
    assert!(s.contains("TUI-EXIT=0"), "{s}");
    assert!(s.lines().any(|l| l.trim() == "icanon"), "the terminal is out of raw mode:\n{s}");
    assert!(!s.contains("Overview"), "the alternate screen is gone:\n{s}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap().trim(),
        "0",
        "statistics off again"
    );
}
