//! `dpdbg status`: the verdict and its exit code (0 ok, 3 degraded, 4
//! failed) for each thing it checks, the same through `--server`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Bpffs, CliLab};
use dpdbg::abi::{EndpointInfo, Reason};
use serde_json::Value;

/// dpdbg on `bpffs` with the status counters, the lab state and the server
/// socket all in `dir`, so nothing of the node's own is read or written.
fn status(bpffs: &Path, dir: &Path, lab_state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(args)
        .env("DPDBG_LAB_STATE", lab_state)
        .env("DPDBG_STATUS_STATE", dir.join("status.json"))
        .env("DPDBG_EVENTS_SOCKET", dir.join("serve.sock"))
        .env_remove("DPDBG_SERVER")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The done-when: after `datapath detach` of one lab interface
/// `status --brief` exits non-zero naming it, and 0 after the re-attach.
#[test]
fn brief_status_names_a_detached_lab_interface_and_clears_after_reattach() {
    let lab = CliLab::up();
    let dir = lab.dir.path();
    let run = |args: &[&str]| status(&lab.fs.0, dir, &lab.state, args);
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");

    let st: Value = serde_json::from_slice(&std::fs::read(&lab.state).unwrap()).unwrap();
    let ifname = st["endpoints"][0]["host_if"].as_str().unwrap().to_string();
    let o = lab.run(&["datapath", "detach", &ifname]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(3), "degraded: {}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.starts_with("degraded: ") && line.contains(&ifname) && line.contains("not attached"), "{line}");
    // JSON says the same, on stdout, with nothing on stderr.
    let o = run(&["-o", "json", "status"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], "degraded");
    let iface = v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "interfaces").unwrap();
    assert_eq!(iface["severity"], "degraded");

    let o = lab.run(&["datapath", "attach", &ifname]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
}

/// No datapath is failed (4); events not written or undecodable show once,
/// the look after says ok again; a nearly full map is degraded.
#[test]
fn each_check_moves_the_verdict() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let nolab = dir.path().join("no-lab.json");
    let run = |args: &[&str]| status(&fs.0, dir.path(), &nolab, args);

    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(4), "failed: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("failed: no datapath is loaded"), "{}", text(&o));

    let o = run(&["datapath", "load", "--map-size", "endpoints=10"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Lost and undecodable events since the last look: reported once.
    let maps = dpdbg::maps::Maps::open(&fs.0).unwrap();
    maps.count_in_metrics(Reason::EVENT_LOST, 5).unwrap();
    maps.count_in_metrics(Reason::EVENT_UNDECODABLE, 2).unwrap();
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.contains("5 events not written since the last look"), "{line}");
    assert!(line.contains("2 event records undecodable"), "{line}");
    let kept: Value = serde_json::from_slice(&std::fs::read(dir.path().join("status.json")).unwrap()).unwrap();
    assert_eq!(kept.as_object().unwrap().values().next().unwrap()["events_lost"], 5, "{kept}");
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "nothing new since: {}", text(&o));

    // Ten endpoints' addresses in a map of ten: 100 % full.
    for i in 0..10u8 {
        let info = EndpointInfo { endpoint_id: 500 + i as u32, identity: 5000, ifindex: 1, ..Default::default() };
        maps.endpoint_upsert(std::net::IpAddr::from([192, 0, 2, i]), info).unwrap();
    }
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("map endpoints is 100.0% full (10 of 10 entries)"),
        "{}",
        text(&o)
    );

    // A server's socket left behind by a server that is gone.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("serve.sock")).unwrap());
    let o = run(&["-o", "json", "status"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let serve = v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "serve").expect("a serve check");
    assert!(serve["message"].as_str().unwrap().contains("nobody answers"), "{serve}");
}

/// `dpdbg serve` on `socket`, its commands seeing the test's own status
/// counters and lab state; SIGTERM on drop.
struct Serve(std::process::Child);

impl Serve {
    fn start(bpffs: &Path, dir: &Path, lab_state: &Path) -> Serve {
        let socket = dir.join("serve.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .env("DPDBG_LAB_STATE", lab_state)
            .env("DPDBG_STATUS_STATE", dir.join("status.json"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !socket.exists() {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "dpdbg serve did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Serve(child)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Through `--server` the verdict, its line and its exit code are the node's.
#[test]
fn status_through_the_server_keeps_its_exit_code() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let nolab = dir.path().join("no-lab.json");
    let run = |args: &[&str]| status(&fs.0, dir.path(), &nolab, args);
    let o = run(&["datapath", "load"]);
    assert!(o.status.success(), "{}", text(&o));
    // The server finds its datapath through the bpffs it was started on.
    let socket = dir.path().join("serve.sock");
    let _server = Serve::start(&fs.0, dir.path(), &nolab);
    let sock = socket.to_str().unwrap();
    let local = run(&["status", "--brief"]);
    let remote = run(&["--server", sock, "status", "--brief"]);
    assert_eq!(local.status.code(), Some(0), "{}", text(&local));
    assert_eq!(remote.status.code(), local.status.code(), "{}", text(&remote));
    assert_eq!(remote.stdout, local.stdout);
    // Unloaded under the running server (it waits for a new one): failed, 4, both ways.
    let o = run(&["datapath", "unload"]);
    assert!(o.status.success(), "{}", text(&o));
    let local = run(&["status", "--brief"]);
    let remote = run(&["--server", sock, "status", "--brief"]);
    assert_eq!(local.status.code(), Some(4), "{}", text(&local));
    assert_eq!(remote.status.code(), Some(4), "{}", text(&remote));
    assert_eq!(remote.stdout, local.stdout);
}

/// An interface `dpdbg serve --attach` manages and that is detached behind
/// its back makes the node degraded, naming the agent; its re-attach clears it.
#[test]
fn an_agent_managed_interface_not_attached_is_named() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let nolab = dir.path().join("no-lab.json");
    let run = |args: &[&str]| status(&fs.0, dir.path(), &nolab, args);
    let tag = std::process::id() % 1000;
    let name = format!("dpst{tag}a");
    let _ = Command::new("ip").args(["link", "del", &name]).output();
    let o = Command::new("ip")
        .args(["link", "add", &name, "type", "veth", "peer", "name", &format!("dpst{tag}b")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).output();
        }
    }
    let _veth = Del(name.clone());
    let socket = dir.path().join("serve.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .args(["serve", "--load", "--attach", &name, "--socket"])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut child);
    let t = std::time::Instant::now();
    loop {
        let o = run(&["-o", "json", "datapath", "status"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let ok = v["agent"]["attached"].as_array().is_some_and(|a| a.iter().any(|i| i == name.as_str()));
        if ok {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(15), "the agent did not attach {name}: {}", text(&o));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["datapath", "detach", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(line.contains(&format!("interface {name} (managed by dpdbg serve, pid ")), "{line}");
    let o = run(&["datapath", "attach", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["status", "--brief"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
