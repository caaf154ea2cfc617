//! What the fuzz targets run, as plain functions: the targets in `dataplane/fuzz` call these,
//! and the regression test replays every saved crash input through them with `cargo test`.
//! Any panic is a bug.

use std::sync::Arc;

use super::frames::{ip4, l4, Pool, Sent, TestFrame, B1_MAC, B2_MAC, CLIENT_MAC, OUR_MAC, OUR_MAC1, SYN};
use super::services::{backend, service, snapshot, Spec, VIP};
use crate::conn::Timeouts;
use crate::counters::CoreCounters;
use crate::l3::NeighParams;
use crate::lb::LbCore;
use crate::pipeline::{CoreCtx, NeighLearned};
use crate::service::{BackendSlot, Encap, FwdMode, Laddr, LbLimits, Services, SnatRule, TooBig, Tunnel};
use crate::snapshot::Snapshot;
use crate::wire::IpProtocol;
use crate::wire::{self, checksum};

/// What a fuzz target runs on one input.
pub type FuzzBody = fn(&[u8]);

/// Fuzz targets by name, for the regression replay: `dataplane/fuzz/regressions/<name>/*`.
pub const TARGETS: &[(&str, FuzzBody)] = &[("parse_frame", parse_frame), ("process_burst", process_burst)];

/// Arbitrary bytes as an Ethernet frame: `summarize`, then every wire view (checked
/// constructors, every getter, every setter on a copy) at each layer.
pub fn parse_frame(data: &[u8]) {
    if let Ok(s) = wire::summarize(data) {
        // A summary only holds what the checked views accepted; re-derive it to be sure the
        // walk is deterministic.
        assert_eq!(wire::summarize(data), Ok(s));
    }
    std::hint::black_box(wire::exercise_views(data));
}

/// The services of the fuzzed snapshot, one per mode, all on VIP, by port: (port, protocol,
/// mode, tunnel).
const SERVICES: [(u16, u8, FwdMode, Tunnel); 7] = [
    (80, 6, FwdMode::Nat, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (81, 17, FwdMode::Nat, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (82, 6, FwdMode::FullNat, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (83, 17, FwdMode::FullNat, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (84, 6, FwdMode::Dr, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (85, 6, FwdMode::Tun, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp }),
    (86, 17, FwdMode::Tun, Tunnel { encap: Encap::Gue { port: 6080 }, too_big: TooBig::Drop }),
];

/// The SNAT address (rule: sources in 198.51.100.0/24 leaving by port 0).
const SNAT_ADDR: &str = "192.0.2.50";

/// A snapshot with a service in every mode (NAT, FullNAT, DR, TUN with IPIP and GUE), each
/// with two backends of its own, persistence on the UDP ones, the PROXY protocol (v2) on the
/// FullNAT TCP one, and a SNAT rule.
pub fn fuzz_snapshot() -> Snapshot {
    let mut list = Vec::new();
    let mut slots = vec![BackendSlot::default(); 2 * SERVICES.len() + 1];
    for (i, &(port, proto, mode, tunnel)) in SERVICES.iter().enumerate() {
        let first = 2 * i as u16 + 1;
        let mut backends = vec![backend(1, first), backend(2, first + 1)];
        if matches!(mode, FwdMode::Dr | FwdMode::Tun) {
            backends.iter_mut().for_each(|b| b.port = port);
        }
        for b in &backends {
            slots[usize::from(b.slot)] = BackendSlot { gen: b.gen, live: true, reset: i % 2 == 0, tunnel };
        }
        let persistence_ms = if proto == 17 { 10_000 } else { 0 };
        let spec = Spec { proto: IpProtocol(proto), mode, tunnel, persistence_ms, reset: i % 2 == 0, backends };
        let mut s = service(&spec);
        s.slot = i as u16;
        s.port = port;
        if mode == FwdMode::FullNat && proto == 6 {
            // The PROXY header's insertion and sequence shift get fuzzed too.
            s.client_address = crate::xlate::clientaddr::ClientAddr::ProxyV2;
        }
        list.push(s);
    }
    let timeouts = Timeouts { udp_ms: 5_000, established_ms: 60_000, ..Timeouts::default() };
    let rule = SnatRule {
        prefix: ip4("198.51.100.0"),
        prefix_len: 24,
        out_port: 0,
        addrs: vec![Laddr { addr: ip4(SNAT_ADDR), slot: 3, gen: 9 }],
    };
    snapshot().with_services(Arc::new(Services::new(list, slots, timeouts).with_snat(vec![rule])))
}

/// The frames the fuzzer starts from (a record's patches apply to a copy): each service's
/// client packet, replies from a backend to a client (NAT) and to the FullNAT local address,
/// an outbound SNAT packet and its reply. `(port, frame)`; `sport` is the variable end.
fn template(which: usize, sport: u16, flags: u8, payload: &[u8]) -> (u16, Vec<u8>) {
    let n = SERVICES.len();
    if which < n {
        let (port, proto, ..) = SERVICES[which];
        return (0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, port, proto, flags, payload));
    }
    match which - n {
        0 => (1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", sport, 6, flags, payload)),
        1 => (1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "198.51.100.1", sport, 17, flags, payload)),
        2 => (1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", sport, "203.0.113.7", 443, 6, flags, payload)),
        _ => (0, l4(CLIENT_MAC, OUR_MAC, "203.0.113.7", 443, SNAT_ADDR, sport, 6, flags, payload)),
    }
}

const TEMPLATES: usize = SERVICES.len() + 4;

/// Recomputes the IPv4 header and TCP/UDP checksums of a frame that still looks like one, so
/// that patched frames get past checksum checks and into the connection logic.
fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return;
    }
    let hl = usize::from(frame[14] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    if hl < 20 || total < hl || 14 + total > frame.len() {
        return;
    }
    let ip = &mut frame[14..14 + total];
    ip[10..12].fill(0);
    let c = checksum::checksum(&ip[..hl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let proto = ip[9];
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if total < hl + at + 2 {
        return;
    }
    let src = std::net::Ipv4Addr::from([ip[12], ip[13], ip[14], ip[15]]);
    let dst = std::net::Ipv4Addr::from([ip[16], ip[17], ip[18], ip[19]]);
    let l4 = &mut ip[hl..];
    l4[at..at + 2].fill(0);
    let sum = checksum::pseudo_header_v4(src, dst, proto, l4.len() as u32) + checksum::sum(l4);
    l4[at..at + 2].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
}

/// Arbitrary bytes as frames through `CoreCtx::process_burst` against [`fuzz_snapshot`], in
/// bursts the input cuts, with time advancing and the timers run between bursts.
///
/// Byte 0: bit 0 fills the connection table first (so new flows meet a full table), bits 1..
/// pick the pool size. Then records: `kind`, `len`, `len` bytes. `kind & 0x80` ends the burst
/// after this frame; `(kind & 0x3f) % (TEMPLATES + 1)` is 0 for a raw frame (the bytes, on port
/// `len & 1`) or names a template, which the bytes then shape: source port (2 bytes), TCP flags,
/// then (offset, xor) patches; `kind & 0x40` recomputes the checksums after patching.
pub fn process_burst(data: &[u8]) {
    let Some((&head, mut rest)) = data.split_first() else { return };
    let full_table = head & 1 != 0;
    let limits = LbLimits {
        conn_capacity: if full_table { 16 } else { 1024 },
        lport_min: 2000,
        lport_max: 2063,
        ..LbLimits::default()
    };
    let snap = fuzz_snapshot();
    let neigh = NeighParams { capacity: 64, ..NeighParams::default() };
    let mut ctx = CoreCtx::new(0, Arc::new(CoreCounters::default()), neigh, LbCore::standalone(limits));
    ctx.snapshot_changed(&snap);
    let mut now = 1_000;
    let mut sent = Sent::default();
    let mut pool = Pool { left: usize::from(head >> 1) };
    for (port, ip, mac) in [(0, "192.0.2.2", CLIENT_MAC), (1, "198.51.100.11", B1_MAC), (1, "198.51.100.12", B2_MAC)] {
        ctx.learn_remote(&snap, now, NeighLearned { port, ip: ip.parse().unwrap(), mac }, &mut sent);
    }
    if full_table {
        let mut sport = 10_000;
        while ctx.lb.conns.len() < ctx.lb.conns.capacity() {
            let (port, frame) = template(0, sport, SYN, b"");
            ctx.process_frame(&snap, now, TestFrame { buf: frame, port }, &mut pool, &mut sent);
            sport += 1;
            assert!(sport < 10_000 + 4 * ctx.lb.conns.capacity() as u16, "the table never filled");
        }
    }

    let mut burst = Vec::new();
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let which = usize::from(kind & 0x3f) % (TEMPLATES + 1);
        let frame = if which == 0 {
            TestFrame { buf: bytes.to_vec(), port: (len & 1) as u16 }
        } else {
            let sport = u16::from_be_bytes([*bytes.first().unwrap_or(&0), *bytes.get(1).unwrap_or(&1)]);
            let flags = *bytes.get(2).unwrap_or(&SYN);
            let (port, mut buf) = template(which - 1, sport, flags, b"fuzz");
            for patch in bytes.get(3..).unwrap_or_default().chunks_exact(2) {
                let at = usize::from(patch[0]) % buf.len();
                buf[at] ^= patch[1];
            }
            if kind & 0x40 != 0 {
                fix_checksums(&mut buf);
            }
            TestFrame { buf, port }
        };
        burst.push(frame);
        if kind & 0x80 != 0 || burst.len() == 32 {
            ctx.process_burst(&snap, now, burst.drain(..), &mut pool, &mut sent);
            now += 700;
            ctx.run_timers(&snap, now, &mut pool, &mut sent);
            sent.0.clear();
            sent.1.clear();
        }
    }
    ctx.process_burst(&snap, now, burst.drain(..), &mut pool, &mut sent);
    ctx.run_timers(&snap, now + 120_000, &mut pool, &mut sent);
    // What left must still be a frame: every reply and forward starts with an Ethernet header.
    for (port, frame) in &sent.0 {
        assert!(*port < 2 && frame.len() >= 14, "sent {} bytes on port {port}", frame.len());
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::TARGETS;

    /// Every input a fuzz run found a crash with (scripts/test.sh copies them to
    /// `dataplane/fuzz/regressions/<target>/`), replayed through the code the target runs.
    #[test]
    fn saved_fuzz_inputs_replay_without_a_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut replayed = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let target_dir = entry.unwrap().path();
            let name = target_dir.file_name().unwrap().to_string_lossy().into_owned();
            let Some((_, run)) = TARGETS.iter().find(|(t, _)| *t == name) else {
                panic!(
                    "{} is not a fuzz target's name ({TARGETS:?})",
                    target_dir.display(),
                    TARGETS = TARGETS.iter().map(|t| t.0).collect::<Vec<_>>()
                );
            };
            for input in fs::read_dir(&target_dir).unwrap() {
                let input = input.unwrap().path();
                println!("replaying {}", input.display());
                run(&fs::read(&input).unwrap());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no inputs under {}: the seed files are missing", dir.display());
    }
}
