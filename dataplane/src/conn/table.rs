//! [`ConnTable`]: a slab of connections, a hash index with two entries per connection (one
//! per direction), a timer wheel and an eviction queue, all allocated (and written, so faulted
//! in) by the constructor. 68 bytes per connection of capacity in all, both directions keyed
//! exactly.
//!
//! **Slab.** `slots[id]` holds the connection, its deadline and its wheel links: 48 bytes, the
//! connection packed (`Conn` itself is 40 bytes with padding; here TCP or UDP is one flag bit).
//! Without FullNAT a connection's local address is its client's, so the four bytes that hold a
//! FullNAT local address hold the client's initial sequence number instead (see
//! [`ConnTable::client_isn`]).
//! Free slots are chained through `next`, last freed first (it is the one most likely still
//! cached).
//!
//! **Index.** Open addressing over 64-byte buckets, one cache line each: 12 ways of (8-bit tag,
//! 32-bit `id << 1 | dir`), an occupancy mask and an overflow count. A key's home bucket comes
//! from the high half of its hash (multiply-shift, so the bucket count need not be a power of
//! two and memory follows capacity closely), its tag from the low bits. A full bucket sends new
//! entries on to the next one and counts them in its overflow count; a lookup stops at the
//! first bucket on its way whose count is zero, so misses stay nearly as short as hits, and
//! removal just decrements the counts on the way (no tombstones, no rehash; F14's scheme).
//! Buckets are sized for a load of 2/3 when the slab is full (16 bytes per connection). A tag
//! match is confirmed against the full key stored in the connection; with 8-bit tags about one
//! lookup in 40 also reads a connection that is not its own.
//!
//! **Wheel.** [`TICK_MS`]-ms ticks over 8192 buckets (a lap of [`WHEEL_LAP_MS`], 131 s); each
//! bucket is a doubly linked list threaded through the slots. Deadlines are kept in ticks,
//! rounded up, so nothing expires early, and `expire` removes an entry at most one tick late
//! (given budget). An entry sits in the bucket of its deadline's tick modulo the lap; one due
//! in a later lap is passed over (at most twice a lap) until due. `touch` only stores the new deadline: the
//! entry stays where it is, and when its bucket comes due an entry whose deadline has moved
//! on is filed again. So a busy connection costs one store per packet and one re-filing per
//! timeout (or lap). Only a deadline moved *earlier* (a state change to a shorter timeout)
//! unlinks and re-files the entry at once.
//!
//! **Eviction.** A SYN flood must not be able to lock out everything else, so the table keeps
//! the entries it may sacrifice, half-open TCP connections, finished ones (TIME_WAIT, CLOSE)
//! and UDP flows, in a ring in the order they became so (4 bytes per connection of capacity),
//! and counts the half-open ones (see [`ConnTable::half_open`]). [`ConnTable::evict_oldest`]
//! takes the oldest such entry still live and still evictable; established (or closing) TCP
//! connections are never taken.
//! The ring is lazy: an entry that completed its handshake or ended stays in it until it
//! reaches the front and is skipped. A slot reused since it was queued is taken for its new
//! occupant, which is then evicted a little early: approximate age order, exact bounds.
//!
//! Ticks are u32 and compared with wrapping arithmetic: correct as long as deadlines lie less
//! than 2^31 ticks (397 days) from the clock, which a u32 ms timeout guarantees, and `expire`
//! is called at least that often.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

use super::{handshake_incomplete, is_steady, Conn, ConnFlags, ConnKey, Dir, TcpState};
use crate::cpu_hint::prefetch;
use crate::wire::IpProtocol;
use crate::xlate::Rewrite4;

const TCP: IpProtocol = IpProtocol::TCP;
const UDP: IpProtocol = IpProtocol::UDP;

/// A connection's slot number: stable while the connection lives.
pub type ConnId = u32;

/// Wheel granularity: expiry is at most this late.
pub const TICK_MS: u64 = 1 << TICK_SHIFT;
const TICK_SHIFT: u32 = 4;

/// Wheel size: a lap covers every default timeout but ESTABLISHED (900 s) and UDP (300 s),
/// which are looked at a few times over an idle life.
const WHEEL_BUCKETS: u32 = 1 << 13;
const WHEEL_MASK: u32 = WHEEL_BUCKETS - 1;
/// One turn of the wheel.
pub const WHEEL_LAP_MS: u64 = (WHEEL_BUCKETS as u64) << TICK_SHIFT;

const INDEX_WAYS: usize = 12;
const INDEX_FULL: u16 = (1 << INDEX_WAYS) - 1;
/// Index buckets per connection of capacity, as a fraction: 2 entries per connection over
/// 12 ways at load 2/3 is one bucket per 4 connections.
const INDEX_BUCKETS_PER_CONN: (u64, u64) = (1, 4);

/// Ids need one spare bit: index entries carry the direction in bit 0, and wheel links mark
/// a bucket head with bit 31.
const MAX_CAPACITY: u32 = 1 << 30;

/// End of a wheel bucket list or of the free list.
const NIL: u32 = u32::MAX;
/// `Slot::prev` of a free slot.
const FREE: u32 = u32::MAX;
/// `Slot::prev` of the first entry of a wheel bucket: this bit | the bucket number.
const WHEEL_HEAD: u32 = 1 << 31;

/// `ConnFlags` uses bits 0..=6 of `Slot::bits`; this one says UDP (else TCP).
const BIT_UDP: u8 = 1 << 7;

/// A connection packed into 48 bytes with its deadline and wheel links. `repr(C)`, laid out
/// as `Conn` up to its flags (so `conn()` is nearly a copy), the protocol one bit of `bits`:
/// what the fast path reads (keys, rewrite, backend, state, flags, deadline) lies in bytes
/// 0..40, which a prefetch of `client` and of `deadline` covers; `next`/`prev` are for the
/// wheel.
#[repr(C)]
struct Slot {
    client: Ipv4Addr,
    vip: Ipv4Addr,
    backend: Ipv4Addr,
    /// FullNAT (and SNAT): the local address. Otherwise the local address is the client's and
    /// this is the sequence number of the client's SYN that opened the connection.
    laddr_or_isn: u32,
    cport: u16,
    vport: u16,
    bport: u16,
    lport: u16,
    backend_gen: u32,
    service: u16,
    backend_slot: u16,
    laddr_slot: u16,
    state: TcpState,
    /// `ConnFlags` bits, and `BIT_UDP`.
    bits: u8,
    /// Expiry in ticks (rounded up), next to the connection: `touch` follows `lookup`.
    deadline: u32,
    /// Next entry in the same wheel bucket, or next free slot.
    next: u32,
    /// Previous entry in the wheel bucket, `WHEEL_HEAD | bucket` for the first, `FREE` when
    /// the slot is free.
    prev: u32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 48);

impl Slot {
    /// A free slot, `next` in the free list.
    fn free(next: u32) -> Slot {
        Slot {
            client: Ipv4Addr::UNSPECIFIED,
            vip: Ipv4Addr::UNSPECIFIED,
            backend: Ipv4Addr::UNSPECIFIED,
            laddr_or_isn: 0,
            cport: 0,
            vport: 0,
            bport: 0,
            lport: 0,
            backend_gen: 0,
            deadline: 0,
            service: 0,
            backend_slot: 0,
            laddr_slot: u16::MAX,
            state: TcpState::None,
            bits: 0,
            next,
            prev: FREE,
        }
    }

    /// Stores `conn` (TCP or UDP: `insert` checked), leaving deadline and links alone; the
    /// client's ISN is `isn` (when there is room for it, see `set_client_isn`).
    #[inline]
    fn store(&mut self, conn: &Conn, isn: u32) {
        let full_nat = conn.flags.contains(ConnFlags::FULLNAT);
        debug_assert!(
            full_nat || (conn.laddr, conn.lport) == (conn.client, conn.cport),
            "NAT keeps the client's tuple"
        );
        self.client = conn.client;
        self.vip = conn.vip;
        self.backend = conn.backend;
        self.laddr_or_isn = if full_nat { u32::from(conn.laddr) } else { isn };
        self.cport = conn.cport;
        self.vport = conn.vport;
        self.bport = conn.bport;
        self.lport = conn.lport;
        self.backend_gen = conn.backend_gen;
        self.service = conn.service;
        self.backend_slot = conn.backend_slot;
        self.laddr_slot = conn.laddr_slot;
        self.state = conn.state;
        self.bits = conn.flags.bits() | if conn.proto == UDP { BIT_UDP } else { 0 };
    }

    /// TCP or UDP, without a branch.
    #[inline]
    fn proto(&self) -> IpProtocol {
        IpProtocol(TCP.0 + (self.bits >> 7) * (UDP.0 - TCP.0))
    }

    #[inline]
    fn flags(&self) -> ConnFlags {
        ConnFlags::from_bits_truncate(self.bits)
    }

    #[inline]
    fn full_nat(&self) -> bool {
        self.bits & ConnFlags::FULLNAT.bits() != 0
    }

    /// The local address: FullNAT's own, else the client's.
    #[inline]
    fn laddr(&self) -> Ipv4Addr {
        if self.full_nat() {
            Ipv4Addr::from(self.laddr_or_isn)
        } else {
            self.client
        }
    }

    #[inline]
    fn conn(&self) -> Conn {
        Conn {
            client: self.client,
            vip: self.vip,
            backend: self.backend,
            laddr: self.laddr(),
            cport: self.cport,
            vport: self.vport,
            bport: self.bport,
            lport: self.lport,
            proto: self.proto(),
            state: self.state,
            flags: self.flags(),
            service: self.service,
            backend_slot: self.backend_slot,
            backend_gen: self.backend_gen,
            laddr_slot: self.laddr_slot,
        }
    }

    /// Whether `key` is this connection's key of direction `reply` (its `reply_key` or
    /// `original_key`), compared in place.
    #[inline]
    fn has_key(&self, key: &ConnKey, reply: bool) -> bool {
        let (src, dst, sport, dport) = if reply {
            (self.backend, self.laddr(), self.bport, self.lport)
        } else {
            (self.client, self.vip, self.cport, self.vport)
        };
        src == key.src && dst == key.dst && sport == key.sport && dport == key.dport && self.proto() == key.proto
    }
}

/// One cache line of the index.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct IndexBucket {
    tags: [u8; INDEX_WAYS],
    /// Bit i: way i holds an entry.
    used: u16,
    /// Entries stored past this bucket because it was full when they were inserted and their
    /// probe started here or earlier. Saturates: a saturated count is never decremented
    /// (lookups then just probe one bucket further than needed).
    overflow: u16,
    /// `id << 1 | dir`.
    refs: [u32; INDEX_WAYS],
}

const EMPTY_BUCKET: IndexBucket = IndexBucket { tags: [0; INDEX_WAYS], used: 0, overflow: 0, refs: [NIL; INDEX_WAYS] };

impl IndexBucket {
    /// Ways holding an entry with `tag`, as a bit mask. On x86_64 one SSE2 byte compare of
    /// the 12 tag bytes (zero-extended to 16; `used` masks the extra lanes).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn tag_matches(&self, tag: u8) -> u16 {
        let t = &self.tags;
        let lo = u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
        let hi = u64::from(u32::from_le_bytes([t[8], t[9], t[10], t[11]]));
        crate::cpu_hint::bytes_equal_mask(lo, hi, tag) & self.used
    }

    /// Ways holding an entry with `tag`, as a bit mask. SWAR over the 12 tag bytes (8 + 4): a
    /// byte of `tags ^ tag` is zero where the tag matches; the exact zero-byte test sets its
    /// top bit, and a multiply gathers those bits into the mask.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    fn tag_matches(&self, tag: u8) -> u16 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let t = &self.tags;
        let splat = u64::from(tag) * ONES;
        let lo = u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]) ^ splat;
        let hi = u64::from(u32::from_le_bytes([t[8], t[9], t[10], t[11]])) ^ (splat & 0xffff_ffff);
        let zero = |x: u64| !(((x & !HIGH) + !HIGH) | x) & HIGH;
        // Byte k's top bit, moved to bit 0 of its byte, lands on bit 56 + k of the product.
        let gather = |z: u64| ((z >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u16;
        (gather(zero(lo)) | gather(zero(hi) & 0x8080_8080) << 8) & self.used
    }
}

/// Where a key's index entry may be: see [`ConnTable::lookup_hinted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint(u32);

impl Hint {
    /// No guess: `lookup_hinted` searches the index.
    pub const NONE: Hint = Hint(NIL);
}

/// A connection whose packet changes nothing in it, from [`ConnTable::steady`]: ESTABLISHED
/// TCP (the packet without SYN, FIN or RST: the caller checks) or UDP, no sequence adjustment,
/// not SNAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steady {
    /// NAT and FullNAT: the packet's new addresses and ports, for its direction. Going to the
    /// backend (`Dir::Original`, the only way DR and TUN see), `rewrite.dst` is the backend.
    pub rewrite: Rewrite4,
    pub backend_slot: u16,
    pub backend_gen: u32,
    pub flags: ConnFlags,
    pub udp: bool,
}

/// Why `insert` refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds `capacity` connections.
    Full,
    /// Neither TCP nor UDP: the table keeps only those (in one bit).
    Protocol,
    /// One of the connection's two keys is already in the table (or both keys are equal).
    KeyExists,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InsertError::Full => "connection table full",
            InsertError::Protocol => "connection neither TCP nor UDP",
            InsertError::KeyExists => "connection key already in the table",
        })
    }
}

impl std::error::Error for InsertError {}

/// What the timer wheel has done since the table was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerStats {
    /// Entries `expire` looked at.
    pub examined: u64,
    /// Of those, entries removed.
    pub expired: u64,
    /// Of those, entries not yet due, filed again further on.
    pub refiled: u64,
    /// Entries `touch` moved to an earlier bucket because their deadline came closer.
    pub advanced: u64,
}

/// The per-core connection table. See the module documentation for the layout.
pub struct ConnTable {
    slots: Box<[Slot]>,
    buckets: Box<[IndexBucket]>,
    /// First entry of each wheel bucket, or `NIL`.
    wheel: Box<[u32]>,
    free_head: u32,
    len: u32,
    /// The next wheel tick to process; every tick before it is done.
    cursor: u32,
    seed: [u64; 3],
    stats: TimerStats,
    /// Connections that may be evicted (half-open TCP, UDP), oldest first, lazily pruned; a
    /// ring of `capacity` ids starting at `evict_head`.
    evictable: Box<[u32]>,
    evict_head: u32,
    evict_len: u32,
    /// Live TCP connections whose handshake is incomplete (`handshake_incomplete`).
    half_open: u32,
}

/// Whether a connection in this state may be evicted to make room: UDP flows, TCP
/// connections that have not completed their handshake, and finished ones (TIME_WAIT, CLOSE:
/// kept only to catch their stray packets; a busy service's closed connections would fill
/// the table otherwise).
#[inline]
fn evictable(proto: IpProtocol, state: TcpState) -> bool {
    proto == UDP || handshake_incomplete(state) || matches!(state, TcpState::TimeWait | TcpState::Close)
}

/// Counted in [`ConnTable::half_open`].
#[inline]
fn is_half_open(proto: IpProtocol, state: TcpState) -> bool {
    proto == TCP && handshake_incomplete(state)
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The tick `ms` falls in.
#[inline]
fn tick_floor(ms: u64) -> u32 {
    (ms >> TICK_SHIFT) as u32
}

/// The first tick starting at or after `ms`: an entry expires once the clock's tick reaches
/// it, so never before `ms`.
#[inline]
fn tick_ceil(ms: u64) -> u32 {
    (ms.div_ceil(TICK_MS)) as u32
}

/// `a - b` in ticks, for ticks within 2^31 of each other.
#[inline]
fn ticks_after(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[inline]
fn entry_ref(id: ConnId, dir: Dir) -> u32 {
    id << 1 | u32::from(dir == Dir::Reply)
}

#[inline]
fn decode_ref(r: u32) -> (ConnId, Dir) {
    (r >> 1, if r & 1 == 0 { Dir::Original } else { Dir::Reply })
}

impl ConnTable {
    /// A table for `capacity` connections (at most 2^30), with a random hash seed.
    pub fn new(capacity: u32) -> ConnTable {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u32(capacity);
        ConnTable::with_seed(capacity, seed.finish())
    }

    /// Like `new`, with a given hash seed (reproducible layouts for tests and benchmarks).
    pub fn with_seed(capacity: u32, seed: u64) -> ConnTable {
        let (num, den) = INDEX_BUCKETS_PER_CONN;
        let n_buckets = (u64::from(capacity) * num).div_ceil(den).max(1) as usize;
        ConnTable::build(capacity, seed, n_buckets)
    }

    /// A table whose index has `n_buckets` buckets: as few as `2 * capacity / 12 + 1` makes
    /// every bucket overflow, for tests of the overflow counts.
    #[cfg(test)]
    pub(super) fn with_index_buckets(capacity: u32, seed: u64, n_buckets: usize) -> ConnTable {
        assert!(n_buckets * INDEX_WAYS > 2 * capacity as usize);
        ConnTable::build(capacity, seed, n_buckets)
    }

    fn build(capacity: u32, seed: u64, n_buckets: usize) -> ConnTable {
        assert!(capacity <= MAX_CAPACITY, "connection table capacity {capacity} > {MAX_CAPACITY}");
        // Written element by element (not zero pages): all memory is faulted in here, not
        // on the first packets.
        let slots: Box<[Slot]> =
            (0..capacity).map(|id| Slot::free(if id + 1 < capacity { id + 1 } else { NIL })).collect();
        ConnTable {
            slots,
            buckets: vec![EMPTY_BUCKET; n_buckets].into_boxed_slice(),
            wheel: vec![NIL; WHEEL_BUCKETS as usize].into_boxed_slice(),
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            cursor: 0,
            seed: [splitmix64(seed), splitmix64(seed ^ 1), splitmix64(seed ^ 2)],
            stats: TimerStats::default(),
            // NIL, not zero: written, so faulted in now rather than under a flood.
            evictable: vec![NIL; capacity as usize].into_boxed_slice(),
            evict_head: 0,
            evict_len: 0,
            half_open: 0,
        }
    }

    /// The connection and direction a packet with this tuple belongs to.
    #[inline]
    pub fn lookup(&self, key: &ConnKey) -> Option<(ConnId, Dir)> {
        self.find(key, self.hash(key)).map(decode_ref)
    }

    /// `lookup` with the key's [`hash`](Self::hash) already computed (a burst hashes its
    /// packets' keys once, to prefetch, then looks them up).
    #[inline]
    pub fn lookup_hashed(&self, key: &ConnKey, hash: u64) -> Option<(ConnId, Dir)> {
        debug_assert_eq!(hash, self.hash(key));
        self.find(key, hash).map(decode_ref)
    }

    /// `lookup_hashed` with the search inlined into the caller, for a frame on its own (a
    /// call cost its saved registers and the caller's spills around it).
    #[inline(always)]
    pub fn lookup_hashed_inline(&self, key: &ConnKey, hash: u64) -> Option<(ConnId, Dir)> {
        debug_assert_eq!(hash, self.hash(key));
        self.find_inline(key, hash).map(decode_ref)
    }

    /// `lookup_hashed`, trying first the entry `hint` (from `prefetch_conns` of this hash,
    /// however long ago) names. A live connection whose indexed key in that direction is `key`
    /// is the one the index holds for it (indexed keys are unique), whatever changed since;
    /// otherwise the index is searched as usual.
    #[inline(always)]
    pub fn lookup_hinted(&self, key: &ConnKey, hash: u64, hint: Hint) -> Option<(ConnId, Dir)> {
        if hint.0 != NIL {
            let slot = &self.slots[(hint.0 >> 1) as usize];
            // A one-way (DR/TUN) connection's reply key is not indexed: it may be another's.
            let indexed = hint.0 & 1 == 0 || !slot.flags().is_one_way();
            if slot.prev != FREE && indexed && slot.has_key(key, hint.0 & 1 != 0) {
                return Some(decode_ref(hint.0));
            }
        }
        self.lookup_hashed(key, hash)
    }

    /// The index hash of a key, for `lookup_hashed` and the prefetches.
    #[inline]
    pub fn hash(&self, key: &ConnKey) -> u64 {
        let addrs = u64::from(u32::from(key.src)) << 32 | u64::from(u32::from(key.dst));
        let rest = u64::from(key.sport) << 24 | u64::from(key.dport) << 8 | u64::from(key.proto.0);
        let h = fold_mul(addrs ^ self.seed[0], rest ^ self.seed[1]);
        fold_mul(h ^ self.seed[2], 0x9e37_79b9_7f4a_7c15)
    }

    /// Starts loading the home bucket of a key with this hash: the first of a lookup's two
    /// dependent cache misses, to overlap with other work (a burst's other packets).
    #[inline]
    pub fn prefetch_bucket(&self, hash: u64) {
        prefetch(&self.buckets[self.home_bucket(hash)].refs[0]);
    }

    /// Starts loading the connections whose tags match in the home bucket of a key with this
    /// hash: the second miss. Call it some time after `prefetch_bucket`, as it reads the
    /// bucket. A tag match is not yet a hit: a wrong guess costs a wasted load, never a
    /// wrong answer. Returns the first match, for `lookup_hinted`.
    #[inline]
    pub fn prefetch_conns(&self, hash: u64) -> Hint {
        let bucket = &self.buckets[self.home_bucket(hash)];
        let mut hits = bucket.tag_matches(hash as u8);
        let first = if hits != 0 { bucket.refs[hits.trailing_zeros() as usize] } else { NIL };
        while hits != 0 {
            let slot = &self.slots[(bucket.refs[hits.trailing_zeros() as usize] >> 1) as usize];
            // A 48-byte slot may span two lines: its first and its 40th byte cover what the
            // fast path reads.
            prefetch(&slot.client);
            prefetch(&slot.deadline);
            hits &= hits - 1;
        }
        Hint(first)
    }

    /// The connection in slot `id`; `id` must be live (from `lookup`, `insert` or `iter`).
    #[inline]
    pub fn get(&self, id: ConnId) -> Conn {
        let slot = &self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        slot.conn()
    }

    /// What a packet of the live connection in slot `id` going `dir` needs when it changes
    /// nothing in it ([`is_steady`]); None otherwise. Reads the slot in place, skipping `get`'s
    /// copy.
    #[inline(always)]
    pub fn steady(&self, id: ConnId, dir: Dir) -> Option<Steady> {
        let slot = &self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        let udp = slot.bits & BIT_UDP != 0;
        if !is_steady(slot.flags(), udp, slot.state, dir) {
            return None;
        }
        let rewrite = match dir {
            Dir::Original => Rewrite4 { src: slot.laddr(), dst: slot.backend, sport: slot.lport, dport: slot.bport },
            Dir::Reply => Rewrite4 { src: slot.vip, dst: slot.client, sport: slot.vport, dport: slot.cport },
        };
        Some(Steady {
            rewrite,
            backend_slot: slot.backend_slot,
            backend_gen: slot.backend_gen,
            flags: slot.flags(),
            udp,
        })
    }

    /// Sets the TCP state of the live connection in slot `id`.
    #[inline]
    pub fn set_state(&mut self, id: ConnId, state: TcpState) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        let (proto, old) = (slot.proto(), slot.state);
        slot.state = state;
        if is_half_open(proto, old) != is_half_open(proto, state) || evictable(proto, old) != evictable(proto, state) {
            self.state_class_changed(id, proto, old, state);
        }
    }

    /// A connection entered or left the half-open or the evictable states (a handshake's end,
    /// a connection's end, one reopened on its tuple).
    #[cold]
    fn state_class_changed(&mut self, id: ConnId, proto: IpProtocol, old: TcpState, new: TcpState) {
        match (is_half_open(proto, old), is_half_open(proto, new)) {
            (false, true) => self.half_open += 1,
            (true, false) => self.half_open -= 1,
            _ => {}
        }
        if !evictable(proto, old) && evictable(proto, new) {
            self.queue_evictable(id);
        }
    }

    /// Live TCP connections that have not completed their handshake: what a SYN flood fills
    /// the table with, bounded per core by the caller's quota.
    #[inline]
    pub fn half_open(&self) -> usize {
        self.half_open as usize
    }

    /// Queues `id` as evictable. When the ring is full of entries, its front ones are
    /// dropped from it: stale ones first (ended, or established since), and after a few live
    /// ones also those, which then expire by their timers only.
    #[inline(always)]
    fn queue_evictable(&mut self, id: ConnId) {
        if self.evict_len < self.evictable.len() as u32 {
            self.evict_push(id);
        } else {
            self.queue_evictable_full(id);
        }
    }

    /// `queue_evictable` when the ring is full (or has no room at all).
    #[cold]
    #[inline(never)]
    fn queue_evictable_full(&mut self, id: ConnId) {
        let cap = self.evictable.len() as u32;
        if cap == 0 {
            return;
        }
        let mut requeued = 0;
        while self.evict_len == cap {
            let front = self.evict_pop();
            if requeued < 4 && self.evictable_now(front) {
                // Still evictable: back of the queue rather than forgotten.
                requeued += 1;
                self.evict_push(front);
            }
        }
        self.evict_push(id);
    }

    #[inline]
    fn evict_push(&mut self, id: ConnId) {
        let cap = self.evictable.len() as u32;
        let at = (self.evict_head + self.evict_len) % cap;
        self.evictable[at as usize] = id;
        self.evict_len += 1;
    }

    fn evict_pop(&mut self) -> ConnId {
        let id = self.evictable[self.evict_head as usize];
        self.evict_head = (self.evict_head + 1) % self.evictable.len() as u32;
        self.evict_len -= 1;
        id
    }

    /// `id` is live and may be evicted.
    fn evictable_now(&self, id: ConnId) -> bool {
        let slot = &self.slots[id as usize];
        slot.prev != FREE && evictable(slot.proto(), slot.state)
    }

    /// Removes and returns the oldest live half-open, finished (TIME_WAIT, CLOSE) TCP or UDP
    /// connection, to make room for a new one; None when there is none (every entry is an
    /// established or closing TCP connection). Amortised O(1): each queued entry is looked at once.
    pub fn evict_oldest(&mut self) -> Option<Conn> {
        while self.evict_len > 0 {
            let id = self.evict_pop();
            if self.evictable_now(id) {
                return Some(self.remove(id));
            }
        }
        None
    }

    /// Records the sequence number of the client's SYN that opened the live connection in slot
    /// `id`, when there is room for it: not for FullNAT/SNAT, whose local address takes the
    /// place. Returns whether it was kept.
    #[inline]
    pub fn set_client_isn(&mut self, id: ConnId, isn: u32) -> bool {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        if slot.full_nat() {
            return false;
        }
        slot.laddr_or_isn = isn;
        true
    }

    /// The sequence number `set_client_isn` kept for the live connection in slot `id` (None for
    /// FullNAT/SNAT connections).
    #[inline]
    pub fn client_isn(&self, id: ConnId) -> Option<u32> {
        let slot = &self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        (!slot.full_nat()).then_some(slot.laddr_or_isn)
    }

    /// Sets the flags of the live connection in slot `id`. Whether it is one-way (DR/TUN)
    /// must not change: that decides which of its keys the index holds.
    #[inline]
    pub fn set_flags(&mut self, id: ConnId, flags: ConnFlags) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "connection {id} is not live");
        debug_assert_eq!(slot.flags().is_one_way(), flags.is_one_way(), "connection {id} changes direction keying");
        debug_assert_eq!(slot.full_nat(), flags.contains(ConnFlags::FULLNAT), "connection {id} changes FullNAT");
        slot.bits = flags.bits() | (slot.bits & BIT_UDP);
    }

    /// Inserts both keys (only the original one for a DR/TUN connection: its replies never
    /// pass here, and its reply tuple may well equal another connection's); fails (changing
    /// nothing) when full or when a key already exists. The connection expires `timeout_ms`
    /// after `now_ms` unless touched.
    pub fn insert(&mut self, conn: Conn, now_ms: u64, timeout_ms: u32) -> Result<ConnId, InsertError> {
        let original_hash = self.hash(&conn.original_key());
        self.insert_keyed::<true>(&conn, original_hash, 0, now_ms, timeout_ms)
    }

    /// `insert` of a connection whose original key the caller has just looked up and not
    /// found (nothing was inserted since), with that key's [`hash`](Self::hash): the
    /// search for it is not repeated. The reply key is still checked. `client_isn`: what
    /// `set_client_isn` would record (ignored for FullNAT/SNAT).
    #[inline]
    pub fn insert_absent(
        &mut self,
        conn: &Conn,
        original_hash: u64,
        client_isn: u32,
        now_ms: u64,
        timeout_ms: u32,
    ) -> Result<ConnId, InsertError> {
        debug_assert_eq!(original_hash, self.hash(&conn.original_key()));
        debug_assert!(self.find(&conn.original_key(), original_hash).is_none(), "original key already in the table");
        self.insert_keyed::<false>(conn, original_hash, client_isn, now_ms, timeout_ms)
    }

    /// `insert`; `CHECK_ORIGINAL`: whether to search for the original key.
    #[inline(always)]
    fn insert_keyed<const CHECK_ORIGINAL: bool>(
        &mut self,
        conn: &Conn,
        original_hash: u64,
        client_isn: u32,
        now_ms: u64,
        timeout_ms: u32,
    ) -> Result<ConnId, InsertError> {
        if self.len as usize == self.slots.len() {
            return Err(InsertError::Full);
        }
        if conn.proto != TCP && conn.proto != UDP {
            return Err(InsertError::Protocol);
        }
        let (original, reply) = (conn.original_key(), conn.reply_key());
        let keyed_reply = !conn.flags.is_one_way();
        // A one-way connection's reply key is neither checked nor indexed.
        let reply_hash = if keyed_reply { self.hash(&reply) } else { 0 };
        if (keyed_reply && (original == reply || self.find(&reply, reply_hash).is_some()))
            || (CHECK_ORIGINAL && self.find(&original, original_hash).is_some())
        {
            return Err(InsertError::KeyExists);
        }
        if self.len == 0 {
            // The wheel is empty: start it at the present rather than wherever it stopped.
            self.cursor = tick_floor(now_ms);
        }
        let id = self.free_head;
        let slot = &mut self.slots[id as usize];
        self.free_head = slot.next;
        slot.store(conn, client_isn);
        slot.deadline = tick_ceil(now_ms.saturating_add(u64::from(timeout_ms)));
        self.wheel_file(id);
        self.index_insert(original_hash, entry_ref(id, Dir::Original));
        if keyed_reply {
            self.index_insert(reply_hash, entry_ref(id, Dir::Reply));
        }
        self.len += 1;
        if is_half_open(conn.proto, conn.state) {
            self.half_open += 1;
        }
        if evictable(conn.proto, conn.state) {
            self.queue_evictable(id);
        }
        Ok(id)
    }

    /// Removes a live connection and returns it.
    pub fn remove(&mut self, id: ConnId) -> Conn {
        assert!(self.slots[id as usize].prev != FREE, "remove of connection {id}, which is not live");
        let conn = self.slots[id as usize].conn();
        let original = conn.original_key();
        let reply = conn.reply_key();
        self.index_remove(self.hash(&original), entry_ref(id, Dir::Original));
        if !conn.flags.is_one_way() {
            self.index_remove(self.hash(&reply), entry_ref(id, Dir::Reply));
        }
        self.wheel_unlink(id);
        let slot = &mut self.slots[id as usize];
        slot.prev = FREE;
        slot.next = self.free_head;
        self.free_head = id;
        self.len -= 1;
        if is_half_open(conn.proto, conn.state) {
            self.half_open -= 1;
        }
        conn
    }

    /// Sets the connection's expiry to `now_ms + timeout_ms`.
    #[inline(always)]
    pub fn touch(&mut self, id: ConnId, now_ms: u64, timeout_ms: u32) {
        let deadline = tick_ceil(now_ms.saturating_add(u64::from(timeout_ms)));
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.prev != FREE, "touch of connection {id}, which is not live");
        let earlier = ticks_after(deadline, slot.deadline) < 0;
        slot.deadline = deadline;
        if earlier {
            self.advance(id);
        }
    }

    /// The deadline came closer: the bucket the entry sits in may come due too late.
    #[cold]
    #[inline(never)]
    fn advance(&mut self, id: ConnId) {
        self.wheel_unlink(id);
        self.wheel_file(id);
        self.stats.advanced += 1;
    }

    /// Expires due connections with at most `budget` units of work, a unit being one entry
    /// examined or one empty wheel bucket passed; calls `on_expire` for each removed one
    /// before it is gone; returns how many were removed. Call it often (every few ms):
    /// repeated calls catch up with time.
    pub fn expire(&mut self, now_ms: u64, budget: usize, mut on_expire: impl FnMut(&Conn)) -> usize {
        let now = tick_floor(now_ms);
        if self.len == 0 {
            self.cursor = now;
            return 0;
        }
        let lag = ticks_after(now, self.cursor);
        if lag < 0 {
            return 0;
        }
        if lag as u32 >= WHEEL_BUCKETS {
            // Every bucket is due; one lap from here visits each once.
            self.cursor = now.wrapping_sub(WHEEL_BUCKETS - 1);
        }
        let mut removed = 0;
        for _ in 0..budget {
            let id = self.wheel[(self.cursor & WHEEL_MASK) as usize];
            if id == NIL {
                if self.cursor == now {
                    // Stay on the present tick: entries filed into it later are due too.
                    break;
                }
                self.cursor = self.cursor.wrapping_add(1);
                continue;
            }
            self.stats.examined += 1;
            if ticks_after(self.slots[id as usize].deadline, now) <= 0 {
                on_expire(&self.slots[id as usize].conn());
                self.remove(id);
                self.stats.expired += 1;
                removed += 1;
            } else {
                // Not due: its deadline moved on (touch) or is a lap or more ahead.
                self.wheel_unlink(id);
                let deadline = self.slots[id as usize].deadline;
                let bucket = if (deadline ^ self.cursor) & WHEEL_MASK == 0 {
                    // Whole laps ahead: its own bucket is this one, which is being drained.
                    // The one before is visited a lap from now, still before the deadline.
                    self.cursor.wrapping_sub(1) & WHEEL_MASK
                } else {
                    deadline & WHEEL_MASK
                };
                self.wheel_link(id, bucket);
                self.stats.refiled += 1;
            }
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Time left before expiry (rounded up to the tick), 0 when due.
    pub fn expires_in_ms(&self, id: ConnId, now_ms: u64) -> u64 {
        let ahead = ticks_after(self.slots[id as usize].deadline, tick_floor(now_ms));
        if ahead <= 0 {
            0
        } else {
            ((ahead as u64) << TICK_SHIFT) - (now_ms & (TICK_MS - 1))
        }
    }

    /// Live connections, in slot order (walks the whole slab).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, Conn)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.prev != FREE)
            .map(|(id, slot)| (id as ConnId, slot.conn()))
    }

    /// Memory allocated by the table divided by capacity: bytes per tracked connection,
    /// everything included (slot, its share of the index, the wheel).
    pub fn bytes_per_conn(&self) -> usize {
        let bytes = std::mem::size_of::<Self>()
            + std::mem::size_of_val::<[Slot]>(&self.slots)
            + std::mem::size_of_val::<[IndexBucket]>(&self.buckets)
            + std::mem::size_of_val::<[u32]>(&self.wheel)
            + std::mem::size_of_val::<[u32]>(&self.evictable);
        bytes / self.slots.len().max(1)
    }

    pub fn timer_stats(&self) -> TimerStats {
        self.stats
    }

    #[inline]
    fn home_bucket(&self, hash: u64) -> usize {
        (((hash >> 32) * self.buckets.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next_bucket(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// The index entry for `key`.
    #[inline]
    fn find(&self, key: &ConnKey, hash: u64) -> Option<u32> {
        self.find_inline(key, hash)
    }

    /// `find`, inlined (`lookup_hashed_inline`).
    #[inline(always)]
    fn find_inline(&self, key: &ConnKey, hash: u64) -> Option<u32> {
        let tag = hash as u8;
        let mut b = self.home_bucket(hash);
        // Bounded by the bucket count, in case saturated overflow counts form a ring.
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            let mut hits = bucket.tag_matches(tag);
            while hits != 0 {
                let entry = bucket.refs[hits.trailing_zeros() as usize];
                if self.slots[(entry >> 1) as usize].has_key(key, entry & 1 != 0) {
                    return Some(entry);
                }
                hits &= hits - 1;
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next_bucket(b);
        }
        None
    }

    /// Adds an entry; there is always room (the index has more ways than 2 * capacity).
    fn index_insert(&mut self, hash: u64, entry: u32) {
        let mut b = self.home_bucket(hash);
        loop {
            let bucket = &mut self.buckets[b];
            if bucket.used != INDEX_FULL {
                let way = (!bucket.used).trailing_zeros() as usize;
                bucket.tags[way] = hash as u8;
                bucket.refs[way] = entry;
                bucket.used |= 1 << way;
                return;
            }
            bucket.overflow = bucket.overflow.saturating_add(1);
            b = self.next_bucket(b);
        }
    }

    /// Removes an entry, then takes it off the overflow counts of the buckets it passed.
    fn index_remove(&mut self, hash: u64, entry: u32) {
        let tag = hash as u8;
        let home = self.home_bucket(hash);
        let mut b = home;
        for passed in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            let mut hits = bucket.tag_matches(tag);
            while hits != 0 {
                let way = hits.trailing_zeros() as usize;
                if bucket.refs[way] == entry {
                    bucket.used &= !(1 << way);
                    bucket.refs[way] = NIL;
                    let mut p = home;
                    for _ in 0..passed {
                        let count = &mut self.buckets[p].overflow;
                        if *count != u16::MAX {
                            *count -= 1;
                        }
                        p = self.next_bucket(p);
                    }
                    return;
                }
                hits &= hits - 1;
            }
            b = self.next_bucket(b);
        }
        debug_assert!(false, "index entry {entry:#x} missing: were a connection's keys changed?");
    }

    /// Links a slot into the bucket of its deadline's tick, or the cursor's if already due.
    /// Deadlines a lap or more ahead share the bucket of their tick modulo the wheel: they are
    /// looked at once a lap until due.
    #[inline]
    fn wheel_file(&mut self, id: ConnId) {
        let deadline = self.slots[id as usize].deadline;
        let tick = if ticks_after(deadline, self.cursor) <= 0 { self.cursor } else { deadline };
        self.wheel_link(id, tick & WHEEL_MASK);
    }

    #[inline]
    fn wheel_link(&mut self, id: ConnId, bucket: u32) {
        let head = self.wheel[bucket as usize];
        if head != NIL {
            self.slots[head as usize].prev = id;
        }
        let slot = &mut self.slots[id as usize];
        slot.next = head;
        slot.prev = WHEEL_HEAD | bucket;
        self.wheel[bucket as usize] = id;
    }

    fn wheel_unlink(&mut self, id: ConnId) {
        let Slot { prev, next, .. } = self.slots[id as usize];
        if prev & WHEEL_HEAD != 0 {
            self.wheel[(prev & !WHEEL_HEAD) as usize] = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
    }

    /// Buckets a lookup of `key` reads (for tests of the index's probe lengths).
    #[cfg(test)]
    pub(super) fn probe_len(&self, key: &ConnKey) -> usize {
        let hash = self.hash(key);
        let tag = hash as u8;
        let mut b = self.home_bucket(hash);
        for probes in 1..=self.buckets.len() {
            let bucket = &self.buckets[b];
            let mut hits = bucket.tag_matches(tag);
            while hits != 0 {
                let entry = bucket.refs[hits.trailing_zeros() as usize];
                if self.slots[(entry >> 1) as usize].has_key(key, entry & 1 != 0) {
                    return probes;
                }
                hits &= hits - 1;
            }
            if bucket.overflow == 0 {
                return probes;
            }
            b = self.next_bucket(b);
        }
        self.buckets.len()
    }
}

#[cfg(test)]
mod tag_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn tag_matches_is_the_plain_comparison(
            tags in any::<[u8; INDEX_WAYS]>(),
            used in 0..=INDEX_FULL,
            pick in any::<usize>(),
            other in any::<u8>(),
        ) {
            let bucket = IndexBucket { tags, used, overflow: 0, refs: [NIL; INDEX_WAYS] };
            for tag in [tags[pick % INDEX_WAYS], other] {
                let plain = (0..INDEX_WAYS).fold(0u16, |m, way| m | u16::from(tags[way] == tag) << way) & used;
                prop_assert_eq!(bucket.tag_matches(tag), plain);
            }
        }
    }
}
