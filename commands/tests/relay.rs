//! Issue 21's done-when, relay half, against cilium's own hubble-relay and
//! Hubble CLI: two `dpdbg serve` nodes (own bpffs, lab, `--node-name
//! node-a|node-b`, `--peer` naming each other) federated by the relay,
//! which learns them from node-a's peer service.
//!
//! Ignored by default: the relay and the CLI are not packaged anywhere this
//! project's CI installs from, and nothing here builds them. Run by hand
//! with binaries built from cilium's public source:
//!
//! ```text
//! DPDBG_HUBBLE_RELAY=/path/hubble-relay DPDBG_HUBBLE=/path/hubble \
//!     cargo test -p dpdbg-cli --test relay -- --ignored
//! ```

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{CliLab, Server, free_port};
use serde_json::Value;

fn tool(var: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| panic!("{var}: the path of the binary"));
    assert!(p.is_file(), "{var}={}: not a file", p.display());
    p
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hubble(addr: &str, args: &[&str]) -> Output {
    let o = Command::new(tool("DPDBG_HUBBLE")).args(args).args(["--server", addr]).output().unwrap();
    assert!(o.status.success(), "hubble {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Flows per node in `observe -o json` output (hubble's or dpdbg's).
fn per_node(out: &[u8]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for l in text(out).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if let Some(n) = v["flow"]["node_name"].as_str() {
            *m.entry(n.to_string()).or_default() += 1;
        }
    }
    m
}

#[test]
#[ignore = "needs hubble-relay and hubble built by hand: DPDBG_HUBBLE_RELAY, DPDBG_HUBBLE"]
fn hubble_relay_federates_two_dpdbg_nodes_by_their_names() {
    federate(false);
}

/// As the DaemonSet and deploy/relay.yaml run it: mutual TLS between relay
/// and nodes, one certificate for `*.default.hubble-grpc.cilium.io` (as
/// cilium's Hubble server certificates are), the relay's client certificate
/// from the same CA. The relay asks the peer service under
/// hubble-peer.default.hubble-grpc.cilium.io and each node under the server
/// name its notification gives.
#[test]
#[ignore = "needs hubble-relay and hubble built by hand: DPDBG_HUBBLE_RELAY, DPDBG_HUBBLE"]
fn hubble_relay_federates_two_dpdbg_nodes_over_mutual_tls() {
    federate(true);
}

fn federate(tls: bool) {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = common::pki::ca("fleet CA");
    std::fs::write(pki_dir.path().join("ca.pem"), ca.0.pem()).unwrap();
    common::pki::leaf(pki_dir.path(), "node", &["*.default.hubble-grpc.cilium.io"], &ca, false);
    common::pki::leaf(pki_dir.path(), "relay", &["hubble-relay-client"], &ca, false);
    let pem = |n: &str| pki_dir.path().join(n).display().to_string();
    let (node_tls, relay_tls): (Vec<String>, Vec<String>) = if tls {
        (
            ["--tls-cert", &pem("node.pem"), "--tls-key", &pem("node.key"), "--tls-client-ca", &pem("ca.pem")]
                .map(String::from)
                .to_vec(),
            [
                format!("--tls-hubble-server-ca-files={}", pem("ca.pem")),
                format!("--tls-hubble-client-cert-file={}", pem("relay.pem")),
                format!("--tls-hubble-client-key-file={}", pem("relay.key")),
            ]
            .to_vec(),
        )
    } else {
        (vec![], vec!["--disable-client-tls".to_string()])
    };
    let (pa, pb, relay_port, health) = (free_port(), free_port(), free_port(), free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    // Declared before the servers: the servers stop first, then the labs.
    let (lab_a, lab_b) = (CliLab::up(), CliLab::up());
    let node = |lab: &CliLab, name: &str, listen: &str, peer: String| {
        let mut args = vec!["--listen", listen, "--node-name", name, "--peer", &peer, "--ct-gc-interval", "0"];
        args.extend(node_tls.iter().map(String::as_str));
        Server::start(&lab.fs.0, &lab.dir.path().join("dpdbg.sock"), &args)
    };
    let _a = node(&lab_a, "node-a", &addr_a, format!("node-b={addr_b}"));
    let b = node(&lab_b, "node-b", &addr_b, format!("node-a={addr_a}"));
    let relay_addr = format!("127.0.0.1:{relay_port}");
    let _relay = Relay(
        Command::new(tool("DPDBG_HUBBLE_RELAY"))
            .args(["serve", "--peer-service", &addr_a, "--listen-address", &relay_addr])
            .args(["--health-listen-address", &format!("127.0.0.1:{health}"), "--gops=false"])
            .args(["--disable-server-tls", "--retry-timeout", "2s"])
            .args(&relay_tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for lab in [&lab_a, &lab_b] {
        let _ = lab.run(&["lab", "traffic"]);
    }
    // Every count below stops here: a late neighbour solicitation is not a difference.
    std::thread::sleep(Duration::from_millis(500));
    let until = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();

    // The relay dials both nodes as node-a's peer service lists them.
    let t = Instant::now();
    loop {
        let o = Command::new(tool("DPDBG_HUBBLE")).args(["status", "--server", &relay_addr]).output().unwrap();
        if text(&o.stdout).contains("Connected Nodes: 2/2") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "relay: {}{}", text(&o.stdout), text(&o.stderr));
        std::thread::sleep(Duration::from_millis(250));
    }
    let nodes = text(&hubble(&relay_addr, &["list", "nodes"]).stdout);
    for n in ["node-a", "node-b"] {
        assert!(nodes.lines().any(|l| l.starts_with(n) && l.contains("Connected")), "{nodes}");
    }

    // Each node's own flows, merged: as many through the relay as each node holds.
    let own = |lab: &CliLab| {
        let sock = lab.dir.path().join("dpdbg.sock");
        let o = lab.run(&["observe", "--server", sock.to_str().unwrap(), "--all", "--until", &until, "-o", "json"]);
        text(&o.stdout).lines().count()
    };
    let (na, nb) = (own(&lab_a), own(&lab_b));
    assert!(na > 0 && nb > 0, "lab traffic on both nodes");
    let via_hubble = per_node(&hubble(&relay_addr, &["observe", "--all", "--until", &until, "-o", "json"]).stdout);
    assert_eq!(via_hubble, [("node-a".to_string(), na), ("node-b".to_string(), nb)].into(), "hubble observe");
    let o = lab_a.run(&["observe", "--server", &relay_addr, "--all", "--until", &until, "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(per_node(&o.stdout), via_hubble, "dpdbg observe through the relay");
    let ns = text(&hubble(&relay_addr, &["list", "namespaces"]).stdout);
    assert!(ns.lines().any(|l| l.trim() == "lab"), "{ns}");

    // A node that goes away stays listed, unavailable; observe says so on
    // stderr, as hubble does, and keeps stdout to the flows.
    b.stop();
    let t = Instant::now();
    loop {
        let o = Command::new(tool("DPDBG_HUBBLE")).args(["status", "--server", &relay_addr]).output().unwrap();
        if text(&o.stdout).contains("Connected Nodes: 1/2") {
            assert!(text(&o.stdout).contains("- node-b"), "{}", text(&o.stdout));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "relay: {}", text(&o.stdout));
        std::thread::sleep(Duration::from_millis(250));
    }
    let h = hubble(&relay_addr, &["observe", "--last", "2"]);
    let d = lab_a.run(&["observe", "--server", &relay_addr, "--last", "2"]);
    let tail = |o: &Output| {
        text(&o.stderr).lines().map(|l| l.split_once(": ").map_or("", |x| x.1).to_string()).collect::<Vec<_>>()
    };
    assert_eq!(tail(&d), tail(&h), "the unavailable node, as hubble prints it");
    assert_eq!(tail(&d), ["1 nodes are unavailable: node-b"]);
    assert_eq!(text(&d.stdout), text(&h.stdout), "the same flows");
}
