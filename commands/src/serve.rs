//! `dpdbg serve`: the one reader of the datapath's events, serving Hubble's
//! Observer API to any number of clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dpdbg_api::server::{self, ServeOptions};

/// Where the server listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/dpdbg/dpdbg.sock";

#[derive(Debug, Args)]
pub struct ServeCmd {
    /// Unix socket to serve on (mode 0660).
    #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,
    /// Also serve on this TCP address: with TLS when --tls-cert and --tls-key
    /// are given; plain TCP only on loopback unless --insecure.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve Prometheus metrics over HTTP on this address (GET /metrics):
    /// cilium's and Hubble's names, see the README. Loopback only unless
    /// --insecure (plain HTTP: no TLS).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// The CA (PEM) that clients' certificates must chain to: mutual TLS on --listen.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// The group of the unix socket (mode 0660, owned by root): its members may use it.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// How many recent flows to keep for clients that ask for the last N.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    buffer: u32,
    /// Remove expired conntrack entries this often (0 turns it off).
    #[arg(long, default_value = "30s", value_parser = crate::monitor::parse_duration, value_name = "DURATION")]
    ct_gc_interval: Duration,
    /// Run commands that change the datapath for `--server` clients
    /// (policy add, endpoint set, ct flush, map update, ...); without it
    /// they are refused with PERMISSION_DENIED.
    #[arg(long)]
    allow_write: bool,
    /// Load the datapath when none is loaded (with the flags below); a
    /// loaded one is kept. Without --load, serve waits for one.
    #[arg(long)]
    load: bool,
    #[command(flatten, next_help_heading = "With --load")]
    settings: crate::datapath::LoadArgs,
    /// Attach the datapath to every interface whose name matches (a glob:
    /// lxc*, veth*, cali*), now and as they appear (netlink link
    /// notifications); repeatable.
    #[arg(long, value_name = "PATTERN", num_args = 1.., value_parser = attach_pattern)]
    attach: Vec<String>,
    /// How --attach attaches (default: tcx where the kernel has it, else clsact).
    #[arg(long, value_name = "tcx|clsact", requires = "attach")]
    attach_mode: Option<dpdbg::datapath::AttachMode>,
    /// The node's name in flows, GetNodes and ServerStatus (default: the
    /// kernel's hostname); a Kubernetes node name (RFC 1123 subdomain).
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    node_name: Option<String>,
    /// Another node of the fleet, for hubble-relay's peer service
    /// (peer.Peer): its node name and Observer address (ip:port, or an IP
    /// for port 4244); repeatable. This node is always one of the peers.
    #[arg(long = "peer", value_name = "NAME=ADDR", value_parser = dpdbg_api::server::peer::parse_peer)]
    peers: Vec<(String, String)>,
    /// Find the fleet by a DNS name (a Kubernetes headless Service):
    /// resolved again every --peers-dns-interval, each address a peer whose
    /// name is asked from the peer itself.
    #[arg(long, value_name = "HOST:PORT", value_parser = dpdbg_api::server::peer::parse_dns)]
    peers_dns: Option<String>,
    /// The cluster's name, as cilium's `--cluster-name`: with TLS, each peer
    /// is named to hubble-relay under NODE.CLUSTER.hubble-grpc.cilium.io,
    /// the names cilium's Hubble certificates carry.
    #[arg(long, value_name = "NAME", default_value = "default", value_parser = cluster_name)]
    cluster_name: String,
    /// How often --peers-dns is resolved again.
    #[arg(long, default_value = "10s", value_parser = crate::monitor::parse_duration, value_name = "DURATION", requires = "peers_dns")]
    peers_dns_interval: Duration,
}

fn attach_pattern(s: &str) -> Result<String, String> {
    dpdbg::datapath::agent::check_pattern(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// A node name as Kubernetes takes one: an RFC 1123 subdomain (lowercase
/// letters, digits, '-' and '.', each label starting and ending with a
/// letter or digit, at most 63 characters a label and 253 in all).
/// Cilium's rule for a cluster name: up to 32 lowercase letters, digits
/// and dashes, starting and ending with a letter or digit.
fn cluster_name(s: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{}: a cluster name is 1 to 32 lowercase letters, digits and dashes, starting and ending with a letter or digit (cilium's rule)",
            crate::output::quote(s)
        ))
    }
}

pub(crate) fn node_name(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "{}: {why} (a node name is an RFC 1123 subdomain, like node-a or ip-10-0-0-1.ec2.internal)",
            crate::output::quote(s)
        ))
    };
    if s.is_empty() || s.len() > 253 {
        return bad("1 to 253 characters");
    }
    for label in s.split('.') {
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part is 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return bad("only lowercase letters, digits, '-' and '.'");
        }
        if !edge(label.chars().next()) || !edge(label.chars().last()) {
            return bad("each part starts and ends with a letter or digit");
        }
    }
    Ok(s.to_string())
}

/// The kernel's hostname, the node's name unless told otherwise.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// `--load`: loads the datapath unless a whole one is loaded, which is kept
/// (its settings, where they differ from the flags, said on stderr).
fn load_unless_loaded(bpffs: &Path, args: &crate::datapath::LoadArgs) -> anyhow::Result<()> {
    use dpdbg::datapath;
    let want = args.settings();
    if datapath::Pins::new(bpffs).is_loaded() {
        let have = datapath::loaded_settings(bpffs).context("reading the loaded datapath's settings")?;
        let mut differ = Vec::new();
        if have.transport != want.transport {
            differ.push(format!("events {:?} (asked {:?})", have.transport, want.transport));
        }
        if have.snaplen != want.snaplen {
            differ.push(format!("snaplen {} (asked {})", have.snaplen, want.snaplen));
        }
        if have.aggregation != want.aggregation {
            differ.push(format!("aggregation {:?} (asked {:?})", have.aggregation, want.aggregation));
        }
        if !want.max_entries.is_empty() {
            differ.push("map sizes as loaded (--map-size applies to a new load)".into());
        }
        if differ.is_empty() {
            eprintln!("dpdbg serve: a datapath is loaded under {} already; keeping it", bpffs.display());
        } else {
            eprintln!(
                "dpdbg serve: a datapath is loaded under {} already, with {}; keeping it (unload it to load one with the flags given)",
                bpffs.display(),
                differ.join(", ")
            );
        }
        return Ok(());
    }
    let r = datapath::load(bpffs, &want).context("serve --load")?;
    if let Some(c) = &r.cleaned_up {
        eprintln!("{}", crate::datapath::cleaned_up_note(&r.pin_dir, c));
    }
    eprintln!(
        "dpdbg serve: loaded the datapath under {} (events via {:?}, snaplen {}, aggregation {:?})",
        bpffs.display(),
        r.settings.transport,
        r.settings.snaplen,
        r.settings.aggregation
    );
    Ok(())
}

/// A group by name or number.
fn group_id(g: &str) -> anyhow::Result<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    let name = std::ffi::CString::new(g).map_err(|_| anyhow::anyhow!("--socket-group {g:?}: not a group name"))?;
    // SAFETY: getgrnam reads a NUL-terminated name; the gid is copied out at once.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    if gr.is_null() {
        anyhow::bail!("--socket-group {g:?}: no such group (see /etc/group)");
    }
    // SAFETY: non-null pointer just returned by getgrnam.
    Ok(unsafe { (*gr).gr_gid })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl ServeCmd {
    pub fn run(self, bpffs: &Path, tls_args: &crate::args::TlsArgs) -> anyhow::Result<()> {
        dpdbg::sys::require_privileges("serve")?;
        // A client that goes away mid-stream must not take the server with
        // it: a server ignores SIGPIPE and sees EPIPE on that one connection
        // (the CLI otherwise dies quietly on a closed pipe, as Unix tools do).
        // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        if tls_args.tls_ca.is_some() || tls_args.tls_server_name.is_some() {
            crate::usage!(
                "serve: --tls-ca and --tls-server-name are for clients; a server takes --tls-cert, --tls-key and --tls-client-ca"
            );
        }
        if self.tls_client_ca.is_some() && tls_args.tls_cert.is_none() {
            crate::usage!("--tls-client-ca asks clients for certificates over TLS: give --tls-cert and --tls-key too");
        }
        let tls = match (&tls_args.tls_cert, &tls_args.tls_key) {
            (Some(c), Some(k)) => {
                if self.listen.is_none() {
                    crate::usage!("--tls-cert and --tls-key are for --listen (the unix socket is guarded by its mode)");
                }
                Some(dpdbg_api::server::ServerTls {
                    cert: crate::args::TlsArgs::read("--tls-cert", c)?,
                    key: crate::args::TlsArgs::read("--tls-key", k)?,
                    client_ca: self
                        .tls_client_ca
                        .as_deref()
                        .map(|p| crate::args::TlsArgs::read("--tls-client-ca", p))
                        .transpose()?,
                })
            }
            _ => None,
        };
        if let Some(a) = self.listen
            && tls.is_none()
            && !a.ip().is_loopback()
            && !tls_args.insecure
        {
            crate::usage!(
                "--listen {a}: plain TCP is served on loopback only; give --tls-cert and --tls-key for TLS, or --insecure to serve in the clear"
            );
        }
        if let Some(a) = self.metrics
            && !a.ip().is_loopback()
            && !tls_args.insecure
        {
            crate::usage!(
                "--metrics {a}: metrics are plain HTTP, served on loopback only; give --insecure to serve them on {}",
                a.ip()
            );
        }
        let socket_gid = match &self.socket_group {
            None => None,
            Some(g) => Some(group_id(g)?),
        };
        let defaults = <crate::datapath::LoadArgs as clap::FromArgMatches>::from_arg_matches(
            &<crate::datapath::LoadArgs as clap::Args>::augment_args(clap::Command::new("serve"))
                .get_matches_from(["serve"]),
        )?;
        if !self.load && format!("{:?}", self.settings) != format!("{defaults:?}") {
            crate::usage!(
                "--events, --snaplen, --aggregation, --debug and --map-size are load settings: give --load with them"
            );
        }
        if self.load {
            load_unless_loaded(bpffs, &self.settings)?;
        }
        // Peers found by DNS are asked their names as this node is asked:
        // plain where it serves plain, TLS with its own certificate (and the
        // client CA as the fleet's CA) where it serves TLS.
        dpdbg_api::client::configure(dpdbg_api::client::ClientTls {
            ca: match (&tls, &self.tls_client_ca) {
                (Some(t), Some(_)) => t.client_ca.clone(),
                _ => None,
            },
            identity: tls.as_ref().map(|t| (t.cert.clone(), t.key.clone())),
            server_name: None,
            insecure: tls_args.insecure || tls.is_none(),
        });
        let exe = std::env::current_exe().context("finding the dpdbg binary, to run commands for --server")?;
        let commands = dpdbg_api::server::commands::Runner {
            exe,
            bpffs: bpffs.to_path_buf(),
            allow_write: self.allow_write,
            classify: {
                let bpffs = bpffs.to_path_buf();
                std::sync::Arc::new(move |args: &[String]| crate::remote::classify_on(args, &bpffs))
            },
            events_socket: self.socket.clone(),
        };
        let opts = ServeOptions {
            bpffs: bpffs.to_path_buf(),
            commands: Some(commands),
            tls,
            socket_gid,
            socket: self.socket,
            listen: self.listen,
            metrics: self.metrics,
            buffer: self.buffer as usize,
            ct_gc_interval: self.ct_gc_interval,
            node_name: self.node_name.unwrap_or_else(hostname),
            attach: (!self.attach.is_empty()).then_some((self.attach, self.attach_mode)),
            peers: dpdbg_api::server::peer::PeerOptions {
                // A listener on every address has none to give: the node is
                // then a peer through --peers-dns (its own address among them).
                self_address: self.listen.filter(|a| !a.ip().is_unspecified()).map(|a| a.to_string()),
                fixed: self.peers,
                dns: self.peers_dns,
                dns_every: self.peers_dns_interval,
                tls: tls_args.tls_cert.is_some(),
                cluster: self.cluster_name,
            },
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let summary = rt.block_on(server::run(opts, shutdown_signal())).context("serve");
        // Tasks of clients that never went away are not waited for.
        rt.shutdown_timeout(Duration::from_secs(1));
        let summary = summary?;
        eprintln!(
            "dpdbg serve: stopped after {} flows{}{}",
            summary.seen_flows,
            if summary.undecodable > 0 { format!(", {} undecodable", summary.undecodable) } else { String::new() },
            match summary.commands_run {
                0 => String::new(),
                1 => ", 1 command run for clients".into(),
                n => format!(", {n} commands run for clients"),
            }
        );
        Ok(())
    }
}
