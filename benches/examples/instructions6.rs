//! Instructions per packet of the IPv6 load-balancing pipeline (NAT, FullNAT and NAT64), for
//! callgrind, as `instructions.rs` measures IPv4: the rig of `benches/benches/lb6.rs`, one mode
//! and table size per run, K packets per case, one `#[inline(never)]` `measure_*` call per
//! case in the order printed. `benches/instructions.sh` runs it for `nat6`, `fullnat6` and
//! `nat64` (whose replies are IPv4 frames, 20 bytes shorter).
//!
//!     cargo run --release -p ferrovs-benches --example instructions6 -- nat6 1k [K]
//!
//! Cases: `copy_only` (the 74-byte frame copy alone), `established`, `reply`, `new_syn` (at
//! most N SYNs of fresh tuples).

use std::hint::black_box;

use dataplane::service::FwdMode;
use ferrovs_benches::lb6_rig::*;
use ferrovs_benches::lb_rig::{BenchFrame, Rng, HEADROOM};

#[inline(never)]
fn measure_packets(rig: &mut Rig6, frames: &[Vec<u8>], rx: u16, k: usize) {
    let mut next = 0;
    for _ in 0..k {
        rig.push(&frames[next], rx);
        next += 1;
        if next == frames.len() {
            next = 0;
        }
    }
}

#[inline(never)]
fn measure_copy_only(rig: &mut Rig6, frames: &[Vec<u8>], k: usize) {
    let mut next = 0;
    for _ in 0..k {
        let mut f: BenchFrame = rig.sink.frame.take().unwrap_or_default();
        let bytes = &frames[next];
        let buf: &mut ferrovs_benches::lb_rig::FrameBuf = &mut f;
        buf.start = HEADROOM;
        buf.len = bytes.len();
        buf.buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        rig.sink.frame = Some(black_box(f));
        next += 1;
        if next == frames.len() {
            next = 0;
        }
    }
}

#[inline(never)]
fn measure_new_syns(rig: &mut Rig6, syns: &[Vec<u8>]) {
    for s in syns {
        rig.push(s, 0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: instructions6 nat6|fullnat6|nat64 CONNS [K]   (CONNS like 1000 or 1k)");
        std::process::exit(2)
    };
    let mode = match args.first().map(String::as_str) {
        Some("nat6") => FwdMode::Nat,
        Some("fullnat6") => FwdMode::FullNat,
        Some("nat64") => FwdMode::Nat64,
        _ => usage(),
    };
    let size = |s: &str| match s.strip_suffix(['k', 'K']) {
        Some(d) => d.parse::<usize>().ok().map(|n| n * 1000),
        None => s.parse().ok(),
    };
    let conns = args.get(1).and_then(|s| size(s)).filter(|&n| n > 0).unwrap_or_else(|| usage());
    let k = args.get(2).map_or(Some(10_000), |s| size(s)).filter(|&n| n > 0).unwrap_or_else(|| usage());

    let mut rng = Rng(0x5eed);
    let mut rig = Rig6::new(mode, conns);
    let (originals, replies) = open6(&mut rig, conns, &mut rng);
    rig.push_checked(&originals[0], 0, 1);
    rig.push_checked(&replies[0], 1, 0);

    println!("case copy_only {k}");
    measure_copy_only(&mut rig, &originals, k);
    println!("case established {k}");
    measure_packets(&mut rig, &originals, 0, k);
    rig.assert_all_forwarded();
    println!("case reply {k}");
    measure_packets(&mut rig, &replies, 1, k);
    rig.assert_all_forwarded();
    let fresh = fresh_syns6(k.min(conns));
    println!("case new_syn {}", fresh.len());
    measure_new_syns(&mut rig, &fresh);
    assert_eq!(rig.ctx.lb.conns6.len(), conns + fresh.len(), "every SYN opened a connection");
    rig.assert_all_forwarded();
}
