//! The cost of kernel drops (skb:kfree_skb, bpf/kdrop.c): the kernel's own
//! run-time statistics of the program (BPF_ENABLE_STATS) while datagrams to
//! a closed port on loopback are freed with NO_SOCKET, for a drop that is no
//! endpoint's (filtered out: the common case on a busy node) and for one of
//! an endpoint's address (an event written); and the time to send the same
//! datagrams with the program attached and switched off, in one run. Sends
//! only on 127.0.0.0/8. Needs root.

use std::net::{IpAddr, UdpSocket};
use std::time::Instant;

use aya::programs::ProgramInfo;
use dpdbg::abi::EndpointInfo;
use dpdbg::datapath::{self, Pins, Settings};
use dpdbg::maps::Maps;

const DATAGRAMS: usize = 50_000;
const ROUNDS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    dpdbg::sys::mount_bpffs(dir.path()).expect("mount bpffs (run as root)");
    let bpffs = dir.path().to_path_buf();
    let result = std::panic::catch_unwind(|| run(&bpffs));
    let _ = datapath::unload(&bpffs);
    let _ = dpdbg::sys::unmount(&bpffs);
    result.unwrap();
}

/// Sends DATAGRAMS to a closed port of `to`; the time it took.
fn send(to: IpAddr) -> f64 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = Instant::now();
    for _ in 0..DATAGRAMS {
        let _ = s.send_to(b"kdrop bench", (to, 9));
    }
    t.elapsed().as_nanos() as f64 / DATAGRAMS as f64
}

/// (runs, ns) of the program so far.
fn stats(pins: &Pins) -> (u64, u64) {
    let info = ProgramInfo::from_pin(pins.prog(dpdbg::kdrop::PROG)).unwrap();
    (info.run_count(), info.run_time().as_nanos() as u64)
}

fn run(bpffs: &std::path::Path) {
    let r = datapath::load(bpffs, &Settings::default()).unwrap();
    let state = r.kernel_drops.map(|k| k.state).unwrap_or("unknown");
    assert_eq!(state, "off", "kernel drops load switched off");
    dpdbg::kdrop::set(bpffs, true).expect("kernel drops must attach here");
    let pins = Pins::new(bpffs);
    // 127.0.0.2 is an endpoint's address: its drops become events.
    let ep = EndpointInfo { endpoint_id: 7, identity: 1007, ifindex: 1, ..Default::default() };
    Maps::open(bpffs).unwrap().endpoint_upsert(IpAddr::from([127, 0, 0, 2]), ep).unwrap();
    let stats_on = dpdbg::progs::enable_stats().unwrap();
    let (mut other, mut endpoint, mut on, mut off) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        for (to, best) in [([127, 0, 0, 1], &mut other), ([127, 0, 0, 2], &mut endpoint)] {
            let (c0, t0) = stats(&pins);
            send(IpAddr::from(to));
            let (c1, t1) = stats(&pins);
            if c1 > c0 {
                *best = best.min((t1 - t0) as f64 / (c1 - c0) as f64);
            }
        }
        on = on.min(send(IpAddr::from([127, 0, 0, 1])));
        dpdbg::kdrop::set(bpffs, false).unwrap();
        off = off.min(send(IpAddr::from([127, 0, 0, 1])));
        dpdbg::kdrop::set(bpffs, true).unwrap();
    }
    drop(stats_on);
    println!("kernel drops (skb:kfree_skb), {DATAGRAMS} datagrams to a closed loopback port, best of {ROUNDS} rounds:");
    println!("  program, a drop of no endpoint's (filtered out) {other:7.1} ns/drop");
    println!("  program, a drop of an endpoint's (event sent)   {endpoint:7.1} ns/drop");
    println!("  send, program attached                          {on:7.1} ns/datagram");
    println!("  send, kernel-drops=off                          {off:7.1} ns/datagram  ({:.3}x)", on / off);
}
