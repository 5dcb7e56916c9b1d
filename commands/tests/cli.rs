//! The dpdbg binary end to end: exit codes, error messages, JSON output, and
//! the lab from `lab up` to `lab down` leaving nothing behind.

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::process::{Command, Output};

use serde_json::Value;

fn ok_json(out: Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn errors_exit_non_zero_with_a_fix() {
    let plain = tempfile::tempdir().unwrap();
    let state = plain.path().join("lab.json");
    let o = dpdbg(plain.path(), &state, &["tui", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2), "the dashboard has no JSON: {}", stderr(&o));
    let o = dpdbg(plain.path(), &state, &["datapath", "status"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.starts_with("error: "), "{e}");
    assert!(e.contains(&format!("mount -t bpf bpf {}", plain.path().display())), "{e}");

    // Usage errors are exit code 2, as clap reports them.
    let o = dpdbg(plain.path(), &state, &["datapath", "attach"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = dpdbg(plain.path(), &state, &["datapath", "load", "--events", "carrier-pigeon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use ringbuf or perf"), "{}", stderr(&o));

    let fs = Bpffs::new();
    let o = dpdbg(&fs.0, &state, &["datapath", "attach", "lo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("dpdbg datapath load"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["datapath", "load", "--snaplen", "9217"]);
    assert_eq!(o.status.code(), Some(2), "a value out of range is a usage error");
    assert!(stderr(&o).contains("9217 is not in 0..=9216"), "{}", stderr(&o));
    ok_json(dpdbg(&fs.0, &state, &["datapath", "load", "-o", "json"]));
    let o = dpdbg(&fs.0, &state, &["datapath", "attach", "nonesuch0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\"nonesuch0\" does not exist"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["datapath", "load"]);
    assert!(stderr(&o).contains("already loaded"), "{}", stderr(&o));
    let o = dpdbg(&fs.0, &state, &["lab", "traffic"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("dpdbg lab up"), "{}", stderr(&o));
}

#[test]
fn without_privileges_says_so() {
    let fs = Bpffs::new();
    // As nobody, with every capability dropped.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .args(["datapath", "load"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied: loading the datapath needs root"), "{}", stderr(&o));
}

fn bpftool(args: &[&str]) -> String {
    let o = Command::new("bpftool").args(args).output().unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn lab_up_traffic_status_down() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };

    let up = ok_json(dpdbg(&fs.0, &state, &["lab", "up", "--endpoints", "3", "-o", "json"]));
    let eps = up["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 3);
    let host_ifs: Vec<String> = eps.iter().map(|e| e["host_if"].as_str().unwrap().to_string()).collect();
    let netns: Vec<String> = eps.iter().map(|e| e["netns"].as_str().unwrap().to_string()).collect();

    let traffic = ok_json(dpdbg(&fs.0, &state, &["lab", "traffic", "-o", "json"]));
    let results = traffic.as_array().unwrap();
    assert_eq!(results.len(), 3 * 2 * 3, "3 pairs x 2 families x icmp/tcp/udp");
    assert!(results.iter().all(|r| r["ok"] == true), "{traffic:#}");

    let st = ok_json(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]));
    assert_eq!(st["loaded"], true);
    assert_eq!(st["settings"]["transport"], "ringbuf");
    let ifaces = st["interfaces"].as_array().unwrap();
    for h in &host_ifs {
        for hook in ["ingress", "egress"] {
            assert!(
                ifaces.iter().any(|i| i["interface"] == h.as_str() && i["hook"] == hook && i["attached"] == true),
                "{h} {hook} attached: {ifaces:#?}"
            );
        }
    }
    let maps = st["maps"].as_array().unwrap();
    let entries = |name: &str| maps.iter().find(|m| m["name"] == name).unwrap()["entries"].as_u64().unwrap();
    assert_eq!(entries("endpoints"), 6, "an IPv4 and an IPv6 address per endpoint");
    assert!(entries("ct4") >= 3 * 3 * 2, "icmp, tcp and udp per pair at two hooks");
    assert!(entries("ct6") >= 3 * 3 * 2);
    let prog_ids: Vec<u64> = st["programs"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect();

    // The human table says the same.
    let o = dpdbg(&fs.0, &state, &["datapath", "status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Events:      ringbuf"), "{text}");
    assert!(text.contains(&host_ifs[0]) && text.contains("attached"), "{text}");

    let down = ok_json(dpdbg(&fs.0, &state, &["lab", "down", "-o", "json"]));
    assert_eq!(down["removed_endpoints"], 3);
    assert!(!state.exists());
    let progs: Value = serde_json::from_str(&bpftool(&["-j", "prog", "show"])).unwrap();
    let left: Vec<_> =
        progs.as_array().unwrap().iter().filter(|p| prog_ids.contains(&p["id"].as_u64().unwrap())).collect();
    assert!(left.is_empty(), "programs left: {left:?}");
    let net = bpftool(&["net", "show"]);
    assert!(host_ifs.iter().all(|h| !net.contains(h.as_str())), "{net}");
    let links = bpftool(&["-j", "link", "show"]);
    let links: Value = serde_json::from_str(&links).unwrap();
    assert!(links.as_array().unwrap().iter().all(|l| !prog_ids.contains(&l["prog_id"].as_u64().unwrap_or(0))));
    let ns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(netns.iter().all(|n| !ns.contains(n.as_str())), "{ns}");
    assert!(!fs.0.join("dpdbg").exists(), "no pins left");
    let st = ok_json(dpdbg(&fs.0, &state, &["datapath", "status", "-o", "json"]));
    assert_eq!(st["loaded"], false);
}

#[test]
fn ipcache_get_names_the_source_of_an_identity() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    ok_json(dpdbg(&fs.0, &state, &["datapath", "load", "-o", "json"]));
    for (cidr, id) in [("10.0.0.0/8", "100"), ("10.1.0.0/16", "200")] {
        assert!(dpdbg(&fs.0, &state, &["bpf", "ipcache", "upsert", cidr, id]).status.success());
    }
    let add = dpdbg(
        &fs.0,
        &state,
        &["bpf", "endpoint", "add", "--id", "9", "--identity", "900", "--ip", "10.1.2.3", "--interface", "lo"],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let get = |ip: &str| ok_json(dpdbg(&fs.0, &state, &["bpf", "ipcache", "get", ip, "-o", "json"]));
    assert_eq!(
        get("10.1.9.9"),
        serde_json::json!({"ip": "10.1.9.9", "identity": 200, "source": "ipcache", "cidr": "10.1.0.0/16"})
    );
    assert_eq!(get("10.2.0.1")["cidr"], "10.0.0.0/8", "the longest prefix that holds it");
    assert_eq!(get("192.0.2.1"), serde_json::json!({"ip": "192.0.2.1", "identity": 2, "source": "world"}));
    let ep = get("10.1.2.3");
    assert_eq!(
        (ep["identity"].as_u64(), ep["source"].as_str(), ep["endpoint_id"].as_u64()),
        (Some(900), Some("endpoint"), Some(9))
    );
    let text = dpdbg(&fs.0, &state, &["bpf", "ipcache", "get", "10.1.9.9"]);
    assert_eq!(String::from_utf8_lossy(&text.stdout).trim(), "10.1.9.9 -> identity 200: ipcache 10.1.0.0/16");
    let world = dpdbg(&fs.0, &state, &["bpf", "ipcache", "get", "192.0.2.1"]);
    assert!(String::from_utf8_lossy(&world.stdout).contains("identity 2 (world)"));
    let bad = dpdbg(&fs.0, &state, &["bpf", "ipcache", "get", "10.0.0.0/8"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("not an IPv4 or IPv6 address"), "{}", stderr(&bad));
}
