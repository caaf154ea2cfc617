//! Lookup tables of the hashing schedulers, built on the control thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::hash::stable_hash64;
use super::SchedError;

/// Maglev table size used unless a service asks for another: prime, about 65 slots per
/// backend at 1000 backends (the Maglev paper wants M well above 100 N for balance; 65537
/// keeps the table at 128 KiB, inside L2).
pub const DEFAULT_MAGLEV_SIZE: usize = 65537;

/// Largest Maglev table accepted, so a configuration typo cannot allocate gigabytes.
pub const MAX_MAGLEV_SIZE: usize = 1 << 24;

/// Buckets of the source-hash (sh) table: prime, and large enough that weights keep their
/// resolution with hundreds of backends (IPVS uses 256 and small weights).
pub const SH_TABLE_SIZE: usize = 8191;

/// Most backends a table can address: slot values are `u16` and `u16::MAX` marks an empty slot.
pub const MAX_TABLE_BACKENDS: usize = u16::MAX as usize;

const EMPTY: u16 = u16::MAX;

/// Seeds deriving a backend's Maglev permutation (offset, skip) from its key; fleet contract.
const MAGLEV_OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const MAGLEV_SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// Stride used to scatter each backend's sh buckets over the table (coprime with the prime
/// table size; about size / golden ratio so consecutive buckets land far apart).
const SH_STRIDE: usize = 5063;

/// A slot table for the hashing schedulers: slot `i` holds an index into the service's
/// backend list. Built on the control thread, read-only on workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTable {
    slots: Box<[u16]>,
}

impl HashTable {
    /// Builds a weighted Maglev table (Eisenbud et al., NSDI 2016, section 3.4).
    ///
    /// `keys[i]` is backend `i`'s stable key ([`backend_key`](super::backend_key)) and
    /// `weights[i]` its weight; backends of weight 0 get no slots. Each backend walks its own
    /// permutation of the slots (`offset = h1 % size`, `skip = h2 % (size - 1) + 1`, both
    /// derived from the key, generated on the fly) and claims the next free slot on each of its
    /// turns. A backend of weight `w` gets `w / max_weight` turns per round (credit
    /// accumulation), so slot shares follow weights.
    ///
    /// Turns within a round go in key order, not list order, so the table, read as
    /// slot -> backend identity, does not depend on the order the backends are listed in: every
    /// box of a fleet that has the same backends builds the same mapping. With no backend of
    /// weight > 0 the table is empty and every lookup yields `None`.
    ///
    /// Errors: `size` not prime or above [`MAX_MAGLEV_SIZE`], more than
    /// [`MAX_TABLE_BACKENDS`] backends, or `keys` and `weights` of different lengths.
    pub fn maglev(keys: &[u64], weights: &[u32], size: usize) -> Result<HashTable, SchedError> {
        check_maglev_args(keys, weights, size)?;
        let mut backends: Vec<MaglevBackend> = keys
            .iter()
            .zip(weights)
            .enumerate()
            .filter(|&(_, (_, &weight))| weight > 0)
            .map(|(index, (&key, &weight))| MaglevBackend::new(index as u16, key, weight, size))
            .collect();
        if backends.is_empty() {
            return Ok(HashTable { slots: Box::new([]) });
        }
        backends.sort_by_key(|b| (b.key, b.index));
        let max_weight = backends.iter().map(|b| b.weight).max().unwrap_or(1);
        let weight_sum: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();

        // Both fills produce the same table; pick the cheaper. Scanning every backend each
        // round costs rounds * n, which explodes when one weight dwarfs the rest; the heap
        // costs size * log n whatever the weights.
        let rounds = (size as u64 * u64::from(max_weight)).div_ceil(weight_sum) + 1;
        let scan_cost = rounds.saturating_mul(backends.len() as u64);
        let heap_cost = size as u64 * u64::from(usize::BITS - backends.len().leading_zeros()) * 4;
        let slots = if scan_cost <= heap_cost {
            fill_by_rounds(&mut backends, max_weight, size)
        } else {
            fill_by_heap(&mut backends, max_weight, size)
        };
        Ok(HashTable { slots })
    }

    /// Builds the source-hash (sh) table: [`SH_TABLE_SIZE`] buckets shared out in proportion
    /// to `weights` (largest remainder, ties to the lower index), each backend's buckets
    /// scattered over the table. Deterministic, but unlike Maglev it depends on the order of
    /// the backends and any change remaps many clients (as in IPVS). Backends past
    /// [`MAX_TABLE_BACKENDS`] are not addressable and get no buckets; with more backends than
    /// buckets, some get none. With no weight > 0 the table is empty.
    pub fn source_hash(weights: &[u32]) -> HashTable {
        let weights = &weights[..weights.len().min(MAX_TABLE_BACKENDS)];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return HashTable { slots: Box::new([]) };
        }
        let size = SH_TABLE_SIZE as u64;
        // Whole shares first; at most weights.len() - 1 buckets are left for the remainders.
        let mut quotas: Vec<u64> = weights.iter().map(|&w| size * u64::from(w) / total).collect();
        let assigned: u64 = quotas.iter().sum();
        let mut by_remainder: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
        by_remainder.sort_by_key(|&i| (Reverse(size * u64::from(weights[i]) % total), i));
        for &i in by_remainder.iter().take((size - assigned) as usize) {
            quotas[i] += 1;
        }

        let mut slots = vec![EMPTY; SH_TABLE_SIZE].into_boxed_slice();
        let mut position = 0;
        for (index, &quota) in quotas.iter().enumerate() {
            for _ in 0..quota {
                slots[position] = index as u16;
                position = (position + SH_STRIDE) % SH_TABLE_SIZE;
            }
        }
        HashTable { slots }
    }

    /// The backend index for `hash`, or `None` if the table is empty. Maps the hash to a slot
    /// by multiply-shift (`hash * len >> 32`), uniform for a uniform hash and without a
    /// division; this mapping is part of the fleet contract like the hashes.
    #[inline]
    pub fn lookup(&self, hash: u32) -> Option<u16> {
        let slot = ((u64::from(hash) * self.slots.len() as u64) >> 32) as usize;
        match self.slots.get(slot) {
            Some(&index) if index != EMPTY => Some(index),
            _ => None,
        }
    }

    /// Number of slots (0 for a table without backends).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if the table has no slots, i.e. it was built without any backend of weight > 0.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slots, each a backend index (for tests and reports).
    pub fn slots(&self) -> &[u16] {
        &self.slots
    }
}

fn check_maglev_args(keys: &[u64], weights: &[u32], size: usize) -> Result<(), SchedError> {
    if keys.len() != weights.len() {
        return Err(SchedError::LengthMismatch { keys: keys.len(), weights: weights.len() });
    }
    if keys.len() > MAX_TABLE_BACKENDS {
        return Err(SchedError::TooManyBackends(keys.len()));
    }
    if size > MAX_MAGLEV_SIZE {
        return Err(SchedError::MaglevSizeTooLarge(size));
    }
    if !is_prime(size) {
        return Err(SchedError::MaglevSizeNotPrime(size));
    }
    Ok(())
}

/// A backend taking part in a Maglev fill.
struct MaglevBackend {
    index: u16,
    key: u64,
    weight: u32,
    skip: u32,
    /// Next position of this backend's permutation to try.
    next: u32,
    /// Turns taken so far.
    turns: u64,
}

impl MaglevBackend {
    fn new(index: u16, key: u64, weight: u32, size: usize) -> MaglevBackend {
        let key_bytes = key.to_le_bytes();
        let offset = stable_hash64(&key_bytes, MAGLEV_OFFSET_SEED) % size as u64;
        // size == 2 leaves skip 1, still a full permutation.
        let skip = stable_hash64(&key_bytes, MAGLEV_SKIP_SEED) % (size as u64 - 1).max(1) + 1;
        MaglevBackend { index, key, weight, skip: skip as u32, next: offset as u32, turns: 0 }
    }

    /// The round (from 1) of this backend's `turn`-th turn (from 1): the first round `r` with
    /// `floor(r * weight / max_weight) >= turn`.
    fn round_of_turn(&self, turn: u64, max_weight: u32) -> u64 {
        (turn * u64::from(max_weight)).div_ceil(u64::from(self.weight))
    }

    /// Claims the next free slot of this backend's permutation. `size` is prime and skip in
    /// 1..size, so the permutation visits every slot and a free one exists while the table is
    /// not full.
    fn take_turn(&mut self, slots: &mut [u16]) {
        let size = slots.len() as u32;
        let mut position = self.next;
        while slots[position as usize] != EMPTY {
            position = advance(position, self.skip, size);
        }
        slots[position as usize] = self.index;
        self.next = advance(position, self.skip, size);
        self.turns += 1;
    }
}

#[inline]
fn advance(position: u32, skip: u32, size: u32) -> u32 {
    // position < size and skip < size, both below 2^24: no overflow, no division.
    let next = position + skip;
    if next >= size {
        next - size
    } else {
        next
    }
}

/// Round by round, each backend (in key order) adds its weight to its credit and takes a turn
/// per `max_weight` of credit.
fn fill_by_rounds(backends: &mut [MaglevBackend], max_weight: u32, size: usize) -> Box<[u16]> {
    let mut slots = vec![EMPTY; size].into_boxed_slice();
    if backends.is_empty() || max_weight == 0 {
        return slots;
    }
    let mut credits = vec![0u64; backends.len()];
    let mut filled = 0;
    loop {
        for (backend, credit) in backends.iter_mut().zip(credits.iter_mut()) {
            *credit += u64::from(backend.weight);
            while *credit >= u64::from(max_weight) {
                *credit -= u64::from(max_weight);
                backend.take_turn(&mut slots);
                filled += 1;
                if filled == size {
                    return slots;
                }
            }
        }
    }
}

/// The same turns as [`fill_by_rounds`], in the same order (by round, then key order), but
/// only visiting backends whose turn it is.
fn fill_by_heap(backends: &mut [MaglevBackend], max_weight: u32, size: usize) -> Box<[u16]> {
    let mut slots = vec![EMPTY; size].into_boxed_slice();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> =
        backends.iter().enumerate().map(|(rank, b)| Reverse((b.round_of_turn(1, max_weight), rank))).collect();
    for _ in 0..size {
        let Some(Reverse((_, rank))) = queue.pop() else {
            break;
        };
        let backend = &mut backends[rank];
        backend.take_turn(&mut slots);
        queue.push(Reverse((backend.round_of_turn(backend.turns + 1, max_weight), rank)));
    }
    slots
}

/// Primality, exact for every `usize` (deterministic Miller-Rabin with the first twelve primes
/// as bases, which is exact below 3.3 * 10^24).
// `is_multiple_of` needs Rust 1.87; the workspace declares rust-version 1.80.
#[allow(clippy::manual_is_multiple_of)]
pub fn is_prime(n: usize) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    let n = n as u64;
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    // n - 1 = odd * 2^twos
    let twos = (n - 1).trailing_zeros();
    let odd = (n - 1) >> twos;
    'bases: for a in BASES {
        let mut x = pow_mod(a, odd, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..twos {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

fn pow_mod(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul_mod(result, base, m);
        }
        base = mul_mod(base, base, m);
        exp >>= 1;
    }
    result
}

#[cfg(test)]
pub(super) mod testing {
    //! The two Maglev fills side by side, for the test that they agree.
    use super::*;

    pub(in crate::sched) fn maglev_both_fills(keys: &[u64], weights: &[u32], size: usize) -> (Vec<u16>, Vec<u16>) {
        let build = || -> Vec<MaglevBackend> {
            let mut backends: Vec<MaglevBackend> = keys
                .iter()
                .zip(weights)
                .enumerate()
                .filter(|&(_, (_, &w))| w > 0)
                .map(|(i, (&k, &w))| MaglevBackend::new(i as u16, k, w, size))
                .collect();
            backends.sort_by_key(|b| (b.key, b.index));
            backends
        };
        let max_weight = weights.iter().copied().max().unwrap_or(1);
        let by_rounds = fill_by_rounds(&mut build(), max_weight, size);
        let by_heap = fill_by_heap(&mut build(), max_weight, size);
        (by_rounds.into_vec(), by_heap.into_vec())
    }
}
