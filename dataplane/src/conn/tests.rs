use std::collections::HashMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

const TCP: IpProtocol = IpProtocol::TCP;
const UDP: IpProtocol = IpProtocol::UDP;

/// NAT connection number `i`: a distinct client per `i`.
fn nat(i: u32) -> Conn {
    let client = Ipv4Addr::from(0x0a00_0000 | i);
    Conn {
        client,
        vip: Ipv4Addr::new(192, 0, 2, 1),
        backend: Ipv4Addr::new(10, 200, 0, (i % 4) as u8 + 1),
        laddr: client,
        cport: 40_000 + (i % 1000) as u16,
        vport: 80,
        bport: 8080,
        lport: 40_000 + (i % 1000) as u16,
        proto: TCP,
        state: TcpState::SynRecv,
        flags: ConnFlags::empty(),
        service: 1,
        backend_slot: (i % 4) as u16,
        backend_gen: 1,
        laddr_slot: u16::MAX,
    }
}

/// FullNAT connection number `i`: a distinct client and a distinct local address and port.
fn fullnat(i: u32) -> Conn {
    Conn {
        laddr: Ipv4Addr::from(0xac10_0000 | (i >> 16)),
        lport: i as u16,
        flags: ConnFlags::FULLNAT,
        laddr_slot: 0,
        ..nat(i)
    }
}

fn never_expire(_: &Conn) {}

#[test]
fn nat_lookup_both_directions() {
    let mut t = ConnTable::new(16);
    let c = nat(7);
    let id = t.insert(c, 0, 1000).unwrap();
    assert_eq!(t.lookup(&c.original_key()), Some((id, Dir::Original)));
    // NAT: the backend answers the client itself.
    let reply = ConnKey { src: c.backend, dst: c.client, sport: c.bport, dport: c.cport, proto: TCP };
    assert_eq!(reply, c.reply_key());
    assert_eq!(t.lookup(&reply), Some((id, Dir::Reply)));
    assert_eq!(t.get(id), c);
    // Same tuple, other protocol or reversed: not this connection.
    assert_eq!(t.lookup(&ConnKey { proto: UDP, ..c.original_key() }), None);
    let o = c.original_key();
    assert_eq!(t.lookup(&ConnKey { src: o.dst, dst: o.src, sport: o.dport, dport: o.sport, proto: TCP }), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn fullnat_lookup_both_directions() {
    let mut t = ConnTable::new(16);
    let a = fullnat(1);
    let b = fullnat(2);
    let ia = t.insert(a, 0, 1000).unwrap();
    let ib = t.insert(b, 0, 1000).unwrap();
    assert_ne!(ia, ib);
    let reply = ConnKey { src: a.backend, dst: a.laddr, sport: a.bport, dport: a.lport, proto: TCP };
    assert_eq!(t.lookup(&reply), Some((ia, Dir::Reply)));
    assert_eq!(t.lookup(&b.original_key()), Some((ib, Dir::Original)));
    assert_eq!(t.lookup(&b.reply_key()), Some((ib, Dir::Reply)));
    // The client's own address is not a reply key in FullNAT.
    assert_eq!(t.lookup(&ConnKey { dst: a.client, dport: a.cport, ..reply }), None);
    t.set_state(ib, TcpState::Established);
    assert_eq!(t.get(ib).state, TcpState::Established);
}

#[test]
fn remove_frees_both_keys_and_the_slot() {
    let mut t = ConnTable::new(2);
    let a = nat(1);
    let b = fullnat(2);
    let ia = t.insert(a, 0, 1000).unwrap();
    let ib = t.insert(b, 0, 1000).unwrap();
    assert_eq!(t.remove(ia), a);
    assert_eq!(t.lookup(&a.original_key()), None);
    assert_eq!(t.lookup(&a.reply_key()), None);
    assert_eq!(t.lookup(&b.original_key()), Some((ib, Dir::Original)));
    assert_eq!(t.len(), 1);
    // The slot is reusable, and so are the keys.
    let ia2 = t.insert(a, 0, 1000).unwrap();
    assert_eq!(ia2, ia);
    assert_eq!(t.iter().count(), 2);
    assert_eq!(t.insert(nat(3), 0, 1000), Err(InsertError::Full));
}

#[test]
fn one_way_connections_are_keyed_by_the_client_side_only() {
    let mut t = ConnTable::new(4);
    // Two DR connections from one client port to one backend through two VIPs: their reply
    // tuples are equal, and never looked up (the backend answers the client directly).
    let dr = Conn { flags: ConnFlags::DR, ..nat(1) };
    let tun = Conn { flags: ConnFlags::TUN, vip: Ipv4Addr::new(192, 0, 2, 2), ..nat(1) };
    assert_eq!(dr.reply_key(), tun.reply_key());
    let a = t.insert(dr, 0, 1000).unwrap();
    let b = t.insert(tun, 0, 1000).unwrap();
    assert_eq!(t.lookup(&dr.original_key()), Some((a, Dir::Original)));
    assert_eq!(t.lookup(&tun.original_key()), Some((b, Dir::Original)));
    assert_eq!(t.lookup(&dr.reply_key()), None);
    // A two-way connection with that reply tuple still gets it.
    let nat_conn = Conn { vip: Ipv4Addr::new(192, 0, 2, 3), ..nat(1) };
    let c = t.insert(nat_conn, 0, 1000).unwrap();
    assert_eq!(t.lookup(&nat_conn.reply_key()), Some((c, Dir::Reply)));
    // Removing the one-way connections leaves the two-way one's keys alone.
    t.remove(a);
    t.remove(b);
    assert_eq!(t.lookup(&nat_conn.reply_key()), Some((c, Dir::Reply)));
    assert_eq!(t.lookup(&dr.original_key()), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn existing_keys_are_refused_without_change() {
    let mut t = ConnTable::new(4);
    let a = nat(1);
    let ia = t.insert(a, 0, 1000).unwrap();
    // Same original key, different backend.
    let same_original = Conn { backend: Ipv4Addr::new(10, 9, 9, 9), ..a };
    assert_eq!(t.insert(same_original, 0, 1000), Err(InsertError::KeyExists));
    // New original key whose reply key is taken.
    let same_reply = Conn { vip: Ipv4Addr::new(192, 0, 2, 99), ..a };
    assert_eq!(t.insert(same_reply, 0, 1000), Err(InsertError::KeyExists));
    // Original key equal to its own reply key.
    let c = nat(5);
    let looped = Conn { backend: c.client, laddr: c.vip, bport: c.cport, lport: c.vport, ..c };
    assert_eq!(looped.original_key(), looped.reply_key());
    assert_eq!(t.insert(looped, 0, 1000), Err(InsertError::KeyExists));
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&a.original_key()), Some((ia, Dir::Original)));
    assert_eq!(t.lookup(&a.reply_key()), Some((ia, Dir::Reply)));
    assert_eq!(t.lookup(&same_reply.original_key()), None);
    // No slot leaked: three more fit.
    for i in 10..13 {
        t.insert(nat(i), 0, 1000).unwrap();
    }
    assert_eq!(t.insert(nat(13), 0, 1000), Err(InsertError::Full));
    assert_eq!(InsertError::Full.to_string(), "connection table full");
}

#[test]
fn insert_absent_indexes_both_keys_and_checks_the_reply_key_and_room() {
    let mut t = ConnTable::new(3);
    let a = nat(1);
    let ia = t.insert_absent(&a, t.hash(&a.original_key()), 0xdead_beef, 0, 1000).unwrap();
    assert_eq!(t.lookup(&a.original_key()), Some((ia, Dir::Original)));
    assert_eq!(t.lookup(&a.reply_key()), Some((ia, Dir::Reply)));
    assert_eq!(t.get(ia), a);
    assert_eq!(t.client_isn(ia), Some(0xdead_beef));
    assert_eq!(t.expires_in_ms(ia, 0), rounded_deadline(0, 1000));
    // A new original key whose reply key is taken, and one equal to its own reply key.
    let same_reply = Conn { vip: Ipv4Addr::new(192, 0, 2, 99), ..a };
    assert_eq!(
        t.insert_absent(&same_reply, t.hash(&same_reply.original_key()), 1, 0, 1000),
        Err(InsertError::KeyExists)
    );
    let c = nat(5);
    let looped = Conn { backend: c.client, laddr: c.vip, bport: c.cport, lport: c.vport, ..c };
    assert_eq!(t.insert_absent(&looped, t.hash(&looped.original_key()), 1, 0, 1000), Err(InsertError::KeyExists));
    let other = Conn { proto: IpProtocol::ICMP, ..c };
    assert_eq!(t.insert_absent(&other, t.hash(&other.original_key()), 1, 0, 1000), Err(InsertError::Protocol));
    assert_eq!(t.len(), 1);
    let f = fullnat(2);
    let i_f = t.insert_absent(&f, t.hash(&f.original_key()), 7, 0, 1000).unwrap();
    assert_eq!(t.client_isn(i_f), None, "a FullNAT entry has no room for the ISN");
    assert_eq!(t.get(i_f), f);
    assert_eq!(t.lookup(&f.reply_key()), Some((i_f, Dir::Reply)));
    let dr = Conn { flags: ConnFlags::DR, ..nat(3) };
    let i_dr = t.insert_absent(&dr, t.hash(&dr.original_key()), 9, 0, 1000).unwrap();
    assert_eq!(t.client_isn(i_dr), Some(9));
    assert_eq!(t.lookup(&dr.original_key()), Some((i_dr, Dir::Original)));
    assert_eq!(t.lookup(&dr.reply_key()), None);
    let d = nat(4);
    assert_eq!(t.insert_absent(&d, t.hash(&d.original_key()), 1, 0, 1000), Err(InsertError::Full));
    assert_eq!(t.remove(ia), a);
    assert_eq!(t.lookup(&a.reply_key()), None);
}

#[test]
fn fills_to_exactly_capacity() {
    let cap = 10_000;
    let mut t = ConnTable::new(cap);
    for i in 0..cap {
        let c = if i % 2 == 0 { nat(i) } else { fullnat(i) };
        t.insert(c, 0, 60_000).unwrap();
    }
    assert_eq!(t.len(), cap as usize);
    assert_eq!(t.insert(nat(cap), 0, 1), Err(InsertError::Full));
    for i in 0..cap {
        let c = if i % 2 == 0 { nat(i) } else { fullnat(i) };
        let (id, dir) = t.lookup(&c.original_key()).unwrap();
        assert_eq!((t.get(id), dir), (c, Dir::Original));
        assert_eq!(t.lookup(&c.reply_key()), Some((id, Dir::Reply)));
    }
    let (victim, _) = t.lookup(&nat(4).original_key()).unwrap();
    t.remove(victim);
    t.insert(nat(cap), 0, 1).unwrap();
    assert_eq!(t.insert(nat(cap + 1), 0, 1), Err(InsertError::Full));
}

#[test]
fn zero_capacity_refuses_everything() {
    let mut t = ConnTable::new(0);
    assert_eq!(t.insert(nat(1), 0, 1), Err(InsertError::Full));
    assert_eq!(t.lookup(&nat(1).original_key()), None);
    assert_eq!(t.expire(1_000_000, 10, never_expire), 0);
    assert!(t.is_empty());
    assert_eq!(t.capacity(), 0);
}

/// At 100% of capacity (index load 2/3) lookups read few buckets, hits and misses alike.
#[test]
fn probe_lengths_stay_short_when_full() {
    let cap = 200_000;
    let mut t = ConnTable::with_seed(cap, 42);
    for i in 0..cap {
        t.insert(fullnat(i), 0, 60_000).unwrap();
    }
    let hit: Vec<usize> = (0..cap).map(|i| t.probe_len(&fullnat(i).original_key())).collect();
    let miss: Vec<usize> = (cap..2 * cap).map(|i| t.probe_len(&fullnat(i).original_key())).collect();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let (hit_mean, miss_mean) = (mean(&hit), mean(&miss));
    let (hit_max, miss_max) = (hit.iter().max().unwrap(), miss.iter().max().unwrap());
    eprintln!(
        "buckets read at full capacity: hit mean {hit_mean:.3} max {hit_max}, miss mean {miss_mean:.3} max {miss_max}"
    );
    assert!(hit_mean < 1.3, "hit mean {hit_mean}");
    assert!(miss_mean < 1.6, "miss mean {miss_mean}");
    assert!(*miss_max <= 12, "miss max {miss_max}");
}

#[test]
fn bytes_per_conn_at_one_million() {
    let t = ConnTable::new(1 << 20);
    let b = t.bytes_per_conn();
    eprintln!("bytes per connection at capacity 1M: {b} (Conn {} B)", std::mem::size_of::<Conn>());
    // 48 B slot (the connection packed, deadline, two wheel links) + 16 B of index (a 64 B
    // bucket per 4 connections) + 4 B of eviction queue + the 32 KB wheel.
    assert_eq!(std::mem::size_of::<Conn>(), 40);
    assert!(b <= 68, "{b} bytes per connection");
}

// ---- timer ----

/// Deterministic pseudo-random numbers for the timer tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn expires_not_before_deadline_and_at_most_one_tick_late() {
    let mut t = ConnTable::new(4096);
    let mut rng = Lcg(1);
    let start = 123_457;
    let mut deadline = HashMap::new();
    let mut inserted_at: Vec<u64> = (0..3000).map(|_| start + rng.next(2000)).collect();
    inserted_at.sort_unstable();
    for (i, now) in (0..3000).zip(inserted_at) {
        let timeout = rng.next(20_000) as u32;
        t.insert(nat(i), now, timeout).unwrap();
        deadline.insert(nat(i).client, now + u64::from(timeout));
    }
    let mut expired_at = HashMap::new();
    for now in start..start + 23_000 {
        t.expire(now, usize::MAX, |c| {
            expired_at.insert(c.client, now);
        });
    }
    assert!(t.is_empty());
    assert_eq!(expired_at.len(), 3000);
    for (client, at) in expired_at {
        let d = deadline[&client];
        assert!(at >= d && at < d + TICK_MS, "deadline {d}, expired at {at}");
    }
}

#[test]
fn touch_extends_life() {
    // Times are multiples of the tick, so deadlines are exact.
    let mut t = ConnTable::new(4);
    let id = t.insert(nat(1), 0, 1008).unwrap();
    assert_eq!(t.expire(960, 100, never_expire), 0);
    t.touch(id, 960, 1008);
    assert_eq!(t.expire(1504, 100, never_expire), 0);
    assert_eq!(t.expires_in_ms(id, 1504), 464);
    assert_eq!(t.expire(1967, 100, never_expire), 0);
    assert_eq!(t.expire(1968, 100, never_expire), 1);
    assert!(t.is_empty());
}

#[test]
fn touch_to_a_shorter_timeout_expires_early() {
    let mut t = ConnTable::new(4);
    let id = t.insert(nat(1), 0, 900_000).unwrap();
    t.expire(4_992, 1000, never_expire);
    // ESTABLISHED -> CLOSE: 10 s from now, not 900 s (times are multiples of the tick).
    t.touch(id, 4_992, 10_000);
    assert_eq!(t.expire(14_991, 1000, never_expire), 0);
    assert_eq!(t.expire(14_992, 1000, never_expire), 1);
    assert_eq!(t.timer_stats().advanced, 1);
}

#[test]
fn expires_in_reports_time_left() {
    let mut t = ConnTable::new(4);
    let a = t.insert(nat(1), 1000, 5000).unwrap();
    assert_eq!(t.expires_in_ms(a, 1000), 5000);
    assert_eq!(t.expires_in_ms(a, 5999), 1);
    assert_eq!(t.expires_in_ms(a, 6000), 0);
    assert_eq!(t.expires_in_ms(a, 9000), 0);
    // Deadlines are rounded up to the tick, never down.
    let b = t.insert(nat(2), 1001, 5000).unwrap();
    let left = t.expires_in_ms(b, 1001);
    assert!((5000..5000 + TICK_MS).contains(&left), "{left}");
}

#[test]
fn budget_bounds_the_work_per_call() {
    let mut t = ConnTable::new(10_000);
    // Half due at 1 s, half a lap or more ahead (examined and left, not removed).
    for i in 0..10_000 {
        let timeout = if i % 2 == 0 { 1000 } else { 900_000 };
        t.insert(nat(i), 0, timeout).unwrap();
    }
    let mut removed = 0;
    let mut calls = 0;
    let mut examined = t.timer_stats().examined;
    let now = 200_000;
    while removed < 5000 {
        let n = t.expire(now, 7, never_expire);
        let e = t.timer_stats().examined;
        assert!(n <= 7 && e - examined <= 7, "call {calls}: removed {n}, examined {}", e - examined);
        examined = e;
        removed += n;
        calls += 1;
        assert!(calls < 10_000, "no progress");
    }
    assert_eq!(t.len(), 5000);
    assert_eq!(t.expire(now, 0, never_expire), 0);
    assert!(t.timer_stats().refiled > 0);
}

#[test]
fn hundred_thousand_staggered_deadlines_all_expire() {
    let n = 100_000u32;
    let mut t = ConnTable::new(n);
    // Deadlines spread over 1000 s; the timeout is kept in backend_gen to check against.
    for i in 0..n {
        let c = Conn { backend_gen: 10 * i, ..fullnat(i) };
        t.insert(c, 0, 10 * i).unwrap();
    }
    let step = 50;
    let mut now = 0;
    let mut expired = 0u32;
    let mut worst_late = 0;
    while expired < n {
        now += step;
        expired += t.expire(now, 2000, |c| {
            let deadline = u64::from(c.backend_gen);
            assert!(now >= deadline, "expired at {now}, deadline {deadline}");
            worst_late = worst_late.max(now - deadline);
        }) as u32;
        assert!(now < 1_100_000, "{} still live at {now}", t.len());
    }
    assert!(t.is_empty());
    assert!(worst_late < step + TICK_MS, "{worst_late} ms late");
    // Deadlines a lap or more ahead were looked at a few times each, not once per call.
    let s = t.timer_stats();
    assert!(s.refiled < 10 * u64::from(n), "{s:?}");
}

#[test]
fn deadlines_laps_ahead() {
    let mut t = ConnTable::new(4);
    const { assert!(900_000 > WHEEL_LAP_MS) };
    let a = t.insert(nat(1), 0, 900_000).unwrap();
    t.insert(nat(2), 0, 900_000).unwrap();
    let mut now = 0;
    while now < 899_999 {
        now = (now + 1000).min(899_999);
        assert_eq!(t.expire(now, 100, never_expire), 0, "early at {now}");
        if now == 500_000 {
            t.touch(a, now, 900_000);
        }
    }
    assert!(t.timer_stats().refiled >= 2 * (900_000 / WHEEL_LAP_MS));
    assert_eq!(t.expire(900_000, 100, never_expire), 1);
    assert_eq!(t.expire(1_399_999, usize::MAX, never_expire), 0);
    assert_eq!(t.expire(1_400_000, usize::MAX, never_expire), 1);
}

#[test]
fn catches_up_after_a_long_pause() {
    let mut t = ConnTable::new(1000);
    for i in 0..1000 {
        t.insert(nat(i), 10_000, 60_000 + i).unwrap();
    }
    let now = 10_000 + 3_600_000;
    let mut calls = 0;
    while !t.is_empty() {
        t.expire(now, 100, never_expire);
        calls += 1;
        // At most one lap of empty buckets plus the entries.
        assert!(calls <= (1000 + 8192) / 100 + 2, "{calls} calls");
    }
}

#[test]
fn iter_lists_live_connections() {
    let mut t = ConnTable::new(8);
    let ids: Vec<ConnId> = (0..5).map(|i| t.insert(nat(i), 0, 1000).unwrap()).collect();
    t.remove(ids[2]);
    let mut listed: Vec<Conn> = t
        .iter()
        .map(|(id, c)| {
            assert_eq!(t.get(id), c);
            c
        })
        .collect();
    listed.sort_by_key(|c| c.client);
    assert_eq!(listed, vec![nat(0), nat(1), nat(3), nat(4)]);
}

#[test]
#[should_panic(expected = "not live")]
fn removing_twice_panics() {
    let mut t = ConnTable::new(4);
    let id = t.insert(nat(1), 0, 1000).unwrap();
    t.remove(id);
    t.remove(id);
}

#[test]
fn only_tcp_and_udp_are_kept_and_updates_keep_the_protocol() {
    let mut t = ConnTable::new(4);
    assert_eq!(t.insert(Conn { proto: IpProtocol::ICMP, ..nat(1) }, 0, 1000), Err(InsertError::Protocol));
    assert!(t.is_empty());
    let udp = Conn { proto: UDP, ..nat(2) };
    let id = t.insert(udp, 0, 1000).unwrap();
    t.set_flags(id, ConnFlags::REPLIED | ConnFlags::RESET);
    t.set_state(id, TcpState::Close);
    let want = Conn { flags: ConnFlags::REPLIED | ConnFlags::RESET, state: TcpState::Close, ..udp };
    assert_eq!(t.get(id), want);
    assert_eq!(t.lookup(&udp.reply_key()), Some((id, Dir::Reply)));
}

#[test]
fn hints_name_an_entry_or_nothing() {
    let mut t = ConnTable::new(16);
    let c = nat(7);
    let id = t.insert(c, 0, 1000).unwrap();
    for (key, dir) in [(c.original_key(), Dir::Original), (c.reply_key(), Dir::Reply)] {
        let hash = t.hash(&key);
        let hint = t.prefetch_conns(hash);
        assert_ne!(hint, Hint::NONE);
        assert_eq!(t.lookup_hinted(&key, hash, hint), Some((id, dir)));
        assert_eq!(t.lookup_hinted(&key, hash, Hint::NONE), Some((id, dir)));
    }
    let other = nat(8).original_key();
    assert_eq!(t.lookup_hinted(&other, t.hash(&other), t.prefetch_conns(t.hash(&other))), None);
}

#[test]
fn a_stale_hint_to_an_unindexed_reply_key_is_not_trusted() {
    // Slot 0 first holds a NAT connection whose reply key K is indexed; a hint to (0, Reply)
    // is taken. Then slot 0 holds a DR connection with the same reply key K, which DR does not
    // index, and another connection is keyed by K from its client side.
    let mut t = ConnTable::new(16);
    let nat_conn = nat(7);
    let id = t.insert(nat_conn, 0, 1000).unwrap();
    let k = nat_conn.reply_key();
    let hint = t.prefetch_conns(t.hash(&k));
    assert_eq!(t.lookup_hinted(&k, t.hash(&k), hint), Some((id, Dir::Reply)));
    t.remove(id);
    let dr = Conn { flags: ConnFlags::DR, ..nat_conn };
    assert_eq!(t.insert(dr, 0, 1000), Ok(id), "the freed slot is reused first");
    assert_eq!(dr.reply_key(), k);
    let owner = Conn {
        client: k.src,
        vip: k.dst,
        cport: k.sport,
        vport: k.dport,
        backend: Ipv4Addr::new(10, 9, 9, 9),
        laddr: k.src,
        lport: k.sport,
        ..nat(9)
    };
    let owner_id = t.insert(owner, 0, 1000).unwrap();
    assert_eq!(owner.original_key(), k);
    assert_eq!(t.lookup_hinted(&k, t.hash(&k), hint), Some((owner_id, Dir::Original)));
}

// ---- against a model ----

/// A connection over a small space of addresses and ports, so keys collide often.
fn small_conn() -> impl Strategy<Value = Conn> {
    (0u8..3, 0u16..3, 0u8..2, any::<bool>(), 0u16..3, any::<bool>()).prop_map(
        |(client, cport, backend, full, lport, udp)| {
            let client = Ipv4Addr::new(10, 0, 0, client);
            let cport = 1000 + cport;
            let (laddr, lport, flags) = if full {
                (Ipv4Addr::new(172, 16, 0, 1), 2000 + lport, ConnFlags::FULLNAT)
            } else {
                (client, cport, ConnFlags::empty())
            };
            Conn {
                client,
                vip: Ipv4Addr::new(192, 0, 2, 1),
                backend: Ipv4Addr::new(10, 1, 0, backend),
                laddr,
                cport,
                vport: 80,
                bport: 8080,
                lport,
                proto: if udp { UDP } else { TCP },
                state: TcpState::None,
                flags,
                service: 0,
                backend_slot: 0,
                backend_gen: 0,
                laddr_slot: 0,
            }
        },
    )
}

#[derive(Clone, Debug)]
enum Op {
    /// `insert`, or (`true`) `insert_absent` when the model holds no connection with the
    /// original key.
    Insert(Conn, u32, bool),
    Remove(usize),
    Lookup(Conn, bool),
    Touch(usize, u32),
    /// Time passes by this many ms, then `expire` runs to completion.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let timeout = prop_oneof![0u32..50_000, Just(900_000u32)];
    prop_oneof![
        4 => (small_conn(), timeout.clone(), any::<bool>()).prop_map(|(c, t, absent)| Op::Insert(c, t, absent)),
        2 => any::<usize>().prop_map(Op::Remove),
        4 => (small_conn(), any::<bool>()).prop_map(|(c, reply)| Op::Lookup(c, reply)),
        2 => (any::<usize>(), timeout).prop_map(|(i, t)| Op::Touch(i, t)),
        2 => prop_oneof![0u64..100, 0u64..60_000, 100_000u64..400_000].prop_map(Op::Advance),
    ]
}

/// The model: a map from each live key to its connection and direction, and each live
/// connection's deadline (ms, rounded up to the tick as the table promises).
#[derive(Default)]
struct Model {
    keys: HashMap<ConnKey, (ConnId, Dir)>,
    live: HashMap<ConnId, (Conn, u64)>,
}

impl Model {
    fn insert(&mut self, id: ConnId, conn: Conn, deadline: u64) {
        self.keys.insert(conn.original_key(), (id, Dir::Original));
        self.keys.insert(conn.reply_key(), (id, Dir::Reply));
        self.live.insert(id, (conn, deadline));
    }

    fn remove(&mut self, id: ConnId) -> Conn {
        let (conn, _) = self.live.remove(&id).unwrap();
        self.keys.remove(&conn.original_key());
        self.keys.remove(&conn.reply_key());
        conn
    }

    /// The n-th live connection, in id order.
    fn nth(&self, n: usize) -> Option<ConnId> {
        let mut ids: Vec<ConnId> = self.live.keys().copied().collect();
        ids.sort_unstable();
        (!ids.is_empty()).then(|| ids[n % ids.len()])
    }
}

fn rounded_deadline(now: u64, timeout: u32) -> u64 {
    (now + u64::from(timeout)).div_ceil(TICK_MS) * TICK_MS
}

proptest! {
    /// `tight`: an index with barely more ways than entries, so buckets overflow (and wrap
    /// around) all the time.
    #[test]
    fn matches_a_hash_map_model(
        capacity in 1u32..10,
        tight in any::<bool>(),
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut t = if tight {
            ConnTable::with_index_buckets(capacity, seed, 2 * capacity as usize / 12 + 1)
        } else {
            ConnTable::with_seed(capacity, seed)
        };
        let mut m = Model::default();
        let mut hints = HashMap::new();
        let mut now = 1_000_000u64;
        for op in ops {
            match op {
                Op::Insert(c, timeout, absent) => {
                    let want = if m.live.len() == capacity as usize {
                        Err(InsertError::Full)
                    } else if c.original_key() == c.reply_key()
                        || m.keys.contains_key(&c.original_key())
                        || m.keys.contains_key(&c.reply_key())
                    {
                        Err(InsertError::KeyExists)
                    } else {
                        Ok(())
                    };
                    let got = if absent && !m.keys.contains_key(&c.original_key()) {
                        let hash = t.hash(&c.original_key());
                        t.insert_absent(&c, hash, 0, now, timeout)
                    } else {
                        t.insert(c, now, timeout)
                    };
                    prop_assert_eq!(got.map(|_| ()), want);
                    if let Ok(id) = got {
                        prop_assert!(!m.live.contains_key(&id));
                        m.insert(id, c, rounded_deadline(now, timeout));
                    }
                }
                Op::Remove(n) => {
                    if let Some(id) = m.nth(n) {
                        prop_assert_eq!(t.remove(id), m.remove(id));
                    }
                }
                Op::Lookup(c, reply) => {
                    let key = if reply { c.reply_key() } else { c.original_key() };
                    let want = m.keys.get(&key).copied();
                    prop_assert_eq!(t.lookup(&key), want);
                    // A hint from any earlier time, however stale, changes nothing.
                    let hash = t.hash(&key);
                    if let Some(old) = hints.get(&key) {
                        prop_assert_eq!(t.lookup_hinted(&key, hash, *old), want);
                    }
                    t.prefetch_bucket(hash);
                    let hint = t.prefetch_conns(hash);
                    prop_assert_eq!(t.lookup_hinted(&key, hash, hint), want);
                    prop_assert_eq!(t.lookup_hashed(&key, hash), want);
                    hints.insert(key, hint);
                }
                Op::Touch(n, timeout) => {
                    if let Some(id) = m.nth(n) {
                        t.touch(id, now, timeout);
                        let deadline = rounded_deadline(now, timeout);
                        m.live.get_mut(&id).unwrap().1 = deadline;
                        prop_assert_eq!(t.expires_in_ms(id, now), deadline - now);
                    }
                }
                Op::Advance(dt) => {
                    now += dt;
                    let mut expired = Vec::new();
                    t.expire(now, usize::MAX, |c| expired.push(*c));
                    let due: Vec<ConnId> =
                        m.live.iter().filter(|(_, (_, d))| *d <= now).map(|(id, _)| *id).collect();
                    let mut want: Vec<Conn> = due.into_iter().map(|id| m.remove(id)).collect();
                    let order = |c: &Conn| c.original_key().src.octets().into_iter()
                        .chain(c.cport.to_be_bytes()).chain([c.proto.0]).collect::<Vec<u8>>();
                    expired.sort_by_key(order);
                    want.sort_by_key(order);
                    prop_assert_eq!(expired, want);
                }
            }
            prop_assert_eq!(t.len(), m.live.len());
        }
        let mut listed: Vec<(ConnId, Conn)> = t.iter().collect();
        let mut want: Vec<(ConnId, Conn)> = m.live.iter().map(|(id, (c, _))| (*id, *c)).collect();
        listed.sort_by_key(|(id, _)| *id);
        want.sort_by_key(|(id, _)| *id);
        prop_assert_eq!(listed, want);
    }
}

/// Heavy churn at up to full capacity against the model: long overflow chains form and
/// dissolve as entries come and go.
#[test]
fn churn_matches_the_model() {
    let cap = 3000;
    let mut t = ConnTable::with_seed(cap, 7);
    let mut m = Model::default();
    let mut rng = Lcg(99);
    for step in 0..200_000 {
        let i = rng.next(8000) as u32;
        let c = match i % 3 {
            0 => nat(i),
            _ => fullnat(i),
        };
        match rng.next(3) {
            0 | 1 if m.live.len() < cap as usize => {
                let got = t.insert(c, 0, 1000);
                if m.keys.contains_key(&c.original_key()) {
                    assert_eq!(got, Err(InsertError::KeyExists), "step {step}");
                } else {
                    m.insert(got.unwrap(), c, 0);
                }
            }
            _ => {
                if let Some(&(id, _)) = m.keys.get(&c.original_key()) {
                    assert_eq!(t.remove(id), m.remove(id));
                }
            }
        }
        let probe = if rng.next(2) == 0 { nat(i).reply_key() } else { fullnat(i).reply_key() };
        assert_eq!(t.lookup(&probe), m.keys.get(&probe).copied(), "step {step}");
        assert_eq!(t.lookup(&c.original_key()), m.keys.get(&c.original_key()).copied());
    }
    assert_eq!(t.len(), m.live.len());
}

#[test]
fn client_isn_takes_the_place_of_a_nat_connections_local_address() {
    let mut t = ConnTable::new(16);
    let (a, f) = (nat(1), fullnat(2));
    let (ia, i_f) = (t.insert(a, 0, 1000).unwrap(), t.insert(f, 0, 1000).unwrap());
    assert!(t.set_client_isn(ia, 0xdead_beef));
    assert!(!t.set_client_isn(i_f, 7), "a FullNAT entry has no room");
    assert_eq!(t.client_isn(ia), Some(0xdead_beef));
    assert_eq!(t.client_isn(i_f), None);
    // Both connections read back whole and both keys of each still find them.
    assert_eq!((t.get(ia), t.get(i_f)), (a, f));
    assert_eq!(t.lookup(&a.reply_key()), Some((ia, Dir::Reply)));
    assert_eq!(t.lookup(&f.reply_key()), Some((i_f, Dir::Reply)));
    assert_eq!(t.remove(ia), a);
}

// ---- flood defence: half-open count and eviction ----

#[test]
fn half_open_count_follows_inserts_states_and_removals() {
    let mut t = ConnTable::new(16);
    let a = t.insert(nat(1), 0, 1000).unwrap();
    let b = t.insert(nat(2), 0, 1000).unwrap();
    let udp = t.insert(Conn { proto: UDP, state: TcpState::None, ..nat(3) }, 0, 1000).unwrap();
    let est = t.insert(Conn { state: TcpState::Established, ..nat(4) }, 0, 1000).unwrap();
    // SYN_RECV TCP only: UDP's NONE state is no handshake.
    assert_eq!(t.half_open(), 2);
    t.set_state(a, TcpState::Established);
    assert_eq!(t.half_open(), 1);
    t.set_state(a, TcpState::Established);
    assert_eq!(t.half_open(), 1);
    t.set_state(est, TcpState::TimeWait);
    t.set_state(est, TcpState::SynRecv);
    assert_eq!(t.half_open(), 2);
    t.remove(b);
    t.remove(udp);
    assert_eq!(t.half_open(), 1);
    t.expire(10_000, 100, never_expire);
    assert_eq!(t.half_open(), 0);
    assert!(t.is_empty());
}

#[test]
fn eviction_takes_the_oldest_half_open_or_udp_never_established() {
    let mut t = ConnTable::new(8);
    // 0..3 established, 4 half-open, 5 UDP, 6 half-open then established, 7 half-open.
    let mut ids = Vec::new();
    for i in 0..8u32 {
        let c = match i {
            0..=3 => Conn { state: TcpState::Established, ..nat(i) },
            5 => Conn { proto: UDP, state: TcpState::None, ..nat(i) },
            _ => nat(i),
        };
        ids.push(t.insert(c, 0, 60_000).unwrap());
    }
    t.set_state(ids[6], TcpState::Established);
    assert_eq!(t.insert(nat(100), 0, 1000), Err(InsertError::Full));
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(4).client));
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(5).client));
    // 6 completed its handshake: skipped.
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(7).client));
    assert_eq!(t.evict_oldest(), None);
    assert_eq!(t.len(), 5);
    assert_eq!(t.half_open(), 0);
    for i in [0, 1, 2, 3, 6] {
        assert!(t.lookup(&nat(i).original_key()).is_some(), "{i} kept");
    }
    // A finished connection (TIME_WAIT) may go; one closing (FIN_WAIT) may not.
    t.set_state(ids[1], TcpState::FinWait);
    t.set_state(ids[2], TcpState::TimeWait);
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(2).client));
    assert_eq!(t.evict_oldest(), None);
    t.set_state(ids[1], TcpState::Close);
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(1).client));
    assert_eq!(t.len(), 3);
    // Room again, and a new half-open entry is evictable in turn.
    t.insert(nat(100), 0, 1000).unwrap();
    assert_eq!(t.evict_oldest().map(|c| c.client), Some(nat(100).client));
}

#[test]
fn eviction_queue_stays_bounded_under_churn() {
    // A flood: each new half-open entry evicts the oldest, many times the capacity over,
    // with established entries mixed in; they all survive and the count stays exact.
    let mut t = ConnTable::new(64);
    for i in 0..16 {
        t.insert(Conn { state: TcpState::Established, ..nat(i) }, 0, 900_000).unwrap();
    }
    for i in 16..10_000u32 {
        if t.len() == t.capacity() {
            let evicted = t.evict_oldest().expect("a half-open entry to evict");
            assert_eq!(evicted.state, TcpState::SynRecv);
        }
        t.insert(nat(i), 0, 60_000).unwrap();
        assert_eq!(t.half_open(), t.len() - 16);
    }
    for i in 0..16 {
        assert!(t.lookup(&nat(i).original_key()).is_some());
    }
}
