//! Serving kubelets older than 1.26, whose gRPC client sends the socket path
//! as the HTTP/2 `:authority`, e.g. `/var/lib/kubelet/device-plugins/x.sock`.
//!
//! h2 requires `:authority` to be a URI authority and resets such a stream
//! with PROTOCOL_ERROR before tonic sees it. [`LegacyAuthorityStream`]
//! rewrites the client's bytes before h2 reads them: a literal `:authority`
//! whose value starts with '/' is renamed to `user-agent`. A request without
//! `:authority` is valid HTTP/2 and tonic routes on `:path` alone. Everything
//! else, and the whole server-to-client direction, passes through unchanged.
//! The service sees the path as a second `user-agent` value.
//!
//! This relies on `:authority` being the last pseudo-header, as grpc-go sends
//! it, and on the literal being in the HEADERS frame itself; otherwise h2
//! still rejects the request, as it would without this wrapper.
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
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which hyper keeps unless told
/// otherwise. Larger HEADERS frames pass unchanged, so at most one frame of
/// this size is ever buffered.
const MAX_FRAME_LEN: usize = 16_384;
/// HPACK static table index of `user-agent`. Its name is as long as
/// `:authority`, so a renamed dynamic table entry has the same size on both
/// peers and their tables evict in step.
const USER_AGENT: u8 = 58;

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
#[derive(Debug)]
struct Rewriter {
    /// Bytes to pass as they are before the next frame header: first the
    /// preface, then the payload of each frame that is not rewritten.
    verbatim: usize,
    /// A frame header, or whole HEADERS frame, being collected.
    held: Vec<u8>,
}

impl Rewriter {
    fn new() -> Self {
        Self {
            verbatim: PREFACE_LEN,
            held: Vec::new(),
        }
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        loop {
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
            if self.held[3] != HEADERS || len > MAX_FRAME_LEN {
                self.verbatim = len;
                out.append(&mut self.held);
            } else if self.held.len() == FRAME_HEADER_LEN + len {
                rewrite_headers(&self.held, out);
                self.held.clear();
            } else if input.is_empty() {
                return;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
    }
}

fn frame_len(header: &[u8]) -> usize {
    usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2])
}

/// Appends a whole HEADERS frame to `out`, renaming a path-valued literal
/// `:authority` to `user-agent`.
fn rewrite_headers(frame: &[u8], out: &mut Vec<u8>) {
    let payload = &frame[FRAME_HEADER_LEN..];
    let Some(at) = find_path_authority(payload, frame[4]) else {
        out.extend_from_slice(frame);
        return;
    };
    let at = FRAME_HEADER_LEN + at;
    match frame[at] {
        // With incremental indexing (6-bit prefix): same length.
        0x41 => {
            out.extend_from_slice(&frame[..at]);
            out.push(0x40 | USER_AGENT);
            out.extend_from_slice(&frame[at + 1..]);
        }
        // Without indexing or never indexed (4-bit prefix): 58 takes a second
        // byte, so the frame grows by one.
        first if payload.len() < MAX_FRAME_LEN => {
            let len = (payload.len() + 1) as u32;
            out.extend_from_slice(&len.to_be_bytes()[1..]);
            out.extend_from_slice(&frame[3..at]);
            out.extend_from_slice(&[first | 0x0f, USER_AGENT - 0x0f]);
            out.extend_from_slice(&frame[at + 1..]);
        }
        _ => out.extend_from_slice(frame),
    }
}

/// The offset in a HEADERS payload of a literal `:authority` (name index 1)
/// whose value starts with '/'. HPACK per RFC 7541 §6.
fn find_path_authority(payload: &[u8], flags: u8) -> Option<usize> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        start = 1;
        end = end.checked_sub(usize::from(*payload.first()?))?;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    // The block may go on in CONTINUATION frames, but pseudo-headers come
    // first, so looking at this part is enough.
    let block = payload.get(start..end)?;
    let mut i = 0;
    while i < block.len() {
        let first = block[i];
        i = match first {
            // Indexed field.
            0x80.. => int(block, i, 7)?.1,
            // Dynamic table size update.
            0x20..=0x3f => int(block, i, 5)?.1,
            // Literal field: with incremental indexing, else without indexing
            // or never indexed.
            _ => {
                let prefix = if first & 0x40 != 0 { 6 } else { 4 };
                let (name, mut value) = int(block, i, prefix)?;
                if name == 0 {
                    value = skip_string(block, value)?;
                }
                if name == 1 && starts_with_slash(block.get(value..)?) {
                    return Some(start + i);
                }
                skip_string(block, value)?
            }
        };
    }
    None
}

/// Whether an HPACK string starts with '/', raw or Huffman-coded (where '/'
/// is the 6-bit code 011000).
fn starts_with_slash(string: &[u8]) -> bool {
    let Some((len, at)) = int(string, 0, 7) else {
        return false;
    };
    match string.get(at) {
        Some(&b) if len > 0 && string[0] & 0x80 != 0 => b >> 2 == 0b01_1000,
        Some(&b) if len > 0 => b == b'/',
        _ => false,
    }
}

/// Skips an HPACK string at `block[i]`, returning the offset after it.
fn skip_string(block: &[u8], i: usize) -> Option<usize> {
    let (len, at) = int(block, i, 7)?;
    let end = at.checked_add(len)?;
    (end <= block.len()).then_some(end)
}

/// Decodes an HPACK integer with a `prefix`-bit prefix at `block[i]` (RFC
/// 7541 §5.1), returning it and the offset after it.
fn int(block: &[u8], mut i: usize, prefix: u32) -> Option<(usize, usize)> {
    let max = (1 << prefix) - 1;
    let mut value = usize::from(*block.get(i)?) & max;
    i += 1;
    if value < max {
        return Some((value, i));
    }
    // Four continuation bytes reach 2^28, far beyond any frame.
    for shift in [0, 7, 14, 21] {
        let b = *block.get(i)?;
        i += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, i));
        }
    }
    None
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

    #[test]
    fn renames_path_authority_in_every_form_and_chunking() {
        // `:method POST`, then `:authority` as a literal with a raw "/a.sock"
        // or a Huffman-coded "/" (011000 and padding 11).
        let block = |first: u8, value: &[u8]| [&[0x83, first][..], value].concat();
        let raw = b"\x07/a.sock";
        let huffman = b"\x81\x63";
        let data = frame(0x0, 0x1, 1, b"\0\0\0\0\0");
        // PADDED and PRIORITY: pad length 2, 5 priority bytes, the block, padding.
        let padded = |block: Vec<u8>| [&[2, 0, 0, 0, 0, 16][..], &block, &[0, 0]].concat();

        let input = [
            &PREFACE[..],
            &frame(0x4, 0, 0, &[]),
            &frame(0x1, 0x4, 1, &block(0x41, raw)),
            &data,
            &frame(0x1, 0x4, 3, &block(0x01, huffman)),
            &frame(0x1, 0x4 | PADDED | PRIORITY, 5, &padded(block(0x11, raw))),
            &frame(0x1, 0, 7, &[]),
            &frame(0x9, 0x4, 7, &block(0x41, raw)),
        ]
        .concat();
        let expected = [
            &PREFACE[..],
            &frame(0x4, 0, 0, &[]),
            &frame(0x1, 0x4, 1, &block(0x7a, raw)),
            &data,
            &frame(0x1, 0x4, 3, &[&block(0x0f, b"\x2b")[..], huffman].concat()),
            &frame(
                0x1,
                0x4 | PADDED | PRIORITY,
                5,
                &padded(block(0x1f, b"\x2b\x07/a.sock")),
            ),
            &frame(0x1, 0, 7, &[]),
            // CONTINUATION frames are not looked into.
            &frame(0x9, 0x4, 7, &block(0x41, raw)),
        ]
        .concat();
        for chunk in 1..=input.len() {
            assert_eq!(
                rewrite_in_chunks(&input, chunk),
                expected,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn leaves_other_authorities_alone() {
        for value in [&b"\x09localhost"[..], b"\x00", b"\x81\x9f", b"\x07/a.sock"] {
            for first in [0x41, 0x01, 0x11, 0x42, 0x02] {
                let block = [&[0x83, first][..], value].concat();
                let input = [&PREFACE[..], &frame(0x1, 0x4, 1, &block)].concat();
                let rewritten = rewrite_in_chunks(&input, input.len());
                let renamed = value.get(1) == Some(&b'/') && matches!(first, 0x41 | 0x01 | 0x11);
                assert_eq!(rewritten != input, renamed, "{first:#x} {value:?}");
            }
        }
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
            let out = rewrite_in_chunks(&input, 1 + (next() % 16) as usize);
            assert!(out.len() >= input.len());
        }
    }
}
