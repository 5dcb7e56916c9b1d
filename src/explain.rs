//! Why was it dropped: a drop or a denied policy verdict, explained by
//! running its packet through `trace`'s dry-run pair against the maps as
//! they are now (no map changed), and held against what happened.
//!
//! The event says what the datapath did then (drop reason, match kind,
//! identities); the trace says what it does today and why (the deciding
//! rule, its level, conntrack, where the peer's identity came from). When
//! the two differ, the maps changed between the drop and now, and the
//! explanation says so instead of passing today's reasons off as then's:
//! cilium's old `policy trace` was removed for disagreeing with the datapath,
//! and an explanation that silently describes another policy would repeat it.

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use crate::Error;
use crate::abi::record::EventRef;
use crate::abi::{self, Reason};
use crate::maps::Maps;
use crate::trace::{self, Hop, Peer, Proto, ReasonView, Report, Request};

/// What the event says the datapath decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A drop event with its reason.
    Drop { reason: u8 },
    /// A policy verdict that denied, with its match kind (MATCH_NONE: no
    /// rule matched, a default deny).
    PolicyDenied { match_kind: u8 },
}

/// The packet of the event: the bytes the datapath captured, or, for a
/// flow that carries none (Hubble's), its addresses and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// The frame as captured (Ethernet first), possibly cut to the snap
    /// length: the headers are all trace needs, and the datapath's parser
    /// does not hold the IP length against the packet's.
    Frame { bytes: Vec<u8>, orig_len: u32 },
    /// A packet described by its tuple; trace builds it.
    Tuple {
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
        tcp_flags: u8,
        /// ICMP type and code, when known (an echo request otherwise).
        icmp: Option<(u8, u8)>,
    },
}

/// One event to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// abi::DIR_INGRESS or abi::DIR_EGRESS, from the endpoint's side.
    pub direction: u8,
    /// The endpoint whose hook decided (0: unknown, found by `ifindex`).
    pub endpoint_id: u32,
    pub ifindex: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub packet: Packet,
}

impl Event {
    /// Whether an event is one to explain: a datapath drop, or a policy
    /// verdict that denied. Kernel drops and forwarded packets are not
    /// decisions of the datapath's maps.
    pub fn wanted(hdr: &abi::EventHdr) -> bool {
        match hdr.r#type {
            abi::EVENT_DROP => true,
            abi::EVENT_POLICY_VERDICT => hdr.verdict == abi::VERDICT_DROPPED,
            _ => false,
        }
    }

    /// The event of a record the datapath sent, when it is one to explain.
    pub fn from_record(ev: &EventRef<'_>) -> Option<Event> {
        let h = &ev.hdr;
        if !Self::wanted(h) {
            return None;
        }
        Some(Event {
            kind: if h.r#type == abi::EVENT_DROP {
                Kind::Drop { reason: h.subtype }
            } else {
                Kind::PolicyDenied { match_kind: h.subtype }
            },
            direction: h.direction,
            endpoint_id: h.endpoint_id,
            ifindex: h.ifindex,
            src_identity: h.src_identity,
            dst_identity: h.dst_identity,
            packet: Packet::Frame { bytes: ev.data.to_vec(), orig_len: h.orig_len },
        })
    }

    /// The drop reason the event stands for: a denied verdict is the
    /// drop that follows it (a deny rule: 181, no rule: 133).
    pub fn reason(&self) -> u8 {
        match self.kind {
            Kind::Drop { reason } => reason,
            Kind::PolicyDenied { match_kind: abi::MATCH_NONE } => Reason::POLICY_DENIED.0,
            Kind::PolicyDenied { .. } => Reason::POLICY_DENYLIST.0,
        }
    }
}

/// What happened, as the event tells it.
#[derive(Clone, Debug, Serialize)]
pub struct Then {
    pub verdict: &'static str,
    pub reason: ReasonView,
    /// The match kind of a denied policy verdict (L3-L4 … none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_match: Option<&'static str>,
    /// The peer's identity the event carries.
    pub peer_identity: u32,
}

/// What the datapath does with the packet today.
#[derive(Clone, Debug, Serialize)]
pub struct Now {
    /// DROPPED or FORWARDED at the hook of the event.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonView>,
    /// The live program that stands for the hook (from_endpoint, to_endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// A policy rule, by the key `bpf policy add` takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub endpoint_id: u32,
    pub direction: &'static str,
    /// 0: any peer.
    pub identity: u32,
    /// 0: any protocol.
    pub proto: u8,
    /// 0: any port.
    pub dport: u16,
    /// allow or deny.
    pub action: &'static str,
    /// L3-L4, L3-Only, L4-Only or all.
    pub level: &'static str,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.identity == 0 { "any peer".to_string() } else { format!("identity {}", self.identity) };
        let port = match (self.proto, self.dport) {
            (0, _) => "any port".to_string(),
            (p, 0) => format!("{} (no ports)", proto_text(p)),
            (p, d) => format!("{}/{d}", proto_text(p)),
        };
        write!(f, "{} {who} {port} on endpoint {} {} ({})", self.action, self.endpoint_id, self.direction, self.level)
    }
}

fn proto_text(p: u8) -> String {
    crate::flow::proto_name(p).map_or_else(|| format!("protocol {p}"), str::to_string)
}

/// Where the peer's identity came from.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityView {
    pub ip: IpAddr,
    pub identity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    /// endpoint, ipcache or world.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// The explanation of one event.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub then: Then,
    pub now: Now,
    /// Today's answer differs from what happened: the maps changed since.
    pub changed: bool,
    /// The rule that decides today (None: none matched, or policy was not
    /// looked up: a tracked packet, or an endpoint that does not enforce).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The deciding rule's level, "none" for a default deny; absent when
    /// policy was not looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_level: Option<&'static str>,
    /// The endpoint enforces policy in the event's direction today.
    pub enforced: bool,
    /// The conntrack state the packet gets today (new, established, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityView>,
    /// The captured packet was cut to the snap length (its headers traced).
    pub truncated: bool,
    pub notes: Vec<String>,
    /// All of it in one line, as monitor prints it under the event.
    pub summary: String,
}

/// Why an event cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The captured bytes are not an IP packet trace can run.
    #[error("the captured packet cannot be traced: {why}")]
    Packet { why: String },
    /// No endpoint has the event's id or interface today.
    #[error(
        "endpoint {endpoint_id} (ifindex {ifindex}) is not on this node any more: nothing decides its traffic today (see `dpdbg bpf endpoint list`)"
    )]
    EndpointGone { endpoint_id: u32, ifindex: u32 },
    /// trace refused or failed.
    #[error("trace: {0}")]
    Trace(#[from] Error),
}

/// The raw IP packet (no Ethernet) of the event, and whether it was cut.
fn ip_packet(p: &Packet) -> std::result::Result<(Vec<u8>, bool), ExplainError> {
    match p {
        Packet::Frame { bytes, orig_len } => {
            let ethertype = bytes.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
            if !matches!(ethertype, Some(0x0800 | 0x86dd)) {
                return Err(ExplainError::Packet {
                    why: match ethertype {
                        Some(t) => format!("ethertype {t:#06x} is not IPv4 or IPv6"),
                        None => format!("{} bytes hold no Ethernet header", bytes.len()),
                    },
                });
            }
            let raw = bytes[14..].to_vec();
            trace::raw_addrs(&raw).map_err(|e| ExplainError::Packet { why: e.to_string() })?;
            Ok((raw, (*orig_len as usize) > bytes.len()))
        }
        Packet::Tuple { src, dst, proto, sport, dport, tcp_flags, icmp } => {
            let req = Request {
                from: Peer::Ip(*src),
                to: Peer::Ip(*dst),
                proto: match proto {
                    6 => Proto::Tcp,
                    17 => Proto::Udp,
                    1 | 58 => Proto::Icmp,
                    n => Proto::Other(*n),
                },
                sport: *sport,
                dport: *dport,
                tcp_flags: *tcp_flags,
                family: None,
                raw: None,
            };
            let mut f = trace::frame(&req, *src, *dst, [0; 6], [0; 6])
                .map_err(|e| ExplainError::Packet { why: e.to_string() })?;
            if let (Some((t, c)), 1 | 58) = (icmp, proto) {
                let at = 14 + if src.is_ipv4() { 20 } else { 40 };
                if let Some(b) = f.get_mut(at..at + 2) {
                    b.copy_from_slice(&[*t, *c]);
                }
            }
            Ok((f[14..].to_vec(), false))
        }
    }
}

/// Explains one event against the datapath under `bpffs` as it is now.
pub fn explain(bpffs: &Path, ev: &Event) -> std::result::Result<Explanation, ExplainError> {
    let (raw, truncated) = ip_packet(&ev.packet)?;
    let (src, dst) = trace::raw_addrs(&raw).map_err(|e| ExplainError::Packet { why: e.to_string() })?;
    // The hook is the endpoint's whose program decided: by its id, else by
    // the interface the event was seen on (an invalid-source drop names none).
    let endpoint = if ev.endpoint_id != 0 {
        Some(ev.endpoint_id)
    } else {
        let maps = Maps::open(bpffs)?;
        maps.endpoint_list()?.into_iter().find(|e| e.ifindex == ev.ifindex).map(|e| e.endpoint_id)
    };
    let Some(ep) = endpoint else {
        return Err(ExplainError::EndpointGone { endpoint_id: ev.endpoint_id, ifindex: ev.ifindex });
    };
    let (from, to) = if ev.direction == abi::DIR_EGRESS {
        (Peer::Endpoint(ep), Peer::Ip(dst))
    } else {
        (Peer::Ip(src), Peer::Endpoint(ep))
    };
    let req = Request { from, to, proto: Proto::Tcp, sport: 0, dport: 0, tcp_flags: 0, family: None, raw: Some(raw) };
    let report = match trace::trace(bpffs, &req) {
        Ok(r) => r,
        Err(Error::InvalidInput(m)) if m.contains(&format!("no endpoint {ep}")) => {
            return Err(ExplainError::EndpointGone { endpoint_id: ep, ifindex: ev.ifindex });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(compare(ev, &report, truncated, if ev.direction == abi::DIR_EGRESS { dst } else { src }))
}

/// Holds today's trace against the event.
pub fn compare(ev: &Event, report: &Report, truncated: bool, peer_ip: IpAddr) -> Explanation {
    let dir = abi::direction_text(ev.direction);
    let then_reason = ev.reason();
    let then = Then {
        verdict: "DROPPED",
        reason: then_reason.into(),
        policy_match: match ev.kind {
            Kind::PolicyDenied { match_kind } => Some(abi::match_kind_text(match_kind)),
            Kind::Drop { .. } => None,
        },
        peer_identity: if ev.direction == abi::DIR_EGRESS { ev.dst_identity } else { ev.src_identity },
    };
    let hop: Option<&Hop> = report.hops.iter().find(|h| h.direction == dir);
    let mut notes = Vec::new();
    let now = match hop {
        Some(h) => Now {
            verdict: h.verdict,
            reason: (h.verdict == "DROPPED").then(|| h.reason.clone()),
            program: Some(h.program),
            interface: h.interface.clone(),
        },
        None => {
            // Today the packet does not reach the event's hook: dropped
            // before it, at the other end.
            notes.extend(report.notes.iter().cloned());
            Now { verdict: report.verdict, reason: report.drop_reason.clone(), program: None, interface: None }
        }
    };
    let rule = hop.and_then(|h| {
        let p = h.policy.as_ref()?;
        let level = p.deciding?;
        let l = p.levels.iter().find(|l| l.level == level)?;
        Some(Rule {
            endpoint_id: h.endpoint.as_ref().and_then(|e| e.endpoint_id).unwrap_or(ev.endpoint_id),
            direction: dir,
            identity: l.identity,
            proto: l.proto,
            dport: l.dport,
            action: p.action,
            level,
        })
    });
    let policy_level = hop.and_then(|h| h.policy.as_ref()).map(|p| p.deciding.unwrap_or("none"));
    let enforced = hop.and_then(|h| h.endpoint.as_ref()).is_some_and(|e| e.enforced);
    let conntrack = hop.and_then(|h| h.conntrack.state).or(hop.filter(|h| h.policy.is_some()).map(|_| "new"));
    let identity = hop.and_then(|h| h.peer.as_ref()).map(|p| IdentityView {
        ip: p.ip,
        identity: p.identity,
        name: p.name,
        source: p.source,
        endpoint_id: p.endpoint_id,
        cidr: p.cidr.clone(),
    });
    let now_reason = now.reason.as_ref().map(|r| r.code);
    let same_match = match (&ev.kind, policy_level) {
        (Kind::PolicyDenied { match_kind }, Some(l)) => abi::match_kind_text(*match_kind) == l,
        _ => true,
    };
    let changed = now_reason != Some(then_reason) || !same_match;
    if let Some(id) = &identity
        && then.peer_identity != id.identity
        && then.peer_identity != 0
    {
        notes.push(format!(
            "the peer {} was identity {} then and is identity {} now ({})",
            id.ip,
            then.peer_identity,
            id.identity,
            source_text(id)
        ));
    }
    if truncated {
        notes.push("the captured packet was cut to the snap length: its headers were traced".into());
    }
    let mut e = Explanation {
        then,
        now,
        changed,
        rule,
        policy_level,
        enforced,
        conntrack,
        identity,
        truncated,
        notes,
        summary: String::new(),
    };
    e.summary = summary(&e, ev, peer_ip);
    e
}

fn source_text(id: &IdentityView) -> String {
    match id.source {
        "endpoint" => format!("from the endpoints map, endpoint {}", id.endpoint_id.unwrap_or(0)),
        "ipcache" => format!("from ipcache prefix {}", id.cidr.as_deref().unwrap_or("?")),
        _ => "world: neither the endpoints map nor the ipcache holds it".into(),
    }
}

/// Why, in one line: the deciding rule (or its absence), the peer and its
/// identity's source, conntrack, and whether today's answer is the same.
fn summary(e: &Explanation, ev: &Event, peer_ip: IpAddr) -> String {
    let dir = abi::direction_text(ev.direction);
    let peer = match &e.identity {
        Some(id) => {
            let name = id.name.map(|n| format!(" ({n})")).unwrap_or_default();
            format!("peer {} is identity {}{name} {}", id.ip, id.identity, source_text(id))
        }
        None => format!("peer {peer_ip}"),
    };
    let why = match (&e.rule, e.policy_level) {
        (Some(r), _) => format!("rule: {r}"),
        (None, Some(_)) => format!(
            "no rule matched: endpoint {} enforces {dir} policy and nothing allows identity {} here (default deny)",
            ev.endpoint_id,
            e.identity.as_ref().map_or(e.then.peer_identity, |i| i.identity)
        ),
        (None, None) => match &e.now.reason {
            Some(r) => format!("{} ({}), not a policy decision", r.text, r.code),
            None => match e.conntrack {
                Some(st @ ("established" | "reply" | "related")) => {
                    format!("conntrack {st}: the packet passes on its entry, no policy lookup")
                }
                _ if !e.enforced => format!("endpoint {} does not enforce {dir} policy", ev.endpoint_id),
                _ => "forwarded".to_string(),
            },
        },
    };
    let ct = e.conntrack.map(|c| format!("; conntrack {c}")).unwrap_or_default();
    let today = if !e.changed {
        format!("today: the same ({} {})", e.now.verdict, e.then.reason.text)
    } else if e.now.verdict == "FORWARDED" {
        let how = match (&e.rule, e.conntrack) {
            (Some(r), _) => format!("ALLOWED by rule {r}"),
            (None, Some(st @ ("established" | "reply" | "related"))) => {
                format!("FORWARDED on a conntrack entry ({st})")
            }
            _ if !e.enforced => format!("FORWARDED: endpoint {} no longer enforces {dir} policy", ev.endpoint_id),
            _ => "FORWARDED".to_string(),
        };
        format!("CHANGED: today this packet would be {how}; the policy changed since the drop")
    } else {
        let now = e.now.reason.as_ref().map_or_else(String::new, |r| format!("{} ({})", r.text, r.code));
        let then = format!("{} ({})", e.then.reason.text, e.then.reason.code);
        let by = e.rule.as_ref().map(|r| format!(" by rule {r}")).unwrap_or_default();
        if now != then {
            format!(
                "CHANGED: today this packet would be DROPPED for {now}{by}, not {then}; the policy changed since the drop"
            )
        } else {
            let level = e.then.policy_match.unwrap_or("?");
            format!(
                "CHANGED: today this packet would be DROPPED{by} at level {}, not at {level} as then; the policy changed since the drop",
                e.policy_level.unwrap_or("none")
            )
        }
    };
    let mut s = format!("{why}; {peer}{ct}; {today}");
    for n in &e.notes {
        s.push_str("; ");
        s.push_str(n);
    }
    s
}

/// At most `per_second` explanations a second, in a bucket that holds one
/// second's worth: the cost of explaining stays bounded whatever the burst
/// of drops, and what the limit skipped is counted.
#[derive(Debug)]
pub struct Limiter {
    per_second: u32,
    tokens: f64,
    last: std::time::Instant,
    /// Explanations given.
    pub explained: u64,
    /// Events the limit left unexplained.
    pub skipped: u64,
}

impl Limiter {
    pub fn new(per_second: u32) -> Limiter {
        Limiter { per_second, tokens: per_second as f64, last: std::time::Instant::now(), explained: 0, skipped: 0 }
    }

    /// Whether one more explanation may be given now (counted either way).
    pub fn admit(&mut self) -> bool {
        self.admit_at(std::time::Instant::now())
    }

    fn admit_at(&mut self, now: std::time::Instant) -> bool {
        let rate = self.per_second as f64;
        self.tokens = (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.explained += 1;
            true
        } else {
            self.skipped += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_limit_admits_a_seconds_worth_then_refills() {
        let mut l = Limiter::new(5);
        let t = Instant::now();
        let first: Vec<bool> = (0..8).map(|_| l.admit_at(t)).collect();
        assert_eq!(first, [true, true, true, true, true, false, false, false]);
        assert!(l.admit_at(t + Duration::from_millis(200)), "a fifth of a second gives one back");
        assert!(!l.admit_at(t + Duration::from_millis(210)));
        assert!((0..5).all(|_| l.admit_at(t + Duration::from_secs(10))), "a full bucket, no more");
        assert!(!l.admit_at(t + Duration::from_secs(10)));
        assert_eq!((l.explained, l.skipped), (11, 5));
    }

    #[test]
    fn packets_from_tuples_and_frames() {
        let tuple = Packet::Tuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            proto: 1,
            sport: 7,
            dport: 0,
            tcp_flags: 0,
            icmp: Some((0, 0)),
        };
        let (raw, cut) = ip_packet(&tuple).unwrap();
        assert!(!cut);
        assert_eq!((raw[9], raw[20]), (1, 0), "ICMP echo reply, as the flow said");
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&raw);
        let (again, cut) = ip_packet(&Packet::Frame { bytes: frame.clone(), orig_len: 1500 }).unwrap();
        assert_eq!((again, cut), (raw, true), "a frame cut to the snap length is traced on its headers");
        frame[12] = 0x08;
        frame[13] = 0x06;
        let e = ip_packet(&Packet::Frame { bytes: frame, orig_len: 60 }).unwrap_err();
        assert!(e.to_string().contains("ethertype 0x0806 is not IPv4 or IPv6"), "{e}");
    }
}
