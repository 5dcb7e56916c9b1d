//! Traffic between lab endpoints: ping for ICMP (the real tool), sockets
//! opened inside the endpoints' namespaces for TCP and UDP.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Lab, LabEndpoint};
use crate::{Error, Result};

/// Runs `f` on a thread that has entered network namespace `netns`; sockets
/// it opens live there.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let handle = std::thread::spawn(move || -> std::io::Result<T> {
        // SAFETY: setns on a valid namespace fd affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| Error::Lab(format!("thread in {netns} panicked")))?
        .map_err(|e| Error::io("setns", path, e))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficKind {
    Icmp,
    Tcp,
    Udp,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrafficResult {
    pub from: String,
    pub to: String,
    pub kind: TrafficKind,
    pub dst: String,
    pub ok: bool,
    pub detail: String,
}

const TIMEOUT: Duration = Duration::from_secs(2);

impl Lab {
    /// One ping from endpoint `from` to `dst`; Ok(false) when no reply came.
    pub fn ping(&self, from: usize, dst: IpAddr) -> Result<bool> {
        let ns = &self.endpoint(from).netns;
        let dst = dst.to_string();
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "2", &dst])
            .output()
            .map_err(|e| Error::Command {
                command: "ip netns exec … ping".into(),
                stderr: format!("{e} (is iputils-ping installed?)"),
            })?;
        Ok(out.status.success())
    }

    /// A TCP connection from endpoint `from` to `to`'s `dst:port`: the client
    /// sends a line, the server echoes it, both close. Returns what came back.
    pub fn tcp(&self, from: usize, to: usize, dst: IpAddr, port: u16) -> Result<std::result::Result<Vec<u8>, String>> {
        let server_ns = self.endpoint(to).netns.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = std::thread::spawn(move || {
            in_netns(&server_ns, move || -> std::io::Result<()> {
                let l = TcpListener::bind(SocketAddr::new(dst, port))?;
                l.set_nonblocking(true)?;
                let _ = ready_tx.send(());
                let start = Instant::now();
                loop {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            s.set_nonblocking(false)?;
                            s.set_read_timeout(Some(TIMEOUT))?;
                            let mut buf = [0u8; 64];
                            let n = s.read(&mut buf)?;
                            s.write_all(&buf[..n])?;
                            return Ok(());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < TIMEOUT => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
        });
        if ready_rx.recv_timeout(TIMEOUT).is_err() {
            let r = server.join().map_err(|_| Error::Lab("tcp server panicked".into()))?;
            let why = match r {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "it stopped before listening".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(Error::Lab(format!("tcp server did not start: {why}")));
        }
        let client_ns = self.endpoint(from).netns.clone();
        let res = in_netns(&client_ns, move || -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&SocketAddr::new(dst, port), TIMEOUT)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.write_all(b"hello dpdbg\n")?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf)?;
            Ok(buf)
        })?;
        let _ = server.join();
        Ok(res.map_err(|e| e.to_string()))
    }

    /// A UDP request from `from` to `to`'s `dst:port`, answered by a server
    /// there. Returns the reply, or the error (a timeout when dropped).
    pub fn udp(&self, from: usize, to: usize, dst: IpAddr, port: u16) -> Result<std::result::Result<Vec<u8>, String>> {
        let server_ns = self.endpoint(to).netns.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = std::thread::spawn(move || {
            in_netns(&server_ns, move || -> std::io::Result<()> {
                let s = UdpSocket::bind(SocketAddr::new(dst, port))?;
                s.set_read_timeout(Some(TIMEOUT))?;
                let _ = ready_tx.send(());
                let mut buf = [0u8; 64];
                let (n, peer) = s.recv_from(&mut buf)?;
                s.send_to(&buf[..n], peer)?;
                Ok(())
            })
        });
        if ready_rx.recv_timeout(TIMEOUT).is_err() {
            return Err(Error::Lab("udp server did not start".into()));
        }
        let client_ns = self.endpoint(from).netns.clone();
        let res = in_netns(&client_ns, move || -> std::io::Result<Vec<u8>> {
            let bind = if dst.is_ipv4() {
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
            };
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.send_to(b"hello dpdbg\n", SocketAddr::new(dst, port))?;
            let mut buf = [0u8; 64];
            let (n, _) = s.recv_from(&mut buf)?;
            Ok(buf[..n].to_vec())
        })?;
        let _ = server.join();
        Ok(res.map_err(|e| e.to_string()))
    }

    /// ICMP, TCP and UDP over IPv4 and IPv6 from each endpoint to the next.
    pub fn traffic(&self) -> Result<Vec<TrafficResult>> {
        let n = self.endpoints().len();
        let mut out = Vec::new();
        if n < 2 {
            return Err(Error::Lab("traffic needs at least 2 endpoints: run `dpdbg lab up --endpoints 2`".into()));
        }
        for i in 0..n {
            let j = (i + 1) % n;
            if n == 2 && i == 1 {
                // Two endpoints: one direction is enough, and keeps the output short.
                break;
            }
            let (a, b): (&LabEndpoint, &LabEndpoint) = (self.endpoint(i), self.endpoint(j));
            for dst in [IpAddr::V4(b.ipv4), IpAddr::V6(b.ipv6)] {
                let mut push = |kind, ok: bool, detail: String| {
                    out.push(TrafficResult {
                        from: a.name.clone(),
                        to: b.name.clone(),
                        kind,
                        dst: dst.to_string(),
                        ok,
                        detail,
                    })
                };
                let ok = self.ping(i, dst)?;
                push(TrafficKind::Icmp, ok, if ok { "echo reply".into() } else { "no reply".into() });
                match self.tcp(i, j, dst, 8080)? {
                    Ok(r) => push(TrafficKind::Tcp, true, format!("port 8080: {} bytes echoed", r.len())),
                    Err(e) => push(TrafficKind::Tcp, false, format!("port 8080: {e}")),
                }
                match self.udp(i, j, dst, 5353)? {
                    Ok(r) => push(TrafficKind::Udp, true, format!("port 5353: {} bytes echoed", r.len())),
                    Err(e) => push(TrafficKind::Udp, false, format!("port 5353: {e}")),
                }
            }
        }
        Ok(out)
    }
}
