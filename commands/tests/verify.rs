//! `dpdbg verify MATRIX.yaml` and `dpdbg trace --expect` on the lab: a
//! 20-row matrix over three endpoints whose policy allows some pairs and
//! denies others, checked through trace's dry run without a packet sent or a
//! map changed; one wrong expectation caught and named; malformed files
//! refused with their line and field; JSON and JUnit read by their
//! consumers; the same through `dpdbg serve`.

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn out(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One row: from, to, proto, port, expect, and why the policy says so.
struct Row {
    from: String,
    to: String,
    proto: &'static str,
    port: Option<u16>,
    expect: &'static str,
}

fn row(from: &str, to: &str, proto: &'static str, port: Option<u16>, expect: &'static str) -> Row {
    Row { from: from.into(), to: to.into(), proto, port, expect }
}

/// The lines before the first row of a matrix `matrix()` writes.
const HEADER: &str = "# issue 23's connectivity matrix for the lab\ndefaults:\n  proto: tcp\nrows:\n";
const FIRST_ROW_LINE: usize = 5;

/// The matrix as YAML, one row per line (row i on line FIRST_ROW_LINE + i);
/// tcp rows leave proto to the defaults.
fn matrix(rows: &[Row]) -> String {
    let mut s = HEADER.to_string();
    for r in rows {
        let proto = if r.proto == "tcp" { String::new() } else { format!(", proto: {}", r.proto) };
        let port = r.port.map(|p| format!(", port: {p}")).unwrap_or_default();
        s.push_str(&format!("  - {{from: \"{}\", to: \"{}\"{proto}{port}, expect: {}}}\n", r.from, r.to, r.expect));
    }
    s
}

/// dpdbg with the matrix on standard input.
fn with_stdin(bpffs: &Path, state: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(args)
        .env("DPDBG_LAB_STATE", state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// `dpdbg serve` on its own socket, with the lab's state file so that lab
/// endpoint names (ep1) mean on the node what they mean here; SIGTERM on drop.
struct Serve {
    child: std::process::Child,
    socket: PathBuf,
}

impl Serve {
    fn start(bpffs: &Path, state: &Path, socket: &Path) -> Serve {
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .args(["serve", "--socket"])
            .arg(socket)
            .env("DPDBG_LAB_STATE", state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !socket.exists() {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "dpdbg serve did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Serve { child, socket: socket.to_path_buf() }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A JUnit report read by junitparser (what CI systems' report readers
/// parse): every case with its name and result, and the suite's counts.
fn junit_read(xml: &str, dir: &Path) -> Value {
    let path = dir.join("report.xml");
    std::fs::write(&path, xml).unwrap();
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for s in xml:
    cases = []
    for c in s:
        assert c.name and c.classname is not None and c.time is not None
        res = [{"kind": type(r).__name__, "message": r.message, "type": r.type, "text": r.text} for r in c.result]
        cases.append({"name": c.name, "classname": c.classname, "time": c.time, "result": res,
                      "line": c._elem.get("line"), "file": c._elem.get("file")})
    # The attributes the Ant/Jenkins schema requires of a testsuite.
    for a in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
        assert s._elem.get(a) is not None, a
    suites.append({"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors,
                   "skipped": s.skipped, "time": s.time, "timestamp": s.timestamp, "hostname": s.hostname,
                   "cases": cases})
xml.update_statistics()
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "suites": suites}))
"#;
    let o = Command::new("/opt/dpdbg-venv/bin/python")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("/opt/dpdbg-venv/bin/python (scripts/setup.sh installs junitparser there)");
    assert!(o.status.success(), "junitparser: {}\n{xml}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_matrix_is_checked_without_traffic_and_a_wrong_row_is_named() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let run = |args: &[&str]| dpdbg(&fs.0, &state, args);
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let up: Value = serde_json::from_str(&out(&run(&["lab", "up", "--endpoints", "3", "-o", "json"]))).unwrap();
    let ep = |i: usize, k: &str| up["endpoints"][i][k].as_str().unwrap().to_string();

    // ep1 takes udp/53 from anyone and anything from ep2; ep2 takes tcp/8080
    // from ep1 and anything from ep3 but ssh, and denies udp/5353 to all;
    // ep3 may send anything to ep2 and tcp/443 to ep1, nothing else.
    out(&run(&["bpf", "endpoint", "set", "101", "--enforce", "ingress"]));
    out(&run(&["bpf", "endpoint", "set", "102", "--enforce", "ingress"]));
    out(&run(&["bpf", "endpoint", "set", "103", "--enforce", "egress"]));
    for (ep, dir, rule) in [
        ("lab/ep1", "ingress", &["--proto", "udp", "--port", "53", "--action", "allow"][..]),
        ("lab/ep1", "ingress", &["--identity", "1002", "--action", "allow"]),
        ("lab/ep2", "ingress", &["--identity", "1001", "--proto", "tcp", "--port", "8080", "--action", "allow"]),
        ("lab/ep2", "ingress", &["--proto", "udp", "--port", "5353", "--action", "deny"]),
        ("lab/ep2", "ingress", &["--identity", "1003", "--action", "allow"]),
        ("lab/ep2", "ingress", &["--identity", "1003", "--proto", "tcp", "--port", "22", "--action", "deny"]),
        ("lab/ep3", "egress", &["--identity", "1002", "--action", "allow"]),
        ("lab/ep3", "egress", &["--identity", "1001", "--proto", "tcp", "--port", "443", "--action", "allow"]),
    ] {
        let mut args = vec!["bpf", "policy", "add", "--endpoint", ep, "--direction", dir];
        args.extend(rule);
        out(&run(&args));
    }

    let (ep1, ep2, ep3) = ("lab/ep1", "lab/ep2", "lab/ep3");
    let world = "192.0.2.1";
    let rows = vec![
        row(ep1, ep2, "tcp", Some(8080), "allow"),
        row(ep1, ep2, "tcp", Some(80), "deny"),
        row(ep1, ep2, "udp", Some(5353), "deny"),
        row(ep1, ep2, "udp", Some(53), "deny"),
        row(ep1, ep2, "icmp", None, "deny"),
        row(ep3, ep2, "tcp", Some(443), "allow"),
        row(ep3, ep2, "tcp", Some(22), "deny"),
        row(ep3, ep1, "tcp", Some(443), "deny"),
        row(ep3, ep1, "udp", Some(53), "deny"),
        row(ep3, ep1, "icmp", None, "deny"),
        row(ep2, ep1, "udp", Some(53), "allow"),
        row(ep2, ep1, "tcp", Some(9999), "allow"),
        row(ep2, ep1, "icmp", None, "allow"),
        row(ep1, ep3, "tcp", Some(80), "allow"),
        row(ep2, ep3, "icmpv6", None, "allow"),
        // Endpoints by id, by address (IPv6 too), by the lab's bare name.
        row("101", "102", "tcp", Some(8080), "allow"),
        row(&ep(0, "ipv6"), &ep(1, "ipv6"), "tcp", Some(8080), "allow"),
        row(&ep(0, "ipv4"), "ep2", "udp", Some(5353), "deny"),
        // A peer outside the node: ep1's egress is not enforced, ep3's is.
        row(ep1, world, "tcp", Some(80), "allow"),
        row(ep3, world, "tcp", Some(80), "deny"),
    ];
    assert_eq!(rows.len(), 20);
    assert_eq!(rows.iter().filter(|r| r.expect == "allow").count(), 10, "both outcomes, half each");
    let good = dir.path().join("matrix.yaml");
    std::fs::write(&good, matrix(&rows)).unwrap();
    let good_s = good.to_str().unwrap();

    // What must not move: conntrack, counters, policy (with its counters),
    // endpoints, ipcache, and the lab interfaces' packet counts (no packet
    // sent). The host's own IPv6 neighbour discovery moves counters at
    // times: a difference is looked at again before it counts.
    let dumps = || {
        let mut v: Vec<(String, String)> = ["ct list", "metrics list", "policy get", "endpoint list", "ipcache list"]
            .iter()
            .map(|c| {
                let mut args = vec!["bpf"];
                args.extend(c.split(' '));
                args.extend(["-o", "json"]);
                (c.to_string(), out(&run(&args)))
            })
            .collect();
        for i in 0..3 {
            for k in ["rx_packets", "tx_packets"] {
                let p = format!("/sys/class/net/{}/statistics/{k}", ep(i, "host_if"));
                v.push((p.clone(), std::fs::read_to_string(p).unwrap()));
            }
        }
        v
    };
    // The lab's own IPv6 chatter (MLD reports, router solicitations: a
    // packet every second or so for the first seconds after `lab up`) moves
    // the counters too, at its own times: a try that saw it waits a second
    // and tries again; verify changing a map would move them every time.
    let unchanged = |f: &dyn Fn() -> Output| -> Output {
        let mut moved = Vec::new();
        for _ in 0..15 {
            let before = dumps();
            let o = f();
            let after = dumps();
            if after == before {
                return o;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            moved = before
                .into_iter()
                .zip(after)
                .filter(|(b, a)| b != a)
                .map(|(b, a)| format!("{}: {} -> {}", b.0, b.1, a.1))
                .collect();
        }
        panic!(
            "the maps or the interfaces' counters changed across verify, 15 times; the last time:\n{}",
            moved.join("\n")
        );
    };

    // Every row right: exit 0, each row's verdict the one policy says.
    let o = unchanged(&|| run(&["verify", good_s, "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((rep["total"].as_u64(), rep["passed"].as_u64(), rep["ok"].as_bool()), (Some(20), Some(20), Some(true)));
    for (i, (r, got)) in rows.iter().zip(rep["rows"].as_array().unwrap()).enumerate() {
        assert_eq!(got["line"].as_u64(), Some((FIRST_ROW_LINE + i) as u64), "{got}");
        assert_eq!(got["expect"], r.expect, "{got}");
        assert_eq!(got["got"], r.expect, "{got}");
        // The same verdict trace gives on its own for the row.
        let mut args = vec!["trace", "-o", "json", "--from", &r.from, "--to", &r.to, "--proto", r.proto];
        let port = r.port.map(|p| p.to_string());
        if let Some(p) = &port {
            args.extend(["--dport", p]);
        }
        if r.from.contains(':') || r.proto == "icmpv6" {
            args.push("-6");
        }
        let t: Value = serde_json::from_str(&out(&run(&args))).unwrap();
        assert_eq!(got["verdict"], t["verdict"], "row {i}: {got}");
        assert_eq!(got["drop_reason"]["code"], t["drop_reason"]["code"], "row {i}: {got}");
    }
    let by_line = |rep: &Value, i: usize| rep["rows"][i].clone();
    // The explanation names the deciding rule and what conntrack and the
    // identities said.
    let r7 = by_line(&rep, 6);
    assert_eq!(r7["decided_by"], "ingress L3-L4 deny", "{r7}");
    assert_eq!(r7["drop_reason"]["code"], 181, "{r7}");
    let e = r7["explanation"].as_str().unwrap();
    assert!(e.contains("deny by the L3-L4 rule (identity 1003, tcp/22); a deny overrode a matching allow"), "{e}");
    assert!(e.contains("conntrack: new"), "{e}");
    assert!(e.contains("is identity 1003 from the endpoints map (endpoint 103)"), "{e}");
    assert_eq!(by_line(&rep, 1)["decided_by"], "ingress default deny");
    assert_eq!(by_line(&rep, 19)["decided_by"], "egress default deny");
    assert!(by_line(&rep, 19)["explanation"].as_str().unwrap().contains("is identity 2 (world)"), "{rep}");
    assert_eq!(by_line(&rep, 11)["decided_by"], "egress not enforced, ingress L3-Only allow", "{rep}");

    // The table, by default: a row per line of the matrix.
    let t = out(&unchanged(&|| run(&["verify", good_s])));
    assert!(t.contains("DECIDED BY"), "{t}");
    assert_eq!(t.lines().filter(|l| l.trim_end().ends_with(" ok")).count(), 20, "{t}");
    assert!(t.contains("20 of 20 rows hold"), "{t}");

    // One wrong expectation: exit 1, and that row named with its line and why.
    let mut wrong = matrix(&rows);
    let bad_line = FIRST_ROW_LINE + 11;
    let lines: Vec<String> = wrong.lines().map(String::from).collect();
    wrong = lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i + 1 == bad_line { l.replace("expect: allow", "expect: deny") } else { l.clone() })
        .collect::<Vec<_>>()
        .join("\n");
    let wrong_path = dir.path().join("wrong.yaml");
    std::fs::write(&wrong_path, &wrong).unwrap();
    let wrong_s = wrong_path.to_str().unwrap();
    let o = unchanged(&|| run(&["verify", wrong_s]));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let t = String::from_utf8_lossy(&o.stdout);
    let failing: Vec<&str> = t.lines().filter(|l| l.trim_end().ends_with("FAIL")).collect();
    assert_eq!(failing.len(), 1, "{t}");
    assert!(failing[0].trim_start().starts_with(&format!("{bad_line} ")), "{t}");
    assert!(t.contains(&format!("line {bad_line}: lab/ep2 -> lab/ep1 tcp/9999 deny: expected deny, got allow")), "{t}");
    assert!(t.contains("allow by the L3-Only rule (identity 1002, any port)"), "{t}");
    assert!(stderr(&o).contains(&format!("1 of 20 rows of {wrong_s} do not hold: line {bad_line} ")), "{}", stderr(&o));

    // JSON names it too.
    let o = run(&["verify", wrong_s, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let wrep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (wrep["passed"].as_u64(), wrep["failed"].as_u64(), wrep["ok"].as_bool()),
        (Some(19), Some(1), Some(false))
    );
    let f: Vec<&Value> = wrep["rows"].as_array().unwrap().iter().filter(|r| r["ok"] == false).collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["line"].as_u64(), Some(bad_line as u64));
    assert_eq!((f[0]["expect"].as_str(), f[0]["got"].as_str()), (Some("deny"), Some("allow")));
    let o = run(&["verify", wrong_s, "-o", "jsonl"]);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(strip_times(&Value::Array(lines)), strip_times(&wrep["rows"]), "jsonl: the rows, one per line");

    // JUnit, read by junitparser: 20 cases, the wrong one a failure with
    // trace's explanation, the others passed.
    let o = unchanged(&|| run(&["verify", wrong_s, "-o", "junit"]));
    assert_eq!(o.status.code(), Some(1));
    let j = junit_read(&String::from_utf8_lossy(&o.stdout), dir.path());
    assert_eq!((j["tests"].as_u64(), j["failures"].as_u64()), (Some(20), Some(1)), "{j}");
    let suite = &j["suites"][0];
    assert_eq!(suite["name"], wrong_s, "{j}");
    let cases = suite["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 20);
    for (i, c) in cases.iter().enumerate() {
        let line = FIRST_ROW_LINE + i;
        assert!(c["name"].as_str().unwrap().starts_with(&format!("line {line}: ")), "{c}");
        assert_eq!(c["line"].as_str(), Some(line.to_string().as_str()), "{c}");
        let failed = c["result"].as_array().unwrap();
        if line == bad_line {
            assert_eq!(failed.len(), 1, "{c}");
            assert_eq!(failed[0]["kind"], "Failure", "{c}");
            assert_eq!(failed[0]["type"], "UnexpectedAllow", "{c}");
            assert_eq!(
                failed[0]["message"], "expected deny, got allow: egress not enforced, ingress L3-Only allow",
                "{c}"
            );
            assert!(failed[0]["text"].as_str().unwrap().contains("L3-Only rule (identity 1002, any port)"), "{c}");
        } else {
            assert!(failed.is_empty(), "{c}");
        }
    }
    // A good matrix in JUnit: no failures, exit 0.
    let o = run(&["verify", good_s, "-o", "junit"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = junit_read(&String::from_utf8_lossy(&o.stdout), dir.path());
    assert_eq!((j["tests"].as_u64(), j["failures"].as_u64()), (Some(20), Some(0)), "{j}");
    // junit is verify's alone.
    let o = run(&["bpf", "endpoint", "list", "-o", "junit"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");

    // The matrix on standard input: the same answer.
    let o = with_stdin(&fs.0, &state, &["verify", "-", "-o", "json"], &matrix(&rows));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["source"], "stdin");
    assert_eq!(strip_times(&v["rows"]), strip_times(&rep["rows"]));

    // trace --expect: the row's exit code for one case, both ways.
    let o = run(&["trace", "--from", ep1, "--to", ep2, "--dport", "8080", "--expect", "allow"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Verdict: FORWARDED"));
    let o = run(&["trace", "--from", ep1, "--to", ep2, "--dport", "8080", "--expect", "deny"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Verdict: FORWARDED"), "the trace is printed as ever");
    assert!(
        stderr(&o)
            .contains("--expect deny: the packet is FORWARDED (decided by egress not enforced, ingress L3-L4 allow)"),
        "{}",
        stderr(&o)
    );
    let o = run(&["trace", "--from", ep3, "--to", ep2, "--dport", "22", "--expect", "deny", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["trace", "--from", ep3, "--to", ep2, "--dport", "22", "--expect", "allow", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let err: Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert!(err["error"].as_str().unwrap().contains("deny by the L3-L4 rule (identity 1003, tcp/22)"), "{err}");
    let o = run(&["trace", "--from", ep1, "--to", ep2, "--dport", "8080", "--expect", "maybe"]);
    assert_eq!(o.status.code(), Some(2));

    // Through dpdbg serve: the file read here, the rows traced on the node,
    // the same rows and exit codes; a file name sent as is is refused.
    let socket = dir.path().join("serve.sock");
    let _serve = Serve::start(&fs.0, &state, &socket);
    let sock = socket.to_str().unwrap();
    let o = unchanged(&|| run(&["--server", sock, "verify", good_s, "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let remote: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(remote["source"], good_s);
    assert_eq!(strip_times(&remote["rows"]), strip_times(&rep["rows"]));
    let o = run(&["--server", sock, "verify", wrong_s]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("line {bad_line}: lab/ep2 -> lab/ep1 tcp/9999 deny")));
    let o = run(&["--server", sock, "verify", wrong_s, "-o", "junit"]);
    assert_eq!(o.status.code(), Some(1));
    let j = junit_read(&String::from_utf8_lossy(&o.stdout), dir.path());
    assert_eq!((j["tests"].as_u64(), j["failures"].as_u64()), (Some(20), Some(1)), "{j}");
    let o = with_stdin(&fs.0, &state, &["--server", sock, "verify", "-"], &matrix(&rows));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A malformed file is refused here, before the node is asked.
    let bad = write(dir.path(), "bad.yaml", "- {from: lab/ep1, to: lab/ep2, port: 80}\n");
    let o = run(&["--server", sock, "verify", &bad, "-o", "json"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err: Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert!(err["error"].as_str().unwrap().contains("bad.yaml: line 1, field expect: missing"), "{err}");
    // A name the node does not know: the node says so, with the line.
    let o = run(&[
        "--server",
        sock,
        "verify",
        &write(dir.path(), "ghost.yaml", "- {from: lab/ghost, to: lab/ep2, port: 1, expect: deny}\n"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("line 1, field from: lab/ghost: no endpoint has that name"), "{}", stderr(&o));
    let o = run(&["--server", sock, "trace", "--from", ep1, "--to", ep2, "--dport", "8080", "--expect", "deny"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let o = run(&["--server", sock, "trace", "--from", ep1, "--to", ep2, "--dport", "8080", "--expect", "allow"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Rows without their timings, which differ from run to run.
fn strip_times(rows: &Value) -> Value {
    let mut v = rows.clone();
    for r in v.as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("seconds");
    }
    v
}

#[test]
fn a_malformed_matrix_is_refused_with_its_line_and_field() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let run = |args: &[&str]| dpdbg(&fs.0, &state, args);
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    out(&run(&["lab", "up"]));
    out(&run(&["bpf", "endpoint", "set", "102", "--enforce", "ingress"]));

    let ok = "- {from: lab/ep1, to: lab/ep2, port: 80, expect: deny}\n";
    let cases: &[(&str, String, &str)] = &[
        ("bad YAML", format!("{ok}- from: lab/ep1\n  to: lab/ep2\n   port: 80\n"), "line 4: not YAML"),
        (
            "a missing field",
            format!("{ok}- from: lab/ep1\n  to: lab/ep2\n  port: 80\n"),
            "line 2, field expect: missing: allow or deny",
        ),
        (
            "an unknown field",
            format!("{ok}- {{from: lab/ep1, to: lab/ep2, port: 80, expcet: deny}}\n"),
            "line 2, field expcet: not a field of a row",
        ),
        (
            "an unknown endpoint",
            format!("{ok}\n- {{from: lab/ep1, to: lab/ep7, port: 80, expect: deny}}\n"),
            "line 3, field to: lab/ep7: no endpoint has that name",
        ),
        (
            "an unknown endpoint id",
            format!("{ok}- {{from: 4242, to: lab/ep2, port: 80, expect: deny}}\n"),
            "line 2, field from: no endpoint 4242 on this node",
        ),
        (
            "an unknown lab name",
            format!("{ok}- {{from: ep9, to: lab/ep2, port: 80, expect: deny}}\n"),
            "line 2, field from: \"ep9\": not an endpoint id, NAMESPACE/POD, an IP address",
        ),
        (
            "two outside addresses",
            format!("{ok}- {{from: 192.0.2.1, to: 192.0.2.2, port: 80, expect: deny}}\n"),
            "line 2, field from and to: neither 192.0.2.1 nor 192.0.2.2 is an endpoint on this node",
        ),
        (
            "a bad proto",
            format!("{ok}- from: lab/ep1\n  to: lab/ep2\n  proto: sctpx\n  port: 80\n  expect: deny\n"),
            "line 4, field proto: \"sctpx\": use tcp, udp, icmp, icmpv6 or an IP protocol number 0-255",
        ),
        (
            "a bad port",
            format!("{ok}- {{from: lab/ep1, to: lab/ep2, port: 70000, expect: deny}}\n"),
            "line 2, field port: 70000 is not a port: use 1-65535",
        ),
        (
            "a port for icmp",
            format!("{ok}- {{from: lab/ep1, to: lab/ep2, proto: icmp, port: 7, expect: deny}}\n"),
            "line 2, field port: icmp has no ports",
        ),
        (
            "no port for tcp",
            format!("{ok}- {{from: lab/ep1, to: lab/ep2, expect: deny}}\n"),
            "line 2, field port: missing: tcp needs a destination port",
        ),
        (
            "a bad expect",
            format!("{ok}- {{from: lab/ep1, to: lab/ep2, port: 80, expect: permit}}\n"),
            "line 2, field expect: \"permit\": use allow or deny",
        ),
        ("no rows", "rows: []\n".to_string(), "line 1, field rows: no rows"),
        ("an empty file", String::new(), "line 1: empty"),
    ];
    for (what, text, needle) in cases {
        let f = write(dir.path(), "m.yaml", text);
        let before = out(&run(&["bpf", "ct", "list", "-o", "json"]));
        let o = run(&["verify", &f]);
        assert_eq!(o.status.code(), Some(2), "{what}: {o:?}");
        assert!(o.stdout.is_empty(), "{what}: nothing is printed for a file that is refused: {o:?}");
        let e = stderr(&o);
        assert!(e.contains(&format!("{f}: ")) && e.contains(needle), "{what}: {e}");
        assert_eq!(out(&run(&["bpf", "ct", "list", "-o", "json"])), before);
        // -o json: the error as one JSON object, exit 2.
        let o = run(&["verify", &f, "-o", "json"]);
        assert_eq!(o.status.code(), Some(2), "{what}");
        let v: Value = serde_json::from_str(stderr(&o).trim()).unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {v}");
        assert_eq!(v["exit_code"], 2);
    }
    // Problems in several rows: each named.
    let f = write(
        dir.path(),
        "m.yaml",
        "- {from: lab/ep1, to: lab/ep2, port: 0, expect: deny}\n- {from: lab/ep1, port: 80, expect: deny}\n",
    );
    let e = stderr(&run(&["verify", &f]));
    assert!(e.contains("2 problems"), "{e}");
    assert!(e.contains("line 1, field port: 0 is not a port"), "{e}");
    assert!(e.contains("line 2, field to: missing"), "{e}");
    // A file that is not there is a usage error too, and one nobody can read.
    let o = run(&["verify", "/nonexistent/matrix.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/matrix.yaml: No such file"), "{o:?}");
    // Without a datapath: a good file is a runtime error saying what to run.
    out(&run(&["lab", "down"]));
    let f = write(dir.path(), "m.yaml", ok);
    let o = run(&["verify", &f]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("dpdbg datapath load"), "{o:?}");
}
