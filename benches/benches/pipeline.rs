//! ns per frame through `CoreCtx::process_frame` with plain buffers (no NIC, no mbufs):
//! an ICMP echo request answered to a known neighbour, an ARP request answered, and a frame
//! dropped as not for us. Also the route lookup and the checksum over a 1500-byte packet.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::counters::{CoreCounters, DropReason};
use dataplane::l3::{NeighParams, Route, RouteOrigin};
use dataplane::net::MacAddr;
use dataplane::pipeline::{CoreCtx, Frame, FramePool, TxSink};
use dataplane::snapshot::{LocalAddr, PortL3, Snapshot};
use dataplane::testkit::packet::{ArpRepr, EthRepr, Icmpv4Repr, Ipv4Repr, L4Repr};
use dataplane::wire::{checksum, ArpOperation};

const OUR_MAC: MacAddr = MacAddr([2, 0xfe, 0, 0, 0, 1]);
const PEER_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 2]);

/// A fixed buffer, reused for every iteration: the benchmark measures the pipeline, not
/// an allocator (so not the test kit's `TestFrame`/`Sent`, which hold a `Vec` per frame).
struct BenchFrame {
    buf: [u8; 128],
    len: usize,
}

impl Frame for BenchFrame {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
    fn rx_port(&self) -> u16 {
        0
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        if self.len + n > self.buf.len() {
            return false;
        }
        self.buf.copy_within(..self.len, n);
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

/// Keeps the last frame sent so the next iteration can reuse its buffer.
struct Keep(Option<BenchFrame>);
impl TxSink<BenchFrame> for Keep {
    fn send(&mut self, _port: u16, frame: BenchFrame) {
        self.0 = Some(frame);
    }
    /// Never asked: the benchmark's ports have no kernel interface.
    fn send_to_kernel(&mut self, port: u16, frame: BenchFrame) {
        self.send(port, frame)
    }
}

fn snapshot() -> Snapshot {
    Snapshot::build(
        vec![(0, PortL3 { name: "dp0".into(), mac: OUR_MAC, mtu: 1500, kernel: None })],
        vec![LocalAddr { port: 0, prefix: "192.0.2.1/24".parse().unwrap() }],
        (0..64u8)
            .map(|i| Route {
                prefix: format!("198.51.{i}.0/24").parse().unwrap(),
                via: Some("192.0.2.254".parse().unwrap()),
                port: 0,
                origin: RouteOrigin::Static,
            })
            .collect(),
    )
}

/// The bench's frame holding `bytes` (from the test kit's builders).
fn bench_frame(bytes: &[u8]) -> BenchFrame {
    let mut frame = BenchFrame { buf: [0; 128], len: bytes.len() };
    frame.buf[..bytes.len()].copy_from_slice(bytes);
    frame
}

fn echo_request_to(dst: Ipv4Addr) -> BenchFrame {
    let data: Vec<u8> = (0..56).collect();
    let ip = Ipv4Repr { ident: 0, ..Ipv4Repr::new(Ipv4Addr::new(192, 0, 2, 2), dst) };
    let echo = Icmpv4Repr::EchoRequest { ident: 0x1234, seq: 1, data: &data };
    bench_frame(&EthRepr { dst: OUR_MAC, src: PEER_MAC }.frame_v4(&ip, &L4Repr::Icmpv4(echo)))
}

fn echo_request() -> BenchFrame {
    echo_request_to(Ipv4Addr::new(192, 0, 2, 1))
}

fn arp_request() -> BenchFrame {
    let arp = ArpRepr {
        op: ArpOperation::REQUEST,
        sender_mac: PEER_MAC,
        sender_ip: Ipv4Addr::new(192, 0, 2, 2),
        target_mac: MacAddr::ZERO,
        target_ip: Ipv4Addr::new(192, 0, 2, 1),
    };
    let mut frame = bench_frame(&EthRepr { dst: MacAddr::BROADCAST, src: PEER_MAC }.frame_arp(&arp));
    frame.len = 60; // Ethernet padding.
    frame
}

/// To an address on our network that is not ours (the IPv4 checksum is right for it).
fn not_for_us() -> BenchFrame {
    echo_request_to(Ipv4Addr::new(192, 0, 2, 99))
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let mut ctx: CoreCtx<BenchFrame> = CoreCtx::new(
        0,
        Arc::new(CoreCounters::default()),
        NeighParams { capacity: 1024, ..Default::default() },
        dataplane::lb::LbCore::standalone(dataplane::service::LbLimits::default()),
    );
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));

    // Learn the peer first so echo replies go straight out.
    let mut keep = Keep(None);
    ctx.process_frame(&snap, 0, arp_request(), &mut NoPool, &mut keep);
    // The drop case times what its name says (its frame once had a stale IPv4 checksum and
    // timed the checksum drop instead).
    ctx.process_frame(&snap, 0, not_for_us(), &mut NoPool, &mut keep);
    assert_eq!(ctx.counters.drop_reason(DropReason::IpNotForUs).get(), 1, "dropped as not for us");
    for (name, template) in
        [("icmp_echo_reply", echo_request()), ("arp_reply", arp_request()), ("drop_ip_not_for_us", not_for_us())]
    {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || BenchFrame { buf: template.buf, len: template.len },
                |f| {
                    let frame = std::mem::replace(f, BenchFrame { buf: [0; 128], len: 0 });
                    ctx.process_frame(&snap, 1, frame, &mut NoPool, &mut keep);
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let dst = "198.51.40.7".parse().unwrap();
    c.bench_function("route_lookup_65_routes", |b| b.iter(|| black_box(snap.routes.lookup(black_box(dst)))));
    let packet = [0x5au8; 1500];
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("1500_bytes", |b| b.iter(|| black_box(checksum::checksum(black_box(&packet)))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
