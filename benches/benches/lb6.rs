//! ns per packet of the IPv6 load-balancing pipeline alone (no NIC, no I/O): one TCP service on
//! [2001:db8:1::100]:80 with 8 backends (round robin) in NAT, FullNAT (16 IPv6 local
//! addresses) and NAT64 (8 IPv4 backends, 16 IPv4 local addresses), with 1k and 64k
//! connections tracked in the IPv6 table; the rig is `benches/src/lb6_rig.rs`.
//!
//! Cases, as `lb.rs`'s: `copy_only` (the per-packet frame copy alone, to subtract);
//! `established` (a client's ACK of one of the N connections, visited in a random order);
//! `reply` (the backend's ACK back); `new_syn` (a SYN from a tuple not in the table: scheduled,
//! inserted, forwarded; in chunks of at most N, after each of which, untimed, its connections
//! are removed again). Every frame is 74 bytes (Ethernet + IPv6 + TCP; NAT64's replies are
//! IPv4, 54 bytes) copied into one reused buffer. After each case every frame received was sent once.
//!
//!     cargo bench -p ferrovs-benches --bench lb6 -- --warm-up-time 1 --measurement-time 2

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dataplane::conn::ConnKey6;
use dataplane::service::FwdMode;
use dataplane::wire::IpProtocol;
use ferrovs_benches::lb6_rig::*;
use ferrovs_benches::lb_rig::{BenchFrame, Rng, HEADROOM, NOW_MS};

fn bench_frames(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rig: &mut Rig6,
    frames: &[Vec<u8>],
    rx: u16,
    tx: u16,
) {
    rig.push_checked(&frames[0], rx, tx);
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            rig.push(&frames[next], rx);
            next += 1;
            if next == frames.len() {
                next = 0;
            }
        })
    });
    rig.assert_all_forwarded();
}

fn bench_copy_only(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, frames: &[Vec<u8>]) {
    let mut frame = Some(BenchFrame::new());
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut f = frame.take().unwrap_or_default();
            let bytes = &frames[next];
            let buf: &mut ferrovs_benches::lb_rig::FrameBuf = &mut f;
            buf.start = HEADROOM;
            buf.len = bytes.len();
            buf.buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
            frame = Some(black_box(f));
            next += 1;
            if next == frames.len() {
                next = 0;
            }
        })
    });
}

fn bench_new_conns(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig6, conns: usize) {
    let fresh = fresh_syns6(1 << 16);
    let chunk = conns.min(fresh.len());
    let mut cursor = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let count = left.min(chunk);
                let start = Instant::now();
                for k in 0..count {
                    rig.push(&fresh[(cursor + k) % fresh.len()], 0);
                }
                timed += start.elapsed();
                for k in 0..count {
                    let f = &fresh[(cursor + k) % fresh.len()];
                    let addr = |at: usize| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
                    let key = ConnKey6 {
                        src: addr(14 + 8),
                        dst: addr(14 + 24),
                        sport: u16::from_be_bytes([f[54], f[55]]),
                        dport: 80,
                        proto: IpProtocol::TCP,
                    };
                    let (id, _) = rig.ctx.lb.conns6.lookup(&key).expect("new connection tracked");
                    let conn = rig.ctx.lb.conns6.remove(id);
                    rig.ctx.lb.release6(&conn, NOW_MS);
                }
                cursor = (cursor + count) % fresh.len();
                left -= count;
            }
            timed
        })
    });
    assert_eq!(rig.ctx.lb.conns6.len(), conns);
    rig.assert_all_forwarded();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("lb6");
    group.throughput(Throughput::Elements(1));
    let mut rng = Rng(0x5eed);
    for (conns, size) in [(1_000, "1k"), (64_000, "64k")] {
        for (mode, mode_name) in [(FwdMode::Nat, "nat6"), (FwdMode::FullNat, "fullnat6"), (FwdMode::Nat64, "nat64")] {
            let mut rig = Rig6::new(mode, conns);
            let (originals, replies) = open6(&mut rig, conns, &mut rng);
            if mode == FwdMode::Nat {
                bench_copy_only(&mut group, &format!("copy_only/{size}"), &originals);
            }
            bench_frames(&mut group, &format!("{mode_name}/established/{size}"), &mut rig, &originals, 0, 1);
            bench_frames(&mut group, &format!("{mode_name}/reply/{size}"), &mut rig, &replies, 1, 0);
            bench_new_conns(&mut group, &format!("{mode_name}/new_syn/{size}"), &mut rig, conns);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
