//! Event decode and formatting rate, against tcpdump printing the same
//! packets from a pcap, measured in the same run; then lab floods (bounded
//! in time) that report events delivered vs lost with the default ring, at
//! the default snap length and at 1518 and 9216 (whole and jumbo frames),
//! with the ring bytes each event took.
//! Needs root for the flood.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use dpdbg::abi::Reason;
use dpdbg::datapath::{Aggregation, Settings, Transport};
use dpdbg::events::{EventReader, view};
use dpdbg::flow::{Flow, JsonOptions, LineOptions, push_rfc3339, write_line_with};
use dpdbg::lab::{Lab, LabOptions, in_netns};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

const EVENTS: usize = 1_000_000;

fn packets() -> Vec<Vec<u8>> {
    let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut v = Vec::new();
    let mut p = Vec::new();
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 80, 1, 1024).syn().write(&mut p, &[]).unwrap();
    v.push(std::mem::take(&mut p));
    eth()
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .tcp(80, 40000, 9, 1024)
        .ack(2)
        .psh()
        .write(&mut p, &[7u8; 60])
        .unwrap();
    v.push(std::mem::take(&mut p));
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 3], 64).udp(5353, 53).write(&mut p, &[1u8; 40]).unwrap();
    v.push(std::mem::take(&mut p));
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).icmpv4_echo_request(7, 1).write(&mut p, &[0u8; 56]).unwrap();
    v.push(std::mem::take(&mut p));
    eth().ipv6([0xfd; 16], [0xfe; 16], 64).tcp(1234, 443, 1, 1024).syn().write(&mut p, &[]).unwrap();
    v.push(std::mem::take(&mut p));
    v
}

/// A ringbuf-shaped record: header then the packet.
fn record(i: usize, pkt: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 40];
    r[0..8].copy_from_slice(&(i as u64 * 1000).to_le_bytes());
    r[8] = [4u8, 1, 5][i % 3];
    r[9] = if i % 3 == 1 { 133 } else { 0 };
    r[10] = if i % 3 == 1 { 2 } else { 1 };
    r[11] = 1;
    r[12] = (i % 2) as u8;
    r[20..24].copy_from_slice(&101u32.to_le_bytes());
    r[32..36].copy_from_slice(&(pkt.len() as u32).to_le_bytes());
    r[36..40].copy_from_slice(&(pkt.len() as u32).to_le_bytes());
    r.extend_from_slice(pkt);
    r
}

fn decode_and_format() {
    let pkts = packets();
    let recs: Vec<Vec<u8>> = (0..EVENTS).map(|i| record(i, &pkts[i % pkts.len()])).collect();
    let mut sink = Vec::with_capacity(64 << 20);
    let mut line = String::with_capacity(256);
    // As monitor prints them: a time stamp and the interface's name lent.
    let opts = LineOptions { interface: Some("lxc12345"), ..LineOptions::default() };
    let wall = 1_764_000_000_000_000_000i128;
    // Best of 5 rounds each, text and JSON interleaved: this VM's neighbours
    // move a single round by half.
    let (mut ours, mut json) = (0f64, 0f64);
    for _ in 0..5 {
        let start = Instant::now();
        for r in &recs {
            let ev = view(r).unwrap();
            let f = Flow::from_event(ev);
            line.clear();
            push_rfc3339(&mut line, f.timestamp_ns as i128 + wall, 6);
            line.push(' ');
            write_line_with(&mut line, &f, opts).unwrap();
            line.push('\n');
            sink.extend_from_slice(line.as_bytes());
            if sink.len() > 32 << 20 {
                sink.clear();
            }
        }
        ours = ours.max(EVENTS as f64 / start.elapsed().as_secs_f64());
        let json_opts =
            JsonOptions { wall_offset_ns: Some(wall), interface: Some("lxc12345"), ..JsonOptions::default() };
        let start = Instant::now();
        for r in &recs {
            let f = Flow::from_event(view(r).unwrap());
            let at = sink.len();
            f.write_json_with(&mut sink, json_opts);
            sink.push(b'\n');
            if at > 32 << 20 {
                sink.clear();
            }
        }
        json = json.max(EVENTS as f64 / start.elapsed().as_secs_f64());
    }

    // The same packets through tcpdump's text output.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.pcap");
    let n = 200_000;
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w =
            PcapWriter::with_header(f, PcapHeader { datalink: pcap_file::DataLink::ETHERNET, ..Default::default() })
                .unwrap();
        for i in 0..n {
            let p = &pkts[i % pkts.len()];
            w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), p.len() as u32, p)).unwrap();
        }
    }
    let start = Instant::now();
    let out = Command::new("tcpdump").arg("-nr").arg(&path).output();
    match out {
        Ok(o) if o.status.success() => {
            let theirs = n as f64 / start.elapsed().as_secs_f64();
            println!("decode + one-line format, one core:");
            println!(
                "  dpdbg    {:>10.0} events/s ({EVENTS} events, best of 5; as -o jsonl: {json:.0} events/s)",
                ours
            );
            println!("  tcpdump  {:>10.0} packets/s (tcpdump -nr, {n} packets, same mix)", theirs);
            println!("  ratio    {:>10.1}x", ours / theirs);
        }
        _ => println!(
            "decode + one-line format: dpdbg {ours:.0} events/s, as -o jsonl {json:.0} events/s (tcpdump not available for the ratio)"
        ),
    }
    std::io::stdout().flush().unwrap();
}

/// What one flood delivered.
struct Flood {
    sent: u64,
    delivered: u64,
    lost: u64,
    /// Ring bytes the delivered records took, headers and padding included.
    ring_bytes: u64,
    secs: f64,
}

/// UDP ep1 -> ep2 with `payload` bytes each for `flood_for`, aggregation
/// none (an event per packet per hook), the default ring, at `snaplen`;
/// the veths at `mtu`.
fn lab_flood(snaplen: u32, payload: usize, mtu: u32, flood_for: Duration) -> Flood {
    let lab = Lab::up(&LabOptions {
        settings: Settings {
            aggregation: Aggregation::None,
            transport: Transport::Ringbuf,
            snaplen,
            ..Settings::default()
        },
        ..LabOptions::default()
    })
    .expect("lab up (run as root)");
    for ep in lab.endpoints() {
        let mtu = mtu.to_string();
        for args in [
            vec!["link", "set", "dev", ep.host_if.as_str(), "mtu", mtu.as_str()],
            vec!["-n", ep.netns.as_str(), "link", "set", "dev", "eth0", "mtu", mtu.as_str()],
        ] {
            assert!(Command::new("ip").args(&args).status().unwrap().success(), "ip {args:?}");
        }
    }
    let dst = IpAddr::V4(lab.endpoint(1).ipv4);
    let ns = lab.endpoint(0).netns.clone();
    let mut reader = EventReader::open(lab.bpffs(), Transport::Ringbuf).unwrap();
    let maps = lab.maps().unwrap();
    let sender = std::thread::spawn(move || {
        in_netns(&ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let to = SocketAddr::new(dst, 9);
            let buf = vec![0u8; payload];
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < flood_for {
                for _ in 0..256 {
                    if s.send_to(&buf, to).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        })
        .unwrap()
    });
    let (mut delivered, mut ring_bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < flood_for + Duration::from_millis(500) {
        reader.wait(Duration::from_millis(20)).unwrap();
        delivered += reader.drain(|rec| ring_bytes += (8 + rec.len()).next_multiple_of(8) as u64) as u64;
    }
    let sent = sender.join().unwrap();
    let lost: u64 =
        maps.metrics().unwrap().iter().filter(|m| m.reason == Reason::EVENT_LOST.0).map(|m| m.packets).sum();
    Flood { sent, delivered, lost, ring_bytes, secs: flood_for.as_secs_f64() }
}

fn lab_floods() {
    let flood_for = Duration::from_secs(2);
    println!(
        "lab flood: UDP ep1 -> ep2 for {}s each, aggregation none (an event per packet per hook), default ring (4 MiB):",
        flood_for.as_secs()
    );
    println!(
        "  {:<8} {:>7} {:>5}  {:>9} {:>10} {:>9} {:>7} {:>12}  ring bytes/event",
        "snaplen", "payload", "mtu", "sent", "delivered", "lost", "deliv%", "events/s"
    );
    // The default, then whole Ethernet frames at each snap length, then a
    // jumbo frame whole, and small packets at the largest snap length (its
    // records are as long as the packet, not the snap length).
    for (snaplen, payload, mtu) in [
        (128, 64, 1500),
        (128, 1472, 1500),
        (1518, 1472, 1500),
        (9216, 1472, 1500),
        (9216, 8972, 9000),
        (9216, 64, 1500),
    ] {
        let f = lab_flood(snaplen, payload, mtu, flood_for);
        println!(
            "  {snaplen:<8} {payload:>7} {mtu:>5}  {:>9} {:>10} {:>9} {:>6.1}% {:>12.0}  {:.0}",
            f.sent,
            f.delivered,
            f.lost,
            100.0 * f.delivered as f64 / (f.delivered + f.lost).max(1) as f64,
            f.delivered as f64 / f.secs,
            f.ring_bytes as f64 / f.delivered.max(1) as f64
        );
    }
}

fn main() {
    decode_and_format();
    // `cargo bench --bench monitor -- format` stops here: no root, no lab.
    if std::env::args().any(|a| a == "format") {
        return;
    }
    lab_floods();
}
