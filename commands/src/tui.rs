//! `dpdbg tui`: the live dashboard (the `dpdbg-tui` crate) on this node.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct TuiCmd {
    /// How often the dashboard reads the maps and the events, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=60_000))]
    refresh: u64,
    /// The server (the global --server, or where `dpdbg serve` listens by default).
    #[arg(skip)]
    pub(crate) server: String,
    /// --server was given: the whole dashboard comes from that server.
    #[arg(skip)]
    pub(crate) remote: bool,
}

impl TuiCmd {
    pub fn run(self, bpffs: &Path, p: &crate::output::Printer) -> anyhow::Result<()> {
        if !p.is_table() {
            crate::usage!(
                "the dashboard is for a terminal: for JSON, ask the commands it shows (bpf ct list, bpf endpoint list, monitor -o jsonl …)"
            );
        }
        if self.remote {
            let source = dpdbg_tui::Remote::connect(&self.server).map_err(anyhow::Error::msg).context("tui")?;
            return dpdbg_tui::run(Box::new(source), Duration::from_millis(self.refresh)).context("tui");
        }
        dpdbg::sys::require_privileges("tui")?;
        dpdbg::sys::require_bpffs(bpffs)?;
        let source = dpdbg_tui::Local::new(bpffs.to_path_buf(), self.server);
        dpdbg_tui::run(Box::new(source), Duration::from_millis(self.refresh)).context("tui")
    }
}
