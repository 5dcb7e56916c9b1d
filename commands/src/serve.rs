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
    /// Also serve on this TCP address (loopback only until TLS is there).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
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
    pub fn run(self, bpffs: &Path) -> anyhow::Result<()> {
        dpdbg::sys::require_privileges("serve")?;
        // A client that goes away mid-stream must not take the server with
        // it: a server ignores SIGPIPE and sees EPIPE on that one connection
        // (the CLI otherwise dies quietly on a closed pipe, as Unix tools do).
        // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        if let Some(a) = self.listen
            && !a.ip().is_loopback()
        {
            crate::usage!(
                "--listen {a}: plain TCP is served on loopback only (TLS is not there yet); use 127.0.0.1:PORT or the unix socket"
            );
        }
        let exe = std::env::current_exe().context("finding the dpdbg binary, to run commands for --server")?;
        let commands = dpdbg_api::commands::Runner {
            exe,
            bpffs: bpffs.to_path_buf(),
            allow_write: self.allow_write,
            classify: std::sync::Arc::new(crate::remote::classify),
            events_socket: self.socket.clone(),
        };
        let opts = ServeOptions {
            bpffs: bpffs.to_path_buf(),
            commands: Some(commands),
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
