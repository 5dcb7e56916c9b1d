//! `dpdbg bpf …`: typed views of dpdbg's own maps, in cilium-dbg's words.

pub(crate) mod ct;
pub(crate) mod endpoint;
pub(crate) mod identity;
pub(crate) mod ipcache;
mod metrics;
pub(crate) mod policy;

use std::net::IpAddr;
use std::path::Path;

use clap::Subcommand;

use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum BpfCmd {
    /// Local endpoints: IP → endpoint id, identity, interface, policy enforcement.
    #[command(subcommand)]
    Endpoint(endpoint::EndpointCmd),
    /// Policy rules with their allow/deny counters.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Connection tracking entries.
    #[command(subcommand)]
    Ct(ct::CtCmd),
    /// Datapath counters by reason and direction.
    #[command(subcommand)]
    Metrics(metrics::MetricsCmd),
    /// CIDR → identity for peers that are not local endpoints.
    #[command(subcommand)]
    Ipcache(ipcache::IpcacheCmd),
    /// Security identities and their labels.
    #[command(subcommand)]
    Identity(identity::IdentityCmd),
}

impl BpfCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        dpdbg::sys::require_privileges("reading the datapath's maps")?;
        match self {
            BpfCmd::Endpoint(c) => c.run(bpffs, p),
            BpfCmd::Policy(c) => c.run(bpffs, p),
            BpfCmd::Ct(c) => c.run(bpffs, p),
            BpfCmd::Metrics(c) => c.run(bpffs, p),
            BpfCmd::Ipcache(c) => c.run(bpffs, p),
            BpfCmd::Identity(c) => c.run(bpffs, p),
        }
    }
}

/// "10.0.0.0/24" or a bare address (a host route).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not a CIDR (e.g. 10.0.0.0/24 or fd00::/64)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().map_err(|_| format!("{s:?}: bad prefix length"))?,
        None => max,
    };
    if len > max {
        return Err(format!("{s:?}: prefix length {len} is longer than {max}"));
    }
    let net = dpdbg::maps::network(ip, len);
    if net != ip {
        return Err(format!("{s:?} has host bits set: the network with that prefix is {net}/{len}"));
    }
    Ok((ip, len))
}

/// tcp, udp, icmp, icmpv6, any or a number.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    match s {
        "any" => Ok(0),
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        n => n.parse().map_err(|_| format!("{s:?}: use tcp, udp, icmp, icmpv6, any or a protocol number")),
    }
}

pub fn proto_name(p: u8) -> String {
    match p {
        0 => "ANY".into(),
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        n => n.to_string(),
    }
}
