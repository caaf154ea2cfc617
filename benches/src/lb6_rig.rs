//! The IPv6 load-balancing rig of `benches/benches/lb6.rs`: one TCP service on
//! [2001:db8:1::100]:80 with 8 backends (2001:db8:2::11..=18, port 8080, round robin) in NAT or
//! FullNAT (16 local addresses 2001:db8:2::200..), clients 2001:db8:1:1::/64 on dp0, the
//! backends on dp1. Frames are built once at setup (Ethernet + IPv6 + TCP, 74 bytes) and
//! copied into one reused buffer per packet, as the IPv4 rig does with its templates.
//! NAT64: the backends are 198.51.100.11..=18 and the local addresses 198.51.100.200.. (IPv4,
//! on dp1's 198.51.100.0/24), the replies IPv4 frames (54 bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::conn::{ConnKey6, TcpState};
use dataplane::counters::{CoreCounters, Event};
use dataplane::l3::NeighParams;
use dataplane::lb::LbCore;
use dataplane::pipeline::{CoreCtx, NeighLearned};
use dataplane::sched::{Candidate, SchedKind};
use dataplane::service::{Backend, BackendSlot, BackendState, FwdMode, Laddr, LbLimits, Service6, Services, Tunnel};
use dataplane::snapshot::{LocalAddr, PortL3, Snapshot};
use dataplane::testkit::packet::{EthRepr, Ipv4Repr, Ipv6Repr, L4Repr, TcpRepr};
use dataplane::wire::TcpFlags;

use crate::lb_rig::{backend_mac, BenchFrame, Keep, NoPool, Rng, NOW_MS, OUR_MAC0, OUR_MAC1, ROUTER_MAC};

pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const BACKENDS: u16 = 8;
pub const LADDRS: u16 = 16;
/// Ethernet + IPv6 + TCP without options.
pub const FRAME6_LEN: usize = 14 + 40 + 20;

/// Client `i`: 2001:db8:1:1::/64 host `i / 64,000`, source port 1024 + `i % 64,000`.
pub fn client6(i: usize) -> (Ipv6Addr, u16) {
    let host = (i / 64_000) as u16 + 1;
    (Ipv6Addr::new(0x2001, 0xdb8, 1, 1, 0, 0, 0, host), 1024 + (i % 64_000) as u16)
}

fn backend6(k: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10 + k)
}

/// NAT64's IPv4 backend `k`.
fn backend4(k: u16) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + k as u8)
}

/// A backend's address as the service holds it (NAT64: IPv4-mapped).
fn backend_of(mode: FwdMode, k: u16) -> Ipv6Addr {
    if mode == FwdMode::Nat64 {
        backend4(k).to_ipv6_mapped()
    } else {
        backend6(k)
    }
}

pub fn services6(mode: FwdMode) -> Arc<Services> {
    let backends: Vec<Backend<Ipv6Addr>> = (1..=BACKENDS)
        .map(|k| Backend {
            addr: backend_of(mode, k),
            port: 8080,
            weight: 1,
            state: BackendState::Active,
            slot: k,
            gen: 1,
        })
        .collect();
    let laddrs = match mode {
        FwdMode::FullNat => (0..LADDRS)
            .map(|k| Laddr { addr: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x200 + k), slot: k, gen: 1 })
            .collect(),
        FwdMode::Nat64 => (0..LADDRS)
            .map(|k| Laddr { addr: Ipv4Addr::new(198, 51, 100, 200 + k as u8).to_ipv6_mapped(), slot: k, gen: 1 })
            .collect(),
        _ => vec![],
    };
    let service = Service6 {
        slot: 0,
        gen: 1,
        vip: VIP6,
        port: 80,
        proto: dataplane::wire::IpProtocol::TCP,
        sched: SchedKind::Rr,
        mode,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset_on_removal: false,
        reset_when_all_down: false,
        syn_proxy: dataplane::service::SynProxy::Off,
        client_address: Default::default(),
        pickup: false,
        candidates: backends.iter().map(|_| Candidate { weight: 1, schedulable: true }).collect(),
        backends,
        table: None,
        laddrs,
    };
    let mut slots = vec![BackendSlot::default(); 256];
    for k in 1..=BACKENDS {
        slots[usize::from(k)] = BackendSlot { gen: 1, live: true, reset: false, tunnel: Tunnel::default() };
    }
    Arc::new(Services::new(vec![], slots, Default::default()).with_v6(vec![service]))
}

pub fn snapshot6(mode: FwdMode) -> Snapshot {
    let port = |name: &str, mac| PortL3 { name: name.into(), mac, mtu: 1500, kernel: None };
    let addr = |port, prefix: &str| LocalAddr { port, prefix: prefix.parse().unwrap() };
    let mut addrs = vec![addr(0, "2001:db8:1::1/48"), addr(1, "2001:db8:2::1/64")];
    if mode == FwdMode::Nat64 {
        addrs.push(addr(1, "198.51.100.1/24"));
    }
    Snapshot::build(vec![(0, port("dp0", OUR_MAC0)), (1, port("dp1", OUR_MAC1))], addrs, vec![])
        .with_services(services6(mode))
}

/// A TCP frame, prebuilt.
pub fn tcp_frame(to_backend_side: bool, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    let (dst_mac, src_mac) = if to_backend_side { (OUR_MAC1, backend_mac(1)) } else { (OUR_MAC0, ROUTER_MAC) };
    let tcp = TcpRepr::new(sport, dport, TcpFlags::from_bits_retain(flags));
    EthRepr { dst: dst_mac, src: src_mac }.frame_v6(&Ipv6Repr::new(src, dst), &L4Repr::Tcp(tcp))
}

/// A backend's TCP frame to a NAT64 local address (IPv4), prebuilt.
pub fn tcp_frame4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let tcp = TcpRepr::new(sport, dport, TcpFlags::from_bits_retain(flags));
    EthRepr { dst: OUR_MAC1, src: backend_mac(1) }.frame_v4(&Ipv4Repr::new(src, dst), &L4Repr::Tcp(tcp))
}

/// A backend's TCP frame of connection `c` (IPv4 for a NAT64 one).
fn backend_frame(c: &dataplane::conn::Conn6, flags: u8) -> Vec<u8> {
    match c.nat64() {
        Some((laddr, backend)) => tcp_frame4(backend, c.bport, laddr, c.lport, flags),
        None => tcp_frame(true, c.backend, c.bport, c.laddr, c.lport, flags),
    }
}

/// One core's pipeline with the IPv6 service and its connections.
pub struct Rig6 {
    pub ctx: CoreCtx<BenchFrame>,
    pub snap: Snapshot,
    pub sink: Keep,
}

impl Rig6 {
    pub fn new(mode: FwdMode, conns: usize) -> Rig6 {
        // Room for N and N new ones.
        let conn6_capacity = (2 * conns).next_power_of_two() as u32;
        let limits = LbLimits { conn6_capacity, ..LbLimits::default() };
        let neigh = NeighParams { capacity: 64, ..NeighParams::default() };
        let mut ctx = CoreCtx::new(0, Arc::new(CoreCounters::default()), neigh, LbCore::standalone(limits));
        let snap = snapshot6(mode);
        ctx.snapshot_changed(&snap);
        let mut sink =
            Keep { frame: Some(BenchFrame::new()), port: u16::MAX, spare: Vec::new(), sent: 0, sent_bytes: 0 };
        // Clients are on dp0's /48, resolved like neighbours (their router answers for all).
        for i in 0..=(conns / 64_000) {
            let ip = client6(i * 64_000).0.into();
            ctx.learn_remote(&snap, NOW_MS, NeighLearned { port: 0, ip, mac: ROUTER_MAC }, &mut sink);
        }
        for k in 1..=BACKENDS {
            let ip = match backend_of(mode, k).to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(backend6(k)),
            };
            let n = NeighLearned { port: 1, ip, mac: backend_mac(k as u8) };
            ctx.learn_remote(&snap, NOW_MS, n, &mut sink);
        }
        Rig6 { ctx, snap, sink }
    }

    /// One frame through the pipeline, copied into the buffer the last one left in.
    #[inline]
    pub fn push(&mut self, bytes: &[u8], rx_port: u16) {
        let mut frame = self.sink.frame.take().unwrap_or_default();
        let f: &mut crate::lb_rig::FrameBuf = &mut frame;
        f.start = crate::lb_rig::HEADROOM;
        f.len = bytes.len();
        f.buf[f.start..f.start + bytes.len()].copy_from_slice(bytes);
        f.port = rx_port;
        self.ctx.process_frame(&self.snap, NOW_MS, frame, &mut NoPool, &mut self.sink);
    }

    /// `push`, checking (setup only) that the frame left by `tx_port`.
    pub fn push_checked(&mut self, bytes: &[u8], rx_port: u16, tx_port: u16) {
        self.sink.port = u16::MAX;
        self.push(bytes, rx_port);
        assert_eq!(self.sink.port, tx_port, "packet not forwarded");
    }

    /// Every frame received so far was sent once; none dropped.
    pub fn assert_all_forwarded(&self) {
        let c = &self.ctx.counters;
        assert_eq!(c.drops_total(), 0, "frames dropped");
        assert_eq!(self.sink.sent, c.event(Event::RxPackets).get(), "frames not sent");
    }
}

/// Opens `n` connections (SYN, SYN-ACK, ACK) and returns the client's and the backend's ACK
/// frames, each in a random order.
pub fn open6(rig: &mut Rig6, n: usize, rng: &mut Rng) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut originals = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    for i in 0..n {
        let (addr, port) = client6(i);
        rig.push_checked(&tcp_frame(false, addr, port, VIP6, 80, 0x02), 0, 1);
        let key = ConnKey6 { src: addr, dst: VIP6, sport: port, dport: 80, proto: dataplane::wire::IpProtocol::TCP };
        let (id, _) = rig.ctx.lb.conns6.lookup(&key).expect("tracked");
        let c = rig.ctx.lb.conns6.get(id);
        rig.push_checked(&backend_frame(&c, 0x12), 1, 0);
        let ack = tcp_frame(false, addr, port, VIP6, 80, 0x10);
        rig.push_checked(&ack, 0, 1);
        assert_eq!(rig.ctx.lb.conns6.get(id).state, TcpState::Established);
        originals.push(ack);
        replies.push(backend_frame(&c, 0x10));
    }
    assert_eq!(rig.ctx.lb.conns6.len(), n);
    rng.shuffle(&mut originals);
    rng.shuffle(&mut replies);
    (originals, replies)
}

/// SYN frames of `n` tuples no connection has (2001:db8:1:2::/64).
pub fn fresh_syns6(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|j| {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, (j / 60_000) as u16 + 1);
            tcp_frame(false, addr, 1024 + (j % 60_000) as u16, VIP6, 80, 0x02)
        })
        .collect()
}
