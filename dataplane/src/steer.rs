//! Which worker owns a packet. Every packet of a connection must be handled by the core whose
//! table holds it; nothing is shared between cores. RSS puts a client's packets on one queue,
//! so the core that receives them owns what they open. The other direction is the problem:
//!
//! - FullNAT/SNAT replies come to a local address and port of ours. The port is chosen by the
//!   owner, so it can say who the owner is, and each port (NIC) gets there by the best means
//!   it has ([`Steering`]): flow rules that send a port range to its owner's queue; ports
//!   chosen so the NIC's own Toeplitz hash of the reply lands on the owner's queue; or, on a
//!   NIC with neither, the receiving core hands the packet over a ring to the owner.
//! - NAT replies (backend -> client) carry nothing of ours: both directions are handed to the
//!   core that a hash of the client's address and port names, the one field both share.
//! - DR and TUN see only the client's side: RSS alone.
//!
//! [`Ownership::owner`] is the per-packet decision; with one worker it is never asked.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::conn::{ConnKey, ConnKey6};
use crate::rss::ReplySteering;
use crate::service::{FwdMode, Services};

/// How replies to our local addresses (FullNAT, SNAT) reach the owning core on one port.
#[derive(Clone, Debug)]
pub enum Steering {
    /// One worker: every packet is its own.
    Single,
    /// The NIC's flow rules send local port `p` to queue `p % workers`.
    Flow,
    /// Local ports are chosen so that the NIC's RSS hash (this key and table) of the reply
    /// lands on the owner's queue.
    Toeplitz(ReplySteering),
    /// The receiving core hands the reply over a ring to the owner of local port `p`,
    /// core `p % workers`.
    Rings,
}

impl Steering {
    /// The name `fvs link show` prints.
    pub fn name(&self) -> &'static str {
        match self {
            Steering::Single => "single",
            Steering::Flow => "flow",
            Steering::Toeplitz(_) => "toeplitz",
            Steering::Rings => "rings",
        }
    }
}

/// One core's view of who owns what: fixed at start-up (ports and workers do not change
/// while the daemon runs).
#[derive(Clone, Debug)]
pub struct Ownership {
    pub core: u32,
    pub cores: u32,
    /// By port id; a port not listed steers by rings.
    ports: Vec<Steering>,
    any_toeplitz: bool,
}

impl Ownership {
    /// One worker.
    pub fn single() -> Ownership {
        Ownership { core: 0, cores: 1, ports: Vec::new(), any_toeplitz: false }
    }

    /// Core `core` of `cores`, with each port's steering by port id.
    pub fn new(core: u32, cores: u32, ports: Vec<Steering>) -> Ownership {
        assert!(core < cores, "core {core} of {cores}");
        let any_toeplitz = ports.iter().any(|s| matches!(s, Steering::Toeplitz(_)));
        Ownership { core, cores, ports, any_toeplitz }
    }

    #[inline]
    pub fn is_single(&self) -> bool {
        self.cores == 1
    }

    fn port(&self, port: u16) -> &Steering {
        self.ports.get(usize::from(port)).unwrap_or(&Steering::Rings)
    }

    /// True when some port chooses local ports by its RSS hash: every core may then use the
    /// whole port range (the hash keeps their replies apart), checking each port it takes.
    #[inline]
    pub fn any_toeplitz(&self) -> bool {
        self.any_toeplitz
    }

    /// The core that owns local port `lport` where ports are split by number.
    #[inline]
    pub fn port_owner(&self, lport: u16) -> u32 {
        u32::from(lport) % self.cores
    }

    /// The core that owns a NAT connection of this client.
    #[inline]
    pub fn client_owner(&self, client: Ipv4Addr, cport: u16) -> u32 {
        let x = (u32::from(client) ^ u32::from(cport).rotate_left(16)).wrapping_mul(0x9e37_79b1);
        ((u64::from(x) * u64::from(self.cores)) >> 32) as u32
    }

    /// The core that must handle a TCP/UDP packet received on `rx_port`.
    #[inline]
    pub fn owner(&self, services: &Services, t: &ConnKey, rx_port: u16) -> u32 {
        if let Some(svc) = services.lookup(t.dst, t.dport, t.proto) {
            return match svc.mode {
                FwdMode::Nat => self.client_owner(t.src, t.sport),
                // Their connections open where RSS puts the client.
                _ => self.core,
            };
        }
        if services.is_local_port_addr(t.dst) {
            return match self.port(rx_port) {
                Steering::Rings => self.port_owner(t.dport),
                // The NIC steered it; a core that got it anyway has no connection for it.
                _ => self.core,
            };
        }
        if services.is_nat_backend(t.src, t.sport, t.proto) {
            return self.client_owner(t.dst, t.dport);
        }
        self.core
    }

    /// The core that owns a NAT connection of this IPv6 client.
    #[inline]
    pub fn client_owner6(&self, client: Ipv6Addr, cport: u16) -> u32 {
        let x = u128::from(client);
        let folded = (x as u32) ^ ((x >> 32) as u32) ^ ((x >> 64) as u32) ^ ((x >> 96) as u32);
        self.client_owner(Ipv4Addr::from(folded), cport)
    }

    /// `owner` for an IPv6 TCP/UDP packet. The NICs' flow rules and Toeplitz port choice are
    /// for IPv4: replies to an IPv6 local address always go to the owner of their local port
    /// by number (`LbCore::take_local_port6` takes only those), over the rings.
    #[inline]
    pub fn owner6(&self, services: &Services, t: &ConnKey6) -> u32 {
        let v6 = &services.v6;
        if let Some(svc) = v6.lookup(t.dst, t.dport, t.proto) {
            return match svc.mode {
                FwdMode::Nat => self.client_owner6(t.src, t.sport),
                _ => self.core,
            };
        }
        if v6.is_local_port_addr(t.dst) {
            return self.port_owner(t.dport);
        }
        if v6.is_nat_backend(t.src, t.sport, t.proto) {
            return self.client_owner6(t.dst, t.dport);
        }
        self.core
    }

    /// Whether this core may use `lport` of `laddr` for a connection whose replies come from
    /// `remote:rport` on port `reply_port`.
    #[inline]
    pub fn lport_fits(&self, reply_port: u16, remote: Ipv4Addr, rport: u16, laddr: Ipv4Addr, lport: u16) -> bool {
        match self.port(reply_port) {
            Steering::Single => true,
            Steering::Toeplitz(rss) => u32::from(rss.reply_queue(remote, rport, laddr, lport)) == self.core,
            Steering::Flow | Steering::Rings => self.port_owner(lport) == self.core,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Timeouts;
    use crate::rss::{Reta, Toeplitz, MICROSOFT_KEY};
    use crate::sched::SchedKind;
    use crate::service::{Backend, BackendState, Laddr, Service, SnatRule, Tunnel};
    use crate::wire::IpProtocol;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const LADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
    const SNAT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
    const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

    fn service(slot: u16, port: u16, mode: FwdMode, laddrs: Vec<Laddr>) -> Service {
        Service {
            slot,
            gen: 1,
            vip: VIP,
            port,
            proto: IpProtocol::TCP,
            sched: SchedKind::Rr,
            mode,
            tunnel: Tunnel::default(),
            persistence_ms: 0,
            reset_on_removal: false,
            reset_when_all_down: false,
            pickup: false,
            syn_proxy: crate::service::SynProxy::Off,
            client_address: Default::default(),
            backends: vec![Backend { addr: BACKEND, port: 8080, weight: 1, state: BackendState::Active, slot, gen: 1 }],
            candidates: Vec::new(),
            table: None,
            laddrs,
        }
    }

    fn services() -> Services {
        let laddr = Laddr { addr: LADDR, slot: 0, gen: 1 };
        let snat = SnatRule {
            prefix: Ipv4Addr::new(198, 51, 100, 0),
            prefix_len: 24,
            out_port: 0,
            addrs: vec![Laddr { addr: SNAT_ADDR, slot: 1, gen: 1 }],
        };
        Services::new(
            vec![
                service(0, 80, FwdMode::Nat, Vec::new()),
                service(1, 8080, FwdMode::FullNat, vec![laddr]),
                service(2, 81, FwdMode::Dr, Vec::new()),
            ],
            Vec::new(),
            Timeouts::default(),
        )
        .with_snat(vec![snat])
    }

    fn key(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> ConnKey {
        ConnKey { src, dst, sport, dport, proto: IpProtocol::TCP }
    }

    #[test]
    fn both_directions_of_a_nat_connection_have_one_owner() {
        let s = services();
        for cores in [2, 3, 4] {
            for core in 0..cores {
                let own = Ownership::new(core, cores, vec![Steering::Rings; 2]);
                let mut seen = vec![0; cores as usize];
                for cport in 40000..41000 {
                    let there = own.owner(&s, &key(CLIENT, cport, VIP, 80), 0);
                    let back = own.owner(&s, &key(BACKEND, 8080, CLIENT, cport), 1);
                    assert_eq!(there, back, "client port {cport}");
                    seen[there as usize] += 1;
                }
                // Every core gets a fair share of clients.
                assert!(seen.iter().all(|&n| n > 1000 / cores as i32 / 2), "{seen:?}");
            }
        }
    }

    #[test]
    fn replies_to_local_addresses_go_to_the_port_owner_only_where_rings_steer() {
        let s = services();
        let rss = ReplySteering {
            toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(),
            reta: Reta::round_robin(128, 2).unwrap(),
        };
        let own = Ownership::new(0, 2, vec![Steering::Rings, Steering::Toeplitz(rss)]);
        assert_eq!(own.owner(&s, &key(BACKEND, 8080, LADDR, 5001), 0), 1);
        assert_eq!(own.owner(&s, &key(BACKEND, 8080, LADDR, 5002), 0), 0);
        assert_eq!(own.owner(&s, &key(CLIENT, 443, SNAT_ADDR, 5003), 0), 1);
        // On the port whose NIC steers by its hash, the receiving core is the owner.
        assert_eq!(own.owner(&s, &key(BACKEND, 8080, LADDR, 5001), 1), 0);
    }

    #[test]
    fn client_sides_dr_and_other_traffic_stay_on_the_receiving_core() {
        let s = services();
        let own = Ownership::new(1, 2, vec![Steering::Rings; 2]);
        assert_eq!(own.owner(&s, &key(CLIENT, 1000, VIP, 8080), 0), 1, "FullNAT client side");
        assert_eq!(own.owner(&s, &key(CLIENT, 1000, VIP, 81), 0), 1, "DR");
        assert_eq!(own.owner(&s, &key(CLIENT, 1000, Ipv4Addr::new(198, 51, 100, 2), 22), 0), 1, "routed");
        // From a NAT backend's address but another port: not a NAT reply.
        assert_eq!(own.owner(&s, &key(BACKEND, 22, CLIENT, 1000), 1), 1);
    }

    #[test]
    fn local_ports_fit_the_owner_by_the_reply_ports_steering() {
        let rss = ReplySteering {
            toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(),
            reta: Reta::round_robin(128, 2).unwrap(),
        };
        for core in 0..2 {
            let own = Ownership::new(core, 2, vec![Steering::Rings, Steering::Toeplitz(rss.clone())]);
            assert!(own.any_toeplitz());
            let by_number: Vec<u16> = (5000..5010).filter(|&p| own.lport_fits(0, BACKEND, 8080, LADDR, p)).collect();
            assert_eq!(by_number, (5000..5010).filter(|p| p % 2 == core as u16).collect::<Vec<_>>());
            let by_hash: Vec<u16> = (5000..5100).filter(|&p| own.lport_fits(1, BACKEND, 8080, LADDR, p)).collect();
            assert!(by_hash.len() > 30, "core {core}: {} of 100 ports", by_hash.len());
            for p in by_hash {
                assert_eq!(u32::from(rss.reply_queue(BACKEND, 8080, LADDR, p)), core);
            }
        }
        assert!(!Ownership::new(0, 2, vec![Steering::Rings]).any_toeplitz());
        assert!(Ownership::single().lport_fits(0, BACKEND, 1, LADDR, 7));
    }

    #[test]
    fn ipv6_owners() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let v6 = |port, mode, laddrs: Vec<Laddr<Ipv6Addr>>| crate::service::Service6 {
            slot: port,
            gen: 1,
            vip: a("2001:db8:1::100"),
            port,
            proto: IpProtocol::TCP,
            sched: SchedKind::Rr,
            mode,
            tunnel: Tunnel::default(),
            persistence_ms: 0,
            reset_on_removal: false,
            reset_when_all_down: false,
            syn_proxy: crate::service::SynProxy::Off,
            client_address: Default::default(),
            pickup: false,
            backends: vec![Backend {
                addr: a("2001:db8:2::11"),
                port: 8080,
                weight: 1,
                state: BackendState::Active,
                slot: port,
                gen: 1,
            }],
            candidates: Vec::new(),
            table: None,
            laddrs,
        };
        let laddr = Laddr { addr: a("2001:db8:2::200"), slot: 0, gen: 1 };
        let services = Services::new(vec![], vec![], Timeouts::default())
            .with_v6(vec![v6(80, FwdMode::Nat, vec![]), v6(81, FwdMode::FullNat, vec![laddr])]);
        let key = |src: &str, sport, dst: &str, dport| ConnKey6 {
            src: a(src),
            dst: a(dst),
            sport,
            dport,
            proto: IpProtocol::TCP,
        };
        for core in 0..2 {
            let rss = ReplySteering {
                toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(),
                reta: Reta::round_robin(128, 2).unwrap(),
            };
            let own = Ownership::new(core, 2, vec![Steering::Rings, Steering::Toeplitz(rss)]);
            // FullNAT replies go to the owner of the local port by number, whatever the port.
            assert_eq!(own.owner6(&services, &key("2001:db8:2::11", 8080, "2001:db8:2::200", 1025)), 1);
            assert_eq!(own.owner6(&services, &key("2001:db8:2::11", 8080, "2001:db8:2::200", 1026)), 0);
            // NAT: both directions to the core the client's address and port name.
            let client = own.client_owner6(a("2001:db8:9::7"), 40000);
            assert_eq!(own.owner6(&services, &key("2001:db8:9::7", 40000, "2001:db8:1::100", 80)), client);
            assert_eq!(own.owner6(&services, &key("2001:db8:2::11", 8080, "2001:db8:9::7", 40000)), client);
            // A FullNAT connection opens where it arrives.
            assert_eq!(own.owner6(&services, &key("2001:db8:9::7", 40000, "2001:db8:1::100", 81)), core);
        }
    }
}
