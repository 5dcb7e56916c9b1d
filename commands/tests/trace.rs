//! `dpdbg trace` from the command line: in the lab with enforcement and a few
//! rules, trace explains the verdicts real traffic then gets, and leaves the
//! maps as they were. (tests/trace.rs in the core compares event by event.)

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::process::Output;

use serde_json::Value;

fn out(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: Output) -> Value {
    serde_json::from_str(&out(&o)).unwrap()
}

#[test]
fn trace_explains_what_real_traffic_then_gets() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let run = |args: &[&str]| dpdbg(&fs.0, &state, args);

    let o = run(&["trace", "--from", "10.0.0.1", "--to", "10.0.0.2", "--dport", "80"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("dpdbg datapath load"), "{o:?}");

    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let up = json(run(&["lab", "up", "-o", "json"]));
    let ep2 = &up["endpoints"][1];
    let ep2_ip = ep2["ipv4"].as_str().unwrap().to_string();
    out(&run(&["bpf", "endpoint", "set", "102", "--enforce", "ingress"]));
    for rule in [
        ["--identity", "1001", "--proto", "tcp", "--port", "8080", "--action", "allow"],
        ["--identity", "any", "--proto", "udp", "--port", "5353", "--action", "deny"],
    ] {
        let mut args = vec!["bpf", "policy", "add", "--endpoint", "102", "--direction", "ingress"];
        args.extend(rule);
        out(&run(&args));
    }

    // Metrics are left out here: the host's own IPv6 neighbour discovery
    // moves them at any time. tests/trace.rs compares them too, retrying
    // when a live program ran between its two readings.
    let dumps = || {
        ["ct list", "policy get", "endpoint list", "ipcache list"]
            .map(|c| {
                let mut args = vec!["bpf"];
                args.extend(c.split(' '));
                args.extend(["-o", "json"]);
                out(&run(&args))
            })
            .join("\n")
    };
    let before = dumps();

    // The example, in text: the deciding rule and the verdict.
    let t = out(&run(&["trace", "--from", "ep1", "--to", "ep2", "--proto", "tcp", "--dport", "8080"]));
    assert!(t.contains("1. from_endpoint on "), "{t}");
    assert!(t.contains("2. to_endpoint on "), "{t}");
    assert!(t.contains("L3-L4    identity 1001, tcp/8080: allow  <- deciding rule"), "{t}");
    assert!(t.contains("is identity 1001, from the endpoints map (endpoint 101 lab/ep1)"), "{t}");
    assert!(t.contains("endpoint 102 lab/ep2 (identity 1002), policy enforced in ingress"), "{t}");
    assert!(t.contains("\nVerdict: FORWARDED"), "{t}");
    // Endpoints by NAMESPACE/POD too: the same trace.
    let named = out(&run(&["trace", "--from", "lab/ep1", "--to", "lab/ep2", "--proto", "tcp", "--dport", "8080"]));
    assert_eq!(named, t);
    let o = run(&["trace", "--from", "lab/ep9", "--to", "lab/ep2", "--proto", "tcp", "--dport", "8080"]);
    assert_eq!(o.status.code(), Some(2), "a name no endpoint has is a usage error: {o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from lab/ep9: no endpoint has that name"), "{o:?}");

    let verdict = |args: &[&str]| {
        let mut a = vec!["trace", "-o", "json"];
        a.extend(args);
        let v = json(run(&a));
        (v["verdict"].as_str().unwrap().to_string(), v["drop_reason"]["code"].as_u64())
    };
    let fwd = ("FORWARDED".to_string(), None);
    assert_eq!(verdict(&["--from", "ep1", "--to", "ep2", "--dport", "8080"]), fwd);
    assert_eq!(verdict(&["--from", "ep1", "--to", "ep2", "--dport", "8080", "-6"]), fwd);
    assert_eq!(verdict(&["--from", "ep1", "--to", &ep2_ip, "--proto", "udp", "--dport", "5353"]).1, Some(181));
    assert_eq!(verdict(&["--from", "101", "--to", "ep2", "--proto", "icmp"]).1, Some(133));
    // Policy looks at peers and ports, not at TCP state: a lone ACK opens an entry too.
    assert_eq!(verdict(&["--from", "ep1", "--to", "ep2", "--dport", "8080", "--tcp-flags", "A"]), fwd);
    assert_eq!(verdict(&["--from", "ep1", "--to", "ep2", "--dport", "7777", "--tcp-flags", "SYN"]).1, Some(133));
    assert_eq!(dumps(), before, "a trace changes no map");

    // Real traffic then gets exactly that: TCP 8080 through, UDP 5353 and ping dropped.
    let traffic = json(run(&["lab", "traffic", "-o", "json"]));
    for r in traffic.as_array().unwrap() {
        let want = r["kind"] == "tcp";
        assert_eq!(r["ok"].as_bool(), Some(want), "{r}");
    }

    // Bad input: a clear error, exit non-zero.
    let bad = |args: &[&str], needle: &str| {
        let mut a = vec!["trace"];
        a.extend(args);
        let o = run(&a);
        assert_ne!(o.status.code(), Some(0));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    };
    bad(
        &["--from", "ep9", "--to", "ep2", "--dport", "1"],
        "not an endpoint id, NAMESPACE/POD, an IP address, or the name of a lab endpoint",
    );
    bad(&["--from", "ep1", "--to", "ep2"], "--dport is required for tcp");
    bad(&["--from", "ep1", "--to", "ep2", "--dport", "1", "--tcp-flags", "QQ"], "tcpdump's letters");
    bad(&["--from", "10.9.9.9", "--to", "10.9.9.8", "--dport", "1"], "neither 10.9.9.9 nor 10.9.9.8 is an endpoint");
    bad(&["--from", "777", "--to", "ep2", "--dport", "1"], "no endpoint 777");
    bad(&["--packet", "4500zz"], "not hex");
    bad(&["--from", "ep1", "--to", "ep2", "--proto", "sctpx"], "unknown protocol");
}
