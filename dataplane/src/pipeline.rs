//! The per-frame logic a worker runs: classify, answer ARP/ND and ICMP echo for the box's
//! own addresses, route replies and resolve their next hop. Pure: it sees frames through the
//! [`Frame`] trait, allocates through [`FramePool`] and sends through [`TxSink`], so unit
//! tests drive it with plain buffers and workers with mbufs. Time is an argument.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::{ConnKey, Hint};
use crate::counters::{CoreCounters, DropReason, Event, KERNEL_PORT_IDS};
use crate::l3::neigh::{Aging, Held, Resolution};
use crate::l3::{NeighParams, NeighTable};
use crate::lb::LbCore;
use crate::net::MacAddr;
use crate::snapshot::{solicited_node, BackendHop, KernelLimit, PortL3, Snapshot};
use crate::trace::{self, Before, CounterValues, FrameView, Recorder, TraceArm, Tracer};
use crate::wire::{
    checksum, emit_arp, emit_neighbor_advert, emit_neighbor_solicit, ArpOperation, ArpPacket, EtherType, EthernetFrame,
    Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type, IpProtocol, Ipv4Packet, Ipv6Packet,
};
use crate::xlate::{self, Parsed4};

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
const IPV4_HEADER_LEN: usize = Ipv4Packet::<&[u8]>::HEADER_LEN;
const IPV6_HEADER_LEN: usize = 40;
/// Hop limit / TTL of packets this box originates (echo replies).
const DEFAULT_TTL: u8 = 64;
/// Ethernet frames are at least 60 bytes before the FCS; generated frames are padded to it.
const MIN_FRAME_LEN: usize = 60;
/// Neighbour-table slots aged per loop iteration.
const AGING_BUDGET: usize = 32;
/// Neighbour learns reported to other cores per burst; more are rare and re-learned anyway.
const LEARNED_OUTBOX: usize = 64;
/// ICMP fragmentation-needed messages a core sends at most, per second and at once (RFC 1812
/// 4.3.2.8: a router limits the errors it originates). Per core, so the box's limit is this
/// times the workers.
const ICMP_TOO_BIG_PER_S: u32 = 100;
const ICMP_TOO_BIG_BURST: u32 = 50;
/// Gateway routes (by their index in the snapshot's table) whose next hop's MAC a core keeps.
const ROUTE_MAC_SLOTS: usize = 64;
/// Frames `process_burst` takes through its stages together (the DPDK rx burst size): enough
/// connection-table misses in flight at once to hide most of their latency.
pub const BURST: usize = 32;

/// A received or generated frame: a byte buffer that may be resized within its capacity.
pub trait Frame {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// The port the frame arrived on.
    fn rx_port(&self) -> u16;
    /// Sets the frame length (grow or shrink at the tail). False if it does not fit.
    fn set_len(&mut self, len: usize) -> bool;
    /// Grows the frame by `n` bytes at the front (into the buffer's headroom), leaving them
    /// unspecified. False, and the frame unchanged, if the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes at the front (NAT64's IPv6 -> IPv4 header). False, and the frame
    /// unchanged, if it is shorter than `n`. This default moves the rest of the frame; a
    /// buffer with headroom (an mbuf) only moves its start.
    fn trim_front(&mut self, n: usize) -> bool {
        let len = self.data().len();
        if n > len {
            return false;
        }
        self.data_mut().copy_within(n.., 0);
        self.set_len(len - n)
    }
}

/// Source of fresh frames for what the box originates (ARP requests, solicitations).
pub trait FramePool<F> {
    fn alloc(&mut self) -> Option<F>;
}

/// Where frames leave.
pub trait TxSink<F> {
    /// Sends `frame` out of `port`. The sink counts `tx_packets` and `tx_bytes` for the frames
    /// the port takes (the NIC may refuse some), and drops and counts the others.
    fn send(&mut self, port: u16, frame: F);
    /// Passes a frame to worker `core`, which owns its connection; gives it back when that
    /// core's ring is full. Only asked with more than one worker.
    fn hand_off(&mut self, core: u32, frame: F) -> Result<(), F> {
        let _ = core;
        Err(frame)
    }
    /// Passes `frame` to the kernel interface of `port` (the exception path). Only asked for
    /// a port whose snapshot entry has one; the sink drops and counts what it cannot take.
    fn send_to_kernel(&mut self, port: u16, frame: F);
}

/// Where a frame comes from: a NIC queue, or another core that received it for this one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Nic,
    HandedIn,
}

/// A frame `lb_candidate` accepted, with its connection-table hash and (in a burst) the
/// table's guess of its entry.
#[derive(Clone, Copy)]
struct LbCandidate {
    l4: Parsed4,
    hash: u64,
    hint: Hint,
}

/// A neighbour this core confirmed; the worker tells the other cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighLearned {
    pub port: u16,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// What a neighbour solicitation said, parsed before the frame is rewritten into the advert.
struct NeighborSolicit {
    src: Ipv6Addr,
    target: Ipv6Addr,
    source_mac: Result<Option<MacAddr>, crate::wire::WireError>,
}

/// A token bucket owned by one core (plain fields, no atomics): `per_s` tokens a second, at
/// most `burst` of them saved. Starts full.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    /// In thousandths of a token: a millisecond adds `per_s` of them, a whole number.
    milli_tokens: u64,
    last_ms: u64,
    per_s: u64,
    burst: u64,
}

impl TokenBucket {
    pub(crate) fn new(per_s: u32, burst: u32) -> TokenBucket {
        let (per_s, burst) = (u64::from(per_s), u64::from(burst));
        TokenBucket { milli_tokens: burst * 1000, last_ms: 0, per_s, burst }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now_ms: u64) -> bool {
        let earned = now_ms.saturating_sub(self.last_ms).saturating_mul(self.per_s);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli_tokens = self.milli_tokens.saturating_add(earned).min(self.burst * 1000);
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }
}

/// What `CoreCtx::routed` found.
struct Routed {
    port: u16,
    next_hop: IpAddr,
    our_mac: MacAddr,
    mtu: u16,
    /// `hop_macs` index of the gateway's MAC (gateway routes among the first 64).
    cache: Option<usize>,
}

/// A core's copy of a next hop's MAC (`NeighTable::fresh`), for a backend or a gateway route:
/// good while the neighbour table's epoch is `epoch`, the next hop is still (`port`, `ip`)
/// and the clock is before `fresh_until_ms`.
#[derive(Clone, Copy)]
struct HopMac {
    epoch: u32,
    port: u16,
    ip: IpAddr,
    mac: MacAddr,
    fresh_until_ms: u64,
}

impl HopMac {
    const NONE: HopMac =
        HopMac { epoch: 0, port: 0, ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), mac: MacAddr::ZERO, fresh_until_ms: 0 };
}

/// A worker core's own state: nothing here is shared for writing.
pub struct CoreCtx<F> {
    pub core: u32,
    pub counters: Arc<CoreCounters>,
    pub neigh: NeighTable<F>,
    pub lb: LbCore,
    learned: Vec<NeighLearned>,
    /// Limits the ICMP fragmentation-needed errors this core sends.
    too_big_errors: TokenBucket,
    /// By port id: the rate this core passes frames to the port's kernel interface at, with
    /// the limit it was made for (a new limit starts a new bucket). Each made on first use in
    /// an array allocated once; boxed, as inline it cost the load-balancing path 9
    /// instructions a packet (benches/instructions.sh), the context's layout being worse.
    kernel_buckets: Box<[Option<(KernelLimit, TokenBucket)>; KERNEL_PORT_IDS]>,
    /// An armed `fvs trace` (see [`crate::trace`]); None, checked once per burst, otherwise.
    trace: Option<Box<Tracer>>,
    /// Admission of new connections: per-service and per-client rate state.
    /// Boxed: only new connections use it, and the context's layout is on every packet's path.
    guard: Box<crate::defence::GuardCore>,
    /// The MACs next hops resolved to, so packets skip the neighbour lookup: by backend slot
    /// (the snapshot's `BackendHop` already skips the route lookup), then by gateway route
    /// (`ROUTE_MAC_SLOTS` of them: replies to clients).
    hop_macs: Box<[HopMac]>,
    /// Tests only: every packet the general way, to check the steady path against it.
    #[cfg(test)]
    general_only: bool,
}

impl<F: Frame> CoreCtx<F> {
    pub fn new(core: u32, counters: Arc<CoreCounters>, neigh: NeighParams, lb: LbCore) -> Self {
        CoreCtx {
            core,
            counters,
            neigh: NeighTable::new(neigh),
            learned: Vec::with_capacity(LEARNED_OUTBOX),
            too_big_errors: TokenBucket::new(ICMP_TOO_BIG_PER_S, ICMP_TOO_BIG_BURST),
            kernel_buckets: Box::new([None; KERNEL_PORT_IDS]),
            trace: None,
            guard: Box::new(crate::defence::GuardCore::new(lb.limits().max_services, defence::sketch_seed(core))),
            hop_macs: vec![HopMac::NONE; usize::from(lb.limits().max_backends) + ROUTE_MAC_SLOTS].into_boxed_slice(),
            #[cfg(test)]
            general_only: false,
            lb,
        }
    }

    /// Starts tracing what `arm`'s filter matches (replacing any trace armed before).
    pub fn arm_trace(&mut self, arm: TraceArm) {
        self.trace = Some(Box::new(Tracer::new(arm)));
    }

    /// Stops trace `id` (another trace armed since stays).
    pub fn disarm_trace(&mut self, id: u64) {
        if self.trace.as_ref().is_some_and(|t| t.id() == id) {
            self.trace = None;
        }
    }

    /// The worker's TSC clock for handshake latencies, once per loop: ticks since it started
    /// and ticks a microsecond.
    #[inline]
    pub fn set_clock(&mut self, ticks: u64, ticks_per_us: u64) {
        self.lb.handshakes.set_now(ticks, ticks_per_us);
    }

    /// Whether a trace is armed on this core.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Call when the worker switches to a new snapshot: per-core service state follows it.
    pub fn snapshot_changed(&mut self, snap: &Snapshot) {
        self.lb.sync(&snap.services);
    }

    /// Handles every frame of a burst, in order, with the same result as `process_frame` on each.
    /// Frames go through in groups of [`BURST`]: first every frame is parsed, and a
    /// load-balancing candidate's tuple hashed and its connection-table bucket prefetched;
    /// then the connections those buckets point to are prefetched; then each frame is handled.
    /// At a million connections each lookup is two dependent cache misses; this way a group's
    /// misses overlap instead of adding up. The prefetches are only hints: every frame is still
    /// looked up when its turn comes, after the frames before it changed the table.
    #[inline]
    pub fn process_burst(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frames: impl IntoIterator<Item = F>,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.process_frames(snap, now_ms, frames, Arrival::Nic, pool, tx)
    }

    /// Like `process_burst`, for frames another core handed to this one: they are its own
    /// and were counted as received where they arrived.
    #[inline]
    pub fn process_handed_in(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frames: impl IntoIterator<Item = F>,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.process_frames(snap, now_ms, frames, Arrival::HandedIn, pool, tx)
    }

    #[inline]
    fn process_frames(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frames: impl IntoIterator<Item = F>,
        arrival: Arrival,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if self.trace.is_some() {
            return self.process_traced(snap, now_ms, frames, arrival, pool, tx);
        }
        let mut frames = frames.into_iter();
        loop {
            let mut group: [Option<F>; BURST] = [const { None }; BURST];
            let mut n = 0;
            for (slot, frame) in group.iter_mut().zip(&mut frames) {
                *slot = Some(frame);
                n += 1;
            }
            if n == 0 {
                return;
            }
            self.process_group(snap, now_ms, &mut group[..n], arrival, pool, tx);
            if n < BURST {
                return;
            }
        }
    }

    /// `process_frames` while a trace is armed: one frame at a time, in order, each frame the
    /// trace's filter matches handled by `trace_frame`.
    #[cold]
    #[inline(never)]
    fn process_traced(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frames: impl IntoIterator<Item = F>,
        arrival: Arrival,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        for frame in frames {
            if self.trace.as_ref().is_some_and(|t| t.wants(frame.data())) {
                self.trace_frame(snap, now_ms, frame, arrival, pool, tx);
            } else {
                self.process_group(snap, now_ms, &mut [Some(frame)], arrival, pool, tx);
            }
        }
    }

    /// Handles one frame as `process_group` does and sends the trace a record of what was
    /// decided: the connection and counters before and after, and what left (through a
    /// recording sink).
    fn trace_frame(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        arrival: Arrival,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let packet = FrameView::of(frame.data());
        let key = packet.key();
        let conn_now = |lb: &LbCore| key.and_then(|k| lb.conns.lookup(&k)).map(|(id, dir)| (dir, lb.conns.get(id)));
        let before = Before {
            packet,
            rx_port: frame.rx_port(),
            conn: conn_now(&self.lb),
            counters: CounterValues::of(&self.counters),
        };
        let mut recorder = Recorder::new(tx);
        self.process_group(snap, now_ms, &mut [Some(frame)], arrival, pool, &mut recorder);
        let (outputs, n) = (recorder.outputs, recorder.n);
        let handed_in = arrival == Arrival::HandedIn;
        let after = conn_now(&self.lb);
        let rec = trace::record(snap, self.core, now_ms, handed_in, &before, after, &self.counters, outputs, n);
        if self.trace.as_mut().is_some_and(|t| t.send(rec)) {
            self.trace = None;
        }
    }

    /// One group of at most `BURST` frames through the stages `process_burst` describes.
    fn process_group(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        group: &mut [Option<F>],
        arrival: Arrival,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let mut candidates: [Option<LbCandidate>; BURST] = [None; BURST];
        // Counted once per group, not per frame.
        let (mut frames, mut bytes) = (0, 0);
        for (slot, c) in group.iter_mut().zip(candidates.iter_mut()) {
            let Some(frame) = slot else { continue };
            frames += 1;
            bytes += frame.data().len() as u64;
            let Some(l4) = lb_candidate(snap, frame) else { continue };
            if arrival == Arrival::Nic {
                if let Some(owner) = self.other_owner(snap, &l4.tuple, frame.rx_port()) {
                    if let Some(frame) = slot.take() {
                        self.hand_off(owner, frame, tx);
                    }
                    continue;
                }
            }
            *c = Some(self.candidate(l4));
        }
        match arrival {
            Arrival::Nic => {
                self.counters.event(Event::RxPackets).add(frames);
                self.counters.event(Event::RxBytes).add(bytes);
            }
            Arrival::HandedIn => self.counters.event(Event::HandedIn).add(frames),
        }
        // Each stage in a loop of its own: all of a group's bucket loads are under way before
        // the first is needed to find its connections.
        for c in candidates.iter().flatten() {
            self.lb.conns.prefetch_bucket(c.hash);
        }
        for c in candidates.iter_mut().flatten() {
            c.hint = self.lb.conns.prefetch_conns(c.hash);
        }
        for (frame, c) in group.iter_mut().zip(&candidates) {
            let Some(frame) = frame.take() else { continue };
            match c {
                Some(c) => self.lb_frame::<true>(snap, now_ms, frame, c, pool, tx),
                None => self.other_frame(snap, now_ms, frame, pool, tx),
            }
        }
    }

    /// Handles one frame: it is sent, held for a neighbour, or dropped and counted.
    pub fn process_frame(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.count_rx(&frame);
        match lb_candidate(snap, &frame) {
            Some(l4) => {
                if let Some(owner) = self.other_owner(snap, &l4.tuple, frame.rx_port()) {
                    return self.hand_off(owner, frame, tx);
                }
                let candidate = self.candidate(l4);
                self.lb_frame::<false>(snap, now_ms, frame, &candidate, pool, tx)
            }
            None => self.other_frame(snap, now_ms, frame, pool, tx),
        }
    }

    /// The core that owns a packet with this tuple received on `rx_port`, when not this one.
    #[inline]
    fn other_owner(&self, snap: &Snapshot, tuple: &ConnKey, rx_port: u16) -> Option<u32> {
        if self.lb.ownership.is_single() {
            return None;
        }
        let owner = self.lb.ownership.owner(&snap.services, tuple, rx_port);
        (owner != self.core).then_some(owner)
    }

    /// Passes a frame to the core that owns its connection, or drops it when that core's
    /// ring is full.
    fn hand_off(&self, owner: u32, frame: F, tx: &mut impl TxSink<F>) {
        match tx.hand_off(owner, frame) {
            Ok(()) => self.counters.event(Event::HandedOff).inc(),
            Err(frame) => self.drop(frame, DropReason::HandoffFull),
        }
    }

    /// A parsed TCP/UDP packet with its connection-table hash, not yet prefetched.
    #[inline]
    fn candidate(&self, l4: Parsed4) -> LbCandidate {
        LbCandidate { hash: self.lb.conns.hash(&l4.tuple), l4, hint: Hint::NONE }
    }

    /// Every frame received from a NIC counts once, whichever way it goes (also when it is
    /// handed to another core).
    #[inline]
    fn count_rx(&self, frame: &F) {
        self.counters.event(Event::RxPackets).inc();
        self.counters.event(Event::RxBytes).add(frame.data().len() as u64);
    }

    /// A frame [`lb_candidate`] accepted: what `other_frame` would do with it, without
    /// checking again what was checked. `HINTED`: the candidate comes from a burst, with its
    /// `prefetch_conns` hint; a frame on its own has none and searches the index inline.
    #[inline(always)]
    fn lb_frame<const HINTED: bool>(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        candidate: &LbCandidate,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let l4 = &candidate.l4;
        let found = if HINTED {
            self.lb.conns.lookup_hinted(&l4.tuple, candidate.hash, candidate.hint)
        } else {
            self.lb.conns.lookup_hashed_inline(&l4.tuple, candidate.hash)
        };
        let frame = match found {
            Some((id, dir)) if self.takes_steady_path() => {
                match self.steady_frame(snap, now_ms, frame, l4, id, dir, pool, tx) {
                    Some(frame) => frame,
                    None => return,
                }
            }
            _ => frame,
        };
        if let Some(frame) = self.lb_input_found(snap, now_ms, frame, l4, candidate.hash, found, pool, tx) {
            let t = &candidate.l4.tuple;
            self.ipv4_local_input(snap, now_ms, frame, t.src, t.dst, t.proto, pool, tx);
        }
    }

    /// Whether tracked connections' packets try `steady_frame` first: always, but in tests
    /// that compare it with the general path.
    #[inline(always)]
    pub(super) fn takes_steady_path(&self) -> bool {
        #[cfg(test)]
        return !self.general_only;
        #[cfg(not(test))]
        true
    }

    /// Any frame: parsed from the start, every case handled.
    fn other_frame(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let port = frame.rx_port();
        let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
            return self.drop(frame, DropReason::MalformedEthernet);
        };
        let Some(port_l3) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        let dst_mac = eth.dst();
        if dst_mac != port_l3.mac && !dst_mac.is_multicast() {
            return self.drop(frame, DropReason::OtherMac);
        }
        let our_mac = port_l3.mac;
        match eth.ethertype() {
            EtherType::ARP => self.arp_input(snap, now_ms, frame, port, our_mac, pool, tx),
            EtherType::IPV4 => self.ipv4_input(snap, now_ms, frame, pool, tx),
            EtherType::IPV6 => self.ipv6_input(snap, now_ms, frame, port, our_mac, pool, tx),
            _ => self.drop(frame, DropReason::UnsupportedEthertype),
        }
    }

    /// Per-loop housekeeping: expires a slice of idle connections, ages a slice of the
    /// neighbour table, re-sending requests for unresolved next hops and dropping the packets
    /// of those that never answer.
    pub fn run_timers(&mut self, snap: &Snapshot, now_ms: u64, pool: &mut impl FramePool<F>, tx: &mut impl TxSink<F>) {
        self.expire_conns(now_ms);
        let mut probes: [Option<(u16, IpAddr)>; AGING_BUDGET] = [None; AGING_BUDGET];
        let mut n = 0;
        let counters = &self.counters;
        self.neigh.age(now_ms, AGING_BUDGET, |a| match a {
            Aging::Probe { port, ip } => {
                if n < AGING_BUDGET {
                    probes[n] = Some((port, ip));
                    n += 1;
                }
            }
            Aging::Unresolved(f) => {
                counters.drop_reason(DropReason::NeighUnresolved).inc();
                drop(f);
            }
            Aging::Expired => counters.event(Event::NeighExpired).inc(),
        });
        for (port, ip) in probes.iter().flatten() {
            self.solicit(snap, *port, *ip, None, pool, tx);
        }
    }

    /// Neighbours confirmed since the last call, for the other cores.
    pub fn drain_learned(&mut self) -> std::vec::Drain<'_, NeighLearned> {
        self.learned.drain(..)
    }

    /// A neighbour another core confirmed.
    pub fn learn_remote(&mut self, snap: &Snapshot, now_ms: u64, n: NeighLearned, tx: &mut impl TxSink<F>) {
        self.learn(snap, now_ms, n.port, n.ip, n.mac, true, false, tx);
    }

    #[inline]
    fn drop(&self, frame: F, reason: DropReason) {
        self.counters.drop_reason(reason).inc();
        drop(frame);
    }

    /// Takes a token of this core's rate for `port`'s kernel interface. None when the port
    /// has none; Some(false), counted, when over the rate.
    fn kernel_token(&mut self, snap: &Snapshot, now_ms: u64, port: u16) -> Option<bool> {
        let limit = snap.port(port)?.kernel?;
        let slot = self.kernel_buckets.get_mut(usize::from(port))?;
        let bucket = match slot {
            Some((l, bucket)) if *l == limit => bucket,
            _ => &mut slot.insert((limit, TokenBucket::new(limit.rate_pps, limit.burst))).1,
        };
        let taken = bucket.take(now_ms);
        if !taken {
            self.counters.drop_reason(DropReason::KernelRateLimited).inc();
            if let Some(c) = self.counters.kernel(port) {
                c.rate_limited.inc();
            }
        }
        Some(taken)
    }

    /// Hands a frame ferrovs does not answer itself (ssh, BGP, BFD, VRRP, the host's own
    /// connections, ICMP other than echo) to `port`'s kernel interface, within this core's
    /// rate for it. A port without one drops it as `otherwise`.
    fn pass_to_kernel(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        port: u16,
        otherwise: DropReason,
        tx: &mut impl TxSink<F>,
    ) {
        match self.kernel_token(snap, now_ms, port) {
            None => self.drop(frame, otherwise),
            Some(false) => drop(frame),
            Some(true) => self.sent_to_kernel(port, frame, tx),
        }
    }

    fn sent_to_kernel(&self, port: u16, frame: F, tx: &mut impl TxSink<F>) {
        self.counters.event(Event::ToKernel).inc();
        if let Some(c) = self.counters.kernel(port) {
            c.to_kernel.inc();
        }
        tx.send_to_kernel(port, frame);
    }

    /// Gives `port`'s kernel a copy of a frame ferrovs answers itself but the kernel needs
    /// too (ARP and ND about the box's addresses: its own neighbour table), within the rate.
    fn copy_to_kernel(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: &F,
        port: u16,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if self.kernel_token(snap, now_ms, port) != Some(true) {
            return;
        }
        let Some(mut copy) = pool.alloc() else {
            self.counters.drop_reason(DropReason::NoBuffer).inc();
            return;
        };
        let data = frame.data();
        if !copy.set_len(data.len()) {
            return self.drop(copy, DropReason::NoBuffer);
        }
        copy.data_mut().copy_from_slice(data);
        self.sent_to_kernel(port, copy, tx);
    }

    /// Records a neighbour, sends what was waiting for it, and reports it to the other cores
    /// when it is news (`announce` forces that: an answer to a request may be the answer
    /// another core is waiting for).
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        port: u16,
        ip: IpAddr,
        mac: MacAddr,
        create: bool,
        announce: bool,
        tx: &mut impl TxSink<F>,
    ) {
        let Some(our_mac) = snap.port(port).map(|p| p.mac) else { return };
        let counters = &self.counters;
        let changed = self.neigh.confirm(port, ip, mac, now_ms, create, |mut f, mac| {
            set_macs(f.data_mut(), mac, our_mac);
            counters.event(Event::NeighQueuedSent).inc();
            tx.send(port, f);
        });
        if changed {
            self.counters.event(Event::NeighLearned).inc();
        }
        if (changed || announce) && self.learned.len() < LEARNED_OUTBOX {
            self.learned.push(NeighLearned { port, ip, mac });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn arp_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        port: u16,
        our_mac: MacAddr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Ok(arp) = ArpPacket::new_checked(&frame.data()[ETH_LEN..]) else {
            return self.drop(frame, DropReason::MalformedArp);
        };
        let (op, sender_mac, sender_ip, target_ip) =
            (arp.operation(), arp.sender_mac(), arp.sender_ip(), arp.target_ip());
        let is_request = op == ArpOperation::REQUEST;
        self.counters.event(if is_request { Event::ArpRequestsIn } else { Event::ArpRepliesIn }).inc();
        if !sender_mac.is_host() {
            // Learning it would poison the entry for `sender_ip`; answering it reaches no one.
            return self.drop(frame, DropReason::BadSenderMac);
        }
        let sender_usable = !sender_ip.is_unspecified();
        if !snap.owns_on_port(port, IpAddr::V4(target_ip)) {
            // Gratuitous ARP and others' conversations: refresh what we know, learn nothing new.
            if sender_usable {
                self.learn(snap, now_ms, port, IpAddr::V4(sender_ip), sender_mac, false, false, tx);
            }
            return self.drop(frame, DropReason::ArpNotForUs);
        }
        if sender_usable {
            self.learn(snap, now_ms, port, IpAddr::V4(sender_ip), sender_mac, true, !is_request, tx);
        }
        // The kernel keeps its own neighbour table for what it sends: it sees the requests
        // for and the replies to the box's interface addresses (not the VIPs it knows nothing
        // of). ferrovs still answers the requests itself; the kernel's answer is a duplicate.
        let for_kernel = snap.is_interface_addr(IpAddr::V4(target_ip));
        if !is_request {
            // A reply to us: learned above; the kernel may be waiting for it too.
            if for_kernel && self.kernel_token(snap, now_ms, port) == Some(true) {
                self.sent_to_kernel(port, frame, tx);
            }
            return;
        }
        if for_kernel {
            self.copy_to_kernel(snap, now_ms, &frame, port, pool, tx);
        }
        let data = frame.data_mut();
        set_macs(data, sender_mac, our_mac);
        emit_arp(&mut data[ETH_LEN..], ArpOperation::REPLY, our_mac, target_ip, sender_mac, sender_ip);
        self.counters.event(Event::ArpRepliesOut).inc();
        tx.send(port, frame);
    }

    fn ipv4_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Ok(ip) = Ipv4Packet::new_checked(&frame.data()[ETH_LEN..]) else {
            return self.drop(frame, DropReason::MalformedIpv4);
        };
        if !ip.verify_checksum() {
            return self.drop(frame, DropReason::BadIpv4Checksum);
        }
        let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
        if ip.is_fragment() {
            // Neither the load balancer nor the local path reassembles; the kernel does, for
            // its own addresses.
            if snap.is_interface_addr(IpAddr::V4(dst)) {
                let port = frame.rx_port();
                return self.pass_to_kernel(snap, now_ms, frame, port, DropReason::Fragment, tx);
            }
            let reason = if snap.is_local(IpAddr::V4(dst)) { DropReason::Fragment } else { DropReason::IpNotForUs };
            return self.drop(frame, reason);
        }
        let mut frame = frame;
        if protocol == IpProtocol::TCP || protocol == IpProtocol::UDP {
            match self.l4_input(snap, now_ms, frame, pool, tx) {
                Some(f) => frame = f,
                None => return,
            }
        } else if protocol == IpProtocol::ICMP {
            match self.icmp_error_input(snap, now_ms, frame, pool, tx) {
                Some(f) => frame = f,
                None => return,
            }
        }
        self.ipv4_local_input(snap, now_ms, frame, src, dst, protocol, pool, tx);
    }

    /// A valid, unfragmented IPv4 packet the load balancer did not take: SNAT for traffic
    /// passing through, an echo request to us, or a drop.
    #[allow(clippy::too_many_arguments)]
    fn ipv4_local_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if !snap.is_local(IpAddr::V4(dst)) {
            if (protocol == IpProtocol::TCP || protocol == IpProtocol::UDP) && !snap.services.snat.is_empty() {
                match self.snat_input(snap, now_ms, frame, pool, tx) {
                    Some(f) => frame = f,
                    None => return,
                }
            }
            if is_link_local_multicast_v4(dst) {
                // VRRP (224.0.0.18), OSPF, IGMP: the routing daemons behind the kernel's.
                let port = frame.rx_port();
                return self.pass_to_kernel(snap, now_ms, frame, port, DropReason::IpNotForUs, tx);
            }
            return self.drop(frame, DropReason::IpNotForUs);
        }
        // To the box's own interface address, what ferrovs does not answer is the kernel's.
        let kernel_port = snap.is_interface_addr(IpAddr::V4(dst)).then(|| frame.rx_port());
        let ip = Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]);
        if ip.protocol() != IpProtocol::ICMP {
            return match kernel_port {
                Some(port) => self.pass_to_kernel(snap, now_ms, frame, port, DropReason::UnsupportedProtocol, tx),
                None => self.drop(frame, DropReason::UnsupportedProtocol),
            };
        }
        if src.is_unspecified() || src.is_broadcast() || src.is_multicast() {
            return self.drop(frame, DropReason::BadSource);
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return self.drop(frame, DropReason::MalformedIcmp);
        };
        if !icmp.verify_checksum() {
            return self.drop(frame, DropReason::BadIcmpChecksum);
        }
        if icmp.msg_type() != Icmpv4Type::ECHO_REQUEST || icmp.code() != 0 {
            // Echo replies to the host's own pings, errors about its own connections.
            return match kernel_port {
                Some(port) => self.pass_to_kernel(snap, now_ms, frame, port, DropReason::IcmpNotEcho, tx),
                None => self.drop(frame, DropReason::IcmpNotEcho),
            };
        }
        let (header_len, total_len) = (usize::from(ip.header_len()), usize::from(ip.total_len()));
        self.counters.event(Event::IcmpEchoRequestsIn).inc();
        // Drop any Ethernet padding: the reply is as long as the request's IP packet.
        frame.set_len(ETH_LEN + total_len);
        echo_reply_v4(&mut frame.data_mut()[ETH_LEN..], header_len, src, dst);
        self.counters.event(Event::IcmpEchoRepliesOut).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V4(src), pool, tx);
    }

    #[allow(clippy::too_many_arguments)]
    fn ipv6_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        port: u16,
        our_mac: MacAddr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Ok(ip) = Ipv6Packet::new_checked(&frame.data()[ETH_LEN..]) else {
            return self.drop(frame, DropReason::MalformedIpv6);
        };
        if !snap.services.v6.is_empty() {
            // IPv6 services: TCP/UDP to a VIP, a local address or from a NAT backend, and the
            // ICMPv6 errors about those connections. What they do not take goes on below.
            let next_header = ip.next_header();
            let lb = if next_header == IpProtocol::TCP || next_header == IpProtocol::UDP {
                self.l4_input6(snap, now_ms, frame, pool, tx)
            } else if next_header == IpProtocol::ICMPV6 {
                self.icmp6_error_input(snap, now_ms, frame, pool, tx)
            } else {
                Some(frame)
            };
            match lb {
                Some(f) => frame = f,
                None => return,
            }
        }
        let ip = Ipv6Packet::new_unchecked(&frame.data()[ETH_LEN..]);
        let (src, dst, hop_limit) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        let unicast_to_us = snap.is_local(IpAddr::V6(dst));
        let multicast_to_us =
            dst == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1) || snap.is_solicited_node_on_port(port, dst);
        if !unicast_to_us && !multicast_to_us {
            let next_header = ip.next_header();
            if (next_header == IpProtocol::TCP || next_header == IpProtocol::UDP)
                && !snap.services.v6.snat.is_empty()
                && !dst.is_multicast()
            {
                match self.snat_input6(snap, now_ms, frame, pool, tx) {
                    Some(f) => frame = f,
                    None => return,
                }
            }
            return self.drop(frame, DropReason::IpNotForUs);
        }
        if ip.next_header() != IpProtocol::ICMPV6 {
            // IPv6 addresses are all interface addresses: what is not ND or echo is the kernel's.
            return self.pass_to_kernel(snap, now_ms, frame, port, DropReason::UnsupportedProtocol, tx);
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
            return self.drop(frame, DropReason::MalformedIcmp);
        };
        if !icmp.verify_checksum(src, dst) {
            return self.drop(frame, DropReason::BadIcmpChecksum);
        }
        let msg_type = icmp.msg_type();
        if msg_type == Icmpv6Type::NEIGHBOR_SOLICIT || msg_type == Icmpv6Type::NEIGHBOR_ADVERT {
            if hop_limit != 255 {
                return self.drop(frame, DropReason::NdBadHopLimit);
            }
            let Some(target) = icmp.ndisc_target() else {
                return self.drop(frame, DropReason::MalformedIcmp);
            };
            if msg_type == Icmpv6Type::NEIGHBOR_ADVERT {
                self.counters.event(Event::NdAdvertsIn).inc();
                match icmp.target_link_addr() {
                    Ok(Some(mac)) if !mac.is_host() => return self.drop(frame, DropReason::BadSenderMac),
                    Ok(Some(mac)) => self.learn(snap, now_ms, port, IpAddr::V6(target), mac, false, true, tx),
                    _ => {}
                }
                // Learned; the kernel may be waiting for it too.
                if unicast_to_us && self.kernel_token(snap, now_ms, port) == Some(true) {
                    self.sent_to_kernel(port, frame, tx);
                }
                return;
            }
            self.counters.event(Event::NdSolicitsIn).inc();
            if snap.owns_on_port(port, IpAddr::V6(target)) {
                self.copy_to_kernel(snap, now_ms, &frame, port, pool, tx);
            }
            let source_mac = icmp.source_link_addr();
            let solicit = NeighborSolicit { src, target, source_mac };
            return self.neighbor_solicit_input(snap, now_ms, frame, port, our_mac, solicit, tx);
        }
        if msg_type != Icmpv6Type::ECHO_REQUEST || icmp.code() != 0 {
            // Echo replies, errors, router adverts, MLD: the kernel's.
            return self.pass_to_kernel(snap, now_ms, frame, port, DropReason::IcmpNotEcho, tx);
        }
        if !unicast_to_us {
            return self.drop(frame, DropReason::IpNotForUs);
        }
        if src.is_unspecified() || src.is_multicast() {
            return self.drop(frame, DropReason::BadSource);
        }
        let payload_len = usize::from(ip.payload_len());
        self.counters.event(Event::IcmpEchoRequestsIn).inc();
        frame.set_len(ETH_LEN + IPV6_HEADER_LEN + payload_len);
        let packet = &mut frame.data_mut()[ETH_LEN..];
        let mut ip = Ipv6Packet::new_unchecked(&mut *packet);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_hop_limit(DEFAULT_TTL);
        let mut icmp = Icmpv6Packet::new_unchecked(&mut packet[IPV6_HEADER_LEN..]);
        icmp.set_msg_type(Icmpv6Type::ECHO_REPLY);
        icmp.fill_checksum(dst, src);
        self.counters.event(Event::IcmpEchoRepliesOut).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V6(src), pool, tx);
    }

    #[allow(clippy::too_many_arguments)]
    fn neighbor_solicit_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        port: u16,
        our_mac: MacAddr,
        solicit: NeighborSolicit,
        tx: &mut impl TxSink<F>,
    ) {
        let NeighborSolicit { src, target, source_mac } = solicit;
        if !snap.owns_on_port(port, IpAddr::V6(target)) {
            return self.drop(frame, DropReason::NdNotForUs);
        }
        let Ok(source_mac) = source_mac else {
            return self.drop(frame, DropReason::MalformedIcmp);
        };
        if source_mac.is_some_and(|mac| !mac.is_host()) {
            return self.drop(frame, DropReason::BadSenderMac);
        }
        // Duplicate address detection (source ::) is answered to all nodes, unsolicited.
        let dad = src.is_unspecified();
        let reply_to = if dad { Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1) } else { src };
        let eth_src = EthernetFrame::new_unchecked(frame.data()).src();
        let reply_mac = if dad { MacAddr::ipv6_multicast(reply_to) } else { source_mac.unwrap_or(eth_src) };
        if let (false, Some(mac)) = (dad, source_mac) {
            self.learn(snap, now_ms, port, IpAddr::V6(src), mac, true, false, tx);
        }
        let len = ETH_LEN + IPV6_HEADER_LEN + crate::wire::icmpv6::NDISC_EMIT_LEN;
        if !frame.set_len(len) {
            return self.drop(frame, DropReason::MalformedIcmp);
        }
        let data = frame.data_mut();
        set_macs(data, reply_mac, our_mac);
        let icmp_len = emit_neighbor_advert(&mut data[ETH_LEN + IPV6_HEADER_LEN..], target, our_mac, !dad);
        write_ipv6_header(&mut data[ETH_LEN..], target, reply_to, icmp_len, 255);
        Icmpv6Packet::new_unchecked(&mut data[ETH_LEN + IPV6_HEADER_LEN..]).fill_checksum(target, reply_to);
        self.counters.event(Event::NdAdvertsOut).inc();
        tx.send(port, frame);
    }

    /// Sends an IP packet (Ethernet header present, MACs to be filled) towards `dst`: route
    /// lookup, then the next hop's MAC, or hold the packet while it resolves.
    /// Sends a frame made from a received one back where that came from: to its sender's MAC
    /// (the client, or the router that passed its packet on), from the port it arrived on.
    /// For what a flood makes by the million (the SYN proxy's SYN-ACKs): no route or
    /// neighbour lookup, as DPVS's SYN proxy does.
    fn send_back(&mut self, snap: &Snapshot, mut frame: F, tx: &mut impl TxSink<F>) {
        let port = frame.rx_port();
        let Some(ingress) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        let sender = EthernetFrame::new_unchecked(frame.data()).src();
        set_macs(frame.data_mut(), sender, ingress.mac);
        tx.send(port, frame);
    }

    fn route_output(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        dst: IpAddr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Some(route) = snap.routes.lookup(dst) else {
            return self.drop(frame, DropReason::NoRoute);
        };
        self.send_via(snap, now_ms, frame, route.port, route.next_hop(dst), pool, tx);
    }

    /// Sends an IP packet (Ethernet header present, MACs to be filled) out of `port` to
    /// `next_hop`'s MAC, or holds it while that resolves.
    #[allow(clippy::too_many_arguments)]
    fn send_via(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        port: u16,
        next_hop: IpAddr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Some(egress) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        if exceeds_mtu(&frame, egress) {
            // ferrovs does not fragment. What is forwarded was checked before its rewrite (its
            // sender is told) and goes by `send_from`; this is what the box itself sends (echo
            // replies, translated ICMP errors), which nobody is told about.
            return self.drop(frame, DropReason::TooBig);
        }
        self.send_from(snap, now_ms, frame, port, egress.mac, next_hop, pool, tx);
    }

    /// `send_via` for a packet already known to fit `port`, whose MAC is `our_mac`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn send_from(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        port: u16,
        our_mac: MacAddr,
        next_hop: IpAddr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        match self.neigh.resolve(port, next_hop, now_ms) {
            Resolution::Known { mac, probe } => {
                set_macs(frame.data_mut(), mac, our_mac);
                tx.send(port, frame);
                if probe {
                    self.solicit(snap, port, next_hop, Some(mac), pool, tx);
                }
            }
            Resolution::Unknown => match self.neigh.hold(port, next_hop, frame, now_ms) {
                Held::Queued { request: true } => self.solicit(snap, port, next_hop, None, pool, tx),
                Held::Queued { request: false } => {}
                Held::QueueFull(f) => self.drop(f, DropReason::NeighQueueFull),
                Held::TableFull(f) => self.drop(f, DropReason::NeighTableFull),
            },
        }
    }

    /// Where `hop_macs` keeps the MAC of gateway route `index`'s next hop, if it does.
    #[inline]
    fn route_mac_slot(&self, index: usize) -> Option<usize> {
        (index < ROUTE_MAC_SLOTS).then(|| self.hop_macs.len() - ROUTE_MAC_SLOTS + index)
    }

    /// `send_from` for a packet that fits `port`, whose next hop's MAC `hop_macs[cache]`
    /// keeps: from this core's copy while it is fresh, else as `send_from` resolves it, and
    /// the copy made again.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_cached(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        port: u16,
        our_mac: MacAddr,
        next_hop: IpAddr,
        cache: usize,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if let Some(mac) = self.kept_mac(now_ms, cache, port, next_hop) {
            set_macs(frame.data_mut(), mac, our_mac);
            return tx.send(port, frame);
        }
        self.send_resolving(snap, now_ms, frame, port, our_mac, next_hop, cache, pool, tx)
    }

    /// Where a packet to `dst` leaves by the routes: its route's port and next hop, the port's
    /// MAC and MTU, and for a gateway route where this core keeps the gateway's MAC.
    #[inline(always)]
    fn routed(&self, snap: &Snapshot, dst: IpAddr) -> Result<Routed, DropReason> {
        let (index, route) = snap.routes.lookup_indexed(dst).ok_or(DropReason::NoRoute)?;
        let egress = snap.port(route.port).ok_or(DropReason::UnknownPort)?;
        let cache = if route.via.is_some() { self.route_mac_slot(index) } else { None };
        Ok(Routed { port: route.port, next_hop: route.next_hop(dst), our_mac: egress.mac, mtu: egress.mtu, cache })
    }

    /// The MAC of `next_hop` on `port` from this core's copy `hop_macs[cache]`, while the
    /// copy holds (see `send_cached`).
    #[inline(always)]
    fn kept_mac(&self, now_ms: u64, cache: usize, port: u16, next_hop: IpAddr) -> Option<MacAddr> {
        let c = self.hop_macs.get(cache)?;
        let holds = now_ms < c.fresh_until_ms && c.epoch == self.neigh.epoch() && c.ip == next_hop && c.port == port;
        holds.then_some(c.mac)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn send_resolving(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        port: u16,
        our_mac: MacAddr,
        next_hop: IpAddr,
        cache: usize,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx);
        if let Some((mac, fresh_until_ms)) = self.neigh.fresh(port, next_hop) {
            let epoch = self.neigh.epoch();
            if let Some(c) = self.hop_macs.get_mut(cache) {
                *c = HopMac { epoch, port, ip: next_hop, mac, fresh_until_ms };
            }
        }
    }

    /// `send_cached` for a packet to the backend in `slot` by its snapshot `hop`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_to_backend(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        hop: &BackendHop,
        slot: u16,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let next_hop = IpAddr::V4(hop.next_hop);
        self.send_cached(snap, now_ms, frame, hop.port, hop.our_mac, next_hop, usize::from(slot), pool, tx)
    }

    /// Sends an ARP request or neighbour solicitation for `target` on `port`: broadcast /
    /// solicited-node multicast, or unicast to `known` to re-confirm a stale entry.
    fn solicit(
        &mut self,
        snap: &Snapshot,
        port: u16,
        target: IpAddr,
        known: Option<MacAddr>,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let (Some(our_mac), Some(source)) = (snap.port(port).map(|p| p.mac), snap.source_for(port, target)) else {
            // No address of that family on the port: nothing to ask from; the held packets
            // are counted as unresolved when the entry gives up.
            return;
        };
        let Some(mut frame) = pool.alloc() else {
            self.counters.drop_reason(DropReason::NoBuffer).inc();
            return;
        };
        let built = match (target, source) {
            (IpAddr::V4(target), IpAddr::V4(source)) => {
                build_arp_request(&mut frame, our_mac, source, target, known).then_some(Event::ArpRequestsOut)
            }
            (IpAddr::V6(target), IpAddr::V6(source)) => {
                build_neighbor_solicit(&mut frame, our_mac, source, target, known).then_some(Event::NdSolicitsOut)
            }
            _ => None,
        };
        match built {
            Some(event) => {
                self.counters.event(event).inc();
                tx.send(port, frame);
            }
            None => self.drop(frame, DropReason::NoBuffer),
        }
    }
}

/// The checks `other_frame` makes of an IPv4 TCP/UDP frame before its connection lookup, in
/// one pass: to one of our MACs (or multicast) on a known port, a valid IPv4 header with a
/// correct checksum, not a fragment, and a TCP/UDP header that `xlate::parse_v4` accepts.
/// Frames that pass are the load-balancing path's (or SNAT's, or dropped as not for us, as
/// `other_frame` would); everything else goes the long way. Reads the frame, changes nothing.
#[inline(always)]
fn lb_candidate<F: Frame>(snap: &Snapshot, frame: &F) -> Option<Parsed4> {
    let (eth, packet) = frame.data().split_first_chunk::<ETH_LEN>()?;
    let our_mac = snap.port(frame.rx_port())?.mac;
    if eth[..6] != our_mac.0 && eth[0] & 1 == 0 {
        return None;
    }
    if eth[12..14] != EtherType::IPV4.0.to_be_bytes() {
        return None;
    }
    let l4 = xlate::parse_v4(packet).ok()?;
    let ip = packet.first_chunk::<IPV4_HEADER_LEN>()?;
    // MF or a fragment offset.
    if ip[6] & 0x3f != 0 || ip[7] != 0 {
        return None;
    }
    let checksum_ok = if l4.header_len() == IPV4_HEADER_LEN {
        checksum::ipv4_header_ok(ip)
    } else {
        Ipv4Packet::new_unchecked(packet).verify_checksum()
    };
    checksum_ok.then_some(l4)
}

/// 224.0.0.0/24: never forwarded (RFC 5771), the routing protocols' own groups.
#[inline]
fn is_link_local_multicast_v4(dst: Ipv4Addr) -> bool {
    let o = dst.octets();
    o[0] == 224 && o[1] == 0 && o[2] == 0
}

/// True when the IP packet in `frame` (Ethernet header aside) is longer than `egress`'s MTU.
#[inline(always)]
fn exceeds_mtu<F: Frame>(frame: &F, egress: &PortL3) -> bool {
    frame.data().len() > ETH_LEN + usize::from(egress.mtu)
}

#[inline]
fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst(dst);
    eth.set_src(src);
}

/// Turns an echo request (IPv4 packet bytes) into its reply in place.
fn echo_reply_v4(packet: &mut [u8], header_len: usize, requester: Ipv4Addr, us: Ipv4Addr) {
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_src_addr(us);
    ip.set_dst_addr(requester);
    ip.set_ttl(DEFAULT_TTL);
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(&mut packet[header_len..]);
    let code = u16::from(icmp.code());
    // Only the type byte changes: patch the checksum (RFC 1624) instead of summing the data.
    let csum = checksum::update_u16(
        icmp.checksum(),
        u16::from(Icmpv4Type::ECHO_REQUEST.0) << 8 | code,
        u16::from(Icmpv4Type::ECHO_REPLY.0) << 8 | code,
    );
    icmp.set_msg_type(Icmpv4Type::ECHO_REPLY);
    icmp.set_checksum(csum);
}

fn write_ipv6_header(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, payload_len: usize, hop_limit: u8) {
    buf[..IPV6_HEADER_LEN].fill(0);
    let mut ip = Ipv6Packet::new_unchecked(&mut buf[..IPV6_HEADER_LEN]);
    ip.set_version(6);
    ip.set_payload_len(payload_len as u16);
    ip.set_next_header(IpProtocol::ICMPV6);
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

fn build_arp_request<F: Frame>(
    frame: &mut F,
    our_mac: MacAddr,
    source: Ipv4Addr,
    target: Ipv4Addr,
    known: Option<MacAddr>,
) -> bool {
    if !frame.set_len(MIN_FRAME_LEN) {
        return false;
    }
    let data = frame.data_mut();
    data.fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut *data);
    eth.set_dst(known.unwrap_or(MacAddr::BROADCAST));
    eth.set_src(our_mac);
    eth.set_ethertype(EtherType::ARP);
    emit_arp(&mut data[ETH_LEN..], ArpOperation::REQUEST, our_mac, source, MacAddr::ZERO, target);
    true
}

fn build_neighbor_solicit<F: Frame>(
    frame: &mut F,
    our_mac: MacAddr,
    source: Ipv6Addr,
    target: Ipv6Addr,
    known: Option<MacAddr>,
) -> bool {
    let icmp_len = crate::wire::icmpv6::NDISC_EMIT_LEN;
    if !frame.set_len(ETH_LEN + IPV6_HEADER_LEN + icmp_len) {
        return false;
    }
    let dst = if known.is_some() { target } else { solicited_node(target) };
    let data = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *data);
    eth.set_dst(known.unwrap_or(MacAddr::ipv6_multicast(dst)));
    eth.set_src(our_mac);
    eth.set_ethertype(EtherType::IPV6);
    emit_neighbor_solicit(&mut data[ETH_LEN + IPV6_HEADER_LEN..], target, our_mac);
    write_ipv6_header(&mut data[ETH_LEN..], source, dst, icmp_len, 255);
    Icmpv6Packet::new_unchecked(&mut data[ETH_LEN + IPV6_HEADER_LEN..]).fill_checksum(source, dst);
    true
}

mod clientaddr;
mod defence;
mod lb;
mod lb6;
mod nat64;
mod steady;
#[cfg(test)]
mod tests;
