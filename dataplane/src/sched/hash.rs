//! Deterministic hashes shared by every ferrovs box in a fleet.
//!
//! **Fleet contract:** the outputs of [`stable_hash64`], [`backend_key`], [`source_hash_v4`]
//! and [`source_hash`] decide which backend a client lands on (through the Maglev and source
//! hash tables). Boxes behind the same ECMP group, and a box before and after a restart or an
//! upgrade, must agree on them, so nothing here is randomly seeded and changing any output is
//! a breaking change for a rolling upgrade. Tests pin fixed values so that an accidental change
//! fails the build.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Seed of [`backend_key`]; part of the fleet contract.
pub const BACKEND_KEY_SEED: u64 = 0x6665_7272_6f76_7331; // "ferrovs1"

/// XXH64 (xxHash, 64-bit variant) of `bytes` with `seed`.
///
/// This is the reference XXH64 algorithm, so its outputs can be checked against any other
/// xxHash implementation. Used on the control thread (backend keys, Maglev permutations); it
/// is not meant for per-packet hashing (see [`source_hash`]). Its output is part of the fleet
/// contract (module docs).
pub fn stable_hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut rest = bytes;
    let mut h = if bytes.len() >= 32 {
        let mut v1 = seed.wrapping_add(PRIME64_1).wrapping_add(PRIME64_2);
        let mut v2 = seed.wrapping_add(PRIME64_2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(PRIME64_1);
        while rest.len() >= 32 {
            v1 = xxh_round(v1, read_u64(&rest[0..8]));
            v2 = xxh_round(v2, read_u64(&rest[8..16]));
            v3 = xxh_round(v3, read_u64(&rest[16..24]));
            v4 = xxh_round(v4, read_u64(&rest[24..32]));
            rest = &rest[32..];
        }
        let mut acc = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for v in [v1, v2, v3, v4] {
            acc = (acc ^ xxh_round(0, v)).wrapping_mul(PRIME64_1).wrapping_add(PRIME64_4);
        }
        acc
    } else {
        seed.wrapping_add(PRIME64_5)
    };
    h = h.wrapping_add(bytes.len() as u64);

    while rest.len() >= 8 {
        h ^= xxh_round(0, read_u64(&rest[0..8]));
        h = h.rotate_left(27).wrapping_mul(PRIME64_1).wrapping_add(PRIME64_4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let word = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        h ^= u64::from(word).wrapping_mul(PRIME64_1);
        h = h.rotate_left(23).wrapping_mul(PRIME64_2).wrapping_add(PRIME64_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(PRIME64_5);
        h = h.rotate_left(11).wrapping_mul(PRIME64_1);
    }

    h ^= h >> 33;
    h = h.wrapping_mul(PRIME64_2);
    h ^= h >> 29;
    h = h.wrapping_mul(PRIME64_3);
    h ^ (h >> 32)
}

#[inline]
fn xxh_round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(PRIME64_2)).rotate_left(31).wrapping_mul(PRIME64_1)
}

#[inline]
fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// The stable key of a backend for [`HashTable::maglev`](super::HashTable::maglev):
/// [`stable_hash64`] with [`BACKEND_KEY_SEED`] over the address bytes (4 for IPv4, 16 for
/// IPv6, network order) followed by the port in network order. Part of the fleet contract.
pub fn backend_key(addr: SocketAddr) -> u64 {
    let mut bytes = [0u8; 18];
    let len = match addr.ip() {
        IpAddr::V4(ip) => {
            bytes[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            bytes[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    bytes[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
    stable_hash64(&bytes[..len + 2], BACKEND_KEY_SEED)
}

/// murmur3's 32-bit finalizer: a bijection on `u32` with full avalanche.
#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// murmur3's 64-bit finalizer.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Hash of an IPv4 client address for sh and mh: murmur3's finalizer over the address (host
/// order), two multiplies. A bijection, so distinct clients never collide before the table
/// maps them to slots. Part of the fleet contract.
#[inline]
pub fn source_hash_v4(addr: Ipv4Addr) -> u32 {
    // The constant keeps 0.0.0.0 from hashing to 0; it is part of the contract like the rest.
    fmix32(u32::from(addr) ^ 0x9E37_79B9)
}

/// Hash of an IPv6 client address for sh and mh: the two 64-bit halves folded through
/// murmur3's 64-bit finalizer. Part of the fleet contract.
#[inline]
pub fn source_hash_v6(addr: Ipv6Addr) -> u32 {
    let bits = u128::from(addr);
    let high = (bits >> 64) as u64;
    let low = bits as u64;
    let h = fmix64(fmix64(high ^ PRIME64_1) ^ low);
    (h ^ (h >> 32)) as u32
}

/// Hash of a client address for sh and mh (the `flow_hash` of [`select`](super::select)).
/// IPv4 and IPv6 use [`source_hash_v4`] and [`source_hash_v6`]; an IPv4-mapped IPv6 address
/// is hashed as IPv6, since the data path sees each client in one family only.
#[inline]
pub fn source_hash(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(v4) => source_hash_v4(v4),
        IpAddr::V6(v6) => source_hash_v6(v6),
    }
}

/// A further hash of `flow_hash` for the `attempt`-th fallback probe of sh/mh, so a flow whose
/// slot points at an unschedulable backend lands on a pseudo-random other slot (spreading that
/// backend's flows over the rest) instead of the neighbouring slot.
#[inline]
pub(super) fn rehash(flow_hash: u32, attempt: u32) -> u32 {
    fmix32(flow_hash ^ attempt.wrapping_mul(0x9E37_79B9))
}

/// Spreads a user-given seed (often 0, 1, 2, ...) over all 64 bits for the RNG state.
#[inline]
pub(super) fn mix_seed(seed: u64) -> u64 {
    fmix64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15))
}
