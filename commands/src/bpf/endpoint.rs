use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use dpdbg::abi::{self, EndpointInfo};
use dpdbg::maps::{Endpoint, Maps};

use crate::names::{EndpointRef, resolve_one};
use crate::output::{Printer, table};

const COL_ID: &str = "ENDPOINT";
const COL_NAME: &str = "NAME";
const COL_IDENTITY: &str = "IDENTITY";
const COL_IP: &str = "IP ADDRESS";
const COL_IFINDEX: &str = "IFINDEX";
const COL_IFACE: &str = "INTERFACE";
const COL_MAC: &str = "MAC";
const COL_POLICY: &str = "POLICY ENFORCEMENT";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Enforce {
    None,
    Ingress,
    Egress,
    Both,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// List every endpoint address.
    List,
    /// Show one endpoint's addresses.
    Get {
        /// Endpoint id or NAMESPACE/POD.
        #[arg(value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
        id: EndpointRef,
    },
    /// Add (or replace) an endpoint address.
    Add {
        /// Endpoint id.
        #[arg(long)]
        id: u32,
        /// Security identity of the endpoint (256 or more).
        #[arg(long)]
        identity: u32,
        /// The endpoint's IPv4 or IPv6 address (repeatable).
        #[arg(long = "ip", required = true)]
        ips: Vec<IpAddr>,
        /// Host-side interface of the endpoint (or --ifindex).
        #[arg(long, conflicts_with = "ifindex", value_parser = crate::ifname)]
        interface: Option<String>,
        /// Host-side interface index (or --interface).
        #[arg(long)]
        ifindex: Option<u32>,
        /// The endpoint's MAC address.
        #[arg(long, default_value = "00:00:00:00:00:00", value_parser = parse_mac)]
        mac: [u8; 6],
        /// Which directions policy is enforced in.
        #[arg(long, value_enum, default_value_t = Enforce::None)]
        enforce: Enforce,
        /// Take an address another endpoint has (it becomes this endpoint's).
        #[arg(long)]
        force: bool,
        /// The endpoint's Kubernetes name, NAMESPACE/POD.
        #[arg(long, value_name = "NAMESPACE/POD", value_parser = dpdbg::maps::names::parse_pod_name)]
        name: Option<dpdbg::maps::PodName>,
        /// A label of the endpoint's identity, KEY=VALUE (repeatable; replaces the identity's labels).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = super::identity::label)]
        labels: Vec<String>,
    },
    /// Change an endpoint's enforcement or identity, for every address it has.
    Set {
        /// Endpoint id or NAMESPACE/POD.
        #[arg(value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
        id: EndpointRef,
        /// Which directions policy is enforced in.
        #[arg(long, value_enum)]
        enforce: Option<Enforce>,
        /// New security identity (256 or more).
        #[arg(long)]
        identity: Option<u32>,
        /// The endpoint's Kubernetes name, NAMESPACE/POD.
        #[arg(long, value_name = "NAMESPACE/POD", value_parser = dpdbg::maps::names::parse_pod_name)]
        name: Option<dpdbg::maps::PodName>,
        /// A label of the endpoint's identity, KEY=VALUE (repeatable; replaces the identity's labels).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = super::identity::label)]
        labels: Vec<String>,
    },
    /// Delete an endpoint (all its addresses, or just --ip).
    Delete {
        /// Endpoint id or NAMESPACE/POD.
        #[arg(value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
        id: EndpointRef,
        /// Only this address of the endpoint.
        #[arg(long)]
        ip: Option<IpAddr>,
    },
}

pub(crate) fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("MAC {}: expected six hex bytes like 02:00:00:00:00:01", crate::output::quote(s)));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() > 2 {
            return Err(format!("MAC {}: {p:?} is not a hex byte", crate::output::quote(s)));
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| format!("MAC {}: {p:?} is not a hex byte", crate::output::quote(s)))?;
    }
    Ok(mac)
}

/// An endpoint address with its endpoint's name, as `bpf endpoint` prints it.
#[derive(serde::Serialize)]
struct Named {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// NAMESPACE/POD, when the endpoint has a name.
    name: Option<String>,
}

fn named(maps: &Maps, eps: Vec<Endpoint>) -> anyhow::Result<Vec<Named>> {
    let names = maps.names()?;
    Ok(eps
        .into_iter()
        .map(|e| {
            let name = names.pods.get(&e.endpoint_id).map(|p| p.to_string());
            Named { endpoint: e, name }
        })
        .collect())
}

/// Names the endpoint and labels its identity, as asked.
fn name_and_labels(
    maps: &Maps,
    id: u32,
    identity: u32,
    name: Option<&dpdbg::maps::PodName>,
    labels: &[String],
) -> anyhow::Result<()> {
    let usage = |e: dpdbg::Error| match e {
        e @ (dpdbg::Error::TooLong { .. } | dpdbg::Error::BadLabel { .. } | dpdbg::Error::ReservedIdentity { .. }) => {
            anyhow::Error::new(crate::output::UsageError(e.to_string()))
        }
        e => anyhow::Error::new(e),
    };
    // A pod's name is unique in its namespace, and a NAMESPACE/POD
    // argument must name one endpoint: checked before anything is written.
    if let Some(n) = name
        && let Some((other, _)) = maps.names()?.pods.iter().find(|(other, p)| *p == n && **other != id)
    {
        anyhow::bail!(
            "{n} is endpoint {other}'s name: give endpoint {id} another, or rename endpoint {other} first (`dpdbg bpf endpoint set {other} --name …`)"
        );
    }
    if !labels.is_empty() {
        maps.identity_set(identity, labels).map_err(usage)?;
    }
    if let Some(n) = name {
        maps.endpoint_name_set(id, n).map_err(usage)?;
    }
    Ok(())
}

fn render(eps: &[Named]) -> String {
    if eps.is_empty() {
        eprintln!("No entries found.");
        return String::new();
    }
    let mut t = table(&[COL_ID, COL_NAME, COL_IDENTITY, COL_IP, COL_IFINDEX, COL_IFACE, COL_MAC, COL_POLICY]);
    for n in eps {
        let e = &n.endpoint;
        t.add_row(vec![
            e.endpoint_id.to_string(),
            n.name.clone().unwrap_or_else(|| "-".into()),
            e.identity.to_string(),
            e.ip.to_string(),
            e.ifindex.to_string(),
            dpdbg::sys::ifname(e.ifindex).unwrap_or_else(|| "-".into()),
            e.mac.clone(),
            // What --enforce takes: none, ingress, egress or both.
            e.enforcement().to_string(),
        ]);
    }
    t.to_string()
}

/// Identities below 256 are reserved (cilium: 1 host, 2 world, …); 0 means "any" in policy.
const RESERVED_IDENTITIES: u32 = 256;

fn check_identity(identity: u32) -> anyhow::Result<()> {
    if identity < RESERVED_IDENTITIES {
        crate::usage!(
            "identity {identity} is reserved (0 means any peer in policy, 1 is host, 2 is world, below {RESERVED_IDENTITIES} are cilium's reserved identities): give an endpoint an identity of {RESERVED_IDENTITIES} or more"
        );
    }
    Ok(())
}

impl Enforce {
    fn flags(self) -> u16 {
        match self {
            Enforce::None => 0,
            Enforce::Ingress => abi::EP_ENFORCE_INGRESS,
            Enforce::Egress => abi::EP_ENFORCE_EGRESS,
            Enforce::Both => abi::EP_ENFORCE_INGRESS | abi::EP_ENFORCE_EGRESS,
        }
    }
}

impl EndpointCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let maps = Maps::open(bpffs)?;
        match self {
            EndpointCmd::List => {
                let eps = named(&maps, maps.endpoint_list()?)?;
                p.print(&eps, || render(&eps))
            }
            EndpointCmd::Get { id } => {
                let id = resolve_one(&id, &maps, "endpoint")?;
                let eps: Vec<_> = maps.endpoint_list()?.into_iter().filter(|e| e.endpoint_id == id).collect();
                if eps.is_empty() {
                    anyhow::bail!("endpoint {id} not found (see `dpdbg bpf endpoint list`)");
                }
                let eps = named(&maps, eps)?;
                p.print(&eps, || render(&eps))
            }
            EndpointCmd::Add { id, identity, ips, interface, ifindex, mac, enforce, force, name, labels } => {
                check_identity(identity)?;
                if !force {
                    let owned: Vec<String> = maps
                        .endpoint_list()?
                        .into_iter()
                        .filter(|e| ips.contains(&e.ip) && e.endpoint_id != id)
                        .map(|e| format!("{} (endpoint {})", e.ip, e.endpoint_id))
                        .collect();
                    if !owned.is_empty() {
                        anyhow::bail!(
                            "{} already belong to another endpoint: delete it there first, or pass --force to move the address",
                            owned.join(", ")
                        );
                    }
                }
                let ifindex = match (interface, ifindex) {
                    (Some(i), _) => dpdbg::sys::ifindex(&i)?,
                    (None, Some(x)) => x,
                    (None, None) => crate::usage!("give the endpoint's interface with --interface NAME or --ifindex N"),
                };
                let flags = enforce.flags();
                let info = EndpointInfo { endpoint_id: id, identity, ifindex, mac, flags };
                // Names first: one that does not fit is refused before anything is written.
                name_and_labels(&maps, id, identity, name.as_ref(), &labels)?;
                for ip in &ips {
                    maps.endpoint_upsert(*ip, info).with_context(|| format!("adding {ip}"))?;
                }
                p.print(&serde_json::json!({"endpoint_id": id, "added": ips}), || {
                    format!("Endpoint {id}: added {} address(es)", ips.len())
                })
            }
            EndpointCmd::Set { id, enforce, identity, name, labels } => {
                let id = resolve_one(&id, &maps, "endpoint")?;
                if enforce.is_none() && identity.is_none() && name.is_none() && labels.is_empty() {
                    crate::usage!(
                        "nothing to change: give --enforce none|ingress|egress|both, --identity N, --name NAMESPACE/POD and/or --label KEY=VALUE"
                    );
                }
                if let Some(i) = identity {
                    check_identity(i)?;
                }
                let Some(current) = maps.endpoint_list()?.into_iter().find(|e| e.endpoint_id == id) else {
                    anyhow::bail!("endpoint {id} not found (see `dpdbg bpf endpoint list`)");
                };
                name_and_labels(&maps, id, identity.unwrap_or(current.identity), name.as_ref(), &labels)?;
                let changed = if enforce.is_some() || identity.is_some() {
                    maps.endpoint_set(id, enforce.map(Enforce::flags), identity)
                        .with_context(|| format!("setting endpoint {id}"))?
                } else {
                    vec![current.ip]
                };
                if changed.is_empty() {
                    anyhow::bail!("endpoint {id} not found (see `dpdbg bpf endpoint list`)");
                }
                let eps: Vec<_> = maps.endpoint_list()?.into_iter().filter(|e| e.endpoint_id == id).collect();
                let eps = named(&maps, eps)?;
                p.print(&eps, || render(&eps))
            }
            EndpointCmd::Delete { id, ip } => {
                let id = resolve_one(&id, &maps, "endpoint")?;
                let eps: Vec<_> = maps
                    .endpoint_list()?
                    .into_iter()
                    .filter(|e| e.endpoint_id == id && ip.is_none_or(|ip| ip == e.ip))
                    .collect();
                if eps.is_empty() {
                    anyhow::bail!(
                        "endpoint {id}{} not found",
                        ip.map(|i| format!(" with address {i}")).unwrap_or_default()
                    );
                }
                for e in &eps {
                    maps.endpoint_delete(e.ip)?;
                }
                if ip.is_none() {
                    maps.endpoint_name_delete(id)?;
                }
                // Tracked packets skip the endpoint lookup: its connections go with it.
                let mut ct_deleted = 0;
                for e in &eps {
                    ct_deleted += dpdbg::maps::ct::delete_endpoint(bpffs, e.ifindex, &[e.ip])?;
                }
                let ips: Vec<String> = eps.iter().map(|e| e.ip.to_string()).collect();
                p.print(&serde_json::json!({"endpoint_id": id, "deleted": ips, "ct_deleted": ct_deleted}), || {
                    format!("Endpoint {id}: deleted {} and {ct_deleted} conntrack entries", ips.join(", "))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's POLICY ENFORCEMENT column prints `Endpoint::enforcement`:
    /// for every value `--enforce` takes, an endpoint added with it says
    /// that value.
    #[test]
    fn the_table_says_enforcement_in_the_words_enforce_takes() {
        for v in Enforce::value_variants() {
            let flags = v.flags();
            let ep = Endpoint {
                ip: "192.0.2.1".parse().unwrap(),
                endpoint_id: 7,
                identity: 1000,
                ifindex: 0,
                mac: "00:00:00:00:00:00".into(),
                enforce_ingress: flags & abi::EP_ENFORCE_INGRESS != 0,
                enforce_egress: flags & abi::EP_ENFORCE_EGRESS != 0,
            };
            assert_eq!(ep.enforcement(), v.to_possible_value().unwrap().get_name());
        }
    }
}
