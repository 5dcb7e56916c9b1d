//! Connecting to `dpdbg serve`: a unix socket path or host:port.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::events::ReadRequest;
use crate::observer::observer_client::ObserverClient;

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    BadAddress(#[source] AddressError),
    #[error(
        "cannot reach dpdbg serve at {server}: {detail} (is `dpdbg serve` running? it listens on /run/dpdbg/dpdbg.sock by default)"
    )]
    Unreachable { server: String, detail: String },
    #[error(
        "TLS with dpdbg serve at {server} failed: {detail} (check --tls-ca, --tls-cert/--tls-key and --tls-server-name)"
    )]
    Tls { server: String, detail: String },
    #[error(
        "refusing plain TCP to {server}, which is not loopback: give --tls-ca FILE for TLS, or --insecure to send in the clear"
    )]
    PlainTcp { server: String },
    #[error("{0}")]
    Config(String),
}

/// How this process talks TLS to servers over TCP (the global --tls-* flags).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM of the CA that signed the server's certificate: TLS when set.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate and key of this client, for servers that ask (mTLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the server's certificate must carry (default: the host).
    pub server_name: Option<String>,
    /// Plain TCP to an address that is not loopback.
    pub insecure: bool,
}

static TLS: std::sync::OnceLock<ClientTls> = std::sync::OnceLock::new();

/// Sets how every connection of this process does TLS; the first call wins.
pub fn configure(tls: ClientTls) {
    let _ = TLS.set(tls);
}

/// An error with every cause it carries, each said once: tonic's own text
/// ("transport error") says little, the TLS library's cause says what.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let t = err.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A gRPC status as a person needs it: the message and what caused it.
pub fn status_text(s: &tonic::Status) -> String {
    use std::error::Error;
    let text = match s.source() {
        Some(src) => {
            let c = chain(src);
            if s.message().is_empty() || c.contains(s.message()) { c } else { format!("{}: {c}", s.message()) }
        }
        None => s.message().to_string(),
    };
    // A server that wants a client certificate ends the connection right
    // after the handshake: the client reads the TLS alert or, as often,
    // only sees its next write fail.
    let tls = TLS.get();
    let no_identity = tls.is_some_and(|t| t.ca.is_some() && t.identity.is_none());
    let lower = text.to_ascii_lowercase();
    if no_identity
        && ["certificaterequired", "broken pipe", "connection reset", "connection closed"]
            .iter()
            .any(|w| lower.contains(w))
    {
        return format!(
            "{text} (the server closed the TLS connection: it may require a client certificate; give --tls-cert and --tls-key)"
        );
    }
    text
}

fn looks_like_tls(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "alert", "unknownissuer", "expired"].iter().any(|w| d.contains(w))
}

/// HTTP/2's default 64 KiB window lets a server send about 150 flows before
/// it waits a round trip for the client's window update: a follower at
/// hundreds of thousands of flows a second needs far more in flight. The
/// keepalive makes a server that vanishes without closing the connection
/// (a node gone, a cable pulled) an error within seconds, not a hang.
fn tuned(ep: Endpoint) -> Endpoint {
    ep.initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .http2_keep_alive_interval(std::time::Duration::from_secs(10))
        .keep_alive_timeout(std::time::Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// Unix sockets default to about 200 KiB of buffer each way, where loopback
/// TCP grows its own: a command streaming hundreds of megabytes (a big
/// `map dump`) waits on the socket less with a few MiB.
pub fn socket_buffers(s: &impl std::os::fd::AsRawFd) {
    let size: libc::c_int = 4 << 20;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a valid fd and a c_int option value; failure keeps the default.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// Whether host:port names this machine.
fn is_loopback(server: &str) -> bool {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The socket path `server` names ("unix:PATH", or anything with a '/'), if it names one.
pub fn unix_path(server: &str) -> Option<PathBuf> {
    server.strip_prefix("unix:").map(PathBuf::from).or_else(|| server.contains('/').then(|| PathBuf::from(server)))
}

/// Where a server listens, as --server names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    /// A unix socket: "unix:PATH", or a path (anything with a '/').
    Unix(PathBuf),
    /// host:port; an IPv6 address in brackets.
    Tcp { host: String, port: u16 },
}

/// A --server that names no server at all: the caller's mistake, which no
/// server can answer, as opposed to an address where nobody answers.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--server {given:?}: {why}; give a unix socket path (/run/dpdbg/dpdbg.sock, or unix:PATH) or host:port (localhost:4245, [::1]:4245)"
)]
pub struct AddressError {
    /// The address as given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses a --server address without touching the network, so that one that
/// cannot name a server is refused before any dial.
pub fn parse_server(server: &str) -> Result<ServerAddr, AddressError> {
    let bad = |why: String| AddressError { given: server.to_string(), why };
    if server.trim().is_empty() {
        return Err(bad("an empty address".into()));
    }
    if let Some((scheme, _)) = server.split_once("://")
        && scheme != "unix"
    {
        return Err(bad(format!("a URL with the scheme {scheme}:// where no scheme goes")));
    }
    if let Some(path) = unix_path(server) {
        if path.as_os_str().is_empty() {
            return Err(bad("unix: with no path after it".into()));
        }
        return Ok(ServerAddr::Unix(path));
    }
    let Some((host, port)) = server.rsplit_once(':') else {
        return Err(bad("no port".into()));
    };
    let host = if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner.strip_suffix(']').and_then(|h| h.parse::<std::net::Ipv6Addr>().ok());
        v6.ok_or_else(|| bad(format!("{host:?} is not an IPv6 address in brackets")))?;
        host.to_string()
    } else if host.contains(':') || host.contains(']') {
        return Err(bad("an IPv6 address goes in brackets, as [fd00::1]:4245".into()));
    } else if host.is_empty() {
        return Err(bad("no host before the port".into()));
    } else if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_') {
        return Err(bad(format!("bad host {host:?}: a host name or an IP address")));
    } else {
        host.to_string()
    };
    let port = match port.parse::<u16>() {
        Ok(0) => return Err(bad("port 0 names no server: a port is 1 to 65535".into())),
        Ok(p) => p,
        Err(_) => return Err(bad(format!("port {port:?} is not a number from 1 to 65535"))),
    };
    Ok(ServerAddr::Tcp { host, port })
}

/// A channel to `server`: "unix:PATH", a path (anything with a '/'), or
/// host:port (TLS when configured, plain only to loopback or --insecure).
pub async fn connect(server: &str) -> Result<Channel, ConnectError> {
    if let ServerAddr::Unix(path) = parse_server(server).map_err(ConnectError::BadAddress)? {
        // The URI is not used for a unix socket, but an endpoint needs one.
        let ep = tuned(Endpoint::from_static("http://localhost"));
        return ep
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    socket_buffers(&s);
                    Ok::<_, std::io::Error>(TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| ConnectError::Unreachable { server: server.to_string(), detail: chain(&e) });
    }
    let tls = TLS.get().cloned().unwrap_or_default();
    if tls.identity.is_some() && tls.ca.is_none() {
        return Err(ConnectError::Config(
            "--tls-cert and --tls-key are for TLS, which needs --tls-ca (the CA that signed the server's certificate)"
                .into(),
        ));
    }
    // parse_server took the address, so the URI is well formed; this is in case the two ever disagree.
    let bad =
        || ConnectError::BadAddress(AddressError { given: server.to_string(), why: "not a URI authority".into() });
    let ep = match &tls.ca {
        None => {
            if !tls.insecure && !is_loopback(server) {
                return Err(ConnectError::PlainTcp { server: server.to_string() });
            }
            tuned(Endpoint::from_shared(format!("http://{server}")).map_err(|_| bad())?)
        }
        Some(ca) => {
            let mut cfg =
                tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca));
            if let Some((cert, key)) = &tls.identity {
                cfg = cfg.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            let host = server.rsplit_once(':').map_or(server, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
            cfg = cfg.domain_name(tls.server_name.clone().unwrap_or_else(|| host.to_string()));
            tuned(Endpoint::from_shared(format!("https://{server}")).map_err(|_| bad())?)
                .tls_config(cfg)
                .map_err(|e| ConnectError::Config(format!("TLS settings: {}", chain(&e))))?
        }
    };
    ep.connect().await.map_err(|e| {
        let detail = chain(&e);
        if tls.ca.is_some() && looks_like_tls(&detail) {
            ConnectError::Tls { server: server.to_string(), detail }
        } else {
            ConnectError::Unreachable { server: server.to_string(), detail }
        }
    })
}

pub async fn observer(server: &str) -> Result<ObserverClient<Channel>, ConnectError> {
    Ok(ObserverClient::new(connect(server).await?))
}

/// A blocking client of dpdbg.v1.Snapshot, for callers without an async
/// runtime of their own (the dashboard's remote source): one reading of the
/// node, read back into the core's own types.
pub struct SnapshotReader {
    rt: tokio::runtime::Runtime,
    client: crate::events::snapshot_client::SnapshotClient<Channel>,
    server: String,
}

impl SnapshotReader {
    pub fn connect(server: &str) -> Result<SnapshotReader, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let ch = rt.block_on(connect(server)).map_err(|e| e.to_string())?;
        let client = crate::events::snapshot_client::SnapshotClient::new(ch);
        Ok(SnapshotReader { rt, client, server: server.to_string() })
    }

    /// Reads the node once: its maps, and what `want` asks for besides.
    pub fn read(&mut self, want: dpdbg::snapshot::Want) -> Result<dpdbg::snapshot::NodeSnapshot, String> {
        let req = ReadRequest { status: want.status, programs: want.programs };
        let client = &mut self.client;
        let server = &self.server;
        let json = self.rt.block_on(async move {
            let mut stream = client.read(req).await.map_err(|s| format!("{server}: {}", status_text(&s)))?.into_inner();
            let mut json = Vec::new();
            while let Some(c) = stream.message().await.map_err(|s| format!("{server}: {}", status_text(&s)))? {
                json.extend_from_slice(&c.json);
            }
            Ok::<_, String>(json)
        })?;
        serde_json::from_slice(&json).map_err(|e| format!("the snapshot from {server}: {e}"))
    }
}

/// Runs one dpdbg command on the node through `dpdbg.v1.Commands`, for a
/// caller without a runtime of its own (the dashboard's collector thread,
/// asking the node to explain a drop): its exit code, stdout and stderr.
pub fn run_blocking(server: &str, args: Vec<String>, output: &str) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
    use crate::events::RunRequest;
    use crate::events::run_output::Item;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let ch = connect(server).await.map_err(|e| e.to_string())?;
        let mut client = crate::events::commands_client::CommandsClient::new(ch);
        let req = RunRequest { args, output: output.to_string() };
        let line = req.args.join(" ");
        let mut stream = client.run(req).await.map_err(|s| format!("{server}: {}", status_text(&s)))?.into_inner();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let gone = |s: tonic::Status| {
            format!("the server at {server} went away in the middle of `dpdbg {line}`: {}", status_text(&s))
        };
        while let Some(m) = stream.message().await.map_err(gone)? {
            match m.item {
                Some(Item::Stdout(b)) => out.extend(b),
                Some(Item::Stderr(b)) => err.extend(b),
                Some(Item::ExitCode(c)) => return Ok((c, out, err)),
                None => {}
            }
        }
        Err(format!("the server at {server} ended `dpdbg {line}` without its exit status"))
    })
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn server_addresses_parse_or_say_why_not() {
        let tcp = |h: &str, p| Ok(ServerAddr::Tcp { host: h.into(), port: p });
        assert_eq!(parse_server("/run/dpdbg/dpdbg.sock"), Ok(ServerAddr::Unix("/run/dpdbg/dpdbg.sock".into())));
        assert_eq!(parse_server("unix:rel.sock"), Ok(ServerAddr::Unix("rel.sock".into())));
        assert_eq!(parse_server("unix:///run/x.sock"), Ok(ServerAddr::Unix("///run/x.sock".into())));
        assert_eq!(parse_server("localhost:4245"), tcp("localhost", 4245));
        assert_eq!(parse_server("127.0.0.1:65535"), tcp("127.0.0.1", 65535));
        assert_eq!(parse_server("[::1]:4245"), tcp("[::1]", 4245));
        assert_eq!(parse_server("node-1.example.com:4244"), tcp("node-1.example.com", 4244));
        for (bad, why) in [
            ("", "empty"),
            ("127.0.0.1:99999", "\"99999\" is not a number from 1 to 65535"),
            ("host:notaport", "\"notaport\""),
            ("host", "no port"),
            ("host:0", "port 0"),
            (":1", "no host"),
            ("::1:4245", "brackets"),
            ("[::1:4245", "brackets"),
            ("[nothost]:1", "not an IPv6 address"),
            ("https://h:1", "scheme https://"),
            ("unix:", "no path"),
            ("a b:1", "bad host"),
        ] {
            let e = parse_server(bad).expect_err(bad);
            let text = e.to_string();
            assert!(text.contains(why), "{bad:?}: {text}");
            assert!(text.contains("unix socket path") && text.contains("host:port"), "{text}");
        }
    }
}
