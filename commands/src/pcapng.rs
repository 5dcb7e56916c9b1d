//! pcapng with the datapath's word on every packet: one Interface
//! Description Block per interface seen (its name, Ethernet, nanosecond
//! times) and one Enhanced Packet Block per event, whose comment carries
//! what the event record says of the packet's fate. `monitor --pcapng` and
//! `observe --pcapng` write through here, so both files read alike.
//!
//! The comment is one line of `key=value` fields joined by "; ", in this
//! order, each only when the event carries it:
//! `event=drop; verdict=DROPPED; drop_reason=133 (Policy denied);
//! rule=none matched: denied by default; policy_match=L3-L4;
//! direction=ingress; identity=2 (world) -> 1002; endpoint=102 (lab/ep2);
//! ct_state=new; interface=dpl-ab-1; observation_point=to-endpoint;
//! deny_overrode_allow; fragment`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use dpdbg::abi::{self, Reason};
use dpdbg::events::EventRef;
use dpdbg::flow::Flow;
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};

/// Nanoseconds: the events' own resolution (if_tsresol 9).
const TSRESOL_NS: u8 = 9;

/// Denied policy verdicts kept for the drop event that follows each: the
/// datapath sends the verdict (with the level of the deciding rule) and then
/// the drop (with the reason) for one packet, one after the other on its CPU;
/// other CPUs' events may come between.
const RECENT_VERDICTS: usize = 32;

/// What the writer knows of an event besides its record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The interface's name (None: not known here, e.g. a kernel drop inside a namespace).
    pub interface: Option<&'a str>,
    /// The endpoint's NAMESPACE/POD.
    pub endpoint: Option<&'a str>,
    /// Wall clock minus CLOCK_MONOTONIC for this record.
    pub wall_offset_ns: i128,
}

/// A denied verdict waiting for its drop event.
struct Pending {
    ifindex: u32,
    endpoint_id: u32,
    direction: u8,
    data: Vec<u8>,
    rule: String,
}

pub struct Writer<W: Write> {
    w: PcapNgWriter<W>,
    snaplen: u32,
    /// Interface ids in the file, by ifindex and name (a name learnt later
    /// is a new interface: a block once written is never changed).
    ifaces: HashMap<(u32, Option<String>), u32>,
    recent: VecDeque<Pending>,
    comment: String,
}

/// What pcapng gets of an event: never more than the packet's own length,
/// so a damaged record is written cut short (and counted) instead of ending
/// the capture. Returns the bytes, the original length, and whether it was cut.
pub fn packet_bytes(data: &[u8], orig_len: u32) -> (&[u8], u32, bool) {
    let limit = data.len().min(orig_len as usize);
    (&data[..limit], orig_len.max(limit as u32), limit < data.len())
}

impl<W: Write> Writer<W> {
    /// Writes the Section Header Block. `snaplen` is what the interfaces'
    /// blocks say (0: not known, as pcapng spells "no limit").
    pub fn new(w: W, snaplen: u32) -> std::io::Result<Writer<W>> {
        let w = PcapNgWriter::new(w).map_err(std::io::Error::other)?;
        Ok(Writer { w, snaplen, ifaces: HashMap::new(), recent: VecDeque::new(), comment: String::new() })
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.w.get_mut()
    }

    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }

    /// Takes note of an event that is not written (filtered out): a denied
    /// verdict still lends its rule to the drop event after it.
    pub fn note(&mut self, ev: EventRef<'_>) {
        if ev.hdr.r#type == abi::EVENT_POLICY_VERDICT && ev.hdr.verdict == abi::VERDICT_DROPPED {
            let f = Flow::from_event(ev);
            self.remember(ev, &f);
        }
    }

    fn remember(&mut self, ev: EventRef<'_>, f: &Flow) {
        if self.recent.len() == RECENT_VERDICTS {
            self.recent.pop_front();
        }
        let mut rule = String::new();
        verdict_rule(&mut rule, ev, f);
        self.recent.push_back(Pending {
            ifindex: ev.hdr.ifindex,
            endpoint_id: ev.hdr.endpoint_id,
            direction: ev.hdr.direction,
            data: ev.data.to_vec(),
            rule,
        });
    }

    /// The rule of the denied verdict sent for this drop's packet, taken.
    fn verdict_for(&mut self, ev: EventRef<'_>) -> Option<String> {
        let h = &ev.hdr;
        let at = self.recent.iter().rposition(|p| {
            p.ifindex == h.ifindex && p.endpoint_id == h.endpoint_id && p.direction == h.direction && p.data == ev.data
        })?;
        self.recent.remove(at).map(|p| p.rule)
    }

    /// One Enhanced Packet Block (and the interface's block before it, the
    /// first time). Returns whether the record had to be cut.
    pub fn write(&mut self, ev: EventRef<'_>, f: &Flow, cx: Context<'_>) -> std::io::Result<bool> {
        let h = &ev.hdr;
        let from_verdict = if h.r#type == abi::EVENT_POLICY_VERDICT && h.verdict == abi::VERDICT_DROPPED {
            self.remember(ev, f);
            None
        } else if h.r#type == abi::EVENT_DROP
            && [Reason::POLICY_DENIED.0, Reason::POLICY_DENYLIST.0].contains(&h.subtype)
        {
            self.verdict_for(ev)
        } else {
            None
        };
        let id = self.interface(h.ifindex, cx.interface)?;
        let mut comment = std::mem::take(&mut self.comment);
        comment.clear();
        write_comment(&mut comment, ev, f, cx, from_verdict.as_deref());
        let (data, original_len, cut) = packet_bytes(ev.data, h.orig_len);
        let ns = (h.timestamp_ns as i128 + cx.wall_offset_ns).clamp(0, u64::MAX as i128) as u64;
        let block = EnhancedPacketBlock {
            interface_id: id,
            timestamp: Duration::from_nanos(ns),
            original_len,
            data: Cow::Borrowed(data),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(&comment))],
        };
        let r = self.w.write_pcapng_block(block).map(|_| cut).map_err(std::io::Error::other);
        self.comment = comment;
        r
    }

    fn interface(&mut self, ifindex: u32, name: Option<&str>) -> std::io::Result<u32> {
        let key = (ifindex, name.map(str::to_string));
        if let Some(id) = self.ifaces.get(&key) {
            return Ok(*id);
        }
        let id = self.ifaces.len() as u32;
        // An interface without a name here (a namespace's) is named by its index.
        let shown = name.map_or_else(|| format!("ifindex {ifindex}"), str::to_string);
        let block = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: self.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(shown)),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!("ifindex {ifindex}"))),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
            ],
        };
        self.w.write_pcapng_block(block).map_err(std::io::Error::other)?;
        self.ifaces.insert(key, id);
        Ok(id)
    }
}

/// An identity as the comment shows it: reserved ones by name too.
fn identity(out: &mut String, id: u32) {
    let _ = write!(out, "{id}");
    match id {
        abi::IDENTITY_HOST => out.push_str(" (host)"),
        abi::IDENTITY_WORLD => out.push_str(" (world)"),
        _ => {}
    }
}

/// The rule a denied or allowed policy verdict names, in `trace`'s words:
/// its level and action, then its key's peer and port.
fn verdict_rule(out: &mut String, ev: EventRef<'_>, f: &Flow) {
    let h = &ev.hdr;
    let deny = h.verdict == abi::VERDICT_DROPPED;
    if h.subtype == abi::MATCH_NONE {
        out.push_str(if deny { "none matched: denied by default" } else { "none matched" });
        return;
    }
    let peer = if h.direction == abi::DIR_EGRESS { h.dst_identity } else { h.src_identity };
    let action = if deny { "deny" } else { "allow" };
    let _ = write!(out, "{} {action}: ", abi::match_kind_text(h.subtype));
    let port = |out: &mut String| {
        let proto = f.packet.ip_proto.unwrap_or(0);
        let name = dpdbg::flow::proto_name(proto).map_or_else(|| proto.to_string(), str::to_string);
        match f.packet.dst_port {
            Some(p) if matches!(proto, 6 | 17 | 132) => {
                let _ = write!(out, "{name}/{p}");
            }
            _ => {
                let _ = write!(out, "{name} (no ports)");
            }
        }
    };
    match h.subtype {
        abi::MATCH_L3_L4 => {
            out.push_str("identity ");
            identity(out, peer);
            out.push_str(", ");
            port(out);
        }
        abi::MATCH_L3_ONLY => {
            out.push_str("identity ");
            identity(out, peer);
            out.push_str(", any port");
        }
        abi::MATCH_L4_ONLY => {
            out.push_str("any peer, ");
            port(out);
        }
        _ => out.push_str("any peer, any port"),
    }
}

/// The comment of one packet (see the module's documentation).
pub fn write_comment(out: &mut String, ev: EventRef<'_>, f: &Flow, cx: Context<'_>, rule: Option<&str>) {
    let h = &ev.hdr;
    let field = |out: &mut String, k: &str| {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(k);
    };
    field(out, "event=");
    out.push_str(f.event_type);
    field(out, "verdict=");
    out.push_str(f.verdict);
    if let (Some(n), Some(text)) = (f.drop_reason, f.drop_reason_desc) {
        field(out, "drop_reason=");
        let _ = write!(out, "{n} ({text})");
    }
    if h.r#type == abi::EVENT_POLICY_VERDICT {
        field(out, "rule=");
        verdict_rule(out, ev, f);
    } else if h.r#type == abi::EVENT_DROP && h.subtype == Reason::POLICY_DENIED.0 {
        // 133 is sent only when no rule matched (a matching deny is 181).
        field(out, "rule=");
        out.push_str(rule.unwrap_or("none matched: denied by default"));
    } else if h.r#type == abi::EVENT_DROP && h.subtype == Reason::POLICY_DENYLIST.0 {
        field(out, "rule=");
        out.push_str(rule.unwrap_or("a deny rule (its level is in the policy-verdict event)"));
    }
    if let Some(m) = f.policy_match {
        field(out, "policy_match=");
        out.push_str(m);
    }
    field(out, "direction=");
    out.push_str(f.direction);
    field(out, "identity=");
    identity(out, h.src_identity);
    out.push_str(" -> ");
    identity(out, h.dst_identity);
    if h.endpoint_id != 0 {
        field(out, "endpoint=");
        let _ = write!(out, "{}", h.endpoint_id);
        if let Some(name) = cx.endpoint {
            let _ = write!(out, " ({name})");
        }
    }
    field(out, "ct_state=");
    out.push_str(f.ct_state);
    field(out, "interface=");
    match cx.interface {
        Some(name) => out.push_str(name),
        None => {
            let _ = write!(out, "ifindex {}", h.ifindex);
        }
    }
    if let Some(p) = f.observation_point {
        field(out, "observation_point=");
        out.push_str(p);
    }
    if f.deny_overrode_allow {
        field(out, "deny_overrode_allow");
    }
    if f.fragment {
        field(out, "fragment");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdbg::abi::EventHdr;

    // Default fills what a newer header may add.
    #[allow(clippy::needless_update)]
    fn hdr(t: u8, subtype: u8, verdict: u8) -> EventHdr {
        EventHdr {
            timestamp_ns: 5_000_000_123,
            r#type: t,
            subtype,
            verdict,
            ct_state: abi::CT_NEW,
            direction: abi::DIR_INGRESS,
            family: 4,
            proto: 6,
            ifindex: 7,
            endpoint_id: 102,
            src_identity: abi::IDENTITY_WORLD,
            dst_identity: 1002,
            orig_len: 74,
            cap_len: 74,
            ..Default::default()
        }
    }

    /// A TCP SYN from 10.0.0.1:40000 to 10.0.0.2:80, as the datapath captures it.
    fn syn() -> Vec<u8> {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1024)
            .syn()
            .write(&mut p, &[])
            .unwrap();
        p
    }

    #[test]
    fn a_drop_takes_the_rule_of_its_verdict() {
        let data = syn();
        let mut w = Writer::new(Vec::new(), 0).unwrap();
        let cx = Context { interface: Some("dpl-1"), endpoint: Some("lab/ep2"), wall_offset_ns: 0 };
        let mut v = hdr(abi::EVENT_POLICY_VERDICT, abi::MATCH_L3_L4, abi::VERDICT_DROPPED);
        v.orig_len = data.len() as u32;
        let verdict = EventRef { hdr: v, data: &data };
        w.note(verdict);
        let mut d = hdr(abi::EVENT_DROP, Reason::POLICY_DENYLIST.0, abi::VERDICT_DROPPED);
        d.orig_len = data.len() as u32;
        let drop = EventRef { hdr: d, data: &data };
        let rule = w.verdict_for(drop);
        assert_eq!(rule.as_deref(), Some("L3-L4 deny: identity 2 (world), tcp/80"));
        let mut c = String::new();
        write_comment(&mut c, drop, &Flow::from_event(drop), cx, rule.as_deref());
        assert_eq!(
            c,
            "event=drop; verdict=DROPPED; drop_reason=181 (Policy denied by denylist); rule=L3-L4 deny: identity 2 (world), tcp/80; direction=ingress; identity=2 (world) -> 1002; endpoint=102 (lab/ep2); ct_state=new; interface=dpl-1"
        );
        // Taken once: a second drop of other bytes finds none.
        assert_eq!(w.verdict_for(drop), None);
    }

    #[test]
    fn a_default_deny_and_a_forwarded_trace() {
        let data = syn();
        let cx = Context::default();
        let d = EventRef { hdr: hdr(abi::EVENT_DROP, Reason::POLICY_DENIED.0, abi::VERDICT_DROPPED), data: &data };
        let mut c = String::new();
        write_comment(&mut c, d, &Flow::from_event(d), cx, None);
        assert!(c.contains("drop_reason=133 (Policy denied); rule=none matched: denied by default"), "{c}");
        assert!(c.contains("interface=ifindex 7"), "{c}");
        let mut t = hdr(abi::EVENT_TRACE, abi::TRACE_TO_ENDPOINT, abi::VERDICT_FORWARDED);
        t.src_identity = 1001;
        t.dst_identity = abi::IDENTITY_HOST;
        t.endpoint_id = 0;
        let t = EventRef { hdr: t, data: &data };
        let mut c = String::new();
        write_comment(&mut c, t, &Flow::from_event(t), cx, None);
        assert_eq!(
            c,
            "event=trace; verdict=FORWARDED; direction=ingress; identity=1001 -> 1 (host); ct_state=new; interface=ifindex 7; observation_point=to-endpoint"
        );
    }
}
