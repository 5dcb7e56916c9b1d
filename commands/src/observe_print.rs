//! `dpdbg observe`'s text: what `hubble observe` prints for the same flows.
//!
//! Written from the rules of Hubble's printer (hubble/pkg/printer in
//! cilium's repository), none of its code:
//!
//! - compact: `TIME[ [NODE]]: SRC (ID) -> DST (ID) TYPE VERDICT (SUMMARY)`,
//!   both sides' security identities (`(ID:1001)`, or a reserved one by
//!   name: `(world)`, `(host)`, `(unknown)` for 0), `<-` with the sides
//!   swapped for a reply, `<>` when the flow does not say;
//! - dict: `KEY: value` lines, `------------` between flows;
//! - table: tab-aligned columns (Go's text/tabwriter with Hubble's minimum
//!   width 2, padding 3), written when the stream ends;
//! - a side is `namespace/pod:port` when it has a pod name (unless
//!   `--ip-translation=false` or `--numeric`), else `ip:port` (`[ip]:port`
//!   for IPv6), no port when it is 0 or the flow has none; a flow without
//!   IP is named by its MAC addresses;
//! - the type is the trace observation point (`to-endpoint`), the drop
//!   reason's text (`Policy denied`) or `policy-verdict:MATCH DIRECTION`;
//!   policy verdicts say ALLOWED and DENIED;
//! - time in UTC (protobuf's Timestamp.AsTime) in `--time-format`'s layout,
//!   `N/A` when missing or out of range.

use std::io::{self, Write};

use dpdbg_api::flow;
use dpdbg_api::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use dpdbg_api::relay::{NodeState, NodeStatusEvent};

use crate::observe::ObserveFormat;

/// Hubble's `--time-format` names (hubble/pkg/time), each Go layout's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// `Jan _2 15:04:05.000`
    #[default]
    StampMilli,
    /// `2006-01-02`
    YearMonthDay,
    /// `2006-01-02T15Z07:00`
    YearMonthDayHour,
    /// `2006-01-02T15:04Z07:00`
    YearMonthDayHourMinute,
    /// `2006-01-02T15:04:05Z07:00`
    Rfc3339,
    /// `2006-01-02T15:04:05.999Z07:00` (trailing zeros dropped)
    Rfc3339Milli,
    /// `2006-01-02T15:04:05.999999Z07:00`
    Rfc3339Micro,
    /// `2006-01-02T15:04:05.999999999Z07:00`
    Rfc3339Nano,
    /// `Mon, 02 Jan 2006 15:04:05 -0700`
    Rfc1123Z,
}

/// The names `--time-format` takes, in Hubble's order.
pub const TIME_FORMAT_NAMES: &[&str] = &[
    "YearMonthDay",
    "YearMonthDayHour",
    "YearMonthDayHourMinute",
    "StampMilli",
    "RFC3339",
    "RFC3339Milli",
    "RFC3339Micro",
    "RFC3339Nano",
    "RFC1123Z",
];

/// A `--time-format` name, in any case as Hubble takes it. Hubble prints
/// StampMilli for a name it does not know; dpdbg says so instead.
pub fn parse_time_format(s: &str) -> Result<TimeFormat, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "stampmilli" => TimeFormat::StampMilli,
        "yearmonthday" => TimeFormat::YearMonthDay,
        "yearmonthdayhour" => TimeFormat::YearMonthDayHour,
        "yearmonthdayhourminute" => TimeFormat::YearMonthDayHourMinute,
        "rfc3339" => TimeFormat::Rfc3339,
        "rfc3339milli" => TimeFormat::Rfc3339Milli,
        "rfc3339micro" => TimeFormat::Rfc3339Micro,
        "rfc3339nano" => TimeFormat::Rfc3339Nano,
        "rfc1123z" => TimeFormat::Rfc1123Z,
        _ => return Err(format!("time format {s:?}: one of {}", TIME_FORMAT_NAMES.join(", "))),
    })
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Year, month (1-12) and day of a day count since 1970-01-01 (Howard
/// Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Go's fraction for `.999…`: `digits` digits, trailing zeros dropped, and
/// the dot too when nothing is left.
fn trimmed_fraction(out: &mut String, nanos: u32, digits: u32) {
    let mut v = nanos / 10u32.pow(9 - digits);
    let mut width = digits;
    while width > 0 && v.is_multiple_of(10) {
        v /= 10;
        width -= 1;
    }
    if width > 0 {
        out.push('.');
        out.push_str(&format!("{v:0width$}", width = width as usize));
    }
}

/// Protobuf's Timestamp.IsValid: 0001-01-01 to 9999-12-31, nanos in range.
fn valid(t: &prost_types::Timestamp) -> bool {
    (-62_135_596_800..253_402_300_800).contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos)
}

/// A flow's time as Hubble prints it: in UTC, in the layout of `f`.
pub fn format_time(f: TimeFormat, t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t.filter(|t| valid(t)) else { return "N/A".into() };
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let nanos = t.nanos as u32;
    let date = format!("{y:04}-{m:02}-{d:02}");
    let rfc3339 = |digits: u32| {
        let mut s = format!("{date}T{hh:02}:{mm:02}:{ss:02}");
        if digits > 0 {
            trimmed_fraction(&mut s, nanos, digits);
        }
        s.push('Z');
        s
    };
    match f {
        TimeFormat::StampMilli => {
            format!("{} {d:>2} {hh:02}:{mm:02}:{ss:02}.{:03}", MONTHS[m as usize - 1], nanos / 1_000_000)
        }
        TimeFormat::YearMonthDay => date,
        TimeFormat::YearMonthDayHour => format!("{date}T{hh:02}Z"),
        TimeFormat::YearMonthDayHourMinute => format!("{date}T{hh:02}:{mm:02}Z"),
        TimeFormat::Rfc3339 => rfc3339(0),
        TimeFormat::Rfc3339Milli => rfc3339(3),
        TimeFormat::Rfc3339Micro => rfc3339(6),
        TimeFormat::Rfc3339Nano => rfc3339(9),
        TimeFormat::Rfc1123Z => format!(
            "{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} +0000",
            WEEKDAYS[(days + 4).rem_euclid(7) as usize],
            MONTHS[m as usize - 1]
        ),
    }
}

/// Cilium's reserved identities by name (pkg/identity), as Hubble prints
/// them in place of `ID:N`.
fn reserved_identity(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "unknown",
        1 => "host",
        2 => "world",
        3 => "unmanaged",
        4 => "health",
        5 => "init",
        6 => "remote-node",
        7 => "kube-apiserver",
        8 => "ingress",
        9 => "world-ipv4",
        10 => "world-ipv6",
        _ => return None,
    })
}

/// `(ID:1001)`, or `(world)` for a reserved identity.
pub fn identity_text(id: u32) -> String {
    match reserved_identity(id) {
        Some(name) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// Cilium's trace observation points (pkg/monitor/api), by subtype.
fn observation_point(subtype: i32) -> String {
    let name = match subtype {
        0 => "to-endpoint",
        1 => "to-proxy",
        2 => "to-host",
        3 => "to-stack",
        4 => "to-overlay",
        5 => "from-endpoint",
        6 => "from-proxy",
        7 => "from-host",
        8 => "from-stack",
        9 => "from-overlay",
        10 => "from-network",
        11 => "to-network",
        n => return (n as u8).to_string(),
    };
    name.to_string()
}

/// A drop reason's text as Hubble prints it (cilium's pkg/monitor/api
/// DropReason table); a number cilium does not name (dpdbg's own, from
/// 240) is printed as the number, as Hubble prints it.
fn drop_reason(subtype: i32) -> String {
    let text = match subtype as u8 {
        0 => "Success",
        2 => "Invalid packet",
        3 => "Interface",
        4 => "Interface Decrypted",
        5 => "LB, sock cgroup: No backend slot entry found",
        6 => "LB, sock cgroup: No backend entry found",
        7 => "LB, sock cgroup: Reverse entry update failed",
        8 => "LB, sock cgroup: Reverse entry stale",
        9 => "Fragmented packet",
        10 => "Fragmented packet entry update failed",
        130 => "Invalid source mac",
        131 => "Invalid destination mac",
        132 => "Invalid source ip",
        133 => "Policy denied",
        134 => "Invalid packet",
        135 => "CT: Truncated or invalid header",
        136 => "CT: Missing TCP ACK flag",
        137 => "CT: Unknown L4 protocol",
        138 => "CT: Can't create entry from packet",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        142 => "Unknown L4 protocol",
        143 => "Unknown ICMPv4 code",
        144 => "Unknown ICMPv4 type",
        145 => "Unknown ICMPv6 code",
        146 => "Unknown ICMPv6 type",
        147 => "Error retrieving tunnel key",
        148 => "Error retrieving tunnel options",
        149 => "Invalid Geneve option",
        150 => "Unknown L3 target address",
        151 => "Stale or unroutable IP",
        152 => "No matching local container found",
        153 => "Error while correcting L3 checksum",
        154 => "Error while correcting L4 checksum",
        155 => "CT: Map insertion failed",
        156 => "Invalid IPv6 extension header",
        157 => "IP fragmentation not supported",
        158 => "Service backend not found",
        160 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        161 => "Failed to insert into proxymap",
        162 => "Reached EDT rate-limiting drop horizon",
        163 => "Unknown connection tracking state",
        164 => "Local host is unreachable",
        165 => "No configuration available to perform policy decision",
        166 => "Unsupported L2 protocol",
        167 => "No mapping for NAT masquerade",
        168 => "Unsupported protocol for NAT masquerade",
        169 => "FIB lookup failed",
        170 => "Encapsulation traffic is prohibited",
        171 => "Invalid identity",
        172 => "Unknown sender",
        173 => "NAT not needed",
        174 => "Is a ClusterIP",
        175 => "First logical datagram fragment not found",
        176 => "Forbidden ICMPv6 message",
        177 => "Denied by LB src range check",
        178 => "Socket lookup failed",
        179 => "Socket assign failed",
        180 => "Proxy redirection not supported for protocol",
        181 => "Policy denied by denylist",
        n => return n.to_string(),
    };
    text.to_string()
}

/// Cilium's policy match type names (pkg/monitor/api PolicyMatchType).
fn policy_match(m: u32) -> &'static str {
    match m {
        0 => "none",
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "unknown",
    }
}

const TRACE: i32 = dpdbg::abi::EVENT_TRACE as i32;
const DROP: i32 = dpdbg::abi::EVENT_DROP as i32;
const POLICY_VERDICT: i32 = dpdbg::abi::EVENT_POLICY_VERDICT as i32;

/// Hubble's TYPE column.
pub fn flow_type(f: &flow::Flow) -> String {
    let Some(e) = &f.event_type else { return "UNKNOWN".into() };
    match e.r#type {
        TRACE => observation_point(e.sub_type),
        DROP => drop_reason(e.sub_type),
        POLICY_VERDICT => format!(
            "policy-verdict:{} {}",
            policy_match(f.policy_match_type),
            flow::TrafficDirection::try_from(f.traffic_direction)
                .map_or_else(|_| f.traffic_direction.to_string(), |d| d.as_str_name().to_string())
        ),
        _ => "UNKNOWN".into(),
    }
}

/// Hubble's VERDICT column: a policy verdict is ALLOWED, DENIED or AUDITED.
pub fn verdict_text(f: &flow::Flow) -> String {
    let pv = f.event_type.as_ref().is_some_and(|e| e.r#type == POLICY_VERDICT);
    let v = flow::Verdict::try_from(f.verdict);
    match v {
        Ok(flow::Verdict::Forwarded) if pv => "ALLOWED".into(),
        Ok(flow::Verdict::Dropped) | Ok(flow::Verdict::Error) if pv => "DENIED".into(),
        Ok(flow::Verdict::Audit) if pv => "AUDITED".into(),
        Ok(v) => v.as_str_name().into(),
        Err(_) => f.verdict.to_string(),
    }
}

fn ports(f: &flow::Flow) -> (u32, u32) {
    use flow::layer4::Protocol;
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (t.source_port, t.destination_port),
        Some(Protocol::Udp(u)) => (u.source_port, u.destination_port),
        Some(Protocol::Sctp(s)) => (s.source_port, s.destination_port),
        _ => (0, 0),
    }
}

/// One side's host: the pod (`namespace/pod`, or `pod` without a
/// namespace) when translating and it has one, else the address; then
/// `:port` (Go's JoinHostPort: brackets around a host with ':').
fn host(ip: &str, port: u32, e: Option<&flow::Endpoint>, translate: bool) -> String {
    let mut h = match e {
        Some(e) if translate && !e.pod_name.is_empty() => {
            if e.namespace.is_empty() {
                e.pod_name.clone()
            } else {
                format!("{}/{}", e.namespace, e.pod_name)
            }
        }
        _ => ip.to_string(),
    };
    if port != 0 {
        h = if h.contains(':') { format!("[{h}]:{port}") } else { format!("{h}:{port}") };
    }
    h
}

/// Both sides' hosts (MAC addresses for a flow without IP).
fn hosts(f: &flow::Flow, translate: bool) -> (String, String) {
    let Some(ip) = &f.ip else {
        return f.ethernet.as_ref().map_or_else(Default::default, |e| (e.source.clone(), e.destination.clone()));
    };
    let (sport, dport) = ports(f);
    (
        host(&ip.source, sport, f.source.as_ref(), translate),
        host(&ip.destination, dport, f.destination.as_ref(), translate),
    )
}

#[allow(deprecated)] // Summary: what Hubble prints.
fn summary(f: &flow::Flow) -> &str {
    &f.summary
}

/// How flows are printed, beyond the format.
#[derive(Clone, Copy, Debug)]
pub struct PrintOptions {
    pub time: TimeFormat,
    /// `--print-node-name`.
    pub node_name: bool,
    /// Pods in place of addresses (`--ip-translation`, off with `--numeric`).
    pub translate: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions { time: TimeFormat::StampMilli, node_name: false, translate: true }
    }
}

const DICT_SEPARATOR: &str = "------------";

/// Node names as Hubble lists them: joined until about 50 characters (always
/// one), then how many more.
fn join_cut_off(names: &[String]) -> String {
    const TARGET: usize = 50;
    let mut len = 0;
    let mut end = names.len();
    for (i, n) in names.iter().enumerate() {
        len += n.len() + 2;
        if len > TARGET && i > 0 {
            end = i;
            break;
        }
    }
    let joined = names[..end].join(", ");
    match names.len() - end {
        0 => joined,
        more => format!("{joined} (and {more} more)"),
    }
}

/// A string as Go's %q writes it (strconv.Quote): JSON's escapes cover
/// what a node's error message holds.
fn go_quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Prints responses as `hubble observe` does; `finish` writes what a table
/// holds back until the stream ends.
pub struct Printer {
    format: ObserveFormat,
    o: PrintOptions,
    /// Responses printed so far (Hubble's `line`: dict separators).
    line: usize,
    /// The table's rows, cells before the last (tab-terminated) and the last.
    rows: Vec<(Vec<String>, String)>,
}

impl Printer {
    pub fn new(format: ObserveFormat, o: PrintOptions) -> Printer {
        Printer { format, o, line: 0, rows: Vec::new() }
    }

    pub fn write(&mut self, out: &mut impl Write, r: &GetFlowsResponse) -> io::Result<()> {
        if let Some(ResponseTypes::NodeStatus(n)) = &r.response_types {
            return self.node_status(out, &mut io::stderr().lock(), r, n);
        }
        if self.format == ObserveFormat::Json {
            return writeln!(out, "{}", dpdbg_api::json::response(r));
        }
        match &r.response_types {
            Some(ResponseTypes::Flow(f)) => self.flow(out, f)?,
            Some(ResponseTypes::LostEvents(l)) => self.lost(out, l)?,
            Some(ResponseTypes::NodeStatus(_)) | None => return Ok(()),
        }
        self.line += 1;
        Ok(())
    }

    /// A relay's word on its nodes, as Hubble's printer writes it: to
    /// stderr, never among the flows, and only the states that mean flows
    /// are missing (unavailable, error); connected and gone are Hubble's
    /// debug output. Hubble writes the JSON form with Go's encoder (the
    /// state as a number, the time as seconds and nanos); this is the same
    /// protobuf JSON as the flows, so one reader parses both.
    fn node_status(
        &mut self,
        out: &mut impl Write,
        err: &mut impl Write,
        r: &GetFlowsResponse,
        n: &NodeStatusEvent,
    ) -> io::Result<()> {
        let state = NodeState::try_from(n.state_change).unwrap_or(NodeState::UnknownNodeState);
        if !matches!(state, NodeState::NodeUnavailable | NodeState::NodeError) {
            return Ok(());
        }
        let names = join_cut_off(&n.node_names);
        match self.format {
            ObserveFormat::Json => writeln!(err, "{}", dpdbg_api::json::response(r)),
            ObserveFormat::Dict => {
                // The separator goes with the flows, so interleaved streams
                // still show where a flow ends.
                if self.line != 0 {
                    writeln!(out, "{DICT_SEPARATOR}")?;
                } else {
                    self.line += 1;
                }
                let message = if n.message.is_empty() { "N/A".to_string() } else { go_quote(&n.message) };
                writeln!(err, "  TIMESTAMP: {}", format_time(self.o.time, r.time.as_ref()))?;
                writeln!(err, "      STATE: {}", state.as_str_name())?;
                writeln!(err, "      NODES: {names}")?;
                writeln!(err, "    MESSAGE: {message}")
            }
            _ => {
                let prefix = format!("{} [{}]", format_time(self.o.time, r.time.as_ref()), r.node_name);
                let count = n.node_names.len();
                if state == NodeState::NodeUnavailable {
                    writeln!(err, "{prefix}: {count} nodes are unavailable: {names}")
                } else {
                    writeln!(err, "{prefix}: Error {} on {count} nodes: {names}", go_quote(&n.message))
                }
            }
        }
    }

    fn header(&mut self) {
        if self.rows.is_empty() {
            let mut cells = vec!["TIMESTAMP".to_string()];
            if self.o.node_name {
                cells.push("NODE".into());
            }
            cells.extend(["SOURCE", "DESTINATION", "TYPE", "VERDICT"].map(String::from));
            self.rows.push((cells, "SUMMARY".into()));
        }
    }

    fn flow(&mut self, out: &mut impl Write, f: &flow::Flow) -> io::Result<()> {
        let time = format_time(self.o.time, f.time.as_ref());
        let (mut src, mut dst) = hosts(f, self.o.translate);
        match self.format {
            ObserveFormat::Table => {
                self.header();
                let mut cells = vec![time];
                if self.o.node_name {
                    cells.push(f.node_name.clone());
                }
                cells.extend([src, dst, flow_type(f), verdict_text(f)]);
                self.rows.push((cells, summary(f).to_string()));
                Ok(())
            }
            ObserveFormat::Dict => {
                if self.line != 0 {
                    writeln!(out, "{DICT_SEPARATOR}")?;
                }
                writeln!(out, "  TIMESTAMP: {time}")?;
                if self.o.node_name {
                    writeln!(out, "       NODE: {}", f.node_name)?;
                }
                writeln!(out, "     SOURCE: {src}")?;
                writeln!(out, "DESTINATION: {dst}")?;
                writeln!(out, "       TYPE: {}", flow_type(f))?;
                writeln!(out, "    VERDICT: {}", verdict_text(f))?;
                writeln!(out, "    SUMMARY: {}", summary(f))
            }
            _ => {
                let mut src_id = identity_text(f.source.as_ref().map_or(0, |e| e.identity));
                let mut dst_id = identity_text(f.destination.as_ref().map_or(0, |e| e.identity));
                let arrow = match f.is_reply {
                    None => "<>",
                    Some(false) => "->",
                    Some(true) => {
                        std::mem::swap(&mut src, &mut dst);
                        std::mem::swap(&mut src_id, &mut dst_id);
                        "<-"
                    }
                };
                let node = if self.o.node_name { format!(" [{}]", f.node_name) } else { String::new() };
                writeln!(
                    out,
                    "{time}{node}: {src} {src_id} {arrow} {dst} {dst_id} {} {} ({})",
                    flow_type(f),
                    verdict_text(f),
                    summary(f)
                )
            }
        }
    }

    fn lost(&mut self, out: &mut impl Write, l: &flow::LostEvent) -> io::Result<()> {
        let source = flow::LostEventSource::try_from(l.source)
            .map_or_else(|_| l.source.to_string(), |s| s.as_str_name().to_string());
        let cpu = l.cpu.unwrap_or(0);
        let n = l.num_events_lost;
        match self.format {
            ObserveFormat::Table => {
                self.header();
                let mut cells = vec![String::new()];
                if self.o.node_name {
                    cells.push(String::new());
                }
                cells.extend([source, String::new(), "EVENTS LOST".into(), String::new()]);
                self.rows.push((cells, format!("CPU({cpu}) - {n}")));
                Ok(())
            }
            ObserveFormat::Dict => {
                if self.line != 0 {
                    writeln!(out, "{DICT_SEPARATOR}")?;
                }
                writeln!(out, "  TIMESTAMP: ")?;
                if self.o.node_name {
                    writeln!(out, "       NODE: ")?;
                }
                writeln!(out, "     SOURCE: {source}")?;
                writeln!(out, "       TYPE: EVENTS LOST")?;
                writeln!(out, "    VERDICT: ")?;
                writeln!(out, "    SUMMARY: CPU({cpu}) - {n}")
            }
            _ => writeln!(out, "EVENTS LOST: {source} CPU({cpu}) {n}"),
        }
    }

    /// Writes the table (nothing for the other formats): every column as
    /// wide as its widest cell (in characters) plus 3, at least 2, as Go's
    /// tabwriter aligns Hubble's rows; the last cell of a row as it is.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        let rows = std::mem::take(&mut self.rows);
        let columns = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let mut widths = vec![2usize; columns];
        for (cells, _) in &rows {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count() + 3);
            }
        }
        for (cells, last) in &rows {
            let mut line = String::new();
            for (c, w) in cells.iter().zip(&widths) {
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
            line.push_str(last);
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    /// Go's layouts, worked by hand for 2025-12-02 07:09:29.010 UTC (a
    /// Tuesday) and the edges: single-digit days padded with a space in
    /// StampMilli, fractions cut (never rounded), `.999` dropping zeros
    /// and its dot, out-of-range and missing times as N/A.
    #[test]
    fn times_in_go_layouts() {
        let t = ts(1_764_659_369, 10_500_000);
        let cases = [
            (TimeFormat::StampMilli, "Dec  2 07:09:29.010"),
            (TimeFormat::YearMonthDay, "2025-12-02"),
            (TimeFormat::YearMonthDayHour, "2025-12-02T07Z"),
            (TimeFormat::YearMonthDayHourMinute, "2025-12-02T07:09Z"),
            (TimeFormat::Rfc3339, "2025-12-02T07:09:29Z"),
            (TimeFormat::Rfc3339Milli, "2025-12-02T07:09:29.01Z"),
            (TimeFormat::Rfc3339Micro, "2025-12-02T07:09:29.0105Z"),
            (TimeFormat::Rfc3339Nano, "2025-12-02T07:09:29.0105Z"),
            (TimeFormat::Rfc1123Z, "Tue, 02 Dec 2025 07:09:29 +0000"),
        ];
        for (f, want) in cases {
            assert_eq!(format_time(f, t.as_ref()), want, "{f:?}");
        }
        let whole = ts(1_764_659_369, 0);
        assert_eq!(format_time(TimeFormat::Rfc3339Milli, whole.as_ref()), "2025-12-02T07:09:29Z");
        assert_eq!(format_time(TimeFormat::StampMilli, whole.as_ref()), "Dec  2 07:09:29.000");
        let late = ts(1_764_659_369, 999_999_999);
        assert_eq!(format_time(TimeFormat::StampMilli, late.as_ref()), "Dec  2 07:09:29.999");
        assert_eq!(format_time(TimeFormat::Rfc3339Milli, late.as_ref()), "2025-12-02T07:09:29.999Z");
        assert_eq!(format_time(TimeFormat::Rfc3339Nano, late.as_ref()), "2025-12-02T07:09:29.999999999Z");
        // Hubble's own test flow: 1234 s and 567.8 ms after the epoch.
        assert_eq!(format_time(TimeFormat::StampMilli, ts(1234, 567_800_000).as_ref()), "Jan  1 00:20:34.567");
        assert_eq!(format_time(TimeFormat::Rfc1123Z, ts(0, 0).as_ref()), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(format_time(TimeFormat::StampMilli, ts(951_782_400 + 3600, 0).as_ref()), "Feb 29 01:00:00.000");
        assert_eq!(format_time(TimeFormat::StampMilli, None), "N/A");
        assert_eq!(format_time(TimeFormat::StampMilli, ts(0, -1).as_ref()), "N/A");
        assert_eq!(format_time(TimeFormat::StampMilli, ts(253_402_300_800, 0).as_ref()), "N/A");
        for name in TIME_FORMAT_NAMES {
            assert!(parse_time_format(name).is_ok(), "{name}");
            assert!(parse_time_format(&name.to_lowercase()).is_ok(), "{name}");
        }
        assert_eq!(parse_time_format("rfc3339MILLI"), Ok(TimeFormat::Rfc3339Milli));
        assert!(parse_time_format("Kitchen").unwrap_err().contains("StampMilli"));
    }

    #[test]
    fn identities_and_hosts() {
        assert_eq!(identity_text(2), "(world)");
        assert_eq!(identity_text(1), "(host)");
        assert_eq!(identity_text(4), "(health)");
        assert_eq!(identity_text(0), "(unknown)");
        assert_eq!(identity_text(11), "(ID:11)");
        assert_eq!(identity_text(1001), "(ID:1001)");
        // dpdbg's texts for cilium's numbers are cilium's.
        for n in 1..240u8 {
            let ours = dpdbg::abi::Reason(n).text();
            if ours != "Unknown reason" {
                assert_eq!(drop_reason(n as i32), ours, "reason {n}");
            }
        }
        assert_eq!(drop_reason(242), "242");
        let pod = flow::Endpoint { namespace: "lab".into(), pod_name: "ep1".into(), ..Default::default() };
        let bare = flow::Endpoint { pod_name: "ep1".into(), ..Default::default() };
        assert_eq!(host("198.18.1.1", 43210, Some(&pod), true), "lab/ep1:43210");
        assert_eq!(host("198.18.1.1", 43210, Some(&pod), false), "198.18.1.1:43210");
        assert_eq!(host("198.18.1.1", 0, Some(&pod), true), "lab/ep1");
        assert_eq!(host("198.18.1.1", 0, Some(&bare), true), "ep1");
        assert_eq!(host("fd00:dbd:1::1", 80, None, true), "[fd00:dbd:1::1]:80");
        assert_eq!(host("fd00:dbd:1::1", 0, None, true), "fd00:dbd:1::1");
    }

    /// Flows as dpdbg serve sends them, one of each shape.
    #[allow(deprecated)] // summary
    fn flows() -> Vec<GetFlowsResponse> {
        let t = |ms: i64| {
            Some(prost_types::Timestamp {
                seconds: 1_764_659_369 + ms / 1000,
                nanos: (ms % 1000) as i32 * 1_000_000 + 123,
            })
        };
        let pod = |ns: &str, pod: &str, id: u32| {
            Some(flow::Endpoint {
                identity: id,
                namespace: ns.into(),
                pod_name: pod.into(),
                labels: vec![format!("k8s:app={pod}")],
                ..Default::default()
            })
        };
        let bare = |id: u32| Some(flow::Endpoint { identity: id, ..Default::default() });
        let ip4 = |s: &str, d: &str| {
            Some(flow::Ip { source: s.into(), destination: d.into(), ip_version: 1, encrypted: false })
        };
        let tcp = |s, d| {
            Some(flow::Layer4 {
                protocol: Some(flow::layer4::Protocol::Tcp(flow::Tcp {
                    source_port: s,
                    destination_port: d,
                    flags: None,
                })),
            })
        };
        let ev = |t: u8, st: u8| Some(flow::CiliumEventType { r#type: t as i32, sub_type: st as i32 });
        let base = flow::Flow { node_name: "node-a".into(), r#type: flow::FlowType::L3L4 as i32, ..Default::default() };
        let f = vec![
            // A new connection, at the receiver.
            flow::Flow {
                time: t(10),
                verdict: flow::Verdict::Forwarded as i32,
                ip: ip4("198.18.1.1", "198.18.1.2"),
                l4: tcp(43210, 80),
                source: pod("lab", "ep1", 1001),
                destination: pod("lab", "ep2", 1002),
                event_type: ev(4, 0),
                traffic_direction: flow::TrafficDirection::Ingress as i32,
                is_reply: Some(false),
                summary: "TCP Flags: SYN".into(),
                ..base.clone()
            },
            // Its reply, leaving the receiver: Hubble swaps the sides.
            flow::Flow {
                time: t(11),
                verdict: flow::Verdict::Forwarded as i32,
                ip: ip4("198.18.1.2", "198.18.1.1"),
                l4: tcp(80, 43210),
                source: pod("lab", "ep2", 1002),
                destination: pod("lab", "ep1", 1001),
                event_type: ev(4, 5),
                traffic_direction: flow::TrafficDirection::Egress as i32,
                is_reply: Some(true),
                summary: "TCP Flags: SYN, ACK".into(),
                ..base.clone()
            },
            // A drop from the world over IPv6: no reply flag, an unnamed side.
            flow::Flow {
                time: t(1020),
                verdict: flow::Verdict::Dropped as i32,
                drop_reason_desc: 133,
                ip: Some(flow::Ip {
                    source: "2001:db8::1".into(),
                    destination: "fd00:dbd:1::2".into(),
                    ip_version: 2,
                    encrypted: false,
                }),
                l4: Some(flow::Layer4 {
                    protocol: Some(flow::layer4::Protocol::Udp(flow::Udp { source_port: 5353, destination_port: 53 })),
                }),
                source: bare(2),
                destination: pod("lab", "ep2", 1002),
                event_type: ev(1, 133),
                traffic_direction: flow::TrafficDirection::Ingress as i32,
                summary: "UDP".into(),
                ..base.clone()
            },
            // Policy verdicts: allowed at L3-L4 in, denied by default out.
            flow::Flow {
                time: t(2000),
                verdict: flow::Verdict::Forwarded as i32,
                ip: ip4("198.18.1.1", "198.18.1.2"),
                l4: Some(flow::Layer4 {
                    protocol: Some(flow::layer4::Protocol::IcmPv4(flow::IcmPv4 { r#type: 8, code: 0 })),
                }),
                source: pod("lab", "ep1", 1001),
                destination: pod("lab", "ep2", 1002),
                event_type: ev(5, 2),
                policy_match_type: 2,
                traffic_direction: flow::TrafficDirection::Ingress as i32,
                is_reply: Some(false),
                summary: "ICMPv4 EchoRequest".into(),
                ..base.clone()
            },
            flow::Flow {
                time: t(2500),
                verdict: flow::Verdict::Dropped as i32,
                drop_reason_desc: 133,
                ip: ip4("198.18.1.2", "192.0.2.7"),
                l4: tcp(40000, 443),
                source: pod("lab", "ep2", 1002),
                destination: bare(2),
                event_type: ev(5, 0),
                traffic_direction: flow::TrafficDirection::Egress as i32,
                is_reply: Some(false),
                summary: "TCP Flags: SYN".into(),
                ..base.clone()
            },
            // ARP: no IP, so the MAC addresses; the host's identity by name.
            flow::Flow {
                time: t(3000),
                verdict: flow::Verdict::Forwarded as i32,
                ethernet: Some(flow::Ethernet {
                    source: "02:dd:01:01:00:01".into(),
                    destination: "ff:ff:ff:ff:ff:ff".into(),
                }),
                source: bare(1001),
                destination: bare(1),
                event_type: ev(4, 5),
                traffic_direction: flow::TrafficDirection::Egress as i32,
                summary: "Ethernet".into(),
                ..base.clone()
            },
        ];
        let mut out: Vec<GetFlowsResponse> = f
            .into_iter()
            .map(|f| GetFlowsResponse {
                node_name: "node-a".into(),
                time: f.time,
                response_types: Some(ResponseTypes::Flow(f)),
            })
            .collect();
        out.push(GetFlowsResponse {
            node_name: "node-a".into(),
            time: None,
            response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
                source: flow::LostEventSource::ObserverEventsQueue as i32,
                num_events_lost: 7,
                cpu: None,
            })),
        });
        out
    }

    fn print(format: ObserveFormat, o: PrintOptions) -> String {
        let mut p = Printer::new(format, o);
        let mut out = Vec::new();
        for r in flows() {
            p.write(&mut out, &r).unwrap();
        }
        p.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Each format, line for line, as Hubble's printer writes these flows
    /// (the expected lines worked out from its rules, above).
    #[test]
    fn compact_dict_and_table_as_hubble_prints_them() {
        let compact = [
            "Dec  2 07:09:29.010: lab/ep1:43210 (ID:1001) -> lab/ep2:80 (ID:1002) to-endpoint FORWARDED (TCP Flags: SYN)",
            "Dec  2 07:09:29.011: lab/ep1:43210 (ID:1001) <- lab/ep2:80 (ID:1002) from-endpoint FORWARDED (TCP Flags: SYN, ACK)",
            "Dec  2 07:09:30.020: [2001:db8::1]:5353 (world) <> lab/ep2:53 (ID:1002) Policy denied DROPPED (UDP)",
            "Dec  2 07:09:31.000: lab/ep1 (ID:1001) -> lab/ep2 (ID:1002) policy-verdict:L3-L4 INGRESS ALLOWED (ICMPv4 EchoRequest)",
            "Dec  2 07:09:31.500: lab/ep2:40000 (ID:1002) -> 192.0.2.7:443 (world) policy-verdict:none EGRESS DENIED (TCP Flags: SYN)",
            "Dec  2 07:09:32.000: 02:dd:01:01:00:01 (ID:1001) <> ff:ff:ff:ff:ff:ff (host) from-endpoint FORWARDED (Ethernet)",
            "EVENTS LOST: OBSERVER_EVENTS_QUEUE CPU(0) 7",
        ];
        assert_eq!(print(ObserveFormat::Compact, PrintOptions::default()), compact.join("\n") + "\n");

        let node = PrintOptions { node_name: true, translate: false, time: TimeFormat::Rfc3339Milli };
        let got = print(ObserveFormat::Compact, node);
        assert_eq!(
            got.lines().next().unwrap(),
            "2025-12-02T07:09:29.01Z [node-a]: 198.18.1.1:43210 (ID:1001) -> 198.18.1.2:80 (ID:1002) to-endpoint FORWARDED (TCP Flags: SYN)"
        );
        assert_eq!(
            got.lines().nth(2).unwrap(),
            "2025-12-02T07:09:30.02Z [node-a]: [2001:db8::1]:5353 (world) <> [fd00:dbd:1::2]:53 (ID:1002) Policy denied DROPPED (UDP)"
        );

        let dict = "  TIMESTAMP: Dec  2 07:09:29.010
     SOURCE: lab/ep1:43210
DESTINATION: lab/ep2:80
       TYPE: to-endpoint
    VERDICT: FORWARDED
    SUMMARY: TCP Flags: SYN
------------
  TIMESTAMP: Dec  2 07:09:29.011
     SOURCE: lab/ep2:80
DESTINATION: lab/ep1:43210
       TYPE: from-endpoint
    VERDICT: FORWARDED
    SUMMARY: TCP Flags: SYN, ACK
------------
  TIMESTAMP: Dec  2 07:09:30.020
     SOURCE: [2001:db8::1]:5353
DESTINATION: lab/ep2:53
       TYPE: Policy denied
    VERDICT: DROPPED
    SUMMARY: UDP
------------
  TIMESTAMP: Dec  2 07:09:31.000
     SOURCE: lab/ep1
DESTINATION: lab/ep2
       TYPE: policy-verdict:L3-L4 INGRESS
    VERDICT: ALLOWED
    SUMMARY: ICMPv4 EchoRequest
------------
  TIMESTAMP: Dec  2 07:09:31.500
     SOURCE: lab/ep2:40000
DESTINATION: 192.0.2.7:443
       TYPE: policy-verdict:none EGRESS
    VERDICT: DENIED
    SUMMARY: TCP Flags: SYN
------------
  TIMESTAMP: Dec  2 07:09:32.000
     SOURCE: 02:dd:01:01:00:01
DESTINATION: ff:ff:ff:ff:ff:ff
       TYPE: from-endpoint
    VERDICT: FORWARDED
    SUMMARY: Ethernet
------------
  TIMESTAMP: 
     SOURCE: OBSERVER_EVENTS_QUEUE
       TYPE: EVENTS LOST
    VERDICT: 
    SUMMARY: CPU(0) - 7
";
        assert_eq!(print(ObserveFormat::Dict, PrintOptions::default()), dict);

        // Columns: each as wide as its widest cell plus 3: TIMESTAMP 19+3,
        // SOURCE 21 ("OBSERVER_EVENTS_QUEUE")+3, DESTINATION 17+3, TYPE 28
        // ("policy-verdict:L3-L4 INGRESS")+3, VERDICT 9+3; the summary as it
        // is, the verdict column's padding kept before it.
        let rows = [
            ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"],
            ["Dec  2 07:09:29.010", "lab/ep1:43210", "lab/ep2:80", "to-endpoint", "FORWARDED", "TCP Flags: SYN"],
            ["Dec  2 07:09:29.011", "lab/ep2:80", "lab/ep1:43210", "from-endpoint", "FORWARDED", "TCP Flags: SYN, ACK"],
            ["Dec  2 07:09:30.020", "[2001:db8::1]:5353", "lab/ep2:53", "Policy denied", "DROPPED", "UDP"],
            [
                "Dec  2 07:09:31.000",
                "lab/ep1",
                "lab/ep2",
                "policy-verdict:L3-L4 INGRESS",
                "ALLOWED",
                "ICMPv4 EchoRequest",
            ],
            [
                "Dec  2 07:09:31.500",
                "lab/ep2:40000",
                "192.0.2.7:443",
                "policy-verdict:none EGRESS",
                "DENIED",
                "TCP Flags: SYN",
            ],
            ["Dec  2 07:09:32.000", "02:dd:01:01:00:01", "ff:ff:ff:ff:ff:ff", "from-endpoint", "FORWARDED", "Ethernet"],
            ["", "OBSERVER_EVENTS_QUEUE", "", "EVENTS LOST", "", "CPU(0) - 7"],
        ];
        let table: String = rows
            .iter()
            .map(|r| format!("{:<22}{:<24}{:<20}{:<31}{:<12}{}\n", r[0], r[1], r[2], r[3], r[4], r[5]))
            .collect();
        assert!(
            table.contains("FORWARDED   TCP Flags: SYN\n")
                && table.contains(&format!("EVENTS LOST{}CPU(0) - 7", " ".repeat(20 + 12)))
        );
        assert_eq!(print(ObserveFormat::Table, PrintOptions::default()), table);
        let with_node = print(ObserveFormat::Table, PrintOptions { node_name: true, ..PrintOptions::default() });
        assert!(with_node.starts_with("TIMESTAMP             NODE     SOURCE"), "{with_node}");
        assert!(with_node.lines().nth(1).unwrap().starts_with("Dec  2 07:09:29.010   node-a   lab/ep1:43210"));
    }
}
