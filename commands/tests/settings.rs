//! Changing a running datapath from the CLI: `datapath config` (run-time
//! settings without a reload, seen by `monitor --pcap`), `bpf endpoint set`,
//! `bpf policy add` refusing an allow over a deny, and writes that the
//! kernel refuses reported as failures.

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

fn ok_json(out: Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lab_up(fs: &Bpffs, state: &Path) -> Value {
    ok_json(dpdbg(&fs.0, state, &["lab", "up", "--endpoints", "2", "-o", "json"]))
}

fn ping(netns: &str, dst: &str, count: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-c", count, "-i", "0.2", "-W", "1", dst])
        .output()
        .unwrap()
        .status
        .success()
}

/// Packets tcpdump reads from `pcap`.
fn pcap_packets(pcap: &Path) -> usize {
    let o = Command::new("tcpdump").arg("-nr").arg(pcap).output().expect("tcpdump");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().count()
}

/// Runs `monitor --pcap` while endpoint 0 pings endpoint 1 three times.
fn capture_pings(fs: &Bpffs, state: &Path, lab: &Value, pcap: &Path) -> (usize, String) {
    let mon = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .args(["monitor", "--until", "4s", "--pcap"])
        .arg(pcap)
        .env("DPDBG_LAB_STATE", state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let eps = lab["endpoints"].as_array().unwrap();
    assert!(ping(eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap(), "3"));
    let out = mon.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (pcap_packets(pcap), stderr(&out))
}

#[test]
fn config_changes_aggregation_without_a_reload() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _guard = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab = lab_up(&fs, &state);

    let rows = ok_json(dpdbg(&fs.0, &state, &["datapath", "config", "-o", "json"]));
    let row = |key: &str| rows.as_array().unwrap().iter().find(|r| r["key"] == key).unwrap().clone();
    assert_eq!(row("aggregation")["value"], "medium");
    assert_eq!(row("aggregation")["changeable"], "run time");
    assert_eq!(row("events")["changeable"], "load time");
    assert_eq!(row("snaplen")["value"], "128");
    assert!(row("clock")["value"].as_str().unwrap().starts_with("jiffies"), "{rows}");
    assert_eq!(row("map-size.ct4")["value"], "262144");

    // Load-time settings and unknown keys are refused as usage errors, naming the fix.
    let o = dpdbg(&fs.0, &state, &["datapath", "config", "snaplen=64"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fixed when the datapath is loaded") && stderr(&o).contains("--snaplen"),
        "{}",
        stderr(&o)
    );
    let o = dpdbg(&fs.0, &state, &["datapath", "config", "aggregation=sometimes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use none, medium or maximum"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["datapath", "config", "colour=blue"]);
    assert_eq!(o.status.code(), Some(2));

    // Aggregated: the capture holds the traced packets only, and says so once.
    let (medium, err) = capture_pings(&fs, &state, &lab, &dir.path().join("medium.pcap"));
    assert_eq!(medium, 2, "the first request, at the sender's and the receiver's hook");
    assert_eq!(err.matches("note: aggregation is medium").count(), 1, "{err}");
    assert!(err.contains("datapath config aggregation=none"), "{err}");

    let before = ok_json(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]));
    let o = dpdbg(&fs.0, &state, &["datapath", "config", "MonitorAggregation=none", "debug=true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("aggregation: medium -> none"), "{}", stdout(&o));
    assert!(stdout(&o).contains("debug: false -> true"), "{}", stdout(&o));
    let after = ok_json(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]));
    assert_eq!(before["programs"], after["programs"], "the same programs: no reload");
    assert_eq!(after["settings"]["aggregation"], "none");
    assert_eq!(after["settings"]["debug"], true);

    // Every packet now: 3 requests and 3 replies, each at two hooks.
    let (none, err) = capture_pings(&fs, &state, &lab, &dir.path().join("none.pcap"));
    assert_eq!(none, 12, "{err}");
    assert!(!err.contains("note: aggregation"), "{err}");

    let o = dpdbg(&fs.0, &state, &["datapath", "config", "aggregation=none"]);
    assert!(stdout(&o).contains("No change"), "{}", stdout(&o));
}

#[test]
fn endpoint_set_changes_every_address() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _guard = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab = lab_up(&fs, &state);
    let eps = lab["endpoints"].as_array().unwrap();
    let id = eps[1]["endpoint_id"].as_u64().unwrap().to_string();
    let (ns0, dst) = (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());
    assert!(ping(ns0, dst, "1"));
    ok_json(dpdbg(&fs.0, &state, &["bpf", "ct", "flush", "-o", "json"]));

    let set = ok_json(dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", &id, "--enforce", "both", "-o", "json"]));
    let addrs = set.as_array().unwrap();
    assert_eq!(addrs.len(), 2, "the IPv4 and the IPv6 address: {set}");
    assert!(addrs.iter().all(|a| a["enforce_ingress"] == true && a["enforce_egress"] == true), "{set}");
    assert!(!ping(ns0, dst, "1"), "enforced with no rule");

    let set = ok_json(dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", &id, "--identity", "4242", "-o", "json"]));
    assert!(set.as_array().unwrap().iter().all(|a| a["identity"] == 4242 && a["enforce_ingress"] == true), "{set}");
    let set = ok_json(dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", &id, "--enforce", "none", "-o", "json"]));
    assert!(set.as_array().unwrap().iter().all(|a| a["enforce_ingress"] == false && a["identity"] == 4242));
    assert!(ping(ns0, dst, "1"));

    let o = dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", "999", "--enforce", "both"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("endpoint 999 not found"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", &id]);
    assert_eq!(o.status.code(), Some(2), "nothing to change is a usage error");
    assert!(stderr(&o).contains("nothing to change"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["bpf", "endpoint", "set", &id, "--identity", "0"]);
    assert_eq!(o.status.code(), Some(2), "a reserved identity is a usage error");
    assert!(stderr(&o).contains("identity 0"), "{}", stderr(&o));
}

#[test]
fn policy_add_refuses_an_allow_over_a_deny() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    ok_json(dpdbg(&fs.0, &state, &["datapath", "load", "-o", "json"]));
    let rule = ["bpf", "policy", "add", "--endpoint", "1", "--identity", "5", "--port", "80", "--proto", "tcp"];
    let add = |action: &str| {
        let mut args = rule.to_vec();
        args.extend(["--direction", "ingress", "--action", action]);
        dpdbg(&fs.0, &state, &args)
    };
    let o = add("deny");
    assert!(o.status.success() && stdout(&o).contains("Rule added."), "{}", stderr(&o));
    let o = add("allow");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).is_empty(), "nothing on stdout: {}", stdout(&o));
    assert!(
        stderr(&o).contains("a deny rule already exists for endpoint 1 ingress from identity 5, port 80/6"),
        "{}",
        stderr(&o)
    );
    let o = add("deny");
    assert!(stdout(&o).contains("Rule already present"), "{}", stdout(&o));
    let rules = ok_json(dpdbg(&fs.0, &state, &["bpf", "policy", "get", "-o", "json"]));
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(rules[0]["action"], "deny");
}

#[test]
fn map_update_that_the_kernel_refuses_fails() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    ok_json(dpdbg(&fs.0, &state, &["datapath", "load", "-o", "json"]));
    let pin = fs.0.join("dpdbg/maps/policy");
    let pin = pin.to_str().unwrap();
    let key = "hex:010000000500000050000600";
    let value = "hex:000000000000000000000000000000000000000000000000";
    // BPF_EXIST on a key that is not there: ENOENT, not "Updated."
    let o = dpdbg(&fs.0, &state, &["map", "update", pin, key, value, "--flag", "exist"]);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert!(!stdout(&o).contains("Updated"), "{}", stdout(&o));
    assert!(stderr(&o).contains("No such file or directory") || stderr(&o).contains("not"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["map", "update", pin, key, value, "--flag", "noexist"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["map", "update", pin, key, value, "--flag", "noexist"]);
    assert_eq!(o.status.code(), Some(1), "a second noexist write is refused: {}", stdout(&o));
}
