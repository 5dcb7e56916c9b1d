//! Connecting to `dpdbg serve`: a unix socket path or host:port.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::observer::observer_client::ObserverClient;

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{server}: not a server address (give a unix socket path or host:port)")]
    BadAddress { server: String },
    #[error(
        "cannot reach dpdbg serve at {server}: {source} (is `dpdbg serve` running? it listens on /run/dpdbg/dpdbg.sock by default)"
    )]
    Unreachable {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// HTTP/2's default 64 KiB window lets a server send about 150 flows before
/// it waits a round trip for the client's window update: a follower at
/// hundreds of thousands of flows a second needs far more in flight.
fn tuned(ep: Endpoint) -> Endpoint {
    ep.initial_stream_window_size(Some(8 << 20)).initial_connection_window_size(Some(16 << 20))
}

/// A channel to `server`: "unix:PATH", a path (anything with a '/'), or host:port.
pub async fn connect(server: &str) -> Result<Channel, ConnectError> {
    let unreachable = |source| ConnectError::Unreachable { server: server.to_string(), source };
    let path =
        server.strip_prefix("unix:").map(str::to_string).or_else(|| server.contains('/').then(|| server.to_string()));
    if let Some(path) = path {
        let path = PathBuf::from(path);
        // The URI is not used for a unix socket, but an endpoint needs one.
        let ep = tuned(Endpoint::from_static("http://localhost"));
        return ep
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(unreachable);
    }
    let ep = tuned(
        Endpoint::from_shared(format!("http://{server}"))
            .map_err(|_| ConnectError::BadAddress { server: server.to_string() })?,
    );
    ep.connect().await.map_err(unreachable)
}

pub async fn observer(server: &str) -> Result<ObserverClient<Channel>, ConnectError> {
    Ok(ObserverClient::new(connect(server).await?))
}
