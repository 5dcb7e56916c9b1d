//! `--snaplen` as tcpdump users expect it (issue 23, item 4): a whole
//! Ethernet frame at 1518 and a jumbo frame at 9216, sent by ping between
//! lab endpoints, written by `monitor --pcap` and decoded whole by tshark;
//! a snap length past 9216 refused.

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("ip");
    assert!(o.status.success(), "ip {}: {}", args.join(" "), stderr(&o));
}

/// One ICMP echo request's frame as tshark decoded it.
#[derive(Debug, PartialEq)]
struct Frame {
    len: u64,
    cap_len: u64,
    ip_len: u64,
    /// tshark's check of the ICMP checksum over the data it has: 1 good,
    /// 0 bad (a byte lost or changed), 2 unverified (the capture was cut).
    checksum: String,
}

/// Loads the datapath at `snaplen`, brings the lab up on it with every veth
/// at `mtu`, pings ep2 from ep1 with each payload size while a monitor
/// writes its pcap, and returns the echo requests tshark reads from it.
fn capture(snaplen: &str, mtu: u32, sizes: &[usize]) -> Vec<Frame> {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let o = dpdbg(&fs.0, &state, &["datapath", "load", "--snaplen", snaplen]);
    assert!(o.status.success(), "load --snaplen {snaplen}: {}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["lab", "up", "--endpoints", "2", "-o", "json"]);
    assert!(o.status.success(), "lab up: {}", stderr(&o));
    let lab: Value = serde_json::from_slice(&o.stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    for ep in eps {
        let mtu = mtu.to_string();
        ip(&["link", "set", "dev", ep["host_if"].as_str().unwrap(), "mtu", &mtu]);
        ip(&["-n", ep["netns"].as_str().unwrap(), "link", "set", "dev", "eth0", "mtu", &mtu]);
    }
    let (from_ns, to) = (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());

    let pcap = dir.path().join("out.pcap");
    let mut mon = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .env("DPDBG_LAB_STATE", &state)
        .args(["monitor", "-o", "jsonl", "--pcap", "-", "--until", "6s"])
        .stdout(std::fs::File::create(&pcap).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    for size in sizes {
        let o = Command::new("ip")
            .args(["netns", "exec", from_ns, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", &size.to_string(), to])
            .output()
            .expect("ping");
        assert!(o.status.success(), "ping -s {size}: {}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    }
    assert!(mon.wait().unwrap().success());

    let o = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-Y", "icmp.type == 8", "-T", "fields", "-E", "separator=,", "-E", "occurrence=f"])
        .args(["-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.len", "-e", "icmp.checksum.status"])
        .output()
        .expect("tshark");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .map(|l| {
            let c: Vec<&str> = l.splitn(4, ',').collect();
            Frame {
                len: c[0].parse().unwrap(),
                cap_len: c[1].parse().unwrap(),
                ip_len: c[2].parse().unwrap(),
                checksum: c.get(3).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// Each echo request is seen twice (leaving ep1, reaching ep2).
fn assert_frames(got: &[Frame], want: &[(u64, u64)], snaplen: &str) {
    let mut expect = Vec::new();
    for &(len, cap) in want {
        for _ in 0..2 {
            expect.push((len, cap, len - 14));
        }
    }
    let seen: Vec<(u64, u64, u64)> = got.iter().map(|f| (f.len, f.cap_len, f.ip_len)).collect();
    assert_eq!(seen, expect, "snaplen {snaplen}: {got:?}");
    for f in got {
        let want = if f.len == f.cap_len { "1" } else { "2" };
        assert_eq!(f.checksum, want, "snaplen {snaplen}: the ICMP checksum over what was captured: {f:?}");
    }
}

#[test]
fn snaplen_1518_captures_a_whole_ethernet_frame() {
    // 1472 bytes of ICMP data: a 1500-byte IP packet, a 1514-byte frame.
    // With the veths at MTU 9000 a jumbo frame is cut to the snap length.
    let got = capture("1518", 9000, &[1472, 8972]);
    assert_frames(&got, &[(1514, 1514), (9014, 1518)], "1518");
}

#[test]
fn snaplen_9216_captures_a_jumbo_frame() {
    let got = capture("9216", 9000, &[1472, 8972, 56]);
    assert_frames(&got, &[(1514, 1514), (9014, 9014), (98, 98)], "9216");
}

#[test]
fn snaplen_past_a_jumbo_frame_is_refused() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    for args in [&["datapath", "load", "--snaplen", "9217"][..], &["serve", "--load", "--snaplen", "9217"]] {
        let o = dpdbg(&fs.0, &state, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("9217 is not in 0..=9216"), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--snaplen"), "{args:?}: {}", stderr(&o));
    }
    assert!(!Path::new(&fs.0).join("dpdbg").exists(), "a refused load pins nothing");
    let o = dpdbg(&fs.0, &state, &["datapath", "load", "--snaplen", "9216", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["datapath", "config", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let snap = rows.as_array().unwrap().iter().find(|r| r["key"] == "snaplen").unwrap();
    assert_eq!(snap["value"], "9216");
}
