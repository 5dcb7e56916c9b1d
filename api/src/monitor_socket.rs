//! The monitor socket: the ring's records from `dpdbg serve` to `dpdbg
//! monitor` (and the dashboard) on the same node, in plain length-prefixed
//! frames on a unix socket beside the gRPC one. cilium-dbg monitor reads the
//! agent's monitor socket the same way, outside gRPC.
//!
//! Why not the `dpdbg.v1.Events` stream it replaces for local readers: a
//! record through gRPC was encoded by prost, framed by tonic, split into
//! HTTP/2 DATA frames, gathered again and decoded on the other side. That
//! cost the server and the monitor 600 ns per record together, more than the
//! monitor's own decoding and printing; here a record is one copy into the
//! server's write buffer and one out of the monitor's read buffer. The gRPC
//! service stays for readers on other machines (`--server host:port`).
//!
//! On the wire, after the server's 8-byte hello (`HELLO`), frames follow,
//! each a 24-byte header — kind (u32), record count (u32), records lost
//! before this frame (u64), payload length (u32), zero (u32); little-endian —
//! and its payload: for `RECORDS`, each record as its length (u32) and its
//! bytes (the event header and the captured packet, as the ring held them);
//! for `END`, why the stream ends (UTF-8).

use std::path::{Path, PathBuf};

/// What the server says first: the format and its version.
pub const HELLO: &[u8; 8] = b"DPDBGMS1";

/// Frame kinds.
pub const RECORDS: u32 = 1;
pub const END: u32 = 2;

pub const HEADER_LEN: usize = 24;

/// Largest payload a reader accepts: a frame holds one write's records,
/// far below this; a larger length is not a frame of ours.
pub const PAYLOAD_MAX: usize = 64 << 20;

/// The monitor socket that goes with the gRPC socket at `grpc`: beside it,
/// `dpdbg.sock` giving `dpdbg-monitor.sock`.
pub fn path_for(grpc: &Path) -> PathBuf {
    let stem = grpc.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dpdbg".into());
    grpc.with_file_name(format!("{stem}-monitor.sock"))
}

/// Appends one frame of `records` (and the loss told with them) to `out`.
pub fn push_records<'a>(out: &mut Vec<u8>, records: impl ExactSizeIterator<Item = &'a [u8]> + Clone, lost: u64) {
    let count = records.len() as u32;
    let len: usize = records.clone().map(|r| 4 + r.len()).sum();
    push_header(out, RECORDS, count, lost, len as u32);
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
}

/// Appends the frame that ends the stream, saying why.
pub fn push_end(out: &mut Vec<u8>, why: &str) {
    push_header(out, END, 0, 0, why.len() as u32);
    out.extend_from_slice(why.as_bytes());
}

fn push_header(out: &mut Vec<u8>, kind: u32, count: u32, lost: u64, len: u32) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&lost.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// One frame, read in place from the reader's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Records, checked against the payload's length, and the loss before them.
    Records(Records<'a>, u64),
    End(&'a str),
}

/// A frame's records, one slice each; their lengths were checked when the frame was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records<'a> {
    payload: &'a [u8],
    count: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let (len, rest) = self.payload.split_first_chunk::<4>()?;
        let (rec, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        self.payload = rest;
        Some(rec)
    }
}

/// Bytes that are not frames of this format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the monitor socket's peer did not greet as dpdbg serve does (got {0:02x?})")]
    Hello(Vec<u8>),
    #[error("a frame of kind {0}, which this dpdbg does not know: is the server another version?")]
    Kind(u32),
    #[error("a frame of {0} bytes, more than any server sends")]
    TooLong(usize),
    #[error("a frame says {count} records but its {len} bytes hold them otherwise")]
    Records { count: u32, len: usize },
}

/// A frame's header, once its 24 bytes are at the front of `buf`.
struct Header {
    kind: u32,
    count: u32,
    lost: u64,
    len: usize,
}

fn header(buf: &[u8]) -> Option<Header> {
    let h = buf.first_chunk::<HEADER_LEN>()?;
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    Some(Header {
        kind: u32_at(0),
        count: u32_at(4),
        lost: u64::from(u32_at(8)) | (u64::from(u32_at(12)) << 32),
        len: u32_at(16) as usize,
    })
}

/// The first whole frame of `buf` and the bytes it takes; None until one is whole.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(Header { kind, count, lost, len }) = header(buf) else { return Ok(None) };
    if len > PAYLOAD_MAX {
        return Err(FrameError::TooLong(len));
    }
    if kind != RECORDS && kind != END {
        return Err(FrameError::Kind(kind));
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else { return Ok(None) };
    if kind == END {
        let why = std::str::from_utf8(payload).unwrap_or("the server ended the stream");
        return Ok(Some((Frame::End(why), HEADER_LEN + len)));
    }
    // Checked whole before any record is handed on: a bad frame hands none.
    let mut rest = payload;
    for _ in 0..count {
        let n = match rest.split_first_chunk::<4>() {
            Some((n, r)) if r.len() >= u32::from_le_bytes(*n) as usize => {
                rest = r;
                u32::from_le_bytes(*n) as usize
            }
            _ => return Err(FrameError::Records { count, len }),
        };
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        return Err(FrameError::Records { count, len });
    }
    Ok(Some((Frame::Records(Records { payload, count }, lost), HEADER_LEN + len)))
}

/// How long the frame at the front of `buf` is, header and payload, once its
/// header is there (a length past `PAYLOAD_MAX` counts as that: `parse`
/// refuses it).
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    header(buf).map(|h| HEADER_LEN + h.len.min(PAYLOAD_MAX))
}

/// Whether `buf` starts with the server's hello; None until 8 bytes are there.
pub fn hello(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    match buf.first_chunk::<8>() {
        None => Ok(None),
        Some(h) if h == HELLO => Ok(Some(HELLO.len())),
        Some(h) => Err(FrameError::Hello(h.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each frame's records and loss.
    type Got = Vec<(Vec<Vec<u8>>, u64)>;

    /// What a reader makes of `wire` read `cut` bytes at a time, as
    /// `RemoteEvents` reads it: the records, why it ended, bytes left over.
    fn read_back(wire: &[u8], cut: usize) -> (Got, Option<String>, usize) {
        let (mut buf, mut start, mut greeted) = (Vec::new(), 0, false);
        let (mut got, mut end) = (Vec::new(), None);
        for piece in wire.chunks(cut) {
            buf.extend_from_slice(piece);
            if !greeted {
                match hello(&buf).unwrap() {
                    Some(n) => start = n,
                    None => continue,
                }
                greeted = true;
            }
            while let Some((f, used)) = parse(&buf[start..]).unwrap() {
                match f {
                    Frame::Records(r, lost) => got.push((r.map(<[u8]>::to_vec).collect(), lost)),
                    Frame::End(why) => end = Some(why.to_string()),
                }
                start += used;
            }
        }
        (got, end, buf.len() - start)
    }

    #[test]
    fn frames_come_back_whole_whatever_the_reads_cut() {
        let recs: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 40 + i as usize * 7]).collect();
        let mut wire = HELLO.to_vec();
        push_records(&mut wire, recs[..20].iter().map(Vec::as_slice), 3);
        push_records(&mut wire, recs[20..].iter().map(Vec::as_slice), 0);
        push_records(&mut wire, std::iter::empty::<&[u8]>(), 9);
        push_end(&mut wire, "the datapath was unloaded");
        for cut in [1, 7, 23, 24, 25, 333, wire.len()] {
            let (got, end, left) = read_back(&wire, cut);
            assert_eq!(got, vec![(recs[..20].to_vec(), 3), (recs[20..].to_vec(), 0), (vec![], 9)], "cut {cut}");
            assert_eq!(end.as_deref(), Some("the datapath was unloaded"), "cut {cut}");
            assert_eq!(left, 0, "cut {cut}: nothing left over");
        }
    }

    #[test]
    fn what_is_not_a_frame_is_an_error_not_a_panic() {
        assert!(matches!(hello(b"HTTP/1.1 400"), Err(FrameError::Hello(_))));
        let frame = |kind: u32, count: u32, len: u32, payload: &[u8]| {
            let mut v = Vec::new();
            push_header(&mut v, kind, count, 0, len);
            v.extend_from_slice(payload);
            v
        };
        assert_eq!(parse(&frame(7, 0, 0, &[])), Err(FrameError::Kind(7)));
        assert_eq!(parse(&frame(RECORDS, 0, u32::MAX, &[])), Err(FrameError::TooLong(u32::MAX as usize)));
        // A record longer than the payload, a count the payload does not
        // hold, and bytes left over after the records.
        let bad = FrameError::Records { count: 1, len: 6 };
        assert_eq!(parse(&frame(RECORDS, 1, 6, &[9, 0, 0, 0, 1, 2])), Err(bad));
        let bad = FrameError::Records { count: 2, len: 6 };
        assert_eq!(parse(&frame(RECORDS, 2, 6, &[2, 0, 0, 0, 1, 2])), Err(bad));
        let bad = FrameError::Records { count: 1, len: 7 };
        assert_eq!(parse(&frame(RECORDS, 1, 7, &[2, 0, 0, 0, 1, 2, 3])), Err(bad));
        // Not whole yet: no frame, no error.
        assert_eq!(parse(&frame(RECORDS, 1, 6, &[2, 0, 0, 0, 1])), Ok(None));
        assert_eq!(path_for(Path::new("/run/dpdbg/dpdbg.sock")), Path::new("/run/dpdbg/dpdbg-monitor.sock"));
    }
}
