//! The clap tree's root (bpfman's `args` shape): the global flags, the TLS
//! flags and the top-level commands, each naming its group's own args in
//! that group's module. Modules take `Cli` and `TlsArgs` from here, not
//! from the crate root.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    bpf, datapath, debuginfo, explain, health, lab, map, monitor, observe, output, prog, serve, status, trace, tui,
    verify,
};

/// dpdbg: inspect and debug an eBPF networking datapath — load it, attach it,
/// read its maps and events, and run a lab to try it.
#[derive(Debug, Parser)]
#[command(name = "dpdbg", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "DPDBG_BPFFS",
        default_value = "/sys/fs/bpf",
        value_name = "DIR"
    )]
    pub bpffs: PathBuf,

    /// Run the command on a node through its `dpdbg serve`: a unix socket
    /// path or host:port. Output and exit code are the node's own.
    #[arg(long, global = true, help_heading = "Global options", env = "DPDBG_SERVER", value_name = "ADDR")]
    pub server: Option<String>,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Output format: a table for people, json for scripts.
    #[arg(short = 'o', long, global = true, help_heading = "Global options", value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,

    #[command(subcommand)]
    pub command: Command,
}

/// TLS for `--server` over TCP, and for `serve --listen`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsArgs {
    /// The CA certificate (PEM) that signed the server's: talk TLS to --server.
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This side's certificate (PEM): the client's for a server that asks for
    /// one (mutual TLS), the server's for `serve --listen`.
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, help_heading = "Global options", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --server).
    #[arg(long, global = true, help_heading = "Global options", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Allow plain TCP (no TLS) to or on an address that is not loopback.
    #[arg(long, global = true, help_heading = "Global options")]
    pub insecure: bool,
}

impl TlsArgs {
    /// The PEM of a TLS file, or an error naming the flag and the file.
    pub fn read(flag: &str, p: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        let b = std::fs::read(p).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", p.display()))?;
        if !b.windows(10).any(|w| w == b"-----BEGIN") {
            anyhow::bail!("{flag} {}: not a PEM file (no -----BEGIN line)", p.display());
        }
        Ok(b)
    }

    pub(crate) fn client(&self) -> anyhow::Result<dpdbg_api::client::ClientTls> {
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((Self::read("--tls-cert", c)?, Self::read("--tls-key", k)?)),
            _ => None,
        };
        Ok(dpdbg_api::client::ClientTls {
            ca: self.tls_ca.as_deref().map(|p| Self::read("--tls-ca", p)).transpose()?,
            identity,
            server_name: self.tls_server_name.clone(),
            insecure: self.insecure,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, attach, detach, unload and inspect the datapath.
    #[command(subcommand)]
    Datapath(datapath::DatapathCmd),
    /// The built-in lab: endpoints in network namespaces with the datapath attached.
    #[command(subcommand)]
    Lab(lab::LabCmd),
    /// Stream datapath events (trace, drop, policy verdict) as decoded packets.
    Monitor(monitor::MonitorCmd),
    /// dpdbg's own maps, typed: endpoints, policy, conntrack, metrics, ipcache.
    #[command(subcommand)]
    Bpf(bpf::BpfCmd),
    /// Any BPF map on the system, decoded through BTF.
    #[command(subcommand)]
    Map(map::MapCmd),
    /// Every BPF program on the system.
    #[command(subcommand)]
    Prog(prog::ProgCmd),
    /// Read the datapath's events and serve them to many clients (Hubble's Observer API).
    Serve(serve::ServeCmd),
    /// Flows from `dpdbg serve`, with Hubble's flags and output.
    Observe(Box<observe::ObserveCmd>),
    /// A live dashboard: endpoints, policy verdicts, conntrack, drops and programs.
    Tui(tui::TuiCmd),
    /// What the loaded datapath would do with a packet, and why: run on a
    /// crafted packet by the same code, without changing any map.
    Trace(trace::TraceCmd),
    /// Why a drop or a denied policy verdict happened: one event (a `monitor
    /// -j` line or an `observe -o json` flow, on stdin or as EVENT) traced
    /// against the maps as they are now, and held against what happened.
    Explain(explain::ExplainCmd),
    /// Check a connectivity matrix (rows of from, to, proto, port, expect
    /// allow|deny) through trace's dry run: no packet sent, no map changed;
    /// exit 0 when every row holds, 1 when one does not, 2 for a bad file.
    Verify(verify::VerifyCmd),
    /// Ask `dpdbg serve` how it is (grpc.health.v1): exit 0 when SERVING, for probes.
    Health(health::HealthCmd),
    /// One verdict on the node: ok (exit 0), degraded (exit 3) or failed
    /// (exit 4), with the reasons.
    Status(status::StatusCmd),
    /// One file for an incident: status, settings, maps, programs and their
    /// instructions, attachments, pins, the lab, recent flows, kernel log
    /// (a .tar.gz with a manifest, or -o json).
    Debuginfo(debuginfo::DebuginfoCmd),
}
