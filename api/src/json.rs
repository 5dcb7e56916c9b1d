//! Flows as Hubble's CLI prints them in JSON: protobuf's JSON mapping with
//! the .proto field names (`node_name`, `source_port`), enums by name, and
//! zero values left out.

use serde_json::{Map, Value, json};

use crate::flow;
use crate::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};

fn rfc3339(t: &prost_types::Timestamp) -> String {
    dpdbg::flow::rfc3339(t.seconds as i128 * 1_000_000_000 + t.nanos.max(0) as i128, 9)
}

pub fn time_text(t: &prost_types::Timestamp) -> String {
    rfc3339(t)
}

/// Fields of a wrapper type (google.protobuf.BoolValue): present means set,
/// so `false` is printed, unlike a plain bool's default.
const WRAPPERS: &[&str] = &["is_reply", "cpu"];

fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    if WRAPPERS.contains(&k) && !v.is_null() {
        m.insert(k.to_string(), v);
        return;
    }
    let zero = match &v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_u64() == Some(0) || n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    if !zero {
        m.insert(k.to_string(), v);
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        put(&mut m, k, v);
    }
    Value::Object(m)
}

fn endpoint(e: &flow::Endpoint) -> Value {
    obj(vec![
        ("ID", json!(e.id)),
        ("identity", json!(e.identity)),
        ("namespace", json!(e.namespace)),
        ("labels", json!(e.labels)),
        ("pod_name", json!(e.pod_name)),
    ])
}

/// An enum by its name; the zero value, like every default, is left out.
fn name<E: TryFrom<i32>>(n: i32, f: impl Fn(E) -> &'static str) -> Value {
    if n == 0 {
        return Value::Null;
    }
    match E::try_from(n) {
        Ok(e) => json!(f(e)),
        Err(_) => json!(n),
    }
}

/// The flags set, by Hubble's names.
fn tcp_flags(x: &flow::TcpFlags) -> Value {
    obj(vec![
        ("FIN", json!(x.fin)),
        ("SYN", json!(x.syn)),
        ("RST", json!(x.rst)),
        ("PSH", json!(x.psh)),
        ("ACK", json!(x.ack)),
        ("URG", json!(x.urg)),
        ("ECE", json!(x.ece)),
        ("CWR", json!(x.cwr)),
        ("NS", json!(x.ns)),
    ])
}

pub fn flow(f: &flow::Flow) -> Value {
    let l4 = f.l4.as_ref().and_then(|l| l.protocol.as_ref()).map(|p| match p {
        flow::layer4::Protocol::Tcp(t) => {
            let flags = t.flags.as_ref().map(tcp_flags);
            json!({"TCP": obj(vec![("source_port", json!(t.source_port)), ("destination_port", json!(t.destination_port)), ("flags", flags.unwrap_or(Value::Null))])})
        }
        flow::layer4::Protocol::Udp(u) => {
            json!({"UDP": obj(vec![("source_port", json!(u.source_port)), ("destination_port", json!(u.destination_port))])})
        }
        flow::layer4::Protocol::Sctp(u) => {
            json!({"SCTP": obj(vec![("source_port", json!(u.source_port)), ("destination_port", json!(u.destination_port))])})
        }
        flow::layer4::Protocol::IcmPv4(i) => json!({"ICMPv4": obj(vec![("type", json!(i.r#type)), ("code", json!(i.code))])}),
        flow::layer4::Protocol::IcmPv6(i) => json!({"ICMPv6": obj(vec![("type", json!(i.r#type)), ("code", json!(i.code))])}),
    });
    #[allow(deprecated)]
    let (drop_reason, summary) = (f.drop_reason, f.summary.clone());
    obj(vec![
        ("time", f.time.as_ref().map_or(Value::Null, |t| json!(rfc3339(t)))),
        ("uuid", json!(f.uuid)),
        ("verdict", name(f.verdict, |v: flow::Verdict| v.as_str_name())),
        ("drop_reason", json!(drop_reason)),
        (
            "ethernet",
            f.ethernet
                .as_ref()
                .map_or(Value::Null, |e| obj(vec![("source", json!(e.source)), ("destination", json!(e.destination))])),
        ),
        (
            "IP",
            f.ip.as_ref().map_or(Value::Null, |ip| {
                obj(vec![
                    ("source", json!(ip.source)),
                    ("destination", json!(ip.destination)),
                    ("ipVersion", name(ip.ip_version, |v: flow::IpVersion| v.as_str_name())),
                ])
            }),
        ),
        ("l4", l4.unwrap_or(Value::Null)),
        ("source", f.source.as_ref().map_or(Value::Null, endpoint)),
        ("destination", f.destination.as_ref().map_or(Value::Null, endpoint)),
        ("Type", name(f.r#type, |v: flow::FlowType| v.as_str_name())),
        ("node_name", json!(f.node_name)),
        (
            "event_type",
            f.event_type
                .as_ref()
                .map_or(Value::Null, |e| obj(vec![("type", json!(e.r#type)), ("sub_type", json!(e.sub_type))])),
        ),
        ("traffic_direction", name(f.traffic_direction, |v: flow::TrafficDirection| v.as_str_name())),
        ("policy_match_type", json!(f.policy_match_type)),
        ("trace_observation_point", name(f.trace_observation_point, |v: flow::TraceObservationPoint| v.as_str_name())),
        ("drop_reason_desc", name(f.drop_reason_desc, |v: flow::DropReason| v.as_str_name())),
        ("is_reply", f.is_reply.map_or(Value::Null, |r| json!(r))),
        (
            "interface",
            f.interface.as_ref().map_or(Value::Null, |i| obj(vec![("index", json!(i.index)), ("name", json!(i.name))])),
        ),
        ("Summary", json!(summary)),
    ])
}

/// A GetFlowsResponse as `hubble observe -o json` prints it.
pub fn response(r: &GetFlowsResponse) -> Value {
    let mut m = Map::new();
    match &r.response_types {
        Some(ResponseTypes::Flow(f)) => {
            m.insert("flow".into(), flow(f));
        }
        Some(ResponseTypes::LostEvents(l)) => {
            m.insert(
                "lost_events".into(),
                obj(vec![
                    ("source", name(l.source, |v: flow::LostEventSource| v.as_str_name())),
                    ("num_events_lost", json!(l.num_events_lost)),
                    ("cpu", l.cpu.map_or(Value::Null, |c| json!(c))),
                ]),
            );
        }
        Some(ResponseTypes::NodeStatus(n)) => {
            m.insert(
                "node_status".into(),
                obj(vec![
                    ("state_change", name(n.state_change, |v: crate::relay::NodeState| v.as_str_name())),
                    ("node_names", json!(n.node_names)),
                    ("message", json!(n.message)),
                ]),
            );
        }
        None => {}
    }
    put(&mut m, "node_name", json!(r.node_name));
    if let Some(t) = &r.time {
        m.insert("time".into(), json!(rfc3339(t)));
    }
    Value::Object(m)
}

/// A flow filter as Hubble's `--print-raw-filters` shows one: the fields set, by their .proto names.
pub fn filter(f: &flow::FlowFilter) -> Value {
    let names = |v: &[i32], n: fn(i32) -> Value| Value::Array(v.iter().map(|x| n(*x)).collect());
    let verdict = |x: i32| name(x, |v: flow::Verdict| v.as_str_name());
    let direction = |x: i32| name(x, |v: flow::TrafficDirection| v.as_str_name());
    let version = |x: i32| name(x, |v: flow::IpVersion| v.as_str_name());
    obj(vec![
        ("source_ip", json!(f.source_ip)),
        ("destination_ip", json!(f.destination_ip)),
        ("traffic_direction", names(&f.traffic_direction, direction)),
        ("verdict", names(&f.verdict, verdict)),
        ("drop_reason_desc", names(&f.drop_reason_desc, |x| name(x, |v: flow::DropReason| v.as_str_name()))),
        (
            "interface",
            Value::Array(
                f.interface.iter().map(|i| obj(vec![("index", json!(i.index)), ("name", json!(i.name))])).collect(),
            ),
        ),
        (
            "event_type",
            Value::Array(
                f.event_type
                    .iter()
                    .map(|e| {
                        obj(vec![
                            ("type", json!(e.r#type)),
                            ("match_sub_type", json!(e.match_sub_type)),
                            ("sub_type", json!(e.sub_type)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("protocol", json!(f.protocol)),
        ("source_port", json!(f.source_port)),
        ("destination_port", json!(f.destination_port)),
        ("reply", json!(f.reply)),
        ("source_identity", json!(f.source_identity)),
        ("destination_identity", json!(f.destination_identity)),
        ("source_pod", json!(f.source_pod)),
        ("destination_pod", json!(f.destination_pod)),
        ("source_label", json!(f.source_label)),
        ("destination_label", json!(f.destination_label)),
        ("node_name", json!(f.node_name)),
        ("tcp_flags", Value::Array(f.tcp_flags.iter().map(tcp_flags).collect())),
        ("ip_version", names(&f.ip_version, version)),
    ])
}
