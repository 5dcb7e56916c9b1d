use std::path::Path;

use clap::Subcommand;
use dpdbg::maps::{IdentitySource, Maps};

use super::parse_cidr;

fn parse_ip(s: &str) -> Result<std::net::IpAddr, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address (a CIDR goes to `ipcache list`)"))
}
use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum IpcacheCmd {
    /// List CIDRs and their identities.
    List,
    /// The identity the datapath gives a peer address, and where it comes
    /// from: a local endpoint, the longest ipcache prefix holding it, or world.
    Get {
        /// An IPv4 or IPv6 address.
        #[arg(value_parser = parse_ip)]
        ip: std::net::IpAddr,
    },
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
            IpcacheCmd::Get { ip } => {
                let who = maps.identity_of(ip)?;
                p.print(&who, || {
                    let name = match who.identity {
                        dpdbg::abi::IDENTITY_WORLD => " (world)",
                        dpdbg::abi::IDENTITY_HOST => " (host)",
                        _ => "",
                    };
                    let from = match &who.source {
                        IdentitySource::Endpoint { endpoint_id, ifindex } => {
                            let ifname = dpdbg::sys::ifname(*ifindex).unwrap_or_else(|| format!("ifindex {ifindex}"));
                            format!("local endpoint {endpoint_id} on {ifname}")
                        }
                        IdentitySource::Ipcache { cidr } => format!("ipcache {cidr}"),
                        IdentitySource::World => "no endpoint and no ipcache prefix holds it".to_string(),
                    };
                    format!("{ip} -> identity {}{name}: {from}", who.identity)
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
