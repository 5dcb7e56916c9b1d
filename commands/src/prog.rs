//! `dpdbg prog …`: every BPF program on the system.

use std::time::Duration;

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
    pub fn run(self, p: &Printer) -> anyhow::Result<()> {
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
        }
    }
}
