//! The `dpdbg` command line: the clap tree, one module per command group,
//! rendering as tables or JSON. All kernel work goes through the core.

pub mod bpf;
pub mod datapath;
pub mod generated;
pub mod health;
pub mod lab;
pub mod map;
pub mod monitor;
pub mod observe;
mod observe_file;
pub mod output;
pub mod prog;
#[cfg(test)]
mod props;
pub mod remote;
pub mod serve;
pub mod status;
pub mod stop;
pub mod trace;
pub mod tui;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use output::Printer;

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

    fn client(&self) -> anyhow::Result<dpdbg_api::client::ClientTls> {
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
    /// Ask `dpdbg serve` how it is (grpc.health.v1): exit 0 when SERVING, for probes.
    Health(health::HealthCmd),
    /// One verdict on the node: ok (exit 0), degraded (exit 3) or failed
    /// (exit 4), with the reasons.
    Status(status::StatusCmd),
}

/// A command that talks to a server keeps SIGPIPE from killing it: hyper
/// writes to its socket with writev, which raises SIGPIPE when the server has
/// hung up (a refused TLS handshake), and the process must live to say why.
/// A closed stdout (`| head`) then comes back as a BrokenPipe error, which
/// main turns into the exit status SIGPIPE would have given.
pub fn keep_sigpipe_from_killing() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// An interface name as the kernel takes it (dev_valid_name), checked while
/// parsing so that a name no interface can have is a usage error naming the
/// rule, like any other malformed value, before any path is built from it.
pub(crate) fn ifname(s: &str) -> Result<String, String> {
    dpdbg::sys::check_ifname(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // A --server that names no server is the caller's mistake (exit 2), said
    // before anything is dialled; an address nobody answers on is found by
    // dialling it (exit 1). lab and serve refuse --server itself below.
    if let Some(server) = &cli.server
        && !matches!(cli.command, Command::Lab(_) | Command::Serve(_))
    {
        dpdbg_api::client::parse_server(server)?;
    }
    let printer = Printer::new(cli.output);
    if cli.server.is_some() || matches!(cli.command, Command::Observe(_) | Command::Health(_) | Command::Tui(_)) {
        keep_sigpipe_from_killing();
    }
    if !matches!(cli.command, Command::Serve(_)) {
        dpdbg_api::client::configure(cli.tls.client()?);
    }
    if let Some(server) = &cli.server
        && matches!(
            cli.command,
            Command::Datapath(_)
                | Command::Bpf(_)
                | Command::Map(_)
                | Command::Prog(_)
                | Command::Monitor(_)
                | Command::Trace(_)
                | Command::Status(_)
        )
    {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return remote::run(server, cli.output, remote::forwarded_args(&argv));
    }
    if cli.server.is_some() && matches!(cli.command, Command::Lab(_) | Command::Serve(_)) {
        usage!("--server: `dpdbg lab` and `dpdbg serve` run on the node itself (drop --server, or unset DPDBG_SERVER)");
    }
    // Where `dpdbg serve` listens: --server, else its default socket (a
    // command a server runs is told the server's own, to find the ring).
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| std::env::var("DPDBG_EVENTS_SOCKET").unwrap_or_else(|_| serve::DEFAULT_SOCKET.to_string()));
    match cli.command {
        Command::Datapath(c) => c.run(&cli.bpffs, &printer),
        Command::Lab(c) => c.run(&cli.bpffs, &printer),
        Command::Monitor(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Bpf(c) => c.run(&cli.bpffs, &printer),
        Command::Map(c) => c.run(&cli.bpffs, &printer),
        Command::Prog(c) => c.run(&cli.bpffs, &printer),
        Command::Serve(c) => c.run(&cli.bpffs, &cli.tls),
        Command::Tui(mut c) => {
            c.remote = cli.server.is_some();
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Health(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Trace(c) => c.run(&cli.bpffs, &printer),
        Command::Status(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Observe(mut c) => {
            c.server = server;
            // Hubble prints compact unless told otherwise; our global default is "table".
            let explicit = std::env::args().any(|a| a == "-o" || a.starts_with("-o") || a.starts_with("--output"));
            c.run(&cli.bpffs, observe::ObserveFormat::from_global(cli.output, explicit))
        }
    }
}
