//! Kernel drops (skb:kfree_skb) in the lab: a datagram to a closed port of
//! another endpoint (the kernel's NO_SOCKET) and datagrams to a socket whose
//! receive queue is full (SOCKET_RCVBUFF) each show up in `monitor -t
//! kernel-drop` with the kernel's reason, named from its BTF, once switched
//! on (they load switched off); switched off again they stop; status says
//! where they stand.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::CliLab;
use dpdbg::lab::in_netns;
use serde_json::Value;

fn text(o: &std::process::Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A monitor of kernel drops for `secs`, started before `traffic` runs.
fn kernel_drops_during(lab: &CliLab, secs: u64, traffic: impl FnOnce()) -> Vec<Value> {
    let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .args(["monitor", "-t", "kernel-drop", "-o", "jsonl", "--until", &format!("{secs}s")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    traffic();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Sends `n` datagrams of `size` bytes from inside `netns` to `to`.
fn send_from(netns: &str, to: SocketAddr, n: usize, size: usize) {
    in_netns(netns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..n {
            let _ = s.send_to(&vec![7u8; size], to);
        }
    })
    .unwrap();
}

#[test]
fn closed_port_and_full_queue_show_the_kernels_reason() {
    let lab = CliLab::up();
    let st: Value = serde_json::from_slice(&std::fs::read(&lab.state).unwrap()).unwrap();
    let (ep1, ep2) = (&st["endpoints"][0], &st["endpoints"][1]);
    let ns1 = ep1["netns"].as_str().unwrap().to_string();
    let ns2 = ep2["netns"].as_str().unwrap().to_string();
    let ip2: std::net::IpAddr = ep2["ipv4"].as_str().unwrap().parse().unwrap();
    let ep2_id = ep2["endpoint_id"].as_u64().unwrap();

    // Loaded with the datapath, switched off until asked for.
    let state = || -> Value {
        let o = lab.run(&["-o", "json", "datapath", "status"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["kernel_drops"]["state"].clone()
    };
    assert_eq!(state(), "off");
    let o = lab.run(&["datapath", "config", "kernel-drops=on"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "kernel-drops: off -> on");
    assert_eq!(state(), "on");

    // A closed port: the kernel frees the datagram with NO_SOCKET.
    let closed = SocketAddr::new(ip2, 9);
    let ns = ns1.clone();
    let evs = kernel_drops_during(&lab, 4, || send_from(&ns, closed, 1, 32));
    let hit = evs
        .iter()
        .find(|e| e["drop_reason_desc"] == "NO_SOCKET" && e["dst_port"] == 9)
        .unwrap_or_else(|| panic!("no NO_SOCKET drop of the datagram: {evs:?}"));
    assert_eq!(hit["type"], "kernel-drop");
    assert_eq!(hit["verdict"], "DROPPED");
    assert_eq!(hit["dst_ip"], ep2["ipv4"]);
    assert_eq!(hit["src_ip"], ep1["ipv4"]);
    assert_eq!(hit["ip_proto"], 17);
    assert_eq!(hit["endpoint_id"], ep2_id, "the endpoint it was for");
    assert_eq!(hit["src_identity"], ep1["identity"]);
    assert_eq!(hit["dst_identity"], ep2["identity"]);
    assert!(hit.get("interface").is_none(), "ep2's eth0 is no interface of the host: {hit}");

    // A socket that never reads, with the smallest receive buffer: the
    // kernel frees what does not fit with SOCKET_RCVBUFF.
    let sock = in_netns(&ns2, || {
        let s = UdpSocket::bind("0.0.0.0:5555").unwrap();
        let one: libc::c_int = 1;
        // SAFETY: setting an int socket option on an open socket.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        s
    })
    .unwrap();
    let full = SocketAddr::new(ip2, 5555);
    let ns = ns1.clone();
    let evs = kernel_drops_during(&lab, 4, || send_from(&ns, full, 50, 1200));
    let n = evs.iter().filter(|e| e["drop_reason_desc"] == "SOCKET_RCVBUFF" && e["dst_port"] == 5555).count();
    assert!(n > 0, "no SOCKET_RCVBUFF drop: {evs:?}");
    drop(sock);

    // The text line names the reason too (the datagrams left queued on the
    // socket just closed may come first: the kernel frees them as well).
    let ns = ns1.clone();
    let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .args(["monitor", "-t", "kernel-drop", "--until", "4s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    send_from(&ns, closed, 1, 32);
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("xx kernel drop (NO_SOCKET) to endpoint {ep2_id}")), "{}", text(&o));

    // Off at run time: nothing more; on again: back.
    let o = lab.run(&["datapath", "config", "kernel-drops=off"]);
    assert!(o.status.success(), "{}", text(&o));
    let ns = ns1.clone();
    let evs = kernel_drops_during(&lab, 3, || send_from(&ns, closed, 1, 32));
    assert!(evs.is_empty(), "switched off: {evs:?}");
    let o = lab.run(&["-o", "json", "datapath", "config"]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["key"] == "kernel-drops").unwrap().clone();
    assert_eq!(row["value"], "off");
    let o = lab.run(&["datapath", "config", "kernel-drops=on"]);
    assert!(o.status.success(), "{}", text(&o));
    let ns = ns1.clone();
    let evs = kernel_drops_during(&lab, 4, || send_from(&ns, closed, 1, 32));
    assert!(evs.iter().any(|e| e["drop_reason_desc"] == "NO_SOCKET"), "on again: {evs:?}");
    // A bad value is a usage error.
    assert_eq!(lab.run(&["datapath", "config", "kernel-drops=maybe"]).status.code(), Some(2));
}

/// Through `dpdbg serve`, a kernel drop is a Hubble drop flow: verdict
/// DROPPED, event type drop (so `observe -t drop` has it), the kernel's
/// reason in the summary.
#[test]
fn kernel_drops_are_hubble_drop_flows() {
    let lab = CliLab::up();
    let st: Value = serde_json::from_slice(&std::fs::read(&lab.state).unwrap()).unwrap();
    let (ep1, ep2) = (&st["endpoints"][0], &st["endpoints"][1]);
    let ns1 = ep1["netns"].as_str().unwrap().to_string();
    let ip2: std::net::IpAddr = ep2["ipv4"].as_str().unwrap().parse().unwrap();
    let o = lab.run(&["datapath", "config", "kernel-drops=on"]);
    assert!(o.status.success(), "{}", text(&o));
    let socket = lab.dir.path().join("serve.sock");
    let _server = common::Server::start(&lab.fs.0, &socket, &[]);
    send_from(&ns1, SocketAddr::new(ip2, 9), 1, 32);
    let sock = socket.to_str().unwrap();
    let t = std::time::Instant::now();
    let flow = loop {
        let o = lab.run(&["--server", sock, "-o", "json", "observe", "-t", "drop", "--last", "20"]);
        assert!(o.status.success(), "{}", text(&o));
        let found = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["flow"]["Summary"].as_str().is_some_and(|s| s.contains("kernel drop (NO_SOCKET)")));
        if let Some(f) = found {
            break f;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no kernel drop flow: {}", text(&o));
        std::thread::sleep(Duration::from_millis(200));
    };
    let f = &flow["flow"];
    assert_eq!(f["verdict"], "DROPPED", "{f}");
    assert_eq!(f["event_type"]["type"], 1, "{f}");
    assert_eq!(f["IP"]["destination"], ep2["ipv4"], "{f}");
    assert_eq!(f["l4"]["UDP"]["destination_port"], 9, "{f}");
}
