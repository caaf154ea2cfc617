//! The fast path: choosing a backend for a new connection on a worker core.
//!
//! Nothing here allocates, locks, makes a syscall or touches an atomic. Every scheduler but
//! sh/mh (a table lookup) is one or a few passes over the backend list.

use super::hash::{mix_seed, rehash};
use super::{Candidate, HashTable, SchedKind};

/// Fallback probes of sh/mh when a flow's slot points at a backend that cannot take it, before
/// falling back to a scan of the list.
const HASH_FALLBACK_PROBES: u32 = 16;

/// RNG state used when none is given; any non-zero value works.
const DEFAULT_RNG_STATE: u64 = 0x2545_F491_4F6C_DD1D;

/// Per-core, per-service scheduler state: the cursors of rr (also lc/wlc tie rotation), of
/// IPVS wrr, and the RNG of twos.
///
/// The backend list may change length or weights between calls: out-of-range cursors restart
/// from the first backend and a stale wrr current weight is clamped, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedState {
    /// Where the next rr scan (and lc/wlc tie-break scan) starts.
    cursor: usize,
    /// IPVS wrr: index of the last pick; `usize::MAX` before the first (IPVS's -1).
    wrr_index: usize,
    /// IPVS wrr: current weight; 0 before the first pick.
    wrr_weight: u32,
    /// xorshift64* state for twos; never 0.
    rng: u64,
}

impl Default for SchedState {
    fn default() -> SchedState {
        SchedState { cursor: 0, wrr_index: usize::MAX, wrr_weight: 0, rng: DEFAULT_RNG_STATE }
    }
}

impl SchedState {
    /// A state whose twos RNG starts from `seed`: give each core a different seed so cores do
    /// not make the same random choices in lockstep.
    pub fn with_seed(seed: u64) -> SchedState {
        let rng = match mix_seed(seed) {
            0 => DEFAULT_RNG_STATE,
            mixed => mixed,
        };
        SchedState { rng, ..SchedState::default() }
    }

    /// xorshift64* (Vigna): fast, and good enough for picking backends.
    #[inline]
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random value in `0..bound` (multiply-shift, no division); `bound` > 0.
    #[inline]
    fn random_below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_random()) * u128::from(bound)) >> 64) as u64
    }
}

/// Chooses the backend (an index into `backends`) for a new connection, or `None` if no
/// backend is eligible (schedulable with weight > 0).
///
/// * `table`: the service's [`HashTable`], used by sh and mh only. Without a table (or with a
///   stale one pointing past the list) they fall back as for an ineligible slot.
/// * `flow_hash`: [`source_hash`](super::source_hash) of the client, for sh and mh.
/// * `active(i)`: this core's count of active connections on backend `i`, for lc, wlc, twos.
///
/// See the module docs for each scheduler's rule.
#[inline]
pub fn select(
    kind: SchedKind,
    state: &mut SchedState,
    backends: &[Candidate],
    table: Option<&HashTable>,
    flow_hash: u32,
    active: impl Fn(usize) -> u32,
) -> Option<usize> {
    match kind {
        SchedKind::Rr => round_robin(state, backends),
        SchedKind::Wrr => weighted_round_robin(state, backends),
        SchedKind::Lc => least_loaded(state, backends, |i| (u64::from(active(i)), 1)),
        SchedKind::Wlc => least_loaded(state, backends, |i| (u64::from(active(i)), u64::from(backends[i].weight))),
        SchedKind::Sh | SchedKind::Mh => hashed(backends, table, flow_hash),
        SchedKind::Twos => two_choices(state, backends, active),
        SchedKind::Fo => fail_over(backends),
    }
}

/// `i + 1`, wrapping to 0 at `n`.
#[inline]
fn next_index(i: usize, n: usize) -> usize {
    if i + 1 >= n {
        0
    } else {
        i + 1
    }
}

/// Indices `start, start + 1, ..., n - 1, 0, ..., start - 1` (start clamped to the list).
#[inline]
fn rotation(start: usize, n: usize) -> impl Iterator<Item = usize> {
    let start = if start < n { start } else { 0 };
    (start..n).chain(0..start)
}

#[inline]
fn round_robin(state: &mut SchedState, backends: &[Candidate]) -> Option<usize> {
    let chosen = rotation(state.cursor, backends.len()).find(|&i| backends[i].is_eligible())?;
    state.cursor = chosen + 1;
    Some(chosen)
}

/// IPVS `ip_vs_wrr_schedule`: walk the list; each time it wraps, lower the current weight by
/// the gcd of the weights (restarting from the maximum weight when it reaches 0); pick the
/// next backend whose weight reaches the current weight. Over `sum(weights) / gcd` picks,
/// each backend gets `weight / gcd`, interleaved.
fn weighted_round_robin(state: &mut SchedState, backends: &[Candidate]) -> Option<usize> {
    // IPVS caches max and gcd at configuration time; the list here may change under the
    // state, so they are computed per pick, in one pass without divisions (the gcd is left
    // alone once it is 1 or when a weight equals it, as with equal weights).
    let mut max_weight = 0;
    let mut gcd_weight = 0;
    for candidate in backends {
        let weight = candidate.effective_weight();
        max_weight = max_weight.max(weight);
        if gcd_weight != 1 && weight != gcd_weight {
            gcd_weight = gcd(gcd_weight, weight); // gcd(g, 0) == g: ineligible ones drop out
        }
    }
    if max_weight == 0 {
        return None;
    }
    let n = backends.len();
    let mut index = state.wrr_index;
    let mut weight = state.wrr_weight.min(max_weight);
    // Ends within two passes: after one wrap the current weight is at most max_weight, which
    // the heaviest eligible backend reaches.
    loop {
        index = if index >= n { 0 } else { next_index(index, n) };
        if index == 0 {
            weight = weight.saturating_sub(gcd_weight);
            if weight == 0 {
                weight = max_weight;
            }
        }
        let candidate = backends[index];
        if candidate.is_eligible() && candidate.weight >= weight {
            state.wrr_index = index;
            state.wrr_weight = weight;
            return Some(index);
        }
    }
}

/// Binary (Stein's) gcd: shifts and subtractions only; `gcd(0, b) == b`.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    if a == 0 || b == 0 {
        return a | b;
    }
    let common_twos = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            (a, b) = (b, a);
        }
        b -= a;
        if b == 0 {
            return a << common_twos;
        }
    }
}

/// lc and wlc: the eligible backend with the least `load(i) = (active, weight)`, read as the
/// fraction active / weight and compared by cross multiplication (no division). The scan
/// starts at the rr cursor and keeps the first of equals, so ties rotate over the backends
/// instead of piling on the first one (which matters at start-up, when every count is 0 and
/// every core would otherwise send its first connections to backend 0).
#[inline]
fn least_loaded(state: &mut SchedState, backends: &[Candidate], load: impl Fn(usize) -> (u64, u64)) -> Option<usize> {
    let n = backends.len();
    // "None yet" is the load 1/0, above any real one: active * 0 < 1 * weight for weight > 0.
    let (mut best, mut best_active, mut best_weight) = (None, 1, 0);
    let mut i = if state.cursor < n { state.cursor } else { 0 };
    for _ in 0..n {
        if backends[i].is_eligible() {
            let (active, weight) = load(i);
            if active * best_weight < best_active * weight {
                (best, best_active, best_weight) = (Some(i), active, weight);
                if active == 0 {
                    break; // nothing beats an idle backend
                }
            }
        }
        i = next_index(i, n);
    }
    let chosen = best?;
    state.cursor = chosen + 1;
    Some(chosen)
}

/// sh and mh: the flow's slot; if that backend cannot take it, up to
/// [`HASH_FALLBACK_PROBES`] rehashed slots; then the first eligible backend from
/// `flow_hash`'s position in the list. Deterministic in `flow_hash`, so a client keeps its
/// backend while the list stays the same, and `None` only if no backend is eligible.
fn hashed(backends: &[Candidate], table: Option<&HashTable>, flow_hash: u32) -> Option<usize> {
    let eligible = |index: u16| {
        let index = usize::from(index);
        backends.get(index).is_some_and(|c| c.is_eligible()).then_some(index)
    };
    if let Some(table) = table.filter(|t| !t.is_empty()) {
        if let Some(chosen) = table.lookup(flow_hash).and_then(eligible) {
            return Some(chosen);
        }
        for attempt in 1..=HASH_FALLBACK_PROBES {
            if let Some(chosen) = table.lookup(rehash(flow_hash, attempt)).and_then(eligible) {
                return Some(chosen);
            }
        }
    }
    let n = backends.len();
    let start = ((u64::from(flow_hash) * n as u64) >> 32) as usize;
    rotation(start, n).find(|&i| backends[i].is_eligible())
}

/// Power of two choices: two distinct eligible backends drawn at random in proportion to
/// their weights; the one with the lower active / weight wins (the first drawn on a tie).
fn two_choices(state: &mut SchedState, backends: &[Candidate], active: impl Fn(usize) -> u32) -> Option<usize> {
    let total: u64 = backends.iter().map(|c| u64::from(c.effective_weight())).sum();
    if total == 0 {
        return None;
    }
    let first = weighted_pick(backends, state.random_below(total), None)?;
    let first_weight = u64::from(backends[first].weight);
    let rest = total - first_weight;
    if rest == 0 {
        return Some(first); // the only eligible backend
    }
    let second = weighted_pick(backends, state.random_below(rest), Some(first))?;
    let second_weight = u64::from(backends[second].weight);
    let (first_load, second_load) = (u64::from(active(first)), u64::from(active(second)));
    if second_load * first_weight < first_load * second_weight {
        Some(second)
    } else {
        Some(first)
    }
}

/// The backend (other than `skip`) whose range of cumulative effective weight holds `target`;
/// ineligible backends have an empty range. `None` only if `target` is past the total.
#[inline]
fn weighted_pick(backends: &[Candidate], target: u64, skip: Option<usize>) -> Option<usize> {
    let mut cumulative = 0;
    for (i, candidate) in backends.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        cumulative += u64::from(candidate.effective_weight());
        if target < cumulative {
            return Some(i);
        }
    }
    None
}

/// Weighted fail-over (IPVS fo): the eligible backend with the highest weight, the lowest
/// index among equals.
fn fail_over(backends: &[Candidate]) -> Option<usize> {
    let mut best = None;
    let mut best_weight = 0; // an ineligible backend's effective weight 0 never beats it
    for (i, candidate) in backends.iter().enumerate() {
        let weight = candidate.effective_weight();
        if weight > best_weight {
            best = Some(i);
            best_weight = weight;
        }
    }
    best
}
