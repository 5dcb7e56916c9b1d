//! `dpdbg observe` prints what `hubble observe` prints for the same flows
//! (issue 26, item 3): the lab's flows from `dpdbg serve`, taken once as
//! Hubble's JSON and once in each text format, the text held line for line
//! to lines worked out here from the JSON by Hubble's printer rules
//! (hubble/pkg/printer): pods for addresses, security identities on both
//! sides, reserved ones by name, StampMilli times in UTC, the reply arrow,
//! cilium's types, verdicts and summaries.

mod common;

use std::process::Output;

use common::{CliLab, Server};
use serde_json::Value;

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", show(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Go's `Jan _2 15:04:05.000` from protobuf's JSON time (RFC 3339, UTC).
fn stamp_milli(rfc3339: &str) -> String {
    // 2025-12-02T07:09:29.010123456Z
    let (date, time) = rfc3339.split_once('T').unwrap();
    let mut d = date.split('-').skip(1).map(|x| x.parse::<usize>().unwrap());
    let (month, day) = (d.next().unwrap(), d.next().unwrap());
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let milli: String = frac.chars().chain("000".chars()).take(3).collect();
    format!("{} {day:>2} {hms}.{milli}", MONTHS[month - 1])
}

/// `namespace/pod:port` or `ip:port` (`[ip]:port`), as Hubble's Hostname.
fn host(f: &Value, side: &str) -> String {
    let Some(ip) = f.get("IP") else {
        return f["ethernet"][side].as_str().unwrap_or("").to_string();
    };
    let l4 = &f["l4"];
    let port = l4["TCP"][format!("{side}_port")].as_u64().or(l4["UDP"][format!("{side}_port")].as_u64()).unwrap_or(0);
    let e = &f[side];
    let h = match e["pod_name"].as_str() {
        Some(pod) => format!("{}/{pod}", e["namespace"].as_str().unwrap()),
        None => ip[side].as_str().unwrap().to_string(),
    };
    match port {
        0 => h,
        p if h.contains(':') => format!("[{h}]:{p}"),
        p => format!("{h}:{p}"),
    }
}

fn identity(f: &Value, side: &str) -> String {
    match f[side]["identity"].as_u64().unwrap_or(0) {
        0 => "(unknown)".into(),
        1 => "(host)".into(),
        2 => "(world)".into(),
        n => format!("(ID:{n})"),
    }
}

fn flow_type(f: &Value) -> String {
    match f["event_type"]["type"].as_u64() {
        Some(4) => match f["trace_observation_point"].as_str() {
            Some("FROM_ENDPOINT") => "from-endpoint".into(),
            _ => "to-endpoint".into(),
        },
        // Cilium's reason texts; a kernel drop (sub_type 0) is cilium's 0, "Success".
        Some(1) => match f["event_type"]["sub_type"].as_u64().unwrap_or(0) {
            0 => "Success".into(),
            133 => "Policy denied".into(),
            181 => "Policy denied by denylist".into(),
            other => panic!("a drop the lab does not make: {other}: {f}"),
        },
        Some(5) => {
            let m =
                ["none", "L3-Only", "L3-L4", "L4-Only", "all"][f["policy_match_type"].as_u64().unwrap_or(0) as usize];
            format!("policy-verdict:{m} {}", f["traffic_direction"].as_str().unwrap())
        }
        other => panic!("an event type the datapath does not send: {other:?}"),
    }
}

fn verdict(f: &Value) -> String {
    let v = f["verdict"].as_str().unwrap();
    match (f["event_type"]["type"].as_u64(), v) {
        (Some(5), "FORWARDED") => "ALLOWED".into(),
        (Some(5), "DROPPED") => "DENIED".into(),
        _ => v.into(),
    }
}

/// Hubble's compact line for one JSON response.
fn compact(r: &Value) -> String {
    if let Some(l) = r.get("lost_events") {
        return format!(
            "EVENTS LOST: {} CPU({}) {}",
            l["source"].as_str().unwrap(),
            l["cpu"].as_u64().unwrap_or(0),
            l["num_events_lost"]
        );
    }
    let f = &r["flow"];
    let (mut src, mut dst) = (format!("{} {}", host(f, "source"), identity(f, "source")), String::new());
    dst.push_str(&format!("{} {}", host(f, "destination"), identity(f, "destination")));
    let arrow = match f["is_reply"].as_bool() {
        None => "<>",
        Some(false) => "->",
        Some(true) => {
            std::mem::swap(&mut src, &mut dst);
            "<-"
        }
    };
    format!(
        "{}: {src} {arrow} {dst} {} {} ({})",
        stamp_milli(f["time"].as_str().unwrap()),
        flow_type(f),
        verdict(f),
        f["Summary"].as_str().unwrap()
    )
}

/// Hubble's dict block for one flow.
fn dict(r: &Value) -> String {
    let f = &r["flow"];
    format!(
        "  TIMESTAMP: {}\n     SOURCE: {}\nDESTINATION: {}\n       TYPE: {}\n    VERDICT: {}\n    SUMMARY: {}\n",
        stamp_milli(f["time"].as_str().unwrap()),
        host(f, "source"),
        host(f, "destination"),
        flow_type(f),
        verdict(f),
        f["Summary"].as_str().unwrap()
    )
}

/// Hubble's table: Go's tabwriter (minimum width 2, padding 3) over the rows.
fn table(responses: &[Value]) -> String {
    let mut rows = vec![
        vec!["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
    ];
    for r in responses {
        let f = &r["flow"];
        rows.push(vec![
            stamp_milli(f["time"].as_str().unwrap()),
            host(f, "source"),
            host(f, "destination"),
            flow_type(f),
            verdict(f),
            f["Summary"].as_str().unwrap().to_string(),
        ]);
    }
    let widths: Vec<usize> =
        (0..5).map(|c| rows.iter().map(|r| r[c].chars().count() + 3).max().unwrap().max(2)).collect();
    rows.iter()
        .map(|r| {
            let mut line: String = (0..5).map(|c| format!("{:<w$}", r[c], w = widths[c])).collect();
            line.push_str(&r[5]);
            line + "\n"
        })
        .collect()
}

#[test]
fn observe_prints_what_hubble_prints_for_the_labs_flows() {
    let lab = CliLab::up();
    // Drops and policy verdicts beside the traces: ep2 takes only ICMP and
    // TCP to 8080 in (its replies traced too), not UDP.
    let allow = |proto: &'static str, port: Option<&'static str>| {
        let mut a = vec!["bpf", "policy", "add", "--endpoint", "102", "--direction", "ingress", "--action", "allow"];
        a.extend(["--proto", proto]);
        a.extend(port.map(|p| ["--port", p]).into_iter().flatten());
        a
    };
    for args in [
        vec!["bpf", "endpoint", "set", "102", "--enforce", "ingress"],
        allow("icmp", None),
        allow("icmpv6", None),
        allow("tcp", Some("8080")),
    ] {
        let o = lab.run(&args);
        assert!(o.status.success(), "{args:?}: {}", show(&o));
    }
    let socket = lab.dir.path().join("dpdbg.sock");
    let sock = socket.display().to_string();
    let _server = Server::start(&lab.fs.0, &socket, &[]);
    // The server reads names once a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(lab.run(&["lab", "traffic"]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // One window for every call: the same flows each time.
    let until = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let observe = |args: &[&str]| {
        let mut a = vec!["observe", "--server", sock.as_str(), "--until", until.as_str()];
        a.extend_from_slice(args);
        stdout(&lab.run(&a))
    };
    let json_text = observe(&["-o", "json"]);
    let responses: Vec<Value> = json_text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let flows: Vec<Value> = responses.iter().filter(|r| r.get("flow").is_some()).cloned().collect();
    assert!(flows.len() > 20, "{json_text}");
    let kinds = |t: u64| flows.iter().filter(|r| r["flow"]["event_type"]["type"] == t).count();
    assert!(kinds(4) > 0 && kinds(1) > 0 && kinds(5) > 0, "traces, drops and policy verdicts: {json_text}");

    // Compact, line for line.
    let got = observe(&[]);
    let want: Vec<String> = responses.iter().map(compact).collect();
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
    // The pods with their ports, security identities both sides, and the
    // summaries cilium writes.
    assert!(got.contains("lab/ep1:") && got.contains("lab/ep2:"), "{got}");
    let id1 = &lab_identity(&lab, 101);
    let id2 = &lab_identity(&lab, 102);
    assert!(got.contains(&format!("(ID:{id1}) -> lab/ep2:")), "{got}");
    assert!(got.contains(&format!("lab/ep2 (ID:{id2}) to-endpoint FORWARDED (ICMPv4 EchoRequest)")), "{got}");
    assert!(got.contains(" (ICMPv6 EchoRequest)") && got.contains("(TCP Flags: SYN)"), "{got}");
    assert!(got.contains("Policy denied DROPPED (") && got.contains(" INGRESS DENIED ("), "{got}");
    assert!(got.contains(" <- "), "replies turn the arrow: {got}");
    assert!(!got.contains("endpoint 10") && !got.contains("identity"), "no monitor line in Summary: {got}");

    // Dict and table, line for line.
    let want_dict: String = flows.iter().map(dict).collect::<Vec<_>>().join("------------\n");
    assert_eq!(observe(&["-o", "dict"]), want_dict);
    assert_eq!(observe(&["-o", "table"]), table(&flows));

    // The JSON read back (`--input-file`): the same lines, names included.
    let file = lab.dir.path().join("flows.json");
    std::fs::write(&file, &json_text).unwrap();
    let again = stdout(&lab.run(&["observe", "--input-file", file.to_str().unwrap()]));
    assert_eq!(again, got);
    let only_ep1 = stdout(&lab.run(&["observe", "--input-file", file.to_str().unwrap(), "--from-pod", "lab/ep1"]));
    assert!(!only_ep1.is_empty() && only_ep1.lines().all(|l| l.contains("lab/ep1")), "{only_ep1}");

    // Other times and numbers: RFC 3339 with milliseconds, addresses for pods.
    let other = observe(&["--time-format", "RFC3339Milli", "--ip-translation=false", "--print-node-name"]);
    let first = other.lines().next().unwrap();
    assert!(first.starts_with(&responses[0]["flow"]["time"].as_str().unwrap()[..19]), "{first}");
    assert!(first.contains("Z [") && !other.contains("lab/ep"), "{other}");
    // A table is aligned over all its rows: refused with --follow, as Hubble does.
    let o = lab.run(&["observe", "--server", &sock, "-f", "-o", "table"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("follow"), "{}", show(&o));
    let o = lab.run(&["observe", "--server", &sock, "--time-format", "Kitchen"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// The security identity of a lab endpoint.
fn lab_identity(lab: &CliLab, id: u32) -> u64 {
    let o = lab.run(&["bpf", "endpoint", "get", &id.to_string(), "-o", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["identity"].as_u64().unwrap_or_else(|| panic!("{v}"))
}
