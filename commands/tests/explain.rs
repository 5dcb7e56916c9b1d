//! Explained drops (issue 23, item 1): `monitor --explain` names the rule
//! behind each denial of a burst of denied traffic in the lab, at every
//! policy level the datapath has (L3-L4, L3-Only, L4-Only, all, and no rule:
//! the default deny); `dpdbg explain` explains a `monitor -j` line and an
//! `observe -o json` flow, and says so when a rule changed since the drop;
//! the rate limit counts what it skips.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Bpffs, LabGuard, Server, dpdbg};
use serde_json::Value;

/// A lab on a private bpffs; down, unmounted and removed on drop (fields drop in this order).
struct CliLab {
    _guard: LabGuard,
    fs: Bpffs,
    dir: tempfile::TempDir,
    state: std::path::PathBuf,
}

impl CliLab {
    fn run(&self, args: &[&str]) -> Output {
        dpdbg(&self.fs.0, &self.state, args)
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One endpoint of the lab: its network namespace and IPv4 address.
struct Ep {
    ns: String,
    ip: String,
}

/// Sends from `from`'s namespace: UDP datagrams of 1000 bytes (longer than
/// the default snap length, so the captured packet is cut) or a TCP SYN.
fn send(from: &Ep, to: &Ep, proto: &str, port: u16, count: usize) {
    let script = match proto {
        "udp" => format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range({count}): s.sendto(b'x'*1000,('{}',{port}))",
            to.ip
        ),
        _ => format!(
            "import socket\nfor i in range({count}):\n s=socket.socket()\n s.settimeout(0.3)\n s.connect_ex(('{}',{port}))\n s.close()",
            to.ip
        ),
    };
    let o = Command::new("ip").args(["netns", "exec", &from.ns, "python3", "-c", &script]).output().unwrap();
    assert!(o.status.success(), "sending {proto}/{port}: {}", String::from_utf8_lossy(&o.stderr));
}

/// `bpf policy OP` of the rule keyed [endpoint, direction, identity, proto, port].
fn policy(lab: &CliLab, op: &str, [ep, dir, identity, proto, port]: [&str; 5], action: Option<&str>) {
    let mut a =
        vec!["bpf", "policy", op, "--endpoint", ep, "--direction", dir, "--identity", identity, "--proto", proto];
    if port != "0" {
        a.extend(["--port", port]);
    }
    if let Some(action) = action {
        a.extend(["--action", action]);
    }
    ok(&lab.run(&a));
}

/// A monitor in the background for as long as `burst` runs, then stopped;
/// its stdout and stderr.
fn monitor_during(lab: &CliLab, args: &[&str], burst: impl FnOnce()) -> (String, String) {
    monitor_beside(lab, None, args, burst)
}

/// As `monitor_during`, reading through `dpdbg serve` at `socket` when one holds the ring.
fn monitor_beside(
    lab: &CliLab,
    socket: Option<&std::path::Path>,
    args: &[&str],
    burst: impl FnOnce(),
) -> (String, String) {
    let out = lab.dir.path().join("mon.out");
    let err = lab.dir.path().join("mon.err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .arg("monitor")
        .args(args)
        .env("DPDBG_LAB_STATE", &lab.state)
        .env("DPDBG_EVENTS_SOCKET", socket.unwrap_or(std::path::Path::new("/nonexistent/dpdbg.sock")))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // The ring is opened within this: events before it are not read.
    std::thread::sleep(Duration::from_millis(800));
    burst();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    let (o, e) = (std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&err).unwrap());
    assert!(st.success(), "monitor: {st}\n{o}\n{e}");
    (o, e)
}

fn lines(s: &str) -> Vec<Value> {
    s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The lab of these tests: three endpoints; ep1 denies identity 1002 on
/// ingress (L3-Only), ep2 allows 1001 on tcp/8080 and denies 1001 udp/5353
/// (L3-L4) and anyone's udp/6000 (L4-Only), ep3 denies everything on egress
/// (all). Anything else to ep2 is denied by default (no rule).
fn lab() -> (CliLab, [Ep; 3]) {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let guard = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab = CliLab { _guard: guard, fs, dir, state };
    let eps: Value = serde_json::from_str(&ok(&lab.run(&["lab", "up", "--endpoints", "3", "-o", "json"]))).unwrap();
    let ep = |i: usize| Ep {
        ns: eps["endpoints"][i]["netns"].as_str().unwrap().to_string(),
        ip: eps["endpoints"][i]["ipv4"].as_str().unwrap().to_string(),
    };
    ok(&lab.run(&["bpf", "endpoint", "set", "101", "--enforce", "ingress"]));
    ok(&lab.run(&["bpf", "endpoint", "set", "102", "--enforce", "ingress"]));
    ok(&lab.run(&["bpf", "endpoint", "set", "103", "--enforce", "egress"]));
    policy(&lab, "add", ["101", "ingress", "1002", "any", "0"], Some("deny"));
    policy(&lab, "add", ["102", "ingress", "1001", "tcp", "8080"], Some("allow"));
    policy(&lab, "add", ["102", "ingress", "1001", "udp", "5353"], Some("deny"));
    policy(&lab, "add", ["102", "ingress", "any", "udp", "6000"], Some("deny"));
    policy(&lab, "add", ["103", "egress", "any", "any", "0"], Some("deny"));
    (lab, [ep(0), ep(1), ep(2)])
}

/// The drop event of a monitor -j stream for a destination port.
fn drop_to(events: &[Value], port: u64) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "drop" && e["dst_port"] == port)
        .unwrap_or_else(|| panic!("no drop to port {port} in {events:#?}"))
        .clone()
}

#[test]
fn monitor_explain_names_the_rule_behind_each_denial() {
    let (lab, [ep1, ep2, ep3]) = lab();

    let burst = || {
        send(&ep1, &ep2, "udp", 5353, 2); // L3-L4 deny
        send(&ep1, &ep2, "udp", 6000, 2); // L4-Only deny
        send(&ep2, &ep1, "udp", 4000, 2); // L3-Only deny at ep1
        send(&ep3, &ep1, "udp", 9999, 2); // all, at ep3's egress
        send(&ep1, &ep2, "tcp", 7777, 1); // no rule: default deny
        send(&ep1, &ep2, "tcp", 8080, 1); // allowed: not explained
    };
    let (out, err) = monitor_during(&lab, &["-j", "--explain", "--explain-rate", "1000"], burst);
    let events = lines(&out);

    let want = [
        (5353u64, 181u64, Some("deny identity 1001 udp/5353 on endpoint 102 ingress (L3-L4)"), "L3-L4", 102u64),
        (6000, 181, Some("deny any peer udp/6000 on endpoint 102 ingress (L4-Only)"), "L4-Only", 102),
        (4000, 181, Some("deny identity 1002 any port on endpoint 101 ingress (L3-Only)"), "L3-Only", 101),
        (9999, 181, Some("deny any peer any port on endpoint 103 egress (all)"), "all", 103),
        (7777, 133, None, "none", 102),
    ];
    for (port, reason, rule, level, ep) in want {
        let d = drop_to(&events, port);
        assert_eq!((d["drop_reason"].as_u64(), d["endpoint_id"].as_u64()), (Some(reason), Some(ep)), "{d}");
        let x = &d["explanation"];
        assert_eq!(x["changed"], false, "{port}: {x:#}");
        assert_eq!(x["policy_level"], level, "{port}: {x:#}");
        assert_eq!(x["now"]["verdict"], "DROPPED", "{port}: {x:#}");
        assert_eq!(x["now"]["reason"]["code"].as_u64(), Some(reason), "{port}: {x:#}");
        assert_eq!(x["then"]["reason"]["code"].as_u64(), Some(reason), "{port}: {x:#}");
        assert_eq!(x["conntrack"], "new", "{port}: {x:#}");
        assert_eq!(x["enforced"], true, "{port}: {x:#}");
        // Lab peers are endpoints: the identity came from the endpoints map.
        assert_eq!(x["identity"]["source"], "endpoint", "{port}: {x:#}");
        let summary = x["summary"].as_str().unwrap();
        match rule {
            Some(r) => {
                let shown = format!(
                    "{} {} {} on endpoint {} {} ({})",
                    x["rule"]["action"].as_str().unwrap(),
                    if x["rule"]["identity"] == 0 {
                        "any peer".to_string()
                    } else {
                        format!("identity {}", x["rule"]["identity"])
                    },
                    match (x["rule"]["proto"].as_u64().unwrap(), x["rule"]["dport"].as_u64().unwrap()) {
                        (0, _) => "any port".to_string(),
                        (17, p) => format!("udp/{p}"),
                        (p, d) => format!("{p}/{d}"),
                    },
                    x["rule"]["endpoint_id"],
                    x["rule"]["direction"].as_str().unwrap(),
                    x["rule"]["level"].as_str().unwrap()
                );
                assert_eq!(shown, r, "{x:#}");
                assert!(summary.starts_with(&format!("rule: {r}; ")), "{summary}");
            }
            None => {
                assert!(x.get("rule").is_none(), "{x:#}");
                assert!(summary.contains("no rule matched"), "{summary}");
                assert!(summary.contains("(default deny)"), "{summary}");
            }
        }
        assert!(summary.contains("today: the same (DROPPED"), "{summary}");
        // UDP datagrams of 1000 bytes were captured cut to the snap length.
        assert_eq!(x["truncated"], port != 7777, "{port}: {x:#}");
    }
    // Denied policy verdicts are explained too, with their match kind; forwarded events are not.
    let verdicts: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "policy-verdict" && e["verdict"] == "DROPPED").collect();
    assert!(verdicts.len() >= 5, "{verdicts:#?}");
    for v in &verdicts {
        assert_eq!(v["explanation"]["then"]["policy_match"], v["policy_match"], "{v}");
        assert_eq!(v["explanation"]["changed"], false, "{v}");
    }
    assert!(events.iter().filter(|e| e["verdict"] == "FORWARDED").all(|e| e.get("explanation").is_none()));
    let wanted = events
        .iter()
        .filter(|e| e["type"] == "drop" || (e["type"] == "policy-verdict" && e["verdict"] == "DROPPED"))
        .count() as u64;
    let total = events.iter().find_map(|e| e.get("explain_summary")).expect("the counts, last in the stream");
    assert_eq!((total["explained"].as_u64(), total["skipped"].as_u64()), (Some(wanted), Some(0)), "{total}");
    assert!(err.contains(&format!("explained {wanted}, 0 not explained (at most 1000 a second)")), "{err}");

    // Text: the explanation is an indented line under its event.
    let (text, _) = monitor_during(&lab, &["--explain", "-t", "drop"], || send(&ep1, &ep2, "udp", 5353, 1));
    let mut it = text.lines().skip_while(|l| !l.contains("drop (Policy denied by denylist)"));
    assert!(it.next().is_some(), "{text}");
    let next = it.next().unwrap_or_default();
    assert!(
        next.starts_with("    explain: rule: deny identity 1001 udp/5353 on endpoint 102 ingress (L3-L4); peer "),
        "{text}"
    );
}

#[test]
fn the_rate_limit_counts_what_it_skips() {
    let (lab, [ep1, ep2, _]) = lab();
    let (out, err) = monitor_during(&lab, &["-j", "-t", "drop", "--explain", "--explain-rate", "2"], || {
        send(&ep1, &ep2, "udp", 5353, 12)
    });
    let events = lines(&out);
    let drops: Vec<&Value> = events.iter().filter(|e| e["type"] == "drop").collect();
    assert_eq!(drops.len(), 12, "{out}");
    let explained = drops.iter().filter(|d| d["explanation"].get("summary").is_some()).count() as u64;
    let skipped = drops.iter().filter(|d| d["explanation"]["skipped"] == "at most 2 a second").count() as u64;
    // A bucket of two, refilled at two a second while the burst lasts.
    assert!((2..=4).contains(&explained), "{explained} explained");
    assert_eq!(explained + skipped, 12);
    let total = events.iter().find_map(|e| e.get("explain_summary")).unwrap();
    assert_eq!((total["explained"].as_u64(), total["skipped"].as_u64()), (Some(explained), Some(skipped)));
    assert!(err.contains(&format!("explained {explained}, {skipped} not explained (at most 2 a second)")), "{err}");
    // Bad rates are usage errors.
    let o = lab.run(&["monitor", "--explain", "--explain-rate", "0"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = lab.run(&["monitor", "--explain-rate", "5"]);
    assert_eq!(o.status.code(), Some(2), "--explain-rate without --explain: {o:?}");
}

fn explain(lab: &CliLab, input: &str, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .arg("explain")
        .args(args)
        .env("DPDBG_LAB_STATE", &lab.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn explain_reads_a_monitor_line_or_a_flow_and_sees_a_rule_change() {
    let (lab, [ep1, ep2, _]) = lab();
    let socket = lab.dir.path().join("serve.sock");
    let server = Server::start(&lab.fs.0, &socket, &[]);
    let sock = socket.to_str().unwrap();
    let (out, _) = monitor_beside(&lab, Some(&socket), &["-j", "-t", "drop"], || {
        send(&ep1, &ep2, "udp", 5353, 1);
        send(&ep1, &ep2, "udp", 6000, 1);
        send(&ep1, &ep2, "tcp", 7777, 1);
    });
    let events = lines(&out);
    let flows = ok(&lab.run(&["--server", sock, "observe", "-o", "json", "--last", "100", "--verdict", "DROPPED"]));
    let flow_to = |port: u64| {
        flows
            .lines()
            .find(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let l4 = &v["flow"]["l4"];
                v["flow"]["event_type"]["type"] == 1
                    && (l4["UDP"]["destination_port"] == port || l4["TCP"]["destination_port"] == port)
            })
            .unwrap_or_else(|| panic!("no dropped flow to port {port} in {flows}"))
            .to_string()
    };

    // Before any change: the monitor line and the flow give the same explanation.
    for port in [5353u64, 6000, 7777] {
        let m = serde_json::to_string(&drop_to(&events, port)).unwrap();
        let a: Value = serde_json::from_str(&ok(&explain(&lab, &m, &["-o", "json"]))).unwrap();
        let b: Value = serde_json::from_str(&ok(&explain(&lab, &flow_to(port), &["-o", "json"]))).unwrap();
        assert_eq!(a["changed"], false, "{a:#}");
        for k in ["rule", "policy_level", "conntrack", "now", "then", "changed", "identity"] {
            assert_eq!(a[k], b[k], "{port}: {k}");
        }
    }
    let text = ok(&explain(&lab, &flow_to(5353), &[]));
    assert!(text.contains("Rule:       deny identity 1001 udp/5353 on endpoint 102 ingress (L3-L4)"), "{text}");
    assert!(text.contains("Changed:    no"), "{text}");

    // The rules change: udp/6000's deny is removed (now denied by default),
    // and tcp/7777 is allowed.
    policy(&lab, "delete", ["102", "ingress", "any", "udp", "6000"], None);
    policy(&lab, "add", ["102", "ingress", "1001", "tcp", "7777"], Some("allow"));
    let m = serde_json::to_string(&drop_to(&events, 6000)).unwrap();
    let x: Value = serde_json::from_str(&ok(&explain(&lab, &m, &["-o", "json"]))).unwrap();
    assert_eq!((x["changed"].as_bool(), x["policy_level"].as_str()), (Some(true), Some("none")), "{x:#}");
    assert_eq!(x["now"]["reason"]["code"], 133, "{x:#}");
    assert!(
        x["summary"].as_str().unwrap().contains(
            "CHANGED: today this packet would be DROPPED for Policy denied (133), not Policy denied by denylist (181); the policy changed since the drop"
        ),
        "{x:#}"
    );
    for input in [serde_json::to_string(&drop_to(&events, 7777)).unwrap(), flow_to(7777)] {
        let x: Value = serde_json::from_str(&ok(&explain(&lab, &input, &["-o", "json"]))).unwrap();
        assert_eq!(x["changed"], true, "{x:#}");
        assert_eq!(x["now"]["verdict"], "FORWARDED", "{x:#}");
        assert!(
            x["summary"].as_str().unwrap().contains(
                "CHANGED: today this packet would be ALLOWED by rule allow identity 1001 tcp/7777 on endpoint 102 ingress (L3-L4); the policy changed since the drop"
            ),
            "{x:#}"
        );
    }
    // Through --server: the node explains; stdin is read here.
    let remote = explain(&lab, &flow_to(7777), &["--server", sock, "-o", "json"]);
    let x: Value = serde_json::from_str(&ok(&remote)).unwrap();
    assert_eq!(x["now"]["verdict"], "FORWARDED", "{x:#}");

    // observe --explain: the flows with their explanations, computed on the node.
    let obs = ok(&lab.run(&[
        "--server",
        sock,
        "observe",
        "-o",
        "json",
        "--last",
        "100",
        "--verdict",
        "DROPPED",
        "--explain",
    ]));
    let explained: Vec<Value> = obs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["flow"]["event_type"]["type"] == 1)
        .collect();
    assert!(explained.len() >= 3, "{obs}");
    for v in &explained {
        assert!(v["explanation"]["summary"].is_string(), "{v:#}");
    }
    let compact = ok(&lab.run(&["--server", sock, "observe", "--last", "100", "--verdict", "DROPPED", "--explain"]));
    assert!(
        compact.contains("    explain: rule: deny identity 1001 udp/5353 on endpoint 102 ingress (L3-L4)"),
        "{compact}"
    );
    server.stop();

    // Input that cannot be explained: exit 2, naming what is missing.
    let bad = |input: &str, needle: &str| {
        let o = explain(&lab, input, &[]);
        assert_eq!(o.status.code(), Some(2), "{input}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle), "{input}: {o:?}");
    };
    bad("", "no event on stdin");
    bad("{\"type\":\"drop\",\"drop_reason\":133}", "no \"direction\"");
    bad("{\"flow\":{\"verdict\":\"FORWARDED\",\"event_type\":{\"type\":4}}}", "only drops and denied");
    // An endpoint that is gone: exit 1, said.
    let mut gone = drop_to(&events, 5353);
    gone["endpoint_id"] = 999.into();
    let o = explain(&lab, &gone.to_string(), &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("endpoint 999"), "{o:?}");
}
