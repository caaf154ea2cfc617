//! The kernel interfaces' addresses, MTU and link state, set through rtnetlink.
//!
//! Built on `netlink-packet-route` (the message types) and `netlink-sys` (the socket), the
//! crates the rust-netlink project maintains under `rtnetlink` itself: the daemon's control
//! thread is synchronous and asks a handful of blocking questions, so `rtnetlink`'s async
//! handle (and the tokio runtime it needs) would add a runtime for nothing.

use std::io;
use std::net::IpAddr;

use dataplane::net::Prefix;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A route netlink socket, one request at a time.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: 0, buf: vec![0; 16 * 1024] })
    }

    /// The interface index of `name`.
    pub fn index(name: &str) -> io::Result<u32> {
        nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
    }

    /// Sets the MTU of interface `index`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Brings interface `index` up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Adds address `addr` on interface `index`; one that is there already is not an error.
    /// (Not NLM_F_REPLACE: for IPv4 it replaces another address of the same network.)
    pub fn add_addr(&mut self, index: u32, addr: Prefix) -> io::Result<()> {
        match self.request(RouteNetlinkMessage::NewAddress(addr_message(index, addr)), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Removes address `addr` from interface `index`; one that is not there is not an error.
    pub fn del_addr(&mut self, index: u32, addr: Prefix) -> io::Result<()> {
        match self.request(RouteNetlinkMessage::DelAddress(addr_message(index, addr)), 0) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            other => other,
        }
    }

    /// Sends one request and waits for the kernel's acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let len = msg.buffer_len();
        if len > self.buf.len() {
            return Err(io::Error::other("netlink request too long"));
        }
        msg.serialize(&mut self.buf[..len]);
        self.socket.send(&self.buf[..len], 0)?;
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut at = 0;
            while at < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let reply_len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    if let NetlinkPayload::Error(e) = reply.payload {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                }
                if reply_len == 0 {
                    break;
                }
                at += reply_len;
            }
        }
    }
}

fn addr_message(index: u32, addr: Prefix) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.len();
    let ip = addr.addr();
    msg.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer's, the same here.
    if ip.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(ip));
    }
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}
