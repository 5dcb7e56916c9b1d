//! The monitor socket: the ring's records for `dpdbg monitor` and the
//! dashboard on the same node, in plain frames (`crate::monitor_socket`),
//! outside gRPC, as cilium-dbg monitor reads the agent's monitor socket.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::Status;

use super::events::events_feed;
use super::store::Shared;
use crate::events::EventBatch;

/// Bytes gathered from a reader's queue before they are written: one write
/// per this much under a flood, one per message when records trickle.
const MONITOR_WRITE: usize = 256 << 10;

/// The kernel's buffer for a monitor connection: room for a few writes of
/// MONITOR_WRITE. Records beyond that wait in the reader's bounded queue,
/// where they are counted when dropped; a bigger buffer only held more
/// kernel memory per reader that stopped reading (8 MiB with 4 MiB asked).
const MONITOR_SNDBUF: libc::c_int = 1 << 20;

/// Sets the send buffer of a monitor connection (the kernel doubles it).
pub(super) fn send_buffer(s: &impl std::os::fd::AsRawFd) {
    // SAFETY: setsockopt with a valid fd and a c_int option value; failure keeps the default.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&MONITOR_SNDBUF as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// One monitor socket connection: the hello, then the records of
/// `events_feed` as frames, until the reader goes, or the datapath is
/// unloaded or the server stops (either said in an END frame).
pub(super) async fn serve_monitor(shared: Arc<Shared>, mut s: tokio::net::UnixStream, mut down: watch::Receiver<bool>) {
    use crate::monitor_socket as ms;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = Vec::with_capacity(MONITOR_WRITE + (64 << 10));
    out.extend_from_slice(ms::HELLO);
    let mut rx = match events_feed(&shared, super::metrics::Kind::Monitor) {
        Ok(rx) => rx,
        Err(refused) => {
            ms::push_end(&mut out, refused.message());
            let _ = s.write_all(&out).await;
            return;
        }
    };
    let push = |out: &mut Vec<u8>, m: Result<EventBatch, Status>| -> bool {
        match m {
            Ok(b) => {
                ms::push_records(out, b.records.iter().map(|r| &r[..]), b.lost);
                true
            }
            Err(status) => {
                ms::push_end(out, status.message());
                false
            }
        }
    };
    let mut gone = [0u8; 64];
    loop {
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        let m = tokio::select! {
            m = rx.recv() => m,
            _ = down.changed() => {
                ms::push_end(&mut out, "dpdbg serve stopped");
                let _ = s.write_all(&out).await;
                return;
            }
            // The reader never writes: an end of its side is a reader gone,
            // whose place and queue go now rather than at the next record.
            r = s.read(&mut gone) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        let Some(m) = m else { return };
        let mut more = push(&mut out, m);
        while more && out.len() < MONITOR_WRITE {
            match rx.try_recv() {
                Ok(m) => more = push(&mut out, m),
                Err(_) => break,
            }
        }
        if !more {
            let _ = s.write_all(&out).await;
            return;
        }
    }
}
