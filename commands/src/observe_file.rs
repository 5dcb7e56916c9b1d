//! `dpdbg observe --input-file FILE|-`: flows from a file of Hubble JSON
//! (what `hubble observe -o json` or `dpdbg observe -o json` wrote, one
//! GetFlowsResponse per line) instead of a server, through Hubble's filters
//! and printed in Hubble's formats, as `hubble observe --input-file` does.
//!
//! Each line is read back into the protobuf message it was printed from
//! (protobuf's JSON mapping with the .proto names, as `dpdbg_api::json`
//! writes it), and the request's allow and deny lists are matched against
//! the message, field for field as the server matches its own.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use dpdbg_api::flow::{self, FlowFilter};
use dpdbg_api::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};
use serde_json::Value;

/// Why a line is not a Hubble flow.
#[derive(Debug)]
struct Bad(String);

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|t| t.parse().ok()))).unwrap_or(0)
}

fn i(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(|x| x.as_i64().or_else(|| x.as_str().and_then(|t| t.parse().ok()))).unwrap_or(0)
}

/// An enum given by name (or number, as protobuf's JSON allows).
fn e(v: &Value, k: &str, by_name: impl Fn(&str) -> Option<i32>) -> Result<i32, Bad> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => Ok(n.as_i64().unwrap_or(0) as i32),
        Some(Value::String(name)) => by_name(name).ok_or_else(|| Bad(format!("{k}: unknown value {name:?}"))),
        Some(other) => Err(Bad(format!("{k}: {other} is not an enum value"))),
    }
}

fn time(v: &Value, k: &str) -> Result<Option<prost_types::Timestamp>, Bad> {
    let Some(t) = v.get(k).and_then(Value::as_str) else { return Ok(None) };
    let st = humantime::parse_rfc3339_weak(t).map_err(|e| Bad(format!("{k}: {t:?}: {e}")))?;
    let d = st.duration_since(std::time::UNIX_EPOCH).map_err(|e| Bad(format!("{k}: {e}")))?;
    Ok(Some(prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }))
}

fn endpoint(v: Option<&Value>) -> Option<flow::Endpoint> {
    let v = v?;
    Some(flow::Endpoint {
        id: u(v, "ID") as u32,
        identity: u(v, "identity") as u32,
        namespace: s(v, "namespace"),
        labels: v
            .get("labels")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        pod_name: s(v, "pod_name"),
    })
}

fn ports(v: &Value) -> (u32, u32) {
    (u(v, "source_port") as u32, u(v, "destination_port") as u32)
}

fn l4(v: Option<&Value>) -> Option<flow::Layer4> {
    let v = v?;
    use flow::layer4::Protocol;
    let p = if let Some(t) = v.get("TCP") {
        let f = t.get("flags").cloned().unwrap_or(Value::Null);
        let on = |n: &str| f.get(n).and_then(Value::as_bool).unwrap_or(false);
        let (source_port, destination_port) = ports(t);
        Protocol::Tcp(flow::Tcp {
            source_port,
            destination_port,
            flags: t.get("flags").map(|_| flow::TcpFlags {
                fin: on("FIN"),
                syn: on("SYN"),
                rst: on("RST"),
                psh: on("PSH"),
                ack: on("ACK"),
                urg: on("URG"),
                ece: on("ECE"),
                cwr: on("CWR"),
                ns: on("NS"),
            }),
        })
    } else if let Some(x) = v.get("UDP") {
        let (source_port, destination_port) = ports(x);
        Protocol::Udp(flow::Udp { source_port, destination_port })
    } else if let Some(x) = v.get("SCTP") {
        let (source_port, destination_port) = ports(x);
        Protocol::Sctp(flow::Sctp { source_port, destination_port })
    } else if let Some(x) = v.get("ICMPv4") {
        Protocol::IcmPv4(flow::IcmPv4 { r#type: u(x, "type") as u32, code: u(x, "code") as u32 })
    } else if let Some(x) = v.get("ICMPv6") {
        Protocol::IcmPv6(flow::IcmPv6 { r#type: u(x, "type") as u32, code: u(x, "code") as u32 })
    } else {
        return None;
    };
    Some(flow::Layer4 { protocol: Some(p) })
}

/// A flow from its JSON (the inverse of `dpdbg_api::json::flow`).
#[allow(deprecated)] // drop_reason and Summary: Hubble still prints them.
fn flow_of(v: &Value) -> Result<flow::Flow, Bad> {
    if !v.is_object() {
        return Err(Bad("\"flow\" is not an object".into()));
    }
    Ok(flow::Flow {
        time: time(v, "time")?,
        uuid: s(v, "uuid"),
        verdict: e(v, "verdict", |n| flow::Verdict::from_str_name(n).map(|x| x as i32))?,
        drop_reason: u(v, "drop_reason") as u32,
        ethernet: v
            .get("ethernet")
            .map(|x| flow::Ethernet { source: s(x, "source"), destination: s(x, "destination") }),
        ip: match v.get("IP") {
            Some(x) => Some(flow::Ip {
                source: s(x, "source"),
                destination: s(x, "destination"),
                ip_version: e(x, "ipVersion", |n| flow::IpVersion::from_str_name(n).map(|x| x as i32))?,
                encrypted: x.get("encrypted").and_then(Value::as_bool).unwrap_or(false),
            }),
            None => None,
        },
        l4: l4(v.get("l4")),
        source: endpoint(v.get("source")),
        destination: endpoint(v.get("destination")),
        r#type: e(v, "Type", |n| flow::FlowType::from_str_name(n).map(|x| x as i32))?,
        node_name: s(v, "node_name"),
        event_type: v
            .get("event_type")
            .map(|x| flow::CiliumEventType { r#type: i(x, "type") as i32, sub_type: i(x, "sub_type") as i32 }),
        traffic_direction: e(v, "traffic_direction", |n| flow::TrafficDirection::from_str_name(n).map(|x| x as i32))?,
        policy_match_type: u(v, "policy_match_type") as u32,
        trace_observation_point: e(v, "trace_observation_point", |n| {
            flow::TraceObservationPoint::from_str_name(n).map(|x| x as i32)
        })?,
        drop_reason_desc: e(v, "drop_reason_desc", |n| flow::DropReason::from_str_name(n).map(|x| x as i32))?,
        is_reply: v.get("is_reply").and_then(Value::as_bool),
        interface: v
            .get("interface")
            .map(|x| flow::NetworkInterface { index: u(x, "index") as u32, name: s(x, "name") }),
        summary: s(v, "Summary"),
    })
}

/// One line: a flow, lost events, or something else Hubble prints that
/// carries no flow (node status); anything else is not Hubble's JSON.
fn response_of(line: &str) -> Result<Option<GetFlowsResponse>, Bad> {
    let v: Value = serde_json::from_str(line).map_err(|e| Bad(format!("not JSON: {e}")))?;
    let Some(obj) = v.as_object() else { return Err(Bad("not a JSON object".into())) };
    let response_types = if let Some(f) = obj.get("flow") {
        Some(ResponseTypes::Flow(flow_of(f)?))
    } else if let Some(l) = obj.get("lost_events") {
        Some(ResponseTypes::LostEvents(flow::LostEvent {
            source: e(l, "source", |n| flow::LostEventSource::from_str_name(n).map(|x| x as i32))?,
            num_events_lost: u(l, "num_events_lost"),
            cpu: l
                .get("cpu")
                .map(|c| c.as_i64().or_else(|| c.get("value").and_then(Value::as_i64)).unwrap_or(0) as i32),
        }))
    } else if obj.contains_key("node_status") {
        return Ok(None);
    } else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).take(5).collect();
        return Err(Bad(format!("an object with neither \"flow\" nor \"lost_events\" (keys: {})", keys.join(", "))));
    };
    Ok(Some(GetFlowsResponse { response_types, node_name: s(&v, "node_name"), time: time(&v, "time")? }))
}

fn cidr_has(list: &[String], ip: Option<&str>) -> bool {
    let Some(ip) = ip.and_then(|i| i.parse::<IpAddr>().ok()) else { return false };
    list.iter().any(|c| c.parse::<dpdbg::flow::Cidr>().is_ok_and(|c| c.contains(ip)))
}

fn protocol_number(f: &flow::Flow) -> Option<u8> {
    use flow::layer4::Protocol;
    Some(match f.l4.as_ref()?.protocol.as_ref()? {
        Protocol::Tcp(_) => 6,
        Protocol::Udp(_) => 17,
        Protocol::IcmPv4(_) => 1,
        Protocol::IcmPv6(_) => 58,
        Protocol::Sctp(_) => 132,
    })
}

fn flow_ports(f: &flow::Flow) -> (Option<u32>, Option<u32>) {
    use flow::layer4::Protocol;
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Udp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Sctp(t)) => (Some(t.source_port), Some(t.destination_port)),
        _ => (None, None),
    }
}

fn any<T>(list: &[T], f: impl FnMut(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

/// Hubble's rule for one filter: every field set must match, any of its values.
fn matches(ff: &FlowFilter, f: &flow::Flow) -> bool {
    let ip = f.ip.as_ref();
    let (sport, dport) = flow_ports(f);
    let port_in = |list: &[String], p: Option<u32>| any(list, |x| x.parse::<u32>().ok().is_some_and(|x| Some(x) == p));
    let proto = protocol_number(f);
    let tcp = match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(flow::layer4::Protocol::Tcp(t)) => t.flags,
        _ => None,
    };
    let has = |want: &flow::TcpFlags| {
        let Some(g) = tcp else { return false };
        let pairs = [
            (want.fin, g.fin),
            (want.syn, g.syn),
            (want.rst, g.rst),
            (want.psh, g.psh),
            (want.ack, g.ack),
            (want.urg, g.urg),
            (want.ece, g.ece),
            (want.cwr, g.cwr),
            (want.ns, g.ns),
        ];
        pairs.iter().all(|(w, got)| !w || *got)
    };
    let et = f.event_type.as_ref();
    (ff.source_ip.is_empty() || cidr_has(&ff.source_ip, ip.map(|i| i.source.as_str())))
        && (ff.destination_ip.is_empty() || cidr_has(&ff.destination_ip, ip.map(|i| i.destination.as_str())))
        && port_in(&ff.source_port, sport)
        && port_in(&ff.destination_port, dport)
        && any(&ff.protocol, |p| {
            dpdbg::flow::parse_protocol(p).is_ok_and(|nums| proto.is_some_and(|n| nums.contains(&n)))
        })
        && any(&ff.verdict, |v| *v == f.verdict)
        && any(&ff.event_type, |t| {
            et.is_some_and(|e| e.r#type == t.r#type && (!t.match_sub_type || e.sub_type == t.sub_type))
        })
        && any(&ff.source_identity, |x| f.source.as_ref().is_some_and(|s| s.identity == *x))
        && any(&ff.destination_identity, |x| f.destination.as_ref().is_some_and(|s| s.identity == *x))
        && any(&ff.traffic_direction, |d| *d == f.traffic_direction)
        && any(&ff.tcp_flags, has)
        && any(&ff.drop_reason_desc, |d| *d == f.drop_reason_desc)
        && any(&ff.interface, |want| {
            f.interface.as_ref().is_some_and(|i| {
                (want.name.is_empty() || want.name == i.name) && (want.index == 0 || want.index == i.index)
            })
        })
        && any(&ff.ip_version, |v| ip.is_some_and(|i| i.ip_version == *v))
        && side(&ff.source_pod, &ff.source_label, f.source.as_ref())
        && side(&ff.destination_pod, &ff.destination_label, f.destination.as_ref())
}

/// A side's pod and label filters, on the names the flow carries (Hubble's
/// rules, as the server applies them: pod prefixes, `NAMESPACE/`, label
/// selectors). A selector the server would refuse matches nothing here;
/// `observe` checked the flags' selectors before reading.
fn side(pods: &[String], selectors: &[String], e: Option<&flow::Endpoint>) -> bool {
    if pods.is_empty() && selectors.is_empty() {
        return true;
    }
    let Some(e) = e else { return false };
    dpdbg_api::filter::endpoint_selected(pods, selectors, &e.namespace, &e.pod_name, &e.labels).unwrap_or(false)
}

fn before(a: &prost_types::Timestamp, b: &prost_types::Timestamp) -> bool {
    (a.seconds, a.nanos) < (b.seconds, b.nanos)
}

/// Whether a response passes the request: its window and its lists.
fn admits(req: &GetFlowsRequest, r: &GetFlowsResponse) -> bool {
    let Some(ResponseTypes::Flow(f)) = &r.response_types else { return true };
    if let Some(t) = f.time.as_ref().or(r.time.as_ref())
        && (req.since.as_ref().is_some_and(|s| before(t, s)) || req.until.as_ref().is_some_and(|u| before(u, t)))
    {
        return false;
    }
    (req.whitelist.is_empty() || req.whitelist.iter().any(|w| matches(w, f)))
        && !req.blacklist.iter().any(|b| matches(b, f))
}

/// Reads `path` ("-": stdin), prints what passes. `--first N` stops after
/// N flows, `--last N` prints the last N, neither prints all. A line that is
/// not Hubble's JSON ends it with an error naming its line and byte offset,
/// after what came before it was printed.
pub fn run(path: &Path, req: &GetFlowsRequest, printer: &mut crate::observe_print::Printer) -> anyhow::Result<()> {
    let shown = path.display().to_string();
    let mut input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {shown}"))?))
    };
    let mut out = std::io::stdout().lock();
    let limit = (req.number > 0).then_some(req.number as usize);
    let keep_last = limit.is_some() && !req.first;
    let mut last: VecDeque<GetFlowsResponse> = VecDeque::new();
    let (mut offset, mut lineno, mut flows) = (0u64, 0u64, 0usize);
    let mut buf = Vec::new();
    let mut failed = None;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).with_context(|| format!("reading {shown} at byte {offset}"))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let at = offset;
        offset += n as u64;
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        let r = match response_of(line.trim()) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(Bad(why)) => {
                let cut = if buf.last() != Some(&b'\n') { " (the file ends inside it: truncated?)" } else { "" };
                failed = Some(format!("{shown}: line {lineno} at byte {at} is not Hubble's JSON{cut}: {why}"));
                break;
            }
        };
        if !admits(req, &r) {
            continue;
        }
        let is_flow = matches!(r.response_types, Some(ResponseTypes::Flow(_)));
        if keep_last {
            last.push_back(r);
            if limit.is_some_and(|l| {
                last.iter().filter(|r| matches!(r.response_types, Some(ResponseTypes::Flow(_)))).count() > l
            }) {
                // Drop the oldest flow (and any lost-events lines before it).
                while let Some(front) = last.pop_front() {
                    if matches!(front.response_types, Some(ResponseTypes::Flow(_))) {
                        break;
                    }
                }
            }
            continue;
        }
        printer.write(&mut out, &r)?;
        flows += is_flow as usize;
        if limit.is_some_and(|l| flows >= l) {
            break;
        }
    }
    for r in &last {
        printer.write(&mut out, r)?;
    }
    printer.finish(&mut out)?;
    out.flush()?;
    if let Some(why) = failed {
        anyhow::bail!(why);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `dpdbg observe -o json` prints reads back into the same message,
    /// so printing it again gives the same line.
    #[test]
    fn hubble_json_reads_back_into_the_flow() {
        let line = r#"{"flow":{"time":"2026-12-02T08:00:00.123456789Z","verdict":"DROPPED","drop_reason":133,"ethernet":{"source":"02:dd:01:01:00:01","destination":"02:dd:01:01:00:02"},"IP":{"source":"198.18.1.1","destination":"198.18.1.2","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40000,"destination_port":80,"flags":{"SYN":true}}},"source":{"ID":101,"identity":1001},"destination":{"identity":2,"labels":["reserved:world"]},"Type":"L3_L4","node_name":"n1","event_type":{"type":1,"sub_type":133},"traffic_direction":"EGRESS","drop_reason_desc":"POLICY_DENIED","is_reply":false,"interface":{"index":7,"name":"dpl1e1"},"Summary":"xx drop"},"node_name":"n1","time":"2026-12-02T08:00:00.123456789Z"}"#;
        let r = response_of(line).unwrap().unwrap();
        let again = dpdbg_api::json::response(&r);
        assert_eq!(again, serde_json::from_str::<Value>(line).unwrap());
        let Some(ResponseTypes::Flow(f)) = &r.response_types else { panic!() };
        let req = |w: FlowFilter| GetFlowsRequest { whitelist: vec![w], ..Default::default() };
        let yes = [
            FlowFilter { source_ip: vec!["198.18.0.0/16".into()], ..Default::default() },
            FlowFilter { destination_port: vec!["80".into()], ..Default::default() },
            FlowFilter { protocol: vec!["tcp".into()], ..Default::default() },
            FlowFilter { verdict: vec![flow::Verdict::Dropped as i32], ..Default::default() },
            FlowFilter { drop_reason_desc: vec![133], ..Default::default() },
            FlowFilter {
                interface: vec![flow::NetworkInterface { index: 0, name: "dpl1e1".into() }],
                ..Default::default()
            },
            FlowFilter { tcp_flags: vec![flow::TcpFlags { syn: true, ..Default::default() }], ..Default::default() },
            FlowFilter { source_identity: vec![1001], ..Default::default() },
        ];
        for w in yes {
            assert!(matches(&w, f), "{w:?}");
            assert!(admits(&req(w), &r));
        }
        let no = [
            FlowFilter {
                destination_ip: vec!["198.18.0.0/16".into()],
                source_ip: vec!["10.0.0.0/8".into()],
                ..Default::default()
            },
            FlowFilter { protocol: vec!["udp".into()], ..Default::default() },
            FlowFilter { tcp_flags: vec![flow::TcpFlags { ack: true, ..Default::default() }], ..Default::default() },
            FlowFilter { ip_version: vec![flow::IpVersion::IPv6 as i32], ..Default::default() },
        ];
        for w in no {
            assert!(!matches(&w, f), "{w:?}");
        }
        assert!(response_of(r#"{"node_status":{}}"#).unwrap().is_none());
        assert!(response_of(r#"{"foo":1}"#).is_err());
        assert!(response_of(r#"{"flow":{"verdict":"NOPE"}}"#).is_err());
        assert!(response_of("{\"flow\":").is_err());
    }
}
