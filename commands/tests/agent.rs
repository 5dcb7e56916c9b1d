//! `dpdbg serve` as the node agent (issue 27): it loads a datapath when
//! asked and none is loaded, waits for one otherwise (not ready until
//! then), attaches to interfaces matching its patterns as they appear and
//! clears the pins of those that vanish, and names the node as told.

mod common;

use common::{Bpffs, free_port};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dpdbg_api::observer::GetNodesRequest;
use dpdbg_api::observer::observer_client::ObserverClient;
use serde_json::Value;

fn dpdbg(bpffs: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdbg")).arg("--bpffs").arg(bpffs).args(args).output().unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(bpffs: &Path, socket: &Path, args: &[&str]) -> Serve {
        let log = socket.with_extension(format!("{}.log", free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .args(["serve", "--socket"])
            .arg(socket)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Serve { child, log };
        s.wait_for("keeping the last");
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&mut self, what: &str) {
        let t = Instant::now();
        while !self.log().contains(what) {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("dpdbg serve exited {st} before saying {what:?}:\n{}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(15), "dpdbg serve did not say {what:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A veth pair in this namespace, deleted on drop.
struct Veth(String);

impl Veth {
    fn new(name: &str) -> Veth {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let o = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &format!("{name}p")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        Veth(name.to_string())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

fn status(bpffs: &Path) -> Value {
    let o = dpdbg(bpffs, &["datapath", "status", "-o", "json"]);
    assert!(o.status.success(), "{}", show(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The interfaces `datapath status` lists as attached (both hooks).
fn attached(bpffs: &Path) -> Vec<String> {
    let s = status(bpffs);
    let mut names: Vec<String> = s["interfaces"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["interface"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn health(socket: &Path, service: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["health", "--server", &socket.display().to_string(), "--service", service])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn serve_loads_attaches_as_interfaces_come_and_go_and_names_the_node() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dpdbg.sock");
    let tag = std::process::id() % 10000;
    let early = Veth::new(&format!("dpag{tag}a"));
    let _other = Veth::new(&format!("dpax{tag}"));
    let mut serve =
        Serve::start(&fs.0, &socket, &["--load", "--attach", &format!("dpag{tag}?"), "--node-name", "node-a"]);
    assert_eq!(status(&fs.0)["loaded"], true, "--load loaded the datapath:\n{}", serve.log());
    // One that existed before the server, one made after it started.
    let late = Veth::new(&format!("dpag{tag}b"));
    eventually("both matching interfaces attached", || attached(&fs.0) == vec![early.0.clone(), late.0.clone()]);
    serve.wait_for(&format!("attached the datapath to {}", late.0));
    assert!(!attached(&fs.0).iter().any(|i| i.starts_with("dpax")), "a name the pattern does not match is left alone");
    let managed = status(&fs.0);
    assert_eq!(
        managed["agent"]["attached"],
        serde_json::json!([early.0.clone(), late.0.clone()]),
        "status shows what the agent manages: {managed}"
    );
    // Gone: its pins go too.
    let gone = late.0.clone();
    drop(late);
    eventually("the pins of a vanished interface cleared", || attached(&fs.0) == vec![early.0.clone()]);
    serve.wait_for(&format!("{gone} is gone"));
    // The node's name, as the Observer tells it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sock = socket.display().to_string();
    let nodes = rt.block_on(async {
        let ch = dpdbg_api::client::connect(&sock).await.unwrap();
        ObserverClient::new(ch).get_nodes(GetNodesRequest {}).await.unwrap().into_inner()
    });
    assert_eq!(nodes.nodes[0].name, "node-a");
    assert!(health(&socket, "hubble.server.Observer"), "Hubble's health name is ready");
}

#[test]
fn without_a_datapath_serve_waits_not_ready_until_one_is_loaded() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dpdbg.sock");
    let mut serve = Serve::start(&fs.0, &socket, &[]);
    assert!(serve.log().contains("waiting for one"), "{}", serve.log());
    assert!(health(&socket, ""), "alive");
    for service in ["observer.Observer", "hubble.server.Observer"] {
        assert!(!health(&socket, service), "{service} is not ready without a datapath");
    }
    let o = dpdbg(&fs.0, &["datapath", "load"]);
    assert!(o.status.success(), "{}", show(&o));
    serve.wait_for("a datapath is loaded; reading its events");
    for service in ["observer.Observer", "hubble.server.Observer"] {
        eventually(&format!("{service} ready once a datapath is loaded"), || health(&socket, service));
    }
    drop(serve);
    // --load with a datapath loaded keeps it, and says where settings differ.
    let serve = Serve::start(&fs.0, &socket, &["--load", "--snaplen", "64"]);
    assert!(serve.log().contains("already, with snaplen 128 (asked 64); keeping it"), "{}", serve.log());
}

#[test]
fn agent_flags_refuse_what_they_cannot_take() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock").display().to_string();
    for (args, needle) in [
        (vec!["--node-name", "Node_A"], "RFC 1123"),
        (vec!["--node-name", ""], "RFC 1123"),
        (vec!["--node-name=-a"], "starts and ends"),
        (vec!["--attach", ""], "--attach"),
        (vec!["--attach", "a/b*"], "--attach"),
        (vec!["--snaplen", "64"], "give --load"),
        (vec!["--attach-mode", "tcx"], "--attach"),
    ] {
        let mut a = vec!["serve", "--socket", sock.as_str()];
        a.extend(args.iter().copied());
        let o = dpdbg(&fs.0, &a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle), "{args:?}: {}", show(&o));
    }
}
