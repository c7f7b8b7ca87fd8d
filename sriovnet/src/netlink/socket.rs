use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::libc;

use crate::{Error, Netns, Result};

/// A route netlink socket, bound to the namespace it was opened in for its
/// whole life, whichever thread later uses it.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// Why a request failed, before the caller says what it was doing.
#[derive(Debug)]
pub(crate) enum Failure {
    Kernel(Errno),
    Decode(String),
}

impl Failure {
    pub(crate) fn into_error(self, op: &'static str, target: impl ToString) -> Error {
        match self {
            Failure::Kernel(errno) => Error::Netlink {
                op,
                target: target.to_string(),
                errno,
            },
            Failure::Decode(reason) => Error::Protocol {
                op,
                target: target.to_string(),
                reason,
            },
        }
    }
}

pub(crate) fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

impl Netlink {
    /// A socket in the calling thread's namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::Socket(errno(e)))?;
        socket.bind_auto().map_err(|e| Error::Socket(errno(e)))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::Socket(errno(e)))?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// A socket in `netns`, opened from a fresh thread that enters it; the
    /// caller's thread never changes namespace.
    pub fn open_in(netns: &Netns) -> Result<Self> {
        netns.run(Netlink::open)
    }

    /// Sends a request that changes something and waits for the kernel's ack.
    pub(crate) fn change(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), Failure> {
        self.execute(message, NLM_F_ACK | flags).map(drop)
    }

    /// Sends a request for one object and returns the kernel's replies.
    pub(crate) fn get(
        &mut self,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.execute(message, NLM_F_ACK)
    }

    /// Sends a dump request and returns every object.
    pub(crate) fn dump(
        &mut self,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.execute(message, NLM_F_DUMP)
    }

    fn execute(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut request = vec![0; packet.buffer_len()];
        packet.serialize(&mut request);
        retry_interrupted(|| self.socket.send(&request, 0)).map_err(Failure::Kernel)?;

        let mut replies = Vec::new();
        loop {
            let datagram = self.receive()?;
            let mut rest = &datagram[..];
            while !rest.is_empty() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| Failure::Decode(e.to_string()))?;
                let length = (reply.header.length as usize).next_multiple_of(4);
                rest = rest.get(length..).unwrap_or_default();
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(Failure::Kernel(Errno::from_raw(-code.get()))),
                            None => Ok(replies),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    _ => {}
                }
            }
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, Failure> {
        receive(&self.socket)
    }
}

/// One whole datagram, however large: a PF with 256 VFs answers a single
/// GETLINK with far more than a page.
pub(crate) fn receive(socket: &Socket) -> Result<Vec<u8>, Failure> {
    let mut probe = Vec::new();
    let length = retry_interrupted(|| socket.recv(&mut probe, libc::MSG_PEEK | libc::MSG_TRUNC))
        .map_err(Failure::Kernel)?;
    let mut datagram = Vec::with_capacity(length);
    retry_interrupted(|| socket.recv(&mut datagram, 0)).map_err(Failure::Kernel)?;
    Ok(datagram)
}

fn retry_interrupted<T>(mut call: impl FnMut() -> std::io::Result<T>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(errno),
        }
    }
}
