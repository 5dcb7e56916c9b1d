//! `dpdbg serve` in the lab: a Python grpcio client (stubs generated from
//! our .proto files) and the Rust client see the same flows; the last N
//! after the traffic ended; followers at once; a client that goes away does
//! not disturb the others; a second server is refused; the unloaded
//! datapath ends follow streams; SIGTERM removes the socket.

mod common;

use common::{Bpffs, LabGuard, dpdbg};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn python() -> PathBuf {
    let p = std::env::var_os("DPDBG_PYTHON").map_or_else(|| PathBuf::from("/opt/dpdbg-venv/bin/python"), PathBuf::from);
    assert!(p.exists(), "{} is missing: run scripts/setup.sh (it makes the grpcio venv)", p.display());
    p
}

fn protos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/proto")
}

fn client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/observer_client.py")
}

/// The Python client's JSON lines.
fn py(socket: &Path, args: &[&str]) -> Vec<Value> {
    let o = Command::new(python())
        .arg(client())
        .arg(protos())
        .arg(format!("unix:{}", socket.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "python client: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn py_follow(socket: &Path, seconds: &str) -> Follower {
    Follower::start(socket, &["follow", seconds])
}

/// A Python client that follows, returned once it says so: making its stubs
/// takes seconds on a busy machine, and traffic sent before then is not
/// followed (a fixed wait lost the first pings).
struct Follower {
    child: Child,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Follower {
    fn start(socket: &Path, args: &[&str]) -> Follower {
        use std::io::{BufRead, Read};
        let mut child = Command::new(python())
            .arg(client())
            .arg(protos())
            .arg(format!("unix:{}", socket.display()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = Vec::new();
        // Up to "following", or the end when it failed before (its stderr then says why).
        while !String::from_utf8_lossy(&seen).contains("following") && err.read_until(b'\n', &mut seen).unwrap() > 0 {}
        let stderr = std::thread::spawn(move || {
            let _ = err.read_to_end(&mut seen);
            seen
        });
        Follower { child, stderr: Some(stderr) }
    }

    fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }

    fn wait_with_output(mut self) -> std::io::Result<Output> {
        let stderr = self.stderr.take().unwrap();
        let mut o = self.child.wait_with_output()?;
        o.stderr = stderr.join().unwrap();
        Ok(o)
    }
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct Server(Child, PathBuf);

impl Server {
    fn start(bpffs: &Path, socket: &Path) -> Server {
        Server::start_with(bpffs, socket, &[])
    }

    fn start_with(bpffs: &Path, socket: &Path, args: &[&str]) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .arg("serve")
            .args(args)
            .arg("--socket")
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !socket.exists() {
            assert!(t.elapsed() < Duration::from_secs(10), "the server never made its socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server(child, socket.to_path_buf())
    }

    fn stop(mut self) -> Output {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while self.0.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(5), "the server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// `dpdbg monitor` beside the server at `socket` (its ring's reader), for up to 20 s.
fn monitor_beside(bpffs: &Path, socket: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(["monitor", "--until", "20s"])
        .env("DPDBG_EVENTS_SOCKET", socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ping(netns: &str, dst: &str) {
    let o = Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst])
        .output()
        .unwrap();
    assert!(o.status.success(), "ping {dst}");
}

#[test]
fn serve_speaks_hubbles_observer_api() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab: Value = serde_json::from_slice(&dpdbg(&fs.0, &state, &["lab", "up", "-o", "json"]).stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    let (ns0, ip1) = (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());
    let socket = dir.path().join("dpdbg.sock");
    let server = Server::start(&fs.0, &socket);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660, "the socket is for root and its group");
    let monitor_socket = dir.path().join("dpdbg-monitor.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&monitor_socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660, "the monitor socket too");

    // One reader of the ring: a second server is refused, and names the first.
    let second = dpdbg(&fs.0, &state, &["serve", "--socket", dir.path().join("other.sock").to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(1));
    let e = String::from_utf8_lossy(&second.stderr);
    assert!(e.contains(&format!("pid holding the lock: {}", server.0.id())), "{e}");
    assert!(socket.exists(), "the second server left the first's socket alone");

    // Two followers at once, one of which goes away early.
    let stays = py_follow(&socket, "6");
    let mut leaves = py_follow(&socket, "6");
    std::thread::sleep(Duration::from_millis(1500));
    ping(ns0, ip1);
    std::thread::sleep(Duration::from_millis(500));
    leaves.kill().unwrap();
    let _ = leaves.wait();
    ping(ns0, ip1);
    let followed = lines(&stays.wait_with_output().unwrap());
    // Traces only: kernel drops (issue 22) may come beside them.
    let icmp = |v: &Vec<Value>| {
        v.iter().filter(|r| r["flow"]["l4"]["ICMPv4"].is_object() && r["flow"]["eventType"]["type"] == 4).count()
    };
    assert_eq!(icmp(&followed), 4, "two pings, each traced at both hooks (new connection): {followed:#?}");

    // After the traffic: the last flows from the buffer, the same for a
    // Python client and for the server's own status.
    let last = py(&socket, &["flows", "4"]);
    assert_eq!(last.len(), 4);
    let f = &last[3]["flow"];
    assert_eq!(f["IP"]["destination"], ip1, "{f:#}");
    assert_eq!(f["l4"]["ICMPv4"]["type"], 8);
    assert_eq!(f["verdict"], "FORWARDED");
    assert_eq!(f["Type"], "L3_L4");
    assert_eq!(f["trafficDirection"], "INGRESS");
    assert_eq!(f["traceObservationPoint"], "TO_ENDPOINT");
    assert_eq!(f["destination"]["ID"], eps[1]["endpoint_id"]);
    assert_eq!(f["destination"]["identity"], eps[1]["identity"]);
    assert_eq!(f["eventType"]["type"], 4);
    assert_eq!(f["interface"]["name"], eps[1]["host_if"]);
    assert_eq!(f["Summary"], "ICMPv4 EchoRequest", "cilium's summary: {f:#}");
    assert_eq!(last[3]["flow"], followed.last().unwrap()["flow"], "the follower saw the same last flow");
    // `dpdbg observe -o json` prints what a protobuf library prints, key for key.
    let ours = dpdbg(&fs.0, &state, &["observe", "--server", socket.to_str().unwrap(), "--last", "4", "-o", "json"]);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    let theirs = py(&socket, &["flows-proto-names", "4"]);
    assert_eq!(lines(&ours), theirs, "observe -o json and protobuf's JSON agree");
    // Filters reach the server: only the ICMP echo requests to endpoint 2.
    let icmp_only = dpdbg(
        &fs.0,
        &state,
        &[
            "observe",
            "--server",
            socket.to_str().unwrap(),
            "--all",
            "--to-ip",
            ip1,
            "--protocol",
            "icmpv4",
            "-o",
            "json",
        ],
    );
    let got = lines(&icmp_only);
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got.iter().all(|r| r["flow"]["IP"]["destination"] == ip1 && r["flow"]["l4"]["ICMPv4"]["type"] == 8));
    // --not sends the next filter as a blacklist; --interface and --drop-reason-desc filter too.
    let sock = socket.to_str().unwrap();
    let all = lines(&dpdbg(&fs.0, &state, &["observe", "--server", sock, "--all", "-o", "json"]));
    let not_in = lines(&dpdbg(
        &fs.0,
        &state,
        &["observe", "--server", sock, "--all", "--not", "--traffic-direction", "ingress", "-o", "json"],
    ));
    assert!(!not_in.is_empty() && not_in.len() < all.len(), "{not_in:#?}");
    assert!(not_in.iter().all(|r| r["flow"]["traffic_direction"] == "EGRESS"), "{not_in:#?}");
    let host_if = eps[1]["host_if"].as_str().unwrap();
    let on_if =
        lines(&dpdbg(&fs.0, &state, &["observe", "--server", sock, "--all", "--interface", host_if, "-o", "json"]));
    assert!(!on_if.is_empty() && on_if.iter().all(|r| r["flow"]["interface"]["name"] == host_if), "{on_if:#?}");
    let drops = lines(&dpdbg(
        &fs.0,
        &state,
        &["observe", "--server", sock, "--all", "--drop-reason-desc", "POLICY_DENIED", "-o", "json"],
    ));
    assert!(drops.is_empty(), "no drops in this traffic: {drops:#?}");
    let no_if = lines(&dpdbg(&fs.0, &state, &["observe", "--server", sock, "--all", "--interface", "nosuch0"]));
    assert!(no_if.is_empty(), "an interface this node lacks matches nothing: {no_if:#?}");
    // A value the server could not parse is refused before it is asked,
    // naming the flag, as monitor refuses one (a usage error, exit 2).
    let bad = dpdbg(&fs.0, &state, &["observe", "--server", sock, "--all", "--ip", "10.0.0/8"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{:?} {err}", bad.status);
    assert!(err.contains("--ip") && err.contains("\"10.0.0/8\"") && err.contains("CIDR"), "{err}");
    // Hubble's compact line: the pod for its address, the security identity.
    let id1 = &eps[1]["identity"];
    let compact = dpdbg(&fs.0, &state, &["observe", "--server", socket.to_str().unwrap(), "--last", "1"]);
    let text = String::from_utf8_lossy(&compact.stdout);
    assert!(text.contains(&format!("-> lab/ep2 (ID:{id1}) to-endpoint FORWARDED (ICMPv4 EchoRequest)")), "{text}");
    let numeric = dpdbg(&fs.0, &state, &["observe", "--server", socket.to_str().unwrap(), "--last", "1", "--numeric"]);
    let text = String::from_utf8_lossy(&numeric.stdout);
    assert!(text.contains(&format!("-> {ip1} (ID:{id1}) to-endpoint")), "{text}");
    let status = &py(&socket, &["status"])[0];
    assert_eq!(status["numFlows"], status["seenFlows"]);
    assert_eq!(status["maxFlows"], "4096");

    // Monitors beside the server read its records: several at once, the same events.
    let monitor = || {
        Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(&fs.0)
            .args(["monitor", "-o", "jsonl", "--until", "4s", "--server"])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // And a Hubble user's `observe -f` beside them.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&fs.0)
        .args(["observe", "-f", "-o", "json", "--server"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (m1, m2) = (monitor(), monitor());
    std::thread::sleep(Duration::from_millis(1500));
    ping(ns0, ip1);
    let (o1, o2) = (m1.wait_with_output().unwrap(), m2.wait_with_output().unwrap());
    assert!(o1.status.success() && o2.status.success(), "{}", String::from_utf8_lossy(&o1.stderr));
    // Then the lab's own traffic, which the follower sees too. observe
    // flushes every flow: what it printed is in the pipe when it is stopped.
    let traffic = dpdbg(&fs.0, &state, &["lab", "traffic"]);
    assert!(traffic.status.success(), "{}", String::from_utf8_lossy(&traffic.stderr));
    std::thread::sleep(Duration::from_millis(500));
    follow.kill().unwrap();
    let observed = lines(&follow.wait_with_output().unwrap());
    // Each reader turns the datapath's clock into wall-clock time on its own:
    // the times may differ in the last microsecond, the events may not.
    let strip = |mut v: Vec<Value>| {
        v.iter_mut().for_each(|e| {
            e.as_object_mut().unwrap().remove("time");
        });
        v
    };
    let (e1, e2) = (strip(lines(&o1)), strip(lines(&o2)));
    assert_eq!(e1.len(), 2, "the new ping, traced at both hooks: {e1:#?}");
    assert_eq!(e1, e2, "both monitors print the same events");
    assert!(e1.iter().all(|e| e["dst_ip"] == ip1 && e["ip_proto"] == 1), "{e1:#?}");
    // The follower saw the same two events first, in the same order, at the same hooks.
    assert!(observed.len() > 20, "the ping and the lab's traffic: {observed:#?}");
    for (m, o) in e1.iter().zip(&observed) {
        let f = &o["flow"];
        assert_eq!((&f["IP"]["source"], &f["IP"]["destination"]), (&m["src_ip"], &m["dst_ip"]), "{m:#} {o:#}");
        assert_eq!(f["l4"]["ICMPv4"]["type"], 8, "{o:#}");
        let point = if m["type"] == "trace" && m["observation_point"] == "to-endpoint" {
            "TO_ENDPOINT"
        } else {
            "FROM_ENDPOINT"
        };
        assert_eq!(f["trace_observation_point"], point, "{m:#} {o:#}");
    }
    // After the traffic, the last 20 flows from the buffer are the last 20 the follower saw.
    let last20 = lines(&dpdbg(&fs.0, &state, &["observe", "--server", sock, "--last", "20", "-o", "json"]));
    assert_eq!(last20[..], observed[observed.len() - 20..], "--last 20 after the traffic");

    // Unloading the datapath ends follow streams with a reason, and the
    // monitors beside the server (through its monitor socket) with it.
    let follower = py_follow(&socket, "6");
    let beside = monitor_beside(&fs.0, &socket);
    std::thread::sleep(Duration::from_millis(1000));
    let down = dpdbg(&fs.0, &state, &["datapath", "unload"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let out = follower.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UNAVAILABLE") && err.contains("datapath was unloaded"), "{err}");
    let out = beside.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("reading its events through {}", monitor_socket.display())), "{err}");
    // Told by the server's end frame, or seen first by the monitor's own
    // look at the pins (it checks twice a second): either way, the unload.
    assert!(
        err.contains("the events stream from dpdbg serve ended: the datapath was unloaded")
            || err.contains("was unloaded: no more events will come"),
        "{err}"
    );

    let out = server.stop();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!socket.exists(), "the socket goes with the server");
    assert!(!monitor_socket.exists(), "and the monitor socket");
    assert!(String::from_utf8_lossy(&out.stderr).contains("was unloaded; waiting for a new one"));
}

/// A client that stops reading loses flows of its own, and is told how
/// many; a client that reads on gets every one.
#[test]
fn a_stalled_client_loses_only_its_own_flows() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab: Value = serde_json::from_slice(&dpdbg(&fs.0, &state, &["lab", "up", "-o", "json"]).stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    let (ns0, ip1) = (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());
    assert!(dpdbg(&fs.0, &state, &["datapath", "config", "aggregation=none"]).status.success());
    let socket = dir.path().join("dpdbg.sock");
    let _server = Server::start(&fs.0, &socket);
    let reader = py_follow(&socket, "9");
    let stalled = Follower::start(&socket, &["follow-stalled", "6", "9"]);
    // Their streams open.
    std::thread::sleep(Duration::from_millis(500));
    // 2000 echo requests and replies, each traced at both hooks: 8000 flows in about 2 s.
    let o = Command::new("ip")
        .args(["netns", "exec", ns0, "ping", "-q", "-c", "2000", "-i", "0.001", "-W", "1", ip1])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = lines(&reader.wait_with_output().unwrap());
    let flows = read.iter().filter(|r| r["flow"]["l4"]["ICMPv4"].is_object()).count();
    assert!(read.iter().all(|r| r.get("lostEvents").is_none()), "the reading client lost nothing");
    assert_eq!(flows, 8000, "the reading client got every flow");
    let out = stalled.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (f, lost) = (got["flows"].as_u64().unwrap(), got["lost"].as_u64().unwrap());
    assert!(lost > 0, "the stalled client is told it lost flows: {got}");
    assert!(f + lost >= 8000 && f < 8000, "what it got and what it lost add up: {got}");
}

/// serve removes expired conntrack entries on its interval, and when the
/// datapath is unloaded and loaded again it reads the new one.
#[test]
fn serve_collects_conntrack_and_follows_a_reloaded_datapath() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let lab: Value = serde_json::from_slice(&dpdbg(&fs.0, &state, &["lab", "up", "-o", "json"]).stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    let (ns0, ip1, if0) =
        (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap(), eps[0]["host_if"].as_str().unwrap());
    let socket = dir.path().join("dpdbg.sock");
    let server = Server::start_with(&fs.0, &socket, &["--ct-gc-interval", "1s"]);
    // An entry that expired long ago: the datapath ignores it, gc removes it.
    let old = r#"{"created_ns":1,"last_seen_ns":1,"lifetime_s":1,"src_identity":7}"#;
    let key = r#"{"saddr":1,"daddr":2,"sport":3,"dport":4,"proto":17,"direction":0}"#;
    let o = dpdbg(&fs.0, &state, &["map", "update", "ct4", key, old, "--partial"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(2500));
    let left = dpdbg(&fs.0, &state, &["map", "get", "ct4", key]);
    assert_eq!(left.status.code(), Some(1), "the expired entry was collected");

    // Probes: the process is live throughout; it is ready only while a datapath is loaded.
    let sock = socket.to_str().unwrap().to_string();
    let health = move |service: &str| -> i32 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let ch = dpdbg_api::client::connect(&sock).await.unwrap();
            let mut c = dpdbg_api::tonic_health::pb::health_client::HealthClient::new(ch);
            let req = dpdbg_api::tonic_health::pb::HealthCheckRequest { service: service.into() };
            c.check(req).await.unwrap().into_inner().status
        })
    };
    use dpdbg_api::tonic_health::pb::health_check_response::ServingStatus;
    let serving = ServingStatus::Serving as i32;
    assert_eq!((health(""), health("observer.Observer")), (serving, serving));

    // Unload, load again, attach one interface: the server reads the new datapath.
    assert!(dpdbg(&fs.0, &state, &["datapath", "unload"]).status.success());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(health(""), serving, "still live");
    // The server looks twice a second; give a loaded machine some slack.
    let until = |want: i32| {
        let t = std::time::Instant::now();
        while health("observer.Observer") != want && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        health("observer.Observer")
    };
    assert_eq!(
        until(ServingStatus::NotServing as i32),
        ServingStatus::NotServing as i32,
        "not ready without a datapath"
    );
    // The same through `dpdbg health`, what the DaemonSet's exec probes run.
    let probe =
        |args: &[&str]| dpdbg(&fs.0, &state, &[&["health", "--server", socket.to_str().unwrap()], args].concat());
    let live = probe(&[]);
    assert_eq!((live.status.code(), String::from_utf8_lossy(&live.stdout).trim()), (Some(0), "SERVING"));
    let ready = probe(&["--service", "observer.Observer"]);
    assert_eq!((ready.status.code(), String::from_utf8_lossy(&ready.stdout).trim()), (Some(1), "NOT_SERVING"));
    assert!(String::from_utf8_lossy(&ready.stderr).contains("observer.Observer is NOT_SERVING"));
    assert!(dpdbg(&fs.0, &state, &["datapath", "load"]).status.success());
    assert!(dpdbg(&fs.0, &state, &["datapath", "attach", if0]).status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(until(serving), serving, "ready again");
    let follower = py_follow(&socket, "4");
    std::thread::sleep(Duration::from_millis(1000));
    // No endpoint is known any more: the packet is dropped, and that is a flow too.
    let _ = Command::new("ip").args(["netns", "exec", ns0, "ping", "-c", "1", "-W", "1", ip1]).output();
    let got = lines(&follower.wait_with_output().unwrap());
    assert!(
        got.iter().any(|r| r["flow"]["verdict"] == "DROPPED" && r["flow"]["dropReasonDesc"] == "INVALID_SOURCE_IP"),
        "{got:#?}"
    );
    // A monitor beside the server when it stops is told so.
    let beside = monitor_beside(&fs.0, &socket);
    std::thread::sleep(Duration::from_millis(1000));
    let out = server.stop();
    let log = String::from_utf8_lossy(&out.stderr);
    let told = beside.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&told.stderr);
    assert_eq!(told.status.code(), Some(1), "{err}");
    assert!(err.contains("the events stream from dpdbg serve ended: dpdbg serve stopped"), "{err}");
    assert!(log.contains("conntrack gc removed 1 expired entries"), "{log}");
    assert!(log.contains("a datapath is loaded again"), "{log}");
}

/// The filters observe sends, as hubble's --print-raw-filters shows them:
/// either-side flags split into a source and a destination filter, --not
/// into the denylist.
#[test]
fn observe_prints_its_raw_filters() {
    let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["observe", "--ip", "10.0.0.1", "--protocol", "tcp", "--not", "--port", "22", "--print-raw-filters"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let filters = |section: &str| -> Vec<Value> {
        text.split(section)
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    - '"))
            .map(|l| serde_json::from_str(l.trim().trim_start_matches("- '").trim_end_matches('\'')).unwrap())
            .collect()
    };
    assert_eq!(
        filters("allowlist:"),
        vec![
            serde_json::json!({"source_ip": ["10.0.0.1"], "protocol": ["tcp"]}),
            serde_json::json!({"destination_ip": ["10.0.0.1"], "protocol": ["tcp"]}),
        ],
        "{text}"
    );
    assert_eq!(
        filters("denylist:"),
        vec![serde_json::json!({"source_port": ["22"]}), serde_json::json!({"destination_port": ["22"]})],
        "{text}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A monitor beside the server (dpdbg.v1.Events) and a Hubble follower
/// (GetFlows) that stop reading lose records of their own, are told exactly
/// how many, and hold neither the reader nor the server's memory. The flood
/// comes from BPF_PROG_TEST_RUN, millions of events, far more than either
/// subscriber's queue.
#[test]
fn stalled_subscribers_are_told_their_losses_and_hold_no_memory() {
    use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
    use dpdbg_api::events::SubscribeRequest;
    use dpdbg_api::events::events_client::EventsClient;
    use dpdbg_api::observer::get_flows_response::ResponseTypes;
    use dpdbg_api::observer::observer_client::ObserverClient;
    use dpdbg_api::observer::{GetFlowsRequest, ServerStatusRequest};

    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let ok = |o: Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(dpdbg(&fs.0, &state, &["datapath", "load", "--aggregation", "none"]));
    ok(dpdbg(
        &fs.0,
        &state,
        &["bpf", "endpoint", "add", "--id", "1", "--identity", "1000", "--ip", "192.0.2.1", "--ifindex", "1"],
    ));
    let socket = dir.path().join("dpdbg.sock");
    let server = Server::start(&fs.0, &socket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sock = socket.to_string_lossy().into_owned();
    let (mut stream, mut flows, mut status) = rt.block_on(async {
        let ch = dpdbg_api::client::connect(&sock).await.unwrap();
        let s = EventsClient::new(ch.clone()).subscribe(SubscribeRequest {}).await.unwrap().into_inner();
        let mut o = ObserverClient::new(dpdbg_api::client::connect(&sock).await.unwrap());
        let f = o.get_flows(GetFlowsRequest { follow: true, ..Default::default() }).await.unwrap().into_inner();
        (s, f, ObserverClient::new(ch))
    });
    // A monitor-socket reader that reads nothing until the flood is over: what
    // `dpdbg monitor` beside the server would be if it stopped reading.
    let mut raw = std::os::unix::net::UnixStream::connect(dir.path().join("dpdbg-monitor.sock")).unwrap();
    let mut seen = || rt.block_on(status.server_status(ServerStatusRequest {})).unwrap().into_inner().seen_flows;
    let seen0 = seen();
    let rss0 = rss_kib(server.0.id());

    let prog = SchedClassifier::from_pin(dpdbg::datapath::Pins::new(&fs.0).prog("from_endpoint")).unwrap();
    let mut pkt = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 7], 64)
        .udp(4000, 53)
        .write(&mut pkt, &[0u8; 32])
        .unwrap();
    for _ in 0..4 {
        let mut o = TestRunOptions::new();
        o.data_in = Some(&pkt);
        o.repeat = 1_000_000;
        prog.test_run(o).unwrap();
    }
    // The server reads what the ring held; then nothing more comes.
    let mut read = seen();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = seen();
        if now == read {
            break;
        }
        read = now;
    }
    let grown = rss_kib(server.0.id()).saturating_sub(rss0);
    let read = read - seen0;
    eprintln!("the server read {read} records and grew by {grown} KiB");
    assert!(read > 10_000, "the server read the flood: {read}");
    // With both queues full it reads only to keep its flow buffer fresh
    // (--buffer records every 100 ms): the rest stays in the ring, whose
    // losses the datapath counts, instead of being read to be dropped.
    assert!(read < 500_000, "the server read {read} of 4,000,000 records that nobody had room for");
    // What the server may hold: two bounded queues (about 15 MB), its chunk
    // pool (64 MiB at most) and what the allocator keeps; holding the records
    // for the stalled subscribers grew it by 400 MB here.
    assert!(grown < 256 * 1024, "the server grew by {grown} KiB behind a stalled subscriber ({read} records)");

    let (mut got, mut lost) = (0u64, 0u64);
    rt.block_on(async {
        while let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
            got += m.records.len() as u64;
            lost += m.lost;
        }
    });
    assert!(lost > 0 && got > 0, "got {got}, lost {lost} of {read}");
    assert_eq!(got + lost, read, "what the Events subscriber got and was told it lost is what the server read");

    let (mut got, mut lost) = (0u64, 0u64);
    {
        use dpdbg_api::monitor_socket as ms;
        use std::io::Read;
        raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (mut buf, mut start) = (Vec::new(), 0);
        let mut chunk = vec![0u8; 1 << 20];
        while let Ok(n @ 1..) = raw.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
            if start == 0 {
                match ms::hello(&buf).unwrap() {
                    Some(h) => start = h,
                    None => continue,
                }
            }
            while let Some((frame, used)) = ms::parse(&buf[start..]).unwrap() {
                start += used;
                match frame {
                    ms::Frame::Records(r, l) => {
                        assert!(r.clone().all(|rec| dpdbg::events::view(rec).is_ok()), "whole records");
                        got += r.count() as u64;
                        lost += l;
                    }
                    ms::Frame::End(why) => panic!("the stream ended: {why}"),
                }
            }
        }
    }
    assert!(lost > 0 && got > 0, "got {got}, lost {lost} of {read}");
    assert_eq!(got + lost, read, "what the monitor socket's reader got and was told it lost is what the server read");

    let (mut got, mut lost) = (0u64, 0u64);
    rt.block_on(async {
        while let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(2), flows.message()).await {
            match m.response_types {
                Some(ResponseTypes::Flow(_)) => got += 1,
                // The ring's own losses (events the datapath could not write) are told
                // too, under another source: not part of what the server read.
                Some(ResponseTypes::LostEvents(l))
                    if l.source == dpdbg_api::flow::LostEventSource::ObserverEventsQueue as i32 =>
                {
                    lost += l.num_events_lost
                }
                _ => {}
            }
        }
    });
    assert!(lost > 0 && got > 0, "got {got}, lost {lost} of {read}");
    assert_eq!(got + lost, read, "what the follower got and was told it lost is what the server read");
    drop(server);
}
