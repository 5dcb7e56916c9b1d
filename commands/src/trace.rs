//! `dpdbg trace`: what the loaded datapath would do with a packet, and why.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use clap::Args;
use dpdbg::lab::LabState;
use dpdbg::maps::{Maps, Names};
use dpdbg::trace::{self, Hop, Peer, Proto, Report, Request};

use crate::output::Printer;

/// First port of the dynamic range, where a client's source port usually is.
const DEFAULT_SPORT: u16 = 49152;

#[derive(Debug, Args)]
pub struct TraceCmd {
    /// The sender: an endpoint id, NAMESPACE/POD (lab/ep1), an IP address, or a lab endpoint's name (ep1).
    #[arg(long, value_name = "EP|NS/POD|IP", required_unless_present = "packet")]
    from: Option<String>,
    /// The receiver: an endpoint id, NAMESPACE/POD (lab/ep2), an IP address, or a lab endpoint's name (ep2).
    #[arg(long, value_name = "EP|NS/POD|IP", required_unless_present = "packet")]
    to: Option<String>,
    /// tcp, udp, icmp, icmpv6 or an IP protocol number.
    #[arg(long, default_value = "tcp", value_name = "PROTO")]
    proto: String,
    /// Destination port (tcp, udp).
    #[arg(long, value_name = "PORT")]
    dport: Option<u16>,
    /// Source port (tcp, udp), or the ICMP echo id.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_SPORT)]
    sport: u16,
    /// TCP flags as tcpdump letters (S, SA, A, FA, R) or names (SYN,ACK).
    #[arg(long, value_name = "FLAGS", default_value = "S")]
    tcp_flags: String,
    /// Use the endpoints' IPv4 addresses.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use the endpoints' IPv6 addresses.
    #[arg(short = '6')]
    ipv6: bool,
    /// Trace this IP packet (hex, IP header first) instead of building one;
    /// --from/--to name the endpoints whose hooks it runs through (default:
    /// those owning its addresses), so a packet an endpoint sends from
    /// another's address is traced on the sender's interface.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["proto", "dport", "sport", "tcp_flags"])]
    packet: Option<String>,
    /// What the packet should get: allow (forwarded by every hook) or deny
    /// (dropped). Exit 1 with the deciding rule when it gets the other, as a
    /// row of `dpdbg verify` does.
    #[arg(long, value_enum, value_name = "allow|deny")]
    expect: Option<crate::verify::Expect>,
}

/// tcpdump's one-letter flags (S, SA, FPA) or names (SYN,ACK).
pub fn parse_flags(s: &str) -> anyhow::Result<u8> {
    if let Ok(f) = dpdbg::flow::parse_tcp_flags(s) {
        return Ok(f);
    }
    let mut mask = 0u8;
    for c in s.trim().chars() {
        mask |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            '.' => 0x10,
            _ => anyhow::bail!(
                "--tcp-flags {s:?}: use tcpdump's letters (S, SA, A, FA, R, P, U, E, C) or names like SYN,ACK"
            ),
        };
    }
    if mask == 0 {
        anyhow::bail!("--tcp-flags is empty: give S, SA, A, … or names like SYN,ACK");
    }
    Ok(mask)
}

fn lab_state() -> Option<LabState> {
    serde_json::from_slice(&std::fs::read(crate::lab::state_path()).ok()?).ok()
}

/// An endpoint id, `NAMESPACE/POD`, an address, or the name of a lab
/// endpoint; `names` reads the datapath's names when one is needed.
pub(crate) fn peer(s: &str, flag: &str, names: &dyn Fn() -> Names) -> anyhow::Result<Peer> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Peer::Ip(ip));
    }
    if let Ok(id) = s.parse::<u32>() {
        return Ok(Peer::Endpoint(id));
    }
    if s.contains('/') {
        let pod = dpdbg::maps::names::parse_pod_name(s).map_err(|e| anyhow::anyhow!("{flag} {e}"))?;
        return names().endpoint_named(&pod).map(Peer::Endpoint).ok_or_else(|| {
            anyhow::anyhow!("{flag} {pod}: no endpoint has that name (`dpdbg bpf endpoint list` shows the names)")
        });
    }
    if let Some(ep) = lab_state().and_then(|st| st.endpoints.into_iter().find(|e| e.name == s)) {
        return Ok(Peer::Endpoint(ep.endpoint_id));
    }
    anyhow::bail!(
        "{flag} {s:?}: not an endpoint id, NAMESPACE/POD, an IP address, or the name of a lab endpoint (see `dpdbg bpf endpoint list`)"
    )
}

fn hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if !digits.len().is_multiple_of(2) {
        anyhow::bail!("--packet: an odd number of hex digits ({})", digits.len());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| anyhow::anyhow!("--packet: {:?} at offset {} is not hex", &digits[i..i + 2], i / 2))
        })
        .collect()
}

impl TraceCmd {
    pub fn request(&self, names: &dyn Fn() -> Names) -> anyhow::Result<Request> {
        let proto: Proto = self.proto.parse()?;
        let raw = self.packet.as_deref().map(hex).transpose()?;
        if raw.is_none() && matches!(proto, Proto::Tcp | Proto::Udp) && self.dport.is_none() {
            anyhow::bail!("--dport is required for {}: policy rules are per port", self.proto);
        }
        // A packet's shape and size are checked here, so that one trace
        // cannot run is a usage error before any program runs; its addresses
        // stand for --from and --to when they are not given.
        let addrs = raw.as_deref().map(trace::raw_addrs).transpose()?;
        let given = |flag: &Option<String>, name: &str| flag.as_deref().map(|s| peer(s, name, names)).transpose();
        let (from, to) = match (given(&self.from, "--from")?, given(&self.to, "--to")?, addrs) {
            (from, to, Some((src, dst))) => (from.unwrap_or(Peer::Ip(src)), to.unwrap_or(Peer::Ip(dst))),
            (Some(from), Some(to), None) => (from, to),
            // clap requires both without --packet.
            _ => anyhow::bail!("--from and --to are required unless --packet gives the packet"),
        };
        Ok(Request {
            from,
            to,
            proto,
            sport: self.sport,
            dport: self.dport.unwrap_or(0),
            tcp_flags: if proto == Proto::Tcp { parse_flags(&self.tcp_flags)? } else { 0 },
            family: if self.ipv4 {
                Some(4)
            } else if self.ipv6 {
                Some(6)
            } else {
                None
            },
            raw,
        })
    }

    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        // Arguments that do not make a packet are a usage error (exit 2).
        // The endpoints' names, read once: for NAMESPACE/POD and the text.
        let names = std::cell::OnceCell::new();
        let read = || names.get_or_init(|| Maps::open(bpffs).and_then(|m| m.names()).unwrap_or_default()).clone();
        let req = self
            .request(&read)
            .map_err(|e| anyhow::Error::new(crate::output::UsageError(crate::output::error_message(&e))))?;
        let report = trace::trace(bpffs, &req).context("trace")?;
        p.print(&report, || text(&report, &read()))?;
        if let Some(want) = self.expect {
            let got = crate::verify::Expect::of_verdict(report.verdict);
            if got != want {
                let (decided, why) = crate::verify::explain(&report, &read());
                anyhow::bail!(
                    "--expect {}: the packet is {} (decided by {decided}): {why}",
                    want.word(),
                    report.verdict
                );
            }
        }
        Ok(())
    }
}

fn proto_name(p: u8) -> String {
    dpdbg::flow::proto_name(p).map_or_else(|| format!("protocol {p}"), str::to_string)
}

/// ` lab/ep1` after an endpoint's id, when it has a name.
fn named(names: &Names, id: u32) -> String {
    names.pods.get(&id).map(|p| format!(" {p}")).unwrap_or_default()
}

fn hop_text(out: &mut String, n: usize, h: &Hop, names: &Names) {
    let iface = h.interface.clone().unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "{n}. {} on {iface} (ifindex {}), {} of the endpoint", h.program, h.ifindex, h.direction);
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "   {k:<10} {v}");
    };
    let ps = &h.parse;
    match &ps.error {
        Some(e) => row(out, "parse", format!("stopped: {} ({})", e.text, e.code)),
        None => {
            let mut s =
                format!("{} {} ports {} -> {}", ps.family.unwrap_or("?"), proto_name(ps.protocol), ps.sport, ps.dport);
            if let Some(f) = &ps.tcp_flags {
                let _ = write!(s, " flags {f}");
            }
            if ps.fragment != "none" {
                let _ = write!(s, ", {}", ps.fragment);
            }
            if ps.icmp_error {
                s.push_str(", an ICMP error quoting a connection");
            }
            if ps.neighbour_discovery {
                s.push_str(", ICMPv6 neighbour discovery (passed untracked)");
            }
            row(out, "parse", s);
        }
    }
    for l in &h.conntrack.lookups {
        row(out, "conntrack", format!("{} tuple: {}", l.tuple, l.result));
    }
    if let Some(e) = &h.conntrack.entry {
        row(
            out,
            "",
            format!(
                "entry: {} packets forward ({}), {} back ({}), lifetime {} s",
                e.packets_fwd, e.tcp_flags_fwd, e.packets_rev, e.tcp_flags_rev, e.lifetime_s
            ),
        );
    }
    if let Some(st) = h.conntrack.state {
        let how = match st {
            "established" | "reply" | "related" => " (tracked: no endpoint or policy lookup)",
            _ => "",
        };
        row(out, "", format!("state {st}{how}"));
    }
    if let Some(ep) = &h.endpoint {
        let s = match (ep.lookup, ep.endpoint_id) {
            ("found", Some(id)) => format!(
                "endpoint {id}{} (identity {}), policy {}enforced in {}",
                named(names, id),
                ep.identity.unwrap_or(0),
                if ep.enforced { "" } else { "not " },
                h.direction
            ),
            ("other interface", Some(id)) => {
                format!(
                    "the address is endpoint {id}{}'s on ifindex {}, not this interface",
                    named(names, id),
                    ep.ifindex.unwrap_or(0)
                )
            }
            _ => "no endpoint owns the address".into(),
        };
        row(out, "endpoint", s);
    }
    if let Some(peer) = &h.peer {
        let name = peer.name.map(|n| format!(" ({n})")).unwrap_or_default();
        let from = match peer.source {
            "endpoint" => {
                let id = peer.endpoint_id.unwrap_or(0);
                format!("the endpoints map (endpoint {id}{})", named(names, id))
            }
            "ipcache" => format!("ipcache prefix {}", peer.cidr.as_deref().unwrap_or("?")),
            _ => "neither the endpoints map nor the ipcache: world".into(),
        };
        row(out, "peer", format!("{} is identity {}{name}, from {from}", peer.ip, peer.identity));
    }
    if let Some(pol) = &h.policy {
        for l in &pol.levels {
            let who = if l.identity == 0 { "any peer".to_string() } else { format!("identity {}", l.identity) };
            let port = match (l.proto, l.dport) {
                (0, _) => "any port".to_string(),
                (p, 0) => format!("{} (no ports)", proto_name(p)),
                (p, d) => format!("{}/{d}", proto_name(p)),
            };
            let mark = if Some(l.level) == pol.deciding { "  <- deciding rule" } else { "" };
            row(out, "policy", format!("{:<8} {who}, {port}: {}{mark}", l.level, l.rule));
        }
        let s = match pol.deciding {
            None => "no rule matched: denied by default (enforcement is on)".to_string(),
            Some(level) => format!("{} by the {level} rule", pol.action),
        };
        row(out, "", if pol.deny_overrode_allow { format!("{s}; a deny overrode a matching allow") } else { s });
    }
    let verdict = if h.verdict == "DROPPED" {
        format!("DROPPED: {} ({})", h.reason.text, h.reason.code)
    } else {
        "FORWARDED".to_string()
    };
    row(out, "verdict", verdict);
    if let Some(c) = h.conntrack_entry {
        row(out, "", format!("a live packet would leave a conntrack entry {c}"));
    }
    for e in &h.events {
        row(out, "event", e.summary.clone());
    }
    if h.events.is_empty() {
        row(out, "event", "none (aggregation sends no trace event for this packet)".into());
    }
}

pub fn text(r: &Report, names: &Names) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Packet: {} ({} bytes)", r.packet.summary, r.packet.length);
    for (i, h) in r.hops.iter().enumerate() {
        out.push('\n');
        hop_text(&mut out, i + 1, h, names);
    }
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    let _ = write!(out, "\nVerdict: {}", r.verdict);
    if let Some(d) = &r.drop_reason {
        let _ = write!(out, " ({}, reason {})", d.text, d.code);
    }
    out.push_str(
        "\nNothing was changed: no conntrack entry, counter or event (the dry-run programs only read the maps).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_as_letters_or_names() {
        assert_eq!(parse_flags("S").unwrap(), 0x02);
        assert_eq!(parse_flags("SA").unwrap(), 0x12);
        assert_eq!(parse_flags("FA").unwrap(), 0x11);
        assert_eq!(parse_flags("SYN,ACK").unwrap(), 0x12);
        assert_eq!(parse_flags("ece").unwrap(), 0x40, "a name wins over letters");
        assert!(parse_flags("SX").unwrap_err().to_string().contains("tcpdump's letters"));
    }

    #[test]
    fn packets_in_hex() {
        assert_eq!(hex("45 00:0a").unwrap(), vec![0x45, 0, 0x0a]);
        assert!(hex("450").unwrap_err().to_string().contains("odd number"));
        assert!(hex("zz").unwrap_err().to_string().contains("not hex"));
    }
}
