//! `dpdbg monitor`: the datapath's events as decoded packets, filtered,
//! printed as they happen, optionally written to pcap.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use dpdbg::abi::{self, Reason};
use dpdbg::events::view;
use dpdbg::flow::{self, Filters, Flow, FlowFilter, JsonOptions, LineOptions, TypeMatch};
use dpdbg::maps::Maps;
use dpdbg::{datapath, sys};
use dpdbg_api::remote::Records;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::names::EndpointRef;
use crate::output::Printer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventType {
    Trace,
    Drop,
    PolicyVerdict,
    /// Packets the kernel dropped outside the datapath (skb:kfree_skb), with its reason.
    KernelDrop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Verdict {
    Allow,
    Deny,
}

#[derive(Debug, Args)]
pub struct MonitorCmd {
    /// Only these event types (repeatable).
    #[arg(short = 't', long = "type", value_enum, value_name = "trace|drop|policy-verdict|kernel-drop")]
    types: Vec<EventType>,
    /// Only packets one of these endpoints sent, by id or NAMESPACE/POD
    /// (repeatable: any of them, as cilium-dbg's list).
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
    from: Vec<EndpointRef>,
    /// Only packets sent to one of these endpoints, by id or NAMESPACE/POD (repeatable).
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
    to: Vec<EndpointRef>,
    /// Only events of one of these endpoints, either way, by id or NAMESPACE/POD (repeatable).
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
    related_to: Vec<EndpointRef>,
    /// Only packets from or to this address or CIDR (repeatable: any of them).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    ip: Vec<flow::Cidr>,
    /// Only packets from or to this port.
    #[arg(long)]
    port: Option<u16>,
    /// Only this protocol: tcp, udp, icmp, icmpv6 or a number.
    #[arg(long, value_parser = crate::bpf::parse_proto)]
    proto: Option<u8>,
    /// Only forwarded (allow) or dropped (deny) packets.
    #[arg(long, value_enum)]
    verdict: Option<Verdict>,
    /// Stop after COUNT matching events.
    #[arg(long = "count", value_name = "COUNT")]
    count: Option<u64>,
    /// Numbers only: identities (no "world", "host") and endpoints (no names).
    #[arg(short = 'n', long)]
    numeric: bool,
    /// JSON, one object per line (the same as -o jsonl).
    #[arg(short = 'j', long)]
    json: bool,
    /// Skip events older than this (e.g. 30s, 5m), such as those waiting in the ring.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    since: Option<Duration>,
    /// Stop after this long (e.g. 10s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    until: Option<Duration>,
    /// Show every decoded layer (-v); -vv adds a hexdump.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Show a hexdump of the captured bytes.
    #[arg(long)]
    hex: bool,
    /// Explain each drop and denied policy verdict under it: its packet
    /// traced against the maps as they are now (deciding rule, policy
    /// level, conntrack state, identity source), and whether today's
    /// answer differs from what happened.
    #[arg(long, conflicts_with = "read")]
    explain: bool,
    /// Explanations a second, at most; the rest are counted as skipped.
    #[arg(long, value_name = "N", default_value_t = crate::explain::DEFAULT_RATE, requires = "explain",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    explain_rate: u32,
    /// Write the captured packets to a pcap file ("-" for stdout).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Write the captured packets to a pcapng file ("-" for stdout): one
    /// interface block per interface (its name), and on each packet a
    /// comment with the event's verdict, drop reason, rule, identities,
    /// endpoint, policy match and conntrack state (tshark: frame.comment).
    #[arg(long, value_name = "FILE", conflicts_with = "pcap")]
    pcapng: Option<PathBuf>,
    /// Also keep the raw records in FILE (dpdbg's capture format, with the
    /// node's time base and interface names), for `monitor -r`; events are
    /// still printed.
    #[arg(short = 'w', long = "write", value_name = "FILE", conflicts_with = "read")]
    write: Option<PathBuf>,
    /// Play back a capture written with --write ("-" for stdin) instead of
    /// the live datapath, through the same filters and outputs.
    #[arg(short = 'r', long = "read", value_name = "FILE", conflicts_with_all = ["since", "until"])]
    read: Option<PathBuf>,
    /// The server (the global --server, or where `dpdbg serve` listens by default).
    #[arg(skip)]
    pub(crate) server: String,
}

/// The longest duration a flag takes: a year is past any capture an
/// operator means, and keeps every deadline inside what Instant can hold.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Bytes of lines gathered before they go to the writer.
const OUT_CHUNK: usize = 64 << 10;

/// An address or a CIDR, as observe takes them (a /32 or /128 for a bare address).
fn parse_cidr(s: &str) -> Result<flow::Cidr, String> {
    s.parse::<flow::Cidr>().map_err(|e| e.to_string())
}

/// "500ms", "10s", "5m", "1h30m", a bare number of seconds; at most a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs.min(MAX_DURATION.as_secs() + 1)),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{}: {e} (a duration like 500ms, 10s, 5m or 1h30m)", crate::output::quote(s)))?,
    };
    if d > MAX_DURATION {
        return Err(format!("{}: longer than a year; give a shorter duration", crate::output::quote(s)));
    }
    Ok(d)
}

/// What the pcap gets of an event: at most the snap length and never more
/// than the packet's own length, so a damaged record is written cut short
/// (and counted) instead of ending the capture. Returns the bytes, the
/// original length to record, and whether the record had to be cut.
fn pcap_record(data: &[u8], orig_len: u32) -> (&[u8], u32, bool) {
    let limit = data.len().min(abi::SNAPLEN_MAX as usize).min(orig_len as usize);
    (&data[..limit], orig_len.max(limit as u32), limit < data.len())
}

/// A writer the pcap writer owns while the loop can still flush it, so a
/// reader at the other end of a pipe sees packets as they come.
#[derive(Clone)]
struct Shared(std::rc::Rc<std::cell::RefCell<Box<dyn Write>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Where the packets go: --pcap, --pcapng, or nowhere.
enum Packets {
    None,
    Pcap(PcapWriter<Shared>, Shared),
    Pcapng(crate::pcapng::Writer<Box<dyn Write>>),
}

impl Packets {
    /// An event the filters left out: a denied verdict still lends its rule
    /// to the drop after it in pcapng.
    fn note(&mut self, ev: dpdbg::events::EventRef<'_>) {
        if let Packets::Pcapng(w) = self {
            w.note(ev);
        }
    }
}

/// Running totals for the summary at exit.
#[derive(Default, serde::Serialize)]
struct Summary {
    events: u64,
    matched: u64,
    trace: u64,
    drop: u64,
    policy_verdict: u64,
    kernel_drop: u64,
    lost: u64,
    undecodable: u64,
    unknown_type: u64,
    pcap_truncated: u64,
}

/// Lost events have two witnesses: the datapath counts every event it could
/// not write (`metrics`, reason 242) at once, for both transports; a perf
/// buffer also reports PERF_RECORD_LOST, but only when its next sample gets
/// through. Both count the same events, so the loss is the larger of the two.
struct LossTracker {
    kernel_base: u64,
    reported: u64,
    perf_seen: u64,
}

impl LossTracker {
    fn new(maps: &Maps) -> anyhow::Result<LossTracker> {
        Ok(LossTracker { kernel_base: lost_in_kernel(maps)?, reported: 0, perf_seen: 0 })
    }

    /// Events lost since the last call.
    fn poll(&mut self, maps: &Maps, perf_lost: u64) -> anyhow::Result<u64> {
        self.perf_seen = perf_lost;
        let total = lost_in_kernel(maps)?.saturating_sub(self.kernel_base).max(perf_lost);
        let new = total.saturating_sub(self.reported);
        self.reported = total.max(self.reported);
        Ok(new)
    }
}

fn report_loss(text: &mut (impl Write + ?Sized), p: &Printer, new: u64, sum: &mut Summary) -> std::io::Result<()> {
    if new == 0 {
        return Ok(());
    }
    // Saturating: two reports near 2^64 must not wrap to a small total.
    sum.lost = sum.lost.saturating_add(new);
    if p.is_table() {
        writeln!(text, "LOST {new} events")
    } else {
        writeln!(text, "{}", serde_json::json!({ "lost_events": new }))
    }
}

/// A count that cannot be read is an error: a zero would claim nothing was lost.
fn lost_in_kernel(maps: &Maps) -> anyhow::Result<u64> {
    let m = maps.metrics().context("reading the datapath's lost-event counter")?;
    Ok(m.iter().filter(|x| x.reason == Reason::EVENT_LOST.0).fold(0u64, |a, x| a.saturating_add(x.packets)))
}

impl MonitorCmd {
    /// The filter, endpoints named NAMESPACE/POD resolved through `names`
    /// (one no endpoint has now matches nothing).
    fn filter(&self, names: &dpdbg::maps::Names) -> Filters {
        let ids = |l: &[EndpointRef]| -> (Vec<u32>, bool) {
            let ids: Vec<u32> = l.iter().filter_map(|e| e.resolve(names)).collect();
            let gone = !l.is_empty() && ids.is_empty();
            (ids, gone)
        };
        let ((from, f_gone), (to, t_gone), (related, r_gone)) = (ids(&self.from), ids(&self.to), ids(&self.related_to));
        let now = sys::monotonic_ns();
        let f = FlowFilter {
            event_type: self
                .types
                .iter()
                .map(|t| TypeMatch {
                    r#type: match t {
                        EventType::Trace => abi::EVENT_TRACE,
                        EventType::Drop => abi::EVENT_DROP,
                        EventType::PolicyVerdict => abi::EVENT_POLICY_VERDICT,
                        EventType::KernelDrop => dpdbg::kdrop::EVENT_KERNEL_DROP,
                    },
                    subtype: None,
                })
                .collect(),
            source_endpoint: from,
            destination_endpoint: to,
            endpoint: related,
            // A list whose every name is gone: no interface has index 0.
            ifindex: if f_gone || t_gone || r_gone { vec![0] } else { vec![] },
            ip: self.ip.clone(),
            port: self.port.into_iter().collect(),
            // "any" parses to 0: no filter.
            protocol: self.proto.filter(|p| *p != 0).into_iter().collect(),
            verdict: self
                .verdict
                .map(|v| match v {
                    Verdict::Allow => abi::VERDICT_FORWARDED,
                    Verdict::Deny => abi::VERDICT_DROPPED,
                })
                .into_iter()
                .collect(),
            ..FlowFilter::default()
        };
        Filters { since_ns: self.since.map(|d| now.saturating_sub(d.as_nanos() as u64)), ..Filters::only(f) }
    }

    /// The packet capture (--pcap or --pcapng) this monitor writes, with its
    /// flag, unless it writes it to stdout.
    pub fn pcap_file(&self) -> Option<(&'static str, &Path)> {
        self.packets().filter(|(_, f)| *f != Path::new("-"))
    }

    /// Where the packets go (--pcap or --pcapng; clap lets only one be given).
    fn packets(&self) -> Option<(&'static str, &Path)> {
        match (&self.pcap, &self.pcapng) {
            (Some(f), _) => Some(("--pcap", f.as_path())),
            (_, Some(f)) => Some(("--pcapng", f.as_path())),
            _ => None,
        }
    }

    /// The capture this monitor writes or reads (--write, -r; "-" is stdin).
    pub fn capture_file(&self) -> Option<(&'static str, &Path)> {
        match (&self.write, &self.read) {
            (Some(w), _) => Some(("--write", w.as_path())),
            (_, Some(r)) => Some(("-r", r.as_path())),
            _ => None,
        }
    }

    fn printer<'a>(&self, p: &'a Printer) -> anyhow::Result<&'a Printer> {
        static JSONL: Printer = Printer::Jsonl;
        let p = if self.json { &JSONL } else { p };
        if matches!(p, Printer::Json) {
            crate::usage!(
                "monitor prints a stream, one event at a time: use -o jsonl (one JSON object per line) instead of -o json"
            );
        }
        Ok(p)
    }

    /// The packet writer (pcap or pcapng, to a file or stdout) and the text
    /// writer beside it. `snaplen` is the datapath's, for pcapng's interface blocks.
    fn outputs(&self, snaplen: u32) -> anyhow::Result<(Packets, Box<dyn Write>, bool)> {
        let pcap_to_stdout = self.packets().is_some_and(|(_, f)| f == Path::new("-"));
        let packets = match self.packets() {
            None => Packets::None,
            Some((flag, path)) => {
                let w: Box<dyn Write> = if pcap_to_stdout {
                    Box::new(BufWriter::new(std::io::stdout()))
                } else {
                    Box::new(BufWriter::new(
                        File::create(path).with_context(|| format!("{flag}: creating {}", path.display()))?,
                    ))
                };
                if flag == "--pcapng" {
                    Packets::Pcapng(
                        crate::pcapng::Writer::new(w, snaplen).context("writing the pcapng section header")?,
                    )
                } else {
                    let header =
                        PcapHeader { datalink: DataLink::ETHERNET, snaplen: abi::SNAPLEN_MAX, ..Default::default() };
                    let shared = Shared(std::rc::Rc::new(std::cell::RefCell::new(w)));
                    Packets::Pcap(
                        PcapWriter::with_header(shared.clone(), header).context("writing the pcap header")?,
                        shared,
                    )
                }
            }
        };
        // Text goes to stderr when stdout carries the packets.
        let text: Box<dyn Write> = if pcap_to_stdout {
            Box::new(std::io::stderr())
        } else {
            Box::new(BufWriter::new(std::io::stdout().lock()))
        };
        Ok((packets, text, pcap_to_stdout))
    }

    fn emitter(&self, p: Printer, packets: Packets, pcap_to_stdout: bool) -> Emitter<'_> {
        let filter = self.filter(&dpdbg::maps::Names::default());
        Emitter {
            needs_packet: filter.needs_packet(),
            // Asked once, not per event: with no filter every event passes.
            pass_all: filter.passes_all(),
            filter,
            cmd: self,
            p,
            print: pcap_to_stdout || self.packets().is_none() || self.verbose > 0 || self.hex,
            packets,
            capture: None,
            line: String::with_capacity(OUT_CHUNK + 4096),
            jbuf: Vec::with_capacity(OUT_CHUNK + 4096),
            sum: Summary::default(),
            names: std::collections::HashMap::new(),
            lookup: true,
            last_if: (0, None),
            pods: std::collections::HashMap::new(),
            explain: None,
        }
    }

    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let p = self.printer(p)?;
        if let Some(file) = self.read.clone() {
            return self.replay(&file, p);
        }
        sys::require_privileges("monitor")?;
        let settings = datapath::loaded_settings(bpffs).context("monitor")?;
        let mut reader = match Records::open(bpffs, settings.transport, &self.server) {
            Ok(r) => {
                if let Some(source) = r.source().filter(|_| p.is_table()) {
                    eprintln!("dpdbg serve holds the ring: reading its events through {source}");
                }
                r
            }
            Err(e) => return Err(anyhow::Error::new(e).context("monitor")),
        };
        let maps = Maps::open(bpffs)?;
        let deadline = self.until.and_then(|d| Instant::now().checked_add(d));
        let pins = datapath::Pins::new(bpffs);

        crate::stop::install();

        if self.packets().is_some() && settings.aggregation != datapath::Aggregation::None {
            eprintln!(
                "note: aggregation is {}: the datapath traces only new connections and TCP flag changes, so the pcap holds those packets, drops and verdicts, not every packet; `dpdbg datapath config aggregation=none` captures all of them (no reload needed)",
                format!("{:?}", settings.aggregation).to_lowercase()
            );
        }
        let (pcap, mut text, pcap_to_stdout) = self.outputs(settings.snaplen)?;
        // Event times are CLOCK_MONOTONIC; pcap wants wall-clock time.
        // Signed: a wall clock set before boot gives a negative offset.
        let wall_offset = sys::wall_offset_ns();
        let mut em = self.emitter(*p, pcap, pcap_to_stdout);
        // Names for the lines and the NAMESPACE/POD flags: read once a
        // second, never per event; a name no endpoint has is an error now.
        let names = maps.names().unwrap_or_default();
        for (flag, list) in [("--from", &self.from), ("--to", &self.to), ("--related-to", &self.related_to)] {
            crate::names::resolve_all(list, &names, flag).map_err(|e| e.context("monitor"))?;
        }
        let endpoint_names = names.pods.iter().map(|(id, p)| (*id, p.to_string())).collect();
        em.set_names(names);
        if self.explain {
            em.explain = Some(crate::explain::Explainer::new(bpffs, self.explain_rate, pcap_to_stdout));
        }
        let mut names_read = Instant::now();
        if let Some(path) = &self.write {
            let header = dpdbg::replay::Header {
                dpdbg_version: env!("CARGO_PKG_VERSION").to_string(),
                node: node_name(),
                wall_offset_ns: wall_offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
                started: flow::rfc3339(sys::monotonic_ns() as i128 + wall_offset, 9),
                transport: format!("{:?}", settings.transport).to_lowercase(),
                snaplen: settings.snaplen,
                endpoint_names,
            };
            let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            em.capture = Some(
                dpdbg::replay::Writer::new(BufWriter::new(f), &header)
                    .with_context(|| format!("writing {}", path.display()))?,
            );
        }

        if p.is_table() && !pcap_to_stdout {
            writeln!(
                text,
                "Listening for events on {} ({:?}). Press Ctrl-C to quit",
                bpffs.display(),
                settings.transport
            )?;
            text.flush()?;
        }
        let mut loss = LossTracker::new(&maps)?;
        let mut last_lost_check = Instant::now();
        let mut unloaded = false;
        let mut remote_end: Option<String> = None;
        let mut io_err: Option<std::io::Error> = None;

        while !crate::stop::requested() && !em.done() && deadline.is_none_or(|d| Instant::now() < d) {
            if let Err(e) = reader.wait(Duration::from_millis(100)) {
                remote_end = Some(e);
                break;
            }
            reader.drain(|rec| {
                if io_err.is_some() || em.done() {
                    return;
                }
                if let Err(e) = em.event(rec, wall_offset) {
                    io_err = Some(e);
                }
                // Out 64 KiB at a time, not a whole drain's (14,000 records,
                // 5 MB of JSON): lines written into memory the cache still
                // holds, and the reader's write of one chunk never waits on a
                // buffer it filled megabytes ago.
                if em.pending() >= OUT_CHUNK && io_err.is_none() {
                    io_err = em.flush_to(&mut text).err();
                }
            });
            // What the drain gathered goes out before any LOST line.
            if io_err.is_none() {
                io_err = em.flush_to(&mut text).err();
            }
            if let Some(e) = io_err.take() {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    break;
                }
                return Err(e).context("writing events");
            }
            if reader.perf_lost() > loss.perf_seen || last_lost_check.elapsed() > Duration::from_millis(500) {
                // An unloaded datapath sends nothing more: say so instead of waiting forever.
                if !pins.is_loaded() {
                    unloaded = true;
                    break;
                }
                let new = loss.poll(&maps, reader.perf_lost())?.saturating_add(reader.take_remote_lost());
                em.lost(&mut text, new)?;
                last_lost_check = Instant::now();
            }
            if names_read.elapsed() >= Duration::from_secs(1) {
                if let Ok(n) = maps.names() {
                    em.set_names(n);
                }
                names_read = Instant::now();
            }
            text.flush()?;
            em.flush_files()?;
        }
        // Losses of the last moments are reported too, while there is a
        // datapath to ask: a server's stream ends when it is unloaded, and
        // the reason, not a missing counter, is what the operator must read.
        if !unloaded && pins.is_loaded() {
            let new = loss.poll(&maps, reader.perf_lost())?.saturating_add(reader.take_remote_lost());
            em.lost(&mut text, new)?;
        }
        em.flush_files()?;
        text.flush()?;
        // The summary goes to stderr: stdout stays a clean stream for scripts.
        if em.sum.undecodable > 0 {
            // Kept where `datapath status` finds it after this monitor is gone.
            let _ = maps.count_in_metrics(Reason::EVENT_UNDECODABLE, em.sum.undecodable);
        }
        em.summary();
        if let Some(why) = remote_end {
            anyhow::bail!("the events stream from dpdbg serve ended: {why}");
        }
        if unloaded {
            anyhow::bail!(
                "the datapath under {} was unloaded: no more events will come (run `dpdbg datapath load` and start the monitor again)",
                bpffs.display()
            );
        }
        Ok(())
    }

    /// `-r FILE`: the records of a capture, through the same filters and
    /// outputs as live ones, with the capture's time base and interface names.
    fn replay(&self, file: &Path, p: &Printer) -> anyhow::Result<()> {
        let shown = file.display().to_string();
        let input: Box<dyn std::io::Read> = if file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(File::open(file).with_context(|| format!("opening {shown}"))?))
        };
        let mut r = dpdbg::replay::Reader::new(input).with_context(|| format!("monitor -r {shown}"))?;
        let wall_offset = r.header.wall_offset_ns as i128;
        let (pcap, mut text, pcap_to_stdout) = self.outputs(r.header.snaplen)?;
        // Names come from the capture: the node that wrote it may not be this one.
        if [&self.from, &self.to, &self.related_to].iter().any(|l| l.iter().any(EndpointRef::is_pod)) {
            crate::usage!(
                "monitor -r: a capture holds no endpoint names; give --from/--to/--related-to as endpoint ids"
            );
        }
        let mut em = self.emitter(*p, pcap, pcap_to_stdout);
        em.lookup = false;
        em.pods = r.header.endpoint_names.clone().into_iter().collect();
        if p.is_table() && !pcap_to_stdout {
            writeln!(
                text,
                "Reading events from {shown} (captured on {} from {}, {})",
                r.header.node, r.header.started, r.header.transport
            )?;
        }
        crate::stop::install();
        let mut failed = None;
        while !crate::stop::requested() && !em.done() {
            match r.next_frame() {
                Ok(None) => break,
                Ok(Some(dpdbg::replay::Frame::Record(rec))) => em.event(&rec, wall_offset),
                Ok(Some(dpdbg::replay::Frame::Interface { ifindex, name })) => {
                    em.names.insert(ifindex, Some(name));
                    Ok(())
                }
                Ok(Some(dpdbg::replay::Frame::Lost(n))) => {
                    em.flush_to(&mut text).and_then(|()| em.lost(&mut text, n).map_err(std::io::Error::other))
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            .or_else(|e| if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })
            .context("writing events")?;
            if em.line.len() >= OUT_CHUNK || em.jbuf.len() >= OUT_CHUNK {
                em.flush_to(&mut text)?;
            }
        }
        // What could be read is printed before the error that stopped it.
        em.flush_to(&mut text)?;
        em.flush_files()?;
        text.flush()?;
        em.summary();
        if let Some(e) = failed {
            return Err(anyhow::Error::new(e).context(format!("monitor -r {shown}")));
        }
        Ok(())
    }
}

/// The node's host name, for capture headers.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Everything one event goes through after it is read, live or from a
/// capture: the filters, the counts, and every output (text or JSON lines,
/// pcap, the capture file).
struct Emitter<'a> {
    cmd: &'a MonitorCmd,
    p: Printer,
    filter: Filters,
    needs_packet: bool,
    pass_all: bool,
    packets: Packets,
    capture: Option<dpdbg::replay::Writer<BufWriter<File>>>,
    /// Whether events are printed (not when only a pcap file is written).
    print: bool,
    line: String,
    jbuf: Vec<u8>,
    sum: Summary,
    /// Interface names by ifindex, looked up once each (a lookup per event
    /// would cost a syscall), or given by a capture.
    names: std::collections::HashMap<u32, Option<String>>,
    /// Ask the kernel for names not known yet (live), or not (replay).
    lookup: bool,
    /// The last one is kept at hand: a flood is mostly one interface.
    last_if: (u32, Option<String>),
    /// Endpoint names (`lab/ep1`) by id, from the last read of the names
    /// (live only; `-n` prints none).
    pods: std::collections::HashMap<u32, String>,
    /// --explain: drops and denials explained beside them, rate-limited.
    explain: Option<crate::explain::Explainer>,
}

impl Emitter<'_> {
    /// The names read now: the lines' endpoint names, and the filter again
    /// when a flag names an endpoint NAMESPACE/POD.
    fn set_names(&mut self, names: dpdbg::maps::Names) {
        let cmd = self.cmd;
        if [&cmd.from, &cmd.to, &cmd.related_to].iter().any(|l| l.iter().any(EndpointRef::is_pod)) {
            let filter = cmd.filter(&names);
            self.needs_packet = filter.needs_packet();
            self.pass_all = filter.passes_all();
            self.filter = Filters { since_ns: self.filter.since_ns, ..filter };
        }
        self.pods = names.pods.into_iter().map(|(id, p)| (id, p.to_string())).collect();
    }

    fn done(&self) -> bool {
        self.cmd.count.is_some_and(|c| self.sum.matched >= c)
    }

    fn event(&mut self, rec: &[u8], wall_offset: i128) -> std::io::Result<()> {
        self.sum.events += 1;
        let Ok(ev) = view(rec) else {
            self.sum.undecodable += 1;
            return Ok(());
        };
        // Most filters decide on the header: an event they drop is never decoded.
        if !(self.pass_all || self.needs_packet || self.filter.admits(ev, None)) {
            self.packets.note(ev);
            return Ok(());
        }
        let f = Flow::from_event(ev);
        if self.needs_packet && !self.pass_all && !self.filter.admits(ev, Some(&f.packet)) {
            self.packets.note(ev);
            return Ok(());
        }
        self.sum.matched += 1;
        match ev.hdr.r#type {
            abi::EVENT_TRACE => self.sum.trace += 1,
            abi::EVENT_DROP => self.sum.drop += 1,
            abi::EVENT_POLICY_VERDICT => self.sum.policy_verdict += 1,
            dpdbg::kdrop::EVENT_KERNEL_DROP => self.sum.kernel_drop += 1,
            _ => self.sum.unknown_type += 1,
        }
        if let Packets::Pcap(w, _) = &mut self.packets {
            let ns = (ev.hdr.timestamp_ns as i128 + wall_offset).clamp(0, u64::MAX as i128) as u64;
            let (data, orig_len, cut) = pcap_record(ev.data, ev.hdr.orig_len);
            self.sum.pcap_truncated += cut as u64;
            w.write_packet(&PcapPacket::new(Duration::from_nanos(ns), orig_len, data))
                .map_err(std::io::Error::other)?;
        }
        let pcapng = matches!(self.packets, Packets::Pcapng(_));
        if !self.print && self.capture.is_none() && !pcapng {
            return Ok(());
        }
        // A kernel drop inside an endpoint's namespace has that namespace's
        // ifindex: no name of this node's is its name.
        let host_if = dpdbg::kdrop::host_ifindex(&ev.hdr);
        if host_if
            && (self.last_if.0 != f.ifindex || (self.last_if.1.is_none() && !self.names.contains_key(&f.ifindex)))
        {
            let lookup = self.lookup;
            let name =
                self.names.entry(f.ifindex).or_insert_with(|| if lookup { sys::ifname(f.ifindex) } else { None });
            self.last_if = (f.ifindex, name.clone());
        }
        let ifname = if host_if { self.last_if.1.as_deref() } else { None };
        if let Some(c) = self.capture.as_mut() {
            c.record(rec, f.ifindex, ifname)?;
        }
        if let Packets::Pcapng(w) = &mut self.packets {
            let endpoint = self.pods.get(&f.endpoint_id).map(String::as_str);
            let cx = crate::pcapng::Context { interface: ifname, endpoint, wall_offset_ns: wall_offset };
            self.sum.pcap_truncated += w.write(ev, &f, cx)? as u64;
        }
        if !self.print {
            return Ok(());
        }
        let cmd = self.cmd;
        match self.p {
            Printer::Table => {
                // The time and the interface go straight into the
                // line: no String per event for either. Lines gather
                // here and reach the writer 64 KiB at a time: a copy
                // into its buffer per event was a tenth of the time.
                let line = &mut self.line;
                flow::push_rfc3339(line, f.timestamp_ns as i128 + wall_offset, 6);
                line.push(' ');
                let endpoint = self.pods.get(&f.endpoint_id).map(String::as_str);
                let o = LineOptions { numeric: cmd.numeric, interface: ifname, endpoint };
                let _ = flow::write_line_with(line, &f, o);
                line.push('\n');
                if cmd.verbose > 0 {
                    let _ = flow::write_verbose(line, ev.data);
                }
                if cmd.hex || cmd.verbose > 1 {
                    let _ = flow::hexdump(line, ev.data);
                }
                if let Some(x) = self.explain.as_mut() {
                    x.text(line, &ev);
                }
            }
            Printer::Json | Printer::Jsonl => {
                let endpoint = self.pods.get(&f.endpoint_id).map(String::as_str);
                let o = JsonOptions { wall_offset_ns: Some(wall_offset), interface: ifname, endpoint };
                f.write_json_with(&mut self.jbuf, o);
                if let Some(x) = self.explain.as_mut() {
                    x.json(&mut self.jbuf, &ev);
                }
                self.jbuf.push(b'\n');
            }
        }
        Ok(())
    }

    /// Bytes of lines gathered and not written out yet.
    fn pending(&self) -> usize {
        self.line.len() + self.jbuf.len()
    }

    /// Writes out the lines gathered so far.
    fn flush_to(&mut self, text: &mut dyn Write) -> std::io::Result<()> {
        let r = text.write_all(self.line.as_bytes()).and_then(|()| text.write_all(&self.jbuf));
        self.line.clear();
        self.jbuf.clear();
        r
    }

    fn flush_files(&mut self) -> anyhow::Result<()> {
        match &mut self.packets {
            Packets::Pcap(_, shared) => shared.flush()?,
            Packets::Pcapng(w) => w.get_mut().flush()?,
            Packets::None => {}
        }
        if let Some(c) = self.capture.as_mut() {
            c.flush().context("writing the capture")?;
        }
        Ok(())
    }

    /// Events lost at this point: said, counted, and kept in the capture.
    fn lost(&mut self, text: &mut dyn Write, n: u64) -> anyhow::Result<()> {
        if n > 0
            && let Some(c) = self.capture.as_mut()
        {
            c.lost(n).context("writing the capture")?;
        }
        report_loss(text, &self.p, n, &mut self.sum)?;
        Ok(())
    }

    fn summary(&self) {
        let sum = &self.sum;
        let mut extra = String::new();
        if let Some(x) = &self.explain {
            extra.push_str(&x.summary_text());
            if !self.p.is_table() {
                x.summary_json();
            }
        }
        for (n, what) in [
            (sum.kernel_drop, "kernel drops"),
            (sum.unknown_type, "of unknown type"),
            (sum.undecodable, "undecodable"),
            (sum.pcap_truncated, "cut short in the capture (damaged records)"),
        ] {
            if n > 0 {
                extra.push_str(&format!(", {n} {what}"));
            }
        }
        eprintln!(
            "Received {} events, {} matched (trace {}, drop {}, policy-verdict {}), lost {}{extra}",
            sum.events, sum.matched, sum.trace, sum.drop, sum.policy_verdict, sum.lost,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, item 18: two reports of 2^64-1 lost events wrapped to
    /// 2^64-2 in the summary (and panicked in a debug build).
    #[test]
    fn lost_totals_saturate() {
        let mut sum = Summary::default();
        let mut out = Vec::new();
        for _ in 0..2 {
            report_loss(&mut out, &Printer::Table, u64::MAX, &mut sum).unwrap();
        }
        assert_eq!(sum.lost, u64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), "LOST 18446744073709551615 events\n".repeat(2));
        let mut out = Vec::new();
        report_loss(&mut out, &Printer::Jsonl, 1, &mut sum).unwrap();
        assert_eq!(sum.lost, u64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), "{\"lost_events\":1}\n");
    }

    #[test]
    fn damaged_records_are_cut_for_the_pcap_not_fatal() {
        let snap = abi::SNAPLEN_MAX as usize;
        let data = vec![7u8; snap + 44];
        // Longer than the snap length: cut to it.
        assert_eq!(pcap_record(&data, 10_000), (&data[..snap], 10_000, true));
        // Longer than the packet it claims to be: cut to the packet, counted.
        assert_eq!(pcap_record(&data[..100], 60), (&data[..60], 60, true));
        // Honest records pass as they are.
        assert_eq!(pcap_record(&data[..98], 98), (&data[..98], 98, false));
        assert_eq!(pcap_record(&data[..0], 0), (&data[..0], 0, false));
        // What is written from them, tcpdump reads back whole.
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = PcapWriter::with_header(
            std::fs::File::create(file.path()).unwrap(),
            PcapHeader { datalink: DataLink::ETHERNET, snaplen: abi::SNAPLEN_MAX, ..Default::default() },
        )
        .unwrap();
        for (d, o) in [(&data[..], 10_000u32), (&data[..100], 60)] {
            let (bytes, orig, _) = pcap_record(d, o);
            w.write_packet(&PcapPacket::new(Duration::ZERO, orig, bytes)).unwrap();
        }
        w.into_writer().sync_all().unwrap();
        let out = std::process::Command::new("tcpdump").arg("-nr").arg(file.path()).output().expect("tcpdump");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    }
}
