//! `dpdbg observe`: flows from `dpdbg serve`, for Hubble users — Hubble's
//! flags, filters and output shapes over the same Observer API.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use dpdbg_api::flow::{self, FlowFilter};
use dpdbg_api::observer::GetFlowsRequest;

/// How `observe` prints, from the global -o: Hubble's shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObserveFormat {
    Compact,
    Dict,
    Json,
    Table,
}

impl ObserveFormat {
    /// `-o table` is also the global default: only when given on the command line is it a table here; otherwise Hubble's default, compact.
    pub fn from_global(f: crate::output::Format, explicit: bool) -> ObserveFormat {
        use crate::output::Format;
        match f {
            Format::Json | Format::Jsonpb | Format::Jsonl => ObserveFormat::Json,
            Format::Dict => ObserveFormat::Dict,
            Format::Table if explicit => ObserveFormat::Table,
            Format::Table | Format::Compact | Format::Junit => ObserveFormat::Compact,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerdictArg {
    #[value(name = "FORWARDED", alias = "forwarded")]
    Forwarded,
    #[value(name = "DROPPED", alias = "dropped")]
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Trace,
    Drop,
    PolicyVerdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    Ingress,
    Egress,
}

#[derive(Debug, Args)]
pub struct ObserveCmd {
    /// The server (the global --server, or where `dpdbg serve` listens by default).
    #[arg(skip)]
    pub(crate) server: String,
    /// Keep streaming new flows.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The last N flows (default 20 without --follow).
    #[arg(long, value_name = "N", conflicts_with_all = ["first", "all"])]
    last: Option<u64>,
    /// The first N flows the server still holds.
    #[arg(long, value_name = "N", conflicts_with_all = ["follow", "all"])]
    first: Option<u64>,
    /// Every flow the server holds.
    #[arg(long)]
    all: bool,
    /// Flows since this time: RFC 3339, or a duration ago (5m).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    since: Option<prost_types::Timestamp>,
    /// Flows until this time: RFC 3339, a duration ago, or +DURATION from now.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    until: Option<prost_types::Timestamp>,
    /// Source or destination IP or CIDR (repeatable: any matches).
    #[arg(long, value_name = "CIDR", value_parser = cidr)]
    ip: Vec<String>,
    /// Source IP or CIDR (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = cidr)]
    from_ip: Vec<String>,
    /// Destination IP or CIDR (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = cidr)]
    to_ip: Vec<String>,
    /// Source or destination port.
    #[arg(long)]
    port: Vec<u16>,
    /// Source port (repeatable).
    #[arg(long)]
    from_port: Vec<u16>,
    /// Destination port (repeatable).
    #[arg(long)]
    to_port: Vec<u16>,
    /// tcp, udp, icmpv4, icmpv6 (repeatable).
    #[arg(long, value_parser = protocol)]
    protocol: Vec<String>,
    /// FORWARDED or DROPPED (repeatable).
    #[arg(long, value_enum)]
    verdict: Vec<VerdictArg>,
    /// Event type: trace, drop, policy-verdict.
    #[arg(short = 't', long = "type", value_enum)]
    types: Vec<TypeArg>,
    /// TCP flags that must be set, e.g. SYN or SYN,ACK.
    #[arg(long, value_name = "FLAGS", value_parser = tcp_flags)]
    tcp_flags: Vec<flow::TcpFlags>,
    /// Source or destination identity.
    #[arg(long)]
    identity: Vec<u32>,
    /// Source identity (repeatable).
    #[arg(long)]
    from_identity: Vec<u32>,
    /// Destination identity (repeatable).
    #[arg(long)]
    to_identity: Vec<u32>,
    /// Source or destination pod: [NAMESPACE/]POD-PREFIX (repeatable).
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    pod: Vec<String>,
    /// Source pod: [NAMESPACE/]POD-PREFIX (repeatable).
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    from_pod: Vec<String>,
    /// Destination pod: [NAMESPACE/]POD-PREFIX (repeatable).
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    to_pod: Vec<String>,
    /// Source or destination namespace (repeatable).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    namespace: Vec<String>,
    /// Source namespace (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    from_namespace: Vec<String>,
    /// Destination namespace (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    to_namespace: Vec<String>,
    /// Source or destination label selector, as Kubernetes writes one
    /// (app=web, tier in (a,b), !canary; a key may carry its source, k8s:app).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    label: Vec<String>,
    /// Source label selector (repeatable).
    #[arg(long, value_name = "SELECTOR")]
    from_label: Vec<String>,
    /// Destination label selector (repeatable).
    #[arg(long, value_name = "SELECTOR")]
    to_label: Vec<String>,
    /// ingress or egress (repeatable).
    #[arg(long, value_enum)]
    traffic_direction: Vec<DirectionArg>,
    /// IPv4 flows only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    ipv4: bool,
    /// IPv6 flows only.
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
    /// Drop reason, by cilium's name (POLICY_DENIED, POLICY_DENY, …) or number.
    #[arg(long, value_name = "REASON", value_parser = drop_reason)]
    drop_reason_desc: Vec<i32>,
    /// The interface the flow was seen on, by name.
    #[arg(long, value_name = "NAME")]
    interface: Vec<String>,
    /// Negate the filter flag that follows: flows matching it are left out.
    #[arg(long = "not", action = clap::ArgAction::Count)]
    not: u8,
    /// Print the filters sent to the server and stop.
    #[arg(long)]
    print_raw_filters: bool,
    /// How times are printed, by Hubble's names: StampMilli (Dec  2
    /// 07:09:29.010, the default), YearMonthDay, YearMonthDayHour,
    /// YearMonthDayHourMinute, RFC3339, RFC3339Milli, RFC3339Micro,
    /// RFC3339Nano, RFC1123Z; always in UTC. Not for -o json.
    #[arg(long, value_name = "NAME", default_value = "StampMilli", value_parser = crate::observe_print::parse_time_format)]
    time_format: crate::observe_print::TimeFormat,
    /// Print each flow's node name.
    #[arg(long)]
    print_node_name: bool,
    /// Print pods in place of their addresses (`--ip-translation=false`: addresses).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    ip_translation: bool,
    /// Everything as numbers: addresses, not pods (as --ip-translation=false).
    #[arg(long)]
    numeric: bool,
    /// Read flows from FILE ("-" for stdin) instead of a server: Hubble's
    /// JSON, one response per line (`hubble observe -o json`, `dpdbg
    /// observe -o json`). Every flow it holds unless --last or --first.
    #[arg(long, value_name = "FILE|-", conflicts_with = "follow")]
    input_file: Option<std::path::PathBuf>,
    /// Explain each dropped or denied flow under it: the node that served
    /// it traces its packet against its maps as they are now (through
    /// dpdbg.v1.Commands: `dpdbg explain` on the node) and names the
    /// deciding rule, policy level, conntrack state and identity source.
    #[arg(long, conflicts_with = "input_file")]
    explain: bool,
    /// Explanations a second, at most; the rest are counted as skipped.
    #[arg(long, value_name = "N", default_value_t = crate::explain::DEFAULT_RATE, requires = "explain",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    explain_rate: u32,
    /// Write the packets of the flows chosen to a pcapng file ("-" for
    /// stdout) instead of printing them, each with a comment naming its
    /// verdict, drop reason, rule, identities, endpoint and conntrack state:
    /// the server's records of flows that happened before anyone asked (as
    /// `monitor --pcapng` writes them live). Needs the unix socket or mutual TLS.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["input_file", "print_raw_filters"])]
    pcapng: Option<std::path::PathBuf>,
}

/// The filter flags alone, parsed again from the words `--not` negated.
#[derive(Debug, clap::Parser)]
#[command(no_binary_name = true)]
struct Negated {
    #[command(flatten)]
    cmd: ObserveCmd,
    // The global flags may stand among observe's: taken and ignored here.
    #[arg(short = 'o', long = "output", hide = true)]
    _output: Option<String>,
    #[arg(long = "bpffs", hide = true)]
    _bpffs: Option<String>,
}

/// Flags that take a value and filter (what `--not` can negate).
const FILTER_FLAGS: &[&str] = &[
    "--ip",
    "--from-ip",
    "--to-ip",
    "--port",
    "--from-port",
    "--to-port",
    "--protocol",
    "--verdict",
    "--type",
    "-t",
    "--tcp-flags",
    "--identity",
    "--from-identity",
    "--to-identity",
    "--traffic-direction",
    "--drop-reason-desc",
    "--interface",
    "--pod",
    "--from-pod",
    "--to-pod",
    "--namespace",
    "-n",
    "--from-namespace",
    "--to-namespace",
    "--label",
    "-l",
    "--from-label",
    "--to-label",
];

/// Splits the command line after `observe` into the words `--not` negates
/// (each `--not --flag value`) and the rest.
fn split_negated(args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut kept, mut negated) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--not" && i + 1 < args.len() {
            let flag = &args[i + 1];
            let (name, inline) = match flag.split_once('=') {
                Some((n, _)) => (n, true),
                None => (flag.as_str(), false),
            };
            if FILTER_FLAGS.contains(&name) {
                negated.push(flag.clone());
                if !inline && i + 2 < args.len() {
                    negated.push(args[i + 2].clone());
                    i += 3;
                } else {
                    i += 2;
                }
                continue;
            }
        }
        kept.push(args[i].clone());
        i += 1;
    }
    (kept, negated)
}

/// RFC 3339 ("2026-11-25T13:00:00Z"), a duration ago ("5m"), or one from
/// now ("+3s": `-f --until +3s` follows for three seconds).
fn parse_time(s: &str) -> Result<prost_types::Timestamp, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
        return Ok(prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 });
    }
    let (ahead, d) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let d = crate::monitor::parse_duration(d)
        .map_err(|_| format!("{s:?}: an RFC 3339 time, a duration ago like 5m, or one from now like +5m"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let t = if ahead { now.saturating_add(d) } else { now.saturating_sub(d) };
    Ok(prost_types::Timestamp { seconds: t.as_secs() as i64, nanos: t.subsec_nanos() as i32 })
}

// Filter values are checked here, with the parsers the server uses, so a
// bad one is a usage error naming its flag before any server is dialled
// (as monitor's flags are), not the server's INVALID_ARGUMENT after.

/// An address or CIDR, as the server will parse it; sent as given.
fn cidr(s: &str) -> Result<String, String> {
    s.parse::<dpdbg::flow::Cidr>().map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// A protocol name or number, as the server will parse it; sent as given.
fn protocol(s: &str) -> Result<String, String> {
    dpdbg::flow::parse_protocol(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// Hubble's TCPFlags from names, through the core's parser.
fn tcp_flags(s: &str) -> Result<flow::TcpFlags, String> {
    let m = dpdbg::flow::parse_tcp_flags(s).map_err(|e| e.to_string())?;
    let on = |bit: u8| m & bit != 0;
    Ok(flow::TcpFlags {
        fin: on(0x01),
        syn: on(0x02),
        rst: on(0x04),
        psh: on(0x08),
        ack: on(0x10),
        urg: on(0x20),
        ece: on(0x40),
        cwr: on(0x80),
        ns: false,
    })
}

/// A drop reason by Hubble's name (POLICY_DENIED) or cilium's number (133).
fn drop_reason(s: &str) -> Result<i32, String> {
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| flow::DropReason::try_from(*n).is_ok())
        .or_else(|| flow::DropReason::from_str_name(&s.trim().to_ascii_uppercase()).map(|d| d as i32))
        .ok_or_else(|| format!("drop reason {s:?}: a name such as POLICY_DENIED or a number such as 133"))
}

impl ObserveCmd {
    /// Hubble's rule: the flags build one filter; an "either side" flag
    /// (--ip, --port, --identity) makes a source and a destination variant.
    fn whitelist(&self) -> anyhow::Result<Vec<FlowFilter>> {
        let mut base = FlowFilter {
            source_ip: self.from_ip.clone(),
            destination_ip: self.to_ip.clone(),
            source_port: self.from_port.iter().map(u16::to_string).collect(),
            destination_port: self.to_port.iter().map(u16::to_string).collect(),
            protocol: self.protocol.iter().map(|p| p.to_ascii_lowercase()).collect(),
            verdict: self
                .verdict
                .iter()
                .map(|v| match v {
                    VerdictArg::Forwarded => flow::Verdict::Forwarded as i32,
                    VerdictArg::Dropped => flow::Verdict::Dropped as i32,
                })
                .collect(),
            event_type: self
                .types
                .iter()
                .map(|t| flow::EventTypeFilter {
                    r#type: match t {
                        TypeArg::Trace => dpdbg::abi::EVENT_TRACE,
                        TypeArg::Drop => dpdbg::abi::EVENT_DROP,
                        TypeArg::PolicyVerdict => dpdbg::abi::EVENT_POLICY_VERDICT,
                    } as i32,
                    ..Default::default()
                })
                .collect(),
            source_identity: self.from_identity.clone(),
            destination_identity: self.to_identity.clone(),
            // A namespace is every pod of it: Hubble's "NAMESPACE/".
            source_pod: self
                .from_pod
                .iter()
                .cloned()
                .chain(self.from_namespace.iter().map(|n| format!("{n}/")))
                .collect(),
            destination_pod: self
                .to_pod
                .iter()
                .cloned()
                .chain(self.to_namespace.iter().map(|n| format!("{n}/")))
                .collect(),
            source_label: self.from_label.clone(),
            destination_label: self.to_label.clone(),
            traffic_direction: self
                .traffic_direction
                .iter()
                .map(|d| match d {
                    DirectionArg::Ingress => flow::TrafficDirection::Ingress as i32,
                    DirectionArg::Egress => flow::TrafficDirection::Egress as i32,
                })
                .collect(),
            ..Default::default()
        };
        base.tcp_flags = self.tcp_flags.clone();
        base.drop_reason_desc = self.drop_reason_desc.clone();
        base.interface =
            self.interface.iter().map(|name| flow::NetworkInterface { index: 0, name: name.clone() }).collect();
        if self.ipv4 {
            base.ip_version.push(flow::IpVersion::IPv4 as i32);
        }
        if self.ipv6 {
            base.ip_version.push(flow::IpVersion::IPv6 as i32);
        }
        let mut out = vec![base];
        let split = |out: Vec<FlowFilter>, src: &dyn Fn(&mut FlowFilter), dst: &dyn Fn(&mut FlowFilter)| {
            out.into_iter()
                .flat_map(|f| {
                    let (mut a, mut b) = (f.clone(), f);
                    src(&mut a);
                    dst(&mut b);
                    [a, b]
                })
                .collect::<Vec<_>>()
        };
        if !self.ip.is_empty() {
            let ip = self.ip.clone();
            out = split(out, &|f| f.source_ip.extend(ip.clone()), &|f| f.destination_ip.extend(ip.clone()));
        }
        if !self.port.is_empty() {
            let p: Vec<String> = self.port.iter().map(u16::to_string).collect();
            out = split(out, &|f| f.source_port.extend(p.clone()), &|f| f.destination_port.extend(p.clone()));
        }
        if !self.identity.is_empty() {
            let i = self.identity.clone();
            out = split(out, &|f| f.source_identity.extend(i.clone()), &|f| f.destination_identity.extend(i.clone()));
        }
        let pods: Vec<String> =
            self.pod.iter().cloned().chain(self.namespace.iter().map(|n| format!("{n}/"))).collect();
        if !pods.is_empty() {
            out = split(out, &|f| f.source_pod.extend(pods.clone()), &|f| f.destination_pod.extend(pods.clone()));
        }
        if !self.label.is_empty() {
            let l = self.label.clone();
            out = split(out, &|f| f.source_label.extend(l.clone()), &|f| f.destination_label.extend(l.clone()));
        }
        Ok(out.into_iter().filter(|f| *f != FlowFilter::default()).collect())
    }

    pub fn run(self, _bpffs: &Path, format: ObserveFormat) -> anyhow::Result<()> {
        // `--not FLAG VALUE`: the flag's filter goes to the blacklist.
        let (this, negated) = if self.not > 0 {
            // The global flags (--server, TLS, -o) are this command's already.
            let all: Vec<String> = std::env::args().skip_while(|a| a != "observe").skip(1).collect();
            let args = crate::remote::forwarded_args(&all);
            let (kept, neg) = split_negated(&args);
            let parse = |words: Vec<String>| {
                <Negated as clap::Parser>::try_parse_from(words)
                    .map(|n| n.cmd)
                    .map_err(|e| anyhow::Error::new(crate::output::UsageError(crate::output::clap_message(&e))))
            };
            let mut this = parse(kept)?;
            this.server = self.server.clone();
            (this, Some(parse(neg)?))
        } else {
            (self, None)
        };
        this.run_with(format, negated)
    }

    fn run_with(self, format: ObserveFormat, negated: Option<ObserveCmd>) -> anyhow::Result<()> {
        let whitelist = self.whitelist()?;
        let blacklist = match &negated {
            Some(n) => n.whitelist()?,
            None => vec![],
        };
        let want = match (self.last, self.first, self.all, self.follow) {
            (Some(n), _, _, _) | (_, Some(n), _, _) => n,
            (_, _, true, _) => 0,
            (_, _, _, true) => 0,
            _ if self.since.is_some() || self.until.is_some() || self.input_file.is_some() => 0,
            _ => 20,
        };
        let req = GetFlowsRequest {
            number: want,
            first: self.first.is_some(),
            follow: self.follow,
            whitelist,
            blacklist,
            since: self.since,
            until: self.until,
        };
        if self.print_raw_filters {
            // As hubble prints them: one JSON filter per line under each list.
            println!("allowlist:");
            for f in &req.whitelist {
                println!("    - '{}'", dpdbg_api::json::filter(f));
            }
            println!("denylist:");
            for f in &req.blacklist {
                println!("    - '{}'", dpdbg_api::json::filter(f));
            }
            return Ok(());
        }
        if let Some(path) = &self.pcapng {
            return crate::observe_pcapng::run(&self.server, req, path);
        }
        // As Hubble: a table is aligned over all its rows, so it waits for the end.
        if format == ObserveFormat::Table && self.follow {
            return Err(anyhow::Error::new(crate::output::UsageError(
                "table output format is not compatible with follow mode (-f): use -o compact, dict or json".into(),
            )));
        }
        if self.explain && format == ObserveFormat::Table {
            return Err(anyhow::Error::new(crate::output::UsageError(
                "--explain prints a line under each flow, and a table is aligned over all its rows: use -o compact, dict or json".into(),
            )));
        }
        let mut printer = crate::observe_print::Printer::new(
            format,
            crate::observe_print::PrintOptions {
                time: self.time_format,
                node_name: self.print_node_name,
                translate: self.ip_translation && !self.numeric,
            },
        );
        if let Some(path) = &self.input_file {
            return crate::observe_file::run(path, &req, &mut printer);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the async runtime")?;
        rt.block_on(async move {
            let mut client = dpdbg_api::client::observer(&self.server).await?;
            // The server's own words, not tonic's rendering of the status.
            let server = self.server.clone();
            let refused = move |s: dpdbg_api::tonic::Status| refused(&server, s);
            let mut stream = client.get_flows(req).await.map_err(&refused)?.into_inner();
            let mut explainer =
                self.explain.then(|| crate::explain::FlowExplainer::new(&self.server, self.explain_rate));
            let mut out = std::io::stdout().lock();
            use std::io::Write;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(3600), stream.message()).await;
                let Ok(msg) = msg else { continue };
                let Some(r) = msg.map_err(&refused)? else { break };
                match explainer.as_mut() {
                    Some(x) => x.write(&mut printer, format == ObserveFormat::Json, &mut out, &r).await?,
                    None => printer.write(&mut out, &r)?,
                }
                out.flush()?;
            }
            printer.finish(&mut out)?;
            if let Some(x) = &explainer {
                x.finish();
            }
            out.flush()?;
            anyhow::Ok(())
        })
    }
}

/// A status the server ended GetFlows with, in the server's own words (not
/// tonic's rendering). INVALID_ARGUMENT is a filter the server could not
/// take: a usage error (exit 2), as the same value is when checked here.
fn refused(server: &str, s: dpdbg_api::tonic::Status) -> anyhow::Error {
    let message = format!("GetFlows at {server}: {}", s.message());
    if s.code() == dpdbg_api::tonic::Code::InvalidArgument {
        anyhow::Error::new(crate::output::UsageError(message))
    } else {
        anyhow::anyhow!(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdbg_api::tonic::Status;

    /// Issue 25, item 14: a server's INVALID_ARGUMENT (a filter it could not
    /// take) exited 1 although the same value refused here exits 2.
    #[test]
    fn a_filter_the_server_refuses_is_a_usage_error() {
        let e = refused("/run/dpdbg/dpdbg.sock", Status::invalid_argument("\"10.0.0/8\" is not an IP address"));
        assert_eq!(crate::output::exit_code(&e), 2);
        assert_eq!(e.to_string(), "GetFlows at /run/dpdbg/dpdbg.sock: \"10.0.0/8\" is not an IP address");
        let e = refused("/run/dpdbg/dpdbg.sock", Status::unavailable("the datapath was unloaded"));
        assert_eq!(crate::output::exit_code(&e), 1);
    }
}
