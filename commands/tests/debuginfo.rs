//! `dpdbg debuginfo`: the lab's bundle is a tarball whose manifest lists
//! every part (and why a part is missing), maps are capped and say so,
//! `-o json` is one document, and through `--server` the node collects while
//! the bundle is written on this side. Nothing half-written is left.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{CliLab, Server};
use serde_json::Value;

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The tarball's files (without the top directory) and its manifest.
fn unpack(tgz: &Path) -> (Vec<String>, Value) {
    let list = Command::new("tar").arg("tzf").arg(tgz).output().unwrap();
    assert!(list.status.success(), "tar: {}", text(&list));
    let files: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_once('/').map_or(l, |(_, rest)| rest).to_string())
        .collect();
    let top = String::from_utf8_lossy(&list.stdout).lines().next().unwrap().split('/').next().unwrap().to_string();
    let m = Command::new("tar").arg("xzf").arg(tgz).arg("-O").arg(format!("{top}/manifest.json")).output().unwrap();
    assert!(m.status.success(), "{}", text(&m));
    (files, serde_json::from_slice(&m.stdout).unwrap())
}

fn run(lab: &CliLab, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dpdbg"));
    c.arg("--bpffs").arg(&lab.fs.0).args(args).env("DPDBG_LAB_STATE", &lab.state);
    c.env("DPDBG_EVENTS_SOCKET", lab.dir.path().join("no-server.sock"));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn the_labs_bundle_lists_every_part() {
    let lab = CliLab::up();
    let o = lab.run(&["lab", "traffic"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = lab.dir.path();
    let tgz = dir.join("bundle.tar.gz");
    let o = run(&lab, &[("DPDBG_DEBUGINFO_MAP_MAX", "2")], &["debuginfo", "--file", tgz.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), tgz.to_str().unwrap());
    let (files, manifest) = unpack(&tgz);
    assert_eq!(files[0], "manifest.json", "the manifest comes first");
    let parts = manifest["parts"].as_array().unwrap();
    // Every file is in the manifest and every collected part is a file.
    for f in &files[1..] {
        assert!(parts.iter().any(|p| p["file"] == f.as_str()), "{f} is not in the manifest");
    }
    for p in parts {
        if p["collected"] == true {
            assert!(files.contains(&p["file"].as_str().unwrap().to_string()), "{p}");
        } else {
            assert!(p["note"].as_str().is_some_and(|n| !n.is_empty()), "a missing part says why: {p}");
        }
    }
    for want in [
        "version.json",
        "status.json",
        "datapath/status.json",
        "datapath/config.json",
        "bpf/endpoints.json",
        "bpf/metrics.json",
        "bpf/ct.jsonl",
        "maps/ct4.jsonl",
        "maps/endpoints.jsonl",
        "programs/list.json",
        "programs/from_endpoint.xlated.json",
        "programs/kernel_drop.xlated.json",
        "attachments/tc-filters.json",
        "pins.txt",
        "lab.json",
        "kernel-log.txt",
    ] {
        let p = parts.iter().find(|p| p["file"] == want).unwrap_or_else(|| panic!("no {want}: {manifest}"));
        assert_eq!(p["collected"], true, "{p}");
    }
    // Conntrack is capped, and the manifest says so.
    let ct = parts.iter().find(|p| p["file"] == "maps/ct4.jsonl").unwrap();
    assert!(ct["note"].as_str().unwrap().contains("the first 2 entries"), "{ct}");
    // No server here: the flows are missing, and why.
    let flows = parts.iter().find(|p| p["source"].as_str().unwrap().contains("observe")).unwrap();
    assert_eq!(flows["collected"], false);
    assert!(flows["note"].as_str().unwrap().contains("no dpdbg serve"), "{flows}");

    // -o json: one document with the same parts.
    let o = run(&lab, &[], &["-o", "json", "debuginfo", "--file", "-"]);
    assert!(o.status.success(), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["parts"]["datapath/status.json"]["loaded"] == true, "{}", doc["parts"]["datapath/status.json"]);
    assert!(doc["parts"]["programs/to_endpoint.xlated.json"]["insn_count"].as_u64().unwrap() > 100);

    // A file that cannot be written: an error, and nothing left behind.
    let o = run(&lab, &[], &["debuginfo", "--file", "/proc/no/such/dir/b.tar.gz"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".dpdbg-debuginfo-"))
    );
}

#[test]
fn through_the_server_the_bundle_is_written_here() {
    let lab = CliLab::up();
    let dir = lab.dir.path();
    let socket = dir.join("serve.sock");
    let _server = Server::start(&lab.fs.0, &socket, &[]);
    let o = lab.run(&["lab", "traffic"]);
    assert!(o.status.success(), "{}", text(&o));
    let tgz = dir.join("remote.tar.gz");
    let o = run(&lab, &[], &["--server", socket.to_str().unwrap(), "debuginfo", "--file", tgz.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let (files, manifest) = unpack(&tgz);
    assert!(files.contains(&"datapath/status.json".to_string()), "{files:?}");
    // The node's server answered the flows part: it runs there.
    let flows = manifest["parts"].as_array().unwrap().iter().find(|p| p["file"] == "flows.jsonl").cloned();
    let flows = flows.unwrap_or_else(|| panic!("{manifest}"));
    assert_eq!(flows["collected"], true, "{flows}");
    // `--file -`: the bundle on stdout here.
    let e = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["--server", socket.to_str().unwrap(), "debuginfo", "--file", "-"])
        .output()
        .unwrap();
    assert!(e.status.success() && !e.stdout.is_empty(), "{}", text(&e));
}
