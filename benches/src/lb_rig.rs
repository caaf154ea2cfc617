//! The load-balancing rig shared by `benches/benches/lb.rs` (criterion, ns per packet) and
//! `benches/examples/instructions.rs` (callgrind, instructions per packet); the module
//! documentation of `benches/benches/lb.rs` describes the cases.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::conn::{Conn, ConnKey, TcpState};
use dataplane::counters::{CoreCounters, Event};
use dataplane::l3::{NeighParams, Route, RouteOrigin};
use dataplane::lb::LbCore;
use dataplane::net::MacAddr;
use dataplane::pipeline::{CoreCtx, Frame, FramePool, NeighLearned, TxSink, BURST};
use dataplane::sched::{Candidate, SchedKind};
use dataplane::service::{Backend, BackendSlot, BackendState, FwdMode, Laddr, LbLimits, Service, Services, Tunnel};
use dataplane::snapshot::{LocalAddr, PortL3, Snapshot};
use dataplane::testkit::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr, ETH_LEN};
use dataplane::wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpPacket};

pub const NOW_MS: u64 = 1_000_000;
pub const OUR_MAC0: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x01]);
pub const OUR_MAC1: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x02]);
/// The client side's router (192.0.2.2), through which 203.0.113.0/24 is reached.
pub const ROUTER_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 0x02]);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const VPORT: u16 = 80;
pub const BACKENDS: u8 = 8;
pub const LADDRS: u8 = 16;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const SYN_ACK: u8 = 0x12;

/// Ethernet + IPv4 + TCP without options, padded to Ethernet's 60-byte minimum.
pub const FRAME_LEN: usize = 60;
pub const HEADROOM: usize = 128;
pub const BUF_LEN: usize = 256;

/// SYNs timed between two removals, at most.
pub const NEW_CONN_CHUNK: usize = 16_384;
/// Tuples the new-connection cases rotate through (a power of two).
pub const FRESH_TUPLES: usize = 1 << 18;
pub const HOT_TUPLES: usize = 4096;

pub fn backend_mac(k: u8) -> MacAddr {
    MacAddr([0x02, 0xb0, 0, 0, 0, 0x10 + k])
}

/// One reused buffer with headroom in front, as an mbuf has, and like an mbuf handle one
/// pointer: the pipeline moves frames by value through its calls, and a wider frame would
/// make every move cost more than with the workers' mbufs (32 bytes took 28 instructions a
/// packet more). Not the test kit's `TestFrame` (a `Vec` per frame) nor its `Sent` (a `Vec`
/// per frame sent): the measured loop must not allocate.
pub struct BenchFrame(Box<FrameBuf>);

/// What a `BenchFrame` points to.
pub struct FrameBuf {
    pub buf: [u8; BUF_LEN],
    pub start: usize,
    pub len: usize,
    pub port: u16,
}

impl std::ops::Deref for BenchFrame {
    type Target = FrameBuf;
    #[inline]
    fn deref(&self) -> &FrameBuf {
        &self.0
    }
}

impl std::ops::DerefMut for BenchFrame {
    #[inline]
    fn deref_mut(&mut self) -> &mut FrameBuf {
        &mut self.0
    }
}

impl Default for BenchFrame {
    fn default() -> BenchFrame {
        BenchFrame::new()
    }
}

impl BenchFrame {
    pub fn new() -> BenchFrame {
        BenchFrame(Box::new(FrameBuf { buf: [0; BUF_LEN], start: HEADROOM, len: 0, port: 0 }))
    }
}

impl Frame for BenchFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        let f = &*self.0;
        &f.buf[f.start..f.start + f.len]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let f = &mut *self.0;
        &mut f.buf[f.start..f.start + f.len]
    }
    #[inline]
    fn rx_port(&self) -> u16 {
        self.0.port
    }
    fn set_len(&mut self, len: usize) -> bool {
        let f = &mut *self.0;
        if f.start + len > BUF_LEN {
            return false;
        }
        f.len = len;
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        let f = &mut *self.0;
        if n > f.start {
            return false;
        }
        f.start -= n;
        f.len += n;
        true
    }
    /// As an mbuf does it: the data start moves, nothing is copied.
    fn trim_front(&mut self, n: usize) -> bool {
        let f = &mut *self.0;
        if n > f.len {
            return false;
        }
        f.start += n;
        f.len -= n;
        true
    }
}

pub struct NoPool;
impl FramePool<BenchFrame> for NoPool {
    fn alloc(&mut self) -> Option<BenchFrame> {
        None
    }
}

/// Keeps the frames sent so the next packets reuse their buffers: the last one in `frame`
/// (`push`), the others of a burst in `spare` (`push_burst`). Counts them as a worker's tx
/// does for the frames its port takes.
pub struct Keep {
    pub frame: Option<BenchFrame>,
    pub port: u16,
    pub spare: Vec<BenchFrame>,
    pub sent: u64,
    pub sent_bytes: u64,
}

impl TxSink<BenchFrame> for Keep {
    fn send(&mut self, port: u16, frame: BenchFrame) {
        self.sent += 1;
        self.sent_bytes += frame.data().len() as u64;
        if let Some(previous) = self.frame.replace(frame) {
            // Within capacity (BURST): no allocation once the burst buffers exist.
            self.spare.push(previous);
        }
        self.port = port;
    }
    /// Never asked: the benchmark's ports have no kernel interface.
    fn send_to_kernel(&mut self, port: u16, frame: BenchFrame) {
        self.send(port, frame)
    }
}

/// What differs between packets of one stream: addresses, ports and both checksums.
#[derive(Clone, Copy)]
pub struct Packet {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub ip_checksum: [u8; 2],
    pub tcp_checksum: [u8; 2],
}

impl Packet {
    /// The packet with correct checksums for `template`: the frame built whole by the test
    /// kit's builders (here, in the preparation, not per packet), its checksums kept.
    pub fn new(template: &Template, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Packet {
        let f = template.frame(src, sport, dst, dport);
        let ip = Ipv4Packet::new_checked(&f[ETH_LEN..]).expect("the builder's IPv4 header");
        let tcp = TcpPacket::new_checked(ip.payload()).expect("the builder's TCP header");
        Packet {
            src: src.octets(),
            dst: dst.octets(),
            sport: sport.to_be_bytes(),
            dport: dport.to_be_bytes(),
            ip_checksum: ip.checksum().to_be_bytes(),
            tcp_checksum: tcp.checksum().to_be_bytes(),
        }
    }

    pub fn key(&self) -> ConnKey {
        ConnKey {
            src: Ipv4Addr::from(self.src),
            dst: Ipv4Addr::from(self.dst),
            sport: u16::from_be_bytes(self.sport),
            dport: u16::from_be_bytes(self.dport),
            proto: IpProtocol::TCP,
        }
    }
}

/// The bytes common to a stream's frames (tuple zero; `load` writes the tuple and checksums),
/// and its receiving port.
pub struct Template {
    pub bytes: [u8; FRAME_LEN],
    pub rx_port: u16,
    eth: EthRepr,
    flags: TcpFlags,
}

impl Template {
    pub fn new(rx_port: u16, dst_mac: MacAddr, src_mac: MacAddr, flags: u8) -> Template {
        let mut template = Template {
            bytes: [0; FRAME_LEN],
            rx_port,
            eth: EthRepr { dst: dst_mac, src: src_mac },
            flags: TcpFlags::from_bits_retain(flags),
        };
        let zero = Ipv4Addr::UNSPECIFIED;
        let f = template.frame(zero, 0, zero, 0);
        template.bytes[..f.len()].copy_from_slice(&f); // The rest: Ethernet padding, zero.
        template
    }

    /// This stream's frame for one tuple, from the test kit's builders: IPv4 with DF, TTL 64,
    /// ident 0x1234; TCP without options, sequence 1000, acknowledgement 5000 with ACK.
    fn frame(&self, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let tcp = TcpRepr::new(sport, dport, self.flags);
        let f = self.eth.frame_v4(&Ipv4Repr::new(src, dst), &L4Repr::Tcp(tcp));
        assert!(f.len() <= FRAME_LEN);
        f
    }

    pub fn from_client(flags: u8) -> Template {
        Template::new(0, OUR_MAC0, ROUTER_MAC, flags)
    }

    /// The source MAC is backend 1's for every backend: the pipeline does not look at it.
    pub fn from_backend(flags: u8) -> Template {
        Template::new(1, OUR_MAC1, backend_mac(1), flags)
    }

    /// Writes the frame of `p` into `frame`: the benchmark's per-packet preparation. It patches
    /// the template by offsets rather than calling the builders on purpose: this runs for every
    /// packet measured and must neither allocate nor cost more than a copy.
    #[inline]
    pub fn load(&self, p: &Packet, frame: &mut BenchFrame) {
        frame.start = HEADROOM;
        frame.len = FRAME_LEN;
        frame.port = self.rx_port;
        let f = &mut frame.buf[HEADROOM..HEADROOM + FRAME_LEN];
        f.copy_from_slice(&self.bytes);
        f[24..26].copy_from_slice(&p.ip_checksum);
        f[26..30].copy_from_slice(&p.src);
        f[30..34].copy_from_slice(&p.dst);
        f[34..36].copy_from_slice(&p.sport);
        f[36..38].copy_from_slice(&p.dport);
        f[50..52].copy_from_slice(&p.tcp_checksum);
    }
}

/// Packets of one direction, visited in order and round again.
pub struct Stream {
    pub template: Template,
    pub packets: Vec<Packet>,
    /// The port every packet must leave by.
    pub tx_port: u16,
}

/// splitmix64: a fixed seed, so every run visits the same order.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = ((u128::from(self.next_u64()) * (i as u128 + 1)) >> 64) as usize;
            v.swap(i, j);
        }
    }
}

/// The i-th client tuple of the pre-opened connections (203.0.113.1..=200).
pub fn client(i: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(203, 0, 113, 1 + (i % 200) as u8), 1024 + (i / 200) as u16)
}

/// The j-th tuple of the new-connection cases (203.0.113.201..=250): never pre-opened.
pub fn fresh_client(j: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(203, 0, 113, 201 + (j % 50) as u8), 1024 + (j / 50) as u16)
}

/// SYNs from all [`FRESH_TUPLES`] never-opened tuples, in a random order: the new-connection
/// cases' packets.
pub fn fresh_syns(rng: &mut Rng) -> Vec<Packet> {
    let syn = Template::from_client(SYN);
    let mut fresh: Vec<Packet> = (0..FRESH_TUPLES)
        .map(|j| {
            let (addr, port) = fresh_client(j);
            Packet::new(&syn, addr, port, VIP, VPORT)
        })
        .collect();
    rng.shuffle(&mut fresh);
    fresh
}

pub fn services(mode: FwdMode) -> Arc<Services> {
    let backends: Vec<Backend> = (1..=BACKENDS)
        .map(|k| Backend {
            addr: Ipv4Addr::new(198, 51, 100, 10 + k),
            port: VPORT,
            weight: 1,
            state: BackendState::Active,
            slot: u16::from(k),
            gen: 100 + u32::from(k),
        })
        .collect();
    let laddrs = match mode {
        FwdMode::FullNat => (0..LADDRS)
            .map(|k| Laddr { addr: Ipv4Addr::new(198, 51, 100, 200 + k), slot: u16::from(k), gen: 1 })
            .collect(),
        FwdMode::Nat | FwdMode::Dr | FwdMode::Tun | FwdMode::Nat64 => vec![],
    };
    let tunnel = Tunnel::default();
    let mut slots = vec![BackendSlot::default(); usize::from(BACKENDS) + 1];
    for b in &backends {
        slots[usize::from(b.slot)] = BackendSlot { gen: b.gen, live: true, reset: false, tunnel };
    }
    let service = Service {
        slot: 0,
        gen: 1,
        vip: VIP,
        port: VPORT,
        proto: IpProtocol::TCP,
        sched: SchedKind::Rr,
        mode,
        tunnel,
        persistence_ms: 0,
        reset_on_removal: false,
        reset_when_all_down: false,
        pickup: false,
        syn_proxy: dataplane::service::SynProxy::Off,
        client_address: Default::default(),
        candidates: backends.iter().map(|b| Candidate { weight: b.weight, schedulable: true }).collect(),
        backends,
        table: None,
        laddrs,
    };
    Arc::new(Services::new(vec![service], slots, Default::default()))
}

/// dp0 = 192.0.2.1/24 (clients, 203.0.113.0/24 via 192.0.2.2); dp1 = 198.51.100.1/24
/// (backends).
pub fn snapshot(mode: FwdMode) -> Snapshot {
    let port = |name: &str, mac| PortL3 { name: name.into(), mac, mtu: 1500, kernel: None };
    let addr = |port, prefix: &str| LocalAddr { port, prefix: prefix.parse().unwrap() };
    Snapshot::build(
        vec![(0, port("dp0", OUR_MAC0)), (1, port("dp1", OUR_MAC1))],
        vec![addr(0, "192.0.2.1/24"), addr(1, "198.51.100.1/24")],
        vec![Route {
            prefix: "203.0.113.0/24".parse().unwrap(),
            via: Some("192.0.2.2".parse().unwrap()),
            port: 0,
            origin: RouteOrigin::Static,
        }],
    )
    .with_services(services(mode))
}

/// One core's pipeline with a service in one mode and its connections.
pub struct Rig {
    pub ctx: CoreCtx<BenchFrame>,
    pub snap: Snapshot,
    pub sink: Keep,
    /// The frames of the burst being pushed (`push_burst`), empty in between.
    burst: Vec<BenchFrame>,
}

impl Rig {
    pub fn new(mode: FwdMode, conns: usize) -> Rig {
        let limits = LbLimits { conn_capacity: (2 * conns).next_power_of_two() as u32, ..LbLimits::default() };
        assert!(limits.conn_capacity as usize >= conns + NEW_CONN_CHUNK.min(conns));
        let neigh = NeighParams { capacity: 64, ..NeighParams::default() };
        let mut ctx = CoreCtx::new(0, Arc::new(CoreCounters::default()), neigh, LbCore::standalone(limits));
        let snap = snapshot(mode);
        ctx.snapshot_changed(&snap);
        let mut sink = Keep {
            frame: Some(BenchFrame::new()),
            port: u16::MAX,
            spare: Vec::with_capacity(BURST),
            sent: 0,
            sent_bytes: 0,
        };
        let router = NeighLearned { port: 0, ip: "192.0.2.2".parse().unwrap(), mac: ROUTER_MAC };
        ctx.learn_remote(&snap, NOW_MS, router, &mut sink);
        for k in 1..=BACKENDS {
            let ip = Ipv4Addr::new(198, 51, 100, 10 + k).into();
            ctx.learn_remote(&snap, NOW_MS, NeighLearned { port: 1, ip, mac: backend_mac(k) }, &mut sink);
        }
        Rig { ctx, snap, sink, burst: Vec::with_capacity(BURST) }
    }

    /// One packet through the pipeline, in the frame buffer the last one left in.
    #[inline]
    pub fn push(&mut self, template: &Template, p: &Packet) {
        let mut frame = self.sink.frame.take().unwrap_or_default();
        template.load(p, &mut frame);
        self.ctx.process_frame(&self.snap, NOW_MS, frame, &mut NoPool, &mut self.sink);
    }

    /// Up to `BURST` packets through the pipeline as one burst (`process_burst`, as a worker
    /// hands it an rx burst), in the frame buffers earlier packets left in.
    #[inline]
    pub fn push_burst(&mut self, template: &Template, packets: &[Packet]) {
        assert!(packets.len() <= BURST, "a burst is at most {BURST} packets");
        self.load_burst(template, packets);
        self.ctx.process_burst(&self.snap, NOW_MS, self.burst.drain(..), &mut NoPool, &mut self.sink);
    }

    /// Everything `push_burst` does but `process_burst`: the frames go straight back to the
    /// sink (the burst cases' `copy_only`).
    #[inline]
    pub fn push_burst_copy_only(&mut self, template: &Template, packets: &[Packet]) {
        assert!(packets.len() <= BURST, "a burst is at most {BURST} packets");
        self.load_burst(template, packets);
        for frame in self.burst.drain(..) {
            self.sink.send(u16::MAX, std::hint::black_box(frame));
        }
    }

    /// The packets into `burst`, in the frame buffers the sink holds.
    #[inline]
    fn load_burst(&mut self, template: &Template, packets: &[Packet]) {
        for p in packets {
            let mut frame = self.sink.spare.pop().or_else(|| self.sink.frame.take()).unwrap_or_default();
            template.load(p, &mut frame);
            self.burst.push(frame);
        }
    }

    /// `push`, checking (setup only) that the packet went out by `tx_port`.
    pub fn push_checked(&mut self, template: &Template, p: &Packet, tx_port: u16) {
        self.sink.port = u16::MAX;
        self.push(template, p);
        assert_eq!(self.sink.port, tx_port, "packet not forwarded");
    }

    pub fn conn(&self, key: &ConnKey) -> Conn {
        let (id, _) = self.ctx.lb.conns.lookup(key).expect("connection tracked");
        self.ctx.lb.conns.get(id)
    }

    /// Every frame received so far was sent once; none dropped or held.
    /// Turns the service's SYN proxy on (`syn_proxy: on`), as a new snapshot would.
    pub fn proxy_syns(&mut self, mode: FwdMode) {
        let mut services = (*services(mode)).clone();
        services.list[0].syn_proxy = dataplane::service::SynProxy::On;
        self.snap = self.snap.clone().with_services(Arc::new(services));
        self.ctx.snapshot_changed(&self.snap);
    }

    pub fn assert_all_forwarded(&self) {
        let c = &self.ctx.counters;
        assert_eq!(c.drops_total(), 0, "frames dropped");
        assert_eq!(self.sink.sent, c.event(Event::RxPackets).get(), "frames not sent");
    }
}

/// Opens `n` connections (full handshake) and returns the client's and the backend's ACK
/// streams, each in a random order.
pub fn open_connections(rig: &mut Rig, mode: FwdMode, n: usize, rng: &mut Rng) -> (Stream, Stream) {
    let syn = Template::from_client(SYN);
    let client_ack = Template::from_client(ACK);
    let backend_syn_ack = Template::from_backend(SYN_ACK);
    let backend_ack = Template::from_backend(ACK);
    let two_way = !mode.is_one_way();
    let mut originals = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(if two_way { n } else { 0 });
    for i in 0..n {
        let (addr, port) = client(i);
        let first = Packet::new(&syn, addr, port, VIP, VPORT);
        rig.push_checked(&syn, &first, 1);
        if two_way {
            let c = rig.conn(&first.key());
            let syn_ack = Packet::new(&backend_syn_ack, c.backend, c.bport, c.laddr, c.lport);
            rig.push_checked(&backend_syn_ack, &syn_ack, 0);
            replies.push(Packet::new(&backend_ack, c.backend, c.bport, c.laddr, c.lport));
        }
        let ack = Packet::new(&client_ack, addr, port, VIP, VPORT);
        rig.push_checked(&client_ack, &ack, 1);
        originals.push(ack);
    }
    assert_eq!(rig.ctx.lb.conns.len(), n);
    assert_eq!(rig.conn(&originals[n / 2].key()).state, TcpState::Established);
    rng.shuffle(&mut originals);
    rng.shuffle(&mut replies);
    (
        Stream { template: client_ack, packets: originals, tx_port: 1 },
        Stream { template: backend_ack, packets: replies, tx_port: 0 },
    )
}
