//! `dpdbg explain`: why one drop or denied verdict happened, from the event
//! as `monitor -j` or `observe -o json` printed it; and the pieces monitor
//! and observe use for `--explain` (the text line, the rate limit).

use std::io::Read as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use clap::Args;
use dpdbg::abi;
use dpdbg::explain::{Event, Explanation, Kind, Packet};
use serde_json::Value;

use crate::output::{Printer, UsageError};

/// Explanations a second, at most, for `monitor --explain` and `observe
/// --explain`: each costs a trace (the maps opened, the endpoints read, the
/// datapath's lock, two BPF_PROG_TEST_RUNs), and a flood of drops must not
/// cost the reader its events.
pub const DEFAULT_RATE: u32 = 10;

#[derive(Debug, Args)]
pub struct ExplainCmd {
    /// The event, as one JSON line: a `monitor -j` line or a flow as
    /// `observe -o json` prints it. Default: the first line of stdin.
    #[arg(value_name = "EVENT")]
    pub event: Option<String>,
}

/// An input that cannot be explained: the caller's to fix (exit 2).
fn bad(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError(format!("explain: {what}")))
}

fn field<'a>(v: &'a Value, k: &str, shape: &str) -> anyhow::Result<&'a Value> {
    v.get(k)
        .filter(|x| !x.is_null())
        .ok_or_else(|| bad(format!("the {shape} has no \"{k}\": it is needed to explain it")))
}

fn num(v: &Value, k: &str, shape: &str) -> anyhow::Result<u64> {
    let x = field(v, k, shape)?;
    x.as_u64()
        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| bad(format!("the {shape}'s \"{k}\" is {x}, not a number")))
}

fn opt_num(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
}

fn ip(v: &Value, k: &str, shape: &str) -> anyhow::Result<IpAddr> {
    let x = field(v, k, shape)?;
    x.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("the {shape}'s \"{k}\" is {x}, not an IP address")))
}

/// A `monitor -j` line.
fn from_monitor(v: &Value) -> anyhow::Result<Event> {
    const SHAPE: &str = "monitor event";
    let ty = field(v, "type", SHAPE)?.as_str().unwrap_or_default();
    let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or_default();
    let kind = match ty {
        "drop" => Kind::Drop { reason: num(v, "drop_reason", SHAPE)? as u8 },
        "policy-verdict" if verdict == "DROPPED" => {
            let m = field(v, "policy_match", SHAPE)?.as_str().unwrap_or_default();
            let match_kind = (0..=abi::MATCH_ALL)
                .find(|k| abi::match_kind_text(*k) == m)
                .ok_or_else(|| bad(format!("policy_match {m:?}: not one of L3-L4, L3-Only, L4-Only, all, none")))?;
            Kind::PolicyDenied { match_kind }
        }
        "kernel-drop" => {
            return Err(bad(
                "a kernel drop is the kernel's, not a decision of the datapath's maps: nothing for trace to explain",
            ));
        }
        _ => {
            return Err(bad(format!(
                "a {ty} event with verdict {verdict}: only drops and denied policy verdicts are explained"
            )));
        }
    };
    let direction = match field(v, "direction", SHAPE)?.as_str() {
        Some("egress") => abi::DIR_EGRESS,
        Some("ingress") => abi::DIR_INGRESS,
        other => return Err(bad(format!("direction {other:?}: ingress or egress"))),
    };
    let proto = num(v, "ip_proto", SHAPE)? as u8;
    Ok(Event {
        kind,
        direction,
        endpoint_id: num(v, "endpoint_id", SHAPE)? as u32,
        ifindex: opt_num(v, "ifindex").unwrap_or(0) as u32,
        src_identity: opt_num(v, "src_identity").unwrap_or(0) as u32,
        dst_identity: opt_num(v, "dst_identity").unwrap_or(0) as u32,
        packet: Packet::Tuple {
            src: ip(v, "src_ip", SHAPE)?,
            dst: ip(v, "dst_ip", SHAPE)?,
            proto,
            sport: opt_num(v, "src_port").unwrap_or(0) as u16,
            dport: opt_num(v, "dst_port").unwrap_or(0) as u16,
            tcp_flags: opt_num(v, "tcp_flags").unwrap_or(if proto == 6 { 0x02 } else { 0 }) as u8,
            icmp: opt_num(v, "icmp_type").map(|t| (t as u8, opt_num(v, "icmp_code").unwrap_or(0) as u8)),
        },
    })
}

/// A Hubble flow (the object under "flow" in `observe -o json`).
fn from_flow(f: &Value) -> anyhow::Result<Event> {
    const SHAPE: &str = "flow";
    let verdict = field(f, "verdict", SHAPE)?.as_str().unwrap_or_default();
    let et = field(f, "event_type", SHAPE)?;
    let (ty, sub) = (num(et, "type", "flow's event_type")?, opt_num(et, "sub_type").unwrap_or(0));
    let kind = match (ty as u8, verdict) {
        (abi::EVENT_DROP, _) if sub == 0 => {
            return Err(bad(
                "a kernel drop (event_type.sub_type 0) is the kernel's, not a decision of the datapath's maps: nothing for trace to explain",
            ));
        }
        (abi::EVENT_DROP, _) => Kind::Drop { reason: sub as u8 },
        (abi::EVENT_POLICY_VERDICT, "DROPPED") => Kind::PolicyDenied { match_kind: sub as u8 },
        _ => {
            return Err(bad(format!(
                "a flow of event type {ty} with verdict {verdict}: only drops and denied policy verdicts are explained"
            )));
        }
    };
    let direction = match field(f, "traffic_direction", SHAPE)?.as_str() {
        Some("EGRESS") => abi::DIR_EGRESS,
        Some("INGRESS") => abi::DIR_INGRESS,
        other => return Err(bad(format!("traffic_direction {other:?}: INGRESS or EGRESS"))),
    };
    let ipv = field(f, "IP", SHAPE)?;
    let (src, dst) = (ip(ipv, "source", "flow's IP")?, ip(ipv, "destination", "flow's IP")?);
    // The local side is the event's endpoint: the destination of ingress.
    let local = if direction == abi::DIR_INGRESS { "destination" } else { "source" };
    let local_ep = field(f, local, SHAPE)?;
    let identity = |side: &str| f.get(side).and_then(|e| opt_num(e, "identity")).unwrap_or(0) as u32;
    let (src_identity, dst_identity) = (identity("source"), identity("destination"));
    let l4 = f.get("l4").filter(|x| !x.is_null());
    let (proto, sport, dport, tcp_flags, icmp) = match l4 {
        Some(l) if l.get("TCP").is_some() => {
            let t = &l["TCP"];
            let fl = t.get("flags").cloned().unwrap_or(Value::Null);
            let on = |n: &str, bit: u8| if fl.get(n).and_then(Value::as_bool).unwrap_or(false) { bit } else { 0 };
            let flags = on("FIN", 0x01)
                | on("SYN", 0x02)
                | on("RST", 0x04)
                | on("PSH", 0x08)
                | on("ACK", 0x10)
                | on("URG", 0x20)
                | on("ECE", 0x40)
                | on("CWR", 0x80);
            (6u8, opt_num(t, "source_port"), opt_num(t, "destination_port"), flags, None)
        }
        Some(l) if l.get("UDP").is_some() => {
            (17, opt_num(&l["UDP"], "source_port"), opt_num(&l["UDP"], "destination_port"), 0, None)
        }
        Some(l) if l.get("SCTP").is_some() => {
            (132, opt_num(&l["SCTP"], "source_port"), opt_num(&l["SCTP"], "destination_port"), 0, None)
        }
        Some(l) if l.get("ICMPv4").is_some() || l.get("ICMPv6").is_some() => {
            let (p, x) = if l.get("ICMPv4").is_some() { (1, &l["ICMPv4"]) } else { (58, &l["ICMPv6"]) };
            let t = opt_num(x, "type").unwrap_or(if p == 1 { 8 } else { 128 }) as u8;
            (p, None, None, 0, Some((t, opt_num(x, "code").unwrap_or(0) as u8)))
        }
        _ => return Err(bad("the flow has no \"l4\" (TCP, UDP, SCTP, ICMPv4 or ICMPv6): it is needed to explain it")),
    };
    if matches!(proto, 6 | 17 | 132) && dport.is_none() {
        return Err(bad("the flow's l4 has no destination_port: it is needed to explain it"));
    }
    Ok(Event {
        kind,
        direction,
        endpoint_id: opt_num(local_ep, "ID").unwrap_or(0) as u32,
        ifindex: f.get("interface").and_then(|i| opt_num(i, "index")).unwrap_or(0) as u32,
        src_identity,
        dst_identity,
        packet: Packet::Tuple {
            src,
            dst,
            proto,
            sport: sport.unwrap_or(0) as u16,
            dport: dport.unwrap_or(0) as u16,
            tcp_flags,
            icmp,
        },
    })
}

/// The event one JSON line describes: a `monitor -j` line, a Hubble
/// response (`{"flow": …}`) or a bare flow.
pub fn parse_event(line: &str) -> anyhow::Result<Event> {
    let v: Value = serde_json::from_str(line.trim()).map_err(|e| {
        bad(format!("the input is not JSON ({e}): give one `monitor -j` line or one `observe -o json` line"))
    })?;
    if !v.is_object() {
        return Err(bad("the input is not a JSON object: give one `monitor -j` line or one `observe -o json` line"));
    }
    if let Some(f) = v.get("flow") {
        return from_flow(f);
    }
    if v.get("event_type").is_some() || v.get("traffic_direction").is_some() {
        return from_flow(&v);
    }
    if v.get("type").is_some() {
        return from_monitor(&v);
    }
    if v.get("lost_events").is_some() {
        return Err(bad("a lost-events record carries no packet: nothing to explain"));
    }
    Err(bad(
        "neither a `monitor -j` event (no \"type\") nor a Hubble flow (no \"flow\" or \"event_type\"): give one of those lines",
    ))
}

/// The text monitor and observe print under an event.
pub fn line(r: &Result<Explanation, String>) -> String {
    match r {
        Ok(e) => format!("    explain: {}", e.summary),
        Err(e) => format!("    explain: cannot explain: {e}"),
    }
}

/// The `explanation` object of a JSON line: the explanation, or why none.
pub fn json(r: &Result<Explanation, String>) -> Value {
    match r {
        Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
        Err(e) => serde_json::json!({ "error": e }),
    }
}

/// Explains an event against the local datapath, the error in words.
pub fn explain_here(bpffs: &Path, ev: &Event) -> Result<Explanation, String> {
    dpdbg::explain::explain(bpffs, ev).map_err(|e| e.to_string())
}

fn text(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "{k:<11} {v}");
    };
    let reason = |r: &dpdbg::trace::ReasonView| format!("{} ({})", r.text, r.code);
    let mut then = format!("{} {}", e.then.verdict, reason(&e.then.reason));
    if let Some(m) = e.then.policy_match {
        let _ = write!(then, ", policy match {m}");
    }
    row(&mut out, "Then:", then);
    let mut now = e.now.verdict.to_string();
    if let Some(r) = &e.now.reason {
        let _ = write!(now, " {}", reason(r));
    }
    if let (Some(p), Some(i)) = (e.now.program, &e.now.interface) {
        let _ = write!(now, " at {p} on {i}");
    }
    row(&mut out, "Today:", now);
    row(
        &mut out,
        "Rule:",
        match (&e.rule, e.policy_level) {
            (Some(r), _) => r.to_string(),
            (None, Some(_)) => "none matched: denied by default (enforcement is on)".into(),
            (None, None) => "policy not looked up".into(),
        },
    );
    if let Some(l) = e.policy_level {
        row(&mut out, "Level:", l.to_string());
    }
    if let Some(c) = e.conntrack {
        row(&mut out, "Conntrack:", c.to_string());
    }
    if let Some(id) = &e.identity {
        let src = match id.source {
            "endpoint" => format!("the endpoints map (endpoint {})", id.endpoint_id.unwrap_or(0)),
            "ipcache" => format!("ipcache prefix {}", id.cidr.as_deref().unwrap_or("?")),
            _ => "neither the endpoints map nor the ipcache: world".into(),
        };
        row(&mut out, "Peer:", format!("{} is identity {}, from {src}", id.ip, id.identity));
    }
    row(&mut out, "Changed:", if e.changed { "yes: the maps changed since the event".into() } else { "no".into() });
    for n in &e.notes {
        row(&mut out, "Note:", n.clone());
    }
    row(&mut out, "Why:", e.summary.clone());
    out
}

impl ExplainCmd {
    /// The event's line: the argument, or the first line of stdin.
    pub fn input(&self) -> anyhow::Result<String> {
        if let Some(e) = &self.event {
            return Ok(e.clone());
        }
        let mut s = String::new();
        std::io::stdin().lock().take(1 << 20).read_to_string(&mut s).context("reading the event from stdin")?;
        let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
        if line.is_empty() {
            return Err(bad(
                "no event on stdin: pipe one `monitor -j` line or one `observe -o json` line, or give it as an argument",
            ));
        }
        Ok(line)
    }

    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let ev = parse_event(&self.input()?)?;
        dpdbg::sys::require_privileges("explaining an event through the datapath")?;
        let e = dpdbg::explain::explain(bpffs, &ev).context("explain")?;
        p.print(&e, || text(&e))
    }
}

/// `--explain` for monitor: explains the drops and denied verdicts it
/// prints, at most `rate` a second, and counts what it explained and what
/// the limit skipped.
pub struct Explainer {
    bpffs: std::path::PathBuf,
    limiter: dpdbg::explain::Limiter,
    rate: u32,
    /// The count goes to stderr when stdout carries packets.
    to_stderr: bool,
}

/// What an event gets: nothing (not a drop or denial), an explanation or
/// why none, or the limit's word that it was skipped.
enum Outcome {
    Explained(Box<Result<Explanation, String>>),
    Skipped,
}

impl Explainer {
    pub fn new(bpffs: &Path, rate: u32, to_stderr: bool) -> Explainer {
        Explainer { bpffs: bpffs.to_path_buf(), limiter: dpdbg::explain::Limiter::new(rate), rate, to_stderr }
    }

    fn outcome(&mut self, ev: &dpdbg::abi::record::EventRef<'_>) -> Option<Outcome> {
        // The header decides: every other event costs one comparison.
        if !Event::wanted(&ev.hdr) {
            return None;
        }
        if !self.limiter.admit() {
            return Some(Outcome::Skipped);
        }
        let e = Event::from_record(ev)?;
        Some(Outcome::Explained(Box::new(explain_here(&self.bpffs, &e))))
    }

    /// The indented line under a printed event, when it is one to explain.
    pub fn text(&mut self, line: &mut String, ev: &dpdbg::abi::record::EventRef<'_>) {
        match self.outcome(ev) {
            None => {}
            Some(Outcome::Explained(r)) => {
                line.push_str(&self::line(&r));
                line.push('\n');
            }
            Some(Outcome::Skipped) => {
                line.push_str(&format!("    explain: skipped (at most {} a second, --explain-rate)\n", self.rate));
            }
        }
    }

    /// The `explanation` object added to the JSON object that ends `out`.
    pub fn json(&mut self, out: &mut Vec<u8>, ev: &dpdbg::abi::record::EventRef<'_>) {
        let v = match self.outcome(ev) {
            None => return,
            Some(Outcome::Explained(r)) => json(&r),
            Some(Outcome::Skipped) => serde_json::json!({ "skipped": format!("at most {} a second", self.rate) }),
        };
        if out.last() == Some(&b'}') {
            out.pop();
            out.extend_from_slice(b",\"explanation\":");
            let _ = serde_json::to_writer(&mut *out, &v);
            out.push(b'}');
        }
    }

    /// For the exit summary: how many were explained, how many skipped.
    pub fn summary_text(&self) -> String {
        format!(
            ", explained {}, {} not explained (at most {} a second)",
            self.limiter.explained, self.limiter.skipped, self.rate
        )
    }

    /// The counts as a JSON record, the stream's last line (stderr when
    /// stdout carries packets).
    pub fn summary_json(&self) {
        let v = serde_json::json!({ "explain_summary": {
            "explained": self.limiter.explained,
            "skipped": self.limiter.skipped,
            "rate_per_second": self.rate,
        }});
        if self.to_stderr {
            eprintln!("{v}");
        } else {
            println!("{v}");
        }
    }
}

/// `observe --explain`: flows carry no packet bytes and may come from a
/// node that is not this one, so the node that served them explains them,
/// through dpdbg.v1.Commands (`dpdbg explain FLOW` run there, a read
/// command), against its own maps; rate-limited as monitor's.
pub struct FlowExplainer {
    server: String,
    client: Option<dpdbg_api::events::commands_client::CommandsClient<dpdbg_api::tonic::transport::Channel>>,
    limiter: dpdbg::explain::Limiter,
    rate: u32,
}

impl FlowExplainer {
    pub fn new(server: &str, rate: u32) -> FlowExplainer {
        FlowExplainer { server: server.to_string(), client: None, limiter: dpdbg::explain::Limiter::new(rate), rate }
    }

    /// Whether a flow is a drop or a denied verdict of the datapath.
    fn wanted(f: &dpdbg_api::flow::Flow) -> bool {
        let dropped = f.verdict == dpdbg_api::flow::Verdict::Dropped as i32;
        match f.event_type.as_ref() {
            Some(e) if e.r#type == i32::from(abi::EVENT_DROP) => e.sub_type != 0,
            Some(e) if e.r#type == i32::from(abi::EVENT_POLICY_VERDICT) => dropped,
            _ => false,
        }
    }

    /// The node's explanation of one flow (its JSON), or why none.
    async fn ask(&mut self, line: String) -> Result<Value, String> {
        use dpdbg_api::events::RunRequest;
        use dpdbg_api::events::run_output::Item;
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let ch = dpdbg_api::client::connect(&self.server).await.map_err(|e| e.to_string())?;
                self.client.insert(dpdbg_api::events::commands_client::CommandsClient::new(ch))
            }
        };
        let req = RunRequest { args: vec!["explain".into(), line], output: "json".into() };
        let mut stream = client
            .run(req)
            .await
            .map_err(|s| format!("{}: {}", self.server, dpdbg_api::client::status_text(&s)))?
            .into_inner();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match stream.message().await {
                Ok(Some(m)) => match m.item {
                    Some(Item::Stdout(b)) => out.extend(b),
                    Some(Item::Stderr(b)) => err.extend(b),
                    Some(Item::ExitCode(0)) => {
                        return serde_json::from_slice(&out).map_err(|e| format!("the node's explanation: {e}"));
                    }
                    Some(Item::ExitCode(_)) => {
                        let e = String::from_utf8_lossy(&err);
                        return Err(e.trim().trim_start_matches("Error: ").to_string());
                    }
                    None => {}
                },
                Ok(None) => return Err(format!("{} ended the explanation without its exit status", self.server)),
                Err(s) => return Err(format!("{}: {}", self.server, dpdbg_api::client::status_text(&s))),
            }
        }
    }

    /// Prints a response as `printer` does, with the explanation of a drop
    /// or denial: in JSON an `explanation` object beside `flow`, else an
    /// indented line under it.
    pub async fn write(
        &mut self,
        printer: &mut crate::observe_print::Printer,
        json: bool,
        out: &mut impl std::io::Write,
        r: &dpdbg_api::observer::GetFlowsResponse,
    ) -> anyhow::Result<()> {
        use dpdbg_api::observer::get_flows_response::ResponseTypes;
        let explanation = match &r.response_types {
            Some(ResponseTypes::Flow(f)) if Self::wanted(f) => Some(if self.limiter.admit() {
                let line = dpdbg_api::json::response(r).to_string();
                self.ask(line).await.map_err(|e| e.to_string())
            } else {
                Err(format!("skipped (at most {} a second, --explain-rate)", self.rate))
            }),
            _ => None,
        };
        if json {
            let mut v = dpdbg_api::json::response(r);
            if let (Some(x), Value::Object(m)) = (explanation, &mut v) {
                m.insert(
                    "explanation".into(),
                    x.unwrap_or_else(|e| {
                        if e.starts_with("skipped") {
                            serde_json::json!({ "skipped": format!("at most {} a second", self.rate) })
                        } else {
                            serde_json::json!({ "error": e })
                        }
                    }),
                );
            }
            writeln!(out, "{v}")?;
            return Ok(());
        }
        printer.write(out, r)?;
        match explanation {
            Some(Ok(v)) => writeln!(out, "    explain: {}", v["summary"].as_str().unwrap_or_default())?,
            Some(Err(e)) if e.starts_with("skipped") => writeln!(out, "    explain: {e}")?,
            Some(Err(e)) => writeln!(out, "    explain: cannot explain: {e}")?,
            None => {}
        }
        Ok(())
    }

    /// The counts, on stderr at the end (stdout stays Hubble's stream).
    pub fn finish(&self) {
        eprintln!("{}", self.summary_text().trim_start_matches(", ").replacen('e', "E", 1));
    }

    fn summary_text(&self) -> String {
        format!(
            ", explained {}, {} not explained (at most {} a second)",
            self.limiter.explained, self.limiter.skipped, self.rate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_and_flows_give_the_same_event() {
        let m = r#"{"timestamp_ns":1,"type":"drop","verdict":"DROPPED","drop_reason":133,"drop_reason_desc":"Policy denied","ct_state":"new","direction":"ingress","ifindex":9,"endpoint_id":102,"src_identity":1001,"dst_identity":1002,"orig_len":54,"cap_len":54,"src_ip":"10.200.0.1","dst_ip":"10.200.0.2","ip_proto":6,"src_port":40000,"dst_port":7777,"tcp_flags":2}"#;
        let f = r#"{"flow":{"verdict":"DROPPED","IP":{"source":"10.200.0.1","destination":"10.200.0.2","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40000,"destination_port":7777,"flags":{"SYN":true}}},"source":{"ID":101,"identity":1001},"destination":{"ID":102,"identity":1002},"event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS","interface":{"index":9,"name":"x"}}}"#;
        assert_eq!(parse_event(m).unwrap(), parse_event(f).unwrap());
    }

    #[test]
    fn what_is_missing_is_named() {
        let err = |s: &str| {
            let e = parse_event(s).unwrap_err();
            assert_eq!(crate::output::exit_code(&e), 2, "{e}");
            e.to_string()
        };
        assert!(err("nope").contains("not JSON"));
        assert!(
            err(r#"{"type":"drop","drop_reason":133,"direction":"ingress","endpoint_id":1,"ip_proto":6}"#)
                .contains("no \"src_ip\"")
        );
        assert!(err(r#"{"type":"trace","verdict":"FORWARDED"}"#).contains("only drops and denied"));
        assert!(err(r#"{"type":"kernel-drop","verdict":"DROPPED"}"#).contains("kernel drop"));
        assert!(err(r#"{"flow":{"verdict":"DROPPED","event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"destination":{"ID":2}}}"#)
            .contains("no \"l4\""));
        assert!(
            err(r#"{"flow":{"verdict":"DROPPED","event_type":{"type":1,"sub_type":133},"IP":{}}}"#)
                .contains("no \"traffic_direction\"")
        );
        assert!(err(r#"{"hello":1}"#).contains("neither"));
    }
}
