//! `dpdbg datapath …`

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use dpdbg::datapath::{self, Aggregation, AttachMode, LoadState, Settings, Transport};

use crate::output::{Printer, table};

const COL_INTERFACE: &str = "INTERFACE";
const COL_IFINDEX: &str = "IFINDEX";
const COL_HOOK: &str = "HOOK";
const COL_PROGRAM: &str = "PROGRAM";
const COL_MODE: &str = "MODE";
const COL_STATE: &str = "STATE";

/// The datapath's load-time settings: `datapath load`'s flags, and
/// `serve --load`'s.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Where events go: a BPF ring buffer, or a perf event array (one buffer per CPU).
    #[arg(long = "events", default_value = "ringbuf", value_name = "ringbuf|perf")]
    pub transport: Transport,
    /// Bytes of each packet copied into its event (0 to 9216, a jumbo frame; 1518 takes a whole Ethernet frame).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=dpdbg::abi::SNAPLEN_MAX as i64))]
    pub snaplen: u32,
    /// Trace events: none = every packet, medium = new connections and TCP flag changes, maximum = no traces.
    #[arg(long, default_value = "medium", value_name = "none|medium|maximum")]
    pub aggregation: Aggregation,
    /// Print drop reasons to the kernel trace pipe as well.
    #[arg(long)]
    pub debug: bool,
    /// Override a map's size, e.g. --map-size ct4=1048576 (repeatable).
    #[arg(long = "map-size", value_name = "MAP=ENTRIES", value_parser = parse_map_size)]
    pub map_sizes: Vec<(String, u32)>,
}

impl LoadArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            transport: self.transport,
            snaplen: self.snaplen,
            aggregation: self.aggregation,
            debug: self.debug,
            max_entries: self.map_sizes.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DatapathCmd {
    /// Load the datapath and pin its programs and maps under <bpffs>/dpdbg/.
    Load(LoadArgs),
    /// Detach from every interface and remove every program, link and map pin.
    Unload,
    /// Attach the datapath to the TC ingress and egress of each interface.
    Attach {
        /// Interfaces to attach to (the host side of each endpoint's veth).
        #[arg(required = true, value_name = "IFACE", value_parser = crate::ifname)]
        interfaces: Vec<String>,
        /// tcx (kernel 6.6+, default when available) or clsact.
        #[arg(long, value_name = "tcx|clsact")]
        mode: Option<AttachMode>,
    },
    /// Detach the datapath from each interface.
    Detach {
        #[arg(required = true, value_name = "IFACE", value_parser = crate::ifname)]
        interfaces: Vec<String>,
    },
    /// Show what is loaded: programs, attached interfaces, maps, settings.
    Status,
    /// Show the settings, or change the run-time ones without a reload
    /// (e.g. `dpdbg datapath config aggregation=none`).
    Config {
        /// KEY=VALUE pairs: aggregation=none|medium|maximum, debug=true|false
        /// (also cilium's MonitorAggregation= and Debug=).
        #[arg(value_name = "KEY=VALUE", value_parser = parse_setting)]
        changes: Vec<Setting>,
    },
}

/// One run-time setting change.
#[derive(Clone, Debug)]
pub enum Setting {
    Aggregation(Aggregation),
    Debug(bool),
    KernelDrops(bool),
}

/// Settings fixed at load time: named so the refusal can say how to change them.
const LOAD_TIME_KEYS: &[(&str, &str)] =
    &[("events", "--events"), ("transport", "--events"), ("snaplen", "--snaplen"), ("map-size", "--map-size")];

pub(crate) fn parse_setting(s: &str) -> Result<Setting, String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected KEY=VALUE, e.g. aggregation=none"))?;
    let key = k.trim().to_ascii_lowercase().replace('_', "-");
    let v = v.trim();
    match key.as_str() {
        "aggregation" | "monitoraggregation" => {
            let level = match v.to_ascii_lowercase().as_str() {
                "none" | "disabled" => Aggregation::None,
                "medium" | "low" => Aggregation::Medium,
                "maximum" | "max" => Aggregation::Maximum,
                _ => return Err(format!("aggregation {v:?}: use none, medium or maximum")),
            };
            Ok(Setting::Aggregation(level))
        }
        "kernel-drops" | "kerneldrops" => match v.to_ascii_lowercase().as_str() {
            "on" | "true" | "enabled" | "1" => Ok(Setting::KernelDrops(true)),
            "off" | "false" | "disabled" | "0" => Ok(Setting::KernelDrops(false)),
            _ => Err(format!("kernel-drops {v:?}: use on or off")),
        },
        "debug" => match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "enabled" | "1" => Ok(Setting::Debug(true)),
            "false" | "off" | "disabled" | "0" => Ok(Setting::Debug(false)),
            _ => Err(format!("debug {v:?}: use true or false")),
        },
        other => {
            if let Some((_, flag)) = LOAD_TIME_KEYS.iter().find(|(k, _)| other.starts_with(k)) {
                Err(format!(
                    "{k} is fixed when the datapath is loaded: `dpdbg datapath unload`, then `dpdbg datapath load {flag} …`"
                ))
            } else {
                Err(format!("unknown setting {k:?}: the run-time settings are aggregation, debug and kernel-drops"))
            }
        }
    }
}

#[derive(serde::Serialize)]
struct ConfigRow {
    key: String,
    value: String,
    /// "run time" (change with `datapath config`) or "load time".
    changeable: &'static str,
}

pub(crate) fn parse_map_size(s: &str) -> Result<(String, u32), String> {
    let (name, n) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected MAP=ENTRIES"))?;
    let n: u32 = n.parse().map_err(|_| format!("{s:?}: {n:?} is not a number of entries"))?;
    datapath::check_map_size(name, n).map_err(|e| e.to_string())?;
    Ok((name.to_string(), n))
}

impl DatapathCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        match self {
            DatapathCmd::Load(args) => {
                let settings = args.settings();
                let r = datapath::load(bpffs, &settings).context("datapath load")?;
                if let Some(c) = &r.cleaned_up {
                    // On stderr: stdout stays the report scripts parse.
                    eprintln!("{}", cleaned_up_note(&r.pin_dir, c));
                }
                p.print(&r, || {
                    let mut s = format!(
                        "Loaded the datapath: events via {}, snaplen {}, aggregation {}\n",
                        format!("{:?}", r.settings.transport).to_lowercase(),
                        r.settings.snaplen,
                        format!("{:?}", r.settings.aggregation).to_lowercase()
                    );
                    for prog in &r.programs {
                        let _ =
                            writeln!(s, "  program {} (id {}) pinned at {}", prog.name, prog.id, prog.pin.display());
                    }
                    if let Some(k) = &r.kernel_drops {
                        let _ = writeln!(s, "  kernel drops: {} ({})", k.state, k.detail);
                    }
                    let _ = write!(s, "Next: dpdbg datapath attach IFACE…");
                    s
                })
            }
            DatapathCmd::Unload => {
                let r = datapath::unload(bpffs).context("datapath unload")?;
                p.print(&r, || {
                    format!(
                        "Unloaded the datapath: detached {} interface(s), removed {} pin(s)",
                        r.detached.len(),
                        r.removed_pins
                    )
                })
            }
            DatapathCmd::Attach { interfaces, mode } => {
                let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
                // All or nothing: a failure on one interface leaves the others as they were.
                let all = datapath::attach_all(bpffs, &names, mode)
                    .with_context(|| format!("datapath attach {}", interfaces.join(" ")))?;
                p.print(&all, || {
                    let mut t = table(&[COL_INTERFACE, COL_IFINDEX, COL_HOOK, COL_PROGRAM, COL_MODE]);
                    for a in &all {
                        t.add_row(vec![
                            a.interface.clone(),
                            a.ifindex.to_string(),
                            a.hook.as_str().to_string(),
                            a.program.to_string(),
                            format!("{:?}", a.mode).to_lowercase(),
                        ]);
                    }
                    t.to_string()
                })
            }
            DatapathCmd::Detach { interfaces } => {
                let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
                datapath::detach_all(bpffs, &names)
                    .with_context(|| format!("datapath detach {}", interfaces.join(" ")))?;
                p.print(&serde_json::json!({ "detached": interfaces }), || {
                    format!("Detached {}", interfaces.join(", "))
                })
            }
            DatapathCmd::Config { changes } => config(bpffs, changes, p),
            DatapathCmd::Status => {
                let st = datapath::status(bpffs).context("datapath status")?;
                p.print(&st, || render_status(&st))
            }
        }
    }
}

/// What a load that found a partial datapath says it did about it.
pub(crate) fn cleaned_up_note(dir: &Path, c: &datapath::Partial) -> String {
    let missing =
        if c.missing.is_empty() { "every pin made".to_string() } else { format!("missing: {}", c.missing.join(", ")) };
    if c.load_unfinished {
        format!("dpdbg: a previous load was interrupted ({missing}): cleaned it up and loaded again")
    } else {
        format!(
            "dpdbg: the datapath under {} was incomplete ({missing}): cleaned it up and loaded again",
            dir.display()
        )
    }
}

fn agg_name(a: Aggregation) -> String {
    format!("{a:?}").to_lowercase()
}

fn config(bpffs: &Path, changes: Vec<Setting>, p: &Printer) -> anyhow::Result<()> {
    if !changes.is_empty() {
        let before = datapath::runtime(bpffs).context("datapath config")?;
        let mut after = before;
        let mut kernel_drops = None;
        for c in &changes {
            match c {
                Setting::Aggregation(a) => after.aggregation = *a,
                Setting::Debug(d) => after.debug = *d,
                Setting::KernelDrops(on) => kernel_drops = Some(*on),
            }
        }
        let drops_before = dpdbg::kdrop::state(bpffs).state == "on";
        if let Some(on) = kernel_drops {
            dpdbg::kdrop::set(bpffs, on).context("datapath config kernel-drops")?;
        }
        let drops_now = dpdbg::kdrop::state(bpffs).state == "on";
        datapath::set_runtime(bpffs, &after).context("datapath config")?;
        let now = datapath::runtime(bpffs).context("datapath config: reading back")?;
        anyhow::ensure!(now == after, "datapath config: the settings map reads back {now:?}, not {after:?}");
        let drops = |on: bool| if on { "on" } else { "off" };
        let json = serde_json::json!({
            "before": { "aggregation": before.aggregation, "debug": before.debug, "kernel_drops": drops(drops_before) },
            "after": { "aggregation": now.aggregation, "debug": now.debug, "kernel_drops": drops(drops_now) },
        });
        return p.print(&json, || {
            let mut s = String::new();
            if before.aggregation != now.aggregation {
                let _ = writeln!(s, "aggregation: {} -> {}", agg_name(before.aggregation), agg_name(now.aggregation));
            }
            if before.debug != now.debug {
                let _ = writeln!(s, "debug: {} -> {}", before.debug, now.debug);
            }
            if drops_before != drops_now {
                let _ = writeln!(s, "kernel-drops: {} -> {}", drops(drops_before), drops(drops_now));
            }
            if s.is_empty() {
                s = "No change: the datapath already runs with these settings.".into();
            }
            s
        });
    }
    let st = datapath::status(bpffs).context("datapath config")?;
    let settings = datapath::loaded_settings(bpffs).context("datapath config")?;
    let mut rows = vec![
        ConfigRow { key: "aggregation".into(), value: agg_name(settings.aggregation), changeable: "run time" },
        ConfigRow { key: "debug".into(), value: settings.debug.to_string(), changeable: "run time" },
        ConfigRow {
            key: "kernel-drops".into(),
            value: dpdbg::kdrop::state(bpffs).state.into(),
            changeable: "run time",
        },
        ConfigRow {
            key: "events".into(),
            value: format!("{:?}", settings.transport).to_lowercase(),
            changeable: "load time",
        },
        ConfigRow { key: "snaplen".into(), value: settings.snaplen.to_string(), changeable: "load time" },
    ];
    if let Some(c) = &st.clock {
        rows.push(ConfigRow { key: "clock".into(), value: c.clone(), changeable: "load time" });
    }
    for m in st.maps.iter().filter(|m| !matches!(m.name.as_str(), "config" | "settings")) {
        rows.push(ConfigRow {
            key: format!("map-size.{}", m.name),
            value: m.max_entries.to_string(),
            changeable: "load time",
        });
    }
    p.print(&rows, || {
        let mut t = table(&["KEY", "VALUE", "CHANGEABLE"]);
        for r in &rows {
            t.add_row(vec![r.key.clone(), r.value.clone(), r.changeable.to_string()]);
        }
        t.to_string()
    })
}

fn render_status(st: &datapath::Status) -> String {
    let mut s = String::new();
    let f = &st.features;
    let _ = writeln!(
        s,
        "Kernel:      {} (tcx: {}, ringbuf: {})",
        f.kernel,
        if f.tcx { "yes" } else { "no" },
        if f.ringbuf { "yes" } else { "no" }
    );
    let _ = writeln!(
        s,
        "Object:      {} ({} bytes, {} BTF types)",
        st.object.source, st.object.size_bytes, st.object.btf_types
    );
    let _ = writeln!(s, "Pin dir:     {}", st.pin_dir.display());
    match (&st.state, &st.partial) {
        (LoadState::Loaded, _) => {
            let _ = writeln!(s, "Datapath:    loaded");
        }
        (LoadState::Partial, Some(p)) => {
            let why = match (&st.busy_pid, p.load_unfinished) {
                (Some(pid), _) => format!("another dpdbg (pid {pid}) is changing it right now"),
                (None, true) => "a load was interrupted: `dpdbg datapath load` cleans it up and loads again, or `dpdbg datapath unload` removes it".into(),
                (None, false) => "pins were removed: `dpdbg datapath load` cleans it up and loads again, or `dpdbg datapath unload` removes it".into(),
            };
            let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
            let _ = writeln!(s, "Datapath:    partial ({why})");
            let _ = writeln!(s, "Missing:     {}", list(&p.missing));
            let _ = writeln!(s, "Present:     {}", list(&p.present));
        }
        _ => {
            let _ = writeln!(s, "Datapath:    not loaded (run `dpdbg datapath load`)");
            return s;
        }
    }
    if let Some(c) = &st.settings {
        let _ = writeln!(
            s,
            "Events:      {} (snaplen {}, aggregation {}{})",
            format!("{:?}", c.transport).to_lowercase(),
            c.snaplen,
            format!("{:?}", c.aggregation).to_lowercase(),
            if c.debug { ", debug" } else { "" }
        );
    }
    if let Some(c) = &st.clock {
        let _ = writeln!(s, "Clock:       {c}");
    }
    if let (Some(lost), Some(bad)) = (st.events_lost, st.events_undecodable) {
        let _ = writeln!(s, "Event loss:  {lost} not written (buffer full), {bad} undecodable by readers");
    }
    if let Some(k) = &st.kernel_drops {
        let _ = writeln!(s, "Kernel drops: {} ({})", k.state, k.detail);
    }
    let _ = writeln!(s, "\nPrograms:");
    let mut t = table(&["NAME", "ID", "TAG", "PIN"]);
    for pr in &st.programs {
        t.add_row(vec![pr.name.clone(), pr.id.to_string(), pr.tag.clone(), pr.pin.display().to_string()]);
    }
    let _ = writeln!(s, "{t}");
    let _ = writeln!(s, "\nInterfaces:");
    if st.interfaces.is_empty() && st.loaded {
        let _ = writeln!(s, "  none attached (run `dpdbg datapath attach IFACE`)");
    } else if st.interfaces.is_empty() {
        let _ = writeln!(s, "  none attached");
    } else {
        let mut t = table(&[COL_INTERFACE, COL_IFINDEX, COL_HOOK, COL_PROGRAM, COL_MODE, COL_STATE]);
        for a in &st.interfaces {
            t.add_row(vec![
                a.interface.clone(),
                a.ifindex.map_or("-".into(), |i| i.to_string()),
                a.hook.as_str().to_string(),
                a.program.to_string(),
                format!("{:?}", a.mode).to_lowercase(),
                if a.attached { "attached" } else { "stale (interface gone or link detached)" }.to_string(),
            ]);
        }
        let _ = writeln!(s, "{t}");
    }
    if let Some(a) = &st.agent {
        let _ = writeln!(
            s,
            "Managed by dpdbg serve (pid {}, --attach {}): {}",
            a.pid,
            a.patterns.join(" "),
            if a.attached.is_empty() { "none yet".to_string() } else { a.attached.join(", ") }
        );
        for (ifname, why) in &a.failed {
            let _ = writeln!(s, "  {ifname} refused attachment (tried again at its next change): {why}");
        }
    }
    let _ = writeln!(s, "\nMaps:");
    let mut t = table(&["NAME", "ID", "TYPE", "KEY", "VALUE", "MAX", "ENTRIES", "FILL"]);
    for m in &st.maps {
        let fill = match m.entries {
            Some(e) if m.max_entries > 0 && !m.map_type.contains("array") => {
                format!("{:.1}%", e as f64 * 100.0 / m.max_entries as f64)
            }
            _ => "-".into(),
        };
        t.add_row(vec![
            m.name.clone(),
            m.id.to_string(),
            m.map_type.clone(),
            m.key_size.to_string(),
            m.value_size.to_string(),
            m.max_entries.to_string(),
            m.entries.map_or("-".into(), |e| e.to_string()),
            fill,
        ]);
    }
    let _ = write!(s, "{t}");
    s
}
