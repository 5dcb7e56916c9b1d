//! Flows: a datapath event with its packet decoded, in the operator's words;
//! filters over them; one-line and verbose text.

mod filter;
mod format;
mod packet;

use serde::Serialize;

pub use filter::{Cidr, FilterParseError, Filters, FlowFilter, TypeMatch, is_reply, parse_protocol, parse_tcp_flags};
pub use format::{
    LineOptions, hexdump, ip_text, proto_name, push_ip, push_ip_bytes, write_hubble_summary, write_line,
    write_line_with, write_summary, write_verbose,
};
pub use packet::{Packet, decode_packet};

use crate::abi::record::EventRef;
use crate::abi::{self, Reason, match_kind_text};

/// The event's type as hubble and cilium-dbg monitor name it.
pub fn type_name(t: u8) -> &'static str {
    match t {
        abi::EVENT_DROP => "drop",
        crate::kdrop::reasons::EVENT_KERNEL_DROP => "kernel-drop",
        abi::EVENT_TRACE => "trace",
        abi::EVENT_POLICY_VERDICT => "policy-verdict",
        _ => "unknown",
    }
}

pub fn verdict_name(v: u8) -> &'static str {
    match v {
        abi::VERDICT_FORWARDED => "FORWARDED",
        abi::VERDICT_DROPPED => "DROPPED",
        _ => "VERDICT_UNKNOWN",
    }
}

pub fn observation_point(subtype: u8) -> &'static str {
    match subtype {
        abi::TRACE_TO_ENDPOINT => "to-endpoint",
        abi::TRACE_FROM_ENDPOINT => "from-endpoint",
        _ => "unknown",
    }
}

/// One event as scripts see it (`-o jsonl`): field names are stable.
#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    /// Wall-clock time (RFC 3339, UTC), when the reader knows the offset
    /// from the datapath's clock (see `Flow::set_wall_time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// CLOCK_MONOTONIC nanoseconds, as the datapath stamped the event.
    pub timestamp_ns: u64,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub verdict: &'static str,
    /// Drop reason number and text (drop events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<&'static str>,
    /// to-endpoint or from-endpoint (trace events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation_point: Option<&'static str>,
    /// L3-L4, L3-Only, L4-Only, all or none (policy verdict events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_match: Option<&'static str>,
    /// A deny rule decided although an allow rule matched too (policy verdict events).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deny_overrode_allow: bool,
    /// The packet is a fragment of a larger datagram.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
    pub ct_state: &'static str,
    pub direction: &'static str,
    pub ifindex: u32,
    /// The interface's name, when the reader looked it up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub endpoint_id: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub orig_len: u32,
    pub cap_len: u32,
    #[serde(flatten)]
    pub packet: Packet,
}

/// RFC 3339 in UTC for nanoseconds since the epoch, with `digits` (6 or 9)
/// of the fraction: what monitor prints (micros) and Hubble's JSON (nanos).
/// Written digit by digit: monitor stamps every line, and `format!` was a
/// tenth of its time per event.
pub fn rfc3339(ns: i128, digits: usize) -> String {
    let mut text = String::with_capacity(32);
    push_rfc3339(&mut text, ns, digits);
    text
}

/// As `rfc3339`, appended to `out`: a line is written without a String per
/// time stamp.
pub fn push_rfc3339(out: &mut String, ns: i128, digits: usize) {
    // SAFETY: push_rfc3339_bytes appends ASCII only.
    push_rfc3339_bytes(unsafe { out.as_mut_vec() }, ns, digits);
}

/// As `push_rfc3339`, into bytes (JSON lines).
pub fn push_rfc3339_bytes(out: &mut Vec<u8>, ns: i128, digits: usize) {
    let ns = ns.max(0);
    let secs = (ns / 1_000_000_000) as i64;
    let frac = (ns % 1_000_000_000) as u32;
    // Events come thousands a second: the date and time of day change once a
    // second, so that part is kept and only the fraction is written each time.
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 20])> = const { std::cell::Cell::new((-1, [0; 20])) };
    }
    let (frac, width) = if digits == 6 { (frac / 1000, 6) } else { (frac, 9) };
    let (at, prefix) = LAST.get();
    let prefix = if at == secs {
        prefix
    } else {
        let p = second_prefix(secs);
        LAST.set((secs, p));
        p
    };
    let mut text = [b'0'; 30];
    text[..20].copy_from_slice(&prefix);
    let mut v = frac;
    for d in text[20..20 + width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    text[20 + width] = b'Z';
    out.extend_from_slice(&text[..21 + width]);
}

/// "YYYY-MM-DDTHH:MM:SS." for seconds since the epoch, UTC.
fn second_prefix(secs: i64) -> [u8; 20] {
    // Days to a civil date (Howard Hinnant's algorithm).
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let text =
        format!("{:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.", y.clamp(0, 9999), rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = [0u8; 20];
    out.copy_from_slice(&text.as_bytes()[..20]);
    out
}

pub fn rfc3339_micros(ns: i128) -> String {
    rfc3339(ns, 6)
}

impl Flow {
    /// Stamps the flow with wall-clock time: `offset_ns` is wall minus monotonic.
    pub fn set_wall_time(&mut self, offset_ns: i128) {
        self.time = Some(rfc3339_micros(self.timestamp_ns as i128 + offset_ns));
    }

    pub fn from_event<'a>(e: impl Into<EventRef<'a>>) -> Flow {
        let e = e.into();
        let h = &e.hdr;
        let is = |t| h.r#type == t;
        Flow {
            time: None,
            interface: None,
            timestamp_ns: h.timestamp_ns,
            event_type: type_name(h.r#type),
            verdict: verdict_name(h.verdict),
            drop_reason: (is(abi::EVENT_DROP) || is(crate::kdrop::reasons::EVENT_KERNEL_DROP)).then_some(h.subtype),
            drop_reason_desc: if is(crate::kdrop::reasons::EVENT_KERNEL_DROP) {
                Some(crate::kdrop::reasons::reason_name(h.subtype))
            } else {
                is(abi::EVENT_DROP).then(|| Reason(h.subtype).text())
            },
            observation_point: is(abi::EVENT_TRACE).then(|| observation_point(h.subtype)),
            policy_match: is(abi::EVENT_POLICY_VERDICT).then(|| match_kind_text(h.subtype)),
            deny_overrode_allow: is(abi::EVENT_POLICY_VERDICT) && h.flags & abi::EVF_DENY_OVERRODE_ALLOW != 0,
            fragment: h.flags & abi::EVF_FRAGMENT != 0,
            ct_state: abi::ct_state_text(h.ct_state),
            direction: abi::direction_text(h.direction),
            ifindex: h.ifindex,
            endpoint_id: h.endpoint_id,
            src_identity: h.src_identity,
            dst_identity: h.dst_identity,
            orig_len: h.orig_len,
            cap_len: h.cap_len,
            packet: decode_packet(e.data),
        }
    }
}

/// A JSON string literal: what serde_json writes for `s`. Runs between the
/// characters that need escaping are copied whole: per-character copies were
/// half of `monitor -o jsonl`'s time.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b if b < 0x20 => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// What a reader lends `Flow::write_json_with`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonOptions<'a> {
    /// Wall minus monotonic clock: the `time` field, when the flow has none.
    pub wall_offset_ns: Option<i128>,
    /// The interface's name, when the flow has none.
    pub interface: Option<&'a str>,
    /// The endpoint's name (`lab/ep1`), when the reader knows it:
    /// `endpoint_name`, after `endpoint_id`.
    pub endpoint: Option<&'a str>,
}

impl Flow {
    /// The flow as one JSON object, the same as its serde serialization but
    /// written by hand: `monitor -o jsonl` runs this for every event, and
    /// serde's flatten costs more than the rest of the event's handling.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_with(out, JsonOptions::default())
    }

    /// As `write_json`, with the time and the interface lent by the reader
    /// when the flow does not carry them: no String per event for either.
    pub fn write_json_with(&self, out: &mut Vec<u8>, o: JsonOptions<'_>) {
        // A line is the time and the packet's fields around two runs that a
        // flood repeats from one event to the next: the words the header
        // decides (type … direction) and the event's place (interface,
        // endpoint, identities). Each run is kept as bytes, written once per
        // kind of event and copied after: one copy costs less than the dozen
        // keys, words and numbers it holds, which made a JSON line a third
        // slower than a text line (issue 24).
        let mut ib = itoa::Buffer::new();
        out.push(b'{');
        if let Some(t) = &self.time {
            out.extend_from_slice(b"\"time\":");
            json_str(out, t);
            out.push(b',');
        } else if let Some(offset) = o.wall_offset_ns {
            out.extend_from_slice(b"\"time\":\"");
            push_rfc3339_bytes(out, self.timestamp_ns as i128 + offset, 6);
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(b"\"timestamp_ns\":");
        out.extend_from_slice(ib.format(self.timestamp_ns).as_bytes());
        RUNS.with_borrow_mut(|runs| {
            runs.write_words(out, self);
            runs.write_place(out, self, o);
        });
        out.extend_from_slice(ib.format(self.orig_len).as_bytes());
        out.extend_from_slice(b",\"cap_len\":");
        out.extend_from_slice(ib.format(self.cap_len).as_bytes());
        let p = &self.packet;
        if let Some(ip) = p.src_ip {
            out.extend_from_slice(b",\"src_ip\":\"");
            push_ip_bytes(out, ip);
            out.push(b'"');
        }
        if let Some(ip) = p.dst_ip {
            out.extend_from_slice(b",\"dst_ip\":\"");
            push_ip_bytes(out, ip);
            out.push(b'"');
        }
        macro_rules! opt {
            ($($k:literal: $v:expr),*) => {$(
                if let Some(v) = $v {
                    out.extend_from_slice(concat!(",\"", $k, "\":").as_bytes());
                    out.extend_from_slice(ib.format(v).as_bytes());
                }
            )*};
        }
        opt!("ip_proto": p.ip_proto, "src_port": p.src_port, "dst_port": p.dst_port, "tcp_flags": p.tcp_flags,
             "icmp_type": p.icmp_type, "icmp_code": p.icmp_code, "ether_type": p.ether_type);
        out.push(b'}');
    }

    /// `,"type":…,"direction":"egress","ifindex":`: what the header's words
    /// make of the line between the time stamp and the interface.
    fn write_words(&self, out: &mut Vec<u8>) {
        // The datapath's own words (type, verdict, state …) need no escaping.
        macro_rules! word {
            ($k:literal, $v:expr) => {{
                out.extend_from_slice(concat!(",\"", $k, "\":\"").as_bytes());
                out.extend_from_slice($v.as_bytes());
                out.push(b'"');
            }};
        }
        word!("type", self.event_type);
        word!("verdict", self.verdict);
        if let Some(r) = self.drop_reason {
            out.extend_from_slice(b",\"drop_reason\":");
            out.extend_from_slice(itoa::Buffer::new().format(r).as_bytes());
        }
        if let Some(d) = self.drop_reason_desc {
            word!("drop_reason_desc", d);
        }
        if let Some(v) = self.observation_point {
            word!("observation_point", v);
        }
        if let Some(m) = self.policy_match {
            word!("policy_match", m);
        }
        if self.deny_overrode_allow {
            out.extend_from_slice(b",\"deny_overrode_allow\":true");
        }
        if self.fragment {
            out.extend_from_slice(b",\"fragment\":true");
        }
        word!("ct_state", self.ct_state);
        word!("direction", self.direction);
        out.extend_from_slice(b",\"ifindex\":");
    }

    /// `7,"interface":"lxc1",…,"dst_identity":1002,"orig_len":`: where the
    /// event happened, from the interface's index to the identities.
    fn write_place(&self, out: &mut Vec<u8>, o: JsonOptions<'_>) {
        let mut ib = itoa::Buffer::new();
        out.extend_from_slice(ib.format(self.ifindex).as_bytes());
        if let Some(i) = self.interface.as_deref().or(o.interface) {
            // A name is the kernel's, not ours: escaped.
            out.extend_from_slice(b",\"interface\":");
            json_str(out, i);
        }
        out.extend_from_slice(b",\"endpoint_id\":");
        out.extend_from_slice(ib.format(self.endpoint_id).as_bytes());
        if let Some(name) = o.endpoint {
            out.extend_from_slice(b",\"endpoint_name\":");
            json_str(out, name);
        }
        out.extend_from_slice(b",\"src_identity\":");
        out.extend_from_slice(ib.format(self.src_identity).as_bytes());
        out.extend_from_slice(b",\"dst_identity\":");
        out.extend_from_slice(ib.format(self.dst_identity).as_bytes());
        out.extend_from_slice(b",\"orig_len\":");
    }
}

/// A run of a JSON line kept as bytes, and what it was made from.
struct Run<K> {
    key: Option<K>,
    bytes: Vec<u8>,
}

impl<K> Default for Run<K> {
    fn default() -> Self {
        Run { key: None, bytes: Vec::new() }
    }
}

impl<K> Run<K> {
    /// Copies the run out when `same` says its key is the line's; else
    /// `write` writes it, and what it wrote is kept under `key()`.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        same: impl FnOnce(&K) -> bool,
        key: impl FnOnce() -> K,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.key.as_ref().is_some_and(same) {
            out.extend_from_slice(&self.bytes);
            return;
        }
        let at = out.len();
        write(out);
        self.bytes.clear();
        self.bytes.extend_from_slice(&out[at..]);
        self.key = Some(key());
    }
}

/// The header's words, by the identity of the static strings they are
/// (address and length), with the drop reason and the flags: comparing
/// two is a few word compares.
type WordsKey = [usize; 8];

fn words_key(f: &Flow) -> WordsKey {
    let s = |w: &'static str| w.as_ptr() as usize ^ (w.len() << 48);
    let o = |w: Option<&'static str>| w.map_or(0, s);
    [
        s(f.event_type),
        s(f.verdict),
        o(f.drop_reason_desc),
        o(f.observation_point),
        o(f.policy_match),
        s(f.ct_state),
        s(f.direction),
        f.drop_reason.map_or(0, |r| 0x100 | r as usize)
            | (f.deny_overrode_allow as usize) << 9
            | (f.fragment as usize) << 10,
    ]
}

/// The event's place: ifindex, endpoint id, identities, and the names of
/// the interface and the endpoint.
struct PlaceKey {
    numbers: [u32; 4],
    interface: Option<Box<str>>,
    endpoint: Option<Box<str>>,
}

/// Kinds of events whose words are kept: a flood holds a few (traces both
/// ways, drops, verdicts), each in the slot its words hash to.
const WORD_RUNS: usize = 8;

#[derive(Default)]
struct Runs {
    words: [Run<WordsKey>; WORD_RUNS],
    place: Run<PlaceKey>,
}

thread_local! {
    static RUNS: std::cell::RefCell<Runs> = std::cell::RefCell::default();
}

impl Runs {
    fn write_words(&mut self, out: &mut Vec<u8>, f: &Flow) {
        let key = words_key(f);
        let h = key.iter().fold(0usize, |h, k| h.rotate_left(7) ^ k);
        let run = &mut self.words[(h ^ h >> 17 ^ h >> 31) % WORD_RUNS];
        run.write(out, |k| *k == key, || key, |out| f.write_words(out));
    }

    fn write_place(&mut self, out: &mut Vec<u8>, f: &Flow, o: JsonOptions<'_>) {
        let numbers = [f.ifindex, f.endpoint_id, f.src_identity, f.dst_identity];
        let interface = f.interface.as_deref().or(o.interface);
        self.place.write(
            out,
            |k| k.numbers == numbers && k.interface.as_deref() == interface && k.endpoint.as_deref() == o.endpoint,
            || PlaceKey { numbers, interface: interface.map(Box::from), endpoint: o.endpoint.map(Box::from) },
            |out| f.write_place(out, o),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::abi::record::decode;

    fn record(event_type: u8, subtype: u8, verdict: u8, dir: u8, ep: u32, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 40];
        r[8] = event_type;
        r[9] = subtype;
        r[10] = verdict;
        r[12] = dir;
        r[14] = 17;
        r[20..24].copy_from_slice(&ep.to_le_bytes());
        r[32..36].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r[36..40].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"x")
            .unwrap();
        out
    }

    #[test]
    fn filters_select_exactly_what_they_say() {
        let a = udp([10, 0, 0, 1], [10, 0, 0, 2], 1111, 53);
        let evs: Vec<_> = [
            record(abi::EVENT_TRACE, 5, 1, abi::DIR_EGRESS, 1, &a),
            record(abi::EVENT_TRACE, 0, 1, abi::DIR_INGRESS, 2, &a),
            record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &a),
            record(abi::EVENT_POLICY_VERDICT, 1, 2, abi::DIR_INGRESS, 2, &udp([10, 0, 0, 9], [10, 0, 0, 2], 7, 80)),
        ]
        .iter()
        .map(|r| decode(r).unwrap())
        .collect();
        // Decoded on demand: no packet is handed in.
        let sel = |f: FlowFilter| -> Vec<usize> {
            let fs = Filters::only(f);
            (0..evs.len()).filter(|&i| fs.admits(&evs[i], None)).collect()
        };
        let d = FlowFilter::default;
        let ty = |t| TypeMatch { r#type: t, subtype: None };
        assert_eq!(sel(d()), vec![0, 1, 2, 3]);
        assert_eq!(sel(FlowFilter { event_type: vec![ty(abi::EVENT_DROP)], ..d() }), vec![2]);
        assert_eq!(sel(FlowFilter { source_endpoint: vec![1], ..d() }), vec![0]);
        assert_eq!(sel(FlowFilter { destination_endpoint: vec![2], ..d() }), vec![1, 2, 3]);
        assert_eq!(sel(FlowFilter { endpoint: vec![1], ..d() }), vec![0]);
        assert_eq!(sel(FlowFilter { verdict: vec![abi::VERDICT_DROPPED], ..d() }), vec![2, 3]);
        assert_eq!(sel(FlowFilter { verdict: vec![abi::VERDICT_FORWARDED], ..d() }), vec![0, 1]);
        assert_eq!(sel(FlowFilter { ip: vec!["10.0.0.9".parse().unwrap()], ..d() }), vec![3]);
        assert_eq!(sel(FlowFilter { port: vec![53], ..d() }), vec![0, 1, 2]);
        assert_eq!(sel(FlowFilter { protocol: vec![6], ..d() }), Vec::<usize>::new());
        assert_eq!(
            sel(FlowFilter {
                port: vec![80],
                event_type: vec![ty(abi::EVENT_POLICY_VERDICT)],
                destination_endpoint: vec![2],
                ..d()
            }),
            vec![3]
        );
    }

    /// A JSON line reuses the runs the last lines of the same kind wrote
    /// (issue 24): every field those runs hold, changed alone from one line
    /// to the next and changed back, is written as it now is, and any line
    /// is byte for byte serde's.
    #[test]
    fn json_lines_follow_every_change_between_events() {
        let pkt = udp([10, 0, 0, 1], [10, 0, 0, 2], 1111, 53);
        let base = Flow::from_event(&decode(&record(abi::EVENT_TRACE, 5, 1, abi::DIR_EGRESS, 1, &pkt)).unwrap());
        let drop = Flow::from_event(&decode(&record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &pkt)).unwrap());
        let verdict =
            Flow::from_event(&decode(&record(abi::EVENT_POLICY_VERDICT, 1, 2, abi::DIR_INGRESS, 2, &pkt)).unwrap());
        let with = |f: &Flow, edit: &dyn Fn(&mut Flow)| {
            let mut f = f.clone();
            edit(&mut f);
            f
        };
        let flows = [
            base.clone(),
            with(&base, &|f| f.ct_state = "established"),
            with(&base, &|f| f.direction = "ingress"),
            with(&base, &|f| f.verdict = "DROPPED"),
            with(&base, &|f| f.fragment = true),
            with(&base, &|f| f.ifindex = 7),
            with(&base, &|f| f.interface = Some("lxc\"9".into())),
            with(&base, &|f| f.interface = Some("lxc9".into())),
            with(&base, &|f| f.endpoint_id = 102),
            with(&base, &|f| f.src_identity = 1001),
            with(&base, &|f| f.dst_identity = 2),
            with(&base, &|f| f.orig_len = 1500),
            with(&base, &|f| f.time = Some("2026-12-02T12:00:00.000001Z".into())),
            drop.clone(),
            with(&drop, &|f| f.drop_reason = Some(181)),
            with(&drop, &|f| f.drop_reason_desc = Some("Policy denied by denylist")),
            verdict.clone(),
            with(&verdict, &|f| f.deny_overrode_allow = true),
            with(&verdict, &|f| f.policy_match = Some("L4-Only")),
            base.clone(),
            drop,
            verdict,
            base,
        ];
        for round in 0..2 {
            for (i, f) in flows.iter().enumerate() {
                let mut ours = Vec::new();
                f.write_json(&mut ours);
                let ours = String::from_utf8(ours).unwrap();
                assert_eq!(ours, serde_json::to_string(f).unwrap(), "flow {i}, round {round}");
                // The endpoint's name and the interface lent by the reader.
                for (iface, ep) in [(Some("eth0"), Some("lab/ep1")), (Some("eth0"), Some("lab/ep2")), (None, None)] {
                    let mut lent = Vec::new();
                    let o = JsonOptions { interface: iface, endpoint: ep, ..JsonOptions::default() };
                    f.write_json_with(&mut lent, o);
                    let mut want: serde_json::Value = serde_json::to_value(f).unwrap();
                    let m = want.as_object_mut().unwrap();
                    if f.interface.is_none()
                        && let Some(i) = iface
                    {
                        m.insert("interface".into(), i.into());
                    }
                    if let Some(e) = ep {
                        m.insert("endpoint_name".into(), e.into());
                    }
                    let got: serde_json::Value = serde_json::from_slice(&lent).unwrap();
                    assert_eq!(got, want, "flow {i}, {iface:?} {ep:?}, round {round}");
                }
            }
        }
    }

    #[test]
    fn json_strings_as_serde_writes_them() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "nl\n cr\r tab\t",
            "\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "dpl1e1 ünïcödé ✓",
            "end\"",
        ] {
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        // Expected text from Python's datetime, leap day and century included.
        let cases = [
            (0i128, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_795_651_200, "2026-11-26T00:00:00"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (1_764_072_000, "2025-11-25T12:00:00"),
        ];
        for (secs, want) in cases {
            let ns = secs * 1_000_000_000 + 123_456_789;
            assert_eq!(rfc3339(ns, 6), format!("{want}.123456Z"));
            assert_eq!(rfc3339(ns, 9), format!("{want}.123456789Z"));
        }
        assert_eq!(rfc3339(-5, 6), "1970-01-01T00:00:00.000000Z", "before the epoch clamps");
    }

    #[test]
    fn ip_text_is_display() {
        for ip in ["0.0.0.0", "10.0.0.1", "255.255.255.255", "192.0.2.33", "fd00::1", "::ffff:10.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn one_line_shapes() {
        let a = udp([10, 0, 0, 1], [10, 0, 0, 2], 1111, 53);
        let line = |r: Vec<u8>| {
            let mut s = String::new();
            write_line(&mut s, &Flow::from_event(&decode(&r).unwrap())).unwrap();
            s
        };
        assert_eq!(
            line(record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &a)),
            "xx drop (Policy denied) to endpoint 2, ifindex 0, identity 0->0: 10.0.0.1:1111 -> 10.0.0.2:53 udp"
        );
        assert_eq!(
            line(record(abi::EVENT_TRACE, 5, 1, abi::DIR_EGRESS, 1, &a)),
            "<- endpoint 1, identity 0->0 state unknown ifindex 0: 10.0.0.1:1111 -> 10.0.0.2:53 udp"
        );
        assert!(line(record(abi::EVENT_POLICY_VERDICT, 2, 1, abi::DIR_INGRESS, 2, &a)).starts_with(
            "Policy verdict log: local EP ID 2, remote ID 0, proto 17, ingress, action allow, match L3-Only, "
        ));
        // A deny that won over an allow says so; the state of a related packet is named.
        let mut r = record(abi::EVENT_POLICY_VERDICT, abi::MATCH_L4_ONLY, 2, abi::DIR_INGRESS, 2, &a);
        r[15] = abi::EVF_DENY_OVERRODE_ALLOW;
        let f = Flow::from_event(&decode(&r).unwrap());
        assert!(f.deny_overrode_allow);
        assert!(line(r).contains("action deny, match L4-Only (deny overrode allow), "));
        let mut r = record(abi::EVENT_TRACE, 0, 1, abi::DIR_INGRESS, 2, &a);
        r[11] = abi::CT_RELATED;
        assert!(line(r).contains("state related "));
        // Reserved identities by name unless numeric; the time and the interface name when known.
        let mut r = record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &a);
        r[24..28].copy_from_slice(&abi::IDENTITY_WORLD.to_le_bytes());
        r[28..32].copy_from_slice(&1001u32.to_le_bytes());
        let mut f = Flow::from_event(&decode(&r).unwrap());
        f.interface = Some("lxc1".into());
        f.set_wall_time(1_764_000_000_000_000_000);
        let mut s = String::new();
        write_line_with(&mut s, &f, LineOptions::default()).unwrap();
        assert!(s.starts_with("2025-11-24T16:00:00.000000Z xx drop (Policy denied) to endpoint 2, ifindex 0 (lxc1), identity world->1001: "), "{s}");
        let mut s = String::new();
        write_line_with(&mut s, &f, LineOptions { numeric: true, ..LineOptions::default() }).unwrap();
        assert!(s.contains("identity 2->1001"), "{s}");
        // A reader that writes the time itself and lends the interface name
        // prints the same line.
        let mut bare = Flow::from_event(&decode(&r).unwrap());
        bare.timestamp_ns = f.timestamp_ns;
        let mut lent = String::new();
        push_rfc3339(&mut lent, bare.timestamp_ns as i128 + 1_764_000_000_000_000_000, 6);
        lent.push(' ');
        write_line_with(&mut lent, &bare, LineOptions { interface: Some("lxc1"), ..LineOptions::default() }).unwrap();
        let mut whole = String::new();
        write_line_with(&mut whole, &f, LineOptions::default()).unwrap();
        assert_eq!(lent, whole);
        // The endpoint's name beside its id, as the interface's beside its
        // index; numbers only with numeric.
        let named = LineOptions { endpoint: Some("lab/ep2"), ..LineOptions::default() };
        let mut s = String::new();
        write_line_with(&mut s, &f, named).unwrap();
        assert!(
            s.contains("xx drop (Policy denied) to endpoint 2 (lab/ep2), ifindex 0 (lxc1), identity world->1001"),
            "{s}"
        );
        let mut s = String::new();
        write_line_with(&mut s, &f, LineOptions { numeric: true, ..named }).unwrap();
        assert!(s.contains("to endpoint 2, ifindex 0 (lxc1), identity 2->1001"), "{s}");
        for (t, sub, dir, want) in [
            (abi::EVENT_TRACE, 0, abi::DIR_INGRESS, "-> endpoint 2 (lab/ep2), identity"),
            (abi::EVENT_POLICY_VERDICT, 2, abi::DIR_INGRESS, "Policy verdict log: local EP ID 2 (lab/ep2), remote ID"),
        ] {
            let mut s = String::new();
            write_line_with(&mut s, &Flow::from_event(&decode(&record(t, sub, 1, dir, 2, &a)).unwrap()), named)
                .unwrap();
            assert!(s.starts_with(want), "{s}");
        }
        let mut j = Vec::new();
        f.write_json_with(&mut j, JsonOptions { endpoint: Some("lab/ep2"), ..JsonOptions::default() });
        let j: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!((&j["endpoint_id"], &j["endpoint_name"]), (&serde_json::json!(2), &serde_json::json!("lab/ep2")));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["time"], "2025-11-24T16:00:00.000000Z");
        assert_eq!(json["interface"], "lxc1");
        let json = serde_json::to_value(Flow::from_event(&decode(&record(abi::EVENT_TRACE, 0, 1, 0, 2, &a)).unwrap()))
            .unwrap();
        assert!(json.get("deny_overrode_allow").is_none() && json.get("fragment").is_none(), "{json}");
    }

    #[test]
    fn verbose_shows_every_layer() {
        use etherparse::{PacketBuilder, TcpOptionElement};
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 77, 512)
            .syn()
            .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::WindowScale(7)])
            .unwrap()
            .write(&mut v, &[])
            .unwrap();
        let mut s = String::new();
        write_verbose(&mut s, &v).unwrap();
        assert!(s.contains("Ethernet  02:02:02:02:02:02 -> 04:04:04:04:04:04"), "{s}");
        assert!(s.contains("VLAN      id 42"), "{s}");
        assert!(s.contains("IPv4      10.0.0.1 -> 10.0.0.2 ihl 5"), "{s}");
        assert!(s.contains("TCP       1000 -> 80 [SYN] seq 77 ack 0 win 512 urg 0 options [mss 1460, wscale 7"), "{s}");

        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([0xfd; 16], [0xfe; 16], 9)
            .icmpv6_echo_request(5, 6)
            .write(&mut v, b"hi")
            .unwrap();
        let mut s = String::new();
        write_verbose(&mut s, &v).unwrap();
        assert!(s.contains("IPv6      fdfd:") && s.contains("hlim 9"), "{s}");
        assert!(s.contains("ICMPv6    type 128 code 0"), "{s}");

        let mut arp = vec![0xffu8; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let mut s = String::new();
        write_verbose(&mut s, &arp).unwrap();
        assert!(s.contains("ARP       op 1 sender 10.0.0.1 target 10.0.0.2"), "{s}");
    }

    /// One packet of every family the decoder knows, built from the
    /// property test's numbers, with what it should decode to.
    #[derive(Debug, Clone)]
    enum Family {
        Tcp4 { opts: bool },
        Udp4,
        Icmp4,
        Tcp6 { ext: u8 },
        Udp6 { ext: u8 },
        Icmp6,
        Vlan,
        Arp,
    }

    fn build(fam: &Family, a: [u8; 16], b: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> (Vec<u8>, Packet) {
        use etherparse::{PacketBuilder, TcpOptionElement};
        let (v4a, v4b) = ([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]]);
        let eth = || PacketBuilder::ethernet2([2; 6], [4; 6]);
        let mut out = Vec::new();
        let mut want = Packet::default();
        let v4 = |want: &mut Packet, proto| {
            want.src_ip = Some(IpAddr::from(v4a));
            want.dst_ip = Some(IpAddr::from(v4b));
            want.ip_proto = Some(proto);
        };
        let v6 = |want: &mut Packet, proto| {
            want.src_ip = Some(IpAddr::from(a));
            want.dst_ip = Some(IpAddr::from(b));
            want.ip_proto = Some(proto);
        };
        match fam {
            Family::Tcp4 { opts } => {
                let t = eth().ipv4(v4a, v4b, 64).tcp(sport, dport, 1, 512).syn().ack(2);
                let t = if *opts {
                    t.options(&[TcpOptionElement::MaximumSegmentSize(1400), TcpOptionElement::WindowScale(3)]).unwrap()
                } else {
                    t
                };
                t.write(&mut out, payload).unwrap();
                v4(&mut want, 6);
                (want.src_port, want.dst_port, want.tcp_flags) = (Some(sport), Some(dport), Some(0x12));
            }
            Family::Udp4 => {
                eth().ipv4(v4a, v4b, 64).udp(sport, dport).write(&mut out, payload).unwrap();
                v4(&mut want, 17);
                (want.src_port, want.dst_port) = (Some(sport), Some(dport));
            }
            Family::Icmp4 => {
                eth().ipv4(v4a, v4b, 64).icmpv4_echo_request(sport, dport).write(&mut out, payload).unwrap();
                v4(&mut want, 1);
                (want.icmp_type, want.icmp_code) = (Some(8), Some(0));
            }
            Family::Tcp6 { ext } | Family::Udp6 { ext } => {
                let tcp = matches!(fam, Family::Tcp6 { .. });
                let b6 = eth().ipv6(a, b, 64);
                if tcp {
                    b6.tcp(sport, dport, 1, 512).fin().write(&mut out, payload).unwrap();
                } else {
                    b6.udp(sport, dport).write(&mut out, payload).unwrap();
                }
                // Destination-options headers between IPv6 and L4.
                let l4 = out[14 + 6];
                let mut chain = Vec::new();
                for i in 0..*ext {
                    chain.extend_from_slice(&[if i + 1 == *ext { l4 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
                }
                if *ext > 0 {
                    out[14 + 6] = 60;
                    let plen = u16::from_be_bytes([out[18], out[19]]) + chain.len() as u16;
                    out[18..20].copy_from_slice(&plen.to_be_bytes());
                    out.splice(54..54, chain);
                }
                v6(&mut want, if tcp { 6 } else { 17 });
                (want.src_port, want.dst_port) = (Some(sport), Some(dport));
                if tcp {
                    want.tcp_flags = Some(0x01);
                }
            }
            Family::Icmp6 => {
                eth().ipv6(a, b, 64).icmpv6_echo_reply(sport, dport).write(&mut out, payload).unwrap();
                v6(&mut want, 58);
                (want.icmp_type, want.icmp_code) = (Some(129), Some(0));
            }
            Family::Vlan => {
                eth()
                    .single_vlan(etherparse::VlanId::try_new(sport % 4095).unwrap())
                    .ipv4(v4a, v4b, 64)
                    .udp(sport, dport)
                    .write(&mut out, payload)
                    .unwrap();
                v4(&mut want, 17);
                (want.src_port, want.dst_port) = (Some(sport), Some(dport));
            }
            Family::Arp => {
                out = vec![0xff; 6];
                out.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
                out.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
                out.extend_from_slice(&v4a);
                out.extend_from_slice(&[0; 6]);
                out.extend_from_slice(&v4b);
                want.ether_type = Some(0x0806);
            }
        }
        (out, want)
    }

    fn family() -> impl proptest::strategy::Strategy<Value = Family> {
        use proptest::prelude::*;
        prop_oneof![
            any::<bool>().prop_map(|opts| Family::Tcp4 { opts }),
            Just(Family::Udp4),
            Just(Family::Icmp4),
            (0u8..6).prop_map(|ext| Family::Tcp6 { ext }),
            (0u8..6).prop_map(|ext| Family::Udp6 { ext }),
            Just(Family::Icmp6),
            Just(Family::Vlan),
            Just(Family::Arp),
        ]
    }

    /// The record the datapath would send for `data`, `cap` bytes of it captured.
    fn event_record(event_type: u8, subtype: u8, data: &[u8], orig: u32) -> Vec<u8> {
        let mut r = record(event_type, subtype, 1, 0, 1, data);
        r[32..36].copy_from_slice(&orig.to_le_bytes());
        r
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// Every family decodes to what was built, whole; cut short or with
        /// bytes flipped it still never panics, and the text and JSON views
        /// are always produced.
        #[test]
        fn decoder_reads_every_family(
            fam in family(),
            a in proptest::prelude::any::<[u8; 16]>(),
            b in proptest::prelude::any::<[u8; 16]>(),
            sport in 1u16..,
            dport in 1u16..,
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cut in proptest::option::weighted(0.2, 0usize..200),
            flip in proptest::option::weighted(0.2, (0usize..200, proptest::prelude::any::<u8>())),
            event_type in proptest::sample::select(vec![abi::EVENT_TRACE, abi::EVENT_DROP, abi::EVENT_POLICY_VERDICT, 9]),
        ) {
            let (mut pkt, want) = build(&fam, a, b, sport, dport, &payload);
            // Most cases are whole packets (their decode is checked field by
            // field); a fifth are cut short and a fifth have a byte changed.
            let whole = cut.is_none() && flip.is_none();
            if let Some(c) = cut {
                pkt.truncate(c.min(pkt.len()));
            }
            if let Some((at, v)) = flip && !pkt.is_empty() {
                let i = at % pkt.len();
                pkt[i] = v;
            }
            let rec = event_record(event_type, 133, &pkt, pkt.len() as u32 + 4);
            let ev = decode(&rec).expect("a well-formed record decodes");
            let f = Flow::from_event(&ev);
            if whole {
                proptest::prop_assert_eq!(&f.packet, &want, "{:?}", fam);
            }
            let mut s = String::new();
            write_line(&mut s, &f).unwrap();
            write_verbose(&mut s, &ev.data).unwrap();
            hexdump(&mut s, &ev.data).unwrap();
            // The hand-written JSON is byte for byte serde's.
            let mut f = f;
            f.interface = Some("lxc\"0".into());
            f.set_wall_time(1_764_000_000_123_456_789);
            let mut ours = Vec::new();
            f.write_json(&mut ours);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&f).unwrap());
        }

        /// Arbitrary bytes as a record: an error or an event, never a panic.
        #[test]
        fn any_record_is_safe(rec in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(ev) = decode(&rec) {
                let f = Flow::from_event(&ev);
                let mut s = String::new();
                write_line(&mut s, &f).unwrap();
                write_verbose(&mut s, &ev.data).unwrap();
                serde_json::to_string(&f).unwrap();
            }
        }
    }
}
