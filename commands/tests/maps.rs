//! `dpdbg map` and `dpdbg bpf` against real maps: maps bpftool made from an
//! object with rich BTF, and the datapath's own maps in the lab, compared
//! entry for entry with `bpftool -j map dump`.

mod common;

use common::{Bpffs, LabGuard};

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn dpdbg(bpffs: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdbg")).arg("--bpffs").arg(bpffs).args(args).output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok_json(o: Output) -> Value {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn fails(o: Output, needle: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {e}");
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// A usage error (exit 2): input the map cannot take, found before any write.
fn misused(o: Output, needle: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

fn bpftool(args: &[&str]) -> String {
    let o = Command::new("bpftool").args(args).output().unwrap();
    assert!(o.status.success(), "bpftool {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// bpftool's "formatted" view, in dpdbg's spelling: bitfields as numbers
/// (bpftool prints "0x5"), anonymous members flattened (bpftool nests them under "").
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                if k.is_empty()
                    && let Value::Object(inner) = normalize(x)
                {
                    out.extend(inner);
                    continue;
                }
                out.insert(k.clone(), normalize(x));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::String(s) if s.starts_with("0x") && s.len() > 2 => {
            u64::from_str_radix(&s[2..], 16).map(|n| json!(n)).unwrap_or_else(|_| v.clone())
        }
        other => other.clone(),
    }
}

/// bpftool -j map dump, as a sorted list of formatted entries (or raw hex without BTF).
fn bpftool_dump(pin: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&bpftool(&["-j", "map", "dump", "pinned", pin.to_str().unwrap()])).unwrap();
    let mut out: Vec<Value> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e.get("formatted") {
            Some(f) => normalize(f),
            None => json!({"key": e["key"], "value": e["value"]}),
        })
        .collect();
    out.sort_by_key(|e| e["key"].to_string());
    out
}

fn ours_dump(bpffs: &Path, map: &str) -> Vec<Value> {
    let v = ok_json(dpdbg(bpffs, &["map", "dump", map, "-o", "json"]));
    let mut out = v.as_array().unwrap().clone();
    out.sort_by_key(|e| e["key"].to_string());
    out
}

const RICH: &str = "01 00 00 00 28 00 00 00 61 62 63 00 00 00 00 00 3d ff 00 00 00 00 00 00 f6 ff ff ff ff ff ff ff \
                    05 00 09 08 07 00 00 00 01 02 03 04 0a 00 14 00 01 00 00 00 02 00 00 00 03 00 00 00 00 00 00 00";

#[test]
fn maps_made_by_bpftool_decode_through_btf() {
    let fs = Bpffs::new();
    let dir = fs.0.join("bt");
    std::fs::create_dir_all(dir.join("maps")).unwrap();
    let obj = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(obj.path(), dpdbg::test_objects::BTF_MAPS).unwrap();
    bpftool(&[
        "prog",
        "loadall",
        obj.path().to_str().unwrap(),
        dir.join("progs").to_str().unwrap(),
        "type",
        "classifier",
        "pinmaps",
        dir.join("maps").to_str().unwrap(),
    ]);
    let pin = |m: &str| dir.join("maps").join(m);
    let rich = pin("rich_hash");
    let rich_s = rich.to_str().unwrap();

    // Written by bpftool as bytes, read by dpdbg through BTF.
    let mut args = vec!["map", "update", "pinned", rich_s, "key", "hex", "07", "00", "00", "00", "value", "hex"];
    args.extend(RICH.split_whitespace());
    bpftool(&args);
    let ours = ours_dump(&fs.0, rich_s);
    assert_eq!(
        ours,
        vec![json!({"key": 7, "value": {
            "id": 1, "color": "BLUE", "name": "abc", "small": 5, "mid": 7, "neg": -1, "big": -10,
            "in": {"a": 5, "b": [9, 8, 7]}, "u": {"as_u32": 0x04030201, "as_bytes": [1, 2, 3, 4]},
            "x": 10, "y": 20, "arr": [1, 2, 3]}})]
    );
    assert_eq!(ours, bpftool_dump(&rich), "dpdbg and bpftool agree");

    // Written by dpdbg from JSON, read back by bpftool as bytes.
    let value = r#"{"id":1,"color":"BLUE","name":"abc","small":5,"mid":7,"neg":-1,"big":-10,"in":{"a":5,"b":[9,8,7]},"u":{"as_u32":67305985},"x":10,"y":20,"arr":[1,2,3]}"#;
    ok(dpdbg(&fs.0, &["map", "update", rich_s, "8", value]));
    let raw: Value =
        serde_json::from_str(&bpftool(&["-j", "map", "lookup", "pinned", rich_s, "key", "8", "0", "0", "0"])).unwrap();
    let bytes: Vec<String> =
        raw["value"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()[2..].to_string()).collect();
    assert_eq!(bytes.join(" "), RICH, "JSON encodes to the same bytes bpftool wrote");
    let got = ok_json(dpdbg(&fs.0, &["map", "get", rich_s, "8", "-o", "json"]));
    assert_eq!(got["value"], ours[0]["value"]);

    // By name and by id too.
    let shown: Value = serde_json::from_str(&bpftool(&["-j", "map", "show", "pinned", rich_s])).unwrap();
    let id = shown["id"].as_u64().unwrap();
    let listed = ok_json(dpdbg(&fs.0, &["map", "list", "-o", "json"]));
    let entry = listed.as_array().unwrap().iter().find(|m| m["id"] == id).expect("map list has it").clone();
    assert_eq!(
        (entry["name"].as_str(), entry["type"].as_str(), entry["key_size"].as_u64()),
        (Some("rich_hash"), Some("hash"), Some(4))
    );
    let by_id = ok_json(dpdbg(&fs.0, &["map", "dump", &format!("id:{id}"), "-o", "json"]));
    assert_eq!(by_id.as_array().unwrap().len(), 2);

    // Per-CPU: one value is written to every CPU; each CPU is shown.
    let pc = pin("rich_percpu");
    let pc_s = pc.to_str().unwrap();
    ok(dpdbg(&fs.0, &["map", "update", pc_s, "3", r#"{"packets":5,"bytes":600}"#]));
    let ours = ours_dump(&fs.0, pc_s);
    let cpus = dpdbg::sys::possible_cpus().unwrap();
    assert_eq!(ours[0]["values"].as_array().unwrap().len(), cpus);
    assert!(ours[0]["values"].as_array().unwrap().iter().all(|c| c["value"] == json!({"packets": 5, "bytes": 600})));
    assert_eq!(ours, bpftool_dump(&pc));

    // Enums by name.
    let arr = pin("rich_array");
    let arr_s = arr.to_str().unwrap();
    ok(dpdbg(&fs.0, &["map", "update", arr_s, "2", "\"GREEN\""]));
    assert_eq!(ours_dump(&fs.0, arr_s), bpftool_dump(&arr));
    assert_eq!(ok_json(dpdbg(&fs.0, &["map", "get", arr_s, "2", "-o", "json"]))["value"], "GREEN");

    // Bad input: clear errors, exit 1, and the map is left as it was.
    let before = bpftool_dump(&rich);
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"color":"PURPLE"}"#]), "unknown enum value \"PURPLE\"");
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"colour":"RED"}"#]), "no field \"colour\"");
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"id": 1,"#]), "is not valid JSON");
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"neg": 200}"#]), "does not fit in 8 bits");
    misused(
        dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"name": "much too long"}"#]),
        "elements for an array of 8",
    );
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "hex:0700", "hex:00"]), "key is 2 bytes");
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "7", "hex:0102"]), "value is 2 bytes");
    misused(dpdbg(&fs.0, &["map", "update", rich_s, "hex:zz", "hex:00"]), "expected hex bytes");
    assert_eq!(bpftool_dump(&rich), before, "refused updates leave the map untouched");
    fails(dpdbg(&fs.0, &["map", "dump", pin("rich_ring").to_str().unwrap()]), "cannot be dumped");
    fails(dpdbg(&fs.0, &["map", "dump", "no_such_map_here"]), "no map named");
    fails(dpdbg(&fs.0, &["map", "dump", "id:4000000000"]), "no map with id");
    let plain_file = tempfile::NamedTempFile::new().unwrap();
    fails(dpdbg(&fs.0, &["map", "dump", plain_file.path().to_str().unwrap()]), "not a pinned BPF object");
    fails(dpdbg(&fs.0, &["map", "dump", dir.join("progs/touch").to_str().unwrap()]), "is a program, not a map");
    fails(dpdbg(&fs.0, &["map", "get", rich_s, "99"]), "not found");

    // A map without BTF: hex in, hex out, like bpftool.
    let plain = pin("plain");
    bpftool(&[
        "map",
        "create",
        plain.to_str().unwrap(),
        "type",
        "hash",
        "key",
        "4",
        "value",
        "8",
        "entries",
        "4",
        "name",
        "plain",
    ]);
    ok(dpdbg(&fs.0, &["map", "update", plain.to_str().unwrap(), "hex:01000000", "hex:02 00 00 00 00 00 00 00"]));
    assert_eq!(ours_dump(&fs.0, plain.to_str().unwrap()), bpftool_dump(&plain));
    misused(dpdbg(&fs.0, &["map", "get", plain.to_str().unwrap(), "1"]), "has no BTF");

    // Delete round trip.
    ok(dpdbg(&fs.0, &["map", "delete", rich_s, "8"]));
    fails(dpdbg(&fs.0, &["map", "get", rich_s, "8"]), "not found");
    fails(dpdbg(&fs.0, &["map", "delete", rich_s, "8"]), "not found");
    let _ = std::fs::remove_file(&plain);
}

#[test]
fn typed_commands_and_dumps_agree_with_bpftool_in_the_lab() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let run = |args: &[&str]| common::dpdbg(&fs.0, &state, args);
    let up = ok_json(run(&["lab", "up", "--endpoints", "2", "-o", "json"]));
    let ep = |i: usize, f: &str| up["endpoints"][i][f].clone();
    let (id1, id2) = (ep(0, "endpoint_id").as_u64().unwrap(), ep(1, "endpoint_id").as_u64().unwrap());
    let ident1 = ep(0, "identity").as_u64().unwrap().to_string();
    let id2s = id2.to_string();

    // Policy: enforce ingress on ep2, allow ICMP and TCP 8080 from ep1, deny UDP 5353.
    let host2 = ep(1, "host_if");
    ok(run(&[
        "bpf",
        "endpoint",
        "add",
        "--id",
        &id2s,
        "--identity",
        &ep(1, "identity").to_string(),
        "--ip",
        ep(1, "ipv4").as_str().unwrap(),
        "--ip",
        ep(1, "ipv6").as_str().unwrap(),
        "--interface",
        host2.as_str().unwrap(),
        "--mac",
        ep(1, "mac").as_str().unwrap(),
        "--enforce",
        "ingress",
    ]));
    for (proto, port, action) in
        [("icmp", "0", "allow"), ("icmpv6", "0", "allow"), ("tcp", "8080", "allow"), ("udp", "5353", "deny")]
    {
        ok(run(&[
            "bpf",
            "policy",
            "add",
            "--endpoint",
            &id2s,
            "--identity",
            &ident1,
            "--proto",
            proto,
            "--port",
            port,
            "--direction",
            "ingress",
            "--action",
            action,
        ]));
    }
    let o = run(&[
        "bpf",
        "policy",
        "add",
        "--endpoint",
        &id2s,
        "--port",
        "80",
        "--direction",
        "ingress",
        "--action",
        "allow",
    ]);
    assert_eq!(o.status.code(), Some(2), "a port without a protocol is a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --proto tcp or udp"));
    ok(run(&["bpf", "ipcache", "upsert", "203.0.113.0/24", "5000"]));
    ok(run(&["bpf", "ipcache", "upsert", "2001:db8::/32", "5001"]));
    let bad = run(&["bpf", "ipcache", "upsert", "10.0.0.0/33", "1"]);
    assert_eq!(bad.status.code(), Some(2), "a bad CIDR is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("prefix length 33 is longer than 32"));
    let traffic = ok_json(run(&["lab", "traffic", "-o", "json"]));
    let udp_ok: Vec<bool> =
        traffic.as_array().unwrap().iter().filter(|r| r["kind"] == "udp").map(|r| r["ok"].as_bool().unwrap()).collect();
    assert_eq!(udp_ok, vec![false, false], "UDP is denied on ep2's ingress");

    // Every one of our maps: our JSON dump and bpftool's agree entry for entry.
    let pins = fs.0.join("dpdbg/maps");
    for map in ["endpoints", "policy", "ct4", "ct6", "metrics", "ipcache"] {
        // A packet between the two dumps (the endpoints' own IPv6
        // housekeeping) moves the metrics: agree in one of a few tries.
        let (mut ours, mut theirs) = (ours_dump(&fs.0, map), bpftool_dump(&pins.join(map)));
        for _ in 0..4 {
            if ours == theirs {
                break;
            }
            (ours, theirs) = (ours_dump(&fs.0, map), bpftool_dump(&pins.join(map)));
        }
        assert!(!ours.is_empty(), "{map} has entries");
        assert_eq!(ours.len(), theirs.len(), "{map}: entry count");
        assert_eq!(ours, theirs, "{map}: entries");
    }

    // Typed views say the same as the maps.
    let eps = ok_json(run(&["bpf", "endpoint", "list", "-o", "json"]));
    assert_eq!(eps.as_array().unwrap().len(), 4);
    let got = ok_json(run(&["bpf", "endpoint", "get", &id2s, "-o", "json"]));
    assert!(got.as_array().unwrap().iter().all(|e| e["enforce_ingress"] == true && e["endpoint_id"] == id2));
    fails(run(&["bpf", "endpoint", "get", "4242"]), "endpoint 4242 not found");

    let rules = ok_json(run(&["bpf", "policy", "get", &id2s, "-o", "json"]));
    let rule = |proto: u64| rules.as_array().unwrap().iter().find(|r| r["proto"] == proto).unwrap().clone();
    assert_eq!(rule(17)["action"], "deny");
    assert_eq!(rule(17)["packets"], 2, "one denied packet per family");
    assert_eq!(rule(6)["packets"], 2, "the first packet of each TCP connection");
    assert_eq!(rule(1)["packets"], 1);

    let ct = ok_json(run(&["bpf", "ct", "list", "-o", "json"]));
    let n4 = bpftool_dump(&pins.join("ct4")).len();
    let n6 = bpftool_dump(&pins.join("ct6")).len();
    assert_eq!(ct.as_array().unwrap().len(), n4 + n6);
    let v4 = ok_json(run(&["bpf", "ct", "list", "--ipv4", "-o", "json"]));
    assert_eq!(v4.as_array().unwrap().len(), n4);
    let tcp = ok_json(run(&["bpf", "ct", "list", "--proto", "tcp", "--port", "8080", "-o", "json"]));
    let tcp = tcp.as_array().unwrap();
    assert_eq!(tcp.len(), 4, "two hooks x two families");
    assert!(
        tcp.iter().all(|e| e["state"] == "CLOSED" && e["dport"] == 8080 && e["packets_fwd"].as_u64().unwrap() >= 4)
    );
    let ip1 = ep(0, "ipv4").as_str().unwrap().to_string();
    let by_ip = ok_json(run(&["bpf", "ct", "list", "--ip", &ip1, "-o", "json"]));
    assert!(by_ip.as_array().unwrap().iter().all(|e| e["src"] == ip1.as_str() || e["dst"] == ip1.as_str()));
    // The table and jsonl forms.
    let table = ok(run(&["bpf", "ct", "list", "--proto", "tcp"]));
    assert!(table.contains("CLOSED") && table.contains(":8080"), "{table}");
    let jsonl = ok(run(&["bpf", "ct", "list", "-o", "jsonl"]));
    assert_eq!(jsonl.lines().count(), n4 + n6);

    let metric = |metrics: &serde_json::Value, reason: u64, dir: &str| {
        metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["reason"] == reason && x["direction"] == dir)
            .map(|x| x["packets"].as_u64().unwrap())
    };
    let forwarded_by_bpftool = || -> u64 {
        bpftool_dump(&pins.join("metrics"))
            .iter()
            .filter(|e| e["key"] == 0)
            .flat_map(|e| {
                e["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["value"]["packets"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    // The endpoints' own IPv6 housekeeping is forwarded at any moment: the
    // two readings must agree in one of a few tries, not on the first.
    let mut agreed = None;
    for _ in 0..5 {
        let metrics = ok_json(run(&["bpf", "metrics", "list", "-o", "json"]));
        let bt = forwarded_by_bpftool();
        agreed = Some((metric(&metrics, 0, "ingress"), Some(bt), metrics));
        if agreed.as_ref().is_some_and(|(a, b, _)| a == b) {
            break;
        }
    }
    let (ours, theirs, metrics) = agreed.unwrap();
    assert_eq!(ours, theirs, "forwarded ingress, summed over CPUs, as bpftool sees it");
    assert_eq!(metric(&metrics, 181, "ingress"), Some(2), "UDP denied by the deny rule");
    assert!(metric(&metrics, 0, "egress").unwrap() > 0);

    let ipc = ok_json(run(&["bpf", "ipcache", "list", "-o", "json"]));
    assert_eq!(ipc, json!([{"cidr": "2001:db8::/32", "identity": 5001}, {"cidr": "203.0.113.0/24", "identity": 5000}]));
    ok(run(&["bpf", "ipcache", "delete", "203.0.113.0/24"]));
    fails(run(&["bpf", "ipcache", "delete", "203.0.113.0/24"]), "is not in the ipcache");

    // gc removes only expired entries: plant one that expired long ago.
    let old = r#"{"created_ns":1,"last_seen_ns":1,"packets_fwd":1,"bytes_fwd":60,"lifetime_s":1,"src_identity":7}"#;
    ok(run(&[
        "map",
        "update",
        "ct4",
        r#"{"saddr":1,"daddr":2,"sport":3,"dport":4,"proto":17,"direction":0}"#,
        old,
        "--partial",
    ]));
    let gc = ok_json(run(&["bpf", "ct", "gc", "-o", "json"]));
    assert!(gc["deleted"].as_u64().unwrap() >= 1);
    assert!(bpftool_dump(&pins.join("ct4")).iter().all(|e| e["key"]["sport"] != 3), "the expired entry is gone");
    let flushed = ok_json(run(&["bpf", "ct", "flush", "-o", "json"]));
    assert!(flushed["deleted"].as_u64().unwrap() > 0);
    assert!(bpftool_dump(&pins.join("ct4")).is_empty() && bpftool_dump(&pins.join("ct6")).is_empty());
    let empty = run(&["bpf", "ct", "list"]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No entries found."));

    // Rules and endpoints go as they came.
    let delete_udp = [
        "bpf",
        "policy",
        "delete",
        "--endpoint",
        &id2s,
        "--identity",
        &ident1,
        "--proto",
        "udp",
        "--port",
        "5353",
        "--direction",
        "ingress",
    ];
    ok(run(&delete_udp));
    fails(run(&delete_udp), "no such rule");
    ok(run(&["bpf", "endpoint", "delete", &id1.to_string(), "--ip", ep(0, "ipv6").as_str().unwrap()]));
    assert_eq!(ok_json(run(&["bpf", "endpoint", "list", "-o", "json"])).as_array().unwrap().len(), 3);

    // prog list: our programs, where they are attached, and statistics while traffic runs.
    let stats = std::thread::scope(|s| {
        let h = s.spawn(|| ok_json(run(&["prog", "list", "--stats", "2", "-o", "json"])));
        std::thread::sleep(std::time::Duration::from_millis(300));
        ok_json(run(&["lab", "traffic", "-o", "json"]));
        h.join().unwrap()
    });
    let st = ok_json(run(&["datapath", "status", "-o", "json"]));
    let from_id = st["programs"][0]["id"].as_u64().unwrap();
    let prog = stats.as_array().unwrap().iter().find(|p| p["id"] == from_id).unwrap();
    assert_eq!(prog["name"], "from_endpoint");
    assert_eq!(prog["type"], "sched_cls");
    assert!(
        prog["attached"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == &json!(format!("tcx ingress {}", host2.as_str().unwrap()))),
        "{prog}"
    );
    assert!(prog["run_count"].as_u64().unwrap() > 0, "{prog}");
    assert!(prog["avg_ns"].as_f64().unwrap() > 0.0);
    let map_ids = prog["map_ids"].as_array().unwrap();
    let ct4_id = st["maps"].as_array().unwrap().iter().find(|m| m["name"] == "ct4").unwrap()["id"].clone();
    assert!(map_ids.contains(&ct4_id));

    ok(run(&["lab", "down"]));
}

/// A `dpdbg map watch -o jsonl` running beside the test, its lines read as they come.
struct Watcher(std::process::Child, std::sync::mpsc::Receiver<Value>, std::sync::mpsc::Receiver<String>);

impl Watcher {
    fn start(bpffs: &Path, map: &str) -> Watcher {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .args(["map", "watch", map, "--interval", "100", "-o", "jsonl"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The first read is the baseline: nothing may change before it is taken.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        err.read_line(&mut banner).unwrap();
        assert!(banner.starts_with("Watching map "), "{banner}");
        let (etx, erx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let _ = etx.send(l);
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&l).unwrap());
            }
        });
        Watcher(child, rx, erx)
    }

    /// The next line on stderr, waiting up to 10 s for it.
    fn said(&self) -> String {
        self.2.recv_timeout(std::time::Duration::from_secs(10)).expect("map watch said something on stderr")
    }

    /// The next change reported, waiting up to 10 s for it.
    fn next(&self) -> Value {
        self.1.recv_timeout(std::time::Duration::from_secs(10)).expect("map watch reported the change")
    }

    /// Stops the watch after a few quiet intervals; whatever else it said.
    fn stop(self) -> Vec<Value> {
        std::thread::sleep(std::time::Duration::from_millis(400));
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let mut child = self.0;
        assert!(child.wait().unwrap().success(), "map watch ended with an error");
        self.1.try_iter().collect()
    }
}

#[test]
fn map_watch_on_a_bpftool_map_and_on_ours() {
    let fs = Bpffs::new();
    let pin = fs.0.join("watched");
    let p = pin.to_str().unwrap();
    let create = |pin: &str| {
        bpftool(&["map", "create", pin, "type", "hash", "key", "4", "value", "8", "entries", "64", "name", "watched"])
    };
    let put = |k: &str, v: &str| {
        let mut args = vec!["map", "update", "pinned", p, "key"];
        args.extend(k.split(' '));
        args.push("value");
        args.extend(v.split(' '));
        bpftool(&args);
    };
    create(p);
    put("1 0 0 0", "1 0 0 0 0 0 0 0");
    let w = Watcher::start(&fs.0, p);
    put("2 0 0 0", "2 0 0 0 0 0 0 0");
    let added = w.next();
    put("1 0 0 0", "9 0 0 0 0 0 0 0");
    let changed = w.next();
    bpftool(&["map", "delete", "pinned", p, "key", "2", "0", "0", "0"]);
    let removed = w.next();
    // Another map under the same pin, after a while with none: key 1 holds 7 there.
    std::fs::remove_file(&pin).unwrap();
    let gone = w.said();
    assert!(gone.contains("no such pinned map") && gone.contains("until a map is back"), "{gone}");
    create(p);
    put("1 0 0 0", "7 0 0 0 0 0 0 0");
    let (replaced, after) = (w.next(), w.next());
    assert_eq!(w.said(), "map watch: the map is back");
    let rest = w.stop();
    let lines = [added, changed, removed, replaced, after];
    let kinds: Vec<&str> = lines.iter().map(|l| l["change"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["added", "changed", "removed", "replaced", "changed"], "{lines:#?}");
    assert!(rest.is_empty(), "nothing else changed: {rest:#?}");
    assert_eq!(lines[0]["key"], json!(["0x02", "0x00", "0x00", "0x00"]), "without BTF, bytes as bpftool prints them");
    assert_eq!(lines[1]["fields"][0]["field"], "[0]");
    assert_eq!(
        (lines[1]["fields"][0]["old"].as_str(), lines[1]["fields"][0]["new"].as_str()),
        (Some("0x01"), Some("0x09"))
    );
    assert!(lines[3]["new_id"].as_u64() > lines[3]["old_id"].as_u64());
    assert_eq!(lines[4]["fields"][0]["new"], "0x07", "the new map compared with the old one's last read");

    // Our endpoints map, with BTF: a changed entry names the field.
    ok(dpdbg(&fs.0, &["datapath", "load"]));
    ok(dpdbg(
        &fs.0,
        &["bpf", "endpoint", "add", "--id", "9", "--identity", "900", "--ip", "10.1.2.3", "--interface", "lo"],
    ));
    let w = Watcher::start(&fs.0, "endpoints");
    ok(dpdbg(&fs.0, &["bpf", "endpoint", "set", "9", "--identity", "905"]));
    let line = w.next();
    assert!(w.stop().is_empty());
    assert_eq!(line["change"], "changed");
    assert_eq!(line["fields"], json!([{"field": ".identity", "old": 900, "new": 905}]), "{line:#?}");
    // Text, counted, stopping by itself.
    let o = ok(dpdbg(&fs.0, &["map", "watch", "endpoints", "--interval", "20", "--count", "2", "--count-only"]));
    assert_eq!(o, "+0 -0 ~0 (1 entries)\n+0 -0 ~0 (1 entries)\n");
    let json = dpdbg(&fs.0, &["map", "watch", "endpoints", "-o", "json"]);
    assert_eq!(json.status.code(), Some(2), "a stream is jsonl: {}", String::from_utf8_lossy(&json.stderr));
}
