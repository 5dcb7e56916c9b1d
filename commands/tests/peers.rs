//! Hubble's peer service (issue 21), through a client generated from the
//! peer.proto written here: the initial list, a peer added and one removed
//! as notifications on a stream kept open, a reconnect getting the full
//! list again, an unreachable peer still listed, TLS server names. The
//! fleet is found as in Kubernetes, by a DNS name whose addresses change:
//! here a name in /etc/hosts (glibc answers every line of it), pointing at
//! servers on 127.0.0.x.

mod common;

use common::{Bpffs, free_port};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dpdbg_api::peer::peer_client::PeerClient;
use dpdbg_api::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest};
use dpdbg_api::tonic;

/// Lines of /etc/hosts this test added, removed on drop.
struct Hosts {
    name: String,
}

impl Hosts {
    fn set(&self, ips: &[&str]) {
        let text = std::fs::read_to_string("/etc/hosts").unwrap();
        let mut kept: Vec<String> =
            text.lines().filter(|l| !l.split_whitespace().any(|w| w == self.name)).map(String::from).collect();
        kept.extend(ips.iter().map(|ip| format!("{ip} {}", self.name)));
        std::fs::write("/etc/hosts", kept.join("\n") + "\n").unwrap();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.set(&[]);
    }
}

struct Serve(Child, PathBuf);

impl Serve {
    fn start(bpffs: &Path, dir: &Path, name: &str, args: &[&str]) -> Serve {
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .args(["serve", "--node-name", name, "--socket"])
            .arg(&socket)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("keeping the last") {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{name} did not start: {}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve(child, socket)
    }

    fn socket(&self) -> String {
        self.1.display().to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

type Stream = tonic::Streaming<ChangeNotification>;

async fn notify(server: &str) -> Stream {
    let ch = dpdbg_api::client::connect(server).await.unwrap();
    PeerClient::new(ch).notify(NotifyRequest {}).await.unwrap().into_inner()
}

/// Notifications until `done` says the picture is complete, or 15 s.
async fn until(s: &mut Stream, mut done: impl FnMut(&[(String, String, i32)]) -> bool) -> Vec<(String, String, i32)> {
    let mut got = Vec::new();
    let t = Instant::now();
    while !done(&got) {
        assert!(t.elapsed() < Duration::from_secs(15), "waited for notifications; got {got:?}");
        match tokio::time::timeout(Duration::from_millis(500), s.message()).await {
            Ok(Ok(Some(n))) => got.push((n.name, n.address, n.r#type)),
            Ok(Ok(None)) => panic!("the stream ended; got {got:?}"),
            Ok(Err(e)) => panic!("the stream failed: {e}; got {got:?}"),
            Err(_) => {}
        }
    }
    got
}

const ADDED: i32 = ChangeNotificationType::PeerAdded as i32;
const DELETED: i32 = ChangeNotificationType::PeerDeleted as i32;

fn has(got: &[(String, String, i32)], name: &str, addr: &str, kind: i32) -> bool {
    got.iter().any(|(n, a, k)| n == name && a == addr && *k == kind)
}

#[test]
fn the_relay_hears_of_every_node_and_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let (fa, fb, fc) = (Bpffs::new(), Bpffs::new(), Bpffs::new());
    let port = free_port();
    let at = |last: u8| format!("127.0.0.{last}:{port}");
    let hosts = Hosts { name: format!("dpdbg-peers-{}.test", std::process::id()) };
    hosts.set(&["127.0.0.2", "127.0.0.3"]);
    let dns = format!("{}:{port}", hosts.name);
    // The nodes wait for a datapath: the peer service needs none.
    let _b = Serve::start(&fb.0, dir.path(), "node-b", &["--listen", &at(3)]);
    let a = Serve::start(
        &fa.0,
        dir.path(),
        "node-a",
        &["--listen", &at(2), "--peers-dns", &dns, "--peers-dns-interval", "300ms", "--peer", "node-z=127.0.0.9:4244"],
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut s = notify(&a.socket()).await;
        let want = |g: &[(String, String, i32)]| {
            has(g, "node-a", &at(2), ADDED)
                && has(g, "node-b", &at(3), ADDED)
                && has(g, "node-z", "127.0.0.9:4244", ADDED)
        };
        let got = until(&mut s, want).await;
        assert!(got.iter().all(|(_, _, k)| *k == ADDED), "first every node as added: {got:?}");
        // Over TCP too, where hubble-relay asks.
        let mut tcp = notify(&at(2)).await;
        until(&mut tcp, want).await;

        // A node appears behind the name, one goes.
        let _c = Serve::start(&fc.0, dir.path(), "node-c", &["--listen", &at(4)]);
        hosts.set(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
        until(&mut s, |g| has(g, "node-c", &at(4), ADDED)).await;
        hosts.set(&["127.0.0.2", "127.0.0.4"]);
        until(&mut s, |g| has(g, "node-b", &at(3), DELETED)).await;
        // One that does not answer is listed under its address, not dropped.
        hosts.set(&["127.0.0.2", "127.0.0.4", "127.0.0.5"]);
        until(&mut s, |g| has(g, &at(5), &at(5), ADDED)).await;

        // The stream stays open with nothing to say.
        match tokio::time::timeout(Duration::from_millis(1500), s.message()).await {
            Err(_) => {}
            Ok(m) => panic!("nothing changed, yet the stream said {m:?}"),
        }
        // A reconnect gets the whole fleet again, as it is now.
        let mut again = notify(&a.socket()).await;
        let got = until(&mut again, |g| g.len() >= 4).await;
        let mut names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort();
        let unanswered = at(5);
        let mut want = vec!["node-a", "node-c", "node-z", unanswered.as_str()];
        want.sort();
        assert_eq!(names, want, "{got:?}");
    });
}

#[test]
fn a_tls_node_names_the_server_name_of_each_peer() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Bpffs::new();
    let pki = common::pki::pki(dir.path());
    let addr = format!("127.0.0.1:{}", free_port());
    let d = Serve::start(
        &fs.0,
        dir.path(),
        "node-d",
        &[
            "--listen",
            &addr,
            "--tls-cert",
            &pki.path("server.pem"),
            "--tls-key",
            &pki.path("server.key"),
            "--peer",
            "node-q=127.0.0.8:4244",
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut s = notify(&d.socket()).await;
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let n = tokio::time::timeout(Duration::from_secs(10), s.message()).await.unwrap().unwrap().unwrap();
            seen.push((n.name.clone(), n.tls.map(|t| t.server_name)));
        }
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("node-d".into(), Some("node-d.default.hubble-grpc.cilium.io".into())),
                ("node-q".into(), Some("node-q.default.hubble-grpc.cilium.io".into()))
            ],
            "with TLS each peer names the server name its certificate carries, as cilium names it"
        );
    });
}

#[test]
fn peer_flags_refuse_what_they_cannot_take() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock").display().to_string();
    for (args, needle) in [
        (vec!["--peer", "node-b"], "NAME=ADDR"),
        (vec!["--peer", "node-b=somewhere"], "not ip:port"),
        (vec!["--peers-dns", "peers.svc"], "HOST:PORT"),
        (vec!["--peers-dns-interval", "1s"], "--peers-dns"),
        (vec!["--cluster-name", "Prod.EU"], "cilium's rule"),
        (vec!["--cluster-name", ""], "cluster name"),
    ] {
        let mut a = vec!["--bpffs", fs.0.to_str().unwrap(), "serve", "--socket", sock.as_str()];
        a.extend(args.iter().copied());
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg")).args(&a).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // A DNS name that does not resolve: said, tried again, serve keeps running.
    let dns = format!("dpdbg-nonesuch-{}.test:4244", std::process::id());
    let mut s = Serve::start(&fs.0, dir.path(), "node-e", &["--peers-dns", &dns, "--peers-dns-interval", "200ms"]);
    let log = dir.path().join("node-e.log");
    let t = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("--peers-dns") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(s.0.try_wait().unwrap().is_none(), "serve keeps running");
    let _ = &mut s;
}
