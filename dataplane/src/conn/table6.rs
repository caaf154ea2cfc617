//! The per-core IPv6 connection table. Kept apart from the IPv4 [`ConnTable`](super::ConnTable)
//! so that table's 48-byte slot and its fast path stay as they are: an IPv6 connection holds
//! four 16-byte addresses and would more than double every IPv4 slot.
//!
//! Layout: a slab of entries (the connection, its deadline, the client's ISN) and an
//! open-addressing index (linear probing, backward-shift deletion) of both keys of every
//! connection, sized to at most half full, with a byte of each key's hash beside each
//! reference: a probe reads the entry (its 37-byte key, a cache miss in a large table) only
//! when that byte matches, one time in 256 for another key. Expiry sweeps the slab with a cursor, a bounded
//! number of entries per call: no timer wheel, one pass over the slab every
//! `capacity / (4 * budget)` calls. Nothing allocates after the constructor.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv6Addr;

use super::{ConnFlags, Dir, InsertError, TcpState, Timeouts};
use crate::wire::IpProtocol;

/// A packet's own 5-tuple over IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnKey6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: IpProtocol,
}

/// One tracked IPv6 connection, both directions: the fields of [`super::Conn`] with IPv6
/// addresses. NAT: `laddr == client`, `lport == cport`.
///
/// NAT64 connections live here too, their IPv4 backend and local address held IPv4-mapped
/// (`::ffff:a.b.c.d`): the original key is the client's IPv6 tuple, the reply key the
/// backend's IPv4 tuple mapped, which the IPv4 path builds from a reply that misses its own
/// table (only packets to a NAT64 local address look here). The IPv6 table was the choice
/// because the entry must hold the client's and the VIP's IPv6 addresses, which the IPv4
/// table's 48-byte slots cannot without growing every IPv4 connection; the scheduler,
/// persistence and counters of IPv6 services then serve NAT64 unchanged. Told apart by
/// [`Conn6::nat64`]; no flag bit is spent on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn6 {
    pub client: Ipv6Addr,
    pub vip: Ipv6Addr,
    pub backend: Ipv6Addr,
    /// Source address towards the backend: the client's in NAT, one of ours in FullNAT.
    pub laddr: Ipv6Addr,
    pub cport: u16,
    pub vport: u16,
    pub bport: u16,
    pub lport: u16,
    pub backend_gen: u32,
    pub service: u16,
    pub backend_slot: u16,
    /// Local-address slot the FullNAT port returns to; `u16::MAX` in NAT.
    pub laddr_slot: u16,
    pub state: TcpState,
    pub flags: ConnFlags,
    pub proto: IpProtocol,
}

impl Conn6 {
    /// The client's packets: client -> VIP.
    #[inline]
    pub fn original_key(&self) -> ConnKey6 {
        ConnKey6 { src: self.client, dst: self.vip, sport: self.cport, dport: self.vport, proto: self.proto }
    }

    /// The backend's packets: backend -> laddr (the client itself in NAT).
    #[inline]
    pub fn reply_key(&self) -> ConnKey6 {
        ConnKey6 { src: self.backend, dst: self.laddr, sport: self.bport, dport: self.lport, proto: self.proto }
    }

    #[inline]
    pub fn key(&self, dir: Dir) -> ConnKey6 {
        match dir {
            Dir::Original => self.original_key(),
            Dir::Reply => self.reply_key(),
        }
    }

    /// The state as `ipvsadm -lnc` shows it: the TCP state, or "UDP".
    pub fn state_name(&self) -> &'static str {
        if self.proto == IpProtocol::UDP {
            "UDP"
        } else {
            self.state.as_str()
        }
    }

    /// For a NAT64 connection, its IPv4 (local address, backend). A FullNAT connection (not
    /// SNAT) whose local address is IPv4-mapped: validation refuses such addresses in IPv6
    /// services, so only NAT64 has them.
    #[inline]
    pub fn nat64(&self) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
        if self.flags & (ConnFlags::FULLNAT | ConnFlags::SNAT) != ConnFlags::FULLNAT {
            return None;
        }
        Some((self.laddr.to_ipv4_mapped()?, self.backend.to_ipv4_mapped()?))
    }

    /// Its idle timeout under `t`.
    #[inline]
    pub fn timeout(&self, t: &Timeouts) -> u32 {
        if self.proto == IpProtocol::UDP {
            t.udp_ms
        } else {
            t.for_state(self.state)
        }
    }
}

/// Index of an entry in the slab.
pub type Conn6Id = u32;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Entry6 {
    conn: Conn6,
    deadline_ms: u64,
    /// The sequence number of the SYN that opened it (TCP), for telling a retransmit from a
    /// new connection on the same tuple.
    client_isn: u32,
    live: bool,
}

const EMPTY_CONN: Conn6 = Conn6 {
    client: Ipv6Addr::UNSPECIFIED,
    vip: Ipv6Addr::UNSPECIFIED,
    backend: Ipv6Addr::UNSPECIFIED,
    laddr: Ipv6Addr::UNSPECIFIED,
    cport: 0,
    vport: 0,
    bport: 0,
    lport: 0,
    backend_gen: 0,
    service: 0,
    backend_slot: 0,
    laddr_slot: u16::MAX,
    state: TcpState::None,
    flags: ConnFlags::empty(),
    proto: IpProtocol(0),
};

/// Entries examined per expired connection allowed (`expire`'s budget).
const SWEEP_PER_BUDGET: usize = 4;

/// The IPv6 connections of one core.
pub struct Conn6Table {
    entries: Box<[Entry6]>,
    /// `entry << 1 | dir` (1: reply), or NIL.
    index: Box<[u32]>,
    /// By index position: the top byte of its key's hash (`tag`).
    tags: Box<[u8]>,
    mask: usize,
    free: Vec<u32>,
    len: u32,
    sweep: usize,
    seed: [u64; 2],
}

#[inline]
fn entry_ref(id: Conn6Id, dir: Dir) -> u32 {
    id << 1 | u32::from(dir == Dir::Reply)
}

#[inline]
fn decode(r: u32) -> (Conn6Id, Dir) {
    (r >> 1, if r & 1 == 0 { Dir::Original } else { Dir::Reply })
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Conn6Table {
    /// A table for `capacity` connections (at most 2^30), with a random hash seed.
    pub fn new(capacity: u32) -> Conn6Table {
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write_u32(capacity);
        Conn6Table::with_seed(capacity, seed.finish())
    }

    pub fn with_seed(capacity: u32, seed: u64) -> Conn6Table {
        assert!(capacity <= 1 << 30, "IPv6 connection table capacity {capacity} > 2^30");
        // Two keys per connection, at most half full.
        let slots = (capacity as usize * 4).next_power_of_two().max(4);
        let empty = Entry6 { conn: EMPTY_CONN, deadline_ms: 0, client_isn: 0, live: false };
        Conn6Table {
            entries: vec![empty; capacity as usize].into_boxed_slice(),
            index: vec![NIL; slots].into_boxed_slice(),
            tags: vec![0; slots].into_boxed_slice(),
            mask: slots - 1,
            free: (0..capacity).rev().collect(),
            len: 0,
            sweep: 0,
            seed: [seed | 1, seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15],
        }
    }

    #[inline]
    fn hash(&self, k: &ConnKey6) -> u64 {
        let s = u128::from(k.src);
        let d = u128::from(k.dst);
        let x = (s as u64) ^ ((s >> 64) as u64).rotate_left(17) ^ (d as u64).rotate_left(31) ^ ((d >> 64) as u64);
        let rest = u64::from(k.sport) << 24 | u64::from(k.dport) << 8 | u64::from(k.proto.0);
        mix(x ^ self.seed[0], rest ^ self.seed[1] ^ ((d >> 64) as u64).rotate_left(7))
    }

    #[inline]
    fn home(&self, k: &ConnKey6) -> usize {
        self.hash(k) as usize & self.mask
    }

    /// Where `k`'s probe starts and the byte kept beside its reference (the hash's top byte,
    /// which the home position, from the low bits, leaves free up to 2^56 positions).
    #[inline]
    fn home_and_tag(&self, k: &ConnKey6) -> (usize, u8) {
        let h = self.hash(k);
        (h as usize & self.mask, (h >> 56) as u8)
    }

    #[inline]
    fn key_of(&self, r: u32) -> ConnKey6 {
        let (id, dir) = decode(r);
        self.entries[id as usize].conn.key(dir)
    }

    /// The index position holding `key`'s reference.
    fn find(&self, key: &ConnKey6) -> Option<usize> {
        let (mut i, tag) = self.home_and_tag(key);
        loop {
            let r = self.index[i];
            if r == NIL {
                return None;
            }
            if self.tags[i] == tag && self.key_of(r) == *key {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The connection and direction a packet with this tuple belongs to.
    #[inline]
    pub fn lookup(&self, key: &ConnKey6) -> Option<(Conn6Id, Dir)> {
        self.find(key).map(|i| decode(self.index[i]))
    }

    /// The connection in `id` (live: from `lookup`, `insert` or `iter`).
    #[inline]
    pub fn get(&self, id: Conn6Id) -> Conn6 {
        self.entries[id as usize].conn
    }

    /// `get` without the copy, for the packet path.
    #[inline(always)]
    pub fn conn(&self, id: Conn6Id) -> &Conn6 {
        &self.entries[id as usize].conn
    }

    pub fn set_state(&mut self, id: Conn6Id, state: TcpState) {
        self.entries[id as usize].conn.state = state;
    }

    pub fn set_flags(&mut self, id: Conn6Id, flags: ConnFlags) {
        self.entries[id as usize].conn.flags = flags;
    }

    pub fn set_client_isn(&mut self, id: Conn6Id, isn: u32) {
        self.entries[id as usize].client_isn = isn;
    }

    pub fn client_isn(&self, id: Conn6Id) -> u32 {
        self.entries[id as usize].client_isn
    }

    fn index_insert(&mut self, key: &ConnKey6, r: u32) {
        let (mut i, tag) = self.home_and_tag(key);
        while self.index[i] != NIL {
            i = (i + 1) & self.mask;
        }
        self.index[i] = r;
        self.tags[i] = tag;
    }

    /// Removes the reference at position `i`, shifting back the entries of the run after it
    /// that would no longer be found (Knuth's algorithm R).
    fn index_remove_at(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let r = self.index[j];
            if r == NIL {
                break;
            }
            let k = self.home(&self.key_of(r));
            // Moves back unless its home lies cyclically in (i, j].
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.index[i] = r;
                self.tags[i] = self.tags[j];
                i = j;
            }
        }
        self.index[i] = NIL;
    }

    /// Inserts both keys (only the original one for DR/TUN, whose replies never pass here);
    /// fails, changing nothing, when full or when a key exists.
    pub fn insert(&mut self, conn: Conn6, now_ms: u64, timeout_ms: u32) -> Result<Conn6Id, InsertError> {
        if conn.proto != IpProtocol::TCP && conn.proto != IpProtocol::UDP {
            return Err(InsertError::Protocol);
        }
        let (original, reply) = (conn.original_key(), conn.reply_key());
        let keyed_reply = !conn.flags.is_one_way();
        if self.find(&original).is_some() || (keyed_reply && (original == reply || self.find(&reply).is_some())) {
            return Err(InsertError::KeyExists);
        }
        let Some(id) = self.free.pop() else { return Err(InsertError::Full) };
        self.entries[id as usize] =
            Entry6 { conn, deadline_ms: now_ms.saturating_add(u64::from(timeout_ms)), client_isn: 0, live: true };
        self.index_insert(&original, entry_ref(id, Dir::Original));
        if keyed_reply {
            self.index_insert(&reply, entry_ref(id, Dir::Reply));
        }
        self.len += 1;
        Ok(id)
    }

    /// Removes a live connection and returns it.
    pub fn remove(&mut self, id: Conn6Id) -> Conn6 {
        let e = self.entries[id as usize];
        assert!(e.live, "remove of IPv6 connection {id}, which is not live");
        for dir in [Dir::Original, Dir::Reply] {
            if dir == Dir::Reply && e.conn.flags.is_one_way() {
                continue;
            }
            let r = entry_ref(id, dir);
            let mut i = self.home(&e.conn.key(dir));
            while self.index[i] != r {
                i = (i + 1) & self.mask;
            }
            self.index_remove_at(i);
        }
        self.entries[id as usize].live = false;
        self.free.push(id);
        self.len -= 1;
        e.conn
    }

    /// Sets the connection's expiry to `now_ms + timeout_ms`.
    #[inline]
    pub fn touch(&mut self, id: Conn6Id, now_ms: u64, timeout_ms: u32) {
        self.entries[id as usize].deadline_ms = now_ms.saturating_add(u64::from(timeout_ms));
    }

    /// Examines at most `SWEEP_PER_BUDGET * budget` entries from where the last call stopped
    /// and removes the due ones (at most `budget`), calling `on_expire` for each first.
    pub fn expire(&mut self, now_ms: u64, budget: usize, mut on_expire: impl FnMut(&Conn6)) -> usize {
        if self.len == 0 || self.entries.is_empty() {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget * SWEEP_PER_BUDGET {
            let id = self.sweep;
            self.sweep = (self.sweep + 1) % self.entries.len();
            let e = &self.entries[id];
            if e.live && e.deadline_ms <= now_ms {
                on_expire(&e.conn);
                self.remove(id as Conn6Id);
                removed += 1;
                if removed == budget {
                    break;
                }
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
        self.entries.len()
    }

    /// Time left before expiry, 0 when due.
    pub fn expires_in_ms(&self, id: Conn6Id, now_ms: u64) -> u64 {
        self.entries[id as usize].deadline_ms.saturating_sub(now_ms)
    }

    /// Live connections, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (Conn6Id, Conn6)> + '_ {
        self.entries.iter().enumerate().filter(|(_, e)| e.live).map(|(id, e)| (id as Conn6Id, e.conn))
    }

    /// Memory allocated by the table divided by capacity: bytes per tracked IPv6 connection,
    /// everything included (entry, its share of the index, the free list).
    pub fn bytes_per_conn(&self) -> usize {
        let bytes = std::mem::size_of::<Self>()
            + std::mem::size_of_val::<[Entry6]>(&self.entries)
            + std::mem::size_of_val::<[u32]>(&self.index)
            + std::mem::size_of_val::<[u8]>(&self.tags)
            + self.free.capacity() * std::mem::size_of::<u32>();
        bytes / self.entries.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u16, fullnat: bool) -> Conn6 {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        Conn6 {
            client: a("2001:db8:1::2"),
            vip: a("2001:db8:1::100"),
            backend: a("2001:db8:2::11"),
            laddr: if fullnat { a("2001:db8:2::200") } else { a("2001:db8:1::2") },
            cport: 40000 + n,
            vport: 80,
            bport: 8080,
            lport: if fullnat { 1024 + n } else { 40000 + n },
            backend_gen: 1,
            service: 0,
            backend_slot: 0,
            laddr_slot: if fullnat { 0 } else { u16::MAX },
            state: TcpState::SynRecv,
            flags: if fullnat { ConnFlags::FULLNAT } else { ConnFlags::empty() },
            proto: IpProtocol::TCP,
        }
    }

    #[test]
    fn both_directions_found_and_removed() {
        let mut t = Conn6Table::with_seed(64, 7);
        let ids: Vec<_> = (0..64).map(|n| t.insert(conn(n, n % 2 == 0), 0, 1000).unwrap()).collect();
        assert_eq!(t.insert(conn(100, true), 0, 1000), Err(InsertError::Full));
        for (n, &id) in ids.iter().enumerate() {
            let c = conn(n as u16, n % 2 == 0);
            assert_eq!(t.lookup(&c.original_key()), Some((id, Dir::Original)));
            assert_eq!(t.lookup(&c.reply_key()), Some((id, Dir::Reply)));
        }
        // Removing every third keeps every other findable (backward shift is right).
        for (n, &id) in ids.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
            assert_eq!(t.remove(id), conn(n as u16, n % 2 == 0));
        }
        for (n, &id) in ids.iter().enumerate() {
            let c = conn(n as u16, n % 2 == 0);
            let want = (n % 3 != 0).then_some((id, Dir::Reply));
            assert_eq!(t.lookup(&c.reply_key()), want, "connection {n}");
        }
        assert_eq!(t.len(), 64 - 22);
    }

    #[test]
    fn duplicate_keys_refused() {
        let mut t = Conn6Table::with_seed(8, 1);
        t.insert(conn(1, true), 0, 1000).unwrap();
        assert_eq!(t.insert(conn(1, true), 0, 1000), Err(InsertError::KeyExists));
        let mut udp = conn(2, false);
        udp.proto = IpProtocol::ICMPV6;
        assert_eq!(t.insert(udp, 0, 1000), Err(InsertError::Protocol));
    }

    #[test]
    fn expiry_is_bounded_and_complete() {
        let mut t = Conn6Table::with_seed(256, 3);
        for n in 0..200 {
            let id = t.insert(conn(n, true), 0, 1000).unwrap();
            if n % 2 == 0 {
                t.touch(id, 0, 5000);
            }
        }
        assert_eq!(t.expire(999, 16, |_| {}), 0);
        let mut gone = 0;
        for _ in 0..64 {
            let n = t.expire(1000, 16, |c| assert_eq!(c.cport % 2, 1));
            assert!(n <= 16);
            gone += n;
        }
        assert_eq!(gone, 100);
        assert_eq!(t.len(), 100);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Inserts (NAT and FullNAT, few distinct tuples, so keys repeat and clash) and removals
        /// against a map of what is in: every key present is found with its id and direction,
        /// every other is not, whatever the seed (the hash bytes kept beside the references,
        /// and the backward shift that moves them, included).
        #[test]
        fn matches_a_map_of_what_is_in(
            seed: u64,
            ops in proptest::collection::vec((0u16..40, proptest::bool::ANY, proptest::bool::ANY), 1..300),
        ) {
            let mut t = Conn6Table::with_seed(16, seed);
            let mut live: std::collections::HashMap<u16, (Conn6Id, Conn6)> = std::collections::HashMap::new();
            for (n, fullnat, remove) in ops {
                if remove {
                    if let Some((id, c)) = live.remove(&n) {
                        proptest::prop_assert_eq!(t.remove(id), c);
                    }
                } else {
                    let c = conn(n, fullnat);
                    match t.insert(c, 0, 1000) {
                        Ok(id) => {
                            proptest::prop_assert!(!live.contains_key(&n));
                            live.insert(n, (id, c));
                        }
                        Err(InsertError::Full) => proptest::prop_assert_eq!(live.len(), 16),
                        Err(e) => proptest::prop_assert!(live.contains_key(&n), "{e:?} for a new tuple"),
                    }
                }
                for m in 0..40 {
                    // Both flavours of tuple m share its original key; their reply keys differ.
                    let id = live.get(&m).map(|(id, _)| *id);
                    proptest::prop_assert_eq!(t.lookup(&conn(m, false).original_key()), id.map(|id| (id, Dir::Original)));
                    for fullnat in [false, true] {
                        let c = conn(m, fullnat);
                        let want = live.get(&m).filter(|(_, l)| *l == c).map(|(id, _)| (*id, Dir::Reply));
                        proptest::prop_assert_eq!(t.lookup(&c.reply_key()), want);
                    }
                }
                proptest::prop_assert_eq!(t.len(), live.len());
            }
        }
    }

    #[test]
    fn bytes_per_connection() {
        let t = Conn6Table::with_seed(1 << 16, 1);
        // Entry (104) + two index refs and their tags at half load (16 + 4) + free list (4).
        assert_eq!(t.bytes_per_conn(), 128);
    }
}
