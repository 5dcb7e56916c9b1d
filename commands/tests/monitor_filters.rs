//! monitor's endpoint and address filters as cilium-dbg's: --from, --to and
//! --related-to repeatable (any of the list), --ip a CIDR (repeatable), each
//! flag narrowing the others. Checked on a capture made here, played back
//! with `monitor -r`: the same filter code as live, no lab needed.

use std::process::Command;

use dpdbg::replay::{Header, Writer};
use serde_json::Value;

/// An event record: the 40-byte header, then the packet.
fn record(ts: u64, kind: u8, dir: u8, ep: u32, src: [u8; 16], dst: [u8; 16], v6: bool) -> Vec<u8> {
    let mut pkt = Vec::new();
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]);
    if v6 {
        b.ipv6(src, dst, 64).udp(1000, 53).write(&mut pkt, b"x").unwrap();
    } else {
        let (s4, d4) = ([src[0], src[1], src[2], src[3]], [dst[0], dst[1], dst[2], dst[3]]);
        b.ipv4(s4, d4, 64).udp(1000, 53).write(&mut pkt, b"x").unwrap();
    }
    let mut r = vec![0u8; 40];
    r[0..8].copy_from_slice(&ts.to_le_bytes());
    r[8] = kind;
    r[9] = if kind == dpdbg::abi::EVENT_DROP {
        133
    } else if dir == 1 {
        5
    } else {
        0
    };
    r[10] = if kind == dpdbg::abi::EVENT_DROP { 2 } else { 1 };
    r[12] = dir;
    r[13] = if v6 { 6 } else { 4 };
    r[14] = 17;
    r[16..20].copy_from_slice(&7u32.to_le_bytes());
    r[20..24].copy_from_slice(&ep.to_le_bytes());
    r[32..36].copy_from_slice(&(pkt.len() as u32).to_le_bytes());
    r[36..40].copy_from_slice(&(pkt.len() as u32).to_le_bytes());
    r.extend_from_slice(&pkt);
    r
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

#[test]
fn endpoint_and_address_filters_as_cilium() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.dpdbg");
    let header = Header {
        dpdbg_version: "test".into(),
        node: "n".into(),
        wall_offset_ns: 1_764_000_000_000_000_000,
        started: "2025-11-24T16:00:00Z".into(),
        transport: "ringbuf".into(),
        snaplen: 128,
        endpoint_names: Default::default(),
    };
    let mut w = Writer::new(std::fs::File::create(&file).unwrap(), &header).unwrap();
    let (trace, drop) = (dpdbg::abi::EVENT_TRACE, dpdbg::abi::EVENT_DROP);
    let six = |last: u8| {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        a
    };
    for r in [
        record(0, trace, 1, 101, v4([198, 18, 9, 1]), v4([198, 18, 9, 2]), false),
        record(1, trace, 0, 102, v4([198, 18, 9, 1]), v4([198, 18, 9, 2]), false),
        record(2, trace, 1, 103, v4([198, 18, 9, 3]), v4([10, 1, 2, 3]), false),
        record(3, drop, 0, 102, v4([10, 1, 2, 3]), v4([198, 18, 9, 2]), false),
        record(4, trace, 1, 104, six(1), six(2), true),
    ] {
        w.record(&r, 7, Some("lxc7")).unwrap();
    }
    drop_writer(w);
    let sel = |args: &[&str]| -> Vec<u64> {
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .args(["monitor", "-o", "jsonl", "-r", file.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["timestamp_ns"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sel(&[]), [0, 1, 2, 3, 4]);
    assert_eq!(sel(&["--from", "101"]), [0]);
    assert_eq!(sel(&["--from", "101", "--from", "103"]), [0, 2]);
    assert_eq!(sel(&["--to", "102"]), [1, 3]);
    assert_eq!(sel(&["--related-to", "101", "--related-to", "102"]), [0, 1, 3]);
    assert_eq!(sel(&["--from", "103", "--to", "102"]), Vec::<u64>::new(), "each flag narrows the others");
    assert_eq!(sel(&["--related-to", "102", "--ip", "10.0.0.0/8"]), [3]);
    assert_eq!(sel(&["--ip", "10.0.0.0/8"]), [2, 3]);
    assert_eq!(sel(&["--ip", "198.18.9.1", "--ip", "fd00::/16"]), [0, 1, 4]);
    assert_eq!(sel(&["--ip", "198.18.9.0/30"]), [0, 1, 2, 3]);
    // A value that is no CIDR is a usage error, as JSON under -o jsonl.
    for bad in ["10.0.0.0/33", "10.0.0", "fd00::/129"] {
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .args(["-o", "jsonl", "monitor", "-r", file.to_str().unwrap(), "--ip", bad])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let e: Value =
            serde_json::from_slice(&o.stderr).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        assert!(e["error"].as_str().unwrap().contains("--ip"), "{e}");
    }
}

fn drop_writer(mut w: Writer<std::fs::File>) {
    w.flush().unwrap();
}
