//! Capture files of raw event records (`dpdbg monitor --write FILE`), read
//! back by `dpdbg monitor -r FILE` as if the events came from the ring.
//!
//! The records are kept as the ring held them (event header and packet
//! bytes), so every filter and output of monitor applies to a replay as to
//! a live stream. What a record alone cannot say travels beside it: the
//! node's time base (wall-clock minus CLOCK_MONOTONIC, which the records'
//! stamps are in) and the names of the interfaces (an ifindex means nothing
//! on another node, or after the interface is gone).
//!
//! Format (little-endian), version 1:
//!
//! ```text
//! 0   8   magic "DPDBGREC"
//! 8   2   version (1)
//! 10  2   flags (0)
//! 12  4   header length H
//! 16  H   header: one JSON object (see `Header`)
//! then frames, each: kind u8, 3 reserved bytes (0), payload length u32, payload
//!   kind 1 record     the event record: struct event_hdr, then cap_len packet bytes
//!   kind 2 interface  ifindex u32, then its name (UTF-8, at most 15 bytes); written
//!                     before the first record of that interface
//!   kind 3 lost       u64: events the reader was told it lost at that point
//! ```
//!
//! A reader stops with an error naming the byte offset where a file is not
//! what it should be (another format, a frame cut short, an unknown kind),
//! after handing out every frame before it.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"DPDBGREC";
pub const VERSION: u16 = 1;

pub const FRAME_RECORD: u8 = 1;
pub const FRAME_INTERFACE: u8 = 2;
pub const FRAME_LOST: u8 = 3;

/// The longest frame a reader takes: a record is at most a few hundred
/// bytes; anything near this is a damaged length.
pub const FRAME_MAX: u32 = 1 << 20;
const HEADER_MAX: u32 = 1 << 20;

/// What a capture says about where it was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The dpdbg that wrote it.
    pub dpdbg_version: String,
    /// The node's host name.
    pub node: String,
    /// Wall-clock minus CLOCK_MONOTONIC on that node, in ns, when the capture
    /// began: a record's timestamp plus this is its time since the epoch.
    pub wall_offset_ns: i64,
    /// When the capture began (RFC 3339, UTC).
    pub started: String,
    /// The event transport and snap length of the datapath it came from.
    pub transport: String,
    pub snaplen: u32,
    /// The endpoints' names (id -> NAMESPACE/POD) when the capture began, so
    /// a capture played back names its endpoints as the live lines did.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoint_names: std::collections::BTreeMap<u32, String>,
}

/// Why a capture could not be read past some point.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not start with the magic: another format.
    #[error(
        "not a dpdbg capture: the first bytes are {found}, not {magic:?} (files of `dpdbg monitor --write`; a pcap is read by tcpdump)",
        magic = "DPDBGREC"
    )]
    Foreign { found: String },
    /// A newer format than this dpdbg reads.
    #[error("capture format version {version}: this dpdbg reads version {VERSION}")]
    Version { version: u16 },
    /// The file ends inside something.
    #[error("truncated at byte {offset}: {what} needs {need} bytes, the file has {have} more")]
    Truncated { offset: u64, what: &'static str, need: u64, have: u64 },
    /// Bytes that cannot be what they claim.
    #[error("damaged at byte {offset}: {what}")]
    Damaged { offset: u64, what: String },
    #[error("reading at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

impl ReadError {
    /// The byte offset the error is at.
    pub fn offset(&self) -> u64 {
        match self {
            ReadError::Foreign { .. } | ReadError::Version { .. } => 0,
            ReadError::Truncated { offset, .. } | ReadError::Damaged { offset, .. } | ReadError::Io { offset, .. } => {
                *offset
            }
        }
    }
}

/// One frame of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Record(Vec<u8>),
    Interface { ifindex: u32, name: String },
    Lost(u64),
}

/// Writes a capture: the header, then frames as they come.
pub struct Writer<W: Write> {
    w: W,
    named: HashSet<u32>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut w: W, header: &Header) -> io::Result<Writer<W>> {
        let h = serde_json::to_vec(header).map_err(io::Error::other)?;
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&0u16.to_le_bytes())?;
        w.write_all(&(h.len() as u32).to_le_bytes())?;
        w.write_all(&h)?;
        Ok(Writer { w, named: HashSet::new() })
    }

    fn frame(&mut self, kind: u8, payload: &[&[u8]]) -> io::Result<()> {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        self.w.write_all(&[kind, 0, 0, 0])?;
        self.w.write_all(&(len as u32).to_le_bytes())?;
        for p in payload {
            self.w.write_all(p)?;
        }
        Ok(())
    }

    /// A record seen on `ifindex`, whose name (when known) is written once, before it.
    pub fn record(&mut self, rec: &[u8], ifindex: u32, ifname: Option<&str>) -> io::Result<()> {
        if let Some(name) = ifname
            && self.named.insert(ifindex)
        {
            let name = &name.as_bytes()[..name.len().min(15)];
            self.frame(FRAME_INTERFACE, &[&ifindex.to_le_bytes(), name])?;
        }
        self.frame(FRAME_RECORD, &[rec])
    }

    /// Events lost at this point of the stream.
    pub fn lost(&mut self, n: u64) -> io::Result<()> {
        self.frame(FRAME_LOST, &[&n.to_le_bytes()])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Reads a capture frame by frame.
pub struct Reader<R: Read> {
    r: R,
    offset: u64,
    pub header: Header,
}

/// Reads exactly `buf.len()` bytes, or says how many there were.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Reader<R> {
    pub fn new(mut r: R) -> Result<Reader<R>, ReadError> {
        let mut fixed = [0u8; 16];
        let got = fill(&mut r, &mut fixed).map_err(|source| ReadError::Io { offset: 0, source })?;
        if got < 8 || &fixed[..8] != MAGIC {
            let shown: Vec<String> = fixed[..got.min(8)].iter().map(|b| format!("{b:02x}")).collect();
            return Err(ReadError::Foreign {
                found: if shown.is_empty() { "none (an empty file)".into() } else { shown.join(" ") },
            });
        }
        if got < 16 {
            return Err(ReadError::Truncated { offset: 0, what: "the file header", need: 16, have: got as u64 });
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != VERSION {
            return Err(ReadError::Version { version });
        }
        let hlen = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
        if hlen > HEADER_MAX {
            return Err(ReadError::Damaged { offset: 12, what: format!("a header of {hlen} bytes") });
        }
        let mut h = vec![0u8; hlen as usize];
        let got = fill(&mut r, &mut h).map_err(|source| ReadError::Io { offset: 16, source })?;
        if got < h.len() {
            return Err(ReadError::Truncated {
                offset: 16,
                what: "the capture header",
                need: hlen as u64,
                have: got as u64,
            });
        }
        let header: Header = serde_json::from_slice(&h)
            .map_err(|e| ReadError::Damaged { offset: 16, what: format!("the capture header is not its JSON: {e}") })?;
        Ok(Reader { r, offset: 16 + hlen as u64, header })
    }

    /// Where the next frame starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame; None at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let at = self.offset;
        let mut fh = [0u8; 8];
        let got = fill(&mut self.r, &mut fh).map_err(|source| ReadError::Io { offset: at, source })?;
        if got == 0 {
            return Ok(None);
        }
        if got < 8 {
            return Err(ReadError::Truncated { offset: at, what: "a frame header", need: 8, have: got as u64 });
        }
        let kind = fh[0];
        let len = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        if !matches!(kind, FRAME_RECORD | FRAME_INTERFACE | FRAME_LOST) {
            return Err(ReadError::Damaged { offset: at, what: format!("a frame of unknown kind {kind}") });
        }
        if len > FRAME_MAX {
            return Err(ReadError::Damaged { offset: at, what: format!("a frame of {len} bytes") });
        }
        let mut payload = vec![0u8; len as usize];
        let got = fill(&mut self.r, &mut payload).map_err(|source| ReadError::Io { offset: at + 8, source })?;
        let what = match kind {
            FRAME_RECORD => "a record",
            FRAME_INTERFACE => "an interface frame",
            _ => "a lost-events frame",
        };
        if got < payload.len() {
            return Err(ReadError::Truncated { offset: at, what, need: 8 + len as u64, have: 8 + got as u64 });
        }
        self.offset = at + 8 + len as u64;
        let damaged = |what: &str| ReadError::Damaged { offset: at, what: what.to_string() };
        Ok(Some(match kind {
            FRAME_RECORD => Frame::Record(payload),
            FRAME_INTERFACE => {
                if payload.len() < 5 || payload.len() > 4 + 15 {
                    return Err(damaged("an interface frame of the wrong size"));
                }
                let ifindex = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let name = String::from_utf8(payload[4..].to_vec())
                    .map_err(|_| damaged("an interface name that is not UTF-8"))?;
                Frame::Interface { ifindex, name }
            }
            _ => {
                let b: [u8; 8] =
                    payload.as_slice().try_into().map_err(|_| damaged("a lost-events frame of the wrong size"))?;
                Frame::Lost(u64::from_le_bytes(b))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            dpdbg_version: "0.1.0".into(),
            node: "n1".into(),
            wall_offset_ns: 1_700_000_000_000_000_000,
            started: "2026-12-02T00:00:00Z".into(),
            transport: "ringbuf".into(),
            snaplen: 128,
            endpoint_names: [(101, "lab/ep1".to_string())].into(),
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &header()).unwrap();
        w.record(&[1, 2, 3], 7, Some("lxc1")).unwrap();
        w.record(&[4, 5], 7, Some("lxc1")).unwrap();
        w.lost(9).unwrap();
        w.record(&[6], 8, None).unwrap();
        w.into_inner()
    }

    fn all(bytes: &[u8]) -> (Vec<Frame>, Option<ReadError>) {
        let mut r = match Reader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (vec![], Some(e)),
        };
        assert_eq!(r.header, header());
        let mut out = Vec::new();
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn frames_come_back_as_written() {
        let (frames, err) = all(&sample());
        assert!(err.is_none());
        assert_eq!(
            frames,
            vec![
                Frame::Interface { ifindex: 7, name: "lxc1".into() },
                Frame::Record(vec![1, 2, 3]),
                Frame::Record(vec![4, 5]),
                Frame::Lost(9),
                Frame::Record(vec![6]),
            ]
        );
    }

    #[test]
    fn a_cut_file_gives_what_it_holds_then_the_offset() {
        let whole = sample();
        let hdr_end = 16 + serde_json::to_vec(&header()).unwrap().len();
        // Cut inside the second record (its frame starts after the interface
        // frame, 8 + 8, and the first record, 8 + 3).
        let second = hdr_end + 16 + 11;
        let (frames, err) = all(&whole[..second + 9]);
        assert_eq!(frames.len(), 2);
        let e = err.unwrap();
        assert_eq!(e.offset(), second as u64);
        assert!(e.to_string().starts_with(&format!("truncated at byte {second}: a record needs 10 bytes")), "{e}");
        // Every cut point either ends cleanly at a frame boundary or names an offset.
        for cut in 0..whole.len() {
            let (_, err) = all(&whole[..cut]);
            if let Some(e) = err {
                assert!(e.offset() as usize <= cut, "{cut}: {e}");
            }
        }
    }

    #[test]
    fn foreign_and_damaged_files_are_named() {
        let pcap = [0xd4u8, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let e = all(&pcap).1.unwrap();
        assert!(matches!(e, ReadError::Foreign { .. }), "{e}");
        assert!(e.to_string().contains("d4 c3 b2 a1"), "{e}");
        assert!(matches!(all(&[]).1.unwrap(), ReadError::Foreign { .. }));
        let mut bad = sample();
        let hdr_end = 16 + serde_json::to_vec(&header()).unwrap().len();
        bad[hdr_end] = 77;
        let e = all(&bad).1.unwrap();
        assert_eq!(e.offset(), hdr_end as u64);
        assert!(e.to_string().contains("unknown kind 77"), "{e}");
        let mut v2 = sample();
        v2[8] = 2;
        assert!(matches!(all(&v2).1.unwrap(), ReadError::Version { version: 2 }));
    }
}
