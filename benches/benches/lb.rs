//! ns per packet of the load-balancing pipeline alone (no NIC, no mbufs, no I/O): one TCP
//! service on 192.0.2.100:80 with 8 backends (198.51.100.11..=18:80, round robin) in each
//! forwarding mode (NAT, FullNAT, DR, TUN/IPIP), with 1k and with 1M connections tracked.
//!
//! How:
//! - Setup (not timed) opens the N connections through the pipeline itself: a SYN, the
//!   backend's SYN-ACK (NAT and FullNAT) and the client's ACK, from N distinct clients
//!   (203.0.113.1..=200, routed via 192.0.2.2, times source ports from 1024). Every connection
//!   is ESTABLISHED when timing starts. Neighbours are known; time is a fixed `NOW_MS`, so
//!   nothing expires or goes stale during a run. FullNAT uses 16 local addresses
//!   (198.51.100.200..=215, the full port range): one address has 64,512 ports, too few for
//!   1M connections.
//! - `established`: a 60-byte frame (64 B on the wire) carrying a TCP ACK of one of the N
//!   connections, client -> VIP. `reply` (NAT, FullNAT): the backend's ACK back to the client.
//!   The packets visit all N connections in a random order fixed at setup, so at 1M the
//!   connection table (about 150 MB) is read as traffic spread over 1M flows reads it: from
//!   memory, not cache. `established_hot4096` (NAT, 1M) cycles through 4,096 of them only:
//!   their table lines stay in cache, which shows how much of the 1M figure is memory latency.
//! - `new_syn`: a SYN from a tuple not in the table, into a table of N connections: the
//!   connection is scheduled, inserted and forwarded. Criterion runs many iterations, so the
//!   SYNs go in chunks of at most 16,384 (N for 1k); after each chunk, untimed, the
//!   connections it made are removed again, so the table holds between N and N + chunk
//!   connections. The fresh tuples rotate through 262,144 of them (203.0.113.201..=250) in
//!   random order, so a chunk does not find the index buckets the previous removal warmed.
//!   Slots freed by that removal are reused first (the slab's free list), which is kinder to
//!   the cache than a table whose free slots come from old, expired connections.
//! - Every packet is written into one reused frame buffer (with 128 bytes of headroom, like
//!   an mbuf, for TUN's outer header) from a 60-byte template of its direction plus the
//!   packet's addresses, ports and precomputed checksums (16 bytes per packet, read in
//!   sequence). That preparation is part of every number; `copy_only` measures it alone
//!   (everything but `process_frame`) so it can be subtracted.
//! - After each case every received frame must have been sent exactly once, none dropped.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dataplane::conn::{Conn, ConnKey, TcpState};
use dataplane::counters::{CoreCounters, Event};
use dataplane::l3::{NeighParams, Route, RouteOrigin};
use dataplane::lb::LbCore;
use dataplane::net::MacAddr;
use dataplane::pipeline::{CoreCtx, Frame, FramePool, NeighLearned, TxSink};
use dataplane::sched::{Candidate, SchedKind};
use dataplane::service::{Backend, BackendSlot, BackendState, FwdMode, Laddr, LbLimits, Service, Services, Tunnel};
use dataplane::snapshot::{LocalAddr, PortL3, Snapshot};
use dataplane::wire::checksum;

const NOW_MS: u64 = 1_000_000;
const OUR_MAC0: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x01]);
const OUR_MAC1: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x02]);
/// The client side's router (192.0.2.2), through which 203.0.113.0/24 is reached.
const ROUTER_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 0x02]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VPORT: u16 = 80;
const BACKENDS: u8 = 8;
const LADDRS: u8 = 16;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;

/// Ethernet + IPv4 + TCP without options, padded to Ethernet's 60-byte minimum.
const FRAME_LEN: usize = 60;
const HEADROOM: usize = 128;
const BUF_LEN: usize = 256;

/// SYNs timed between two removals, at most.
const NEW_CONN_CHUNK: usize = 16_384;
/// Tuples the new-connection cases rotate through (a power of two).
const FRESH_TUPLES: usize = 1 << 18;
const HOT_TUPLES: usize = 4096;

fn backend_mac(k: u8) -> MacAddr {
    MacAddr([0x02, 0xb0, 0, 0, 0, 0x10 + k])
}

/// One reused buffer with headroom in front, as an mbuf has.
struct BenchFrame {
    buf: Box<[u8; BUF_LEN]>,
    start: usize,
    len: usize,
    port: u16,
}

impl BenchFrame {
    fn new() -> BenchFrame {
        BenchFrame { buf: Box::new([0; BUF_LEN]), start: HEADROOM, len: 0, port: 0 }
    }
}

impl Frame for BenchFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
    fn rx_port(&self) -> u16 {
        self.port
    }
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > BUF_LEN {
            return false;
        }
        self.len = len;
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
}

struct NoPool;
impl FramePool<BenchFrame> for NoPool {
    fn alloc(&mut self) -> Option<BenchFrame> {
        None
    }
}

/// Keeps the frame sent so the next packet reuses its buffer.
struct Keep {
    frame: Option<BenchFrame>,
    port: u16,
}

impl TxSink<BenchFrame> for Keep {
    fn send(&mut self, port: u16, frame: BenchFrame) {
        self.frame = Some(frame);
        self.port = port;
    }
}

/// What differs between packets of one stream: addresses, ports and both checksums.
#[derive(Clone, Copy)]
struct Packet {
    src: [u8; 4],
    dst: [u8; 4],
    sport: [u8; 2],
    dport: [u8; 2],
    ip_checksum: [u8; 2],
    tcp_checksum: [u8; 2],
}

impl Packet {
    /// The packet with correct checksums for `template`.
    fn new(template: &Template, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Packet {
        let mut f = template.bytes;
        f[26..30].copy_from_slice(&src.octets());
        f[30..34].copy_from_slice(&dst.octets());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        let ip = checksum::checksum(&f[14..34]);
        let tcp = !checksum::fold(checksum::pseudo_header_v4(src, dst, 6, 20) + checksum::sum(&f[34..54]));
        Packet {
            src: src.octets(),
            dst: dst.octets(),
            sport: sport.to_be_bytes(),
            dport: dport.to_be_bytes(),
            ip_checksum: ip.to_be_bytes(),
            tcp_checksum: tcp.to_be_bytes(),
        }
    }

    fn key(&self) -> ConnKey {
        ConnKey {
            src: Ipv4Addr::from(self.src),
            dst: Ipv4Addr::from(self.dst),
            sport: u16::from_be_bytes(self.sport),
            dport: u16::from_be_bytes(self.dport),
            proto: 6,
        }
    }
}

/// The bytes common to a stream's frames (checksums and tuple zero), and its receiving port.
struct Template {
    bytes: [u8; FRAME_LEN],
    rx_port: u16,
}

impl Template {
    fn new(rx_port: u16, dst_mac: MacAddr, src_mac: MacAddr, flags: u8) -> Template {
        let mut b = [0u8; FRAME_LEN];
        b[0..6].copy_from_slice(&dst_mac.0);
        b[6..12].copy_from_slice(&src_mac.0);
        b[12..14].copy_from_slice(&[0x08, 0x00]);
        // IPv4: total length 40, DF, TTL 64, TCP.
        b[14..26].copy_from_slice(&[0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        let tcp = &mut b[34..54];
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        let ack = if flags & ACK != 0 { 5000u32 } else { 0 };
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        Template { bytes: b, rx_port }
    }

    fn from_client(flags: u8) -> Template {
        Template::new(0, OUR_MAC0, ROUTER_MAC, flags)
    }

    /// The source MAC is backend 1's for every backend: the pipeline does not look at it.
    fn from_backend(flags: u8) -> Template {
        Template::new(1, OUR_MAC1, backend_mac(1), flags)
    }

    /// Writes the frame of `p` into `frame`: the benchmark's per-packet preparation.
    #[inline]
    fn load(&self, p: &Packet, frame: &mut BenchFrame) {
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
struct Stream {
    template: Template,
    packets: Vec<Packet>,
    /// The port every packet must leave by.
    tx_port: u16,
}

/// splitmix64: a fixed seed, so every run visits the same order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = ((u128::from(self.next()) * (i as u128 + 1)) >> 64) as usize;
            v.swap(i, j);
        }
    }
}

/// The i-th client tuple of the pre-opened connections (203.0.113.1..=200).
fn client(i: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(203, 0, 113, 1 + (i % 200) as u8), 1024 + (i / 200) as u16)
}

/// The j-th tuple of the new-connection cases (203.0.113.201..=250): never pre-opened.
fn fresh_client(j: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(203, 0, 113, 201 + (j % 50) as u8), 1024 + (j / 50) as u16)
}

fn services(mode: FwdMode) -> Arc<Services> {
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
        FwdMode::FullNat => {
            (0..LADDRS).map(|k| Laddr { addr: Ipv4Addr::new(198, 51, 100, 200 + k), slot: u16::from(k), gen: 1 }).collect()
        }
        FwdMode::Nat | FwdMode::Dr | FwdMode::Tun => vec![],
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
        proto: 6,
        sched: SchedKind::Rr,
        mode,
        tunnel,
        persistence_ms: 0,
        reset_on_removal: false,
        candidates: backends.iter().map(|b| Candidate { weight: b.weight, schedulable: true }).collect(),
        backends,
        table: None,
        laddrs,
    };
    Arc::new(Services::new(vec![service], slots, Default::default()))
}

/// dp0 = 192.0.2.1/24 (clients, 203.0.113.0/24 via 192.0.2.2); dp1 = 198.51.100.1/24
/// (backends).
fn snapshot(mode: FwdMode) -> Snapshot {
    let port = |name: &str, mac| PortL3 { name: name.into(), mac, mtu: 1500 };
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
struct Rig {
    ctx: CoreCtx<BenchFrame>,
    snap: Snapshot,
    sink: Keep,
}

impl Rig {
    fn new(mode: FwdMode, conns: usize) -> Rig {
        let limits = LbLimits { conn_capacity: (2 * conns).next_power_of_two() as u32, ..LbLimits::default() };
        assert!(limits.conn_capacity as usize >= conns + NEW_CONN_CHUNK.min(conns));
        let neigh = NeighParams { capacity: 64, ..NeighParams::default() };
        let mut ctx = CoreCtx::new(0, Arc::new(CoreCounters::default()), neigh, LbCore::standalone(limits));
        let snap = snapshot(mode);
        ctx.snapshot_changed(&snap);
        let mut sink = Keep { frame: Some(BenchFrame::new()), port: u16::MAX };
        let router = NeighLearned { port: 0, ip: "192.0.2.2".parse().unwrap(), mac: ROUTER_MAC };
        ctx.learn_remote(&snap, NOW_MS, router, &mut sink);
        for k in 1..=BACKENDS {
            let ip = Ipv4Addr::new(198, 51, 100, 10 + k).into();
            ctx.learn_remote(&snap, NOW_MS, NeighLearned { port: 1, ip, mac: backend_mac(k) }, &mut sink);
        }
        Rig { ctx, snap, sink }
    }

    /// One packet through the pipeline, in the frame buffer the last one left in.
    #[inline]
    fn push(&mut self, template: &Template, p: &Packet) {
        let mut frame = self.sink.frame.take().unwrap_or_else(BenchFrame::new);
        template.load(p, &mut frame);
        self.ctx.process_frame(&self.snap, NOW_MS, frame, &mut NoPool, &mut self.sink);
    }

    /// `push`, checking (setup only) that the packet went out by `tx_port`.
    fn push_checked(&mut self, template: &Template, p: &Packet, tx_port: u16) {
        self.sink.port = u16::MAX;
        self.push(template, p);
        assert_eq!(self.sink.port, tx_port, "packet not forwarded");
    }

    fn conn(&self, key: &ConnKey) -> Conn {
        let (id, _) = self.ctx.lb.conns.lookup(key).expect("connection tracked");
        *self.ctx.lb.conns.get(id)
    }

    /// Every frame received so far was sent once; none dropped or held.
    fn assert_all_forwarded(&self) {
        let c = &self.ctx.counters;
        assert_eq!(c.drops_total(), 0, "frames dropped");
        assert_eq!(c.event(Event::TxPackets).get(), c.event(Event::RxPackets).get(), "frames not sent");
    }
}

/// Opens `n` connections (full handshake) and returns the client's and the backend's ACK
/// streams, each in a random order.
fn open_connections(rig: &mut Rig, mode: FwdMode, n: usize, rng: &mut Rng) -> (Stream, Stream) {
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

/// ns per packet of `stream`, visited in order and round again.
fn bench_stream(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig, stream: &Stream) {
    rig.push_checked(&stream.template, &stream.packets[0], stream.tx_port);
    let packets = &stream.packets;
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            rig.push(&stream.template, &packets[next]);
            next += 1;
            if next == packets.len() {
                next = 0;
            }
        })
    });
    rig.assert_all_forwarded();
}

/// The preparation alone: everything `bench_stream` does per packet but `process_frame`.
fn bench_copy_only(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig, stream: &Stream) {
    let packets = &stream.packets;
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut frame = rig.sink.frame.take().unwrap_or_else(BenchFrame::new);
            stream.template.load(&packets[next], &mut frame);
            rig.sink.frame = Some(black_box(frame));
            next += 1;
            if next == packets.len() {
                next = 0;
            }
        })
    });
}

/// ns per SYN opening a new connection; see the module documentation for the chunks.
fn bench_new_conns(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig, conns: usize, rng: &mut Rng) {
    let syn = Template::from_client(SYN);
    let mut fresh: Vec<Packet> = (0..FRESH_TUPLES)
        .map(|j| {
            let (addr, port) = fresh_client(j);
            Packet::new(&syn, addr, port, VIP, VPORT)
        })
        .collect();
    rng.shuffle(&mut fresh);
    let chunk = NEW_CONN_CHUNK.min(conns);
    let mut cursor = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let count = (left as usize).min(chunk);
                let start = Instant::now();
                for k in 0..count {
                    rig.push(&syn, &fresh[(cursor + k) & (FRESH_TUPLES - 1)]);
                }
                timed += start.elapsed();
                for k in 0..count {
                    let key = fresh[(cursor + k) & (FRESH_TUPLES - 1)].key();
                    let (id, _) = rig.ctx.lb.conns.lookup(&key).expect("new connection tracked");
                    let conn = rig.ctx.lb.conns.remove(id);
                    rig.ctx.lb.release(&conn, NOW_MS);
                }
                cursor = (cursor + count) & (FRESH_TUPLES - 1);
                left -= count as u64;
            }
            timed
        })
    });
    assert_eq!(rig.ctx.lb.conns.len(), conns);
    rig.assert_all_forwarded();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("lb");
    group.throughput(Throughput::Elements(1));
    let mut rng = Rng(0x5eed);
    for (conns, size) in [(1_000, "1k"), (1_000_000, "1M")] {
        for (mode, mode_name) in
            [(FwdMode::Nat, "nat"), (FwdMode::FullNat, "fullnat"), (FwdMode::Dr, "dr"), (FwdMode::Tun, "tun")]
        {
            let mut rig = Rig::new(mode, conns);
            let (originals, replies) = open_connections(&mut rig, mode, conns, &mut rng);
            if mode == FwdMode::Nat {
                bench_copy_only(&mut group, &format!("copy_only/{size}"), &mut rig, &originals);
            }
            bench_stream(&mut group, &format!("{mode_name}/established/{size}"), &mut rig, &originals);
            if mode == FwdMode::Nat && conns > HOT_TUPLES {
                let hot = Stream {
                    template: Template::from_client(ACK),
                    packets: originals.packets[..HOT_TUPLES].to_vec(),
                    tx_port: 1,
                };
                bench_stream(&mut group, &format!("{mode_name}/established_hot4096/{size}"), &mut rig, &hot);
            }
            if !replies.packets.is_empty() {
                bench_stream(&mut group, &format!("{mode_name}/reply/{size}"), &mut rig, &replies);
            }
            bench_new_conns(&mut group, &format!("{mode_name}/new_syn/{size}"), &mut rig, conns, &mut rng);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
