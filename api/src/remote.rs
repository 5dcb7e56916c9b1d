//! The datapath's event records through `dpdbg serve`, for code that reads
//! them the way it reads the ring: wait, then drain. On the server's node
//! they come through its monitor socket, read in place by the caller's
//! thread; from another machine, through the gRPC Events stream, which a
//! thread of its own runs so that callers stay synchronous.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::events::SubscribeRequest;
use crate::events::events_client::EventsClient;
use crate::monitor_socket as ms;

enum Msg {
    Records(Vec<prost::bytes::Bytes>, u64),
    End(Option<String>),
}

enum Via {
    Grpc {
        rx: Receiver<Msg>,
        pending: Vec<prost::bytes::Bytes>,
        server: String,
    },
    /// The monitor socket, non-blocking, and what was read of it: whole
    /// frames are handed on from `buf[start..]`, a partial one waits there.
    Socket {
        s: UnixStream,
        path: PathBuf,
        buf: Vec<u8>,
        start: usize,
        eof: bool,
    },
}

pub struct RemoteEvents {
    via: Via,
    /// Records the server could not hand to this subscriber in time.
    pub lost: u64,
    ended: Option<Option<String>>,
}

/// Bytes of the monitor socket one drain reads at most (but for a longer
/// frame, read whole): a drain stays short enough for its caller's deadline,
/// and the buffer is allocated once.
const READ_MAX: usize = 1 << 20;

/// What is read before the hello is checked: the hello and what follows it.
const HELLO_READ: usize = 64 << 10;

impl RemoteEvents {
    /// Subscribes to the records of the server at `server` (a socket path or
    /// host:port): through the monitor socket beside a local server's gRPC
    /// socket when there is one, else through its dpdbg.v1.Events stream.
    pub fn connect(server: &str) -> Result<RemoteEvents, String> {
        if let Some(grpc) = crate::client::unix_path(server) {
            let path = ms::path_for(&grpc);
            if let Ok(s) = UnixStream::connect(&path) {
                return Self::from_monitor_socket(s, path);
            }
        }
        Self::from_grpc(server)
    }

    fn from_monitor_socket(s: UnixStream, path: PathBuf) -> Result<RemoteEvents, String> {
        let fail = |e: &dyn std::fmt::Display| format!("reading the monitor socket {}: {e}", path.display());
        crate::client::socket_buffers(&s);
        // The hello first, blocking a little: a socket that is not a
        // server's is an error now, not a stream that never says anything.
        s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| fail(&e))?;
        let mut buf = Vec::with_capacity(READ_MAX);
        let skip = loop {
            if let Some(n) = ms::hello(&buf).map_err(|e| fail(&e))? {
                break n;
            }
            match read_into(&s, &mut buf, HELLO_READ) {
                Ok(0) => return Err(fail(&"the server closed the connection before its hello")),
                Ok(_) => {}
                Err(e) => return Err(fail(&e)),
            }
        };
        s.set_nonblocking(true).map_err(|e| fail(&e))?;
        Ok(RemoteEvents { via: Via::Socket { s, path, buf, start: skip, eof: false }, lost: 0, ended: None })
    }

    fn from_grpc(server: &str) -> Result<RemoteEvents, String> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(256);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let name = server.to_string();
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
        Ok(RemoteEvents { via: Via::Grpc { rx, pending: Vec::new(), server: name }, lost: 0, ended: None })
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Records(r, lost) => {
                if let Via::Grpc { pending, .. } = &mut self.via {
                    pending.extend(r);
                }
                self.lost = self.lost.saturating_add(lost);
            }
            Msg::End(why) => self.ended = Some(why),
        }
    }

    /// Where the records come from: the monitor socket's path, or the gRPC server.
    pub fn source(&self) -> String {
        match &self.via {
            Via::Grpc { server, .. } => server.clone(),
            Via::Socket { path, .. } => path.display().to_string(),
        }
    }

    /// Waits up to `timeout` for records; an error once the server's stream ended.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        if let Some(why) = &self.ended {
            return Err(why.clone().unwrap_or_else(|| "the server ended the stream".into()));
        }
        match &mut self.via {
            Via::Grpc { rx, pending, .. } => {
                if !pending.is_empty() {
                    return Ok(true);
                }
                match rx.recv_timeout(timeout) {
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
            Via::Socket { s, buf, start, eof, .. } => {
                if *eof || matches!(ms::parse(&buf[*start..]), Ok(Some(_)) | Err(_)) {
                    return Ok(true);
                }
                let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd for the call.
                let r = unsafe { libc::poll(&mut p, 1, ms) };
                Ok(r > 0)
            }
        }
    }

    /// Hands every record received so far to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        match &mut self.via {
            Via::Grpc { rx, .. } => {
                let msgs: Vec<Msg> = rx.try_iter().collect();
                for m in msgs {
                    self.take(m);
                }
                let Via::Grpc { pending, .. } = &mut self.via else { return 0 };
                let n = pending.len();
                for r in pending.drain(..) {
                    f(&r);
                }
                n
            }
            Via::Socket { s, path, buf, start, eof } => {
                // What a partial frame left is moved to the front, then as
                // much as is there is read behind it.
                buf.drain(..*start);
                *start = 0;
                // A frame longer than a drain's reading is read whole all the same.
                let want = READ_MAX.max(ms::frame_len(buf).unwrap_or(0));
                while !*eof && buf.len() < want {
                    match read_into(s, buf, want) {
                        Ok(0) => *eof = true,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            self.ended = Some(Some(format!("reading the monitor socket {}: {e}", path.display())));
                            break;
                        }
                    }
                }
                let mut n = 0;
                loop {
                    match ms::parse(&buf[*start..]) {
                        Ok(Some((frame, used))) => {
                            *start += used;
                            match frame {
                                ms::Frame::Records(records, lost) => {
                                    self.lost = self.lost.saturating_add(lost);
                                    for r in records {
                                        f(r);
                                        n += 1;
                                    }
                                }
                                ms::Frame::End(why) => {
                                    self.ended = Some(Some(why.to_string()));
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.ended = Some(Some(format!("reading the monitor socket {}: {e}", path.display())));
                            break;
                        }
                    }
                }
                if *eof && self.ended.is_none() {
                    self.ended = Some(None);
                }
                n
            }
        }
    }
}

/// One read from `s` onto the end of `buf`, which grows to `cap` bytes;
/// 0 at the end of the stream.
fn read_into(s: &UnixStream, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    buf.reserve(cap.saturating_sub(buf.len()).max(4096));
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: read(2) into the spare capacity, by pointer (no reference
        // to uninitialised bytes), writing at most its length.
        let r = unsafe { libc::read(s.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        if r >= 0 {
            // SAFETY: the r bytes just read are initialised.
            unsafe { buf.set_len(buf.len() + r as usize) };
            return Ok(r as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
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

    /// Where a remote reader's records come from (the monitor socket or the server).
    pub fn source(&self) -> Option<String> {
        match self {
            Records::Local(_) => None,
            Records::Remote(r) => Some(r.source()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A monitor socket's reader on one end of a socket pair, and the bytes
    /// a server would send written on the other by a thread.
    fn reader_of(wire: Vec<u8>) -> Result<RemoteEvents, String> {
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = theirs.write_all(&wire);
        });
        RemoteEvents::from_monitor_socket(ours, PathBuf::from("/test/dpdbg-monitor.sock"))
    }

    #[test]
    fn a_frame_longer_than_a_drain_reads_is_read_whole() {
        // 10,000 records of 300 bytes in one frame: 3 MB, three times what a drain reads.
        let big: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_le_bytes().repeat(75)).collect();
        let mut wire = ms::HELLO.to_vec();
        ms::push_records(&mut wire, big.iter().map(Vec::as_slice), 4);
        ms::push_records(&mut wire, [&b"last"[..]].into_iter(), 0);
        ms::push_end(&mut wire, "the datapath was unloaded");
        let mut r = reader_of(wire).unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let end = loop {
            assert!(std::time::Instant::now() < deadline, "stuck after {} records", got.len());
            match r.wait(Duration::from_millis(100)) {
                Ok(_) => {
                    r.drain(|rec| got.push(rec.to_vec()));
                }
                Err(why) => break why,
            }
        };
        assert_eq!(got.len(), 10_001);
        assert!(got[..10_000] == big[..], "every record whole and in order");
        assert_eq!(got[10_000], b"last");
        assert_eq!(r.lost, 4);
        assert_eq!(end, "the datapath was unloaded");
    }

    #[test]
    fn a_peer_that_is_not_a_server_is_an_error() {
        let e = reader_of(b"HTTP/1.1 400 Bad Request\r\n".to_vec()).err().unwrap();
        assert!(e.contains("/test/dpdbg-monitor.sock") && e.contains("did not greet"), "{e}");
        let e = reader_of(b"DPDB".to_vec()).err().unwrap();
        assert!(e.contains("closed the connection before its hello"), "{e}");
        // Greeted, then a frame no server sends: the stream ends saying so.
        let mut wire = ms::HELLO.to_vec();
        wire.extend_from_slice(&[9u8; ms::HEADER_LEN]);
        let mut r = reader_of(wire).unwrap();
        let _ = r.wait(Duration::from_secs(1));
        assert_eq!(r.drain(|_| {}), 0);
        let e = r.wait(Duration::ZERO).unwrap_err();
        assert!(e.contains("more than any server sends"), "{e}");
    }
}
