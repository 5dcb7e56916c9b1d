//! The unix socket's front: gRPC clients built on grpc-core (Python's grpcio,
//! Ruby, C++, and grpc-java's netty on a domain socket) send the socket path
//! as the request's `:authority` (grpcio 1.85: `tmp%2Fdpdbg%2Fdpdbg.sock`),
//! which is no URI authority; hyper's h2 answers every such request with
//! RST_STREAM PROTOCOL_ERROR and has no option to accept it (its maintainers
//! keep the check: hyperium/h2#442). A name means nothing on a unix socket, so
//! the front gives such a request the one grpc-go sends, `localhost`, and
//! leaves everything else alone.
//!
//! It wraps each accepted connection's read side, the client's bytes on their
//! way to tonic; the write side (flows, records, command output) is the
//! socket's own. It reads the HTTP/2 frames up to the connection's first
//! header block and decodes that block (HPACK, loona-hpack):
//!
//! - an `:authority` h2 takes (or none): that block and everything after it
//!   pass unchanged, and the front reads no further frames: from then on a
//!   read is the socket's read (gRPC clients keep one authority per channel).
//! - an `:authority` h2 refuses: this block and every later one on the
//!   connection are decoded (the client's dynamic table is followed) and
//!   encoded again as literals without indexing, so tonic's decoder keeps an
//!   empty dynamic table and never sees the client's, with any invalid
//!   `:authority` replaced by `localhost`. Other frames pass as they came.
//!
//! Anything the front does not understand (not HTTP/2, a block HPACK cannot
//! decode, frames out of order) is passed on unchanged from there on, for
//! h2 to answer as it would without the front.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What an invalid `:authority` becomes: what grpc-go sends on a unix socket.
pub const UNIX_AUTHORITY: &str = "localhost";

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Every HTTP/2 peer takes frames of this size (RFC 9113 4.2), whatever it announced.
const MIN_MAX_FRAME: usize = 16_384;
/// A header block larger than this is not held: h2's own limit on a header list.
const MAX_BLOCK: usize = 16 << 20;

/// Whether h2 takes `value` as a request's `:authority` (the same parser it uses).
pub fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the first header block: frames are read.
    Undecided,
    /// The first block had an invalid authority: every block is encoded again.
    Rewrite,
    /// Nothing more to do: reads go straight to the socket.
    Pass,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, for passing on unchanged.
    original: Vec<u8>,
}

/// A connection with the front on its read side.
pub struct AuthorityFront<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the socket and not yet looked at.
    input: Vec<u8>,
    /// Bytes ready for tonic, from `output[sent..]`.
    output: Vec<u8>,
    sent: usize,
    preface_seen: bool,
    /// Bytes of a frame's payload still to pass through as they come.
    passing: usize,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    rewritten: u64,
}

impl<S> AuthorityFront<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFront {
            inner,
            mode: Mode::Undecided,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            preface_seen: false,
            passing: 0,
            block: None,
            decoder: loona_hpack::Decoder::new(),
            rewritten: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How many header blocks had their `:authority` replaced.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Gives up on the connection: what is held goes on unchanged.
    fn pass(&mut self) {
        if let Some(b) = self.block.take() {
            self.output.extend_from_slice(&b.original);
        }
        self.output.append(&mut self.input);
        self.mode = Mode::Pass;
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        while self.mode != Mode::Pass {
            if !self.preface_seen {
                let n = self.input.len().min(PREFACE.len());
                if self.input[..n] != PREFACE[..n] {
                    return self.pass();
                }
                if n < PREFACE.len() {
                    return;
                }
                self.output.extend(self.input.drain(..PREFACE.len()));
                self.preface_seen = true;
                continue;
            }
            if self.passing > 0 {
                let n = self.passing.min(self.input.len());
                self.output.extend(self.input.drain(..n));
                self.passing -= n;
                if self.passing > 0 {
                    return;
                }
                continue;
            }
            if self.input.len() < FRAME_HEADER {
                return;
            }
            let len = u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]]) as usize;
            let (kind, flags) = (self.input[3], self.input[4]);
            let stream = u32::from_be_bytes([self.input[5], self.input[6], self.input[7], self.input[8]]) & 0x7fff_ffff;
            let in_block = self.block.is_some();
            if kind != HEADERS && kind != CONTINUATION {
                if in_block {
                    // Only CONTINUATION may follow an unfinished block: h2's to answer.
                    return self.pass();
                }
                self.output.extend(self.input.drain(..FRAME_HEADER));
                self.passing = len;
                continue;
            }
            if self.input.len() < FRAME_HEADER + len {
                return;
            }
            let frame: Vec<u8> = self.input.drain(..FRAME_HEADER + len).collect();
            let payload = &frame[FRAME_HEADER..];
            match (kind, &mut self.block) {
                (HEADERS, None) => {
                    let Some((priority, fragment)) = headers_fragment(flags, payload) else {
                        self.output.extend_from_slice(&frame);
                        return self.pass();
                    };
                    self.block =
                        Some(Block { stream, flags, priority, fragment: fragment.to_vec(), original: frame.clone() });
                }
                (CONTINUATION, Some(b)) if b.stream == stream && b.original.len() + frame.len() <= MAX_BLOCK => {
                    b.fragment.extend_from_slice(payload);
                    b.original.extend_from_slice(&frame);
                    b.flags |= flags & END_HEADERS;
                }
                _ => {
                    self.output.extend_from_slice(&frame);
                    return self.pass();
                }
            }
            if flags & END_HEADERS != 0 {
                self.finish_block();
            }
        }
    }

    /// A whole header block: decided on (the first), or encoded again.
    fn finish_block(&mut self) {
        let Some(b) = self.block.take() else { return };
        let mut headers = Vec::new();
        let decoded = self.decoder.decode_with_cb(&b.fragment, |n, v| headers.push((n.into_owned(), v.into_owned())));
        if decoded.is_err() {
            self.block = Some(b);
            return self.pass();
        }
        let invalid = |n: &[u8], v: &[u8]| n == b":authority" && !valid_authority(v);
        if self.mode == Mode::Undecided && !headers.iter().any(|(n, v)| invalid(n, v)) {
            self.output.extend_from_slice(&b.original);
            self.mode = Mode::Pass;
            self.output.append(&mut self.input);
            return;
        }
        self.mode = Mode::Rewrite;
        let mut block = Vec::with_capacity(b.fragment.len() + 64);
        for (name, value) in &headers {
            let value = if invalid(name, value) {
                self.rewritten += 1;
                UNIX_AUTHORITY.as_bytes()
            } else {
                value.as_slice()
            };
            literal(&mut block, name, value);
        }
        let mut first = Vec::with_capacity(block.len() + 5);
        if let Some(p) = b.priority {
            first.extend_from_slice(&p);
        }
        first.extend_from_slice(&block);
        let chunks: Vec<&[u8]> = if first.is_empty() { vec![&[][..]] } else { first.chunks(MIN_MAX_FRAME).collect() };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (kind, mut flags) =
                if i == 0 { (HEADERS, b.flags & (END_STREAM | PRIORITY)) } else { (CONTINUATION, 0) };
            if i == last {
                flags |= END_HEADERS;
            }
            frame_header(&mut self.output, chunk.len(), kind, flags, b.stream);
            self.output.extend_from_slice(chunk);
        }
    }
}

/// A HEADERS payload's priority fields and header block fragment, padding removed.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = *p.first()? as usize;
        p = &p[1..];
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        priority = Some(p.get(..5)?.try_into().ok()?);
        p = &p[5..];
    }
    p.get(..p.len().checked_sub(pad)?).map(|f| (priority, f))
}

/// A header as a literal without indexing, with a literal name (RFC 7541 6.2.2).
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for s in [name, value] {
        loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, out).expect("writing to a Vec");
        out.extend_from_slice(s);
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFront<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.sent < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.sent);
                buf.put_slice(&this.output[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.output.len() {
                    this.output.clear();
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Pass {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                // The end: what is held goes on, for h2 to see a truncated frame.
                this.pass();
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.input.extend_from_slice(rb.filled());
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFront<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for AuthorityFront<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What grpcio 1.85 sent on `unix:/tmp/aut/cap.sock`: the preface, SETTINGS,
    /// WINDOW_UPDATE, a SETTINGS ack, then two GetFlows calls on one channel:
    /// the first block spells `:authority: tmp%2Faut%2Fcap.sock` with
    /// incremental indexing, the second refers to those entries by index.
    const GRPCIO: &str = concat!(
        "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000240400000000000002000000000003000000",
        "00000400400000000500400000000600004000fe0300000001000004080000000000003f0001000000040100",
        "0000000000f101040000000140053a706174681b2f6f627365727665722e4f627365727665722f476574466c",
        "6f7773400a3a617574686f7269747914746d702532466175742532466361702e736f636b8386400c636f6e74",
        "656e742d74797065106170706c69636174696f6e2f677270634002746508747261696c657273401467727063",
        "2d6163636570742d656e636f64696e67176964656e746974792c206465666c6174652c20677a6970400c6772",
        "70632d74696d656f757405313530306d400a757365722d6167656e7430677270632d707974686f6e2f312e38",
        "352e3320677270632d632f35382e302e3020286c696e75783b20636874747032290000040800000000010000",
        "0005000007000100000001000000000208140000040800000000000000000500000403000000000100000008",
        "00001b010400000003c4c38386c2c1c0400c677270632d74696d656f7574043530306dbf0000070001000000",
        "030000000002081400000403000000000300000008"
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The bytes tonic would read through the front, fed `input` in pieces of `step`.
    async fn through(input: &[u8], step: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for c in input.chunks(step) {
                client.write_all(c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut front = AuthorityFront::new(server);
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        let reader = async {
            loop {
                let n = front.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        };
        tokio::join!(reader, async { writer.await.unwrap() });
        out
    }

    /// The frames of an HTTP/2 connection's client side: (type, flags, stream, payload).
    fn frames(b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&b[..PREFACE.len()], PREFACE);
        let mut i = PREFACE.len();
        let mut out = Vec::new();
        while i < b.len() {
            let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
            let stream = u32::from_be_bytes(b[i + 5..i + 9].try_into().unwrap());
            out.push((b[i + 3], b[i + 4], stream, b[i + 9..i + 9 + len].to_vec()));
            i += 9 + len;
        }
        assert_eq!(i, b.len(), "whole frames");
        out
    }

    /// Header lists as a server's decoder reads them from the frames.
    fn header_lists(b: &[u8]) -> Vec<Vec<(String, String)>> {
        let mut dec = loona_hpack::Decoder::new();
        let mut lists = Vec::new();
        let mut block = Vec::new();
        for (kind, flags, _, payload) in frames(b) {
            if kind == HEADERS {
                block = headers_fragment(flags, &payload).unwrap().1.to_vec();
            } else if kind == CONTINUATION {
                block.extend_from_slice(&payload);
            } else {
                continue;
            }
            if flags & END_HEADERS != 0 {
                let h = dec.decode(&block).unwrap();
                lists.push(
                    h.into_iter()
                        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                        .collect(),
                );
            }
        }
        lists
    }

    fn authority(list: &[(String, String)]) -> &str {
        &list.iter().find(|(n, _)| n == ":authority").unwrap().1
    }

    #[tokio::test]
    async fn grpcios_socket_path_becomes_localhost_in_every_call() {
        let input = hex(GRPCIO);
        assert!(!valid_authority(b"tmp%2Faut%2Fcap.sock"), "h2 refuses what grpcio sends");
        let sent = header_lists(&input);
        assert_eq!(sent.len(), 2);
        for step in [1, 7, 100, input.len()] {
            let out = through(&input, step).await;
            let got = header_lists(&out);
            assert_eq!(got.len(), 2, "step {step}");
            for (g, s) in got.iter().zip(&sent) {
                assert_eq!(authority(g), UNIX_AUTHORITY);
                // Everything else as the client said it, in its order.
                let others =
                    |l: &[(String, String)]| l.iter().filter(|(n, _)| n != ":authority").cloned().collect::<Vec<_>>();
                assert_eq!(others(g), others(s), "step {step}");
            }
            // The other frames as they came.
            let keep = |b: &[u8]| frames(b).into_iter().filter(|f| f.0 != HEADERS).collect::<Vec<_>>();
            assert_eq!(keep(&out), keep(&input), "step {step}");
        }
    }

    /// A client whose block has an authority h2 takes (or none) reads byte for byte.
    #[tokio::test]
    async fn a_valid_authority_and_what_is_not_http2_pass_unchanged() {
        let mut input = PREFACE.to_vec();
        let mut block = Vec::new();
        literal(&mut block, b":method", b"POST");
        literal(&mut block, b":authority", b"localhost");
        literal(&mut block, b":path", b"/grpc.health.v1.Health/Check");
        frame_header(&mut input, block.len(), HEADERS, END_HEADERS, 1);
        input.extend_from_slice(&block);
        // A later block with a bad authority passes too: the first block decides.
        frame_header(&mut input, 3, HEADERS, END_HEADERS, 3);
        input.extend_from_slice(&[0x83, 0x86, 0x84]);
        input.extend_from_slice(&[0, 0, 4, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(through(&input, 5).await, input);
        let http1 = b"GET / HTTP/1.1\r\nHost: /run/dpdbg/dpdbg.sock\r\n\r\n".to_vec();
        assert_eq!(through(&http1, 3).await, http1);
        // A block HPACK cannot decode is h2's to refuse: it gets it as sent.
        let mut bad = PREFACE.to_vec();
        frame_header(&mut bad, 1, HEADERS, END_HEADERS, 1);
        bad.push(0xff);
        assert_eq!(through(&bad, 4).await, bad);
    }

    /// Padding, priority and a block split over CONTINUATION frames; a block
    /// larger than one frame goes out split at 16 KiB.
    #[tokio::test]
    async fn padded_prioritised_and_continued_blocks_are_rewritten() {
        let mut block = Vec::new();
        literal(&mut block, b":method", b"POST");
        literal(&mut block, b":authority", b"/run/dpdbg/dpdbg.sock");
        literal(&mut block, b"x-big", &vec![b'a'; 40_000]);
        let mut input = PREFACE.to_vec();
        let (head, rest) = block.split_at(10);
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0x80, 0, 0, 0, 16]);
        payload.extend_from_slice(head);
        payload.extend_from_slice(&[0, 0, 0]);
        frame_header(&mut input, payload.len(), HEADERS, PADDED | PRIORITY | END_STREAM, 5);
        input.extend_from_slice(&payload);
        for (i, c) in rest.chunks(15_000).enumerate() {
            let last = i == rest.len().div_ceil(15_000) - 1;
            frame_header(&mut input, c.len(), CONTINUATION, if last { END_HEADERS } else { 0 }, 5);
            input.extend_from_slice(c);
        }
        let out = through(&input, 1000).await;
        let fs = frames(&out);
        assert_eq!(fs[0].0, HEADERS);
        assert_eq!(fs[0].1, PRIORITY | END_STREAM);
        assert_eq!(&fs[0].3[..5], &[0x80, 0, 0, 0, 16]);
        assert!(fs.iter().all(|f| f.3.len() <= MIN_MAX_FRAME && f.2 == 5));
        assert!(fs[1..].iter().all(|f| f.0 == CONTINUATION));
        assert_eq!(fs.last().unwrap().1, END_HEADERS);
        let lists = header_lists(&out);
        assert_eq!(authority(&lists[0]), UNIX_AUTHORITY);
        assert_eq!(lists[0][2].1.len(), 40_000);
    }
}
