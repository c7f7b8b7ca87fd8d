//! Serving gRPC clients whose `:authority` h2 refuses: kubelets older than
//! 1.26 send the socket path (`/var/lib/kubelet/device-plugins/x.sock`), and
//! gRPC C-core clients (grpcio, ...) dialing `unix:<path>` send it
//! percent-encoded without its leading slash (`var%2Flib%2F...%2Fx.sock`).
//!
//! h2 requires `:authority` to be a URI authority and resets such a stream
//! with PROTOCOL_ERROR before tonic sees it. [`LegacyAuthorityStream`]
//! rewrites the client's bytes before h2 reads them: every request header
//! block (a HEADERS frame and its CONTINUATION frames) is decoded with a
//! real HPACK decoder, which keeps the client's dynamic table, and encoded
//! again with literals only, so h2's table stays empty and the two never
//! disagree. An `:authority` that `http::uri::Authority` would refuse
//! becomes `localhost`; everything else is kept in order. Other frames, and
//! the whole server-to-client direction, pass through unchanged.
//!
//! ```no_run
//! # async fn run(plugin: impl kubelet_api::deviceplugin::v1beta1::device_plugin_server::DevicePlugin) {
//! use kubelet_api::deviceplugin::v1beta1::device_plugin_server::DevicePluginServer;
//! let listener = tokio::net::UnixListener::bind("/var/lib/kubelet/device-plugins/x.sock").unwrap();
//! tonic::transport::Server::builder()
//!     .add_service(DevicePluginServer::new(plugin))
//!     .serve_with_incoming(kubelet_api::legacy_authority::incoming(listener))
//!     .await
//!     .unwrap();
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, UdsConnectInfo};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, sent by the client before any frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which hyper keeps unless told
/// otherwise: a larger frame is an error h2 reports, and passes unchanged.
const MAX_FRAME_LEN: usize = 16_384;
/// The most a header block may hold here before it passes unchanged for h2
/// to judge (h2's own limit on header lists is far below it): a client
/// cannot make the wrapper buffer without end.
const MAX_BLOCK_LEN: usize = 1 << 20;
/// What a refused `:authority` becomes.
const LOCALHOST: &[u8] = b"localhost";

/// Accepts connections on `listener`, each wrapped in a
/// [`LegacyAuthorityStream`], for [`tonic::transport::Server::serve_with_incoming`].
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<LegacyAuthorityStream>> + Send + Unpin + 'static {
    UnixListenerStream::new(listener).map(|conn| conn.map(LegacyAuthorityStream::new))
}

/// An accepted unix socket connection whose HTTP/2 requests reach h2 without
/// a path-valued `:authority`.
#[derive(Debug)]
pub struct LegacyAuthorityStream {
    inner: UnixStream,
    rewriter: Rewriter,
    /// Rewritten bytes not yet read, from `pos` on.
    out: Vec<u8>,
    pos: usize,
}

impl LegacyAuthorityStream {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            inner: stream,
            rewriter: Rewriter::new(),
            out: Vec::new(),
            pos: 0,
        }
    }
}

impl AsyncRead for LegacyAuthorityStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pos == this.out.len() {
            this.out.clear();
            this.pos = 0;
            let mut chunk = [0; 8192];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                // End of input: hand over an incomplete frame as it is, for
                // h2 to report.
                this.rewriter.finish(&mut this.out);
                if this.out.is_empty() {
                    return Poll::Ready(Ok(()));
                }
            } else {
                this.rewriter.feed(chunk.filled(), &mut this.out);
            }
        }
        let n = buf.remaining().min(this.out.len() - this.pos);
        buf.put_slice(&this.out[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LegacyAuthorityStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for LegacyAuthorityStream {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.inner.connect_info()
    }
}

/// Rewrites the client-to-server bytes of one connection, in any chunks.
struct Rewriter {
    /// Bytes to pass as they are before the next frame header: first the
    /// preface, then the payload of each frame that is not rewritten.
    verbatim: usize,
    /// A frame header, or whole HEADERS or CONTINUATION frame, being
    /// collected.
    held: Vec<u8>,
    /// A header block whose HEADERS frame came without END_HEADERS.
    open: Option<Block>,
    /// The client's HPACK state: every block it sends is decoded here.
    decoder: loona_hpack::Decoder<'static>,
    /// The decoder failed: the stream is not HTTP/2 h2 can read, and passes
    /// unchanged from then on, for h2 to report.
    broken: bool,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("verbatim", &self.verbatim)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// A request header block being collected: its HEADERS frame's stream,
/// END_STREAM flag and priority fields, its fragments, and the frames as
/// they came (passed on unchanged if the block cannot be decoded).
struct Block {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
    frames: Vec<u8>,
}

impl Rewriter {
    fn new() -> Self {
        Self {
            verbatim: PREFACE_LEN,
            held: Vec::new(),
            open: None,
            decoder: loona_hpack::Decoder::new(),
            broken: false,
        }
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        loop {
            if self.broken {
                out.append(&mut self.held);
                out.extend_from_slice(input);
                return;
            }
            let n = self.verbatim.min(input.len());
            out.extend_from_slice(&input[..n]);
            self.verbatim -= n;
            input = &input[n..];
            if self.verbatim > 0 {
                return;
            }
            let want = match self.held.get(..FRAME_HEADER_LEN) {
                Some(header) => FRAME_HEADER_LEN + frame_len(header),
                None => FRAME_HEADER_LEN,
            };
            let n = want.saturating_sub(self.held.len()).min(input.len());
            self.held.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.held.len() < FRAME_HEADER_LEN {
                return; // `input` is used up.
            }
            let len = frame_len(&self.held);
            let kind = self.held[3];
            if !matches!(kind, HEADERS | CONTINUATION) || len > MAX_FRAME_LEN {
                self.verbatim = len;
                out.append(&mut self.held);
            } else if self.held.len() == FRAME_HEADER_LEN + len {
                let frame = std::mem::take(&mut self.held);
                self.header_frame(&frame, out);
            } else if input.is_empty() {
                return;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(block) = self.open.take() {
            out.extend_from_slice(&block.frames);
        }
        out.append(&mut self.held);
    }

    /// A whole HEADERS or CONTINUATION frame.
    fn header_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        let flags = frame[4];
        let payload = &frame[FRAME_HEADER_LEN..];
        let block = match (frame[3], self.open.take()) {
            (HEADERS, None) => {
                let Some((fragment, priority)) = headers_fragment(payload, flags) else {
                    return self.give_up(frame, None, out);
                };
                Block {
                    stream: frame[5..9].try_into().unwrap_or_default(),
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragments: fragment.to_vec(),
                    frames: frame.to_vec(),
                }
            }
            (CONTINUATION, Some(mut block))
                if frame[5..9] == block.stream
                    && block.fragments.len() + payload.len() <= MAX_BLOCK_LEN =>
            {
                block.fragments.extend_from_slice(payload);
                block.frames.extend_from_slice(frame);
                block
            }
            // Out of order: h2 reports it.
            (_, open) => return self.give_up(frame, open, out),
        };
        if flags & END_HEADERS == 0 {
            self.open = Some(block);
            return;
        }
        let mut fields = Vec::new();
        let decoded = self
            .decoder
            .decode_with_cb(&block.fragments, |name, value| {
                fields.push((name.into_owned(), value.into_owned()))
            });
        if decoded.is_err() {
            return self.give_up(&[], Some(block), out);
        }
        for (name, value) in &mut fields {
            if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err() {
                *value = LOCALHOST.to_vec();
            }
        }
        write_block(&block, &encode(&fields), out);
    }

    /// Passes what was held on unchanged and stops rewriting.
    fn give_up(&mut self, frame: &[u8], open: Option<Block>, out: &mut Vec<u8>) {
        if let Some(block) = open {
            out.extend_from_slice(&block.frames);
        }
        out.extend_from_slice(frame);
        self.broken = true;
    }
}

fn frame_len(header: &[u8]) -> usize {
    usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2])
}

/// A HEADERS payload's header block fragment, without padding, and its
/// priority fields.
fn headers_fragment(payload: &[u8], flags: u8) -> Option<(&[u8], Option<[u8; 5]>)> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        start = 1;
        end = end.checked_sub(usize::from(*payload.first()?))?;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        priority = Some(payload.get(start..start + 5)?.try_into().ok()?);
        start += 5;
    }
    Some((payload.get(start..end)?, priority))
}

/// Header fields as HPACK literals without indexing, with literal names
/// (RFC 7541 §6.2.2): nothing enters the server's dynamic table.
fn encode(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        for string in [name, value] {
            encode_int(string.len(), 7, &mut block);
            block.extend_from_slice(string);
        }
    }
    block
}

/// An HPACK integer with a `prefix`-bit prefix, the byte's other bits 0
/// (a raw, not Huffman, string length) (RFC 7541 §5.1).
fn encode_int(mut value: usize, prefix: u32, out: &mut Vec<u8>) {
    let max = (1 << prefix) - 1;
    if value < max {
        return out.push(value as u8);
    }
    out.push(max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The block as a HEADERS frame and as many CONTINUATION frames as it
/// needs, on the original stream, with its END_STREAM and priority.
fn write_block(block: &Block, encoded: &[u8], out: &mut Vec<u8>) {
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    let first_room = MAX_FRAME_LEN - priority.len();
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    write_frame(
        HEADERS,
        flags,
        block.stream,
        &[priority, first].concat(),
        out,
    );
    while !rest.is_empty() {
        let (part, after) = rest.split_at(rest.len().min(MAX_FRAME_LEN));
        rest = after;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame(CONTINUATION, flags, block.stream, part, out);
    }
}

fn write_frame(kind: u8, flags: u8, stream: [u8; 4], payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8; PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, stream];
        f.extend_from_slice(payload);
        f
    }

    fn rewrite_in_chunks(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rewriter = Rewriter::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            rewriter.feed(part, &mut out);
        }
        rewriter.finish(&mut out);
        out
    }

    /// The header blocks of the HEADERS (and CONTINUATION) frames in `out`,
    /// decoded as h2 would, one decoder for the connection; and the frames'
    /// kinds and flags.
    /// A decoded header block: (name, value) in order.
    type Fields = Vec<(String, String)>;

    fn blocks(out: &[u8]) -> (Vec<Fields>, Vec<(u8, u8)>) {
        let mut decoder = loona_hpack::Decoder::new();
        let (mut blocks, mut frames, mut open) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = PREFACE_LEN;
        while i < out.len() {
            let len = frame_len(&out[i..]);
            let (kind, flags) = (out[i + 3], out[i + 4]);
            frames.push((kind, flags));
            let payload = &out[i + FRAME_HEADER_LEN..i + FRAME_HEADER_LEN + len];
            match kind {
                HEADERS => open.extend_from_slice(headers_fragment(payload, flags).unwrap().0),
                CONTINUATION => open.extend_from_slice(payload),
                _ => {}
            }
            if matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0 {
                let mut fields = Vec::new();
                decoder
                    .decode_with_cb(&open, |n, v| {
                        fields.push((
                            String::from_utf8_lossy(&n).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        ))
                    })
                    .unwrap();
                blocks.push(fields);
                open.clear();
            }
            i += FRAME_HEADER_LEN + len;
        }
        (blocks, frames)
    }

    fn authorities(out: &[u8]) -> Vec<String> {
        blocks(out)
            .0
            .iter()
            .map(|b| {
                b.iter()
                    .find(|(n, _)| n == ":authority")
                    .map_or("-".into(), |(_, v)| v.clone())
            })
            .collect()
    }

    #[test]
    fn refused_authorities_become_localhost_in_every_encoding_and_chunking() {
        // The client's own encoder: dynamic table, Huffman off; then the
        // same authority again, which it sends as an index into its table.
        let mut client = loona_hpack::Encoder::new();
        let request = |authority: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
            vec![
                (b":method".to_vec(), b"POST".to_vec()),
                (b":scheme".to_vec(), b"http".to_vec()),
                (
                    b":path".to_vec(),
                    b"/v1beta1.DevicePlugin/ListAndWatch".to_vec(),
                ),
                (b":authority".to_vec(), authority.as_bytes().to_vec()),
                (b"content-type".to_vec(), b"application/grpc".to_vec()),
            ]
        };
        let mut encode = |fields: Vec<(Vec<u8>, Vec<u8>)>| {
            client.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])))
        };
        let grpcio = "tmp%2Fplugins%2Fx.sock";
        let first = encode(request(grpcio));
        let again = encode(request(grpcio));
        let path = encode(request("/var/lib/kubelet/device-plugins/x.sock"));
        let fine = encode(request("localhost:1234"));
        // A block split over HEADERS and CONTINUATION, with padding and
        // priority on the HEADERS frame.
        let split = encode(request(grpcio));
        let (head, tail) = split.split_at(7);
        let padded = [&[2, 0, 0, 0, 0, 16][..], head, &[0, 0]].concat();
        let data = frame(0x0, 0x1, 1, b"\0\0\0\0\0");
        let input = [
            &PREFACE[..],
            &frame(0x4, 0, 0, &[]),
            &frame(HEADERS, END_HEADERS, 1, &first),
            &data,
            &frame(HEADERS, END_HEADERS | END_STREAM, 3, &again),
            &frame(HEADERS, END_HEADERS, 5, &path),
            &frame(HEADERS, END_HEADERS, 7, &fine),
            &frame(HEADERS, PADDED | PRIORITY, 9, &padded),
            &frame(CONTINUATION, END_HEADERS, 9, tail),
        ]
        .concat();
        let expected = rewrite_in_chunks(&input, input.len());
        assert_eq!(
            authorities(&expected),
            [
                "localhost",
                "localhost",
                "localhost",
                "localhost:1234",
                "localhost"
            ]
        );
        let (blocks, frames) = blocks(&expected);
        assert_eq!(
            blocks[0][2],
            (":path".into(), "/v1beta1.DevicePlugin/ListAndWatch".into())
        );
        assert_eq!(blocks[0].len(), 5, "every field is kept, in order");
        assert!(frames.contains(&(HEADERS, END_HEADERS | END_STREAM)));
        assert!(
            frames.contains(&(HEADERS, END_HEADERS | PRIORITY)),
            "{frames:?}"
        );
        assert!(frames.contains(&(0x0, 0x1)), "DATA passes");
        for chunk in 1..=input.len() {
            assert_eq!(
                rewrite_in_chunks(&input, chunk),
                expected,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_block_larger_than_a_frame_goes_on_in_continuation_frames() {
        let mut client = loona_hpack::Encoder::new();
        let big = vec![b'x'; 40_000];
        let fields = [
            (&b":authority"[..], &b"/a.sock"[..]),
            (&b"x-big"[..], &big[..]),
        ];
        let block = client.encode(fields);
        // The client splits it as the frame size allows.
        let mut input = PREFACE.to_vec();
        let parts: Vec<&[u8]> = block.chunks(MAX_FRAME_LEN).collect();
        for (n, part) in parts.iter().enumerate() {
            let kind = if n == 0 { HEADERS } else { CONTINUATION };
            let flags = if n + 1 == parts.len() { END_HEADERS } else { 0 };
            input.extend(frame(kind, flags, 1, part));
        }
        let out = rewrite_in_chunks(&input, 1000);
        let (blocks, frames) = blocks(&out);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0][0].1, "localhost");
        assert_eq!(blocks[0][1].1.len(), 40_000);
        assert!(frames.iter().skip(1).all(|(kind, _)| *kind == CONTINUATION));
    }

    #[test]
    fn garbage_passes_through_without_panicking() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            // Short HEADERS frames with random flags and bytes after the preface.
            let len = (next() % 40) as usize;
            let mut input = PREFACE.to_vec();
            input.extend_from_slice(&[0, 0, len as u8, 0x1, next() as u8, 0, 0, 0, 1]);
            input.extend((0..len + (next() % 12) as usize).map(|_| next() as u8));
            // Undecodable blocks pass unchanged, for h2 to reject.
            let out = rewrite_in_chunks(&input, 1 + (next() % 16) as usize);
            assert!(!out.is_empty());
        }
    }
}
