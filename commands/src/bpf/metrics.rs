use std::path::Path;

use clap::Subcommand;
use dpdbg::maps::Maps;

use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum MetricsCmd {
    /// Packets and bytes by reason and direction, summed over CPUs.
    List,
}

impl MetricsCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let MetricsCmd::List = self;
        let m = Maps::open(bpffs)?.metrics()?;
        p.print(&m, || {
            if m.is_empty() {
                eprintln!("No entries found.");
                return String::new();
            }
            let mut t = table(&["REASON", "DESCRIPTION", "DIRECTION", "PACKETS", "BYTES"]);
            for x in &m {
                t.add_row(vec![
                    x.reason.to_string(),
                    x.reason_text.to_string(),
                    x.direction.to_uppercase(),
                    x.packets.to_string(),
                    x.bytes.to_string(),
                ]);
            }
            t.to_string()
        })
    }
}
