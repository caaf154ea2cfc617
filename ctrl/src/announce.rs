//! VIPs for routing daemons: each VIP the control state names (one with a usable backend)
//! is a `blackhole` /32 (IPv4) or /128 (IPv6) route in a kernel routing table of the operator's choosing, with a
//! route protocol number of ours, so BIRD's or FRR's kernel protocol learns it and announces
//! it (see conf/bird-ecmp.conf). The table is not used for forwarding by anything: the route
//! only says "this box serves that VIP". Blackhole, because it needs no interface (`dev lo`
//! would do as well) and BIRD imports it as a route of its own kind.
//!
//! Through rtnetlink (`netlink-packet-route` messages on a `netlink-sys` socket), synchronous:
//! the control thread calls [`KernelRoutes::sync`] at start, after every change and with
//! nothing at a clean exit. Only routes with our protocol number in our table are ever
//! touched: they are ours, including those a killed instance left behind.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::config::AnnounceConfig;

/// Our routes in one kernel table, kept equal to a set of VIPs.
pub struct KernelRoutes {
    socket: Socket,
    table: u32,
    protocol: u8,
    sequence: u32,
}

impl KernelRoutes {
    /// A netlink socket in the calling thread's network namespace.
    pub fn open(config: &AnnounceConfig) -> io::Result<KernelRoutes> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(KernelRoutes { socket, table: config.table, protocol: config.protocol, sequence: 0 })
    }

    /// Makes our routes in the table exactly `vips` (both families). Returns what was added
    /// and removed.
    pub fn sync(&mut self, want: &BTreeSet<IpAddr>) -> io::Result<(Vec<IpAddr>, Vec<IpAddr>)> {
        let have = self.ours()?;
        let removed: Vec<IpAddr> = have.difference(want).copied().collect();
        let added: Vec<IpAddr> = want.difference(&have).copied().collect();
        for vip in &removed {
            self.change(RouteNetlinkMessage::DelRoute(self.route(*vip)), NLM_F_REQUEST | NLM_F_ACK)?;
        }
        for vip in &added {
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
            self.change(RouteNetlinkMessage::NewRoute(self.route(*vip)), flags)?;
        }
        Ok((added, removed))
    }

    /// The /32s and /128s with our protocol number in our table.
    pub fn ours(&mut self) -> io::Result<BTreeSet<IpAddr>> {
        let mut out = BTreeSet::new();
        // One dump per family: the kernel answers an AF_UNSPEC route dump with IPv4 only
        // on some versions.
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            self.dump_ours(family, &mut out)?;
        }
        Ok(out)
    }

    fn dump_ours(&mut self, family: AddressFamily, out: &mut BTreeSet<IpAddr>) -> io::Result<()> {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        let sequence = self.send(RouteNetlinkMessage::GetRoute(request), NLM_F_REQUEST | NLM_F_DUMP)?;
        loop {
            for message in self.receive(sequence)? {
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                        if let Some(vip) = self.our_vip(&route) {
                            out.insert(vip);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The VIP of `route` if it is one of ours.
    fn our_vip(&self, route: &RouteMessage) -> Option<IpAddr> {
        let h = &route.header;
        let host_len = match h.address_family {
            AddressFamily::Inet => 32,
            AddressFamily::Inet6 => 128,
            _ => return None,
        };
        if h.destination_prefix_length != host_len || u8::from(h.protocol) != self.protocol {
            return None;
        }
        // Tables above 255 are only in the attribute.
        let table = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(h.table));
        if table != self.table {
            return None;
        }
        route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
            _ => None,
        })
    }

    /// `blackhole VIP/32 table T proto P`, or VIP/128 for an IPv6 VIP.
    fn route(&self, vip: IpAddr) -> RouteMessage {
        let (family, host_len, destination) = match vip {
            IpAddr::V4(v4) => (AddressFamily::Inet, 32, RouteAddress::Inet(v4)),
            IpAddr::V6(v6) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(v6)),
        };
        let mut route = RouteMessage::default();
        route.header = RouteHeader {
            address_family: family,
            destination_prefix_length: host_len,
            table: u8::try_from(self.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC),
            protocol: RouteProtocol::from(self.protocol),
            scope: RouteScope::Universe,
            kind: RouteType::BlackHole,
            ..RouteHeader::default()
        };
        route.attributes = vec![RouteAttribute::Destination(destination), RouteAttribute::Table(self.table)];
        route
    }

    /// Sends a change and waits for its acknowledgement.
    fn change(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let sequence = self.send(message, flags)?;
        loop {
            for reply in self.receive(sequence)? {
                if let NetlinkPayload::Error(e) = reply.payload {
                    return match e.code {
                        None => Ok(()),
                        Some(_) => Err(e.to_io()),
                    };
                }
            }
        }
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.sequence)
    }

    /// The messages of one datagram that answer `sequence` (others are stale answers).
    fn receive(&mut self, sequence: u32) -> io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        let (data, _) = self.socket.recv_from_full()?;
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}")))?;
            let len = message.header.length as usize;
            if message.header.sequence_number == sequence {
                out.push(message);
            }
            if len == 0 {
                break;
            }
            at += len;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a network namespace of its own (this thread's: nothing else sees it), the routes
    /// follow the set, `ip route` sees them as documented, and routes that are not ours stay.
    /// Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (the test suite runs as root).
    #[test]
    fn routes_follow_the_set_in_a_namespace_of_its_own() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): run as root");
            let ip = |args: &str| {
                let out = std::process::Command::new("ip").args(args.split_whitespace()).output().unwrap();
                assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8(out.stdout).unwrap()
            };
            // Not ours: another protocol in the same table, ours in another table.
            ip("route add blackhole 203.0.113.9/32 table 100 proto static");
            ip("route add blackhole 203.0.113.10/32 table 101 proto 250");
            let mut routes = KernelRoutes::open(&AnnounceConfig { table: 100, protocol: 250 }).unwrap();
            let v = |s: &str| -> IpAddr { s.parse().unwrap() };
            let set = |list: &[&str]| list.iter().map(|s| v(s)).collect::<BTreeSet<IpAddr>>();

            let (added, removed) = routes.sync(&set(&["192.0.2.100", "192.0.2.101", "2001:db8:1::100"])).unwrap();
            assert_eq!((added.len(), removed.len()), (3, 0));
            assert_eq!(
                ip("-4 route show table 100"),
                "blackhole 192.0.2.100 proto 250 \nblackhole 192.0.2.101 proto 250 \nblackhole 203.0.113.9 proto static \n"
            );
            assert!(
                ip("-6 route show table 100").starts_with("blackhole 2001:db8:1::100 dev lo proto 250 "),
                "{}",
                ip("-6 route show table 100")
            );
            // Idempotent.
            assert_eq!(routes.sync(&set(&["192.0.2.100", "192.0.2.101", "2001:db8:1::100"])).unwrap(), (vec![], vec![]));
            let (added, removed) = routes.sync(&set(&["192.0.2.101", "192.0.2.102", "2001:db8:1::101"])).unwrap();
            assert_eq!((added, removed), (vec![v("192.0.2.102"), v("2001:db8:1::101")], vec![v("192.0.2.100"), v("2001:db8:1::100")]));
            // A second instance (a restart after a crash) takes over what the first left.
            let mut again = KernelRoutes::open(&AnnounceConfig { table: 100, protocol: 250 }).unwrap();
            assert_eq!(again.ours().unwrap(), set(&["192.0.2.101", "192.0.2.102", "2001:db8:1::101"]));
            again.sync(&BTreeSet::new()).unwrap();
            assert_eq!(ip("-4 route show table 100"), "blackhole 203.0.113.9 proto static \n");
            assert_eq!(ip("-6 route show table 100"), "");
            assert_eq!(ip("-4 route show table 101"), "blackhole 203.0.113.10 proto 250 \n");
            // A table above 255 exists only in the route's attribute.
            let mut big = KernelRoutes::open(&AnnounceConfig { table: 1000, protocol: 250 }).unwrap();
            big.sync(&set(&["192.0.2.100"])).unwrap();
            assert_eq!(ip("-4 route show table 1000"), "blackhole 192.0.2.100 proto 250 \n");
            assert_eq!(big.ours().unwrap(), ["192.0.2.100".parse().unwrap()].into());
            assert_eq!(ip("-4 route show table 100"), "blackhole 203.0.113.9 proto static \n");
        })
        .join()
        .unwrap();
    }
}
