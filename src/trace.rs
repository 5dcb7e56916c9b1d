//! `dpdbg trace`: ask the loaded datapath what it would do with a packet.
//!
//! The packet is built here and run through the datapath's dry-run pair
//! (`trace_from_ep`, `trace_to_ep`) with BPF_PROG_TEST_RUN: the sender's
//! egress hook, then the receiver's ingress hook, as the packet would travel.
//! Those programs are the live handler compiled a second time with a trace
//! slot (bpf/datapath.c, `handle()`): every map write, counter and event of
//! the live path is recorded in the slot instead, so the decisions come from
//! the same code and the live maps are left as they were.

use std::net::IpAddr;
use std::path::Path;

use aya::maps::{Array, MapData};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use etherparse::{IpNumber, PacketBuilder};
use serde::Serialize;

use crate::abi::{self, Reason, TraceResult};
use crate::datapath::{PROG_TRACE_FROM, PROG_TRACE_TO, Pins, TRACE_MAP};
use crate::events::Event;
use crate::flow::{self, Flow};
use crate::maps::{Endpoint, IdentitySource, Maps};
use crate::{Error, Result, sys};

/// One end of the traced packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An endpoint by id: its address of the traced family.
    Endpoint(u32),
    /// An address: a local endpoint's or any other.
    Ip(IpAddr),
}

/// The L4 protocol of the traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo request (ICMPv6 for IPv6 addresses).
    Icmp,
    /// Any other IP protocol number, with 8 zero bytes of payload.
    Other(u8),
}

impl std::str::FromStr for Proto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Proto::Tcp,
            "udp" | "17" => Proto::Udp,
            "icmp" | "icmpv4" | "icmpv6" | "1" | "58" => Proto::Icmp,
            other => Proto::Other(other.parse::<u8>().map_err(|_| {
                Error::InvalidInput(format!("unknown protocol {s:?}: use tcp, udp, icmp, icmpv6 or a number 0-255"))
            })?),
        })
    }
}

/// What to trace.
#[derive(Clone, Debug)]
pub struct Request {
    pub from: Peer,
    pub to: Peer,
    pub proto: Proto,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags of the packet (tcpdump's bits), for TCP.
    pub tcp_flags: u8,
    /// Some(4) or Some(6) picks an endpoint's address of that family.
    pub family: Option<u8>,
    /// An IP packet to trace as it is (IPv4 or IPv6 header first), instead
    /// of one built from proto and ports: for packets no flag describes.
    pub raw: Option<Vec<u8>>,
}

/// Where the traced packet entered a program.
#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    /// The live program this hop stands for.
    pub program: &'static str,
    pub interface: Option<String>,
    pub ifindex: u32,
    /// From the endpoint's point of view, as Cilium names it.
    pub direction: &'static str,
    pub parse: ParseStep,
    pub conntrack: CtStep,
    pub endpoint: Option<EndpointStep>,
    pub peer: Option<PeerStep>,
    pub policy: Option<PolicyStep>,
    pub verdict: &'static str,
    pub reason: ReasonView,
    /// What a live run would have changed in conntrack.
    pub conntrack_entry: Option<&'static str>,
    /// The events a live run would have sent, in order.
    pub events: Vec<EventView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReasonView {
    pub code: u8,
    pub text: &'static str,
}

impl From<u8> for ReasonView {
    fn from(r: u8) -> Self {
        ReasonView { code: r, text: Reason(r).text() }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ParseStep {
    /// None when the packet parsed; else why the parser stopped.
    pub error: Option<ReasonView>,
    pub family: Option<&'static str>,
    pub protocol: u8,
    /// The ports conntrack and policy use (ICMP: the echo id or type and code).
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: Option<String>,
    pub fragment: &'static str,
    pub icmp_error: bool,
    /// ICMPv6 neighbour discovery or MLD: passed without tracking.
    pub neighbour_discovery: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct CtLookup {
    pub tuple: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct CtStep {
    pub lookups: Vec<CtLookup>,
    /// The state the packet got: new, established, reply, related, reopened.
    pub state: Option<&'static str>,
    /// The entry the packet matched, as it was before the trace.
    pub entry: Option<CtEntryView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CtEntryView {
    pub packets_fwd: u64,
    pub packets_rev: u64,
    pub tcp_flags_fwd: String,
    pub tcp_flags_rev: String,
    pub lifetime_s: u32,
    pub src_identity: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct EndpointStep {
    /// found, absent, or "other interface" (the address is an endpoint's on another interface).
    pub lookup: &'static str,
    pub endpoint_id: Option<u32>,
    pub identity: Option<u32>,
    pub ifindex: Option<u32>,
    /// Whether the endpoint enforces policy in this hop's direction.
    pub enforced: bool,
    /// The endpoint's NAMESPACE/POD, when it has one.
    pub endpoint_name: Option<String>,
    /// Its identity's labels (`k8s:app=ep1`), as `bpf identity` lists them.
    pub identity_labels: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerStep {
    pub ip: IpAddr,
    pub identity: u32,
    pub name: Option<&'static str>,
    /// endpoint, ipcache or world: where the datapath found the identity.
    pub source: &'static str,
    pub endpoint_id: Option<u32>,
    /// The longest ipcache prefix holding the address (source ipcache).
    pub cidr: Option<String>,
    /// The NAMESPACE/POD of the endpoint holding the address (source endpoint).
    pub endpoint_name: Option<String>,
    /// The identity's labels (`reserved:world`, `k8s:app=ep2`).
    pub identity_labels: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyLevel {
    pub level: &'static str,
    pub identity: u32,
    pub dport: u16,
    pub proto: u8,
    /// allow, deny, or absent (no rule with this key).
    pub rule: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyStep {
    pub levels: Vec<PolicyLevel>,
    /// The level of the deciding rule; None when no rule matched (default deny).
    pub deciding: Option<&'static str>,
    pub action: &'static str,
    pub deny_overrode_allow: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub verdict: &'static str,
    /// The line `dpdbg monitor` would print for it (without the time).
    pub summary: String,
    /// The header as the datapath would have sent it (its time stamp is the trace's).
    #[serde(skip)]
    pub header: abi::EventHdr,
}

#[derive(Clone, Debug, Serialize)]
pub struct PacketView {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub length: usize,
    /// The decoded packet, as monitor prints it.
    pub summary: String,
}

/// The whole trace.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub packet: PacketView,
    pub hops: Vec<Hop>,
    /// The packet's fate: FORWARDED when every hop passed it.
    pub verdict: &'static str,
    pub drop_reason: Option<ReasonView>,
    /// Hooks not run, and why (no endpoint there, or dropped before).
    pub notes: Vec<String>,
}

/// The endpoint an address belongs to, when it is local.
fn endpoint_of(eps: &[Endpoint], ip: IpAddr) -> Option<&Endpoint> {
    eps.iter().find(|e| e.ip == ip)
}

fn resolve(eps: &[Endpoint], p: &Peer, family: Option<u8>, what: &str) -> Result<IpAddr> {
    match p {
        Peer::Ip(ip) => Ok(*ip),
        Peer::Endpoint(id) => {
            let mine: Vec<&Endpoint> = eps.iter().filter(|e| e.endpoint_id == *id).collect();
            if mine.is_empty() {
                return Err(Error::InvalidInput(format!("{what}: no endpoint {id} (see `dpdbg bpf endpoint list`)")));
            }
            let want = family.unwrap_or(if mine.iter().any(|e| e.ip.is_ipv4()) { 4 } else { 6 });
            mine.iter()
                .find(|e| (e.ip.is_ipv4() && want == 4) || (e.ip.is_ipv6() && want == 6))
                .map(|e| e.ip)
                .ok_or_else(|| Error::InvalidInput(format!("{what}: endpoint {id} has no IPv{want} address")))
        }
    }
}

const DEFAULT_MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DEFAULT_MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(out)
}

/// The frame trace runs: Ethernet (from `smac` to `dmac`), then the IP
/// packet `req` describes. Public so tests send real traffic with the very
/// bytes a trace ran on.
pub fn frame(req: &Request, src: IpAddr, dst: IpAddr, smac: [u8; 6], dmac: [u8; 6]) -> Result<Vec<u8>> {
    if let Some(raw) = &req.raw {
        let ethertype: u16 = match raw.first().map(|b| b >> 4) {
            Some(6) => 0x86dd,
            _ => 0x0800,
        };
        let mut out = Vec::with_capacity(14 + raw.len());
        out.extend_from_slice(&dmac);
        out.extend_from_slice(&smac);
        out.extend_from_slice(&ethertype.to_be_bytes());
        out.extend_from_slice(raw);
        return Ok(out);
    }
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => {
            return Err(Error::InvalidInput(format!(
                "{src} and {dst} are of different families: trace them as -4 or -6 endpoints, or give two addresses of one family"
            )));
        }
    };
    let mut out = Vec::new();
    let written = match req.proto {
        Proto::Tcp => {
            let f = req.tcp_flags;
            let mut t = ip.tcp(req.sport, req.dport, 1, 64240);
            if f & 0x01 != 0 {
                t = t.fin();
            }
            if f & 0x02 != 0 {
                t = t.syn();
            }
            if f & 0x04 != 0 {
                t = t.rst();
            }
            if f & 0x08 != 0 {
                t = t.psh();
            }
            if f & 0x10 != 0 {
                t = t.ack(1);
            }
            if f & 0x20 != 0 {
                t = t.urg(0);
            }
            if f & 0x40 != 0 {
                t = t.ece();
            }
            if f & 0x80 != 0 {
                t = t.cwr();
            }
            t.write(&mut out, &[]).map_err(|e| e.to_string())
        }
        Proto::Udp => ip.udp(req.sport, req.dport).write(&mut out, &[]).map_err(|e| e.to_string()),
        Proto::Icmp if src.is_ipv4() => {
            ip.icmpv4_echo_request(req.sport, 1).write(&mut out, &[]).map_err(|e| e.to_string())
        }
        Proto::Icmp => ip.icmpv6_echo_request(req.sport, 1).write(&mut out, &[]).map_err(|e| e.to_string()),
        Proto::Other(n) => ip.write(&mut out, IpNumber(n), &[0u8; 8]).map_err(|e| e.to_string()),
    };
    written.map_err(|e| Error::InvalidInput(format!("building the packet: {e}")))?;
    Ok(out)
}

/// What BPF_PROG_TEST_RUN needs around a packet in its one page: the skb's
/// headroom (NET_SKB_PAD, 64) and its shared info at the end
/// (SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), 320) on x86-64; a frame
/// longer than the page less these is refused with EINVAL.
const TEST_RUN_OVERHEAD: usize = 64 + 320;

/// The Ethernet header trace puts before a raw IP packet.
const ETH_HLEN: usize = 14;

/// The longest IP packet BPF_PROG_TEST_RUN takes on this machine.
pub fn max_raw_len() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    page.saturating_sub(TEST_RUN_OVERHEAD + ETH_HLEN)
}

/// A raw packet (`--packet`) trace cannot run: the caller's to fix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// No bytes at all.
    #[error("--packet is empty: give an IP packet in hex, its IPv4 or IPv6 header first")]
    Empty,
    /// The first nibble is not 4 or 6.
    #[error(
        "--packet: not an IPv4 or IPv6 packet (the first nibble, the IP version, is {version}): give the IP header first, without Ethernet"
    )]
    NotIp { version: u8 },
    /// Shorter than the fixed header, which holds the addresses that decide
    /// whose hooks the packet runs through.
    #[error(
        "--packet is too short for an IPv{family} header ({len} of at least {min} bytes), which holds the addresses that say whose hooks it runs through"
    )]
    TooShort { len: usize, family: u8, min: usize },
    /// Longer than BPF_PROG_TEST_RUN takes.
    #[error(
        "--packet is too long ({len} bytes): at most {max} bytes, as BPF_PROG_TEST_RUN runs a packet in one {page}-byte page beside the kernel's skb headroom and tail and trace's 14-byte Ethernet header"
    )]
    TooLong { len: usize, max: usize, page: usize },
}

/// The source and destination of a raw IP packet, once its shape and size
/// are ones trace can run.
pub fn raw_addrs(raw: &[u8]) -> Result<(IpAddr, IpAddr), PacketError> {
    let max = max_raw_len();
    if raw.len() > max {
        return Err(PacketError::TooLong { len: raw.len(), max, page: max + TEST_RUN_OVERHEAD + ETH_HLEN });
    }
    let short = |family: u8, min: usize| PacketError::TooShort { len: raw.len(), family, min };
    match raw.first().map(|b| b >> 4) {
        None => Err(PacketError::Empty),
        Some(4) if raw.len() >= 20 => {
            let a = |o: usize| IpAddr::from([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
            Ok((a(12), a(16)))
        }
        Some(6) if raw.len() >= 40 => {
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&raw[o..o + 16]);
                IpAddr::from(b)
            };
            Ok((a(8), a(24)))
        }
        Some(4) => Err(short(4, 20)),
        Some(6) => Err(short(6, 40)),
        Some(version) => Err(PacketError::NotIp { version }),
    }
}

/// The endpoint whose hook a raw packet runs through at one end: the one
/// `peer` names, which need not own the packet's address there (a packet an
/// endpoint sends from an address not its own is traced on its interface,
/// where the datapath drops it). An address no endpoint has names none.
fn hook_endpoint(eps: &[Endpoint], peer: &Peer, addr: IpAddr, what: &str) -> Result<Option<Endpoint>> {
    match peer {
        Peer::Ip(ip) => Ok(endpoint_of(eps, *ip).cloned()),
        Peer::Endpoint(id) => {
            let mine: Vec<&Endpoint> = eps.iter().filter(|e| e.endpoint_id == *id).collect();
            let same_family = mine.iter().find(|e| e.ip.is_ipv4() == addr.is_ipv4());
            match same_family.or(mine.first()) {
                Some(e) => Ok(Some((*e).clone())),
                None => Err(Error::InvalidInput(format!("{what}: no endpoint {id} (see `dpdbg bpf endpoint list`)"))),
            }
        }
    }
}

fn flags_text(f: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let v: Vec<&str> = NAMES.iter().enumerate().filter(|(i, _)| f & (1 << i) != 0).map(|(_, n)| *n).collect();
    if v.is_empty() { "none".into() } else { v.join(",") }
}

fn identity_name(id: u32) -> Option<&'static str> {
    match id {
        abi::IDENTITY_HOST => Some("host"),
        abi::IDENTITY_WORLD => Some("world"),
        _ => None,
    }
}

/// Runs one dry-run program on `frame` as if it arrived on `ifindex`.
fn run_one(pins: &Pins, prog: &str, ifindex: u32, frame: &[u8]) -> Result<(u32, TraceResult)> {
    let path = pins.prog(prog);
    if !path.exists() {
        return Err(Error::InvalidInput(format!(
            "the loaded datapath has no {prog} program (it was loaded by a dpdbg without trace): reload it with `dpdbg datapath unload` and `dpdbg datapath load`"
        )));
    }
    let p = SchedClassifier::from_pin(&path).map_err(|e| Error::bpf(format!("opening {}", path.display()), e))?;
    // struct __sk_buff up to ifindex: the kernel runs the program as if the
    // packet came in on that device (eth_type_trans sets the protocol).
    let mut ctx = [0u8; 44];
    ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.ctx_in = Some(&ctx);
    let out =
        p.test_run(opts).map_err(|e| Error::bpf(format!("BPF_PROG_TEST_RUN of {prog} on ifindex {ifindex}"), e))?;
    let map_path = pins.map(TRACE_MAP);
    let data = MapData::from_pin(&map_path).map_err(|e| Error::bpf(format!("opening {}", map_path.display()), e))?;
    let arr: Array<MapData, TraceResult> =
        Array::try_from(aya::maps::Map::Array(data)).map_err(|e| Error::bpf(format!("map {TRACE_MAP}"), e))?;
    let tr = arr.get(&0, 0).map_err(|e| Error::bpf(format!("reading {}", map_path.display()), e))?;
    if tr.ifindex != ifindex {
        return Err(Error::InvalidInput(format!(
            "{prog} did not record a result for ifindex {ifindex} (recorded {}): is another tracer running?",
            tr.ifindex
        )));
    }
    Ok((out.return_value, tr))
}

fn ct_result_text(c: u8) -> &'static str {
    match c {
        abi::TRACE_CT_ABSENT => "absent",
        abi::TRACE_CT_FOUND => "found",
        abi::TRACE_CT_OTHER_IF => "entry of another interface (not used; replaced if the packet passes)",
        abi::TRACE_CT_EXPIRED => "expired (deleted by a live packet)",
        abi::TRACE_CT_CLOSED => "closed and met by a new SYN (deleted by a live packet: the connection reopens)",
        _ => "not looked up",
    }
}

/// Turns the slot's record into the hop's steps.
fn describe(
    maps: &Maps,
    tr: &TraceResult,
    retval: u32,
    prog: &'static str,
    ifindex: u32,
    frame: &[u8],
    peer_ip: IpAddr,
) -> Result<Hop> {
    let dir = if prog == crate::datapath::PROG_FROM_ENDPOINT { abi::DIR_EGRESS } else { abi::DIR_INGRESS };
    let parse = ParseStep {
        error: (tr.parse != 0).then(|| tr.parse.into()),
        family: match tr.family {
            abi::FAMILY_IPV4 => Some("ipv4"),
            abi::FAMILY_IPV6 => Some("ipv6"),
            _ => None,
        },
        protocol: tr.proto,
        sport: tr.sport,
        dport: tr.dport,
        tcp_flags: (tr.proto == 6 && tr.parse == 0).then(|| flags_text(tr.tcp_flags)),
        fragment: match tr.frag {
            0 => "none",
            1 => "first fragment",
            2 => "later fragment",
            _ => "later fragment, first not seen",
        },
        icmp_error: tr.icmp_err != 0,
        neighbour_discovery: tr.neigh != 0,
    };
    let slots = [
        (abi::TRACE_CT_RELATED_FWD, "quoted connection"),
        (abi::TRACE_CT_RELATED_REV, "quoted connection, reversed"),
        (abi::TRACE_CT_FWD, "forward"),
        (abi::TRACE_CT_REV, "reply"),
    ];
    let lookups = slots
        .iter()
        .filter(|(s, _)| tr.ct_lookup[*s] != abi::TRACE_CT_SKIPPED)
        .map(|(s, name)| CtLookup { tuple: name, result: ct_result_text(tr.ct_lookup[*s]) })
        .collect();
    let found = tr.ct_lookup.contains(&abi::TRACE_CT_FOUND);
    let conntrack = CtStep {
        lookups,
        state: (tr.ct_state != 0).then(|| abi::ct_state_text(tr.ct_state)),
        entry: found.then(|| CtEntryView {
            packets_fwd: tr.ct.packets_fwd,
            packets_rev: tr.ct.packets_rev,
            tcp_flags_fwd: flags_text(tr.ct.tcp_flags_fwd),
            tcp_flags_rev: flags_text(tr.ct.tcp_flags_rev),
            lifetime_s: tr.ct.lifetime_s,
            src_identity: tr.ct.src_identity,
        }),
    };
    let endpoint = (tr.ep_state != abi::TRACE_EP_SKIPPED).then(|| {
        let has = tr.ep_state != abi::TRACE_EP_ABSENT;
        EndpointStep {
            lookup: match tr.ep_state {
                abi::TRACE_EP_FOUND => "found",
                abi::TRACE_EP_OTHER_IF => "other interface",
                _ => "absent",
            },
            endpoint_id: has.then_some(tr.ep.endpoint_id),
            identity: has.then_some(tr.ep.identity),
            ifindex: has.then_some(tr.ep.ifindex),
            enforced: tr.enforced != 0,
            endpoint_name: None,
            identity_labels: Vec::new(),
        }
    });
    let peer = if tr.peer_source == abi::TRACE_PEER_NONE {
        None
    } else {
        // The kernel says which map answered; which prefix it was is found
        // here, and must give the same identity.
        let (endpoint_id, cidr) = match maps.identity_of(peer_ip)?.source {
            IdentitySource::Endpoint { endpoint_id, .. } => (Some(endpoint_id), None),
            IdentitySource::Ipcache { cidr } => (None, Some(cidr)),
            IdentitySource::World => (None, None),
        };
        Some(PeerStep {
            ip: peer_ip,
            identity: tr.peer_identity,
            name: identity_name(tr.peer_identity),
            source: match tr.peer_source {
                abi::TRACE_PEER_ENDPOINT => "endpoint",
                abi::TRACE_PEER_IPCACHE => "ipcache",
                _ => "world",
            },
            endpoint_id: endpoint_id.filter(|_| tr.peer_source == abi::TRACE_PEER_ENDPOINT),
            cidr: cidr.filter(|_| tr.peer_source == abi::TRACE_PEER_IPCACHE),
            endpoint_name: None,
            identity_labels: Vec::new(),
        })
    };
    let policy = tr.policy.iter().any(|l| *l != abi::TRACE_POLICY_SKIPPED).then(|| PolicyStep {
        levels: (0..abi::TRACE_POLICY_LEVELS)
            .map(|i| PolicyLevel {
                level: abi::match_kind_text(i as u8 + 1),
                identity: tr.policy_keys[i].identity,
                dport: tr.policy_keys[i].dport,
                proto: tr.policy_keys[i].proto,
                rule: match tr.policy[i] {
                    abi::TRACE_POLICY_ALLOW => "allow",
                    abi::TRACE_POLICY_DENY => "deny",
                    _ => "absent",
                },
            })
            .collect(),
        deciding: (tr.policy_match != abi::MATCH_NONE).then(|| abi::match_kind_text(tr.policy_match)),
        action: if tr.policy_match != abi::MATCH_NONE
            && tr.policy[tr.policy_match as usize - 1] == abi::TRACE_POLICY_ALLOW
        {
            "allow"
        } else {
            "deny"
        },
        deny_overrode_allow: tr.policy_overrode != 0,
    });
    let n = (tr.nevents as usize).min(abi::TRACE_EVENTS_MAX);
    let events = tr.events[..n]
        .iter()
        .map(|h| {
            let cap = (h.cap_len as usize).min(frame.len());
            let ev = Event { hdr: *h, data: frame[..cap].to_vec() };
            let mut f = Flow::from_event(&ev);
            f.interface = sys::ifname(h.ifindex);
            let mut summary = String::new();
            let _ = flow::write_line(&mut summary, &f);
            EventView { event_type: f.event_type, verdict: f.verdict, summary, header: *h }
        })
        .collect();
    // TC_ACT_SHOT is 2; everything else lets the packet on.
    let dropped = retval == 2;
    Ok(Hop {
        program: if dir == abi::DIR_EGRESS {
            crate::datapath::PROG_FROM_ENDPOINT
        } else {
            crate::datapath::PROG_TO_ENDPOINT
        },
        interface: sys::ifname(ifindex),
        ifindex,
        direction: abi::direction_text(dir),
        parse,
        conntrack,
        endpoint,
        peer,
        policy,
        verdict: if dropped { "DROPPED" } else { "FORWARDED" },
        reason: tr.reason.into(),
        conntrack_entry: match tr.ct_create {
            abi::TRACE_CREATE_NEW => Some("created"),
            abi::TRACE_CREATE_REPLACE => Some("created, replacing another interface's entry"),
            _ => None,
        },
        events,
    })
}

/// How long a trace waits for another dpdbg changing the datapath.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Traces one packet through the loaded datapath without changing it.
pub fn trace(bpffs: &Path, req: &Request) -> Result<Report> {
    sys::require_privileges("tracing a packet through the datapath")?;
    sys::require_bpffs(bpffs)?;
    let pins = Pins::new(bpffs);
    pins.require_loaded()?;
    let maps = Maps::open(bpffs)?;
    let eps = maps.endpoint_list()?;
    let mut notes = Vec::new();
    let (src, dst, sender, receiver) = match &req.raw {
        Some(raw) => {
            let (src, dst) = raw_addrs(raw).map_err(|e| Error::InvalidInput(e.to_string()))?;
            let sender = hook_endpoint(&eps, &req.from, src, "--from")?;
            let receiver = hook_endpoint(&eps, &req.to, dst, "--to")?;
            for (ep, addr, side, flag) in [(&sender, src, "source", "--from"), (&receiver, dst, "destination", "--to")]
            {
                if let Some(ep) = ep
                    && endpoint_of(&eps, addr).is_none_or(|o| o.endpoint_id != ep.endpoint_id)
                {
                    let id = ep.endpoint_id;
                    notes.push(format!(
                        "the packet's {side} {addr} is not endpoint {id}'s address: traced through endpoint {id}'s hook, as {flag} asks"
                    ));
                }
            }
            (src, dst, sender, receiver)
        }
        None => {
            let src = resolve(&eps, &req.from, req.family, "--from")?;
            let dst = resolve(&eps, &req.to, req.family, "--to")?;
            (src, dst, endpoint_of(&eps, src).cloned(), endpoint_of(&eps, dst).cloned())
        }
    };
    if let Some(f) = req.family
        && (src.is_ipv4() != (f == 4) || dst.is_ipv4() != (f == 4))
    {
        return Err(Error::InvalidInput(format!("-{f} was given but {src} -> {dst} is not IPv{f}")));
    }
    if sender.is_none() && receiver.is_none() {
        return Err(Error::InvalidInput(format!(
            "neither {src} nor {dst} is an endpoint on this node (see `dpdbg bpf endpoint list`): the datapath only sees packets of its endpoints"
        )));
    }
    let smac = sender.as_ref().and_then(|e| mac(&e.mac)).unwrap_or(DEFAULT_MAC_SRC);
    let dmac = receiver.as_ref().and_then(|e| mac(&e.mac)).unwrap_or(DEFAULT_MAC_DST);
    let frame = frame(req, src, dst, smac, dmac)?;
    let summary = {
        let p = flow::decode_packet(&frame);
        let mut s = String::new();
        let _ = flow::write_summary(&mut s, &p);
        s
    };
    let packet = PacketView { src, dst, protocol: frame_proto(&frame), length: frame.len(), summary };

    // Serialised with load, attach and unload (the same lock) and with
    // other traces, which share the one slot.
    let _lock = sys::lock_dir(bpffs, LOCK_WAIT).map_err(|e| match e {
        sys::LockError::Busy { holder } => Error::DatapathBusy { dir: bpffs.to_path_buf(), holder },
        sys::LockError::Io(e) => Error::io("flock", bpffs, e),
    })?;
    let mut hops: Vec<Hop> = Vec::new();
    // One hook: the dry program of `live` on the endpoint's interface.
    let run_hop = |dry: &str, live: &'static str, ep: &Endpoint, peer: IpAddr| -> Result<Hop> {
        let (rv, tr) = run_one(&pins, dry, ep.ifindex, &frame)?;
        describe(&maps, &tr, rv, live, ep.ifindex, &frame, peer)
    };
    match &sender {
        Some(ep) => hops.push(run_hop(PROG_TRACE_FROM, crate::datapath::PROG_FROM_ENDPOINT, ep, dst)?),
        None => notes.push(format!(
            "the sender ({}) is not an endpoint here: the packet enters at its receiver",
            peer_text(&req.from, src, req.raw.is_some())
        )),
    }
    let dropped_at_sender = hops.first().is_some_and(|h| h.verdict == "DROPPED");
    match &receiver {
        Some(_) if dropped_at_sender => {
            notes.push(format!("the packet is dropped before it reaches {dst}'s endpoint"));
        }
        Some(ep) => hops.push(run_hop(PROG_TRACE_TO, crate::datapath::PROG_TO_ENDPOINT, ep, src)?),
        None => notes.push(format!(
            "the receiver ({}) is not an endpoint here: the packet leaves the node's datapath",
            peer_text(&req.to, dst, req.raw.is_some())
        )),
    }
    // Names as the text shows them, read once for the whole trace (a
    // datapath without names has none to give).
    name_hops(&mut hops, &maps.names().unwrap_or_default());
    let drop_reason = hops.iter().find(|h| h.verdict == "DROPPED").map(|h| h.reason.clone());
    Ok(Report {
        packet,
        hops,
        verdict: if drop_reason.is_some() { "DROPPED" } else { "FORWARDED" },
        drop_reason,
        notes,
    })
}

/// The endpoints' names and the identities' labels beside their numbers.
fn name_hops(hops: &mut [Hop], names: &crate::maps::Names) {
    let pod = |id: Option<u32>| id.and_then(|id| names.pods.get(&id)).map(|p| p.to_string());
    for h in hops {
        if let Some(ep) = &mut h.endpoint {
            ep.endpoint_name = pod(ep.endpoint_id);
            ep.identity_labels = ep.identity.map(|i| names.labels_of(i)).unwrap_or_default();
        }
        if let Some(peer) = &mut h.peer {
            peer.endpoint_name = pod(peer.endpoint_id);
            peer.identity_labels = names.labels_of(peer.identity);
        }
    }
}

/// The peer a note names: for a raw packet the one asked for, which need not be its address.
fn peer_text(peer: &Peer, addr: IpAddr, raw: bool) -> String {
    match peer {
        Peer::Ip(ip) if raw => ip.to_string(),
        _ => addr.to_string(),
    }
}

fn frame_proto(frame: &[u8]) -> u8 {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => frame.get(14 + 9).copied().unwrap_or(0),
        Some([0x86, 0xdd]) => frame.get(14 + 6).copied().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(proto: Proto) -> Request {
        Request {
            from: Peer::Ip("10.0.0.1".parse().unwrap()),
            to: Peer::Ip("10.0.0.2".parse().unwrap()),
            proto,
            sport: 40000,
            dport: 8080,
            tcp_flags: 0x02,
            family: None,
            raw: None,
        }
    }

    #[test]
    fn packets_are_what_was_asked_for() {
        let (s, d) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let f = frame(&req(Proto::Tcp), s, d, DEFAULT_MAC_SRC, DEFAULT_MAC_DST).unwrap();
        assert_eq!(f.len(), 14 + 20 + 20);
        assert_eq!(frame_proto(&f), 6);
        assert_eq!(&f[14 + 20..14 + 24], &[0x9c, 0x40, 0x1f, 0x90], "ports 40000 -> 8080");
        assert_eq!(f[14 + 20 + 13], 0x02, "SYN only");
        let f = frame(&req(Proto::Other(253)), s, d, DEFAULT_MAC_SRC, DEFAULT_MAC_DST).unwrap();
        assert_eq!((frame_proto(&f), f.len()), (253, 14 + 20 + 8));
        let (s6, d6) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let f = frame(&req(Proto::Icmp), s6, d6, DEFAULT_MAC_SRC, DEFAULT_MAC_DST).unwrap();
        assert_eq!((frame_proto(&f), f[14 + 40]), (58, 128), "ICMPv6 echo request");
        assert!(frame(&req(Proto::Udp), s, d6, DEFAULT_MAC_SRC, DEFAULT_MAC_DST).is_err(), "mixed families");
    }

    #[test]
    fn raw_packets_give_their_addresses() {
        let mut ip = vec![0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        assert_eq!(raw_addrs(&ip).unwrap(), ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
        ip.truncate(10);
        assert_eq!(raw_addrs(&ip), Err(PacketError::TooShort { len: 10, family: 4, min: 20 }));
        assert_eq!(raw_addrs(&[0x60; 39]), Err(PacketError::TooShort { len: 39, family: 6, min: 40 }));
        assert_eq!(raw_addrs(&[0x12, 0]), Err(PacketError::NotIp { version: 1 }));
        assert_eq!(raw_addrs(&[]), Err(PacketError::Empty));
        let max = max_raw_len();
        assert!(raw_addrs(&vec![0x45; max]).is_ok());
        assert!(matches!(raw_addrs(&vec![0x45; max + 1]), Err(PacketError::TooLong { len, .. }) if len == max + 1));
    }

    #[test]
    fn protocols_parse_by_name_and_number() {
        assert_eq!("TCP".parse::<Proto>().unwrap(), Proto::Tcp);
        assert_eq!("icmpv6".parse::<Proto>().unwrap(), Proto::Icmp);
        assert_eq!("253".parse::<Proto>().unwrap(), Proto::Other(253));
        assert!("sctpx".parse::<Proto>().is_err());
    }
}
