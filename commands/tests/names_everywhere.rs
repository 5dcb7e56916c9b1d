//! Names everywhere a person reads (issue 26, item 4): `monitor` prints an
//! endpoint's name beside its id (read once a second, so a rename shows
//! while it runs; `-n` prints numbers only), its --from/--to/--related-to
//! and trace's take NAMESPACE/POD; `bpf policy get` names the endpoint and
//! the peer identity's labels, `bpf ct list` the pods on either side, in
//! their tables and their JSON.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{CliLab, json, ok, show};
use serde_json::Value;

/// `dpdbg monitor ARGS` for `secs`, while `during` runs.
fn monitor(lab: &CliLab, args: &[&str], secs: u64, during: impl FnOnce()) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .env("DPDBG_LAB_STATE", &lab.state)
        .arg("monitor")
        .args(args)
        .args(["--until", &format!("{secs}s")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    during();
    ok(child.wait_with_output().unwrap())
}

#[test]
fn monitor_policy_and_conntrack_name_the_endpoints() {
    let lab = CliLab::up();
    let traffic = || assert!(lab.run(&["lab", "traffic"]).status.success());
    for args in [
        vec!["bpf", "endpoint", "set", "102", "--enforce", "ingress"],
        vec![
            "bpf",
            "policy",
            "add",
            "--endpoint",
            "102",
            "--direction",
            "ingress",
            "--action",
            "allow",
            "--proto",
            "icmp",
        ],
        vec![
            "bpf",
            "policy",
            "add",
            "--endpoint",
            "102",
            "--direction",
            "ingress",
            "--action",
            "allow",
            "--identity",
            "1001",
            "--proto",
            "tcp",
            "--port",
            "8080",
        ],
    ] {
        ok(lab.run(&args));
    }

    // monitor: the endpoint's name beside its id; numbers only with -n; a
    // rename shows within a second, while the monitor runs.
    // (The lab's traffic takes a few seconds: UDP to ep2 waits for answers.)
    let renamed_at = std::cell::Cell::new(None);
    let text = monitor(&lab, &["-t", "trace", "-t", "policy-verdict"], 16, || {
        traffic();
        ok(lab.run(&["bpf", "endpoint", "set", "101", "--name", "lab/renamed"]));
        renamed_at.set(Some(std::time::Instant::now()));
        std::thread::sleep(Duration::from_millis(1500));
        traffic();
        assert!(renamed_at.get().unwrap().elapsed() < Duration::from_secs(14), "the monitor still ran");
    });
    assert!(text.contains("-> endpoint 102 (lab/ep2), identity 1001->1002 state new"), "{text}");
    assert!(text.contains("<- endpoint 101 (lab/ep1), identity 1001->1002 state new"), "{text}");
    assert!(text.contains("Policy verdict log: local EP ID 102 (lab/ep2), remote ID 1001,"), "{text}");
    assert!(text.contains("<- endpoint 101 (lab/renamed), identity"), "read again while running: {text}");
    ok(lab.run(&["bpf", "endpoint", "set", "101", "--name", "lab/ep1"]));
    // The names refresh without a cost per event: after the rename back, ep1 again.
    std::thread::sleep(Duration::from_millis(100));
    let numeric = monitor(&lab, &["-n", "-t", "trace"], 9, traffic);
    assert!(numeric.contains("-> endpoint 102, identity 1001->1002"), "{numeric}");
    assert!(!numeric.contains("(lab/"), "-n: numbers only: {numeric}");

    // --from/--to/--related-to by NAMESPACE/POD, as by id.
    let from = monitor(&lab, &["--from", "lab/ep1", "-o", "jsonl"], 9, traffic);
    let events: Vec<Value> = from.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!events.is_empty(), "{from}");
    let ep1 = json(lab.run(&["bpf", "endpoint", "get", "101", "-o", "json"]));
    let ep1_ips: Vec<String> = match &ep1 {
        Value::Array(a) => a.iter().map(|e| e["ip"].as_str().unwrap().to_string()).collect(),
        e => vec![e["ip"].as_str().unwrap_or_default().to_string()],
    };
    assert!(events.iter().all(|e| ep1_ips.contains(&e["src_ip"].as_str().unwrap().to_string())), "{from}");
    assert!(events.iter().any(|e| e["endpoint_name"] == "lab/ep1"), "endpoint_name in JSON: {from}");
    let by_id = monitor(&lab, &["--from", "101", "-o", "jsonl"], 9, traffic);
    let kinds = |text: &str| {
        let mut k: Vec<(String, u64)> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|e| (e["type"].as_str().unwrap().to_string(), e["ip_proto"].as_u64().unwrap_or(0)))
            .collect();
        k.sort();
        k.dedup();
        k
    };
    assert_eq!(kinds(&by_id), kinds(&from), "the same events by id: {by_id}\n{from}");
    let o = lab.run(&["monitor", "--from", "lab/ep9", "--until", "1s"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from lab/ep9: no endpoint has that name"), "{}", show(&o));
    let o = lab.run(&["monitor", "--to", "ep1"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));

    // bpf policy get: the endpoint's name and the peer identity's labels.
    let table = ok(lab.run(&["bpf", "policy", "get", "102"]));
    let header = table.lines().next().unwrap();
    assert!(header.contains("NAME") && header.contains("LABELS"), "{table}");
    let row = table.lines().find(|l| l.contains("8080/TCP")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("lab/ep2") && row.contains("k8s:app=ep1"), "{table}");
    let rules = json(lab.run(&["bpf", "policy", "get", "102", "-o", "json"]));
    let tcp = rules.as_array().unwrap().iter().find(|r| r["port"] == 8080).unwrap();
    assert_eq!(tcp["endpoint_name"], "lab/ep2");
    assert_eq!(tcp["identity_labels"], serde_json::json!(["k8s:app=ep1"]));
    let any = rules.as_array().unwrap().iter().find(|r| r["identity"] == 0).unwrap();
    assert!(any.get("identity_labels").is_none(), "any identity has no labels: {any}");

    // bpf ct list: the pods on either side.
    traffic();
    let table = ok(lab.run(&["bpf", "ct", "list"]));
    assert!(table.lines().next().unwrap().contains("PODS"), "{table}");
    assert!(table.contains("lab/ep1 -> lab/ep2"), "{table}");
    let entries: Vec<Value> =
        ok(lab.run(&["bpf", "ct", "list", "-o", "jsonl"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(entries.iter().any(|e| e["src_name"] == "lab/ep1" && e["dst_name"] == "lab/ep2"), "{entries:#?}");
    let doc = json(lab.run(&["bpf", "ct", "list", "-o", "json"]));
    assert_eq!(doc.as_array().unwrap().len(), entries.len(), "one document, the same entries");
}

/// Every argument that takes an endpoint takes NAMESPACE/POD too (`bpf
/// endpoint get|set|delete`, `bpf policy get|add|delete`), names are one
/// endpoint's each, and `trace -o json` names the endpoints and labels the
/// identities where its text names them.
#[test]
fn endpoint_arguments_take_names_and_trace_names_them_in_json() {
    let lab = CliLab::up();
    let run = |args: &[&str]| lab.run(args);

    let by_name = json(run(&["bpf", "endpoint", "get", "lab/ep2", "-o", "json"]));
    assert_eq!(by_name, json(run(&["bpf", "endpoint", "get", "102", "-o", "json"])));
    let rows = by_name.as_array().unwrap();
    assert_eq!(rows.len(), 2, "its IPv4 and IPv6 addresses: {by_name}");
    assert!(rows.iter().all(|e| e["endpoint_id"] == 102 && e["name"] == "lab/ep2"), "{by_name}");

    ok(run(&["bpf", "endpoint", "set", "lab/ep2", "--enforce", "ingress"]));
    let ep2 = json(run(&["bpf", "endpoint", "get", "102", "-o", "json"]));
    assert!(ep2.as_array().unwrap().iter().all(|e| e["enforce_ingress"] == true), "{ep2}");
    let rule = ["--direction", "ingress", "--identity", "1001", "--proto", "tcp", "--port", "8080"];
    let mut add = vec!["bpf", "policy", "add", "--endpoint", "lab/ep2", "--action", "allow"];
    add.extend(rule);
    ok(run(&add));
    let rules = json(run(&["bpf", "policy", "get", "lab/ep2", "-o", "json"]));
    assert_eq!(rules, json(run(&["bpf", "policy", "get", "102", "-o", "json"])));
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    assert_eq!((&rules[0]["endpoint_id"], &rules[0]["endpoint_name"]), (&Value::from(102), &Value::from("lab/ep2")));
    assert!(json(run(&["bpf", "policy", "get", "lab/ep1", "-o", "json"])).as_array().unwrap().is_empty());

    // trace's JSON names what its text names: the hook's endpoint and the
    // peer the policy looked up, with their identities' labels.
    let args = ["trace", "--from", "lab/ep1", "--to", "lab/ep2", "--proto", "tcp", "--dport", "8080"];
    let report = json(run(&[&args[..], &["-o", "json"]].concat()));
    let text = ok(run(&args));
    let hops = report["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{report:#}");
    let (from, to) = (&hops[0], &hops[1]);
    assert_eq!(from["endpoint"]["endpoint_id"], 101, "{report:#}");
    assert_eq!(from["endpoint"]["endpoint_name"], "lab/ep1", "{report:#}");
    assert_eq!(from["endpoint"]["identity_labels"], serde_json::json!(["k8s:app=ep1"]), "{report:#}");
    assert_eq!(to["endpoint"]["endpoint_name"], "lab/ep2", "{report:#}");
    assert_eq!(to["endpoint"]["identity_labels"], serde_json::json!(["k8s:app=ep2"]), "{report:#}");
    assert_eq!(
        (&to["peer"]["endpoint_id"], &to["peer"]["endpoint_name"]),
        (&Value::from(101), &Value::from("lab/ep1"))
    );
    assert_eq!(to["peer"]["identity_labels"], serde_json::json!(["k8s:app=ep1"]), "{report:#}");
    assert!(text.contains("endpoint 102 lab/ep2 (identity 1002)"), "{text}");
    assert!(text.contains("from the endpoints map (endpoint 101 lab/ep1)"), "{text}");
    // A peer that is no endpoint: world, by its reserved label.
    let world = json(run(&[
        "trace",
        "--from",
        "192.0.2.9",
        "--to",
        "lab/ep2",
        "--proto",
        "tcp",
        "--dport",
        "8080",
        "-o",
        "json",
    ]));
    let peer = &world["hops"][0]["peer"];
    assert_eq!((&peer["identity"], &peer["endpoint_name"]), (&Value::from(2), &Value::Null), "{world:#}");
    assert_eq!(peer["identity_labels"], serde_json::json!(["reserved:world"]), "{world:#}");

    // A name no endpoint has: an error naming it, nothing changed.
    let before = ok(run(&["bpf", "endpoint", "list", "-o", "json"]));
    for args in [
        vec!["bpf", "endpoint", "get", "lab/ep9"],
        vec!["bpf", "endpoint", "set", "lab/ep9", "--enforce", "both"],
        vec!["bpf", "endpoint", "delete", "lab/ep9"],
        vec!["bpf", "policy", "get", "lab/ep9"],
        vec!["bpf", "policy", "add", "--endpoint", "lab/ep9", "--direction", "ingress", "--action", "deny"],
        vec!["bpf", "policy", "delete", "--endpoint", "lab/ep9", "--direction", "ingress"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("lab/ep9: no endpoint has that name"),
            "{args:?}: {}",
            show(&o)
        );
    }
    let o = run(&["bpf", "endpoint", "get", "Lab/ep1"]);
    assert_eq!(o.status.code(), Some(2), "not a Kubernetes name: a usage error: {}", show(&o));
    // Names are one endpoint's each: another's is refused, naming it.
    let o = run(&["bpf", "endpoint", "set", "102", "--name", "lab/ep1", "--label", "app=x"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lab/ep1 is endpoint 101's name"), "{}", show(&o));
    assert_eq!(ok(run(&["bpf", "endpoint", "list", "-o", "json"])), before, "nothing changed");
    let ids = ok(run(&["bpf", "identity", "get", "1002", "-o", "json"]));
    assert!(ids.contains("k8s:app=ep2") && !ids.contains("app=x"), "the labels were not written either: {ids}");
    ok(run(&["bpf", "endpoint", "set", "102", "--name", "lab/ep2"]));

    let mut delete = vec!["bpf", "policy", "delete", "--endpoint", "lab/ep2"];
    delete.extend(rule);
    ok(run(&delete));
    assert!(json(run(&["bpf", "policy", "get", "102", "-o", "json"])).as_array().unwrap().is_empty());
    ok(run(&["bpf", "endpoint", "delete", "lab/ep2"]));
    assert_eq!(run(&["bpf", "endpoint", "get", "102"]).status.code(), Some(1), "endpoint 102 went with its name");
    let o = run(&["bpf", "endpoint", "get", "lab/ep2"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("lab/ep2: no endpoint has that name"), "{}", show(&o));
}
