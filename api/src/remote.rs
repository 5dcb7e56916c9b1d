//! The datapath's event records through `dpdbg serve`, for code that reads
//! them the way it reads the ring: wait, then drain. A thread of its own
//! runs the gRPC stream, so callers stay synchronous.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::events::SubscribeRequest;
use crate::events::events_client::EventsClient;

enum Msg {
    Records(Vec<prost::bytes::Bytes>, u64),
    End(Option<String>),
}

pub struct RemoteEvents {
    rx: Receiver<Msg>,
    pending: Vec<prost::bytes::Bytes>,
    /// Records the server could not hand to this subscriber in time.
    pub lost: u64,
    ended: Option<Option<String>>,
}

impl RemoteEvents {
    /// Subscribes to the records of the server at `server` (a socket path or host:port).
    pub fn connect(server: &str) -> Result<RemoteEvents, String> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(256);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let server = server.to_string();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let channel = match crate::client::connect(&server).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let mut stream = match EventsClient::new(channel).subscribe(SubscribeRequest {}).await {
                    Ok(s) => s.into_inner(),
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("subscribing at {server}: {}", e.message())));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                loop {
                    let msg = match stream.message().await {
                        Ok(Some(r)) => Msg::Records(r.records, r.lost),
                        Ok(None) => Msg::End(None),
                        Err(e) => Msg::End(Some(e.message().to_string())),
                    };
                    let end = matches!(msg, Msg::End(_));
                    if tx.send(msg).is_err() || end {
                        return;
                    }
                }
            });
        });
        ready_rx.recv().map_err(|_| "the subscription thread ended".to_string())??;
        Ok(RemoteEvents { rx, pending: Vec::new(), lost: 0, ended: None })
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Records(r, lost) => {
                self.pending.extend(r);
                self.lost += lost;
            }
            Msg::End(why) => self.ended = Some(why),
        }
    }

    /// Waits up to `timeout` for records; an error once the server's stream ended.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        if let Some(why) = &self.ended {
            return Err(why.clone().unwrap_or_else(|| "the server ended the stream".into()));
        }
        if !self.pending.is_empty() {
            return Ok(true);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(m) => {
                self.take(m);
                Ok(true)
            }
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = Some(None);
                Err("the server ended the stream".into())
            }
        }
    }

    /// Hands every record received so far to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
        let n = self.pending.len();
        for r in self.pending.drain(..) {
            f(&r);
        }
        n
    }
}

/// Where a reader's records come from: the ring itself, or `dpdbg serve`
/// when the server holds the ring. `monitor` and the dashboard read both alike.
pub enum Records {
    Local(dpdbg::events::EventReader),
    Remote(RemoteEvents),
}

/// Neither the ring nor a server could be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{busy}, and no dpdbg serve answered at {server} ({why})")]
    BusyNoServer {
        #[source]
        busy: dpdbg::Error,
        server: String,
        why: String,
    },
    #[error(transparent)]
    Core(#[from] dpdbg::Error),
}

impl Records {
    /// The ring when it is free; when another reader holds it, the server at `server`.
    pub fn open(
        bpffs: &std::path::Path,
        transport: dpdbg::datapath::Transport,
        server: &str,
    ) -> Result<Records, RecordsError> {
        match dpdbg::events::EventReader::open(bpffs, transport) {
            Ok(r) => Ok(Records::Local(r)),
            Err(busy @ dpdbg::Error::EventsBusy { .. }) => match RemoteEvents::connect(server) {
                Ok(r) => Ok(Records::Remote(r)),
                Err(why) => Err(RecordsError::BusyNoServer { busy, server: server.to_string(), why }),
            },
            Err(e) => Err(e.into()),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Records::Remote(_))
    }

    pub fn wait(&mut self, timeout: Duration) -> Result<(), String> {
        match self {
            Records::Local(r) => r.wait(timeout).map(|_| ()).map_err(|e| e.to_string()),
            Records::Remote(r) => r.wait(timeout).map(|_| ()),
        }
    }

    pub fn drain(&mut self, f: impl FnMut(&[u8])) -> usize {
        match self {
            Records::Local(r) => r.drain(f),
            Records::Remote(r) => r.drain(f),
        }
    }

    /// Losses the perf buffers reported (local perf transport only).
    pub fn perf_lost(&self) -> u64 {
        match self {
            Records::Local(r) => r.lost,
            Records::Remote(_) => 0,
        }
    }

    /// Records the server could not hand to us since the last call.
    pub fn take_remote_lost(&mut self) -> u64 {
        match self {
            Records::Local(_) => 0,
            Records::Remote(r) => std::mem::take(&mut r.lost),
        }
    }
}
