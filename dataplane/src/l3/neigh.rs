//! The per-core neighbour table (ARP for IPv4, neighbour discovery for IPv6).
//!
//! Fixed capacity, open addressing with linear probing and backward-shift deletion, so no
//! tombstones build up and nothing allocates after creation. While a next hop resolves, up to
//! `pending_per_neighbour` packets wait for it in a flat preallocated store. Aging walks a
//! bounded number of slots per call, never the whole table.

use std::net::IpAddr;

use crate::net::MacAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighParams {
    /// Slots; a power of two. The table refuses new entries beyond 7/8 of it.
    pub capacity: usize,
    /// An entry confirmed this recently is REACHABLE; after that STALE (still used, and
    /// re-probed by unicast when used).
    pub reachable_ms: u64,
    /// An entry neither confirmed nor used for this long is removed.
    pub stale_ms: u64,
    pub pending_per_neighbour: usize,
    pub probe_interval_ms: u64,
    /// Requests sent for an INCOMPLETE entry before it and its queued packets are dropped.
    pub max_probes: u8,
}

impl Default for NeighParams {
    fn default() -> Self {
        NeighParams {
            capacity: 4096,
            reachable_ms: 30_000,
            stale_ms: 600_000,
            pending_per_neighbour: 4,
            probe_interval_ms: 1_000,
            max_probes: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighState {
    Incomplete,
    Reachable,
    Stale,
}

impl NeighState {
    pub fn as_str(self) -> &'static str {
        match self {
            NeighState::Incomplete => "incomplete",
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    port: u16,
    ip: IpAddr,
    mac: Option<MacAddr>,
    confirmed_ms: u64,
    used_ms: u64,
    last_probe_ms: u64,
    probes: u8,
    pending: u8,
}

/// The answer to "where does a packet for this neighbour go?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Send to `mac`; when `probe` is set the entry is stale: also send a unicast request
    /// to `mac` so it gets confirmed.
    Known {
        mac: MacAddr,
        probe: bool,
    },
    Unknown,
}

/// What became of a packet handed to [`NeighTable::hold`].
pub enum Held<F> {
    /// Queued. `request` is true when this created the entry: send the first request now.
    Queued {
        request: bool,
    },
    QueueFull(F),
    TableFull(F),
}

/// What aging asks the caller to do.
pub enum Aging<F> {
    /// Send another request for an unresolved neighbour.
    Probe { port: u16, ip: IpAddr },
    /// A packet that waited for a neighbour that never answered.
    Unresolved(F),
    /// An unused entry was removed.
    Expired,
}

/// One entry as `fvs neigh show` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighView {
    pub port: u16,
    pub ip: IpAddr,
    pub mac: Option<MacAddr>,
    pub state: NeighState,
    /// Since the entry was last confirmed (for INCOMPLETE: since the last request).
    pub age_ms: u64,
    pub queued: u32,
}

pub struct NeighTable<F> {
    slots: Box<[Option<Entry>]>,
    /// `pending_per_neighbour` places per slot, moved along with their entry.
    pending: Box<[Option<F>]>,
    params: NeighParams,
    len: usize,
    scan_cursor: usize,
    /// Changes whenever an entry's MAC changes or an entry goes: a core's copies of
    /// resolutions (`fresh`) hold only while it is the same.
    epoch: u32,
}

#[inline]
fn hash(port: u16, ip: IpAddr) -> u64 {
    let folded = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(29)
        }
    };
    (folded ^ (u64::from(port) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<F> NeighTable<F> {
    pub fn new(params: NeighParams) -> Self {
        assert!(params.capacity.is_power_of_two(), "neighbour capacity must be a power of two");
        let per = params.pending_per_neighbour.clamp(1, 255);
        let params = NeighParams { pending_per_neighbour: per, ..params };
        NeighTable {
            slots: vec![None; params.capacity].into_boxed_slice(),
            pending: (0..params.capacity * per).map(|_| None).collect(),
            params,
            len: 0,
            scan_cursor: 0,
            epoch: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn params(&self) -> &NeighParams {
        &self.params
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, port: u16, ip: IpAddr) -> usize {
        (hash(port, ip) >> 32) as usize & self.mask()
    }

    #[inline]
    fn find(&self, port: u16, ip: IpAddr) -> Option<usize> {
        let mut i = self.home(port, ip);
        loop {
            match &self.slots[i] {
                None => return None,
                Some(e) if e.port == port && e.ip == ip => return Some(i),
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
    }

    fn insert_new(&mut self, entry: Entry) -> Option<usize> {
        if self.len >= self.slots.len() - self.slots.len() / 8 {
            return None;
        }
        let mut i = self.home(entry.port, entry.ip);
        while self.slots[i].is_some() {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = Some(entry);
        self.len += 1;
        Some(i)
    }

    fn pending_range(&self, slot: usize) -> std::ops::Range<usize> {
        let per = self.params.pending_per_neighbour;
        slot * per..(slot + 1) * per
    }

    /// Removes slot `i`, handing its queued packets to `dropped`, and shifts the following
    /// cluster back so every entry stays reachable from its home slot.
    fn remove(&mut self, i: usize, mut dropped: impl FnMut(F)) {
        for p in self.pending_range(i) {
            if let Some(f) = self.pending[p].take() {
                dropped(f);
            }
        }
        self.slots[i] = None;
        self.len -= 1;
        self.epoch = self.epoch.wrapping_add(1);
        let mask = self.mask();
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some(e) = self.slots[j] {
            let home = self.home(e.port, e.ip);
            // Move e into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = self.slots[j].take();
                let (from, to) = (self.pending_range(j), self.pending_range(hole));
                for (a, b) in from.zip(to) {
                    self.pending[b] = self.pending[a].take();
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
    }

    /// Where a packet for (port, ip) goes now. Marks a known entry used.
    #[inline]
    pub fn resolve(&mut self, port: u16, ip: IpAddr, now_ms: u64) -> Resolution {
        let Some(i) = self.find(port, ip) else { return Resolution::Unknown };
        let params = self.params;
        let Some(e) = self.slots[i].as_mut() else { return Resolution::Unknown };
        let Some(mac) = e.mac else { return Resolution::Unknown };
        e.used_ms = now_ms;
        let stale = now_ms.saturating_sub(e.confirmed_ms) >= params.reachable_ms;
        let probe = stale && now_ms.saturating_sub(e.last_probe_ms) >= params.probe_interval_ms;
        if probe {
            e.last_probe_ms = now_ms;
        }
        Resolution::Known { mac, probe }
    }

    /// See the field. Compare for equality only (it wraps).
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The MAC of (port, ip) and until when `resolve` gives exactly it without a probe, the
    /// entry staying (REACHABLE, confirmed less than `reachable_ms` and `stale_ms` ago), as
    /// long as `epoch` does not change. A caller may use the MAC until then without asking
    /// `resolve`: the entry's use time is not refreshed meanwhile, which only aging reads,
    /// and aging does not remove it before then.
    pub fn fresh(&self, port: u16, ip: IpAddr) -> Option<(MacAddr, u64)> {
        let e = self.slots[self.find(port, ip)?].as_ref()?;
        let window = self.params.reachable_ms.min(self.params.stale_ms);
        Some((e.mac?, e.confirmed_ms.saturating_add(window)))
    }

    /// Queues `frame` until (port, ip) resolves, creating an INCOMPLETE entry if needed.
    pub fn hold(&mut self, port: u16, ip: IpAddr, frame: F, now_ms: u64) -> Held<F> {
        let (slot, created) = match self.find(port, ip) {
            Some(i) => (i, false),
            None => {
                let entry = Entry {
                    port,
                    ip,
                    mac: None,
                    confirmed_ms: 0,
                    used_ms: now_ms,
                    last_probe_ms: now_ms,
                    probes: 1,
                    pending: 0,
                };
                match self.insert_new(entry) {
                    Some(i) => (i, true),
                    None => return Held::TableFull(frame),
                }
            }
        };
        let per = self.params.pending_per_neighbour;
        let Some(e) = self.slots[slot].as_mut() else { return Held::TableFull(frame) };
        if usize::from(e.pending) >= per {
            return Held::QueueFull(frame);
        }
        let place = slot * per + usize::from(e.pending);
        e.pending += 1;
        self.pending[place] = Some(frame);
        Held::Queued { request: created }
    }

    /// Records that (port, ip) is at `mac`, as an ARP reply or NA says, or a request to us
    /// implies. `create`: make an entry if there is none (a request to us, RFC 826's merge);
    /// otherwise only an existing one is updated. Queued packets go to `release` with the MAC.
    /// Returns true when an entry was created or its MAC changed.
    pub fn confirm(
        &mut self,
        port: u16,
        ip: IpAddr,
        mac: MacAddr,
        now_ms: u64,
        create: bool,
        mut release: impl FnMut(F, MacAddr),
    ) -> bool {
        let slot = match self.find(port, ip) {
            Some(i) => i,
            None if create => {
                let entry = Entry {
                    port,
                    ip,
                    mac: Some(mac),
                    confirmed_ms: now_ms,
                    used_ms: now_ms,
                    last_probe_ms: now_ms,
                    probes: 0,
                    pending: 0,
                };
                return self.insert_new(entry).is_some();
            }
            None => return false,
        };
        let range = self.pending_range(slot);
        let Some(e) = self.slots[slot].as_mut() else { return false };
        let changed = e.mac != Some(mac);
        if changed {
            self.epoch = self.epoch.wrapping_add(1);
        }
        e.mac = Some(mac);
        e.confirmed_ms = now_ms;
        e.probes = 0;
        e.pending = 0;
        for p in range {
            if let Some(f) = self.pending[p].take() {
                release(f, mac);
            }
        }
        changed
    }

    /// Ages up to `budget` slots: re-probes unresolved entries, gives up on those that did
    /// not answer `max_probes` requests, and removes entries unused for `stale_ms`.
    pub fn age(&mut self, now_ms: u64, budget: usize, mut out: impl FnMut(Aging<F>)) {
        let params = self.params;
        for _ in 0..budget.min(self.slots.len()) {
            let i = self.scan_cursor;
            let Some(e) = self.slots[i].as_mut() else {
                self.scan_cursor = (i + 1) & self.mask();
                continue;
            };
            match e.mac {
                None if now_ms.saturating_sub(e.last_probe_ms) >= params.probe_interval_ms => {
                    if e.probes >= params.max_probes {
                        self.remove(i, |f| out(Aging::Unresolved(f)));
                        // The slot now holds a shifted entry (or nothing): look at it again.
                        continue;
                    }
                    e.probes += 1;
                    e.last_probe_ms = now_ms;
                    out(Aging::Probe { port: e.port, ip: e.ip });
                }
                Some(_) if now_ms.saturating_sub(e.confirmed_ms.max(e.used_ms)) >= params.stale_ms => {
                    self.remove(i, |_| {});
                    out(Aging::Expired);
                    continue;
                }
                _ => {}
            }
            self.scan_cursor = (i + 1) & self.mask();
        }
    }

    /// Every entry, for `fvs neigh show`.
    pub fn dump(&self, now_ms: u64) -> Vec<NeighView> {
        self.slots
            .iter()
            .flatten()
            .map(|e| {
                let state = match e.mac {
                    None => NeighState::Incomplete,
                    Some(_) if now_ms.saturating_sub(e.confirmed_ms) < self.params.reachable_ms => {
                        NeighState::Reachable
                    }
                    Some(_) => NeighState::Stale,
                };
                let since = if e.mac.is_some() { e.confirmed_ms } else { e.last_probe_ms };
                NeighView {
                    port: e.port,
                    ip: e.ip,
                    mac: e.mac,
                    state,
                    age_ms: now_ms.saturating_sub(since),
                    queued: u32::from(e.pending),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn params() -> NeighParams {
        NeighParams { capacity: 16, ..NeighParams::default() }
    }

    #[test]
    fn hold_then_confirm_releases_in_order() {
        let mut t: NeighTable<u32> = NeighTable::new(params());
        assert_eq!(t.resolve(0, ip("192.0.2.2"), 0), Resolution::Unknown);
        assert!(matches!(t.hold(0, ip("192.0.2.2"), 1, 0), Held::Queued { request: true }));
        assert!(matches!(t.hold(0, ip("192.0.2.2"), 2, 0), Held::Queued { request: false }));
        t.hold(0, ip("192.0.2.2"), 3, 0);
        t.hold(0, ip("192.0.2.2"), 4, 0);
        assert!(matches!(t.hold(0, ip("192.0.2.2"), 5, 0), Held::QueueFull(5)));
        assert_eq!(t.dump(10)[0].state, NeighState::Incomplete);
        assert_eq!(t.dump(10)[0].queued, 4);
        let mut released = Vec::new();
        t.confirm(0, ip("192.0.2.2"), MAC, 20, false, |f, m| released.push((f, m)));
        assert_eq!(released, vec![(1, MAC), (2, MAC), (3, MAC), (4, MAC)]);
        assert_eq!(t.resolve(0, ip("192.0.2.2"), 30), Resolution::Known { mac: MAC, probe: false });
        // Same IP on another port is another neighbour.
        assert_eq!(t.resolve(1, ip("192.0.2.2"), 30), Resolution::Unknown);
    }

    #[test]
    fn confirm_without_create_ignores_strangers() {
        let mut t: NeighTable<u32> = NeighTable::new(params());
        assert!(!t.confirm(0, ip("192.0.2.9"), MAC, 0, false, |_, _| {}));
        assert!(t.is_empty());
        assert!(t.confirm(0, ip("192.0.2.9"), MAC, 0, true, |_, _| {}));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn stale_entries_probe_and_expire() {
        let p = params();
        let mut t: NeighTable<u32> = NeighTable::new(p);
        t.confirm(0, ip("2001:db8::2"), MAC, 0, true, |_, _| {});
        assert_eq!(t.resolve(0, ip("2001:db8::2"), 1), Resolution::Known { mac: MAC, probe: false });
        let later = p.reachable_ms + 5;
        assert_eq!(t.resolve(0, ip("2001:db8::2"), later), Resolution::Known { mac: MAC, probe: true });
        assert_eq!(t.resolve(0, ip("2001:db8::2"), later + 1), Resolution::Known { mac: MAC, probe: false });
        assert_eq!(t.dump(later)[0].state, NeighState::Stale);
        let mut expired = 0;
        // Last used at later + 1: not expired one millisecond before stale_ms has passed.
        t.age(later + p.stale_ms, 16, |_| {});
        assert_eq!(t.len(), 1);
        t.age(later + 1 + p.stale_ms, 16, |a| {
            if let Aging::Expired = a {
                expired += 1
            }
        });
        assert_eq!(expired, 1);
        assert!(t.is_empty());
    }

    #[test]
    fn unresolved_entries_probe_then_give_up() {
        let p = params();
        let mut t: NeighTable<u32> = NeighTable::new(p);
        t.hold(0, ip("192.0.2.3"), 7, 0);
        let mut probes = 0;
        let mut lost = Vec::new();
        for step in 1..=10 {
            t.age(step * p.probe_interval_ms, 16, |a| match a {
                Aging::Probe { .. } => probes += 1,
                Aging::Unresolved(f) => lost.push(f),
                Aging::Expired => {}
            });
        }
        // The first request went out with hold(); aging sends the rest.
        assert_eq!(probes, usize::from(p.max_probes) - 1);
        assert_eq!(lost, vec![7]);
        assert!(t.is_empty());
    }

    #[test]
    fn table_full_is_refused_and_removal_keeps_clusters_reachable() {
        let mut t: NeighTable<u32> = NeighTable::new(params());
        let mut inserted = Vec::new();
        for i in 0..32u32 {
            let a = IpAddr::V4((0xC000_0200 + i).into());
            if t.confirm(0, a, MAC, 0, true, |_, _| {}) {
                inserted.push(a);
            }
        }
        assert_eq!(inserted.len(), 14, "7/8 of 16 slots");
        assert!(matches!(t.hold(0, ip("198.51.100.1"), 1, 0), Held::TableFull(1)));
        // Expire every other entry by using the rest, then check the survivors resolve.
        let p = *t.params();
        for a in inserted.iter().step_by(2) {
            t.resolve(0, *a, p.stale_ms);
        }
        // A removal re-examines its slot, so one pass of 16 may not reach every slot.
        t.age(p.stale_ms, 16, |_| {});
        t.age(p.stale_ms, 16, |_| {});
        for (k, a) in inserted.iter().enumerate() {
            let known = matches!(t.resolve(0, *a, p.stale_ms), Resolution::Known { .. });
            assert_eq!(known, k % 2 == 0, "{a}");
        }
    }
}
