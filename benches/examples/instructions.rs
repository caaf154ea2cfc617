//! Instructions per packet of the load-balancing pipeline, for callgrind: a count that, unlike
//! ns per packet, does not move with the machine's noise. Same rig and cases as
//! `benches/benches/lb.rs` (its module documentation describes them): one mode, one table size
//! per run, each case K packets.
//!
//! How: setup (opening the N connections) runs outside any `measure_*` function; each case is
//! exactly one call of a `#[inline(never)]` `measure_*` function, in the order printed on
//! stdout. Under `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_*'
//! --dump-after='*measure_*'` the i-th dump holds the i-th case's instructions and nothing
//! else. `benches/instructions.sh` does that and prints the table. Run natively it just checks
//! that every case forwards its packets.
//!
//!     cargo run --release -p ferrovs-benches --example instructions -- nat 1k [K]
//!
//! Cases, in order: `copy_only` (the per-packet preparation alone, included in every other
//! case), `established`, `copy_only_burst` and `established_burst` (the same, 32 frames at a
//! time through `process_burst`, as a worker runs), `reply` (NAT and FullNAT), `new_syn` (at
//! most the table's headroom for new connections: 1,000 SYNs at 1k).

use std::hint::black_box;

use dataplane::pipeline::BURST;
use dataplane::service::FwdMode;
use ferrovs_benches::lb_rig::*;

/// `k` packets of `stream`, from its start and round again.
#[inline(never)]
fn measure_packets(rig: &mut Rig, stream: &Stream, k: usize) {
    let packets = &stream.packets;
    let mut next = 0;
    for _ in 0..k {
        rig.push(&stream.template, &packets[next]);
        next += 1;
        if next == packets.len() {
            next = 0;
        }
    }
}

/// Everything `measure_packets` does per packet but `process_frame` (as lb.rs's copy_only).
#[inline(never)]
fn measure_copy_only(rig: &mut Rig, stream: &Stream, k: usize) {
    let packets = &stream.packets;
    let mut next = 0;
    for _ in 0..k {
        let mut frame = rig.sink.frame.take().unwrap_or_default();
        stream.template.load(&packets[next], &mut frame);
        rig.sink.frame = Some(black_box(frame));
        next += 1;
        if next == packets.len() {
            next = 0;
        }
    }
}

/// `k` packets of `stream` (rounded down to whole bursts), `BURST` at a time through
/// `process_burst`, as a worker takes them.
#[inline(never)]
fn measure_bursts(rig: &mut Rig, stream: &Stream, k: usize) {
    let mut chunks = stream.packets.chunks_exact(BURST).cycle();
    for _ in 0..k / BURST {
        rig.push_burst(&stream.template, chunks.next().expect("a stream of at least one burst"));
    }
}

/// Everything `measure_bursts` does per packet but `process_burst`.
#[inline(never)]
fn measure_copy_only_bursts(rig: &mut Rig, stream: &Stream, k: usize) {
    let mut chunks = stream.packets.chunks_exact(BURST).cycle();
    for _ in 0..k / BURST {
        rig.push_burst_copy_only(&stream.template, chunks.next().expect("a stream of at least one burst"));
    }
}

/// One SYN per packet of `syns`, each opening a new connection.
#[inline(never)]
fn measure_new_syns(rig: &mut Rig, template: &Template, syns: &[Packet]) {
    for p in syns {
        rig.push(template, p);
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1_000),
        b'm' | b'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

fn usage() -> ! {
    eprintln!("usage: instructions nat|fullnat|dr|tun CONNS [K]   (CONNS like 1000, 1k, 1M; K packets per case)");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("nat") => FwdMode::Nat,
        Some("fullnat") => FwdMode::FullNat,
        Some("dr") => FwdMode::Dr,
        Some("tun") => FwdMode::Tun,
        _ => usage(),
    };
    let conns = args.get(1).and_then(|s| parse_size(s)).filter(|&n| n > 0).unwrap_or_else(|| usage());
    let k = args.get(2).map_or(Some(10_000), |s| parse_size(s)).filter(|&n| n > 0).unwrap_or_else(|| usage());

    let mut rng = Rng(0x5eed);
    let mut rig = Rig::new(mode, conns);
    let (originals, replies) = open_connections(&mut rig, mode, conns, &mut rng);
    // One packet each way first, as lb.rs does: nothing of the setup's last packet lingers.
    rig.push_checked(&originals.template, &originals.packets[0], originals.tx_port);
    if !replies.packets.is_empty() {
        rig.push_checked(&replies.template, &replies.packets[0], replies.tx_port);
    }

    println!("case copy_only {k}");
    measure_copy_only(&mut rig, &originals, k);

    println!("case established {k}");
    measure_packets(&mut rig, &originals, k);
    rig.assert_all_forwarded();

    let bursts = k / BURST * BURST;
    println!("case copy_only_burst {bursts}");
    // Its frames go through the sink without being received: not forwarded ones.
    let sent = rig.sink.sent;
    measure_copy_only_bursts(&mut rig, &originals, k);
    rig.sink.sent = sent;
    println!("case established_burst {bursts}");
    measure_bursts(&mut rig, &originals, k);
    rig.assert_all_forwarded();

    if !replies.packets.is_empty() {
        println!("case reply {k}");
        measure_packets(&mut rig, &replies, k);
        rig.assert_all_forwarded();
    }

    // Fresh tuples, shuffled as in lb.rs; no more than the table has room for beyond N.
    let syn = Template::from_client(SYN);
    let fresh = fresh_syns(&mut rng);
    let syns = &fresh[..k.min(NEW_CONN_CHUNK.min(conns))];
    println!("case new_syn {}", syns.len());
    measure_new_syns(&mut rig, &syn, syns);
    assert_eq!(rig.ctx.lb.conns.len(), conns + syns.len(), "every SYN opened a connection");
    rig.assert_all_forwarded();

    if matches!(mode, FwdMode::Nat | FwdMode::FullNat) {
        // The next fresh tuples to the same service with the SYN proxy on: each SYN (no
        // options, so an MSS-only cookie) answered with a SYN-ACK, nothing kept.
        rig.proxy_syns(mode);
        let more = &fresh[syns.len()..(2 * syns.len()).min(fresh.len())];
        println!("case synproxy_syn {}", more.len());
        measure_new_syns(&mut rig, &syn, more);
        assert_eq!(rig.ctx.lb.conns.len(), conns + syns.len(), "the proxy keeps nothing");
        rig.assert_all_forwarded();
    }
}
