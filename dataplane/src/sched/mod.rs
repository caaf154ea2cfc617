//! Schedulers: which backend of a service takes a new connection.
//!
//! # Who does what
//!
//! * The **control thread** describes each service's backends as [`Candidate`]s (weight,
//!   schedulable) in the service's backend order and, for sh and mh, builds a [`HashTable`]
//!   ([`HashTable::source_hash`], [`HashTable::maglev`] with keys from [`backend_key`]). Both
//!   are published read-only to the workers.
//! * A **worker core** keeps one [`SchedState`] per service and calls [`select`] for the first
//!   packet of a connection; later packets follow the connection table, not the scheduler.
//!   `select` allocates nothing, takes no lock, makes no syscall and uses no atomics.
//!
//! A backend that is not schedulable or has weight 0 is never chosen by any scheduler (IPVS's
//! quiescent state: existing connections drain, new ones go elsewhere). `select` returns
//! `None` only when no backend is eligible.
//!
//! # Schedulers (IPVS names)
//!
//! * `rr`: round robin over the eligible backends.
//! * `wrr`: IPVS interleaved weighted round robin (current weight stepping down by the gcd of
//!   the weights from the maximum weight); exact weight shares over each cycle.
//! * `lc`: fewest active connections. Ties go to the first in a scan that starts after the
//!   previous pick, so equally loaded backends take turns.
//! * `wlc`: least active / weight (compared by cross multiplication), ties as lc. As in IPVS,
//!   weights only matter once backends carry connections.
//! * `sh`: source hashing through a weighted bucket table ([`SH_TABLE_SIZE`] buckets).
//! * `mh`: Maglev consistent hashing ([`DEFAULT_MAGLEV_SIZE`] slots by default): removing one
//!   of N backends moves about 1/N of the clients, and every box of a fleet maps a client to
//!   the same backend.
//! * `twos`: power of two choices: two distinct backends drawn at random in proportion to
//!   weight, the one with the lower active / weight wins.
//! * `fo`: weighted fail-over: the highest weight wins, the lowest index among equals.
//!
//! For sh and mh, when the flow's slot names a backend that cannot take it, a bounded number
//! of rehashed slots are tried, then a scan of the list from a flow-dependent position, so the
//! choice stays deterministic per client.
//!
//! Cost per new connection: sh and mh are a table lookup; rr is a short scan; wrr, lc, wlc,
//! twos and fo walk the backend list once or twice (IPVS does the same), so they suit
//! services of up to a few hundred backends.
//!
//! Active connection counts are per core (each core sees its own share of the traffic, spread
//! by RSS), so lc, wlc and twos balance each core's connections.
//!
//! # Fleet contract
//!
//! [`stable_hash64`], [`backend_key`], [`source_hash`], the Maglev permutation and fill, and
//! [`HashTable::lookup`]'s slot mapping are deterministic and seeded with constants: boxes
//! sharing an ECMP group, and a box across restarts, map a client identically. Tests pin
//! their values; changing them breaks consistent hashing across a rolling upgrade.

mod hash;
mod select;
mod table;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use hash::{backend_key, source_hash, source_hash_v4, source_hash_v6, stable_hash64, BACKEND_KEY_SEED};
pub use select::{select, SchedState};
pub use table::{is_prime, HashTable, DEFAULT_MAGLEV_SIZE, MAX_MAGLEV_SIZE, MAX_TABLE_BACKENDS, SH_TABLE_SIZE};

/// Which scheduler a service uses. Serde, `FromStr` and `Display` use the lowercase IPVS
/// names: "rr", "wrr", "lc", "wlc", "sh", "mh", "twos", "fo".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin (IPVS interleaved).
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Mh,
    /// Power of two random choices.
    Twos,
    /// Weighted fail-over.
    Fo,
}

impl SchedKind {
    /// Every scheduler, in documentation order.
    pub const ALL: &'static [SchedKind] = &[
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sh,
        SchedKind::Mh,
        SchedKind::Twos,
        SchedKind::Fo,
    ];

    /// The IPVS name, as in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sh => "sh",
            SchedKind::Mh => "mh",
            SchedKind::Twos => "twos",
            SchedKind::Fo => "fo",
        }
    }

    /// True for the schedulers that need a [`HashTable`]: sh ([`HashTable::source_hash`]) and
    /// mh ([`HashTable::maglev`]).
    pub fn needs_table(self) -> bool {
        matches!(self, SchedKind::Sh | SchedKind::Mh)
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedKind {
    type Err = String;

    /// Exact lowercase names, as serde accepts them.
    fn from_str(name: &str) -> Result<SchedKind, String> {
        SchedKind::ALL.iter().copied().find(|kind| kind.as_str() == name).ok_or_else(|| {
            let valid: Vec<&str> = SchedKind::ALL.iter().map(|kind| kind.as_str()).collect();
            format!("unknown scheduler {name:?}; valid schedulers: {}", valid.join(", "))
        })
    }
}

/// One backend as a scheduler sees it, in the service's backend order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub weight: u32,
    /// False when health checks or the operator took the backend out of rotation.
    pub schedulable: bool,
}

impl Candidate {
    /// May take new connections: schedulable with a weight above 0.
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.effective_weight() > 0
    }

    /// The weight if schedulable, else 0: eligible exactly when above 0. Lets the scans run
    /// without a branch per backend.
    #[inline]
    pub fn effective_weight(&self) -> u32 {
        if self.schedulable {
            self.weight
        } else {
            0
        }
    }
}

/// Why a scheduler table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// Maglev needs a prime table size so every backend's permutation covers every slot.
    MaglevSizeNotPrime(usize),
    /// Above [`MAX_MAGLEV_SIZE`].
    MaglevSizeTooLarge(usize),
    /// More backends than a table slot (`u16`, one value reserved) can address.
    TooManyBackends(usize),
    /// `keys` and `weights` must describe the same backends.
    LengthMismatch { keys: usize, weights: usize },
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SchedError::MaglevSizeNotPrime(size) => {
                write!(f, "maglev table size {size} is not prime (default {DEFAULT_MAGLEV_SIZE})")
            }
            SchedError::MaglevSizeTooLarge(size) => {
                write!(f, "maglev table size {size} is above the maximum {MAX_MAGLEV_SIZE}")
            }
            SchedError::TooManyBackends(count) => {
                write!(f, "{count} backends, a scheduler table addresses at most {MAX_TABLE_BACKENDS}")
            }
            SchedError::LengthMismatch { keys, weights } => {
                write!(f, "{keys} backend keys but {weights} weights")
            }
        }
    }
}

impl std::error::Error for SchedError {}
