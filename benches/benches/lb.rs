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
//!   connection table (128 MB at capacity 2M) is read as traffic spread over 1M flows reads it: from
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
//! - `*_burst` cases push the same packets 32 at a time through `CoreCtx::process_burst`, as a
//!   worker hands it an rx burst: the burst's connection-table lookups are prefetched together
//!   (see `process_burst`). They report ns per packet (a burst's time divided by 32) and have
//!   their own `copy_only_burst` baseline (32 frames prepared and handed back). A stream whose
//!   length is not a multiple of 32 skips its last few packets.
//! - After each case every received frame must have been sent exactly once, none dropped.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dataplane::pipeline::BURST;
use dataplane::service::FwdMode;
use ferrovs_benches::lb_rig::*;

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
            let mut frame = rig.sink.frame.take().unwrap_or_default();
            stream.template.load(&packets[next], &mut frame);
            rig.sink.frame = Some(black_box(frame));
            next += 1;
            if next == packets.len() {
                next = 0;
            }
        })
    });
}

/// ns per packet of `packets` handed to `push` `BURST` at a time, in order and round again.
fn bench_bursts(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    packets: &[Packet],
    mut push: impl FnMut(&[Packet]),
) {
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                if next + BURST > packets.len() {
                    next = 0;
                }
                push(&packets[next..next + BURST]);
                next += BURST;
            }
            start.elapsed() / BURST as u32
        })
    });
}

/// ns per packet of `stream` pushed `BURST` packets at a time.
fn bench_stream_burst(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig, stream: &Stream) {
    rig.push_checked(&stream.template, &stream.packets[0], stream.tx_port);
    bench_bursts(group, name, &stream.packets, |chunk| rig.push_burst(&stream.template, chunk));
    rig.assert_all_forwarded();
}

/// The preparation alone of `bench_stream_burst`.
fn bench_copy_only_burst(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rig: &mut Rig, stream: &Stream) {
    let (sent, sent_bytes) = (rig.sink.sent, rig.sink.sent_bytes);
    bench_bursts(group, name, &stream.packets, |chunk| rig.push_burst_copy_only(&stream.template, chunk));
    // Its frames went through the sink without being received: not counted as sent, or the
    // next case's `assert_all_forwarded` sees more sent than received.
    (rig.sink.sent, rig.sink.sent_bytes) = (sent, sent_bytes);
}

/// ns per SYN opening a new connection; see the module documentation for the chunks.
fn bench_new_conns(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rig: &mut Rig,
    conns: usize,
    rng: &mut Rng,
    burst: bool,
) {
    let syn = Template::from_client(SYN);
    let fresh = fresh_syns(rng);
    let chunk = NEW_CONN_CHUNK.min(conns);
    let mut cursor = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            // Burst cases time bursts: `iters` of them, `BURST` SYNs each.
            let per_iter = if burst { BURST } else { 1 };
            let mut timed = Duration::ZERO;
            let mut left = iters as usize * per_iter;
            while left > 0 {
                let count = left.min(chunk - chunk % per_iter);
                // FRESH_TUPLES is a multiple of BURST: a burst never wraps around.
                let start = Instant::now();
                if burst {
                    for k in (0..count).step_by(BURST) {
                        let at = (cursor + k) & (FRESH_TUPLES - 1);
                        rig.push_burst(&syn, &fresh[at..at + BURST]);
                    }
                } else {
                    for k in 0..count {
                        rig.push(&syn, &fresh[(cursor + k) & (FRESH_TUPLES - 1)]);
                    }
                }
                timed += start.elapsed();
                for k in 0..count {
                    let key = fresh[(cursor + k) & (FRESH_TUPLES - 1)].key();
                    let (id, _) = rig.ctx.lb.conns.lookup(&key).expect("new connection tracked");
                    let conn = rig.ctx.lb.conns.remove(id);
                    rig.ctx.lb.release(&conn, NOW_MS);
                }
                cursor = (cursor + count) & (FRESH_TUPLES - 1);
                left -= count;
            }
            timed / per_iter as u32
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
                bench_copy_only_burst(&mut group, &format!("copy_only_burst/{size}"), &mut rig, &originals);
            }
            bench_stream(&mut group, &format!("{mode_name}/established/{size}"), &mut rig, &originals);
            bench_stream_burst(&mut group, &format!("{mode_name}/established_burst/{size}"), &mut rig, &originals);
            if mode == FwdMode::Nat && conns > HOT_TUPLES {
                let hot = Stream {
                    template: Template::from_client(ACK),
                    packets: originals.packets[..HOT_TUPLES].to_vec(),
                    tx_port: 1,
                };
                bench_stream(&mut group, &format!("{mode_name}/established_hot4096/{size}"), &mut rig, &hot);
                let name = format!("{mode_name}/established_hot4096_burst/{size}");
                bench_stream_burst(&mut group, &name, &mut rig, &hot);
            }
            if !replies.packets.is_empty() {
                bench_stream(&mut group, &format!("{mode_name}/reply/{size}"), &mut rig, &replies);
                bench_stream_burst(&mut group, &format!("{mode_name}/reply_burst/{size}"), &mut rig, &replies);
            }
            bench_new_conns(&mut group, &format!("{mode_name}/new_syn/{size}"), &mut rig, conns, &mut rng, false);
            bench_new_conns(&mut group, &format!("{mode_name}/new_syn_burst/{size}"), &mut rig, conns, &mut rng, true);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
