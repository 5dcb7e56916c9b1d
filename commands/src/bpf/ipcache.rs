use std::path::Path;

use clap::Subcommand;
use dpdbg::maps::Maps;

use super::parse_cidr;
use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum IpcacheCmd {
    /// List CIDRs and their identities.
    List,
    /// Map a CIDR to an identity.
    Upsert {
        #[arg(value_parser = parse_cidr)]
        cidr: (std::net::IpAddr, u8),
        identity: u32,
    },
    /// Remove a CIDR.
    Delete {
        /// The CIDR, e.g. 10.0.0.0/24 (host bits clear).
        #[arg(value_parser = parse_cidr)]
        cidr: (std::net::IpAddr, u8),
    },
}

impl IpcacheCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let maps = Maps::open(bpffs)?;
        match self {
            IpcacheCmd::List => {
                let l = maps.ipcache_list()?;
                p.print(&l, || {
                    if l.is_empty() {
                        eprintln!("No entries found.");
                        return String::new();
                    }
                    let mut t = table(&["CIDR", "IDENTITY"]);
                    for e in &l {
                        t.add_row(vec![e.cidr.clone(), e.identity.to_string()]);
                    }
                    t.to_string()
                })
            }
            IpcacheCmd::Upsert { cidr: (ip, len), identity } => {
                maps.ipcache_upsert(ip, len, identity)?;
                p.print(&serde_json::json!({"cidr": format!("{ip}/{len}"), "identity": identity}), || {
                    format!("{ip}/{len} -> identity {identity}")
                })
            }
            IpcacheCmd::Delete { cidr: (ip, len) } => {
                if !maps.ipcache_delete(ip, len)? {
                    anyhow::bail!("{ip}/{len} is not in the ipcache (see `dpdbg bpf ipcache list`)");
                }
                p.print(&serde_json::json!({"deleted": format!("{ip}/{len}")}), || format!("Deleted {ip}/{len}"))
            }
        }
    }
}
