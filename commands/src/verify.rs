//! `dpdbg verify MATRIX.yaml`: which pairs may talk, checked without traffic.
//!
//! Each row of the matrix is one `dpdbg trace`: a packet run through the
//! datapath's dry-run pair (BPF_PROG_TEST_RUN), so the answer comes from the
//! code live packets run, and no packet is sent and no map changed. The
//! matrix is read whole and every row resolved before the first trace, so a
//! malformed file (exit 2) never half-runs.
//!
//! The file is YAML: a list of rows, or a mapping with `rows:` and optional
//! `defaults:` (values every row takes unless it gives its own):
//!
//! ```yaml
//! defaults: {proto: tcp}
//! rows:
//!   - {from: lab/ep1, to: lab/ep2, port: 8080, expect: allow}
//!   - {from: lab/ep1, to: lab/ep2, proto: udp, port: 53, expect: deny}
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use dpdbg::maps::{Maps, Names};
use dpdbg::trace::{self, Peer, Proto, Report};
use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde::{Deserialize, Serialize};

use crate::output::{Exit, Format, UsageError};

/// The source port of every row's packet: trace's default, the first of the
/// dynamic range.
const SPORT: u16 = 49152;

/// The longest --matrix-text `--server` sends: one argument of the server's
/// child process, which Linux caps at 32 pages (MAX_ARG_STRLEN).
const MAX_INLINE: usize = 128 * 1024 - 1;

/// The fields a row may have; `name` is the only one `defaults` may not give.
const ROW_FIELDS: &[&str] = &["name", "from", "to", "proto", "port", "expect"];

const COL_LINE: &str = "LINE";
const COL_FROM: &str = "FROM";
const COL_TO: &str = "TO";
const COL_PROTO: &str = "PROTO";
const COL_PORT: &str = "PORT";
const COL_EXPECT: &str = "EXPECT";
const COL_GOT: &str = "GOT";
const COL_DECIDED: &str = "DECIDED BY";
const COL_RESULT: &str = "RESULT";

#[derive(Debug, Args)]
pub struct VerifyCmd {
    /// The matrix: a YAML file of rows {from, to, proto, port, expect}, or -
    /// for standard input.
    #[arg(value_name = "MATRIX", required_unless_present = "matrix_text", conflicts_with = "matrix_text")]
    matrix: Option<PathBuf>,
    /// The matrix itself, as YAML text, in place of a file (what `--server`
    /// sends the node: the file is read where the command was typed).
    #[arg(long, value_name = "YAML")]
    matrix_text: Option<String>,
    /// The name reports and errors give the --matrix-text matrix (default:
    /// `matrix`).
    #[arg(long, value_name = "NAME", requires = "matrix_text")]
    matrix_name: Option<String>,
}

/// What a row expects of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Forwarded by every hook it meets.
    Allow,
    /// Dropped by one of them, for any reason.
    Deny,
}

impl Expect {
    pub fn parse(s: &str) -> Option<Expect> {
        match s {
            "allow" => Some(Expect::Allow),
            "deny" => Some(Expect::Deny),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }

    /// What trace's verdict means for a row.
    pub fn of_verdict(verdict: &str) -> Expect {
        if verdict == "FORWARDED" { Expect::Allow } else { Expect::Deny }
    }
}

/// One row as the file gives it, checked for shape but not yet resolved
/// against the node's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line the row starts on.
    pub line: usize,
    pub name: Option<String>,
    pub from: Field<String>,
    pub to: Field<String>,
    /// As written (lower case); tcp when neither the row nor defaults give one.
    pub proto: String,
    pub port: Option<u16>,
    pub expect: Expect,
}

/// A value with the line it was written on, for errors about it found later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<T> {
    pub value: T,
    pub line: usize,
}

/// A problem with the matrix: where, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}, field {field}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

fn problem(line: usize, field: Option<&str>, message: impl Into<String>) -> Problem {
    Problem { line, field: field.map(str::to_string), message: message.into() }
}

/// The matrix's problems as one usage error (exit 2), each on its own line.
fn refused(source: &str, problems: &[Problem]) -> anyhow::Error {
    let text = match problems {
        [one] => format!("{source}: {one}"),
        many => {
            let mut s = format!("{source}: {} problems", many.len());
            for p in many {
                let _ = write!(s, "\n  {p}");
            }
            s
        }
    };
    anyhow::Error::new(UsageError(text))
}

fn line_of(n: &MarkedYamlOwned) -> usize {
    n.span.start.line()
}

/// What a scalar node says, as text, or why it is not one.
fn scalar(n: &MarkedYamlOwned) -> Result<String, &'static str> {
    match &n.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Ok(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Ok(i.to_string()),
        YamlDataOwned::Representation(s, _, _) => Ok(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Null) => Err("empty"),
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => Err("a boolean"),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(_)) => Err("a floating-point number"),
        YamlDataOwned::Sequence(_) => Err("a list"),
        YamlDataOwned::Mapping(_) => Err("a mapping"),
        YamlDataOwned::Tagged(..) => Err("a tagged value"),
        YamlDataOwned::Alias(_) => Err("an alias (anchors and aliases are not supported here)"),
        YamlDataOwned::BadValue => Err("not a value"),
    }
}

/// The keys and values of a mapping node, keys as text; a key that is not
/// text is a problem.
fn entries<'a>(
    m: &'a saphyr::AnnotatedMappingOwned<MarkedYamlOwned>,
    problems: &mut Vec<Problem>,
) -> Vec<(String, &'a MarkedYamlOwned, usize)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match &k.data {
            YamlDataOwned::Value(ScalarOwned::String(s)) | YamlDataOwned::Representation(s, _, _) => {
                out.push((s.clone(), v, line_of(k)))
            }
            _ => problems.push(problem(line_of(k), None, "a key that is not a field name")),
        }
    }
    out
}

/// A row's fields as written: field -> (value node, the key's line).
type Fields<'a> = Vec<(String, &'a MarkedYamlOwned, usize)>;

fn row_fields<'a>(node: &'a MarkedYamlOwned, what: &str, problems: &mut Vec<Problem>) -> Option<Fields<'a>> {
    let YamlDataOwned::Mapping(m) = &node.data else {
        problems.push(problem(
            line_of(node),
            None,
            format!("{what} is {}, not a mapping of from, to, proto, port, expect", kind(node)),
        ));
        return None;
    };
    let mut fields = entries(m, problems);
    fields.retain(|(k, _, line)| {
        let known = ROW_FIELDS.contains(&k.as_str()) && !(what == "defaults" && k == "name");
        if !known {
            let allowed = if what == "defaults" {
                "from, to, proto, port, expect"
            } else {
                "from, to, proto, port, expect, name"
            };
            problems.push(problem(*line, Some(k), format!("not a field of {what}: use {allowed}")));
        }
        known
    });
    Some(fields)
}

fn kind(n: &MarkedYamlOwned) -> &'static str {
    match &n.data {
        YamlDataOwned::Mapping(_) => "a mapping",
        YamlDataOwned::Sequence(_) => "a list",
        _ => scalar(n).map_or_else(|what| what, |_| "a single value"),
    }
}

/// Reads a matrix: its rows in order, or every problem found, each with its
/// line and field.
pub fn parse(text: &str) -> Result<Vec<Row>, Vec<Problem>> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| {
        vec![problem(
            e.marker().line().max(1),
            None,
            format!("not YAML: {} (column {})", e.info(), e.marker().col() + 1),
        )]
    })?;
    let doc = match docs.as_slice() {
        [] => return Err(vec![problem(1, None, "empty: give a list of rows {from, to, proto, port, expect}")]),
        [doc] => doc,
        [_, second, ..] => {
            return Err(vec![problem(line_of(second), None, "a second YAML document: a matrix is one document")]);
        }
    };
    let mut problems = Vec::new();
    let (rows, defaults): (&MarkedYamlOwned, Option<Fields>) = match &doc.data {
        YamlDataOwned::Sequence(_) => (doc, None),
        YamlDataOwned::Mapping(m) => {
            let mut rows = None;
            let mut defaults = None;
            for (k, v, line) in entries(m, &mut problems) {
                match k.as_str() {
                    "rows" => rows = Some(v),
                    "defaults" => defaults = row_fields(v, "defaults", &mut problems),
                    _ => problems.push(problem(line, Some(&k), "not a key of the matrix: use rows and defaults")),
                }
            }
            match rows {
                Some(r) => (r, defaults),
                None => {
                    problems.push(problem(line_of(doc), Some("rows"), "missing: the list of rows to check"));
                    return Err(problems);
                }
            }
        }
        _ => {
            return Err(vec![problem(
                line_of(doc),
                None,
                format!("the matrix is {}: give a list of rows, or a mapping with rows (and defaults)", kind(doc)),
            )]);
        }
    };
    let YamlDataOwned::Sequence(items) = &rows.data else {
        problems.push(problem(line_of(rows), Some("rows"), format!("{}, not a list of rows", kind(rows))));
        return Err(problems);
    };
    if items.is_empty() {
        problems.push(problem(line_of(rows), Some("rows"), "no rows: a matrix checks at least one"));
    }
    let defaults = defaults.unwrap_or_default();
    let mut out = Vec::new();
    for item in items {
        let Some(own) = row_fields(item, "a row", &mut problems) else { continue };
        if let Some(r) = row(item, &own, &defaults, &mut problems) {
            out.push(r);
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// One row from its own fields and the defaults.
fn row(item: &MarkedYamlOwned, own: &Fields, defaults: &Fields, problems: &mut Vec<Problem>) -> Option<Row> {
    let line = line_of(item);
    let before = problems.len();
    // The row's own value, else the default; the bool says which.
    let get = |k: &str| {
        own.iter()
            .find(|(f, _, _)| f == k)
            .map(|(_, v, _)| (*v, true))
            .or_else(|| defaults.iter().find(|(f, _, _)| f == k).map(|(_, v, _)| (*v, false)))
    };
    let text = |k: &str, problems: &mut Vec<Problem>| -> Option<Field<String>> {
        let (v, _) = get(k)?;
        match scalar(v) {
            Ok(s) if !s.trim().is_empty() => Some(Field { value: s.trim().to_string(), line: line_of(v) }),
            Ok(_) => {
                problems.push(problem(line_of(v), Some(k), "empty"));
                None
            }
            Err(what) => {
                problems.push(problem(line_of(v), Some(k), format!("{what}, not a single value")));
                None
            }
        }
    };
    let name = text("name", problems);
    let required = |k: &str, how: &str, problems: &mut Vec<Problem>| {
        let v = text(k, problems);
        if v.is_none() && get(k).is_none() {
            problems.push(problem(line, Some(k), format!("missing: {how}")));
        }
        v
    };
    let from =
        required("from", "the sender (an endpoint id, NAMESPACE/POD, an address or a lab endpoint's name)", problems);
    let to =
        required("to", "the receiver (an endpoint id, NAMESPACE/POD, an address or a lab endpoint's name)", problems);
    let expect = required("expect", "allow or deny", problems).and_then(|e| {
        let parsed = Expect::parse(&e.value);
        if parsed.is_none() {
            problems.push(problem(
                e.line,
                Some("expect"),
                format!("{}: use allow or deny", crate::output::quote(&e.value)),
            ));
        }
        parsed
    });
    let proto_field = text("proto", problems);
    let proto_text = proto_field.as_ref().map_or_else(|| "tcp".to_string(), |p| p.value.to_ascii_lowercase());
    let proto = match proto_text.parse::<Proto>() {
        Ok(p) => Some(p),
        Err(_) => {
            let l = proto_field.as_ref().map_or(line, |p| p.line);
            problems.push(problem(
                l,
                Some("proto"),
                format!(
                    "{}: use tcp, udp, icmp, icmpv6 or an IP protocol number 0-255",
                    crate::output::quote(&proto_text)
                ),
            ));
            None
        }
    };
    let port = match get("port") {
        None => None,
        Some((v, mine)) => {
            let n = match &v.data {
                YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(*i),
                _ => scalar(v).ok().and_then(|s| s.trim().parse::<i64>().ok()),
            };
            match (n, proto) {
                // A default port means nothing to a row without ports; the
                // row's own is a mistake there.
                (_, Some(Proto::Icmp | Proto::Other(_))) if !mine => None,
                (_, Some(Proto::Icmp | Proto::Other(_))) => {
                    problems.push(problem(
                        line_of(v),
                        Some("port"),
                        format!("{proto_text} has no ports: drop the port, or use tcp or udp"),
                    ));
                    None
                }
                (Some(n @ 1..=65535), _) => Some(n as u16),
                (Some(n), _) => {
                    problems.push(problem(line_of(v), Some("port"), format!("{n} is not a port: use 1-65535")));
                    None
                }
                (None, _) => {
                    let what = scalar(v).map_or_else(|w| w.to_string(), |s| crate::output::quote(&s));
                    problems.push(problem(line_of(v), Some("port"), format!("{what} is not a port: use 1-65535")));
                    None
                }
            }
        }
    };
    if matches!(proto, Some(Proto::Tcp | Proto::Udp)) && get("port").is_none() {
        problems.push(problem(
            line,
            Some("port"),
            format!("missing: {proto_text} needs a destination port (policy rules are per port)"),
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(Row { line, name: name.map(|n| n.value), from: from?, to: to?, proto: proto_text, port, expect: expect? })
}

/// One row's outcome: what was asked, what the datapath would do, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RowResult {
    pub line: usize,
    /// The row's name, or one made of its fields.
    pub name: String,
    pub from: String,
    pub to: String,
    pub proto: String,
    pub port: Option<u16>,
    pub expect: Expect,
    /// trace's verdict: FORWARDED or DROPPED.
    pub verdict: String,
    /// The verdict in the matrix's words.
    pub got: Expect,
    /// Whether the row holds.
    pub ok: bool,
    pub drop_reason: Option<ReasonDoc>,
    /// The hook and rule that decided, short (the table's DECIDED BY).
    pub decided_by: String,
    /// trace's explanation in one paragraph: each hook's policy decision,
    /// conntrack state and the peer's identity with where it came from.
    pub explanation: String,
    /// The packet trace ran, as monitor prints it.
    pub packet: String,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReasonDoc {
    pub code: u8,
    pub text: String,
}

/// The whole check: `-o json` prints this.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VerifyReport {
    /// The matrix's file name (`-` for standard input).
    pub source: String,
    /// The node whose datapath answered.
    pub node: String,
    /// When the check ran (UTC, RFC 3339).
    pub timestamp: String,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub ok: bool,
    pub seconds: f64,
    pub rows: Vec<RowResult>,
}

fn who(id: Option<u32>, names: &Names) -> String {
    match id {
        Some(id) => match names.pods.get(&id) {
            Some(p) => format!("{p} (endpoint {id})"),
            None => format!("endpoint {id}"),
        },
        None => "no endpoint".into(),
    }
}

fn port_text(proto: u8, dport: u16) -> String {
    let name = dpdbg::flow::proto_name(proto).map_or_else(|| format!("protocol {proto}"), str::to_string);
    match (proto, dport) {
        (0, _) => "any port".into(),
        (_, 0) => name,
        (_, d) => format!("{name}/{d}"),
    }
}

/// The short and the long account of a trace, from the hook that decided:
/// the one that dropped the packet, else every hook that let it through.
pub fn explain(r: &Report, names: &Names) -> (String, String) {
    let mut short = Vec::new();
    let mut long = Vec::new();
    for h in &r.hops {
        let whose = who(h.endpoint.as_ref().and_then(|e| e.endpoint_id), names);
        let mut parts: Vec<String> = Vec::new();
        let state = h.conntrack.state;
        let (decision, brief) = match (&h.policy, &h.endpoint) {
            (Some(p), _) => {
                let rule = p.deciding.and_then(|lvl| p.levels.iter().find(|l| l.level == lvl));
                let s = match (p.deciding, rule) {
                    (Some(lvl), Some(l)) => {
                        let peer = if l.identity == 0 { "any peer".into() } else { format!("identity {}", l.identity) };
                        format!("{} by the {lvl} rule ({peer}, {})", p.action, port_text(l.proto, l.dport))
                    }
                    _ => "no rule matched: denied by default (enforcement is on)".into(),
                };
                let s = if p.deny_overrode_allow { format!("{s}; a deny overrode a matching allow") } else { s };
                let b = match p.deciding {
                    Some(lvl) => format!("{} {lvl} {}", h.direction, p.action),
                    None => format!("{} default deny", h.direction),
                };
                (format!("policy: {s}"), b)
            }
            _ if matches!(state, Some("established" | "reply" | "related")) => (
                "policy: not looked up (a tracked connection)".into(),
                format!("{} conntrack {}", h.direction, state.unwrap_or("")),
            ),
            (None, Some(e)) if e.lookup == "found" && !e.enforced => {
                (format!("policy: not enforced in {}", h.direction), format!("{} not enforced", h.direction))
            }
            _ => ("policy: not looked up".into(), format!("{} no policy", h.direction)),
        };
        parts.push(decision);
        parts.push(format!("conntrack: {}", state.unwrap_or("not tracked")));
        if let Some(p) = &h.peer {
            let from = match p.source {
                "endpoint" => format!("the endpoints map (endpoint {})", p.endpoint_id.unwrap_or(0)),
                "ipcache" => format!("ipcache prefix {}", p.cidr.as_deref().unwrap_or("?")),
                _ => "world (neither the endpoints map nor the ipcache)".into(),
            };
            let name = p.name.map(|n| format!(" ({n})")).unwrap_or_default();
            parts.push(format!("peer {} is identity {}{name} from {from}", p.ip, p.identity));
        }
        let verdict = if h.verdict == "DROPPED" {
            format!("DROPPED ({}, reason {})", h.reason.text, h.reason.code)
        } else {
            "FORWARDED".into()
        };
        long.push(format!("{} of {whose}: {verdict}; {}", h.direction, parts.join("; ")));
        if h.verdict == "DROPPED" {
            // The hook that dropped decided alone.
            let reason_is_policy = matches!(h.reason.code, 133 | 181);
            short = vec![if reason_is_policy { brief } else { format!("{} {}", h.direction, h.reason.text) }];
            break;
        }
        short.push(brief);
    }
    for n in &r.notes {
        long.push(format!("note: {n}"));
    }
    (short.join(", "), long.join(". "))
}

/// What a row asks trace, or the problems with its endpoints on this node.
fn request(
    row: &Row,
    names: &dyn Fn() -> Names,
    eps: &[dpdbg::maps::Endpoint],
) -> Result<trace::Request, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut side = |f: &Field<String>, field: &str| -> Option<Peer> {
        let flag = format!("line {}, field {field}:", f.line);
        match crate::trace::peer(&f.value, &flag, names) {
            Ok(Peer::Endpoint(id)) if !eps.iter().any(|e| e.endpoint_id == id) => {
                problems.push(problem(
                    f.line,
                    Some(field),
                    format!("no endpoint {id} on this node (see `dpdbg bpf endpoint list`)"),
                ));
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                // peer() names the place as it was told to: keep its words after that.
                let text = e.to_string();
                let text = text.strip_prefix(&flag).map(str::trim_start).unwrap_or(&text).to_string();
                problems.push(problem(f.line, Some(field), text));
                None
            }
        }
    };
    let from = side(&row.from, "from");
    let to = side(&row.to, "to");
    let (Some(from), Some(to)) = (from, to) else { return Err(problems) };
    let ip = |p: &Peer| match p {
        Peer::Ip(ip) => Some(*ip),
        Peer::Endpoint(_) => None,
    };
    // An address picks the family, as icmpv6 does; an endpoint then uses
    // its address of it.
    let v6_proto = matches!(row.proto.as_str(), "icmpv6" | "58");
    let family = match (ip(&from), ip(&to)) {
        (Some(a), Some(b)) if a.is_ipv4() != b.is_ipv4() => {
            return Err(vec![problem(
                row.to.line,
                Some("to"),
                format!("{b} and from's {a} are of different IP families"),
            )]);
        }
        (Some(a), _) | (None, Some(a)) if a.is_ipv4() && v6_proto => {
            return Err(vec![problem(
                row.line,
                Some("proto"),
                format!("{} is IPv6's, and {a} is an IPv4 address: use icmp", row.proto),
            )]);
        }
        (Some(a), _) | (None, Some(a)) => Some(if a.is_ipv4() { 4 } else { 6 }),
        (None, None) if v6_proto => Some(6),
        (None, None) => None,
    };
    let local = |p: &Peer| match p {
        Peer::Endpoint(_) => true,
        Peer::Ip(ip) => eps.iter().any(|e| e.ip == *ip),
    };
    if !local(&from) && !local(&to) {
        return Err(vec![problem(
            row.line,
            Some("from and to"),
            format!(
                "neither {} nor {} is an endpoint on this node: the datapath only sees packets of its endpoints",
                row.from.value, row.to.value
            ),
        )]);
    }
    for (p, f, field) in [(&from, &row.from, "from"), (&to, &row.to, "to")] {
        if let (Peer::Endpoint(id), Some(fam)) = (p, family) {
            let has = eps.iter().any(|e| e.endpoint_id == *id && e.ip.is_ipv4() == (fam == 4));
            if !has {
                problems.push(problem(
                    f.line,
                    Some(field),
                    format!("endpoint {id} has no IPv{fam} address, and the other side is IPv{fam}"),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let proto: Proto =
        row.proto.parse().map_err(|e: dpdbg::Error| vec![problem(row.line, Some("proto"), e.to_string())])?;
    Ok(trace::Request {
        from,
        to,
        proto,
        sport: SPORT,
        dport: row.port.unwrap_or(0),
        // A connection's first packet: what a policy decides on.
        tcp_flags: if proto == Proto::Tcp { 0x02 } else { 0 },
        family,
        raw: None,
    })
}

fn default_name(row: &Row) -> String {
    let port = row.port.map(|p| format!("/{p}")).unwrap_or_default();
    format!("{} -> {} {}{port} {}", row.from.value, row.to.value, row.proto, row.expect.word())
}

/// The node's name, for the report and JUnit's hostname.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Checks every row on this node's datapath.
pub fn check(bpffs: &Path, source: &str, rows: &[Row]) -> anyhow::Result<VerifyReport> {
    let started = Instant::now();
    let timestamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // Before the endpoints are read: the errors that say what to run.
    dpdbg::sys::require_privileges("tracing packets through the datapath")?;
    dpdbg::sys::require_bpffs(bpffs)?;
    dpdbg::datapath::Pins::new(bpffs).require_loaded()?;
    let maps = Maps::open(bpffs).context("opening the datapath's maps")?;
    let eps = maps.endpoint_list().context("reading the endpoints")?;
    let names = maps.names().unwrap_or_default();
    let read = || names.clone();
    // Every row resolved before the first trace: a bad row stops the check
    // before anything ran.
    let mut problems = Vec::new();
    let mut reqs = Vec::new();
    for r in rows {
        match request(r, &read, &eps) {
            Ok(q) => reqs.push(q),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(refused(source, &problems));
    }
    let mut results = Vec::new();
    for (row, req) in rows.iter().zip(&reqs) {
        let t = Instant::now();
        let report = trace::trace(bpffs, req).map_err(|e| match e {
            dpdbg::Error::InvalidInput(m) => refused(source, &[problem(row.line, None, m)]),
            e => anyhow::Error::new(e).context(format!("{source} line {}: trace", row.line)),
        })?;
        let seconds = t.elapsed().as_secs_f64();
        let got = Expect::of_verdict(report.verdict);
        let (decided_by, explanation) = explain(&report, &names);
        results.push(RowResult {
            line: row.line,
            name: row.name.clone().unwrap_or_else(|| default_name(row)),
            from: row.from.value.clone(),
            to: row.to.value.clone(),
            proto: row.proto.clone(),
            port: row.port,
            expect: row.expect,
            verdict: report.verdict.to_string(),
            got,
            ok: got == row.expect,
            drop_reason: report.drop_reason.as_ref().map(|d| ReasonDoc { code: d.code, text: d.text.to_string() }),
            decided_by,
            explanation,
            packet: report.packet.summary.clone(),
            seconds,
        });
    }
    let passed = results.iter().filter(|r| r.ok).count();
    Ok(VerifyReport {
        source: source.to_string(),
        node: node_name(),
        timestamp,
        total: results.len(),
        passed,
        failed: results.len() - passed,
        ok: passed == results.len(),
        seconds: started.elapsed().as_secs_f64(),
        rows: results,
    })
}

/// The text of a row that does not hold, as the table's footer and the
/// error say it.
fn failure_text(r: &RowResult) -> String {
    format!("expected {}, got {} ({}): {}", r.expect.word(), r.got.word(), r.verdict, r.explanation)
}

fn table_text(rep: &VerifyReport) -> String {
    let mut t = crate::output::table(&[
        COL_LINE,
        COL_FROM,
        COL_TO,
        COL_PROTO,
        COL_PORT,
        COL_EXPECT,
        COL_GOT,
        COL_DECIDED,
        COL_RESULT,
    ]);
    for r in &rep.rows {
        t.add_row(vec![
            r.line.to_string(),
            r.from.clone(),
            r.to.clone(),
            r.proto.clone(),
            r.port.map_or_else(|| "-".into(), |p| p.to_string()),
            r.expect.word().to_string(),
            r.got.word().to_string(),
            r.decided_by.clone(),
            if r.ok { "ok".to_string() } else { "FAIL".to_string() },
        ]);
    }
    let mut s = t.to_string();
    for r in rep.rows.iter().filter(|r| !r.ok) {
        let _ = write!(s, "\n\nline {}: {}: {}", r.line, r.name, failure_text(r));
    }
    let _ = write!(s, "\n\n{} of {} rows hold ({}, node {}).", rep.passed, rep.total, rep.source, rep.node);
    s
}

/// Text for XML 1.0: the five escapes, and the characters XML cannot hold
/// (controls but tab, newline and return) replaced.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML as Jenkins, GitLab and GitHub's test reporters read it (the
/// Ant schema's testsuites/testsuite/testcase/failure): one testcase per
/// row, a failure element with trace's explanation for a row that does not
/// hold.
pub fn junit(rep: &VerifyReport) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"dpdbg verify\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.6}\">",
        rep.total, rep.failed, rep.seconds
    );
    // Ant's schema has the timestamp without a zone; it is UTC.
    let stamp = rep.timestamp.trim_end_matches('Z');
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.6}\" timestamp=\"{}\" hostname=\"{}\" id=\"0\" package=\"dpdbg.verify\">",
        xml(&rep.source),
        rep.total,
        rep.failed,
        rep.seconds,
        xml(stamp),
        xml(&rep.node)
    );
    s.push_str("    <properties>\n");
    let _ = writeln!(s, "      <property name=\"node\" value=\"{}\"/>", xml(&rep.node));
    let _ = writeln!(s, "      <property name=\"matrix\" value=\"{}\"/>", xml(&rep.source));
    s.push_str("    </properties>\n");
    for r in &rep.rows {
        let _ = write!(
            s,
            "    <testcase name=\"{}\" classname=\"dpdbg.verify.{}\" time=\"{:.6}\" file=\"{}\" line=\"{}\"",
            xml(&format!("line {}: {}", r.line, r.name)),
            xml(&classname(&rep.source)),
            r.seconds,
            xml(&rep.source),
            r.line
        );
        if r.ok {
            let _ = writeln!(s, ">\n      <system-out>{}</system-out>\n    </testcase>", xml(&r.explanation));
        } else {
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                xml(&format!("expected {}, got {}: {}", r.expect.word(), r.got.word(), r.decided_by)),
                if r.expect == Expect::Allow { "UnexpectedDeny" } else { "UnexpectedAllow" },
                xml(&format!("{}\npacket: {}", failure_text(r), r.packet))
            );
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// A JUnit class name from the matrix's file name: the dotted words CI
/// systems group test cases by.
fn classname(source: &str) -> String {
    let base = Path::new(source).file_stem().and_then(|s| s.to_str()).unwrap_or("matrix");
    let c: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if c.is_empty() || c == "_" { "stdin".into() } else { c }
}

/// The report in the format asked for; a row that does not hold is exit 1.
fn print(rep: &VerifyReport, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json | Format::Jsonpb => {
            serde_json::to_writer_pretty(&mut out, rep)?;
            out.write_all(b"\n")?;
        }
        Format::Jsonl => {
            for r in &rep.rows {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Junit => out.write_all(junit(rep).as_bytes())?,
        Format::Table | Format::Compact | Format::Dict => {
            out.write_all(table_text(rep).as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    drop(out);
    if rep.ok {
        return Ok(());
    }
    let lines: Vec<String> =
        rep.rows.iter().filter(|r| !r.ok).map(|r| format!("line {} ({})", r.line, r.name)).collect();
    anyhow::bail!("{} of {} rows of {} do not hold: {}", rep.failed, rep.total, rep.source, lines.join(", "))
}

impl VerifyCmd {
    /// The file a server would read on its node were it sent this command
    /// as it is (refused there: `--server` sends the text).
    pub fn node_file(&self) -> Option<&Path> {
        self.matrix.as_deref()
    }

    /// The matrix's text and the name to give it.
    fn read(&self) -> anyhow::Result<(String, String)> {
        if let Some(t) = &self.matrix_text {
            return Ok((t.clone(), self.matrix_name.clone().unwrap_or_else(|| "matrix".into())));
        }
        let path = self.matrix.as_deref().unwrap_or(Path::new("-"));
        let usage = |m: String| anyhow::Error::new(UsageError(m));
        let mut bytes = Vec::new();
        if path == Path::new("-") {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| usage(format!("reading the matrix from standard input: {e}")))?;
        } else {
            bytes = std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            usage(format!("{}: not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to()))
        })?;
        let name = if path == Path::new("-") { "stdin".to_string() } else { path.display().to_string() };
        Ok((text, name))
    }

    pub fn run(self, bpffs: &Path, format: Format) -> anyhow::Result<()> {
        let (text, source) = self.read()?;
        let rows = parse(&text).map_err(|p| refused(&source, &p))?;
        let rep = check(bpffs, &source, &rows)?;
        print(&rep, format)
    }

    /// Through `dpdbg serve`: the file is read and checked here, the node
    /// traces the rows (`verify --matrix-text`, a read) and sends its report
    /// as JSON, printed here in the format asked for.
    pub fn run_remote(self, server: &str, format: Format) -> anyhow::Result<()> {
        let (text, source) = self.read()?;
        parse(&text).map_err(|p| refused(&source, &p))?;
        // `--flag=VALUE`: a matrix that is a YAML list starts with `-`,
        // which clap would take for a flag of its own.
        let arg = format!("--matrix-text={text}");
        if arg.len() > MAX_INLINE {
            crate::usage!(
                "{source} is {} bytes: through --server a matrix travels as one argument of at most {} bytes; split it into smaller files",
                text.len(),
                MAX_INLINE - "--matrix-text=".len()
            );
        }
        let args = vec!["verify".into(), arg, format!("--matrix-name={source}")];
        let (out, err, code) = remote(server, args)?;
        match code {
            0 | 1 => {
                let rep: VerifyReport = serde_json::from_slice(&out)
                    .with_context(|| format!("the report {server} sent is not a verify document"))?;
                print(&rep, format)
            }
            code => {
                // The node's error, in the format asked for here.
                let text = String::from_utf8_lossy(&err);
                let message = serde_json::from_str::<serde_json::Value>(text.trim())
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string));
                match message {
                    Some(m) if code == 2 => Err(anyhow::Error::new(UsageError(m))),
                    Some(m) => Err(anyhow::anyhow!("{server}: {m}")),
                    None => {
                        std::io::stderr().write_all(&err)?;
                        Err(Exit(code.clamp(1, 255) as u8).into())
                    }
                }
            }
        }
    }
}

/// Runs `dpdbg ARGS -o json` on the server's node: its stdout, stderr and
/// exit code.
fn remote(server: &str, args: Vec<String>) -> anyhow::Result<(Vec<u8>, Vec<u8>, i32)> {
    let (code, out, err) = dpdbg_api::client::run_blocking(server, args, "json").map_err(anyhow::Error::msg)?;
    Ok((out, err, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(text).unwrap_err().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn rows_as_a_list_or_under_rows_with_defaults() {
        let list = "- from: lab/ep1\n  to: lab/ep2\n  proto: tcp\n  port: 80\n  expect: allow\n- {from: 101, to: 10.0.0.2, proto: icmp, expect: deny}\n";
        let rows = parse(list).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[1].line), (1, 6));
        assert_eq!(rows[0].port, Some(80));
        assert_eq!(rows[1].from.value, "101");
        assert_eq!((rows[1].proto.as_str(), rows[1].port, rows[1].expect), ("icmp", None, Expect::Deny));

        let with = "defaults:\n  proto: udp\n  port: 53\nrows:\n  - {from: ep1, to: ep2, expect: deny}\n  - {from: ep1, to: ep2, proto: icmp, expect: allow}\n  - {from: ep1, to: ep2, port: 5353, expect: allow, name: mdns}\n";
        let rows = parse(with).unwrap();
        assert_eq!((rows[0].proto.as_str(), rows[0].port, rows[0].line), ("udp", Some(53), 5));
        assert_eq!(rows[1].port, None, "a default port is not given to a row without ports");
        assert_eq!((rows[2].port, rows[2].name.as_deref()), (Some(5353), Some("mdns")));
        // tcp when nothing says otherwise.
        assert_eq!(parse("- {from: a, to: b, port: 1, expect: allow}").unwrap()[0].proto, "tcp");
    }

    #[test]
    fn problems_name_line_and_field() {
        assert_eq!(problems("- {from: a, to: b, port: 80}\n"), ["line 1, field expect: missing: allow or deny"]);
        assert_eq!(
            problems("- from: a\n  to: b\n  port: 80\n  expect: permit\n"),
            ["line 4, field expect: \"permit\": use allow or deny"]
        );
        assert_eq!(
            problems("- from: a\n  to: b\n  proto: sctpx\n  port: 1\n  expect: deny\n")[0],
            "line 3, field proto: \"sctpx\": use tcp, udp, icmp, icmpv6 or an IP protocol number 0-255"
        );
        assert_eq!(
            problems("- {from: a, to: b, port: 70000, expect: deny}"),
            ["line 1, field port: 70000 is not a port: use 1-65535"]
        );
        assert_eq!(
            problems("- {from: a, to: b, port: http, expect: deny}"),
            ["line 1, field port: \"http\" is not a port: use 1-65535"]
        );
        assert_eq!(
            problems("- {from: a, to: b, proto: icmp, port: 1, expect: deny}"),
            ["line 1, field port: icmp has no ports: drop the port, or use tcp or udp"]
        );
        assert_eq!(
            problems("- {from: a, to: b, expect: deny}"),
            ["line 1, field port: missing: tcp needs a destination port (policy rules are per port)"]
        );
        assert_eq!(
            problems("- {from: a, to: b, port: 1, expect: deny, expcet: allow}"),
            ["line 1, field expcet: not a field of a row: use from, to, proto, port, expect, name"]
        );
        assert_eq!(
            problems("\n\n- {from: [a], to: b, port: 1, expect: deny}"),
            ["line 3, field from: a list, not a single value"]
        );
        // Two rows, two problems, each on its own line.
        assert_eq!(problems("- {to: b, port: 1, expect: deny}\n- {from: a, to: b, port: 0, expect: deny}").len(), 2);
        // Not YAML: the parser's line.
        let p = problems("- from: a\n  to: b\n   port: 1\n");
        assert!(p[0].starts_with("line 3: not YAML"), "{p:?}");
        assert!(
            problems("- {from: a, to: b, port: 1, expect: deny, from: c}")[0].contains("not YAML"),
            "duplicate keys"
        );
        assert_eq!(problems(""), ["line 1: empty: give a list of rows {from, to, proto, port, expect}"]);
        assert_eq!(problems("rows: []"), ["line 1, field rows: no rows: a matrix checks at least one"]);
        assert_eq!(problems("defaults: {proto: tcp}\n"), ["line 1, field rows: missing: the list of rows to check"]);
        assert_eq!(
            problems("defaults: {name: x}\nrows: [{from: a, to: b, port: 1, expect: deny}]"),
            ["line 1, field name: not a field of defaults: use from, to, proto, port, expect"]
        );
        assert_eq!(
            problems("just text"),
            ["line 1: the matrix is a single value: give a list of rows, or a mapping with rows (and defaults)"]
        );
        assert_eq!(
            problems("- 1\n"),
            ["line 1: a row is a single value, not a mapping of from, to, proto, port, expect"]
        );
    }

    #[test]
    fn the_readmes_example_is_a_matrix() {
        let readme = include_str!("../../README.md");
        let start =
            readme.find("```yaml\n# ci/connectivity.yaml").expect("the example in README.md") + "```yaml\n".len();
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(
            (rows[3].line, rows[3].name.as_deref(), rows[3].proto.as_str()),
            (8, Some("ep3 pings ep1"), "icmpv6")
        );
        assert_eq!((rows[5].to.value.as_str(), rows[5].port), ("192.0.2.1", Some(443)));
    }

    #[test]
    fn aliases_repeat_what_their_anchor_says() {
        let rows = parse(
            "- &r {from: a, to: b, port: 1, expect: deny}\n- *r\n- {from: &x c, to: *x, port: 2, expect: allow}\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[1].line, rows[1].from.value.as_str(), rows[1].port), (2, "a", Some(1)));
        assert_eq!(rows[2].to.value, "c");
    }

    #[test]
    fn junit_escapes_what_xml_cannot_hold() {
        assert_eq!(xml("a<b & \"c\" 'd'>\u{1}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{fffd}");
        assert_eq!(classname("/tmp/my-matrix.yaml"), "my_matrix");
        assert_eq!(classname("-"), "stdin");
    }
}
