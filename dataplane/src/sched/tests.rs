use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::table::testing::maglev_both_fills;
use super::*;

fn candidates(weights: &[u32]) -> Vec<Candidate> {
    weights.iter().map(|&weight| Candidate { weight, schedulable: true }).collect()
}

fn idle(_: usize) -> u32 {
    0
}

fn pick(kind: SchedKind, state: &mut SchedState, backends: &[Candidate]) -> Option<usize> {
    select(kind, state, backends, None, 0, idle)
}

/// How many of `picks` calls chose each backend.
fn tally(kind: SchedKind, backends: &[Candidate], picks: usize) -> Vec<usize> {
    let mut state = SchedState::default();
    let mut counts = vec![0; backends.len()];
    for _ in 0..picks {
        counts[pick(kind, &mut state, backends).expect("an eligible backend")] += 1;
    }
    counts
}

fn keys_for(count: usize) -> Vec<u64> {
    (0..count)
        .map(|i| {
            let ip = Ipv4Addr::new(10, 1, (i / 256) as u8, (i % 256) as u8);
            backend_key(SocketAddr::new(IpAddr::V4(ip), 8080))
        })
        .collect()
}

fn slot_counts(table: &HashTable, backends: usize) -> Vec<usize> {
    slot_counts_of(table.slots(), backends)
}

fn slot_counts_of(slots: &[u16], backends: usize) -> Vec<usize> {
    let mut counts = vec![0; backends];
    for &slot in slots {
        counts[usize::from(slot)] += 1;
    }
    counts
}

/// Client hashes of 10.0.0.0 onwards, as the data path computes them.
fn client_hashes(count: u32) -> impl Iterator<Item = u32> {
    (0..count).map(|i| source_hash_v4(Ipv4Addr::from(0x0A00_0000 + i)))
}

fn assert_shares_near(counts: &[usize], weights: &[u32], tolerance: f64, what: &str) {
    let total: usize = counts.iter().sum();
    let weight_sum: u32 = weights.iter().sum();
    for (i, (&count, &weight)) in counts.iter().zip(weights).enumerate() {
        if weight == 0 {
            assert_eq!(count, 0, "{what}: backend {i} has weight 0; all counts {counts:?}");
            continue;
        }
        let expected = total as f64 * f64::from(weight) / f64::from(weight_sum);
        let ratio = count as f64 / expected;
        assert!(
            (ratio - 1.0).abs() <= tolerance,
            "{what}: backend {i} (weight {weight}) got {count}, expected {expected:.0} \
             (ratio {ratio:.4}, tolerance {tolerance}); all counts {counts:?}"
        );
    }
}

// ---- SchedKind ----

#[test]
fn kind_names_round_trip_through_from_str_display_and_serde() {
    use serde::de::value::{Error as ValueError, StrDeserializer};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    let names: Vec<&str> = SchedKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["rr", "wrr", "lc", "wlc", "sh", "mh", "twos", "fo"]);
    for &kind in SchedKind::ALL {
        assert_eq!(kind.as_str().parse::<SchedKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        let deserializer: StrDeserializer<'_, ValueError> = kind.as_str().into_deserializer();
        assert_eq!(SchedKind::deserialize(deserializer), Ok(kind));
        assert_eq!(kind.needs_table(), matches!(kind, SchedKind::Sh | SchedKind::Mh));
    }
    let error = "lblc".parse::<SchedKind>().unwrap_err();
    assert!(error.contains("\"lblc\"") && error.contains("rr, wrr, lc, wlc, sh, mh, twos, fo"));
    assert!("RR".parse::<SchedKind>().is_err(), "names are exact, as in serde");
}

// ---- Eligibility ----

#[test]
fn no_scheduler_chooses_an_ineligible_backend_and_none_when_all_are() {
    let backends = [
        Candidate { weight: 0, schedulable: true },
        Candidate { weight: 5, schedulable: false },
        Candidate { weight: 1, schedulable: true },
        Candidate { weight: 9, schedulable: false },
        Candidate { weight: 0, schedulable: false },
        Candidate { weight: 2, schedulable: true },
    ];
    let weights: Vec<u32> = backends.iter().map(|c| c.weight).collect();
    let sh = HashTable::source_hash(&weights);
    let mh = HashTable::maglev(&keys_for(6), &weights, 251).unwrap();
    for &kind in SchedKind::ALL {
        let table = match kind {
            SchedKind::Sh => Some(&sh),
            SchedKind::Mh => Some(&mh),
            _ => None,
        };
        let mut state = SchedState::with_seed(7);
        let mut seen = [false; 6];
        for hash in client_hashes(2000) {
            let chosen = select(kind, &mut state, &backends, table, hash, idle).unwrap();
            assert!(backends[chosen].is_eligible(), "{kind} chose ineligible backend {chosen}");
            seen[chosen] = true;
        }
        if kind != SchedKind::Fo {
            assert!(seen[2] && seen[5], "{kind} should use both eligible backends: {seen:?}");
        }

        let ineligible = [Candidate { weight: 0, schedulable: true }, Candidate { weight: 3, schedulable: false }];
        assert_eq!(select(kind, &mut state, &ineligible, table, 1, idle), None, "{kind}");
        assert_eq!(select(kind, &mut state, &[], table, 1, idle), None, "{kind}");
    }
}

// ---- rr / wrr ----

#[test]
fn rr_takes_eligible_backends_in_turn() {
    let mut backends = candidates(&[1, 7, 3, 2]);
    backends[2].schedulable = false;
    let mut state = SchedState::default();
    let order: Vec<usize> = (0..7).map(|_| pick(SchedKind::Rr, &mut state, &backends).unwrap()).collect();
    assert_eq!(order, [0, 1, 3, 0, 1, 3, 0]);
    assert_eq!(tally(SchedKind::Rr, &candidates(&[1, 5, 9]), 300), [100, 100, 100]);
}

#[test]
fn wrr_gives_exact_weight_shares_interleaved_like_ipvs() {
    let backends = candidates(&[1, 2, 3]);
    let mut state = SchedState::default();
    let cycle: Vec<usize> = (0..6).map(|_| pick(SchedKind::Wrr, &mut state, &backends).unwrap()).collect();
    assert_eq!(cycle, [2, 1, 2, 0, 1, 2], "IPVS interleaving");
    assert_eq!(tally(SchedKind::Wrr, &backends, 600), [100, 200, 300]);

    // gcd 10: one cycle is 6 picks, not 60; an unschedulable heavyweight takes no part.
    let mut backends = candidates(&[10, 20, 30, 100]);
    backends[3].schedulable = false;
    assert_eq!(tally(SchedKind::Wrr, &backends, 6), [1, 2, 3, 0]);
    assert_eq!(tally(SchedKind::Wrr, &candidates(&[4, 4]), 10), [5, 5]);
    // A cycle is sum / gcd picks only if the gcd is right (6, 12, 7 here).
    assert_eq!(tally(SchedKind::Wrr, &candidates(&[12, 18, 30]), 10), [2, 3, 5]);
    assert_eq!(tally(SchedKind::Wrr, &candidates(&[48, 36, 60]), 12), [4, 3, 5]);
    assert_eq!(tally(SchedKind::Wrr, &candidates(&[7, 7, 7]), 3), [1, 1, 1]);
}

// ---- lc / wlc ----

/// Opens `picks` connections with `kind`, closing the oldest open connection after every
/// third pick, and checks each pick against the expected rule on the counts of the moment.
fn simulate_least(kind: SchedKind, backends: &[Candidate], picks: usize) -> Vec<u32> {
    let active = RefCell::new(vec![0u32; backends.len()]);
    let mut open: std::collections::VecDeque<usize> = Default::default();
    let mut state = SchedState::default();
    for n in 0..picks {
        let chosen = select(kind, &mut state, backends, None, 0, |i| active.borrow()[i]).unwrap();
        let counts = active.borrow().clone();
        for (i, candidate) in backends.iter().enumerate().filter(|(_, c)| c.is_eligible()) {
            let (a_i, w_i) = (u64::from(counts[i]), u64::from(candidate.weight));
            let (a_c, w_c) = (u64::from(counts[chosen]), u64::from(backends[chosen].weight));
            let less = match kind {
                SchedKind::Lc => a_i < a_c,
                _ => a_i * w_c < a_c * w_i,
            };
            assert!(!less, "{kind}: chose {chosen} with {counts:?} but {i} is less loaded");
        }
        active.borrow_mut()[chosen] += 1;
        open.push_back(chosen);
        if n % 3 == 2 {
            let oldest = open.pop_front().unwrap();
            active.borrow_mut()[oldest] -= 1;
        }
    }
    active.into_inner()
}

#[test]
fn lc_chooses_the_least_active_backend() {
    let mut backends = candidates(&[1, 1, 1, 1]);
    backends[3].schedulable = false;
    let active = simulate_least(SchedKind::Lc, &backends, 3000);
    assert_eq!(active[3], 0);
    let (min, max) = (active[..3].iter().min().unwrap(), active[..3].iter().max().unwrap());
    assert!(max - min <= 1, "lc keeps counts level: {active:?}");

    // Ties rotate instead of piling on backend 0.
    assert_eq!(tally(SchedKind::Lc, &candidates(&[1, 1, 1]), 3), [1, 1, 1]);
    let loaded = [5, 2, 9];
    let mut state = SchedState::default();
    let chosen = select(SchedKind::Lc, &mut state, &candidates(&[1, 1, 1]), None, 0, |i| loaded[i]);
    assert_eq!(chosen, Some(1));
}

#[test]
fn wlc_balances_active_connections_in_proportion_to_weight() {
    let backends = candidates(&[1, 2, 3]);
    let active = simulate_least(SchedKind::Wlc, &backends, 1800);
    // 1800 opened, 600 closed: 1200 open, ideally 200/400/600.
    assert_eq!(active.iter().sum::<u32>(), 1200);
    for (i, (&count, &ideal)) in active.iter().zip(&[200u32, 400, 600]).enumerate() {
        assert!(count.abs_diff(ideal) <= 3, "backend {i}: {count} vs {ideal} ({active:?})");
    }
    // 3/1 > 4/2 > 3/3: backend 2 despite the most connections.
    let loaded = [3, 4, 3];
    let mut state = SchedState::default();
    assert_eq!(select(SchedKind::Wlc, &mut state, &backends, None, 0, |i| loaded[i]), Some(2));
}

// ---- sh / mh ----

#[test]
fn sh_and_mh_are_sticky_and_spread_clients_in_proportion_to_weight() {
    let weights = [1, 2, 3, 0, 2];
    let backends = candidates(&weights);
    let sh = HashTable::source_hash(&weights);
    let mh = HashTable::maglev(&keys_for(weights.len()), &weights, DEFAULT_MAGLEV_SIZE).unwrap();
    for (kind, table) in [(SchedKind::Sh, &sh), (SchedKind::Mh, &mh)] {
        let mut state = SchedState::default();
        let mut counts = vec![0; weights.len()];
        for hash in client_hashes(400_000) {
            let chosen = select(kind, &mut state, &backends, Some(table), hash, idle).unwrap();
            let again = select(kind, &mut state, &backends, Some(table), hash, idle).unwrap();
            assert_eq!(chosen, again, "{kind}: same client, same backend");
            assert_eq!(Some(chosen as u16), table.lookup(hash), "{kind}: the table decides");
            counts[chosen] += 1;
        }
        assert_eq!(counts[3], 0);
        assert_shares_near(&counts, &weights, 0.03, kind.as_str());
    }
}

#[test]
fn sh_table_shares_buckets_by_largest_remainder() {
    let table = HashTable::source_hash(&[1, 2, 3]);
    assert_eq!(table.len(), SH_TABLE_SIZE);
    // 8191 / 6 = 1365.17, 2730.33, 4095.5: the spare bucket goes to the largest remainder.
    assert_eq!(slot_counts(&table, 3), [1365, 2730, 4096]);
    let big = HashTable::source_hash(&[1000, 1000, 3000, 0]);
    assert_eq!(slot_counts(&big, 4), [1638, 1638, 4915, 0]);
    // Each backend's buckets are scattered over the table, not one block per backend: every
    // eighth of the table holds each backend's share.
    for window in table.slots().chunks(SH_TABLE_SIZE / 8).take(8) {
        assert_shares_near(&slot_counts_of(window, 3), &[1, 2, 3], 0.05, "sh window");
    }
    assert!(HashTable::source_hash(&[0, 0]).is_empty());
    assert_eq!(HashTable::source_hash(&[0, 0]).lookup(12345), None);
}

#[test]
fn hashing_falls_back_deterministically_and_spreads_a_down_backends_clients() {
    let weights = [1u32; 10];
    let mut backends = candidates(&weights);
    let mh = HashTable::maglev(&keys_for(10), &weights, DEFAULT_MAGLEV_SIZE).unwrap();
    let before: Vec<usize> = client_hashes(50_000)
        .map(|h| select(SchedKind::Mh, &mut SchedState::default(), &backends, Some(&mh), h, idle).unwrap())
        .collect();
    backends[4].schedulable = false;
    let mut moved_to = vec![0; 10];
    for (hash, &old) in client_hashes(50_000).zip(&before) {
        let mut state = SchedState::default();
        let new = select(SchedKind::Mh, &mut state, &backends, Some(&mh), hash, idle).unwrap();
        let repeat = select(SchedKind::Mh, &mut state, &backends, Some(&mh), hash, idle).unwrap();
        assert_eq!(new, repeat);
        if old == 4 {
            moved_to[new] += 1;
        } else {
            assert_eq!(new, old, "clients of healthy backends stay put");
        }
    }
    assert_eq!(moved_to[4], 0);
    // About 5000 clients over 9 backends; none should take more than twice its share.
    assert!(moved_to.iter().all(|&n| n <= 1200), "{moved_to:?}");
    assert!(moved_to.iter().enumerate().all(|(i, &n)| i == 4 || n >= 200), "{moved_to:?}");

    // Only one eligible backend: probes rarely find it, the final scan does.
    let mut lonely = candidates(&weights);
    for (i, candidate) in lonely.iter_mut().enumerate() {
        candidate.schedulable = i == 7;
    }
    for hash in client_hashes(1000) {
        let chosen = select(SchedKind::Mh, &mut SchedState::default(), &lonely, Some(&mh), hash, idle);
        assert_eq!(chosen, Some(7));
    }

    // Without a table (or with an empty one), sh and mh still choose deterministically.
    let empty = HashTable::source_hash(&[]);
    for table in [None, Some(&empty)] {
        for hash in client_hashes(100) {
            let a = select(SchedKind::Sh, &mut SchedState::default(), &backends, table, hash, idle);
            let b = select(SchedKind::Sh, &mut SchedState::default(), &backends, table, hash, idle);
            assert_eq!(a, b);
            assert!(backends[a.unwrap()].is_eligible());
        }
    }
}

// ---- twos / fo ----

#[test]
fn twos_prefers_the_less_loaded_of_two_random_backends() {
    let backends = candidates(&[1, 1, 1]);
    let loaded = [0u32, 50, 100];
    let mut state = SchedState::with_seed(1);
    let mut counts = [0; 3];
    for _ in 0..3000 {
        counts[select(SchedKind::Twos, &mut state, &backends, None, 0, |i| loaded[i]).unwrap()] += 1;
    }
    // Backend 0 wins whenever drawn (2 of 3 pairs), 1 only against 2, 2 never.
    assert_eq!(counts[2], 0, "{counts:?}");
    assert!((1800..2200).contains(&counts[0]) && (800..1200).contains(&counts[1]), "{counts:?}");

    // Two backends: both are always drawn, so the less loaded always wins.
    let pair = candidates(&[5, 1]);
    for _ in 0..100 {
        // 9/5 > 1/1, although backend 0 is five times as likely to be drawn first.
        assert_eq!(select(SchedKind::Twos, &mut state, &pair, None, 0, |i| [9, 1][i]), Some(1));
    }

    // Idle backends: the first draw wins, and draws follow weights.
    let mut counts = [0; 2];
    for _ in 0..20_000 {
        counts[select(SchedKind::Twos, &mut state, &candidates(&[1, 3]), None, 0, idle).unwrap()] += 1;
    }
    assert_shares_near(&counts, &[1, 3], 0.05, "twos idle");
}

#[test]
fn twos_seeds_give_different_but_reproducible_sequences() {
    let backends = candidates(&[1; 8]);
    let run = |seed| {
        let mut state = SchedState::with_seed(seed);
        let load = |i: usize| (i as u32 * 7) % 5;
        (0..64).map(|_| select(SchedKind::Twos, &mut state, &backends, None, 0, load).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    assert_ne!(run(0), Vec::<usize>::new());
}

#[test]
fn fo_chooses_the_heaviest_and_fails_over_in_weight_order() {
    let mut backends = candidates(&[5, 9, 9, 7]);
    let mut state = SchedState::default();
    assert_eq!(pick(SchedKind::Fo, &mut state, &backends), Some(1), "lowest index of equals");
    backends[1].schedulable = false;
    assert_eq!(pick(SchedKind::Fo, &mut state, &backends), Some(2));
    backends[2].weight = 0;
    assert_eq!(pick(SchedKind::Fo, &mut state, &backends), Some(3));
    backends[3].schedulable = false;
    assert_eq!(pick(SchedKind::Fo, &mut state, &backends), Some(0));
    backends[1].schedulable = true;
    assert_eq!(pick(SchedKind::Fo, &mut state, &backends), Some(1), "fails back");
}

// ---- Maglev ----

#[test]
fn maglev_gives_1000_equal_backends_their_share_within_one_percent() {
    let started = std::time::Instant::now();
    let table = HashTable::maglev(&keys_for(1000), &[1; 1000], DEFAULT_MAGLEV_SIZE).unwrap();
    let elapsed = started.elapsed();
    let counts = slot_counts(&table, 1000);
    let ideal = DEFAULT_MAGLEV_SIZE as f64 / 1000.0;
    let max = *counts.iter().max().unwrap() as f64;
    let min = *counts.iter().min().unwrap() as f64;
    eprintln!(
        "maglev M={DEFAULT_MAGLEV_SIZE} N=1000: slots per backend min {min} max {max} ideal \
         {ideal:.3} (max/ideal {:.4}, min/ideal {:.4}); build {elapsed:?} (unoptimized test build)",
        max / ideal,
        min / ideal
    );
    assert_eq!(table.len(), DEFAULT_MAGLEV_SIZE);
    assert!(table.slots().iter().all(|&slot| slot < 1000), "every slot filled");
    assert!(max / ideal <= 1.01 && min / ideal >= 0.99);
}

#[test]
fn maglev_slot_shares_follow_weights() {
    for weights in [&[1u32, 2, 3][..], &[3, 0, 1, 2, 1, 3, 2, 0, 2], &[1000, 1, 1, 500]] {
        let table = HashTable::maglev(&keys_for(weights.len()), weights, DEFAULT_MAGLEV_SIZE).unwrap();
        let counts = slot_counts(&table, weights.len());
        eprintln!("maglev weights {weights:?}: slots {counts:?}");
        // The weight-1 backends of the last case hold ~65 slots, where one slot is 1.5%.
        let tolerance = if weights.contains(&1000) { 0.05 } else { 0.02 };
        assert_shares_near(&counts, weights, tolerance, "maglev weighted");
    }
}

#[test]
fn maglev_removing_one_of_100_backends_moves_about_one_hundredth_of_slots() {
    const N: usize = 100;
    let keys = keys_for(N);
    let before = HashTable::maglev(&keys, &[1; N], DEFAULT_MAGLEV_SIZE).unwrap();
    let removed = 37;
    let mut remaining_keys = keys.clone();
    remaining_keys.remove(removed);
    let after = HashTable::maglev(&remaining_keys, &[1; N - 1], DEFAULT_MAGLEV_SIZE).unwrap();

    let mut of_removed = 0;
    let mut others_moved = 0;
    for (&old, &new) in before.slots().iter().zip(after.slots()) {
        let (old_key, new_key) = (keys[usize::from(old)], remaining_keys[usize::from(new)]);
        if usize::from(old) == removed {
            of_removed += 1;
        } else if old_key != new_key {
            others_moved += 1;
        }
    }
    let size = DEFAULT_MAGLEV_SIZE as f64;
    let changed = (of_removed + others_moved) as f64 / size;
    eprintln!(
        "maglev M={DEFAULT_MAGLEV_SIZE} N={N}, one removed: {of_removed} slots of the removed \
         backend moved (must), {others_moved} others moved; changed fraction {changed:.5} \
         (1/N = {:.5})",
        1.0 / N as f64
    );
    assert!(of_removed > 0);
    assert!(changed <= 1.5 / N as f64 + 0.002, "too much disruption: {changed}");

    // Weight 0 is removal too: the same table as without the backend, by identity.
    let mut weights = [1; N];
    weights[removed] = 0;
    let drained = HashTable::maglev(&keys, &weights, DEFAULT_MAGLEV_SIZE).unwrap();
    for (&with_zero, &without) in drained.slots().iter().zip(after.slots()) {
        assert_eq!(keys[usize::from(with_zero)], remaining_keys[usize::from(without)]);
    }
}

#[test]
fn maglev_mapping_does_not_depend_on_backend_order() {
    let keys = keys_for(20);
    let weights: Vec<u32> = (0..20).map(|i| 1 + i % 4).collect();
    let table = HashTable::maglev(&keys, &weights, 4099).unwrap();
    let mut order: Vec<usize> = (0..20).collect();
    order.reverse();
    order.swap(3, 11);
    let shuffled_keys: Vec<u64> = order.iter().map(|&i| keys[i]).collect();
    let shuffled_weights: Vec<u32> = order.iter().map(|&i| weights[i]).collect();
    let shuffled = HashTable::maglev(&shuffled_keys, &shuffled_weights, 4099).unwrap();
    for (&a, &b) in table.slots().iter().zip(shuffled.slots()) {
        assert_eq!(keys[usize::from(a)], shuffled_keys[usize::from(b)]);
    }
}

#[test]
fn maglev_rejects_bad_arguments_with_clear_errors() {
    let error = HashTable::maglev(&[1, 2], &[1, 1], 65536).unwrap_err();
    assert_eq!(error, SchedError::MaglevSizeNotPrime(65536));
    assert_eq!(error.to_string(), "maglev table size 65536 is not prime (default 65537)");
    assert!(HashTable::maglev(&[1, 2], &[1, 1], 1).is_err());
    assert!(matches!(HashTable::maglev(&[1, 2], &[1], 251), Err(SchedError::LengthMismatch { keys: 2, weights: 1 })));
    let many = vec![1; MAX_TABLE_BACKENDS + 1];
    let many_weights = vec![1; MAX_TABLE_BACKENDS + 1];
    assert!(matches!(HashTable::maglev(&many, &many_weights, 251), Err(SchedError::TooManyBackends(_))));
    assert!(matches!(HashTable::maglev(&[1], &[1], 16_777_259), Err(SchedError::MaglevSizeTooLarge(_))));

    let empty = HashTable::maglev(&[1, 2], &[0, 0], 251).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.lookup(7), None);
    let tiny = HashTable::maglev(&[1, 2, 3], &[1, 1, 1], 2).unwrap();
    assert_eq!(tiny.len(), 2);
}

#[test]
#[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; rust-version is 1.80
fn is_prime_matches_trial_division() {
    let trial = |n: usize| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
    for n in 0..20_000 {
        assert_eq!(is_prime(n), trial(n), "{n}");
    }
    for n in [65537, 4093, 8191, 4099, 2_147_483_647, 1_000_000_007] {
        assert!(is_prime(n), "{n}");
    }
    // Strong pseudoprimes to several small bases, and a square of a prime.
    for n in [3_215_031_751, 2_152_302_898_747, 3_474_749_660_383, 65537 * 65537] {
        assert!(!is_prime(n), "{n}");
    }
    assert!(is_prime(18_446_744_073_709_551_557), "largest 64-bit prime");
}

// ---- Determinism: the fleet contract ----

#[test]
fn stable_hash64_is_xxh64() {
    // Values of the reference implementation (libxxhash 0.8.1 XXH64), covering the 32-byte
    // stripes and every tail path (8-, 4- and 1-byte steps).
    assert_eq!(stable_hash64(b"", 0), 0xEF46_DB37_51D8_E999);
    assert_eq!(stable_hash64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    assert_eq!(stable_hash64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
    assert_eq!(stable_hash64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
    assert_eq!(stable_hash64(b"xxhash", 20_141_025), 0xB559_B98D_844E_0635);
    let bytes: Vec<u8> = (0..251u8).collect();
    assert_eq!(stable_hash64(&bytes, 0x5eed), 0xA6F0_A63A_628C_1A70);
}

#[test]
fn fleet_contract_values_are_pinned() {
    // If one of these fails, boxes running different versions map clients differently.
    let long: Vec<u8> = (0..=255u8).collect();
    assert_eq!(stable_hash64(&long, 0x5eed), 0x8BB3_CBA7_D219_772A);
    assert_eq!(backend_key("192.0.2.10:443".parse().unwrap()), 0x4C57_2011_DC5D_1B2F);
    assert_eq!(backend_key("[2001:db8::10]:443".parse().unwrap()), 0xE351_283F_EBC8_B19D);
    assert_eq!(source_hash_v4(Ipv4Addr::new(198, 51, 100, 7)), 0x0581_1D14);
    assert_eq!(source_hash(IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().unwrap())), 0x32B2_B64E);

    let weights = [1, 2, 0, 3, 1];
    let maglev = HashTable::maglev(&keys_for(5), &weights, 251).unwrap();
    let maglev_bytes: Vec<u8> = maglev.slots().iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(stable_hash64(&maglev_bytes, 0), 0xCA2C_B24A_B493_0356);
    let sh = HashTable::source_hash(&weights);
    let sh_bytes: Vec<u8> = sh.slots().iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(stable_hash64(&sh_bytes, 0), 0x96D1_8320_48B7_1DE1);
}

#[test]
fn same_inputs_build_identical_tables() {
    let keys = keys_for(300);
    let weights: Vec<u32> = (0..300).map(|i| i % 5).collect();
    let a = HashTable::maglev(&keys, &weights, DEFAULT_MAGLEV_SIZE).unwrap();
    let b = HashTable::maglev(&keys, &weights, DEFAULT_MAGLEV_SIZE).unwrap();
    assert_eq!(a, b);
    assert_eq!(HashTable::source_hash(&weights), HashTable::source_hash(&weights));
}

#[test]
fn source_hashes_spread_neighbouring_clients() {
    // Sequential addresses must not land in sequential slots of a small table.
    let table = HashTable::source_hash(&[1; 8]);
    let mut counts = [0; 8];
    for hash in client_hashes(8000) {
        counts[usize::from(table.lookup(hash).unwrap())] += 1;
    }
    assert_shares_near(&counts, &[1; 8], 0.1, "sequential clients");
    let v6: std::collections::HashSet<u32> =
        (0..10_000u128).map(|i| source_hash_v6(Ipv6Addr::from((0x2001_0db8u128 << 96) | i))).collect();
    assert!(v6.len() > 9_980, "IPv6 hash collisions: {}", 10_000 - v6.len());
}

// ---- Properties ----

proptest! {
    #[test]
    fn maglev_fills_by_rounds_and_by_heap_agree(
        weights in proptest::collection::vec(0u32..20, 1..40),
        heavy in proptest::option::of(1000u32..100_000),
    ) {
        let mut weights = weights;
        if let Some(heavy) = heavy {
            weights[0] = heavy;
        }
        prop_assume!(weights.iter().any(|&w| w > 0));
        let (by_rounds, by_heap) = maglev_both_fills(&keys_for(weights.len()), &weights, 1031);
        prop_assert!(by_rounds.iter().all(|&s| usize::from(s) < weights.len()));
        prop_assert_eq!(by_rounds, by_heap);
    }

    #[test]
    fn state_survives_backend_lists_changing_under_it(
        steps in proptest::collection::vec(
            (
                proptest::collection::vec((0u32..4, any::<bool>()), 0..9),
                0usize..8,
                any::<u32>(),
                any::<bool>(),
            ),
            1..40,
        ),
        seed in any::<u64>(),
    ) {
        // Tables built for the first list stay in use while the list changes (stale tables).
        let mut state = SchedState::with_seed(seed);
        let mut tables: Option<(HashTable, HashTable)> = None;
        for (list, kind_index, flow_hash, rebuild) in steps {
            let backends: Vec<Candidate> = list
                .iter()
                .map(|&(weight, schedulable)| Candidate { weight, schedulable })
                .collect();
            let weights: Vec<u32> = list.iter().map(|&(w, _)| w).collect();
            if rebuild || tables.is_none() {
                tables = Some((
                    HashTable::source_hash(&weights),
                    HashTable::maglev(&keys_for(weights.len()), &weights, 251).unwrap(),
                ));
            }
            let (sh, mh) = tables.as_ref().unwrap();
            let kind = SchedKind::ALL[kind_index];
            let table = match kind {
                SchedKind::Sh => Some(sh),
                SchedKind::Mh => Some(mh),
                _ => None,
            };
            let load = |i: usize| (i as u32 * 3) % 4;
            let chosen = select(kind, &mut state, &backends, table, flow_hash, load);
            let any_eligible = backends.iter().any(Candidate::is_eligible);
            match chosen {
                Some(i) => prop_assert!(i < backends.len() && backends[i].is_eligible()),
                None => prop_assert!(!any_eligible, "{kind} found nothing among {backends:?}"),
            }
        }
    }
}

#[test]
fn state_survives_5_then_2_then_7_backends() {
    let lists = [candidates(&[1, 2, 3, 4, 5]), candidates(&[3, 1]), candidates(&[1, 1, 2, 2, 3, 3, 0])];
    for &kind in SchedKind::ALL {
        let mut state = SchedState::default();
        for backends in lists.iter().chain(lists.iter().rev()) {
            let weights: Vec<u32> = backends.iter().map(|c| c.weight).collect();
            let table = HashTable::source_hash(&weights);
            for hash in 0..50 {
                let chosen = select(kind, &mut state, backends, Some(&table), hash * 7919, |i| i as u32);
                assert!(backends[chosen.unwrap()].is_eligible(), "{kind}");
            }
        }
    }
}
