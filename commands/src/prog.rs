//! `dpdbg prog …`: every BPF program on the system.

use std::time::Duration;

use clap::Subcommand;

use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum ProgCmd {
    /// List every program: id, type, name, tag, attach points, maps.
    List {
        /// Turn on the kernel's run-time statistics for this long and show run count and average ns.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
        stats: Option<f64>,
    },
}

impl ProgCmd {
    pub fn run(self, p: &Printer) -> anyhow::Result<()> {
        match self {
            ProgCmd::List { stats } => {
                let window = stats.map(|s| Duration::from_secs_f64(s.max(0.0)));
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
