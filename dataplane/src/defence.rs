//! Admission of new connections: access lists and rate limits, built by the control plane
//! into the snapshot ([`Guard`]) and checked once per new connection, never for packets of
//! tracked connections.
//!
//! - **Access lists**: a global deny list and, per service, a deny list and an allow list
//!   (when one is given, only its sources may connect). Each list is a [`PrefixSet`]: the
//!   longest matching prefix names the rule, whose drops are counted ([`RuleCounters`]).
//! - **Limits** (per service): new connections per second for the whole service, new
//!   connections per second and burst per client address, and a maximum of connections per
//!   backend. A worker core applies its share of each: rates and maxima are divided by the
//!   number of worker cores (RSS spreads a service's and a client's connections over them),
//!   rounded up.
//!
//! The per-client rate is kept in a [`SourceSketch`]: token buckets in a count-min sketch of
//! fixed size per core, so a flood from many sources costs no memory.

use std::net::Ipv4Addr;

use crate::counters::Counter;

/// No rule: the address matches no prefix of the set.
pub const NO_RULE: u32 = u32::MAX;

/// IPv4 prefixes, each with a rule number, for longest-prefix match: built once (by the
/// control plane) into disjoint address ranges, each labelled with the rule of the longest
/// prefix covering it, looked up by binary search (17 steps at 100,000 ranges).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet {
    /// Start of each range, ascending, the first 0; a range ends where the next starts.
    starts: Vec<u32>,
    /// The rule of each range, or `NO_RULE`.
    rules: Vec<u32>,
    prefixes: usize,
}

impl PrefixSet {
    /// Builds the set from (network, length, rule). Host bits of a network are ignored; of
    /// two equal prefixes the first is kept.
    pub fn build(prefixes: &[(Ipv4Addr, u8, u32)]) -> PrefixSet {
        // (start, end exclusive, rule, input order); containing prefixes sort before the
        // ones they contain (same start, longer range first).
        let mut items: Vec<(u64, u64, u32, usize)> = prefixes
            .iter()
            .enumerate()
            .map(|(i, &(net, len, rule))| {
                let len = u32::from(len.min(32));
                let size = 1u64 << (32 - len);
                let start = u64::from(u32::from(net)) & !(size - 1);
                (start, start + size, rule, i)
            })
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.3.cmp(&b.3)));
        items.dedup_by(|later, first| later.0 == first.0 && later.1 == first.1);
        let mut set = PrefixSet { starts: vec![0], rules: vec![NO_RULE], prefixes: items.len() };
        // Prefixes nest or are disjoint: the ones covering the sweep's position form a stack,
        // the innermost (the longest prefix) on top.
        let mut stack: Vec<(u64, u32)> = Vec::new();
        for &(start, end, rule, _) in &items {
            while let Some(&(top_end, _)) = stack.last() {
                if top_end > start {
                    break;
                }
                stack.pop();
                set.emit(top_end, stack.last().map_or(NO_RULE, |t| t.1));
            }
            set.emit(start, rule);
            stack.push((end, rule));
        }
        while let Some((end, _)) = stack.pop() {
            set.emit(end, stack.last().map_or(NO_RULE, |t| t.1));
        }
        set.starts.shrink_to_fit();
        set.rules.shrink_to_fit();
        set
    }

    /// From `at` on, addresses have `rule` (until the next emit).
    fn emit(&mut self, at: u64, rule: u32) {
        if at > u64::from(u32::MAX) {
            return;
        }
        let at = at as u32;
        let n = self.starts.len();
        if self.starts[n - 1] == at {
            self.rules[n - 1] = rule;
            if n >= 2 && self.rules[n - 2] == rule {
                self.starts.pop();
                self.rules.pop();
            }
        } else if self.rules[n - 1] != rule {
            self.starts.push(at);
            self.rules.push(rule);
        }
    }

    /// The rule of the longest prefix containing `addr`, or None.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        let i = self.starts.partition_point(|&s| s <= a).checked_sub(1)?;
        let rule = *self.rules.get(i)?;
        (rule != NO_RULE).then_some(rule)
    }

    /// Distinct prefixes in the set.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Address ranges the set was flattened into (its memory is 8 bytes each).
    pub fn ranges(&self) -> usize {
        self.starts.len()
    }
}

/// Drops per access-list rule, per worker core: each core writes only its own row (a plain
/// load and store, as every counter), the control plane sums the rows.
#[derive(Default)]
pub struct RuleCounters {
    rules: usize,
    cells: Box<[Counter]>,
}

impl RuleCounters {
    pub fn new(rules: usize, cores: usize) -> RuleCounters {
        RuleCounters { rules, cells: (0..rules * cores.max(1)).map(|_| Counter::default()).collect() }
    }

    #[inline]
    pub fn hit(&self, rule: u32, core: u32) {
        if let Some(c) = self.cells.get(core as usize * self.rules + rule as usize) {
            c.inc();
        }
    }

    /// Drops by `rule`, all cores.
    pub fn total(&self, rule: u32) -> u64 {
        self.cells.iter().skip(rule as usize).step_by(self.rules.max(1)).map(Counter::get).sum()
    }
}

impl std::fmt::Debug for RuleCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RuleCounters({} rules)", self.rules)
    }
}

/// A service's admission settings. Rates and maxima are for the whole box: each core takes
/// its share (see the module documentation). 0: no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceGuard {
    /// The service (slot, generation) these are for.
    pub slot: u16,
    pub gen: u32,
    pub deny: PrefixSet,
    /// When not empty, only sources it contains may connect.
    pub allow: PrefixSet,
    /// Counted against when a source is in no prefix of `allow`.
    pub allow_miss_rule: u32,
    pub conns_per_s: u32,
    pub source_conns_per_s: u32,
    pub source_burst: u32,
    /// Per backend, in the order of the service's backends: most connections at once.
    pub backend_max_conns: Vec<u32>,
}

/// Everything [`admit`](crate::pipeline) checks, for all services: part of the snapshot.
#[derive(Debug, Default)]
pub struct Guard {
    pub deny: PrefixSet,
    /// By service slot.
    pub services: Vec<Option<ServiceGuard>>,
    /// Kept from one snapshot to the next while the rules stay the same.
    pub counters: std::sync::Arc<RuleCounters>,
}

impl Guard {
    /// The settings of the service in `slot` with generation `gen`, if it has any.
    #[inline]
    pub fn service(&self, slot: u16, gen: u32) -> Option<&ServiceGuard> {
        self.services.get(usize::from(slot))?.as_ref().filter(|g| g.gen == gen)
    }
}

/// Why a new connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// By this rule of a deny list (global or the service's).
    Denied(u32),
    /// Not in the service's allow list (its `allow_miss_rule`).
    NotAllowed(u32),
    ServiceRate,
    SourceRate,
}

/// A token bucket in a few bytes: thousandths of a token, and when it was last filled (ms,
/// wrapping).
#[derive(Clone, Copy, Default)]
struct Cell {
    milli_tokens: u32,
    last_ms: u32,
}

impl Cell {
    /// Fills the bucket for the time since it was last filled (a new cell is full).
    #[inline]
    fn refill(&mut self, now_ms: u64, per_s: u32, burst: u32) {
        let now = now_ms as u32;
        let cap = u64::from(burst.max(1)) * 1000;
        let elapsed = u64::from(now.wrapping_sub(self.last_ms));
        let fresh = self.last_ms == 0 && self.milli_tokens == 0;
        let tokens = if fresh { cap } else { (u64::from(self.milli_tokens) + elapsed * u64::from(per_s)).min(cap) };
        self.milli_tokens = tokens as u32;
        // 0 marks a fresh cell.
        self.last_ms = now.max(1);
    }
}

/// Sketch rows and cells per row of a core's [`SourceSketch`].
const SKETCH_ROWS: usize = 2;
const SKETCH_WIDTH: usize = 4096;

/// Per-client token buckets in bounded memory: each (client, service) hashes to one cell in
/// each of two rows. A client may connect when one of its cells has a token, and then takes a
/// token from each that has one: as in a count-min sketch, a client is limited only when
/// every one of its cells is drained, which needs it (or clients sharing both its cells, rare)
/// to exceed the rate. 32 KB per core.
pub struct SourceSketch {
    cells: Box<[Cell]>,
    seeds: [u64; SKETCH_ROWS],
}

impl SourceSketch {
    pub fn new(seed: u64) -> SourceSketch {
        SourceSketch {
            cells: vec![Cell::default(); SKETCH_ROWS * SKETCH_WIDTH].into_boxed_slice(),
            seeds: [seed | 1, seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15 | 1],
        }
    }

    /// Takes a token for a new connection of `client` to the service in `slot`; false when it
    /// is over `per_s` (with `burst` saved up).
    pub fn take(&mut self, client: Ipv4Addr, slot: u16, now_ms: u64, per_s: u32, burst: u32) -> bool {
        let key = u64::from(u32::from(client)) << 16 | u64::from(slot);
        let mut idx = [0usize; SKETCH_ROWS];
        let mut any = false;
        for (row, i) in idx.iter_mut().enumerate() {
            let h = (key ^ self.seeds[row]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *i = row * SKETCH_WIDTH + ((h >> 40) as usize % SKETCH_WIDTH);
            let cell = &mut self.cells[*i];
            cell.refill(now_ms, per_s, burst);
            any |= cell.milli_tokens >= 1000;
        }
        if !any {
            return false;
        }
        for i in idx {
            let cell = &mut self.cells[i];
            cell.milli_tokens = cell.milli_tokens.saturating_sub(1000);
        }
        true
    }
}

/// A core's admission state: the per-service rate buckets and the per-client sketch.
pub struct GuardCore {
    /// By service slot: (generation, bucket).
    services: Box<[(u32, Cell)]>,
    pub sources: SourceSketch,
    /// `syn_proxy: auto` on this core.
    pub auto: AutoProxy,
}

impl GuardCore {
    pub fn new(max_services: u16, seed: u64) -> GuardCore {
        GuardCore {
            services: vec![(u32::MAX, Cell::default()); usize::from(max_services)].into_boxed_slice(),
            sources: SourceSketch::new(seed),
            auto: AutoProxy::default(),
        }
    }

    /// The access lists alone: the global deny list, then the service's deny and allow lists.
    /// (A SYN-proxied service checks them on the client's SYN, before it answers.)
    pub fn access(global: &PrefixSet, g: Option<&ServiceGuard>, client: Ipv4Addr) -> Result<(), Refusal> {
        if let Some(rule) = global.lookup(client) {
            return Err(Refusal::Denied(rule));
        }
        let Some(g) = g else { return Ok(()) };
        if let Some(rule) = g.deny.lookup(client) {
            return Err(Refusal::Denied(rule));
        }
        if !g.allow.is_empty() && g.allow.lookup(client).is_none() {
            return Err(Refusal::NotAllowed(g.allow_miss_rule));
        }
        Ok(())
    }

    /// Admits a new connection from `client` to the service `g` describes, with this core's
    /// share of its limits (`cores` workers share them); the first reason it is refused
    /// otherwise. `global` is the global deny list.
    pub fn admit(
        &mut self,
        global: &PrefixSet,
        g: Option<&ServiceGuard>,
        client: Ipv4Addr,
        now_ms: u64,
        cores: u32,
    ) -> Result<(), Refusal> {
        Self::access(global, g, client)?;
        let Some(g) = g else { return Ok(()) };
        if g.conns_per_s > 0 {
            let per_core = g.conns_per_s.div_ceil(cores.max(1));
            if let Some((gen, cell)) = self.services.get_mut(usize::from(g.slot)) {
                if *gen != g.gen {
                    *gen = g.gen;
                    *cell = Cell::default();
                }
                // A second's worth of burst.
                cell.refill(now_ms, per_core, per_core);
                if cell.milli_tokens < 1000 {
                    return Err(Refusal::ServiceRate);
                }
                cell.milli_tokens -= 1000;
            }
        }
        if g.source_conns_per_s > 0 {
            let per_core = g.source_conns_per_s.div_ceil(cores.max(1));
            let burst = g.source_burst.max(g.source_conns_per_s).div_ceil(cores.max(1));
            if !self.sources.take(client, g.slot, now_ms, per_core, burst) {
                return Err(Refusal::SourceRate);
            }
        }
        Ok(())
    }
}

/// `syn_proxy: auto` on one core: whether its SYNs to auto services are answered with cookies
/// now. It engages as soon as the core's half-open connections reach their threshold or the
/// SYNs counted in the current 100 ms window reach a tenth of the per-second threshold, and
/// disengages after a second (ten whole windows) below both. Only its core touches it.
#[derive(Clone, Debug, Default)]
pub struct AutoProxy {
    window: u64,
    syns: u32,
    engaged: bool,
    /// Whole windows below both thresholds since the last one above.
    calm: u64,
    /// The last time it was engaged: cookies sent until then are checked on ACKs for two
    /// minutes more.
    last_engaged_ms: Option<u64>,
}

/// The window SYNs are counted in.
pub const AUTO_WINDOW_MS: u64 = 100;
/// Calm windows before `auto` disengages.
pub const AUTO_CALM_WINDOWS: u64 = 10;

/// What a call changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoChange {
    None,
    Engaged,
    Disengaged,
}

impl AutoProxy {
    /// A SYN to an auto service at `now_ms`, with `half_open` half-open connections on the
    /// core: counts it; returns whether to proxy it and what changed.
    pub fn syn(&mut self, now_ms: u64, half_open: u32, limits: (u32, u32)) -> (bool, AutoChange) {
        let mut change = self.roll(now_ms, half_open, limits);
        self.syns = self.syns.saturating_add(1);
        if !self.engaged && Self::hot(self.syns, half_open, limits) {
            self.engaged = true;
            self.calm = 0;
            change = AutoChange::Engaged;
        }
        if self.engaged {
            self.last_engaged_ms = Some(now_ms);
        }
        (self.engaged, change)
    }

    /// The core's timer: disengages once calm even when no SYN comes.
    pub fn tick(&mut self, now_ms: u64, half_open: u32, limits: (u32, u32)) -> AutoChange {
        self.roll(now_ms, half_open, limits)
    }

    pub fn engaged(&self) -> bool {
        self.engaged
    }

    /// Whether an ACK without a connection may carry one of our cookies: engaged now or less
    /// than two cookie lifetimes (two minutes) ago.
    pub fn cookies_recent(&self, now_ms: u64) -> bool {
        self.last_engaged_ms.is_some_and(|t| now_ms.saturating_sub(t) < 2 * crate::xlate::seqadj::COOKIE_TICK_MS)
    }

    /// Above a threshold: `syns` SYNs in a window or `half_open` connections.
    fn hot(syns: u32, half_open: u32, (half_open_max, syns_per_s): (u32, u32)) -> bool {
        let per_window = (u64::from(syns_per_s) * AUTO_WINDOW_MS).div_ceil(1000).max(1);
        (half_open_max > 0 && half_open >= half_open_max) || (syns_per_s > 0 && u64::from(syns) >= per_window)
    }

    /// Closes the windows that ended before `now_ms`.
    fn roll(&mut self, now_ms: u64, half_open: u32, limits: (u32, u32)) -> AutoChange {
        let window = now_ms / AUTO_WINDOW_MS;
        if window <= self.window {
            return AutoChange::None;
        }
        // The window that ended, then any without a SYN at all; none is calm while the
        // half-open connections are above their threshold.
        let passed = window - self.window;
        if Self::hot(0, half_open, limits) {
            self.calm = 0;
        } else if Self::hot(self.syns, half_open, limits) {
            self.calm = passed - 1;
        } else {
            self.calm += passed;
        }
        self.window = window;
        self.syns = 0;
        if self.engaged && self.calm >= AUTO_CALM_WINDOWS {
            self.engaged = false;
            return AutoChange::Disengaged;
        }
        AutoChange::None
    }
}

/// This core's share of a backend's `max` connections over `cores` workers (0: no limit).
#[inline]
pub fn per_core_max(max: u32, cores: u32) -> u32 {
    if max == 0 {
        u32::MAX
    } else {
        max.div_ceil(cores.max(1))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn auto_engages_on_the_syn_rate_or_half_open_and_disengages_after_a_calm_second() {
        // 1,000 SYNs a second: 100 in a window of 100 ms engage.
        let limits = (50, 1000);
        let mut a = AutoProxy::default();
        let t0 = 10_000;
        assert!(!a.cookies_recent(t0));
        for i in 0..99 {
            assert_eq!(a.syn(t0 + i / 2, 0, limits), (false, AutoChange::None), "SYN {i}");
        }
        assert_eq!(a.syn(t0 + 50, 0, limits), (true, AutoChange::Engaged));
        assert!(a.engaged() && a.cookies_recent(t0 + 50));
        // A flood going on: each window hot, stays on.
        for w in 1..30u64 {
            for i in 0..150u64 {
                assert!(a.syn(t0 + w * 100 + i / 2, 0, limits).0);
            }
        }
        // The flood stops (last SYN in window 29): a few legitimate SYNs a second later keep
        // it on until ten whole windows were calm, then it goes off.
        let end = t0 + 30 * 100;
        assert_eq!(a.syn(end + 500, 0, limits), (true, AutoChange::None), "5 calm windows");
        assert_eq!(a.tick(end + 950, 0, limits), AutoChange::None, "9 calm windows");
        assert_eq!(a.tick(end + 1000, 0, limits), AutoChange::Disengaged);
        assert_eq!(a.syn(end + 1001, 0, limits), (false, AutoChange::None));
        // Cookies sent while on are still checked for two minutes.
        assert!(a.cookies_recent(end + 60_000) && !a.cookies_recent(end + 500 + 120_000));

        // Half-open connections at the threshold engage at once, and keep it on while there.
        let mut a = AutoProxy::default();
        assert_eq!(a.syn(t0, 49, limits), (false, AutoChange::None));
        assert_eq!(a.syn(t0 + 1, 50, limits), (true, AutoChange::Engaged));
        assert_eq!(a.tick(t0 + 5_000, 50, limits), AutoChange::None);
        assert_eq!(a.tick(t0 + 5_100, 10, limits), AutoChange::None);
        assert_eq!(a.tick(t0 + 5_950, 10, limits), AutoChange::None);
        assert_eq!(a.tick(t0 + 6_000, 10, limits), AutoChange::Disengaged);
        // A zero threshold is off.
        let mut a = AutoProxy::default();
        for i in 0..10_000 {
            assert!(!a.syn(t0 + i / 100, 1_000_000, (0, 0)).0);
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn brute(prefixes: &[(Ipv4Addr, u8, u32)], addr: Ipv4Addr) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        let mut seen = std::collections::HashSet::new();
        for &(net, len, rule) in prefixes {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            if !seen.insert((u32::from(net) & mask, len)) {
                continue;
            }
            if u32::from(addr) & mask == u32::from(net) & mask && best.is_none_or(|(l, _)| len > l) {
                best = Some((len, rule));
            }
        }
        best.map(|b| b.1)
    }

    #[test]
    fn longest_prefix_wins() {
        let p = [
            (ip("10.0.0.0"), 8, 1),
            (ip("10.1.0.0"), 16, 2),
            (ip("10.1.2.0"), 24, 3),
            (ip("10.1.2.3"), 32, 4),
            (ip("0.0.0.0"), 0, 5),
            (ip("255.255.255.255"), 32, 6),
        ];
        let set = PrefixSet::build(&p);
        assert_eq!(set.lookup(ip("10.1.2.3")), Some(4));
        assert_eq!(set.lookup(ip("10.1.2.4")), Some(3));
        assert_eq!(set.lookup(ip("10.1.3.0")), Some(2));
        assert_eq!(set.lookup(ip("10.2.0.0")), Some(1));
        assert_eq!(set.lookup(ip("11.0.0.0")), Some(5));
        assert_eq!(set.lookup(ip("255.255.255.255")), Some(6));
        assert_eq!(set.lookup(ip("0.0.0.0")), Some(5));
        assert_eq!(set.len(), 6);
        let empty = PrefixSet::build(&[]);
        assert_eq!(empty.lookup(ip("1.2.3.4")), None);
        assert!(empty.is_empty());
        // Host bits are ignored; the first of two equal prefixes is kept.
        let set = PrefixSet::build(&[(ip("192.0.2.77"), 24, 1), (ip("192.0.2.0"), 24, 2)]);
        assert_eq!(set.lookup(ip("192.0.2.1")), Some(1));
        assert_eq!(set.lookup(ip("192.0.3.1")), None);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn fifty_thousand_prefixes() {
        let p: Vec<(Ipv4Addr, u8, u32)> = (0..50_000u32)
            .map(|i| (Ipv4Addr::from(0x0a00_0000 | i << 8), if i % 7 == 0 { 16 } else { 24 }, i))
            .collect();
        let set = PrefixSet::build(&p);
        for i in (0..50_000u32).step_by(97) {
            let a = Ipv4Addr::from(0x0a00_0000 | i << 8 | 5);
            // Its own /24, or (none of its own) the /16 of the first i sharing it.
            let want = if i % 7 != 0 { i } else { (i & !0xff..=i).find(|j| j % 7 == 0).unwrap() };
            assert_eq!(set.lookup(a), Some(want), "{a}");
        }
        assert!(set.ranges() <= 2 * p.len() + 1);
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u32..1000), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 20),
        ) {
            // Cluster the prefixes so they overlap often.
            let p: Vec<(Ipv4Addr, u8, u32)> =
                prefixes.iter().map(|&(a, l, r)| (Ipv4Addr::from(a & 0xff0f_f0ff), l, r)).collect();
            let set = PrefixSet::build(&p);
            for &(a, _, _) in &p {
                prop_assert_eq!(set.lookup(a), brute(&p, a));
            }
            for a in probes {
                let a = Ipv4Addr::from(a & 0xff0f_f0ff);
                prop_assert_eq!(set.lookup(a), brute(&p, a));
            }
        }
    }

    #[test]
    fn rule_counters_sum_over_cores() {
        let c = RuleCounters::new(3, 2);
        c.hit(1, 0);
        c.hit(1, 1);
        c.hit(2, 1);
        c.hit(7, 0); // Out of range: ignored.
        assert_eq!((c.total(0), c.total(1), c.total(2)), (0, 2, 1));
    }

    fn guard(conns_per_s: u32, source_conns_per_s: u32, source_burst: u32) -> ServiceGuard {
        ServiceGuard { slot: 1, gen: 5, conns_per_s, source_conns_per_s, source_burst, ..Default::default() }
    }

    #[test]
    fn access_lists_in_order() {
        let mut core = GuardCore::new(4, 1);
        let global = PrefixSet::build(&[(ip("203.0.113.0"), 24, 0)]);
        let mut g = guard(0, 0, 0);
        g.deny = PrefixSet::build(&[(ip("198.51.100.0"), 24, 1)]);
        g.allow = PrefixSet::build(&[(ip("198.51.0.0"), 16, 2), (ip("192.0.2.0"), 24, 3)]);
        g.allow_miss_rule = 4;
        let mut admit = |a: &str| core.admit(&global, Some(&g), ip(a), 1000, 1);
        assert_eq!(admit("203.0.113.9"), Err(Refusal::Denied(0)));
        assert_eq!(admit("198.51.100.9"), Err(Refusal::Denied(1)));
        assert_eq!(admit("198.51.101.9"), Ok(()));
        assert_eq!(admit("192.0.2.9"), Ok(()));
        assert_eq!(admit("10.0.0.1"), Err(Refusal::NotAllowed(4)));
        // No service settings: only the global list applies.
        assert_eq!(core.admit(&global, None, ip("10.0.0.1"), 1000, 1), Ok(()));
        assert_eq!(core.admit(&global, None, ip("203.0.113.1"), 1000, 1), Err(Refusal::Denied(0)));
    }

    #[test]
    fn service_rate_is_shared_between_cores() {
        let mut core = GuardCore::new(4, 1);
        let none = PrefixSet::default();
        let g = guard(100, 0, 0);
        // Two cores: 50 a second each, a second's burst.
        let ok = (0..200).filter(|i| core.admit(&none, Some(&g), Ipv4Addr::from(*i as u32), 1000, 2).is_ok()).count();
        assert_eq!(ok, 50);
        assert_eq!(core.admit(&none, Some(&g), ip("10.0.0.1"), 1000, 2), Err(Refusal::ServiceRate));
        // 100 ms later: 5 more.
        let ok = (0..20).filter(|_| core.admit(&none, Some(&g), ip("10.0.0.1"), 1100, 2).is_ok()).count();
        assert_eq!(ok, 5);
        // A new service in the slot starts afresh.
        let g2 = ServiceGuard { gen: 6, ..g };
        assert_eq!(core.admit(&none, Some(&g2), ip("10.0.0.1"), 1100, 2), Ok(()));
    }

    #[test]
    fn source_rate_limits_a_heavy_client_not_the_others() {
        let mut core = GuardCore::new(4, 7);
        let none = PrefixSet::default();
        let g = guard(0, 10, 20);
        let heavy = ip("198.51.100.7");
        let ok = (0..100).filter(|_| core.admit(&none, Some(&g), heavy, 5000, 1).is_ok()).count();
        assert_eq!(ok, 20, "the burst");
        assert_eq!(core.admit(&none, Some(&g), heavy, 5000, 1), Err(Refusal::SourceRate));
        // Light clients, thousands of them, each a few connections: all admitted.
        let mut refused = 0;
        for i in 0..5000u32 {
            let c = Ipv4Addr::from(0xc000_0200 + (i << 8));
            for _ in 0..3 {
                refused += usize::from(core.admit(&none, Some(&g), c, 5000, 1).is_err());
            }
        }
        assert_eq!(refused, 0);
        // A second later the heavy client has 10 more.
        let ok = (0..100).filter(|_| core.admit(&none, Some(&g), heavy, 6000, 1).is_ok()).count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn per_core_share_of_a_maximum() {
        assert_eq!(per_core_max(0, 4), u32::MAX);
        assert_eq!(per_core_max(10, 4), 3);
        assert_eq!(per_core_max(10, 1), 10);
    }
}
