//! The configuration a worker reads: immutable, built by the control plane, published
//! through [`crate::rcu`] and picked up at burst boundaries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::l3::{Route, RouteOrigin, RouteTable};
use crate::net::{MacAddr, Prefix};
use crate::service::Services;

/// In `local_index`, the port of a service address outside every connected network: it is
/// ours (ping answers) but no port answers ARP/ND for it (routers send it to us).
const NO_PORT: u16 = u16::MAX;

/// What the data path needs to know about a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortL3 {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    /// The port's kernel interface (exception path) and its per-core rate, when it has one.
    pub kernel: Option<KernelLimit>,
}

/// How many frames a second each core may pass to a port's kernel interface, and how many at
/// once (a token bucket's rate and depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLimit {
    pub rate_pps: u32,
    pub burst: u32,
}

/// An address this box owns, on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    pub port: u16,
    pub prefix: Prefix,
}

/// Where packets to a backend leave, worked out when the snapshot is built instead of per
/// packet: its route's port and next hop, that port's MAC and MTU, and TUN's outer source.
/// Only the next hop's MAC is left to each core (its own neighbour table). `A`: the
/// backends' address family (`Ipv6Addr` for IPv6 services' backends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendHop<A = Ipv4Addr> {
    /// The backend's address: a slot's hop applies only to a connection to this address.
    pub addr: A,
    pub port: u16,
    pub next_hop: A,
    pub our_mac: MacAddr,
    pub mtu: u16,
    /// The backend is on a connected network of `port` (its own next hop), as DR needs.
    pub on_link: bool,
    /// TUN's outer source: our address on `port` for the next hop (`source_for`).
    pub tunnel_src: Option<A>,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Indexed by DPDK port id.
    ports: Vec<Option<PortL3>>,
    addrs: Vec<LocalAddr>,
    /// (address, port), sorted: the per-packet "is this ours?" test. Holds the interface
    /// addresses, the VIPs and the FullNAT local addresses.
    local_index: Vec<(IpAddr, u16)>,
    pub routes: RouteTable,
    pub services: Arc<Services>,
    /// By backend slot, for the backends of `services` whose route and port are known.
    backend_hops: Vec<Option<BackendHop>>,
    /// The same for the backends of IPv6 services (backend slots are shared by both).
    backend_hops6: Vec<Option<BackendHop<Ipv6Addr>>>,
}

impl Snapshot {
    /// Builds a snapshot. Every address's network becomes a connected route; static routes
    /// are added after them, so a static route for the same prefix replaces the connected one.
    pub fn build(ports: Vec<(u16, PortL3)>, addrs: Vec<LocalAddr>, static_routes: Vec<Route>) -> Snapshot {
        let mut by_id: Vec<Option<PortL3>> = Vec::new();
        for (id, port) in ports {
            let id = usize::from(id);
            if by_id.len() <= id {
                by_id.resize(id + 1, None);
            }
            by_id[id] = Some(port);
        }
        let mut routes = RouteTable::default();
        for a in &addrs {
            routes.insert(Route {
                prefix: a.prefix.network(),
                via: None,
                port: a.port,
                origin: RouteOrigin::Connected,
            });
        }
        for r in static_routes {
            routes.insert(Route { origin: RouteOrigin::Static, ..r });
        }
        let mut local_index: Vec<(IpAddr, u16)> = addrs.iter().map(|a| (a.prefix.addr(), a.port)).collect();
        local_index.sort();
        Snapshot {
            ports: by_id,
            addrs,
            local_index,
            routes,
            services: Arc::default(),
            backend_hops: Vec::new(),
            backend_hops6: Vec::new(),
        }
    }

    /// Adds the services. Their VIPs and local addresses (FullNAT and SNAT) become addresses
    /// of the box: one
    /// inside a connected network is answered for ARP/ND on that network's port, like an
    /// interface address, so no separate `addr add` is needed for it.
    pub fn with_services(mut self, services: Arc<Services>) -> Snapshot {
        let service_addrs = services
            .list
            .iter()
            .flat_map(|s| std::iter::once(s.vip).chain(s.laddrs.iter().map(|l| l.addr)))
            .chain(services.snat.iter().flat_map(|r| r.addrs.iter().map(|l| l.addr)))
            .map(IpAddr::V4);
        let service_addrs6 = services
            .v6
            .list
            .iter()
            .flat_map(|s| std::iter::once(s.vip).chain(s.laddrs.iter().map(|l| l.addr)))
            .chain(services.v6.snat.iter().flat_map(|r| r.addrs.iter().map(|l| l.addr)))
            // NAT64's IPv4-mapped local addresses are IPv4 addresses of the box.
            .map(|a| IpAddr::V6(a).to_canonical());
        for ip in service_addrs.chain(service_addrs6) {
            let port = match self.routes.lookup(ip) {
                Some(r) if r.origin == RouteOrigin::Connected => r.port,
                _ => NO_PORT,
            };
            self.local_index.push((ip, port));
        }
        self.local_index.sort();
        self.local_index.dedup();
        self.backend_hops = Vec::new();
        for b in services.list.iter().flat_map(|s| &s.backends) {
            let slot = usize::from(b.slot);
            if self.backend_hops.len() <= slot {
                self.backend_hops.resize(slot + 1, None);
            }
            self.backend_hops[slot] = self.hop_to(b.addr, as_v4);
        }
        self.backend_hops6 = Vec::new();
        for b in services.v6.list.iter().flat_map(|s| &s.backends) {
            let slot = usize::from(b.slot);
            if self.backend_hops6.len() <= slot {
                self.backend_hops6.resize(slot + 1, None);
            }
            self.backend_hops6[slot] = self.hop_to(b.addr, as_v6);
        }
        self.services = services;
        self
    }

    /// Where a packet to `addr` leaves: None without a route to it over a known port.
    /// `narrow`: an address of the family `A` from an `IpAddr` of it.
    fn hop_to<A: Copy + PartialEq + Into<IpAddr>>(
        &self,
        addr: A,
        narrow: fn(IpAddr) -> Option<A>,
    ) -> Option<BackendHop<A>> {
        let route = self.routes.lookup(addr.into())?;
        let next_hop = narrow(route.next_hop(addr.into()))?;
        let egress = self.port(route.port)?;
        let tunnel_src = self.source_for(route.port, next_hop.into()).and_then(narrow);
        Some(BackendHop {
            addr,
            port: route.port,
            next_hop,
            our_mac: egress.mac,
            mtu: egress.mtu,
            on_link: next_hop == addr,
            tunnel_src,
        })
    }

    /// The hop of the backend in `slot` when it is still `addr` (connections remember their
    /// backend's slot; a slot reused for another address has another hop).
    #[inline]
    pub fn backend_hop(&self, slot: u16, addr: Ipv4Addr) -> Option<&BackendHop> {
        self.backend_hops.get(usize::from(slot))?.as_ref().filter(|h| h.addr == addr)
    }

    /// `backend_hop` for an IPv6 service's backend.
    #[inline]
    pub fn backend_hop6(&self, slot: u16, addr: Ipv6Addr) -> Option<&BackendHop<Ipv6Addr>> {
        self.backend_hops6.get(usize::from(slot))?.as_ref().filter(|h| h.addr == addr)
    }

    #[inline]
    pub fn port(&self, id: u16) -> Option<&PortL3> {
        self.ports.get(usize::from(id)).and_then(Option::as_ref)
    }

    pub fn addresses(&self) -> &[LocalAddr] {
        &self.addrs
    }

    /// True when `ip` is an address of this box, on any port.
    #[inline]
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let i = self.local_index.partition_point(|(a, _)| *a < ip);
        self.local_index.get(i).is_some_and(|(a, _)| *a == ip)
    }

    /// True when `ip` is an interface address (`addr add`), not a VIP or a local address of a
    /// service: what the kernel interface carries too. A scan: only the exception path asks.
    pub fn is_interface_addr(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.prefix.addr() == ip)
    }

    /// True when `ip` is an address of this box on `port` (ARP and ND answer only these).
    #[inline]
    pub fn owns_on_port(&self, port: u16, ip: IpAddr) -> bool {
        let i = self.local_index.partition_point(|(a, _)| *a < ip);
        self.local_index[i..].iter().take_while(|(a, _)| *a == ip).any(|(_, p)| *p == port)
    }

    /// The source address for a request about `target` sent on `port`: an address of that
    /// port whose network holds `target`, else the port's first address of that family.
    pub fn source_for(&self, port: u16, target: IpAddr) -> Option<IpAddr> {
        let same_family = |a: &&LocalAddr| a.port == port && a.prefix.is_ipv4() == target.is_ipv4();
        self.addrs
            .iter()
            .filter(same_family)
            .find(|a| a.prefix.contains(target))
            .or_else(|| self.addrs.iter().find(same_family))
            .map(|a| a.prefix.addr())
    }

    /// True when `dst` is the solicited-node multicast group of an IPv6 address on `port`
    /// (an interface address, or a VIP or local address answered there). A scan: only ND
    /// solicitations ask.
    pub fn is_solicited_node_on_port(&self, port: u16, dst: Ipv6Addr) -> bool {
        self.local_index.iter().any(|(a, p)| match a {
            IpAddr::V6(v6) => *p == port && solicited_node(*v6) == dst,
            IpAddr::V4(_) => false,
        })
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 section 2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

fn as_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn as_v6(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_and_sources() {
        let port = |n: &str| PortL3 { name: n.into(), mac: MacAddr([2, 0, 0, 0, 0, 1]), mtu: 1500, kernel: None };
        let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
        let snap = Snapshot::build(
            vec![(0, port("dp0")), (1, port("dp1"))],
            vec![la(0, "192.0.2.1/24"), la(1, "198.51.100.1/24"), la(1, "203.0.113.1/24"), la(0, "2001:db8::1/64")],
            vec![],
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(snap.is_local(ip("198.51.100.1")));
        assert!(!snap.is_local(ip("198.51.100.2")));
        assert!(snap.owns_on_port(0, ip("192.0.2.1")));
        assert!(!snap.owns_on_port(1, ip("192.0.2.1")));
        assert_eq!(snap.source_for(1, ip("203.0.113.9")), Some(ip("203.0.113.1")));
        assert_eq!(snap.source_for(1, ip("192.0.2.9")), Some(ip("198.51.100.1")));
        assert_eq!(snap.source_for(1, ip("2001:db8::9")), None);
        assert_eq!(snap.routes.lookup(ip("203.0.113.77")).unwrap().port, 1);
        assert_eq!(solicited_node("2001:db8::1:2345:6789".parse().unwrap()).to_string(), "ff02::1:ff45:6789");
        assert!(snap.is_solicited_node_on_port(0, "ff02::1:ff00:1".parse().unwrap()));
        assert!(snap.port(2).is_none());
    }
}
