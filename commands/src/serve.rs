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
    pub fn run(self, bpffs: &Path, tls_args: &crate::TlsArgs) -> anyhow::Result<()> {
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
                    cert: crate::TlsArgs::read("--tls-cert", c)?,
                    key: crate::TlsArgs::read("--tls-key", k)?,
                    client_ca: self
                        .tls_client_ca
                        .as_deref()
                        .map(|p| crate::TlsArgs::read("--tls-client-ca", p))
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
        let socket_gid = match &self.socket_group {
            None => None,
            Some(g) => Some(group_id(g)?),
        };
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
            buffer: self.buffer as usize,
            ct_gc_interval: self.ct_gc_interval,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let summary = rt.block_on(server::run(opts, shutdown_signal())).context("serve")?;
        eprintln!(
            "dpdbg serve: stopped after {} flows{}",
            summary.seen_flows,
            if summary.undecodable > 0 { format!(", {} undecodable", summary.undecodable) } else { String::new() }
        );
        Ok(())
    }
}
