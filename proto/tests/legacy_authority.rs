//! Requests as kubelets older than 1.26 send them, with the socket path as
//! `:authority`, written byte by byte by a hand-made HTTP/2 client: served
//! through `legacy_authority::incoming`, reset by a plain listener.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use kubelet_api::deviceplugin::v1beta1 as dp;
use kubelet_api::legacy_authority;
use prost::Message;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::Stream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

const PROTOCOL_ERROR: u32 = 0x1;
const METHOD: &str = "/v1beta1.DevicePlugin/GetDevicePluginOptions";
/// Any value starting with '/' will do; this one is Huffman-coded below.
const HUFFMAN_AUTHORITY: &str = "/var/lib/kubelet/device-plugins/kubelet.sock";

struct Plugin;

type DeviceStream = Pin<Box<dyn Stream<Item = Result<dp::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl dp::device_plugin_server::DevicePlugin for Plugin {
    type ListAndWatchStream = DeviceStream;

    async fn get_device_plugin_options(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<dp::DevicePluginOptions>, Status> {
        Ok(Response::new(expected()))
    }

    async fn list_and_watch(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<DeviceStream>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn get_preferred_allocation(
        &self,
        _: Request<dp::PreferredAllocationRequest>,
    ) -> Result<Response<dp::PreferredAllocationResponse>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn allocate(
        &self,
        _: Request<dp::AllocateRequest>,
    ) -> Result<Response<dp::AllocateResponse>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn pre_start_container(
        &self,
        _: Request<dp::PreStartContainerRequest>,
    ) -> Result<Response<dp::PreStartContainerResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}

fn expected() -> dp::DevicePluginOptions {
    dp::DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}

fn router() -> tonic::transport::server::Router {
    Server::builder().add_service(dp::device_plugin_server::DevicePluginServer::new(Plugin))
}

fn serve_legacy(socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(router().serve_with_incoming(legacy_authority::incoming(listener)));
}

fn serve_plain(socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(router().serve_with_incoming(UnixListenerStream::new(listener)));
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Answered(dp::DevicePluginOptions),
    Reset(u32),
    GoAway(u32),
}

/// HPACK integer with a `prefix`-bit prefix after the bits in `first`.
fn int(first: u8, prefix: u32, mut value: usize) -> Vec<u8> {
    let max = (1 << prefix) - 1;
    if value < max {
        return vec![first | value as u8];
    }
    let mut out = vec![first | max as u8];
    value -= max;
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

fn raw(s: &str) -> Vec<u8> {
    [int(0, 7, s.len()), s.as_bytes().to_vec()].concat()
}

/// RFC 7541 Appendix B codes of the characters used here.
fn huffman_code(c: u8) -> (u32, u32) {
    match c {
        b'a' => (0b00011, 5),
        b'c' => (0b00100, 5),
        b'e' => (0b00101, 5),
        b'i' => (0b00110, 5),
        b'o' => (0b00111, 5),
        b's' => (0b01000, 5),
        b't' => (0b01001, 5),
        b'-' => (0b010110, 6),
        b'.' => (0b010111, 6),
        b'/' => (0b011000, 6),
        b'b' => (0b100011, 6),
        b'd' => (0b100100, 6),
        b'g' => (0b100110, 6),
        b'l' => (0b101000, 6),
        b'n' => (0b101010, 6),
        b'p' => (0b101011, 6),
        b'r' => (0b101100, 6),
        b'u' => (0b101101, 6),
        b'k' => (0b1110101, 7),
        b'v' => (0b1110111, 7),
        _ => panic!("no Huffman code here for {:?}", c as char),
    }
}

fn huffman(s: &str) -> Vec<u8> {
    let (mut bits, mut n, mut out) = (0u32, 0, Vec::new());
    for c in s.bytes() {
        let (code, len) = huffman_code(c);
        bits = bits << len | code;
        n += len;
        while n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
        bits &= (1 << n) - 1;
    }
    if n > 0 {
        // Padded with the leading ones of EOS.
        out.push((bits << (8 - n)) as u8 | 0xff >> n);
    }
    [int(0x80, 7, out.len()), out].concat()
}

/// The header block of a gRPC call to [`METHOD`], with `path` and
/// `authority` as encoded representations, and a dynamic table size update
/// in front if given.
fn block(size_update: Option<usize>, path: &[u8], authority: &[u8]) -> Vec<u8> {
    [
        size_update.map_or(vec![], |size| int(0x20, 5, size)),
        vec![0x83, 0x86], // :method POST, :scheme http
        path.to_vec(),
        authority.to_vec(),
        // content-type (static name 31) and te (literal name), not indexed
        // so the dynamic table holds only :path and :authority.
        [&int(0, 4, 31)[..], &raw("application/grpc")].concat(),
        [&[0][..], &raw("te"), &raw("trailers")].concat(),
    ]
    .concat()
}

/// The requests of one connection, in order, each with what it shows.
fn requests(socket: &str) -> Vec<(&'static str, Vec<u8>)> {
    // Entry sizes are name + value + 32 (RFC 7541 §4.1). Limiting the
    // client's table to exactly the two entries of the first request makes
    // the wrapper's decoder evict as the client's encoder does; a decoder
    // out of step would read the later indexed references wrongly.
    let table = (5 + METHOD.len() + 32) + (10 + socket.len() + 32);
    vec![
        (
            "literal with incremental indexing, raw string",
            block(
                Some(table),
                &[&[0x44][..], &raw(METHOD)].concat(),
                &[&[0x41][..], &raw(socket)].concat(),
            ),
        ),
        (
            "indexed: the dynamic table entry of the first request",
            // Newest first: 62 is :authority, 63 is :path.
            block(None, &[0xbf], &[0xbe]),
        ),
        (
            "literal without indexing, raw string",
            block(None, &[0xbf], &[&[0x01][..], &raw(socket)].concat()),
        ),
        (
            "literal never indexed, Huffman-coded",
            block(
                None,
                &[0xbf],
                &[&[0x11][..], &huffman(HUFFMAN_AUTHORITY)].concat(),
            ),
        ),
        (
            "literal with incremental indexing, Huffman-coded (grpc-go's choice)",
            block(
                None,
                &[0xbf],
                &[&[0x41][..], &huffman(HUFFMAN_AUTHORITY)].concat(),
            ),
        ),
    ]
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    [&len[1..], &[kind, flags], &stream.to_be_bytes(), payload].concat()
}

struct Client(UnixStream);

impl Client {
    fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        // Only so that a silent server fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = Client(stream);
        client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        client.send(&frame(0x4, 0, 0, &[])); // SETTINGS
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// Type, flags, stream and payload of the next frame from the server.
    fn receive(&mut self, waiting_for: &str) -> (u8, u8, u32, Vec<u8>) {
        let mut read = |buf: &mut [u8]| {
            self.0
                .read_exact(buf)
                .unwrap_or_else(|e| panic!("no answer from the server to {waiting_for}: {e}"))
        };
        let mut header = [0; 9];
        read(&mut header);
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let stream = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        read(&mut payload);
        (header[3], header[4], stream, payload)
    }

    /// Sends a unary call with an empty message on `stream` and reads frames
    /// until it is answered, reset, or the connection goes away.
    fn call(&mut self, stream: u32, block: &[u8], what: &str) -> Outcome {
        self.send(&frame(0x1, 0x4, stream, block)); // HEADERS, END_HEADERS
        self.send(&frame(0x0, 0x1, stream, &[0, 0, 0, 0, 0])); // DATA, END_STREAM
        let mut data = Vec::new();
        loop {
            let (kind, flags, id, payload) = self.receive(what);
            match kind {
                // SETTINGS and PING need an ACK.
                0x4 if flags & 0x1 == 0 => self.send(&frame(0x4, 0x1, 0, &[])),
                0x6 if flags & 0x1 == 0 => self.send(&frame(0x6, 0x1, 0, &payload)),
                0x7 => {
                    return Outcome::GoAway(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
                }
                0x3 if id == stream => {
                    return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                }
                0x0 if id == stream => data.extend_from_slice(&payload),
                _ => {}
            }
            // END_STREAM, on the trailers.
            if id == stream && matches!(kind, 0x0 | 0x1) && flags & 0x1 != 0 {
                assert!(data.len() >= 5, "{what}: answered without a message");
                assert_eq!(data[0], 0, "{what}: compressed response");
                let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
                assert_eq!(data.len(), 5 + len, "{what}: one response message");
                return Outcome::Answered(dp::DevicePluginOptions::decode(&data[5..]).unwrap());
            }
        }
    }
}

/// Makes the requests in turn on one connection, as one kubelet would, until
/// the server goes away.
async fn outcomes(socket: PathBuf) -> Vec<(&'static str, Outcome)> {
    tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(&socket);
        let mut outcomes = Vec::new();
        for ((what, block), stream) in requests(socket.to_str().unwrap())
            .into_iter()
            .zip((1..).step_by(2))
        {
            let outcome = client.call(stream, &block, what);
            let gone = matches!(outcome, Outcome::GoAway(_));
            outcomes.push((what, outcome));
            if gone {
                break;
            }
        }
        outcomes
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn path_authority_is_served_through_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    serve_legacy(&socket);
    for (what, outcome) in outcomes(socket).await {
        assert_eq!(outcome, Outcome::Answered(expected()), "{what}");
    }
}

#[tokio::test]
async fn path_authority_is_reset_without_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    serve_plain(&socket);
    for (what, outcome) in outcomes(socket).await {
        assert_eq!(outcome, Outcome::Reset(PROTOCOL_ERROR), "{what}");
    }
}

#[tokio::test]
async fn tonic_clients_are_served_through_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    serve_legacy(&socket);
    let channel = kubelet_api::connect_unix(&socket).await.unwrap();
    let mut client = dp::device_plugin_client::DevicePluginClient::new(channel);
    for _ in 0..3 {
        let options = client
            .get_device_plugin_options(dp::Empty {})
            .await
            .unwrap();
        assert_eq!(options.into_inner(), expected());
    }
}
