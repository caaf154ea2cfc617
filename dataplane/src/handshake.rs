//! Handshake latency per backend (NAT and FullNAT): the time from the client's SYN forwarded
//! to the backend until the backend's SYN-ACK is seen, as a histogram per backend slot and
//! core.
//!
//! The SYN's time has no room in the connection's 48-byte slot (every field is in use in
//! FullNAT; in NAT the spare word holds the client's ISN, which the half-open reuse check
//! needs), so it goes to a small per-core direct-mapped table instead: entry `id % SLOTS`
//! holds (connection id, time). A SYN-ACK whose connection's entry has been taken by a later
//! SYN (more than `SLOTS` handshakes of one core in flight whose ids collide, as in a SYN
//! flood) gives no sample rather than a wrong one; a connection that ends before its SYN-ACK
//! leaves its entry until the next connection with its id (a new TCP one writes its own SYN
//! time; SNAT, DR, TUN and UDP ones never ask). The time is the worker's TSC (the clock
//! its timers already read once per loop), stored shifted to fit 32 bits; it is only turned
//! into microseconds for a sample. Cost: a store per new TCP connection, a load, compare and
//! a few counter stores per first reply (the SYN-ACK); nothing on established packets.

use crate::conn::ConnId;
use crate::counters::Counter;

/// Upper bounds (inclusive, microseconds) of the histogram's buckets; one more takes the rest.
pub const BUCKETS_US: [u64; 13] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];
pub const N_BUCKETS: usize = BUCKETS_US.len() + 1;

/// Entries of the per-core table of SYN times (a power of two): 32 KiB.
const SLOTS: usize = 4096;
/// TSC ticks are stored divided by 2^SHIFT in 32 bits: at 3 GHz a step of 0.34 us and a wrap
/// after 24 minutes, longer than any half-open connection lives.
const SHIFT: u32 = 10;
/// An empty entry.
const NONE: u32 = u32::MAX;

/// One backend slot's histogram on one core. Valid for the backend whose generation `gen`
/// holds: the core resets it when a sample comes for a new occupant of the slot.
#[derive(Default)]
pub struct HandshakeCounters {
    pub gen: Counter,
    /// Samples per bucket of [`BUCKETS_US`] (not cumulative), the last one for slower.
    pub buckets: [Counter; N_BUCKETS],
    pub sum_us: Counter,
}

impl HandshakeCounters {
    /// Sum of the buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Counter::get).sum()
    }
}

/// The bucket of a latency.
pub fn bucket(us: u64) -> usize {
    BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(BUCKETS_US.len())
}

/// A core's clock for handshakes and the SYN times of its half-open connections.
pub struct HandshakeClock {
    /// TSC ticks since the worker started, as of this loop iteration.
    now_ticks: u64,
    ticks_per_us: u64,
    /// (connection id, ticks >> SHIFT) by `id % SLOTS`.
    syn_sent: Box<[(u32, u32)]>,
}

impl Default for HandshakeClock {
    fn default() -> Self {
        HandshakeClock { now_ticks: 0, ticks_per_us: 1, syn_sent: vec![(NONE, 0); SLOTS].into_boxed_slice() }
    }
}

impl HandshakeClock {
    /// The worker's clock, once per loop iteration: TSC ticks since it started, and a
    /// microsecond's worth.
    #[inline]
    pub fn set_now(&mut self, ticks: u64, ticks_per_us: u64) {
        self.now_ticks = ticks;
        self.ticks_per_us = ticks_per_us.max(1);
    }

    /// The client's SYN of connection `id` is being forwarded now.
    #[inline]
    pub fn syn_sent(&mut self, id: ConnId) {
        self.syn_sent[id as usize % SLOTS] = (id, (self.now_ticks >> SHIFT) as u32);
    }

    /// The backend's SYN-ACK of connection `id`: the latency in microseconds since its SYN,
    /// when the entry is still its own (taken once).
    #[cold]
    pub fn syn_ack_seen(&mut self, id: ConnId) -> Option<u64> {
        let entry = &mut self.syn_sent[id as usize % SLOTS];
        if entry.0 != id {
            return None;
        }
        let sent = entry.1;
        *entry = (NONE, 0);
        let elapsed = ((self.now_ticks >> SHIFT) as u32).wrapping_sub(sent);
        Some((u64::from(elapsed) << SHIFT) / self.ticks_per_us)
    }
}

/// Adds a sample of `us` to a backend slot's histogram of generation `gen`, resetting it first
/// when the slot has a new occupant.
#[cold]
pub fn record(h: &HandshakeCounters, gen: u32, us: u64) {
    if h.gen.get() != u64::from(gen) {
        for c in h.buckets.iter().chain([&h.sum_us]) {
            c.set(0);
        }
        h.gen.set(u64::from(gen));
    }
    h.buckets[bucket(us)].inc();
    h.sum_us.add(us);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(100), 0);
        assert_eq!(bucket(101), 1);
        assert_eq!(bucket(1_000_000), 12);
        assert_eq!(bucket(1_000_001), 13);
    }

    #[test]
    fn a_syn_ack_measures_from_its_own_syn_once() {
        let mut c = HandshakeClock::default();
        // 3 GHz: 3000 ticks a microsecond.
        c.set_now(3_000_000, 3000);
        c.syn_sent(7);
        c.set_now(3_000_000 + 450 * 3000, 3000);
        let us = c.syn_ack_seen(7).unwrap();
        assert!((449..=450).contains(&us), "{us}");
        assert_eq!(c.syn_ack_seen(7), None, "a retransmitted SYN-ACK is no second sample");
        // A later connection that lands on the same entry takes it.
        c.syn_sent(7);
        c.syn_sent(7 + SLOTS as u32);
        assert_eq!(c.syn_ack_seen(7), None);
        assert!(c.syn_ack_seen(7 + SLOTS as u32).is_some());
    }

    #[test]
    fn a_new_occupant_of_the_slot_starts_afresh() {
        let h = HandshakeCounters::default();
        record(&h, 3, 120);
        record(&h, 3, 90);
        assert_eq!((h.count(), h.sum_us.get(), h.buckets[0].get(), h.buckets[1].get()), (2, 210, 1, 1));
        record(&h, 4, 2_000_000);
        assert_eq!((h.count(), h.sum_us.get(), h.buckets[13].get(), h.gen.get()), (1, 2_000_000, 1, 4));
    }
}
