//! `dpdbg map` and `dpdbg bpf` against real maps: maps bpftool made from an
//! object with rich BTF, and the datapath's own maps in the lab, compared
//! entry for entry with `bpftool -j map dump`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

struct Bpffs(PathBuf);

impl Bpffs {
    fn new() -> Bpffs {
        let p = tempfile::Builder::new().prefix("dpdbg-maps-").tempdir().unwrap().keep();
        dpdbg::sys::mount_bpffs(&p).unwrap();
        Bpffs(p)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = dpdbg::datapath::unload(&self.0);
        for d in ["maps", "progs"] {
            if let Ok(rd) = std::fs::read_dir(self.0.join("bt").join(d)) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = dpdbg::sys::unmount(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

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
    let raw: Value = serde_json::from_str(&bpftool(&["-j", "map", "lookup", "pinned", rich_s, "key", "8", "0", "0", "0"])).unwrap();
    let bytes: Vec<String> = raw["value"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()[2..].to_string()).collect();
    assert_eq!(bytes.join(" "), RICH, "JSON encodes to the same bytes bpftool wrote");
    let got = ok_json(dpdbg(&fs.0, &["map", "get", rich_s, "8", "-o", "json"]));
    assert_eq!(got["value"], ours[0]["value"]);

    // By name and by id too.
    let shown: Value = serde_json::from_str(&bpftool(&["-j", "map", "show", "pinned", rich_s])).unwrap();
    let id = shown["id"].as_u64().unwrap();
    let listed = ok_json(dpdbg(&fs.0, &["map", "list", "-o", "json"]));
    let entry = listed.as_array().unwrap().iter().find(|m| m["id"] == id).expect("map list has it").clone();
    assert_eq!((entry["name"].as_str(), entry["type"].as_str(), entry["key_size"].as_u64()), (Some("rich_hash"), Some("hash"), Some(4)));
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
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"color":"PURPLE"}"#]), "unknown enum value \"PURPLE\"");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"colour":"RED"}"#]), "no field \"colour\"");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"id": 1,"#]), "is not valid JSON");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"neg": 200}"#]), "does not fit in 8 bits");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", r#"{"name": "much too long"}"#]), "elements for an array of 8");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "hex:0700", "hex:00"]), "key is 2 bytes");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "7", "hex:0102"]), "value is 2 bytes");
    fails(dpdbg(&fs.0, &["map", "update", rich_s, "hex:zz", "hex:00"]), "expected hex bytes");
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
    bpftool(&["map", "create", plain.to_str().unwrap(), "type", "hash", "key", "4", "value", "8", "entries", "4", "name", "plain"]);
    ok(dpdbg(&fs.0, &["map", "update", plain.to_str().unwrap(), "hex:01000000", "hex:02 00 00 00 00 00 00 00"]));
    assert_eq!(ours_dump(&fs.0, plain.to_str().unwrap()), bpftool_dump(&plain));
    fails(dpdbg(&fs.0, &["map", "get", plain.to_str().unwrap(), "1"]), "has no BTF");

    // Delete round trip.
    ok(dpdbg(&fs.0, &["map", "delete", rich_s, "8"]));
    fails(dpdbg(&fs.0, &["map", "get", rich_s, "8"]), "not found");
    fails(dpdbg(&fs.0, &["map", "delete", rich_s, "8"]), "not found");
    let _ = std::fs::remove_file(&plain);
}
