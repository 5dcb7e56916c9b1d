//! The run socket: `dpdbg --server SOCKET …` on the server's own node hands
//! the server its stdout and stderr (SCM_RIGHTS) with the command line, and
//! the server's child writes to them itself; only the exit status comes back.
//!
//! Through `dpdbg.v1.Commands` every byte a command prints is read from a
//! pipe by the server, framed by HTTP/2, written to the socket, read and
//! written again by the client: a 318 MB `bpf ct list -o json` cost 1.4 to
//! 1.65 times the local command on two cores. Here the bytes take the path
//! they take locally. The socket sits beside the gRPC socket with its mode
//! and group (whoever may run commands there may run them here), and what
//! may run is decided exactly as for Commands. A client that finds no run
//! socket (an older server) uses Commands.
//!
//! Frames: the request is a u32 length (little-endian) and a JSON object
//! `{"args": [...], "output": "table|json|jsonl"}`, sent in one `sendmsg`
//! with the two descriptors; the reply is one JSON object per line,
//! `{"exit_code": N}` or `{"code": GRPC_CODE, "message": "…"}` for a refusal.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most a request may be: a command line, not a payload.
pub const MAX_REQUEST: usize = 64 << 10;

/// The run socket beside a server's gRPC socket (`dpdbg.sock` → `dpdbg-run.sock`).
pub fn path_for(grpc: &Path) -> PathBuf {
    let stem = grpc.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dpdbg".into());
    grpc.with_file_name(format!("{stem}-run.sock"))
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<String>,
    pub output: String,
}

/// How a run ended, as the server tells it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Reply {
    Exit {
        exit_code: i32,
    },
    /// Refused or failed before the command ran: a gRPC status code and its message.
    Status {
        code: i32,
        message: String,
    },
}

/// Sends `req` with `fds` over `sock` in one message.
pub fn send_request(sock: RawFd, req: &Request, fds: &[RawFd]) -> io::Result<()> {
    let body = serde_json::to_vec(req).map_err(io::Error::other)?;
    if body.len() > MAX_REQUEST {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the command line is longer than 64 KiB"));
    }
    let mut msg = (body.len() as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&body);
    send_with_fds(sock, &msg, fds)
}

/// `msg` with `fds` attached to its first byte.
fn send_with_fds(sock: RawFd, msg: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE computes a size from a length.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    // u64 elements: the control buffer must be aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: msg.as_ptr() as *mut libc::c_void, iov_len: msg.len() };
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: the control buffer holds one header of CMSG_SPACE(fd_bytes)
    // bytes; CMSG_FIRSTHDR/CMSG_DATA point inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), fd_bytes);
    }
    // SAFETY: a valid socket and a msghdr whose buffers live through the call.
    let n = unsafe { libc::sendmsg(sock, &hdr, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // A unix stream socket takes a small message whole; a short send would
    // carry the descriptors with the first part, so the rest follows plainly.
    let mut rest = &msg[n as usize..];
    // SAFETY: borrowing the caller's socket for the rest of the write; not closed here.
    let mut s = std::mem::ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(sock) });
    while !rest.is_empty() {
        let k = s.write(rest)?;
        rest = &rest[k..];
    }
    Ok(())
}

/// What went wrong with a request, for the reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    #[error("the request came without the client's stdout and stderr")]
    NoDescriptors,
    #[error("a request of {0} bytes: at most {MAX_REQUEST}")]
    TooLong(usize),
    #[error("the request is not a run request: {0}")]
    Malformed(String),
}

/// Receives one request and its two descriptors from a blocking socket.
pub fn recv_request(sock: &mut std::os::unix::net::UnixStream) -> Result<(Request, OwnedFd, OwnedFd), RequestError> {
    let mut first = vec![0u8; 4096];
    // Room for more descriptors than asked for: any extra are closed, not leaked.
    // SAFETY: CMSG_SPACE computes a size from a length.
    let space = unsafe { libc::CMSG_SPACE((8 * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: first.as_mut_ptr().cast(), iov_len: first.len() };
    // SAFETY: as in send_request.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: a valid socket and buffers that live through the call;
    // MSG_CMSG_CLOEXEC so no child inherits what it was not given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&hdr, c);
        }
    }
    if fds.len() != 2 || hdr.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(RequestError::NoDescriptors);
    }
    let mut got = first[..n as usize].to_vec();
    while got.len() < 4 {
        let mut b = [0u8; 4];
        let k = sock.read(&mut b[..4 - got.len()])?;
        if k == 0 {
            return Err(RequestError::Malformed("it ended before its length".into()));
        }
        got.extend_from_slice(&b[..k]);
    }
    let len = u32::from_le_bytes(got[..4].try_into().unwrap_or([0; 4])) as usize;
    if len > MAX_REQUEST {
        return Err(RequestError::TooLong(len));
    }
    if got.len() > 4 + len {
        return Err(RequestError::Malformed("bytes after the request".into()));
    }
    let mut body = got.split_off(4);
    let had = body.len();
    body.resize(len, 0);
    sock.read_exact(&mut body[had..])?;
    let req: Request = serde_json::from_slice(&body).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let mut it = fds.into_iter();
    match (it.next(), it.next()) {
        (Some(out), Some(err)) => Ok((req, out, err)),
        _ => Err(RequestError::NoDescriptors),
    }
}

/// Reads the server's reply (one JSON line) from a blocking socket.
pub fn read_reply(sock: &mut impl Read) -> io::Result<Option<Reply>> {
    let mut buf = Vec::new();
    let mut b = [0u8; 256];
    loop {
        let n = sock.read(&mut b)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&b[..n]);
        if let Some(end) = buf.iter().position(|&c| c == b'\n') {
            return serde_json::from_slice(&buf[..end]).map(Some).map_err(io::Error::other);
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::other("the server's reply is not a reply"));
        }
    }
}

/// The reply as a line to write.
pub fn reply_line(r: &Reply) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_descriptors_arrive_together() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f1 = tempfile::tempfile().unwrap();
        let f2 = tempfile::tempfile().unwrap();
        let req = Request { args: vec!["bpf".into(), "ct".into(), "list".into()], output: "json".into() };
        send_request(a.as_raw_fd(), &req, &[f1.as_raw_fd(), f2.as_raw_fd()]).unwrap();
        let (got, out, _err) = recv_request(&mut b).unwrap();
        assert_eq!(got, req);
        // The descriptor received is the same open file: a write through it shows in f1.
        let mut w = std::fs::File::from(out);
        w.write_all(b"through the socket").unwrap();
        let mut r = f1;
        use std::io::Seek;
        r.rewind().unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through the socket");
    }

    #[test]
    fn a_request_without_descriptors_or_too_long_is_refused() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.write_all(&5u32.to_le_bytes()).unwrap();
        a.write_all(b"{}").unwrap();
        assert!(matches!(recv_request(&mut b), Err(RequestError::NoDescriptors)));

        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let long = Request { args: vec!["x".repeat(MAX_REQUEST)], output: "json".into() };
        assert!(send_request(a.as_raw_fd(), &long, &[1, 2]).is_err(), "the client refuses it too");
        // A client that lies about the length is refused before anything is read.
        let mut raw = ((MAX_REQUEST + 1) as u32).to_le_bytes().to_vec();
        raw.extend_from_slice(b"{");
        let f = tempfile::tempfile().unwrap();
        send_with_fds(a.as_raw_fd(), &raw, &[f.as_raw_fd(), f.as_raw_fd()]).unwrap();
        assert!(matches!(recv_request(&mut b), Err(RequestError::TooLong(n)) if n == MAX_REQUEST + 1));
    }

    #[test]
    fn replies_read_back() {
        for r in [Reply::Exit { exit_code: 3 }, Reply::Status { code: 7, message: "no writes".into() }] {
            let line = reply_line(&r);
            assert_eq!(read_reply(&mut &line[..]).unwrap(), Some(r));
        }
        assert_eq!(read_reply(&mut &b""[..]).unwrap(), None);
    }
}
