//! Time to build the hashing schedulers' lookup tables, which the control thread rebuilds on
//! every change to a service's backends: Maglev (`mh`) at the default size M = 65,537 and the
//! source-hash (`sh`) table (its fixed 8,191 buckets), each for 1,000 backends.
//!
//! Backends are 10.0.x.y:80, keyed by `backend_key` as the control thread does (keys are
//! computed once, outside the timing). Weights:
//! - `equal`: all 1;
//! - `weights_1_10`: 1, 2, ..., 10, 1, 2, ... in list order;
//! - `weights_random_1_100`: uniform in 1..=100 (fixed seed);
//! - `one_heavy`: one backend of weight 10,000 and the rest 1, which makes the Maglev fill take
//!   its heap path (scanning every backend each round would cost rounds * N).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion};
use dataplane::sched::{backend_key, HashTable, DEFAULT_MAGLEV_SIZE};
use ferrovs_benches::lb_rig::Rng;

const BACKENDS: usize = 1000;

fn weight_sets() -> Vec<(&'static str, Vec<u32>)> {
    let mut rng = Rng(0x5eed);
    vec![
        ("equal", vec![1; BACKENDS]),
        ("weights_1_10", (0..BACKENDS).map(|i| 1 + (i % 10) as u32).collect()),
        ("weights_random_1_100", (0..BACKENDS).map(|_| 1 + (rng.next_u64() % 100) as u32).collect()),
        ("one_heavy", (0..BACKENDS).map(|i| if i == 0 { 10_000 } else { 1 }).collect()),
    ]
}

fn bench(c: &mut Criterion) {
    let keys: Vec<u64> = (0..BACKENDS)
        .map(|i| backend_key(SocketAddr::from((Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 80))))
        .collect();
    let mut group = c.benchmark_group("sched");
    for (name, weights) in weight_sets() {
        let table = HashTable::maglev(&keys, &weights, DEFAULT_MAGLEV_SIZE).expect("valid Maglev arguments");
        assert_eq!(table.len(), DEFAULT_MAGLEV_SIZE);
        group.bench_function(format!("maglev/{DEFAULT_MAGLEV_SIZE}x{BACKENDS}/{name}"), |b| {
            b.iter(|| HashTable::maglev(black_box(&keys), black_box(&weights), DEFAULT_MAGLEV_SIZE))
        });
    }
    for (name, weights) in weight_sets().into_iter().take(2) {
        group.bench_function(format!("source_hash/{BACKENDS}/{name}"), |b| {
            b.iter(|| HashTable::source_hash(black_box(&weights)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
