//! `dpdbg monitor` against lab traffic: the JSON stream and the pcap agree,
//! and tshark reads the pcap with the same packets.

mod common;

use common::{Bpffs, LabGuard};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn dpdbg(bpffs: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dpdbg"));
    c.arg("--bpffs").arg(bpffs).env("DPDBG_LAB_STATE", state);
    c
}

#[test]
fn monitor_jsonl_and_pcap_agree_with_tshark() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let pcap = dir.path().join("out.pcap");
    let jsonl = dir.path().join("out.jsonl");

    let up = dpdbg(&fs.0, &state).args(["lab", "up", "--endpoints", "2"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let mut mon = dpdbg(&fs.0, &state)
        .args(["monitor", "-o", "jsonl", "--pcap", "-", "--until", "8s"])
        .stdout(std::fs::File::create(&pcap).unwrap())
        .stderr(std::fs::File::create(&jsonl).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));

    // A second reader is refused while the first runs.
    let second = dpdbg(&fs.0, &state).args(["monitor", "--until", "1s"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another process is reading"));

    let t = dpdbg(&fs.0, &state).args(["lab", "traffic", "-o", "json"]).stdout(Stdio::null()).status().unwrap();
    assert!(t.success());
    assert!(mon.wait().unwrap().success());

    let text = std::fs::read_to_string(&jsonl).unwrap();
    let flows: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(text.lines().last().unwrap().starts_with("Received"), "summary at exit: {text}");
    // ping, tcp and udp over both families, traced at two hooks each.
    assert!(flows.len() >= 12, "{text}");
    assert!(flows.iter().all(|f| f["type"] == "trace" && f["verdict"] == "FORWARDED"));
    for proto in [1, 6, 17, 58] {
        assert!(flows.iter().any(|f| f["ip_proto"] == proto), "protocol {proto} seen");
    }

    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-E", "separator=,", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst"])
        .args(["-e", "tcp.srcport", "-e", "udp.srcport", "-e", "tcp.dstport", "-e", "udp.dstport"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(rows.len(), flows.len(), "tshark reads as many packets as the stream shows");
    for (row, f) in rows.iter().zip(&flows) {
        let cols: Vec<&str> = row.split(',').collect();
        let src = if cols[0].is_empty() { cols[1] } else { cols[0] };
        let dst = if cols[2].is_empty() { cols[3] } else { cols[2] };
        assert_eq!(src, f["src_ip"].as_str().unwrap(), "{row} vs {f}");
        assert_eq!(dst, f["dst_ip"].as_str().unwrap(), "{row} vs {f}");
        let sport = [cols[4], cols[5]].into_iter().find(|c| !c.is_empty()).map(|c| c.parse::<u64>().unwrap());
        let dport = [cols[6], cols[7]].into_iter().find(|c| !c.is_empty()).map(|c| c.parse::<u64>().unwrap());
        assert_eq!(sport, f["src_port"].as_u64(), "{row} vs {f}");
        assert_eq!(dport, f["dst_port"].as_u64(), "{row} vs {f}");
    }
    let o = Command::new("tcpdump").arg("-nr").arg(&pcap).output().expect("tcpdump");
    assert!(o.status.success(), "tcpdump reads the pcap: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), flows.len());

    let down = dpdbg(&fs.0, &state).args(["lab", "down"]).output().unwrap();
    assert!(down.status.success());
}

/// A stopped monitor and a ping flood overflow the event buffer: the losses
/// are reported as they are noticed and totalled at exit, never silent.
fn lost_events_are_reported(transport: &str) {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    // A one-page ring and an event per packet.
    let load = dpdbg(&fs.0, &state)
        .args(["datapath", "load", "--events", transport, "--aggregation", "none", "--map-size", "events=4096"])
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let up = dpdbg(&fs.0, &state).args(["lab", "up", "--endpoints", "2", "-o", "json"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let up: Value = serde_json::from_slice(&up.stdout).unwrap();
    let (ns, dst) = (
        up["endpoints"][0]["netns"].as_str().unwrap().to_string(),
        up["endpoints"][1]["ipv4"].as_str().unwrap().to_string(),
    );

    let out = dir.path().join("out.jsonl");
    let err = dir.path().join("err.txt");
    let mut mon = dpdbg(&fs.0, &state)
        .args(["monitor", "-o", "jsonl", "--until", "6s"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = mon.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let flood =
        Command::new("ip").args(["netns", "exec", &ns, "ping", "-f", "-c", "3000", "-W", "1", &dst]).output().unwrap();
    assert!(flood.status.success(), "{}", String::from_utf8_lossy(&flood.stderr));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(mon.wait().unwrap().success());

    let text = std::fs::read_to_string(&out).unwrap();
    let reported: u64 = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["lost_events"].as_u64())
        .sum();
    let delivered = text.lines().filter(|l| l.contains("\"type\"")).count();
    assert!(reported > 0, "losses reported in the stream ({delivered} events delivered)");
    let summary = std::fs::read_to_string(&err).unwrap();
    assert!(summary.contains(&format!("lost {reported}")), "the exit summary totals them: {summary}");
    // 3000 echo requests and replies at two hooks each: every event is either delivered or counted lost.
    assert!(delivered as u64 + reported >= 4 * 3000, "{delivered} delivered + {reported} lost");
}

#[test]
fn lost_events_ringbuf() {
    lost_events_are_reported("ringbuf");
}

#[test]
fn lost_events_perf() {
    lost_events_are_reported("perf");
}

/// Events wait in the ring until a reader comes: `--since` skips the old
/// ones, `-n` stops after a count, `--type`/`--verdict` select.
#[test]
fn since_count_and_filters() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let run = |args: &[&str]| dpdbg(&fs.0, &state).args(args).output().unwrap();
    let up = run(&["lab", "up", "--endpoints", "2", "-o", "json"]);
    assert!(up.status.success());
    let up: Value = serde_json::from_slice(&up.stdout).unwrap();
    let id2 = up["endpoints"][1]["endpoint_id"].to_string();
    let ident1 = up["endpoints"][0]["identity"].to_string();
    let host2 = up["endpoints"][1]["host_if"].as_str().unwrap().to_string();
    let ips: Vec<String> =
        ["ipv4", "ipv6"].iter().map(|f| up["endpoints"][1][f].as_str().unwrap().to_string()).collect();
    let mut add = vec![
        "bpf",
        "endpoint",
        "add",
        "--id",
        &id2,
        "--identity",
        "1002",
        "--interface",
        &host2,
        "--enforce",
        "ingress",
    ];
    for ip in &ips {
        add.extend(["--ip", ip.as_str()]);
    }
    assert!(run(&add).status.success());
    for proto in ["icmp", "icmpv6"] {
        let r = run(&[
            "bpf",
            "policy",
            "add",
            "--endpoint",
            &id2,
            "--identity",
            &ident1,
            "--proto",
            proto,
            "--direction",
            "ingress",
            "--action",
            "allow",
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }

    // Traffic with nobody reading: its events wait in the ring.
    assert!(run(&["lab", "traffic"]).status.success());
    std::thread::sleep(Duration::from_millis(2500));
    let fresh = run(&["monitor", "-o", "jsonl", "--since", "2s", "--until", "1s"]);
    assert!(fresh.status.success());
    let fresh_events = String::from_utf8_lossy(&fresh.stdout).lines().count();
    assert_eq!(fresh_events, 0, "--since 2s skips events from 2.5s ago");
    assert!(run(&["lab", "traffic"]).status.success());
    let denied =
        run(&["monitor", "-o", "jsonl", "--since", "1m", "--type", "drop", "--verdict", "deny", "--until", "1s"]);
    let flows: Vec<Value> =
        String::from_utf8_lossy(&denied.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!flows.is_empty());
    assert!(flows.iter().all(|f| f["type"] == "drop" && f["verdict"] == "DROPPED" && f["drop_reason"] == 133));
    assert!(flows.iter().all(|f| f["ip_proto"] == 6 || f["ip_proto"] == 17), "ICMP is allowed, TCP and UDP are not");

    assert!(run(&["lab", "traffic"]).status.success());
    let three =
        run(&["monitor", "-o", "jsonl", "--since", "1m", "--count", "3", "--type", "policy-verdict", "--until", "5s"]);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&three.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "-n 3 stops after three matching events");
    assert!(
        lines.iter().all(|f| f["type"] == "policy-verdict" && f["endpoint_id"] == up["endpoints"][1]["endpoint_id"])
    );
}

/// Text lines start with the wall-clock time and name the interface; -j is
/// JSON lines with an RFC 3339 time; -t filters by type; -vv adds the hexdump.
#[test]
fn monitor_lines_carry_time_and_interface_names() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let up = dpdbg(&fs.0, &state).args(["lab", "up", "-o", "json"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let up: Value = serde_json::from_slice(&up.stdout).unwrap();
    let (ns, dst, host_if) = (
        up["endpoints"][0]["netns"].as_str().unwrap().to_string(),
        up["endpoints"][1]["ipv4"].as_str().unwrap().to_string(),
        up["endpoints"][0]["host_if"].as_str().unwrap().to_string(),
    );
    let ping = || {
        let o = Command::new("ip").args(["netns", "exec", &ns, "ping", "-c", "1", "-W", "1", &dst]).output().unwrap();
        assert!(o.status.success());
    };
    let watch = |args: &[&str]| {
        let child = dpdbg(&fs.0, &state)
            .args(["monitor", "--until", "3s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        ping();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let text = watch(&["-t", "trace", "-vv"]);
    let first = text.lines().find(|l| l.contains("endpoint")).expect("a trace line");
    let stamp = first.split_whitespace().next().unwrap();
    assert!(stamp.len() == 27 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'), "{first}");
    assert!(first.contains(&format!("({host_if})")), "the interface by name: {first}");
    assert!(text.contains("IPv4") && text.contains("0000  "), "-vv shows layers and a hexdump: {text}");
    let json = watch(&["-j"]);
    let v: Value = serde_json::from_str(json.lines().next().expect("a JSON line")).unwrap();
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(v["interface"], host_if.as_str());
}
