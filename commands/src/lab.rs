//! `dpdbg lab …`

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use dpdbg::datapath::{AttachMode, Settings, Transport};
use dpdbg::lab::{Lab, LabOptions, STATE_FILE};

use crate::output::{Printer, table};

/// The lab's state file: DPDBG_LAB_STATE lets tests (and a second lab) keep their own.
pub fn state_path() -> PathBuf {
    std::env::var_os("DPDBG_LAB_STATE").map_or_else(|| PathBuf::from(STATE_FILE), PathBuf::from)
}

#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Create endpoints (a network namespace and veth pair each), load and attach the datapath.
    Up {
        /// Number of endpoints.
        #[arg(long, default_value_t = 2)]
        endpoints: usize,
        /// Event transport of the datapath the lab loads.
        #[arg(long = "events", default_value = "ringbuf", value_name = "ringbuf|perf")]
        transport: Transport,
        /// tcx or clsact (default: tcx when the kernel has it).
        #[arg(long, value_name = "tcx|clsact")]
        mode: Option<AttachMode>,
    },
    /// Send ICMP, TCP and UDP over IPv4 and IPv6 between the lab's endpoints.
    Traffic,
    /// Remove the lab: detach, unload what the lab loaded, delete the namespaces.
    Down,
}

impl LabCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let state_path = state_path();
        let state_file = state_path.as_path();
        match self {
            LabCmd::Up { endpoints, transport, mode } => {
                let opts = LabOptions {
                    endpoints,
                    bpffs: Some(bpffs.to_path_buf()),
                    settings: Settings { transport, ..Settings::default() },
                    attach_mode: mode,
                    state_file: Some(state_file.to_path_buf()),
                };
                let lab = Lab::up(&opts).context("lab up")?;
                let st = lab.persist(state_file).context("lab up")?;
                p.print(&st, || {
                    let mut t =
                        table(&["ENDPOINT", "ID", "IDENTITY", "NETNS", "HOST IFACE", "IFINDEX", "IPV4", "IPV6"]);
                    for e in &st.endpoints {
                        t.add_row(vec![
                            e.name.clone(),
                            e.endpoint_id.to_string(),
                            e.identity.to_string(),
                            e.netns.clone(),
                            e.host_if.clone(),
                            e.ifindex.to_string(),
                            e.ipv4.to_string(),
                            e.ipv6.to_string(),
                        ]);
                    }
                    format!(
                        "Lab up: {} endpoints, datapath attached.\n{t}\nNext: dpdbg lab traffic",
                        st.endpoints.len()
                    )
                })
            }
            LabCmd::Traffic => {
                let lab = Lab::from_state_file(state_file)?;
                let results = lab.traffic().context("lab traffic")?;
                let failed = results.iter().filter(|r| !r.ok).count();
                p.print(&results, || {
                    let mut t = table(&["FROM", "TO", "PROTO", "DESTINATION", "RESULT", "DETAIL"]);
                    for r in &results {
                        t.add_row(vec![
                            r.from.clone(),
                            r.to.clone(),
                            format!("{:?}", r.kind).to_lowercase(),
                            r.dst.clone(),
                            if r.ok { "ok" } else { "FAILED" }.into(),
                            r.detail.clone(),
                        ]);
                    }
                    format!("{t}\n{} of {} exchanges succeeded", results.len() - failed, results.len())
                })
            }
            LabCmd::Down => {
                let lab = Lab::from_state_file(state_file)?;
                let n = lab.endpoints().len();
                lab.down(Some(state_file)).context("lab down")?;
                p.print(&serde_json::json!({ "removed_endpoints": n }), || format!("Lab down: removed {n} endpoints"))
            }
        }
    }
}
