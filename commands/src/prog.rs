//! `dpdbg prog …`: every BPF program on the system, a program's translated
//! instructions, and the kernel's trace pipe.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum ProgCmd {
    /// List every program: id, type, name, tag, attach points, maps.
    List {
        /// Turn on the kernel's run-time statistics for this long and show the runs and average ns of that window.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1", value_parser = parse_window)]
        stats: Option<Duration>,
    },
    /// Dump a program's instructions.
    #[command(subcommand)]
    Dump(DumpCmd),
    /// Print the datapath's bpf_printk lines from the kernel's trace pipe
    /// (`datapath config debug=true` turns them on), until Ctrl-C or --count.
    Tracelog {
        /// Stop after COUNT lines.
        #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Every line of the trace pipe, not only the datapath's (`dpdbg:`) ones.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DumpCmd {
    /// The translated instructions (what the verifier left), in the
    /// kernel's notation as `bpftool prog dump xlated` prints them, with
    /// map references named.
    Xlated {
        /// A program id, a datapath program's name (from_endpoint,
        /// to_endpoint, …) or any program's name when it is unique.
        #[arg(value_name = "ID|NAME")]
        prog: String,
        /// Also print each instruction's raw bytes.
        #[arg(long)]
        opcodes: bool,
    },
}

/// The statistics window: seconds (fractions allowed), from a millisecond to an hour.
pub(crate) fn parse_window(s: &str) -> Result<Duration, String> {
    let secs: f64 =
        s.trim().parse().map_err(|_| format!("{}: expected seconds, like 1 or 0.5", crate::output::quote(s)))?;
    if !secs.is_finite() || !(0.001..=3600.0).contains(&secs) {
        return Err(format!("{}: the window is 0.001 to at most 3600 seconds", crate::output::quote(s)));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl ProgCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        match self {
            ProgCmd::List { stats } => {
                let window = stats;
                let progs = dpdbg::progs::list(window)?;
                p.print(&progs, || {
                    let mut headers = vec!["ID", "TYPE", "NAME", "TAG", "ATTACHED", "MAPS"];
                    if window.is_some() {
                        headers.extend(["RUNS", "AVG NS"]);
                    }
                    let mut t = table(&headers);
                    for pr in &progs {
                        let mut row = vec![
                            pr.id.to_string(),
                            pr.prog_type.to_string(),
                            pr.name.clone(),
                            pr.tag.clone(),
                            pr.attached.join(", "),
                            pr.map_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                        ];
                        if window.is_some() {
                            row.push(pr.run_count.unwrap_or(0).to_string());
                            row.push(pr.avg_ns.map_or("-".into(), |a| format!("{a:.0}")));
                        }
                        t.add_row(row);
                    }
                    t.to_string()
                })
            }
            ProgCmd::Dump(DumpCmd::Xlated { prog, opcodes }) => {
                let id = match dpdbg::xlated::find(bpffs, &prog) {
                    Ok(id) => id,
                    // A name that names nothing, or more than one program: the caller's to fix.
                    Err(dpdbg::Error::InvalidInput(m)) => crate::usage!("prog dump xlated {prog}: {m}"),
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("prog dump xlated {prog}"))),
                };
                let d = match dpdbg::xlated::dump(bpffs, id) {
                    Ok(d) => d,
                    Err(dpdbg::Error::InvalidInput(m)) => crate::usage!("prog dump xlated {prog}: {m}"),
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("prog dump xlated {prog}"))),
                };
                p.print(&d, || {
                    let mut s = String::new();
                    dpdbg::xlated::write_text(&mut s, &d, opcodes);
                    s
                })
            }
            ProgCmd::Tracelog { count, all } => tracelog(p, count, all),
        }
    }
}

fn tracelog(p: &Printer, count: Option<u64>, all: bool) -> anyhow::Result<()> {
    if matches!(p, Printer::Json) {
        crate::usage!("prog tracelog prints a stream, one line at a time: use -o jsonl instead of -o json");
    }
    let mut pipe = dpdbg::tracelog::TracePipe::open().context("prog tracelog")?;
    if pipe.mounted {
        eprintln!("dpdbg: mounted tracefs at {}", pipe.path.parent().unwrap_or(Path::new("/")).display());
    }
    crate::stop::install();
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    let done = |n: u64| count.is_some_and(|c| n >= c);
    while !crate::stop::requested() && !done(n) {
        let mut err = None;
        pipe.read(Duration::from_millis(200), |line| {
            if done(n) || err.is_some() {
                return;
            }
            let parsed = dpdbg::tracelog::parse_line(line);
            if !all && !parsed.as_ref().is_some_and(dpdbg::tracelog::is_datapath) {
                return;
            }
            n += 1;
            let r = match (p, &parsed) {
                (Printer::Table, _) => writeln!(out, "{line}"),
                (_, Some(l)) => writeln!(out, "{}", serde_json::to_string(l).unwrap_or_default()),
                (_, None) => writeln!(out, "{}", serde_json::json!({ "raw": line })),
            };
            err = r.and_then(|()| out.flush()).err();
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    Ok(())
}
