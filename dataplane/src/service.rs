//! Virtual services as a worker reads them: built by the control plane into the snapshot,
//! never changed after. Backends, services and local addresses carry a *slot* (an index into
//! per-core arrays: active-connection counts, scheduler state, port pools, counters) and a
//! *generation*: a slot is reused for something else only with a new generation, so per-core
//! state and connections made for the old occupant are told apart without any message.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::Timeouts;
use crate::defence::Guard;
use crate::sched::{Candidate, HashTable, SchedKind};
use crate::wire::IpProtocol;

/// How a service forwards (see the config's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwdMode {
    /// Destination rewritten to the backend; its replies come back through us.
    Nat,
    /// Both ends rewritten: source is a local address and port of ours.
    FullNat,
    /// Direct routing: the frame goes unchanged above L2 to the backend's MAC; the backend
    /// holds the VIP itself and answers the client directly.
    Dr,
    /// IP-in-IP (or GUE) to the backend, which decapsulates and answers directly.
    Tun,
    /// NAT64 (IPv6 services only): an IPv6 VIP with IPv4 backends, translated (RFC 7915) as
    /// FullNAT from IPv4 local addresses. The service's backends and local addresses are
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), so scheduling, persistence and the
    /// IPv6 connection table serve it unchanged.
    Nat64,
}

impl FwdMode {
    /// DR and TUN see only the client's side of a connection.
    #[inline]
    pub fn is_one_way(self) -> bool {
        matches!(self, FwdMode::Dr | FwdMode::Tun)
    }
}

/// The outer header of TUN mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encap {
    /// IPv4 in IPv4 (protocol 4), RFC 2003.
    #[default]
    Ipip,
    /// GUE variant 1 (the inner IP packet right after the UDP header) to this UDP port. The
    /// outer source port varies per flow so the backends' RSS spreads the load.
    Gue { port: u16 },
}

/// What happens to a packet that no longer fits the egress MTU once encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TooBig {
    /// ICMP fragmentation-needed back to the client with the MTU that fits (when the packet
    /// has DF set; others are dropped and counted like `Drop`).
    #[default]
    Icmp,
    /// Dropped and counted (`tunnel_too_big`).
    Drop,
}

/// TUN-mode settings of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tunnel {
    pub encap: Encap,
    pub too_big: TooBig,
}

impl Tunnel {
    /// Bytes the encapsulation adds in front of the client's IP packet.
    #[inline]
    pub fn overhead(&self) -> usize {
        match self.encap {
            Encap::Ipip => 20,
            Encap::Gue { .. } => 28,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    Active,
    /// No new connections; existing ones and persistent clients stay.
    Draining,
    /// No new connections; persistence to it is ignored.
    Inhibited,
}

/// A backend of a service; `A` is the service's address family (IPv4 unless said).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend<A = Ipv4Addr> {
    pub addr: A,
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
    pub slot: u16,
    pub gen: u32,
}

/// A FullNAT source address of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Laddr<A = Ipv4Addr> {
    pub addr: A,
    pub slot: u16,
    pub gen: u32,
}

/// A virtual service. `A` is its address family: VIP, backends and local addresses are all
/// of one family (IPv4 unless said; [`Service6`] for IPv6). Slots (service, backend, local
/// address) are one numbering for both families.
#[derive(Clone, Debug)]
pub struct Service<A = Ipv4Addr> {
    pub slot: u16,
    pub gen: u32,
    pub vip: A,
    pub port: u16,
    /// IP protocol number (6 or 17).
    pub proto: IpProtocol,
    pub sched: SchedKind,
    pub mode: FwdMode,
    /// Used in TUN mode.
    pub tunnel: Tunnel,
    /// 0: no persistence.
    pub persistence_ms: u32,
    /// Connections of a backend removed from this service are reset rather than drained.
    pub reset_on_removal: bool,
    /// A new TCP connection finding no schedulable backend gets a RST rather than silence
    /// (the health checks' `all_down: reset`).
    pub reset_when_all_down: bool,
    /// Mid-flow pickup (DR/TUN only): a TCP packet other than a SYN with no connection entry
    /// opens one, for the backend the scheduler picks, instead of being dropped. With `mh`
    /// every balancer built from the same config picks the same backend, so a connection
    /// that ECMP moves here from another balancer goes on (IPVS's sloppy TCP).
    pub pickup: bool,
    /// SYN proxy (NAT/FullNAT TCP only): SYNs are answered here with a SYN cookie, and a
    /// connection is made and opened to a backend only on the client's valid ACK.
    pub syn_proxy: SynProxy,
    /// FullNAT TCP only: how backends learn the client's address (PROXY protocol header or
    /// TOA option, see `xlate::clientaddr`); `Off` for every other service.
    pub client_address: crate::xlate::clientaddr::ClientAddr,
    pub backends: Vec<Backend<A>>,
    /// The scheduler's view of `backends`, same order.
    pub candidates: Vec<Candidate>,
    /// Built for `sh` and `mh` only; shared between snapshots while the backends stay.
    pub table: Option<Arc<HashTable>>,
    pub laddrs: Vec<Laddr<A>>,
}

/// An IPv6 service (IPv6 VIP, backends and local addresses).
pub type Service6 = Service<Ipv6Addr>;

/// What a backend slot holds now. Connections remember (slot, gen) of their backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendSlot {
    pub gen: u32,
    /// False once the backend was removed (until the slot is reused), or while the health
    /// checks hold it down with `on_backend_down: reset` (it is still in its service,
    /// inhibited; its slot and generation stay, so it comes back as it was).
    pub live: bool,
    /// For a backend not live: its connections are reset at their next packet.
    pub reset: bool,
    /// The tunnel of the backend's service (kept after removal, for draining connections).
    pub tunnel: Tunnel,
}

/// Source NAT for outbound connections: TCP and UDP from `prefix` that leave by `out_port`
/// get one of `addrs` and a port of this core's pool as their source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatRule {
    pub prefix: Ipv4Addr,
    pub prefix_len: u8,
    pub out_port: u16,
    pub addrs: Vec<Laddr>,
}

impl SnatRule {
    #[inline]
    pub fn matches(&self, src: Ipv4Addr, out_port: u16) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
        out_port == self.out_port && u32::from(src) & mask == u32::from(self.prefix) & mask
    }
}

/// `SnatRule` for IPv6 sources: TCP and UDP from `prefix` leaving by `out_port` get one of
/// `addrs` (IPv6) and a port of this core's pool as their source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatRule6 {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    pub out_port: u16,
    pub addrs: Vec<Laddr<Ipv6Addr>>,
}

impl SnatRule6 {
    #[inline]
    pub fn matches(&self, src: Ipv6Addr, out_port: u16) -> bool {
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
        out_port == self.out_port && u128::from(src) & mask == u128::from(self.prefix) & mask
    }
}

/// The fixed sizes of per-core load-balancing state (set at start; changing them needs a
/// restart because every core allocates its arrays once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbLimits {
    pub conn_capacity: u32,
    /// `syn_proxy: auto` services are proxied on a core while its half-open connections are
    /// at least `auto_half_open` or it receives at least `auto_syns_per_s` SYNs a second for
    /// them (0: that trigger off).
    pub auto_half_open: u32,
    pub auto_syns_per_s: u32,
    /// Of `conn_capacity`, how many may be half-open TCP connections (handshake incomplete):
    /// a SYN past it is refused (`drop_half_open_full`), so a SYN flood cannot take the
    /// whole table.
    pub half_open_capacity: u32,
    /// The IPv6 connection table's capacity (a table of its own, 128 bytes a connection).
    pub conn6_capacity: u32,
    pub persistence_capacity: u32,
    pub max_backends: u16,
    pub max_services: u16,
    pub max_laddrs: u16,
    pub lport_min: u16,
    pub lport_max: u16,
    /// A TCP local port is not handed out again within this long of its release where another
    /// port allows (backends keep the old connection in TIME_WAIT); 0: no quiet time.
    pub lport_quiet_ms: u32,
}

/// The default SYN rate (per core) that engages `syn_proxy: auto`.
pub const DEFAULT_AUTO_SYNS_PER_S: u32 = 20_000;

/// A service's SYN proxy setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SynProxy {
    #[default]
    Off,
    /// Every SYN answered with a cookie.
    On,
    /// Answered with cookies while the core is under a SYN flood (see [`LbLimits`]), else
    /// opened to a backend at once.
    Auto,
}

impl Default for LbLimits {
    fn default() -> Self {
        LbLimits {
            conn_capacity: 1 << 16,
            auto_half_open: 1 << 13,
            auto_syns_per_s: DEFAULT_AUTO_SYNS_PER_S,
            half_open_capacity: 1 << 15,
            conn6_capacity: 1 << 14,
            persistence_capacity: 1 << 12,
            max_backends: 256,
            max_services: 256,
            max_laddrs: 16,
            lport_min: 1024,
            lport_max: 65535,
            lport_quiet_ms: 60_000,
        }
    }
}

/// All services of a snapshot, indexed for the per-packet lookup.
#[derive(Clone, Debug, Default)]
pub struct Services {
    pub list: Vec<Service>,
    /// (vip, port, proto) packed, sorted, with the index into `list`.
    index: Vec<(u64, u16)>,
    /// Sorted VIPs: a packet to a VIP on a port no service uses is dropped as such.
    vips: Vec<Ipv4Addr>,
    /// By backend slot.
    pub backend_slots: Vec<BackendSlot>,
    pub timeouts: Timeouts,
    /// First match wins.
    pub snat: Vec<SnatRule>,
    /// Sorted FullNAT and SNAT local addresses: replies to them find their owner by port.
    local_port_addrs: Vec<Ipv4Addr>,
    /// NAT backends (addr, port, proto) packed, sorted: their replies find their owner by
    /// the client they go to.
    nat_backends: Vec<u64>,
    /// Access lists and limits for new connections.
    pub guard: Arc<Guard>,
    /// The SYN proxy's cookie secret, drawn once per boot by the control plane.
    pub syn_cookie_secret: [u64; 2],
    /// The IPv6 services, indexed like the IPv4 ones (kept apart so the IPv4 lookup stays
    /// one 64-bit binary search).
    pub v6: Services6,
}

/// The IPv6 services of a snapshot, indexed for the per-packet lookup.
#[derive(Clone, Debug, Default)]
pub struct Services6 {
    pub list: Vec<Service6>,
    /// SNAT rules for IPv6 sources; first match wins.
    pub snat: Vec<SnatRule6>,
    /// (vip, port, proto) packed, sorted, with the index into `list`.
    index: Vec<(u128, u32, u16)>,
    vips: Vec<Ipv6Addr>,
    local_port_addrs: Vec<Ipv6Addr>,
    /// NAT backends (addr, (port << 8 | proto)), sorted.
    nat_backends: Vec<(u128, u32)>,
    /// The IPv4 local addresses of NAT64 services, sorted: IPv4 packets to them that no IPv4
    /// connection takes are looked up in the IPv6 table.
    nat64_laddrs: Vec<Ipv4Addr>,
}

#[inline]
fn pack6(port: u16, proto: IpProtocol) -> u32 {
    (u32::from(port) << 8) | u32::from(proto.0)
}

impl Services6 {
    pub fn new(list: Vec<Service6>, snat: Vec<SnatRule6>) -> Services6 {
        let mut index: Vec<(u128, u32, u16)> =
            list.iter().enumerate().map(|(i, s)| (u128::from(s.vip), pack6(s.port, s.proto), i as u16)).collect();
        index.sort_unstable();
        let mut vips: Vec<Ipv6Addr> = list.iter().map(|s| s.vip).collect();
        vips.sort_unstable();
        vips.dedup();
        let fullnat = list.iter().flat_map(|s| s.laddrs.iter().map(|l| l.addr));
        let mut local_port_addrs: Vec<Ipv6Addr> =
            fullnat.chain(snat.iter().flat_map(|r| r.addrs.iter().map(|l| l.addr))).collect();
        local_port_addrs.sort_unstable();
        local_port_addrs.dedup();
        let mut nat_backends: Vec<(u128, u32)> = list
            .iter()
            .filter(|s| s.mode == FwdMode::Nat)
            .flat_map(|s| s.backends.iter().map(|b| (u128::from(b.addr), pack6(b.port, s.proto))))
            .collect();
        nat_backends.sort_unstable();
        nat_backends.dedup();
        let mut nat64_laddrs: Vec<Ipv4Addr> = list
            .iter()
            .filter(|s| s.mode == FwdMode::Nat64)
            .flat_map(|s| s.laddrs.iter().filter_map(|l| l.addr.to_ipv4_mapped()))
            .collect();
        nat64_laddrs.sort_unstable();
        nat64_laddrs.dedup();
        Services6 { list, snat, index, vips, local_port_addrs, nat_backends, nat64_laddrs }
    }

    /// True for an IPv4 local address of a NAT64 service.
    #[inline]
    pub fn is_nat64_laddr(&self, addr: Ipv4Addr) -> bool {
        !self.nat64_laddrs.is_empty() && self.nat64_laddrs.binary_search(&addr).is_ok()
    }

    /// The SNAT rule for a packet from `src` leaving by `out_port`.
    #[inline]
    pub fn snat_rule(&self, src: Ipv6Addr, out_port: u16) -> Option<&SnatRule6> {
        self.snat.iter().find(|r| r.matches(src, out_port))
    }

    #[inline]
    pub fn lookup(&self, vip: Ipv6Addr, port: u16, proto: IpProtocol) -> Option<&Service6> {
        let key = (u128::from(vip), pack6(port, proto));
        let i = self.index.binary_search_by_key(&key, |e| (e.0, e.1)).ok()?;
        self.list.get(usize::from(self.index[i].2))
    }

    #[inline]
    pub fn is_vip(&self, addr: Ipv6Addr) -> bool {
        self.vips.binary_search(&addr).is_ok()
    }

    /// True for a FullNAT local address of an IPv6 service.
    #[inline]
    pub fn is_local_port_addr(&self, addr: Ipv6Addr) -> bool {
        self.local_port_addrs.binary_search(&addr).is_ok()
    }

    /// True when `addr:port` is a backend of an IPv6 NAT service of this protocol.
    #[inline]
    pub fn is_nat_backend(&self, addr: Ipv6Addr, port: u16, proto: IpProtocol) -> bool {
        self.nat_backends.binary_search(&(u128::from(addr), pack6(port, proto))).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.snat.is_empty()
    }
}

#[inline]
fn pack(vip: Ipv4Addr, port: u16, proto: IpProtocol) -> u64 {
    (u64::from(u32::from(vip)) << 24) | (u64::from(port) << 8) | u64::from(proto.0)
}

impl Services {
    pub fn new(list: Vec<Service>, backend_slots: Vec<BackendSlot>, timeouts: Timeouts) -> Services {
        let mut index: Vec<(u64, u16)> =
            list.iter().enumerate().map(|(i, s)| (pack(s.vip, s.port, s.proto), i as u16)).collect();
        index.sort_unstable();
        let mut vips: Vec<Ipv4Addr> = list.iter().map(|s| s.vip).collect();
        vips.sort_unstable();
        vips.dedup();
        let mut nat_backends: Vec<u64> = list
            .iter()
            .filter(|s| s.mode == FwdMode::Nat)
            .flat_map(|s| s.backends.iter().map(|b| pack(b.addr, b.port, s.proto)))
            .collect();
        nat_backends.sort_unstable();
        nat_backends.dedup();
        let mut services = Services {
            list,
            index,
            vips,
            backend_slots,
            timeouts,
            snat: Vec::new(),
            local_port_addrs: Vec::new(),
            nat_backends,
            guard: Arc::default(),
            v6: Services6::default(),
            syn_cookie_secret: [0; 2],
        };
        services.index_local_port_addrs();
        services
    }

    /// With these SNAT rules (their addresses take local-address slots like FullNAT's).
    pub fn with_snat(mut self, snat: Vec<SnatRule>) -> Services {
        self.snat = snat;
        self.index_local_port_addrs();
        self
    }

    /// With this SYN cookie secret.
    pub fn with_syn_cookie_secret(mut self, secret: [u64; 2]) -> Services {
        self.syn_cookie_secret = secret;
        self
    }

    /// With these access lists and limits.
    pub fn with_guard(mut self, guard: Arc<Guard>) -> Services {
        self.guard = guard;
        self
    }

    /// With these IPv6 services (their slots are numbered with the IPv4 ones).
    pub fn with_v6(self, list: Vec<Service6>) -> Services {
        self.with_v6_snat(list, Vec::new())
    }

    /// With these IPv6 services and IPv6 SNAT rules.
    pub fn with_v6_snat(mut self, list: Vec<Service6>, snat: Vec<SnatRule6>) -> Services {
        self.v6 = Services6::new(list, snat);
        self.index_local_port_addrs();
        self
    }

    /// FullNAT and SNAT local addresses, and NAT64's (IPv4: their replies are IPv4 packets
    /// whose owner is found like FullNAT's).
    fn index_local_port_addrs(&mut self) {
        let fullnat = self.list.iter().flat_map(|s| s.laddrs.iter().map(|l| l.addr));
        let snat = self.snat.iter().flat_map(|r| r.addrs.iter().map(|l| l.addr));
        let nat64 = self.v6.nat64_laddrs.iter().copied();
        self.local_port_addrs = fullnat.chain(snat).chain(nat64).collect();
        self.local_port_addrs.sort_unstable();
        self.local_port_addrs.dedup();
    }

    /// True for a FullNAT or SNAT local address.
    #[inline]
    pub fn is_local_port_addr(&self, addr: Ipv4Addr) -> bool {
        self.local_port_addrs.binary_search(&addr).is_ok()
    }

    /// True when `addr:port` is a backend of a NAT service of this protocol.
    #[inline]
    pub fn is_nat_backend(&self, addr: Ipv4Addr, port: u16, proto: IpProtocol) -> bool {
        !self.nat_backends.is_empty() && self.nat_backends.binary_search(&pack(addr, port, proto)).is_ok()
    }

    /// The SNAT rule for a packet from `src` leaving by `out_port`.
    #[inline]
    pub fn snat_rule(&self, src: Ipv4Addr, out_port: u16) -> Option<&SnatRule> {
        self.snat.iter().find(|r| r.matches(src, out_port))
    }

    #[inline]
    pub fn lookup(&self, vip: Ipv4Addr, port: u16, proto: IpProtocol) -> Option<&Service> {
        let key = pack(vip, port, proto);
        let i = self.index.binary_search_by_key(&key, |e| e.0).ok()?;
        self.list.get(usize::from(self.index[i].1))
    }

    #[inline]
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.binary_search(&addr).is_ok()
    }

    /// Whether the backend slot still holds generation `gen`, live: a connection to it goes
    /// on as it was (`backend_slot`'s test, without its copy).
    #[inline(always)]
    pub fn backend_live(&self, slot: u16, gen: u32) -> bool {
        self.backend_slots.get(usize::from(slot)).is_some_and(|s| s.gen == gen && s.live)
    }

    /// What the backend slot holds now (a default, not-live record for an unknown slot).
    #[inline]
    pub fn backend_slot(&self, slot: u16) -> BackendSlot {
        self.backend_slots.get(usize::from(slot)).copied().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.snat.is_empty() && self.v6.is_empty()
    }
}
