//! Replay: `monitor --write` then `monitor -r` gives the live events again,
//! through every filter and output; `observe --input-file` reads Hubble's
//! JSON back. Damaged and foreign files are named with their byte offset
//! after what could be read is printed.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::CliLab;
use serde_json::Value;

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn monitor_write_then_read_gives_the_live_events() {
    let lab = CliLab::up();
    let dir = lab.dir.path();
    let cap = dir.join("events.dpdbg");
    let o = lab.run(&["datapath", "config", "aggregation=none"]);
    assert!(o.status.success(), "{}", text(&o));
    let monitor = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .args(["monitor", "-o", "jsonl", "--until", "6s", "--write"])
        .arg(&cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = lab.run(&["lab", "traffic"]);
    assert!(t.status.success(), "{}", text(&t));
    let live = monitor.wait_with_output().unwrap();
    assert!(live.status.success(), "{}", text(&live));
    let live_lines = lines(&live);
    assert!(live_lines.len() >= 10, "{}", text(&live));

    // Played back: the same JSON lines, interface names and times included.
    let run = |args: &[&str]| lab.run(&[&["monitor", "-r", cap.to_str().unwrap()], args].concat());
    let back = run(&["-o", "jsonl"]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(lines(&back), live_lines);
    let first: Value = serde_json::from_str(&live_lines[0]).unwrap();
    assert!(first["interface"].as_str().is_some_and(|i| i.starts_with("dpl")), "{first}");

    // Filters as live: the ICMP events only, the same ones.
    let icmp = run(&["-o", "jsonl", "--proto", "icmp"]);
    let want: Vec<&String> = live_lines
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["ip_proto"].as_u64() == Some(1))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(lines(&icmp).iter().collect::<Vec<_>>(), want);
    // --count stops early, as live.
    assert_eq!(lines(&run(&["-o", "jsonl", "--count", "3"])), live_lines[..3].to_vec());
    // Text, one line an event after the banner; -v adds the layers.
    let plain = run(&[]);
    assert_eq!(lines(&plain).len(), live_lines.len() + 1, "{}", text(&plain));
    assert!(lines(&plain)[0].starts_with("Reading events from "), "{}", text(&plain));
    let verbose = run(&["-v"]);
    assert!(String::from_utf8_lossy(&verbose.stdout).contains("Ethernet  "), "{}", text(&verbose));
    // pcap: tcpdump reads every packet.
    let pcap = dir.join("events.pcap");
    let o = run(&["--pcap", pcap.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let td = Command::new("tcpdump").arg("-nr").arg(&pcap).output().unwrap();
    assert!(td.status.success(), "{}", text(&td));
    assert_eq!(String::from_utf8_lossy(&td.stdout).lines().count(), live_lines.len());

    // Cut short: what it holds is printed, then the offset.
    let whole = std::fs::read(&cap).unwrap();
    let cut = dir.join("cut.dpdbg");
    std::fs::write(&cut, &whole[..whole.len() - 5]).unwrap();
    let o = lab.run(&["-o", "jsonl", "monitor", "-r", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(lines(&o), live_lines[..live_lines.len() - 1].to_vec());
    let err: Value = serde_json::from_str(String::from_utf8_lossy(&o.stderr).lines().last().unwrap()).unwrap();
    assert!(err["error"].as_str().unwrap().contains("truncated at byte "), "{err}");
    // A foreign file (the pcap) is named as such.
    let o = lab.run(&["monitor", "-r", pcap.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a dpdbg capture"), "{}", text(&o));
    // Flags that mean nothing for a file are refused.
    for bad in [vec!["--since", "5s"], vec!["--until", "5s"], vec!["--write", "/tmp/x"]] {
        let o = run(&bad.iter().map(|s| s as &str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
    }
}

#[test]
fn observe_reads_hubble_json_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let flows = [
        r#"{"flow":{"time":"2026-12-02T08:00:00.000000001Z","verdict":"FORWARDED","IP":{"source":"198.18.1.1","destination":"198.18.1.2","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40000,"destination_port":80,"flags":{"SYN":true}}},"source":{"ID":101,"identity":1001,"namespace":"lab","labels":["k8s:app=ep1"],"pod_name":"ep1"},"destination":{"ID":102,"identity":1002},"Type":"L3_L4","node_name":"n1","event_type":{"type":4,"sub_type":5},"traffic_direction":"EGRESS","trace_observation_point":"FROM_ENDPOINT","is_reply":false,"interface":{"index":7,"name":"dpl1e1"},"Summary":"a"},"node_name":"n1","time":"2026-12-02T08:00:00.000000001Z"}"#,
        r#"{"flow":{"time":"2026-12-02T08:00:01.000000000Z","verdict":"DROPPED","drop_reason":133,"IP":{"source":"198.18.1.1","destination":"198.18.1.2","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":5000,"destination_port":53}},"source":{"ID":101,"identity":1001},"destination":{"ID":102,"identity":1002},"Type":"L3_L4","node_name":"n1","event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED","interface":{"index":8,"name":"dpl1e2"},"Summary":"b"},"node_name":"n1","time":"2026-12-02T08:00:01.000000000Z"}"#,
        r#"{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":3,"cpu":1},"node_name":"n1","time":"2026-12-02T08:00:01.500000000Z"}"#,
        r#"{"flow":{"time":"2026-12-02T08:00:02.000000000Z","verdict":"FORWARDED","IP":{"source":"fd00:dbd:1::1","destination":"fd00:dbd:1::2","ipVersion":"IPv6"},"l4":{"ICMPv6":{"type":128}},"source":{"ID":101,"identity":1001},"destination":{"ID":102,"identity":1002},"Type":"L3_L4","node_name":"n1","event_type":{"type":4},"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","interface":{"index":8,"name":"dpl1e2"},"Summary":"c"},"node_name":"n1","time":"2026-12-02T08:00:02.000000000Z"}"#,
    ];
    let file = dir.path().join("flows.json");
    std::fs::write(&file, flows.join("\n") + "\n").unwrap();
    let f = file.to_str().unwrap();
    let observe = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .args(["observe", "--input-file", f])
            .args(args)
            .env("DPDBG_SERVER", dir.path().join("nobody.sock"))
            .output()
            .unwrap()
    };
    // JSON out is the JSON in: every line read back whole.
    let o = observe(&["-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let got: Vec<Value> = lines(&o).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want: Vec<Value> = flows.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got, want);
    // Hubble's filters.
    let only = |args: &[&str]| -> Vec<String> {
        let o = observe(&[&["-o", "json"], args].concat());
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        lines(&o)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["flow"]["Summary"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(only(&["--verdict", "DROPPED"]), ["b"]);
    assert_eq!(only(&["--protocol", "tcp"]), ["a"]);
    assert_eq!(only(&["--to-port", "53"]), ["b"]);
    assert_eq!(only(&["-6"]), ["c"]);
    assert_eq!(only(&["--not", "--interface", "dpl1e2"]), ["a"]);
    assert_eq!(only(&["--tcp-flags", "SYN"]), ["a"]);
    assert_eq!(only(&["--ip", "198.18.1.0/24", "-t", "drop"]), ["b"]);
    assert_eq!(only(&["--last", "2"]), ["b", "c"]);
    assert_eq!(only(&["--first", "1"]), ["a"]);
    // The names the flows carry: Hubble's pod and label filters on them.
    assert_eq!(only(&["--pod", "lab/ep1"]), ["a"]);
    assert_eq!(only(&["--from-namespace", "lab"]), ["a"]);
    assert_eq!(only(&["-l", "app=ep1"]), ["a"]);
    assert_eq!(only(&["--not", "--from-label", "k8s:app=ep1", "--to-port", "53"]), ["b"]);
    assert!(only(&["--to-pod", "lab/ep1"]).is_empty());
    assert_eq!(only(&["--since", "2026-12-02T08:00:01.000000000Z", "--until", "2026-12-02T08:00:01.9Z"]), ["b"]);
    // Hubble's text formats, the pod in place of its address.
    let o = observe(&[]);
    let compact = lines(&o);
    assert_eq!(
        compact,
        [
            "Dec  2 08:00:00.000: lab/ep1:40000 (ID:1001) -> 198.18.1.2:80 (ID:1002) from-endpoint FORWARDED (a)",
            "Dec  2 08:00:01.000: 198.18.1.1:5000 (ID:1001) <> 198.18.1.2:53 (ID:1002) Policy denied DROPPED (b)",
            "EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(1) 3",
            "Dec  2 08:00:02.000: fd00:dbd:1::1 (ID:1001) <> fd00:dbd:1::2 (ID:1002) to-endpoint FORWARDED (c)",
        ],
        "{}",
        text(&o)
    );
    // From stdin too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["observe", "--input-file", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), std::fs::read(&file).unwrap().as_slice()).unwrap();
    assert_eq!(lines(&child.wait_with_output().unwrap()).len(), 4);
    // A cut file: what came before is printed, then the line and byte offset.
    let whole = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.json");
    let at = flows[0].len() + 1 + flows[1].len() + 1;
    std::fs::write(&cut, &whole[..at + 20]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["-o", "json", "observe", "--input-file", cut.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(lines(&o).len(), 2);
    let err: Value = serde_json::from_slice(&o.stderr).unwrap();
    assert!(err["error"].as_str().unwrap().contains(&format!("line 3 at byte {at}")), "{err}");
    // A foreign file.
    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, "{\"hello\": 1}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["observe", "--input-file", foreign.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1 at byte 0 is not Hubble's JSON"), "{}", text(&o));
}
