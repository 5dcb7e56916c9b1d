//! dpdbg on a bad day: hostile arguments, interrupted and concurrent
//! commands, changes made behind its back. Each test here failed before the
//! fix it names.

mod common;

use common::{Bpffs, dpdbg};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    stdout(&o)
}

fn ok_json(o: Output) -> Value {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Exit `code`, `needle` in stderr, no panic.
fn refused(o: Output, code: i32, needle: &str) {
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
    assert!(!e.contains("panicked") && !e.contains("RUST_BACKTRACE"), "{e}");
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A veth pair in this namespace, deleted on drop.
struct Veth(String);

impl Veth {
    fn new(tag: &str) -> Veth {
        let name = format!("dph{tag}{}", std::process::id() % 10000);
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        sh("ip", &["link", "add", &name, "type", "veth", "peer", "name", &format!("{name}p")]);
        sh("ip", &["link", "set", &name, "up"]);
        Veth(name)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn no_panic_on_any_argument() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    for w in ["inf", "1e30", "NaN", "-1", "0", "3601"] {
        refused(dpdbg(&fs.0, &st, &["prog", "list", &format!("--stats={w}")]), 2, "at most 3600 seconds");
    }
    refused(dpdbg(&fs.0, &st, &["prog", "list", "--stats=nonsense"]), 2, "expected seconds");
    for d in ["18446744073709551615s", "99999999999999999999", "500000000h", "1y1y1y1y1y1y1y1y1y1y1y"] {
        refused(dpdbg(&fs.0, &st, &["monitor", "--until", d]), 2, "--until");
        refused(dpdbg(&fs.0, &st, &["monitor", "--since", d]), 2, "--since");
    }
    refused(dpdbg(&fs.0, &st, &["monitor", "--until", "5 parsecs"]), 2, "a duration like");
}

#[test]
fn interface_names_are_not_paths() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    // What `detach ../../x` used to remove: a directory outside the pin tree.
    let victim = fs.0.join("x-ingress-clsact");
    std::fs::create_dir(&victim).unwrap();
    // A name the kernel would refuse is a usage error (issue 25, item 15), naming the rule.
    refused(dpdbg(&fs.0, &st, &["datapath", "detach", "../../x"]), 2, "is not an interface name");
    assert!(victim.exists(), "nothing outside the pin tree was touched");
    refused(dpdbg(&fs.0, &st, &["datapath", "attach", "../../x"]), 2, "is not an interface name");
    refused(dpdbg(&fs.0, &st, &["datapath", "attach", "bad/name"]), 2, "without '/', ':' or spaces");
    refused(dpdbg(&fs.0, &st, &["datapath", "attach", "lo", "bad:name"]), 2, "\"bad:name\" is not an interface name");
    refused(dpdbg(&fs.0, &st, &["datapath", "detach", "a-name-longer-than-15"]), 2, "1 to 15 bytes");
    let v = json_error(&dpdbg(&fs.0, &st, &["datapath", "attach", "..", "-o", "json"]), 2);
    assert!(v["error"].as_str().unwrap().contains("not \".\" or \"..\""), "{v}");
    let status = ok_json(dpdbg(&fs.0, &st, &["datapath", "status", "-o", "json"]));
    assert!(status["interfaces"].as_array().unwrap().is_empty(), "lo was not attached: {status:#}");
    std::fs::remove_dir(&victim).unwrap();
}

#[test]
fn parallel_loads_are_serialised() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    for round in 0..4 {
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_dpdbg"))
                .arg("--bpffs")
                .arg(&fs.0)
                .args(["datapath", "load"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
        assert_eq!(wins, 1, "round {round}: exactly one load wins: {} / {}", stderr(&a), stderr(&b));
        let loser = if a.status.success() { &b } else { &a };
        assert!(stderr(loser).contains("already loaded"), "round {round}: {}", stderr(loser));
        let status = ok_json(dpdbg(&fs.0, &st, &["datapath", "status", "-o", "json"]));
        assert_eq!(status["loaded"], true, "the winner's datapath is intact");
        assert_eq!(status["programs"].as_array().unwrap().len(), 4, "the live pair and trace's dry-run pair");
        ok(dpdbg(&fs.0, &st, &["datapath", "unload"]));
    }
}

#[test]
fn out_of_band_filter_removal_does_not_wedge() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    let veth = Veth::new("o");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    ok(dpdbg(&fs.0, &st, &["datapath", "attach", &veth.0, "--mode", "clsact"]));
    // Someone removes our ingress filter with tc.
    sh("tc", &["filter", "del", "dev", &veth.0, "ingress"]);
    let status = ok_json(dpdbg(&fs.0, &st, &["datapath", "status", "-o", "json"]));
    let hook =
        |h: &str| status["interfaces"].as_array().unwrap().iter().find(|i| i["hook"] == h).unwrap()["attached"].clone();
    assert_eq!(hook("ingress"), false, "status checks what is really attached: {status:#}");
    assert_eq!(hook("egress"), true);
    ok(dpdbg(&fs.0, &st, &["datapath", "detach", &veth.0]));
    let after = sh("tc", &["filter", "show", "dev", &veth.0, "egress"]);
    assert!(!after.contains("to_endpoint"), "the remaining filter went: {after}");
    // And unload copes the same way.
    ok(dpdbg(&fs.0, &st, &["datapath", "attach", &veth.0, "--mode", "clsact"]));
    sh("tc", &["filter", "del", "dev", &veth.0, "egress"]);
    ok(dpdbg(&fs.0, &st, &["datapath", "unload"]));
    assert!(!fs.0.join("dpdbg").exists());
}

#[test]
fn monitor_stops_when_the_datapath_is_unloaded() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    let mon = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .arg("monitor")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    ok(dpdbg(&fs.0, &st, &["datapath", "unload"]));
    let t = Instant::now();
    let out = mon.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "stopped within a second or so: {:?}", t.elapsed());
    refused(out, 1, "was unloaded");
    // The ring is not held any more: a new datapath and monitor work at once.
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    ok(dpdbg(&fs.0, &st, &["monitor", "--until", "300ms"]));
}

#[test]
fn attach_and_detach_are_all_or_nothing() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    let veth = Veth::new("a");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    refused(dpdbg(&fs.0, &st, &["datapath", "attach", &veth.0, "nonesuch0"]), 1, "\"nonesuch0\" does not exist");
    let status = ok_json(dpdbg(&fs.0, &st, &["datapath", "status", "-o", "json"]));
    assert!(status["interfaces"].as_array().unwrap().is_empty(), "{veth} left as it was: {status:#}", veth = veth.0);
    assert!(!sh("bpftool", &["net", "show"]).contains(&veth.0));
    ok(dpdbg(&fs.0, &st, &["datapath", "attach", &veth.0]));
    refused(dpdbg(&fs.0, &st, &["datapath", "detach", &veth.0, "nonesuch0"]), 1, "nonesuch0 has no dpdbg program");
    let status = ok_json(dpdbg(&fs.0, &st, &["datapath", "status", "-o", "json"]));
    assert_eq!(status["interfaces"].as_array().unwrap().len(), 2, "still attached: {status:#}");
}

#[test]
fn output_scripts_can_trust() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    // Errors under -o json are one JSON object on stderr, nothing on stdout.
    let o = dpdbg(&fs.0, &st, &["bpf", "ct", "list", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty(), "nothing on stdout: {}", stdout(&o));
    let err: Value = serde_json::from_str(stderr(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(err["exit_code"], 1);
    assert!(err["error"].as_str().unwrap().contains("dpdbg datapath load"), "{err}");

    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    for (id, ip) in [("301", "192.0.2.1"), ("302", "192.0.2.2")] {
        ok(dpdbg(
            &fs.0,
            &st,
            &["bpf", "endpoint", "add", "--id", id, "--identity", "5000", "--ip", ip, "--ifindex", "1"],
        ));
    }
    // jsonl: one object per line, on every command that lists.
    for args in
        [&["bpf", "endpoint", "list"][..], &["bpf", "metrics", "list"], &["map", "list"], &["datapath", "config"]]
    {
        let mut a = args.to_vec();
        a.extend(["-o", "jsonl"]);
        let out = ok(dpdbg(&fs.0, &st, &a));
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"));
            assert!(v.is_object(), "{args:?}: one object per line, not {line}");
        }
    }
    let eps = ok(dpdbg(&fs.0, &st, &["bpf", "endpoint", "list", "-o", "jsonl"]));
    assert_eq!(eps.lines().count(), 2);
    refused(dpdbg(&fs.0, &st, &["monitor", "-o", "json"]), 2, "use -o jsonl");
}

#[test]
fn messages_are_said_once_and_plainly() {
    let fs = Bpffs::new();
    // A state file nobody can write: the I/O error is said once, not twice.
    let o = dpdbg(&fs.0, Path::new("/proc/dpdbg-no-such-dir/lab.json"), &["lab", "up"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.matches("os error").count(), 1, "{e}");
    assert!(!e.contains("Io {") && !e.contains("Err("), "no Rust debug output: {e}");
    // A huge input is not echoed back whole.
    let st = fs.0.join("lab.json");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    let huge = format!("hex:{}", "zz".repeat(50_000));
    let o = dpdbg(&fs.0, &st, &["map", "update", "ct4", &huge, "hex:00"]);
    assert_eq!(o.status.code(), Some(2), "a malformed key is a usage error");
    assert!(stderr(&o).len() < 1000, "{} bytes of error", stderr(&o).len());
    assert!(stderr(&o).contains("100000 bytes"), "{}", stderr(&o));
}

#[test]
fn refuses_what_it_would_not_do_as_asked() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    refused(dpdbg(&fs.0, &st, &["datapath", "load", "--map-size", "events=3"]), 2, "power of two");
    refused(dpdbg(&fs.0, &st, &["datapath", "load", "--map-size", "events_perf=1"]), 2, "takes no --map-size");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    refused(
        dpdbg(&fs.0, &st, &["bpf", "ipcache", "upsert", "10.1.2.3/8", "5000"]),
        2,
        "the network with that prefix is 10.0.0.0/8",
    );
    let add = |id: &str, identity: &str, extra: &[&str]| {
        let mut a =
            vec!["bpf", "endpoint", "add", "--id", id, "--identity", identity, "--ip", "192.0.2.9", "--ifindex", "1"];
        a.extend(extra);
        dpdbg(&fs.0, &st, &a)
    };
    refused(add("1", "0", &[]), 2, "identity 0 is reserved");
    refused(add("1", "2", &[]), 2, "identity 2 is reserved");
    ok(add("1", "5000", &[]));
    refused(add("2", "5001", &[]), 1, "192.0.2.9 (endpoint 1) already belong to another endpoint");
    ok(add("2", "5001", &["--force"]));
    // A lab with perf events over a ring-buffer datapath would not be what was asked.
    refused(dpdbg(&fs.0, &st, &["lab", "up", "--events", "perf"]), 1, "ring buffer is already loaded");
    assert!(!st.exists(), "the refused lab left no state");

    // JSON for maps: every field, real booleans, no key twice.
    let key = r#"{"endpoint_id":1,"identity":2,"dport":80,"proto":6,"direction":0}"#;
    refused(dpdbg(&fs.0, &st, &["map", "update", "policy", key, r#"{"action":1}"#]), 2, "missing packets, bytes");
    ok(dpdbg(&fs.0, &st, &["map", "update", "policy", key, r#"{"action":1}"#, "--partial"]));
    refused(
        dpdbg(&fs.0, &st, &["map", "update", "policy", key, r#"{"action":true,"packets":0,"bytes":0}"#]),
        2,
        "expected an integer, got a boolean",
    );
    refused(
        dpdbg(&fs.0, &st, &["map", "update", "policy", key, r#"{"action":1,"action":0,"packets":0,"bytes":0}"#]),
        2,
        "\"action\" is given twice",
    );
}

#[test]
fn writes_by_name_stay_inside_our_bpffs() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    let name = format!("dpt{}", std::process::id() % 100_000);
    let pin = fs.0.join(&name);
    sh(
        "bpftool",
        &[
            "map",
            "create",
            pin.to_str().unwrap(),
            "type",
            "hash",
            "key",
            "4",
            "value",
            "4",
            "entries",
            "4",
            "name",
            &name,
        ],
    );
    let id =
        ok_json(Command::new("bpftool").args(["-j", "map", "show", "pinned", pin.to_str().unwrap()]).output().unwrap())
            ["id"]
            .clone();
    refused(dpdbg(&fs.0, &st, &["map", "update", &name, "hex:01000000", "hex:02000000"]), 1, &format!("id:{id}"));
    let dump = dpdbg(&fs.0, &st, &["map", "dump", &name]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert!(stderr(&dump).contains(&format!("reading map id:{id}")), "{}", stderr(&dump));
    ok(dpdbg(&fs.0, &st, &["map", "update", pin.to_str().unwrap(), "hex:01000000", "hex:02000000"]));
    std::fs::remove_file(&pin).unwrap();
}

#[test]
fn int128_fields_decode_and_encode_like_bpftool() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    let dir = fs.0.join("bt");
    std::fs::create_dir_all(dir.join("maps")).unwrap();
    let obj = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(obj.path(), dpdbg::test_objects::BTF_MAPS).unwrap();
    let (objs, progs, maps) = (obj.path().to_str().unwrap(), dir.join("progs"), dir.join("maps"));
    sh(
        "bpftool",
        &["prog", "loadall", objs, progs.to_str().unwrap(), "type", "classifier", "pinmaps", maps.to_str().unwrap()],
    );
    let wide = maps.join("wide_hash");
    let w = wide.to_str().unwrap();
    let value = r#"{"s":-5,"u":"0xffffffffffffffffffffffffffffffff","tail":7}"#;
    ok(dpdbg(&fs.0, &st, &["map", "update", w, "1", value]));
    let ours = ok_json(dpdbg(&fs.0, &st, &["map", "dump", w, "-o", "json"]));
    let theirs: Value = serde_json::from_str(&sh("bpftool", &["-j", "map", "dump", "pinned", w])).unwrap();
    assert_eq!(ours[0]["value"], theirs[0]["formatted"]["value"], "ours {ours} vs bpftool {theirs}");
    assert_eq!(ours[0]["value"]["s"], "0xfffffffffffffffffffffffffffffffb");
    refused(
        dpdbg(&fs.0, &st, &["map", "update", w, "1", r#"{"s":0,"u":"-1","tail":0}"#]),
        2,
        "does not fit in 128 bits",
    );
}

/// `lab up` killed at several points; `lab down` then removes whatever it made.
#[test]
fn killed_lab_up_leaves_nothing_lab_down_cannot_remove() {
    for delay_ms in [20u64, 150, 400, 900, 2500] {
        let fs = Bpffs::new();
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("lab.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(&fs.0)
            .args(["lab", "up", "--endpoints", "3"])
            .env("DPDBG_LAB_STATE", &st)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // The lab's index: from its state file, else from its reservation.
        let index = std::fs::read_to_string(&st)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["index"].as_u64())
            .or_else(|| {
                std::fs::read_dir("/run/dpdbg/labs").ok()?.flatten().find_map(|e| {
                    let owner = std::fs::read_to_string(e.path()).ok()?;
                    (owner.trim() == pid.to_string()).then(|| e.file_name().to_string_lossy().parse().ok())?
                })
            });
        if st.exists() {
            let down = dpdbg(&fs.0, &st, &["lab", "down"]);
            assert!(down.status.success(), "after {delay_ms} ms: {}", stderr(&down));
            assert!(!st.exists());
        }
        let Some(idx) = index else { continue };
        let netns = sh("ip", &["netns", "list"]);
        assert!(!netns.contains(&format!("dpdbg-l{idx}-")), "after {delay_ms} ms, namespaces left: {netns}");
        let links = sh("ip", &["-o", "link", "show"]);
        assert!(!links.contains(&format!("dpl{idx}e")), "after {delay_ms} ms, veths left: {links}");
        let routes = sh("ip", &["route", "show"]);
        assert!(!routes.contains(&format!("198.18.{idx}.")), "after {delay_ms} ms, routes left: {routes}");
        assert!(!fs.0.join("dpdbg").exists(), "after {delay_ms} ms, pins left");
    }
}

/// `lab down` deletes only what the lab's naming scheme makes, and keeps the
/// state file while something it names could not be removed.
#[test]
fn lab_down_touches_only_what_a_lab_makes() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("lab.json");
    let forged = serde_json::json!({
        "index": 7, "bpffs": fs.0, "own_mount": false, "loaded_datapath": false,
        "ipv6_forwarding_before": null,
        "endpoints": [{
            "name": "ep1", "netns": "dpdbg-l7-ep1", "host_if": "lo", "ifindex": 1,
            "ipv4": "198.18.7.1", "ipv6": "fd00:dbd:7::1", "mac": "02:00:00:00:00:01",
            "host_mac": "02:00:00:00:00:02", "endpoint_id": 101, "identity": 1001
        }]
    });
    std::fs::write(&st, forged.to_string()).unwrap();
    refused(dpdbg(&fs.0, &st, &["lab", "down"]), 1, "names interface \"lo\", which no lab makes");
    assert!(st.exists());
    assert!(sh("ip", &["link", "show", "lo"]).contains("LOOPBACK"), "lo is still there");

    // A lab whose datapath cannot be unloaded (another dpdbg holds the lock):
    // lab down fails and the state file stays, naming what is left.
    ok(dpdbg(&fs.0, &dir.path().join("real.json"), &["lab", "up", "--endpoints", "1"]));
    let real = dir.path().join("real.json");
    let held = dpdbg::sys::lock_dir(&fs.0, Duration::ZERO).expect("take the datapath lock");
    let down = dpdbg(&fs.0, &real, &["lab", "down"]);
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
    assert!(stderr(&down).contains("is busy"), "{}", stderr(&down));
    assert!(real.exists(), "the state file stays while pins are left");
    drop(held);
    ok(dpdbg(&fs.0, &real, &["lab", "down"]));
    assert!(!real.exists() && !fs.0.join("dpdbg").exists());
}

/// The one JSON object a failed command prints on stderr under `-o json`,
/// with nothing on stdout.
fn json_error(o: &Output, code: i64) -> Value {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code as i32), "stderr: {e}");
    assert!(stdout(o).is_empty(), "nothing on stdout: {}", stdout(o));
    assert_eq!(e.trim_end().lines().count(), 1, "one line on stderr: {e}");
    let v: Value = serde_json::from_str(e.trim()).unwrap_or_else(|err| panic!("{err}: {e}"));
    assert_eq!(v["exit_code"], code, "{v}");
    assert!(!v["error"].as_str().unwrap_or("").is_empty(), "{v}");
    v
}

/// Issue 25, item 13: clap's own errors (found before main ran) were plain
/// text whatever -o asked for.
#[test]
fn parse_errors_are_json_when_json_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("lab.json");
    let cases: &[(&[&str], &str)] = &[
        (&["-o", "json", "bpf", "ct", "list", "--port", "99999"], "99999 is not in 0..=65535"),
        (&["-o", "json", "bpf", "ct", "list", "--nope"], "unexpected argument '--nope'"),
        (&["-o", "json", "datapath", "attach"], "<IFACE>"),
        (&["-o", "json", "bpf", "nonesuch"], "unrecognized subcommand 'nonesuch'"),
        (&["-o", "json", "bpf"], "endpoint"),
        (&["--output=json", "map", "get", "ct4"], "<KEY>"),
        (&["-ojson", "monitor", "--count", "abc"], "invalid digit"),
        (&["-o", "jsonl", "monitor", "--count", "1", "--count", "2"], "cannot be used multiple times"),
        (&["-o", "jsonpb", "datapath", "status", "extra"], "unexpected argument 'extra'"),
        (&["-o", "json", "--tls-cert", "x", "datapath", "status"], "--tls-key"),
        (&["observe", "--last", "1", "--first", "2", "--output", "json"], "cannot be used with"),
        (&["-o=json", "datapath", "load", "--events", "carrier-pigeon"], "use ringbuf or perf"),
        (&["datapath", "load", "--snaplen", "x", "-o", "jsonl"], "--snaplen"),
        (&["-o", "json"], "dpdbg"),
    ];
    for (args, needle) in cases {
        let o = dpdbg(dir.path(), &st, args);
        let v = json_error(&o, 2);
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{args:?}: expected {needle:?} in {msg}");
        assert!(!msg.starts_with("error:"), "{args:?}: the word error is the key, not the text: {msg}");
    }
    // Without -o json the text is clap's, as before.
    let o = dpdbg(dir.path(), &st, &["bpf", "ct", "list", "--port", "99999"]);
    refused(o, 2, "error: invalid value '99999' for '--port <PORT>'");
    // After `--` a "-o json" is a value, not the format.
    let o = dpdbg(dir.path(), &st, &["map", "get", "--", "-o", "json", "extra"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    // Help and version are not errors: printed as ever, exit 0.
    for args in [&["-o", "json", "--help"][..], &["-o", "json", "--version"], &["-o", "json", "bpf", "ct", "-h"]] {
        let o = dpdbg(dir.path(), &st, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("dpdbg"), "{args:?}: {}", stdout(&o));
    }
}

/// Issue 25, item 14: observe sent a bad filter value to the server and
/// exited 1 with its INVALID_ARGUMENT; monitor refuses the same value with 2.
/// The server here does not exist: a bad value must be refused before dialing.
#[test]
fn observe_refuses_bad_filter_values_before_dialing() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("lab.json");
    let nowhere = dir.path().join("no-server.sock");
    let nowhere = nowhere.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--ip", "10.0.0/8"], "--ip"),
        (&["--from-ip", "10.0.0.300"], "--from-ip"),
        (&["--to-ip", "10.0.0.0/33"], "--to-ip"),
        (&["--to-ip", "fd00::/129"], "--to-ip"),
        (&["--protocol", "kafka"], "--protocol"),
        (&["--tcp-flags", "SYN,NOPE"], "--tcp-flags"),
        (&["--drop-reason-desc", "BAD_KARMA"], "--drop-reason-desc"),
        (&["--not", "--ip", "10.0.0/8"], "--ip"),
        (&["--not", "--protocol", "kafka"], "--protocol"),
        (&["--not", "--tcp-flags", "SYNN"], "--tcp-flags"),
        (&["--ip", "10.0.0.0/8", "--not", "--from-ip=bad"], "--from-ip"),
    ];
    for (flags, flag) in cases {
        let mut args = vec!["--server", nowhere, "observe"];
        args.extend(*flags);
        let o = dpdbg(dir.path(), &st, &args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {e}");
        assert!(e.contains(flag), "{flags:?}: names {flag}: {e}");
        assert!(!e.contains("cannot reach") && !e.contains("No such file"), "{flags:?}: refused before dialing: {e}");
        args.extend(["-o", "json"]);
        let v = json_error(&dpdbg(dir.path(), &st, &args), 2);
        assert!(v["error"].as_str().unwrap().contains(flag), "{flags:?}: {v}");
    }
    // Good values get as far as dialing, which fails at runtime (exit 1).
    let o = dpdbg(dir.path(), &st, &["--server", nowhere, "observe", "--ip", "10.0.0.0/8", "--protocol", "TCP"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// Issue 25, item 15: a --server that is no address at all ("", a port out
/// of range, no port) exited 1 as if a server did not answer there.
#[test]
fn a_server_address_that_does_not_parse_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("lab.json");
    let bad: &[(&str, &str)] = &[
        ("127.0.0.1:99999", "99999"),
        ("", "empty"),
        ("  ", "empty"),
        ("host:notaport", "notaport"),
        ("localhost", "no port"),
        ("127.0.0.1:0", "port 0"),
        (":4245", "no host"),
        ("fd00::1:4245", "brackets"),
        ("[fd00::1:4245", "brackets"),
        ("http://localhost:4245", "scheme"),
        ("unix:", "no path"),
        ("bad host:4245", "bad host"),
    ];
    let commands: &[&[&str]] =
        &[&["bpf", "ct", "list"], &["datapath", "status"], &["monitor"], &["observe"], &["health"], &["tui"]];
    for (addr, needle) in bad {
        for cmd in commands {
            let mut args = vec!["--server", addr];
            args.extend(*cmd);
            let o = dpdbg(dir.path(), &st, &args);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "--server {addr:?} {cmd:?}: {e}");
            assert!(e.contains(needle), "--server {addr:?} {cmd:?}: expected {needle:?} in {e}");
            assert!(e.contains("unix socket path") && e.contains("host:port"), "says what is valid: {e}");
            assert!(!e.contains("cannot reach") && !e.contains("refusing plain TCP"), "{e}");
        }
        // Through the environment too, and as JSON when asked.
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .args(["bpf", "ct", "list", "-o", "json"])
            .env("DPDBG_SERVER", addr)
            .output()
            .unwrap();
        let v = json_error(&o, 2);
        assert!(v["error"].as_str().unwrap().contains(needle), "DPDBG_SERVER={addr:?}: {v}");
    }
    // Well-formed addresses nobody answers on stay runtime errors.
    let port = common::free_port();
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}"), format!("localhost:{port}")] {
        refused(dpdbg(dir.path(), &st, &["--server", &addr, "bpf", "ct", "list"]), 1, "cannot reach");
        refused(dpdbg(dir.path(), &st, &["--server", &addr, "observe"]), 1, "cannot reach");
    }
    let sock = dir.path().join("none.sock");
    refused(dpdbg(dir.path(), &st, &["--server", sock.to_str().unwrap(), "health"]), 1, "cannot reach");
    // A well-formed address off this machine without TLS is refused for what it is.
    refused(dpdbg(dir.path(), &st, &["--server", "192.0.2.1:4245", "bpf", "ct", "list"]), 1, "refusing plain TCP");
}

/// Issue 25, item 16 (and 12b): a --packet the kernel cannot run or too short
/// for its addresses exited 1 (a raw EINVAL from BPF_PROG_TEST_RUN for a big
/// one) where odd-length hex exited 2; and --from/--to were silently ignored
/// beside --packet although they name whose hooks the packet runs through.
#[test]
fn trace_packet_limits_are_usage_errors_and_from_to_pick_the_hooks() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    let veth = Veth::new("t");
    let peer = format!("{}p", veth.0);
    sh("ip", &["link", "set", &peer, "up"]);
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    for (id, ip, ifname) in [("301", "192.0.2.1", veth.0.as_str()), ("302", "192.0.2.2", peer.as_str())] {
        let a = ["bpf", "endpoint", "add", "--id", id, "--identity", "5000", "--ip", ip, "--interface", ifname];
        ok(dpdbg(&fs.0, &st, &a));
    }
    let ifindex = |name: &str| dpdbg::sys::ifindex(name).unwrap() as u64;
    let (if1, if2) = (ifindex(&veth.0), ifindex(&peer));
    // TCP SYN 192.0.2.1:40000 -> 192.0.2.2:8080.
    let syn = "45000028000100004006 0000 c0000201 c0000202 9c401f90 00000000 00000000 5002faf0 00000000";
    let trace = |extra: &[&str]| {
        let mut a = vec!["trace", "-o", "json"];
        a.extend(extra);
        dpdbg(&fs.0, &st, &a)
    };

    // Shape and size: exit 2, saying the limit and why, before any program runs.
    let ipv6_short = format!("60{}", "00".repeat(20));
    let shapes: &[(&str, &str)] = &[
        ("45", "too short for an IPv4 header"),
        ("450000280001", "6 of at least 20 bytes"),
        (&ipv6_short, "40 bytes"),
        ("", "empty"),
        ("12345678", "not an IPv4 or IPv6 packet"),
        ("450", "odd number of hex digits"),
    ];
    for (hex, needle) in shapes {
        let v = json_error(&trace(&["--packet", hex]), 2);
        assert!(v["error"].as_str().unwrap().contains(needle), "--packet {hex:?}: {v}");
    }
    let huge = format!("{}{}", syn.replace(' ', ""), "00".repeat(60_000));
    let v = json_error(&trace(&["--packet", &huge]), 2);
    let msg = v["error"].as_str().unwrap().to_string();
    assert!(msg.contains("too long (60040 bytes)") && msg.contains("BPF_PROG_TEST_RUN"), "{msg}");
    assert!(!msg.contains("os error") && !msg.contains("Invalid argument"), "{msg}");
    // The limit it names is the real one: a packet of exactly that size runs.
    let max: usize =
        msg.split("at most ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    let at_max = format!("{}{}", syn.replace(' ', ""), "00".repeat(max - 40));
    let r = ok_json(trace(&["--packet", &at_max]));
    assert_eq!(r["packet"]["length"], 14 + max as u64, "{r}");
    let over = format!("{at_max}00");
    json_error(&trace(&["--packet", &over]), 2);

    // By default the packet's addresses pick the hooks: 301's egress, 302's ingress.
    let hops = |r: &Value| -> Vec<(String, u64)> {
        r["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["program"].as_str().unwrap().into(), h["ifindex"].as_u64().unwrap()))
            .collect()
    };
    let r = ok_json(trace(&["--packet", syn]));
    assert_eq!(hops(&r), [("from_endpoint".into(), if1), ("to_endpoint".into(), if2)], "{r:#}");
    assert_eq!(r["verdict"], "FORWARDED", "{r:#}");
    let same = ok_json(trace(&["--packet", syn, "--from", "301", "--to", "192.0.2.2"]));
    assert_eq!(hops(&same), hops(&r));
    // --from names the sender: 302 sending 301's address is dropped at 302's egress.
    let r = ok_json(trace(&["--packet", syn, "--from", "302"]));
    assert_eq!(hops(&r), [("from_endpoint".into(), if2)], "{r:#}");
    assert_eq!(r["drop_reason"]["code"], 132, "Invalid source ip: {r:#}");
    // --to names the receiver: delivered to 301's interface, not its address.
    let r = ok_json(trace(&["--packet", syn, "--to", "301"]));
    assert_eq!(hops(&r), [("from_endpoint".into(), if1), ("to_endpoint".into(), if1)], "{r:#}");
    assert_eq!(r["drop_reason"]["code"], 151, "Stale or unroutable IP: {r:#}");
    // A sender that is not an endpoint here: the packet enters at its receiver.
    let r = ok_json(trace(&["--packet", syn, "--from", "198.51.100.7"]));
    assert_eq!(hops(&r), [("to_endpoint".into(), if2)], "{r:#}");
    refused(trace(&["--packet", syn, "--from", "999"]), 1, "no endpoint 999");
}

/// Issue 25, item 17: a key or value the user typed that does not fit the
/// map (fields missing, the wrong size, not hex) exited 1 as if the kernel
/// had refused it; the kernel's own refusals stay exit 1.
#[test]
fn malformed_map_keys_and_values_are_usage_errors() {
    let fs = Bpffs::new();
    let st = fs.0.join("lab.json");
    ok(dpdbg(&fs.0, &st, &["datapath", "load"]));
    let size = |side: &str| -> usize {
        let maps = ok_json(dpdbg(&fs.0, &st, &["map", "list", "-o", "json"]));
        let ct4 = maps.as_array().unwrap().iter().find(|m| m["name"] == "ct4").unwrap().clone();
        ct4[side].as_u64().unwrap() as usize
    };
    let (ks, vs) = (size("key_size"), size("value_size"));
    let key = format!("hex:{}", "00".repeat(ks));
    let value = format!("hex:{}", "00".repeat(vs));
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["update".into(), "ct4".into(), r#"{"saddr":1}"#.into(), "hex:00".into()], "key: missing daddr".into()),
        (vec!["update".into(), "ct4".into(), key.clone(), "hex:00".into()], format!("map ct4 takes {vs}-byte values")),
        (vec!["update".into(), "ct4".into(), "hex:00".into(), value.clone()], format!("map ct4 takes {ks}-byte keys")),
        (vec!["update".into(), "ct4".into(), "hex:0g".into(), value.clone()], "expected hex bytes".into()),
        (vec!["update".into(), "ct4".into(), key.clone(), r#"{"packets_fwd":"#.into()], "is not valid JSON".into()),
        (vec!["get".into(), "ct4".into(), "hex:0102".into()], format!("map ct4 takes {ks}-byte keys")),
        (vec!["delete".into(), "ct4".into(), "hex:0102".into()], format!("map ct4 takes {ks}-byte keys")),
        (vec!["get".into(), "ct4".into(), r#"{"nope":1}"#.into(), "--partial".into()], "no field \"nope\"".into()),
    ];
    for (args, needle) in &cases {
        let mut a = vec!["map"];
        a.extend(args.iter().map(String::as_str));
        refused(dpdbg(&fs.0, &st, &a), 2, needle);
        a.extend(["-o", "json"]);
        let v = json_error(&dpdbg(&fs.0, &st, &a), 2);
        assert!(v["error"].as_str().unwrap().contains(needle.as_str()), "{args:?}: {v}");
    }
    // What the kernel refuses is a runtime error, as before.
    refused(dpdbg(&fs.0, &st, &["map", "update", "ct4", &key, &value, "--flag", "exist"]), 1, "bpf_map_update_elem");
    ok(dpdbg(&fs.0, &st, &["map", "update", "ct4", &key, &value]));
    refused(dpdbg(&fs.0, &st, &["map", "update", "ct4", &key, &value, "--flag", "noexist"]), 1, "bpf_map_update_elem");
    refused(dpdbg(&fs.0, &st, &["map", "get", "ct4", &format!("hex:{}", "01".repeat(ks))]), 1, "not found");
}
