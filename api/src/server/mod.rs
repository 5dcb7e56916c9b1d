//! `dpdbg serve`: the one consumer of the datapath's events, keeping the
//! last flows for late joiners and serving Hubble's Observer API to any
//! number of clients over a unix socket (and TCP when asked).
//!
//! The rooms: `store` (the ring's reader, the flow buffer, the chunk pool),
//! one file per service (`observer`, `events`, `commands`, `snapshot`,
//! `health`, `peer`), the monitor socket (`monitor`), the listeners
//! (`listen`); this file wires them.

pub mod authority;
pub mod commands;
mod events;
mod guard;
mod health;
mod listen;
mod metrics;
mod monitor;
mod observer;
pub mod peer;
mod snapshot;
mod store;
mod stored;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpdbg::datapath;
use dpdbg::events::EventReader;
use tokio::sync::{broadcast, watch};

use crate::events::events_server::EventsServer;
use crate::events::snapshot_server::SnapshotServer;
use crate::observer_encoded::observer_server::ObserverServer;
use events::EventsService;
use listen::bind_unix;
use monitor::serve_monitor;
use observer::ObserverService;
use store::{Shared, read_events};

/// Where and how `dpdbg serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bpffs: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<SocketAddr>,
    /// Prometheus metrics over HTTP (`GET /metrics`) on this address.
    pub metrics: Option<SocketAddr>,
    /// How many flows are kept for clients that ask for the last N.
    pub buffer: usize,
    /// Conntrack garbage collection; zero turns it off.
    pub ct_gc_interval: Duration,
    /// dpdbg's commands for `--server` (dpdbg.v1.Commands); None leaves the service out.
    pub commands: Option<commands::Runner>,
    /// TLS on the TCP listener (the unix socket is guarded by its mode).
    pub tls: Option<ServerTls>,
    /// The group the unix socket belongs to (its owner is the server's user, root).
    pub socket_gid: Option<u32>,
    /// The node's name in flows, GetNodes and ServerStatus.
    pub node_name: String,
    /// Interfaces to attach the datapath to as they appear (patterns), and how.
    pub attach: Option<(Vec<String>, Option<datapath::AttachMode>)>,
    /// The fleet, for hubble-relay's peer.Peer/Notify.
    pub peers: peer::PeerOptions,
}

/// The server's certificate and key (PEM), and the CA its clients' certificates
/// must chain to (mutual TLS) when one is given.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Core(#[from] dpdbg::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Something other than a socket is where a socket was asked for.
    #[error(
        "{} is not a socket: dpdbg serve replaces only a stale socket, never another file; give --socket a free path, or remove the file yourself if nothing needs it",
        path.display()
    )]
    NotASocket { path: PathBuf },
}

/// What the server saw, reported when it stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeSummary {
    pub seen_flows: u64,
    pub undecodable: u64,
    /// Commands run for clients (dpdbg.v1.Commands), each a child process.
    pub commands_run: u64,
}

pub use health::{HEALTH_SERVICES, READY_SERVICE};

/// How long a stopping server waits for its clients' streams to end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the server until `shutdown` resolves; removes its socket on the way out.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ServeSummary, ServeError> {
    // A datapath loaded now is read from the start. The reader first: it
    // takes the consumer lock, so a second server stops here (naming the
    // first's pid) before it touches the first's socket. Without one the
    // server waits for one (readiness NOT_SERVING until then).
    let (settings, reader) = if datapath::Pins::new(&opts.bpffs).is_loaded() {
        let settings = datapath::loaded_settings(&opts.bpffs)?;
        (Some(settings.clone()), Some(EventReader::open(&opts.bpffs, settings.transport)?))
    } else {
        (None, None)
    };
    // The metrics listener before the sockets: an address in use stops the
    // server before it has made anything.
    let metrics_listener = match opts.metrics {
        Some(a) => Some(metrics::bind(a).await?),
        None => None,
    };
    let listener = bind_unix(&opts.socket, opts.socket_gid)?;
    let monitor_path = crate::monitor_socket::path_for(&opts.socket);
    let monitor_listener = match bind_unix(&monitor_path, opts.socket_gid) {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            return Err(e);
        }
    };
    // Commands for clients on this node, their output written by the
    // command itself to the client's descriptors (crate::run_socket).
    let run_path = crate::run_socket::path_for(&opts.socket);
    let run_listener = match opts.commands.is_some().then(|| bind_unix(&run_path, opts.socket_gid)).transpose() {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            let _ = std::fs::remove_file(&monitor_path);
            return Err(e);
        }
    };
    // In batches of up to BATCH_MAX flows.
    let (live, _) = broadcast::channel(256);
    let (raw, _) = broadcast::channel(1024);
    let (loaded, _) = watch::channel(reader.is_some());
    let shared = Arc::new(Shared {
        buffer: Mutex::new(VecDeque::with_capacity(opts.buffer)),
        capacity: opts.buffer.max(1),
        seen: AtomicU64::new(0),
        undecodable: AtomicU64::new(0),
        started: Instant::now(),
        live,
        raw,
        loaded,
        node: opts.node_name.clone(),
        address: opts.socket.display().to_string(),
        ifnames: Mutex::new(Default::default()),
        rooms: Mutex::new(Vec::new()),
        record_readers: Default::default(),
        counters: Default::default(),
        names: Default::default(),
    });
    tokio::spawn(store::refresh_names(Arc::clone(&shared), opts.bpffs.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let (s, b, st) = (Arc::clone(&shared), opts.bpffs.clone(), Arc::clone(&stop));
        std::thread::spawn(move || read_events(s, reader, b, st))
    };
    // The interfaces the agent manages: attached as they appear.
    let agent_thread = opts.attach.clone().map(|(patterns, mode)| {
        let st = Arc::clone(&stop);
        let bpffs = opts.bpffs.clone();
        let state = dpdbg::datapath::agent::Managed::path_for(&opts.bpffs);
        std::thread::spawn(move || {
            use dpdbg::datapath::agent::{Agent, AgentEvent};
            let shown = patterns.join(" ");
            let mut agent = match Agent::new(&bpffs, patterns, mode) {
                Ok(a) => a.with_state_file(state),
                Err(e) => return eprintln!("dpdbg serve: --attach: {e}"),
            };
            let r = agent.run(&st, |ev| match ev {
                AgentEvent::Attached { ifname, mode } => {
                    eprintln!("dpdbg serve: attached the datapath to {ifname} ({})", format!("{mode:?}").to_lowercase())
                }
                AgentEvent::Adopted { ifname } => eprintln!("dpdbg serve: {ifname} was attached already; managing it"),
                AgentEvent::Removed { ifname } => eprintln!("dpdbg serve: {ifname} is gone; cleared its pins"),
                AgentEvent::Failed { ifname, error } => {
                    eprintln!("dpdbg serve: could not attach to {ifname} (tried again at its next change): {error}")
                }
                AgentEvent::Waiting => {
                    eprintln!("dpdbg serve: interfaces matching {shown} are attached once a datapath is loaded")
                }
            });
            if let Err(e) = r {
                eprintln!("dpdbg serve: the interface manager stopped: {e}");
            }
        })
    });
    if !opts.ct_gc_interval.is_zero() {
        let (bpffs, every) = (opts.bpffs.clone(), opts.ct_gc_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let b = bpffs.clone();
                match tokio::task::spawn_blocking(move || dpdbg::maps::ct::gc(&b)).await {
                    Ok(Ok(n)) if n > 0 => eprintln!("dpdbg serve: conntrack gc removed {n} expired entries"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => eprintln!("dpdbg serve: conntrack gc: {e}"),
                    Err(e) => eprintln!("dpdbg serve: conntrack gc: {e}"),
                }
            }
        });
    }
    let svc = ObserverService(Arc::clone(&shared));
    let events = EventsService(Arc::clone(&shared));
    let health_svc = health::service(&shared).await;
    let (down_tx, down_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = down_tx.send(true);
    });
    let wait_down = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    let peers = peer::Peers::new(&opts.peers);
    tokio::spawn(peer::keep(Arc::clone(&peers), shared.node.clone(), opts.peers.clone()));
    let peers_svc = peer::PeerService(peers);
    // Hubble's services on every listener; dpdbg's own (commands as root,
    // packet bytes) only where the client is known: the unix socket (its
    // mode) or TCP with client certificates.
    let commands = opts.commands.clone().map(commands::CommandsService::new);
    let commands_run = commands.as_ref().map(commands::CommandsService::runs);
    let snapshot = snapshot::SnapshotService::new(opts.bpffs.clone());
    let routes = |tls: Option<&ServerTls>, known_clients: bool| -> Result<_, ServeError> {
        let mut b = tonic::transport::Server::builder();
        if let Some(t) = tls {
            let mut cfg = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&t.cert, &t.key));
            if let Some(ca) = &t.client_ca {
                cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            b = b.tls_config(cfg).map_err(ServeError::Transport)?;
        }
        let open = b
            .add_service(health_svc.clone())
            .add_service(ObserverServer::new(svc.clone()))
            .add_service(crate::peer::peer_server::PeerServer::new(peers_svc.clone()));
        Ok(if known_clients {
            open.add_service(EventsServer::new(events.clone()))
                .add_optional_service(commands.clone().map(crate::events::commands_server::CommandsServer::new))
                .add_service(SnapshotServer::new(snapshot.clone()))
        } else {
            open.add_service(EventsServer::new(guard::Unauthenticated))
                .add_service(crate::events::commands_server::CommandsServer::new(guard::Unauthenticated))
                .add_service(SnapshotServer::new(guard::Unauthenticated))
        })
    };
    let mut servers = Vec::new();
    {
        use tokio_stream::StreamExt;
        // Behind the front: a client's invalid :authority (grpcio sends the
        // socket path) becomes localhost before h2 sees it (authority.rs).
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener).map(|s| {
            s.map(|s| {
                crate::client::socket_buffers(&s);
                authority::AuthorityFront::new(s)
            })
        });
        let serving = routes(None, true)?.serve_with_incoming_shutdown(incoming, wait_down(down_rx.clone()));
        servers.push(tokio::spawn(serving));
    }
    {
        let shared = Arc::clone(&shared);
        let mut down = down_rx.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = monitor_listener.accept() => c,
                    _ = down.changed() => return,
                };
                match conn {
                    Ok((s, _)) => {
                        monitor::send_buffer(&s);
                        tokio::spawn(serve_monitor(Arc::clone(&shared), s, down.clone()));
                    }
                    // Out of file descriptors, say: the next connection may fare better.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    if let (Some(l), Some(svc)) = (run_listener, commands.clone()) {
        let mut down = down_rx.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = l.accept() => c,
                    _ = down.changed() => return,
                };
                match conn {
                    Ok((s, _)) => {
                        tokio::spawn(svc.clone().serve_run_socket(s));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    if let Some(l) = metrics_listener {
        metrics::spawn(l, Arc::clone(&shared), &opts.bpffs, down_rx.clone());
    }
    if let Some(addr) = opts.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Io { what: format!("binding {addr}"), source: e })?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        let mutual = opts.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let serving =
            routes(opts.tls.as_ref(), mutual)?.serve_with_incoming_shutdown(incoming, wait_down(down_rx.clone()));
        servers.push(tokio::spawn(serving));
    }
    let tcp = opts.listen.map(|a| match &opts.tls {
        Some(t) if t.client_ca.is_some() => format!("; on {a} (mutual TLS): every service"),
        Some(_) => format!(
            "; on {a} (TLS) without client certificates: {} ({} need --tls-client-ca)",
            guard::OPEN_SERVICES,
            guard::GUARDED_SERVICES
        ),
        None => format!(
            "; on {a} (plain) without client certificates: {} ({} need mutual TLS)",
            guard::OPEN_SERVICES,
            guard::GUARDED_SERVICES
        ),
    });
    let reading = match &settings {
        Some(s) => format!("reading {} ({:?})", opts.bpffs.display(), s.transport),
        None => format!("no datapath is loaded under {} yet: waiting for one", opts.bpffs.display()),
    };
    eprintln!(
        "dpdbg serve: node {}, {reading}, keeping the last {} flows; on {}: every service; records for monitors on {}{}",
        shared.node,
        shared.capacity,
        opts.socket.display(),
        monitor_path.display(),
        tcp.unwrap_or_default(),
    );
    if let Some(a) = opts.metrics {
        eprintln!("dpdbg serve: Prometheus metrics on http://{a}/metrics");
    }
    let mut result = Ok(());
    let drained = async {
        for s in servers {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(ServeError::Transport(e)),
                Err(e) => {
                    result =
                        Err(ServeError::Io { what: "the gRPC server task".into(), source: std::io::Error::other(e) })
                }
            }
        }
    };
    // A graceful stop waits for open streams to end; a client that stopped
    // reading (a suspended `tui --server`) would hold the server for ever.
    let deadline = async {
        wait_down(down_rx.clone()).await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::select! {
        _ = drained => {}
        _ = deadline => eprintln!(
            "dpdbg serve: clients still connected {} s after the stop; stopping anyway",
            STOP_GRACE.as_secs()
        ),
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader_thread.join();
    if let Some(t) = agent_thread {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&opts.socket);
    let _ = std::fs::remove_file(&monitor_path);
    let _ = std::fs::remove_file(&run_path);
    result?;
    Ok(ServeSummary {
        seen_flows: shared.seen.load(Ordering::Relaxed),
        undecodable: shared.undecodable.load(Ordering::Relaxed),
        commands_run: commands_run.map_or(0, |n| n.load(Ordering::Relaxed)),
    })
}
