//! How big a connection table gets and what it costs to fill: builds a `ConnTable` of the
//! given capacity (default 16M), inserts that many FullNAT connections, looks each up from
//! both directions, and prints bytes per connection (the table's own count and the process's
//! resident memory) and ns per insert / lookup.
//!
//!     cargo run --release -p ferrovs-benches --example conn_table -- 16777216

use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::conn::{Conn, ConnFlags, ConnKey, ConnTable, TcpState};

/// Resident set size of this process, from /proc/self/statm (pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn conn(i: u32) -> Conn {
    Conn {
        // Up to 2^24 distinct tuples: 256 clients x 65536 ports, 256 local addresses x 65536 ports.
        client: Ipv4Addr::new(192, 0, 2, (i >> 16) as u8),
        vip: Ipv4Addr::new(192, 0, 2, 100),
        backend: Ipv4Addr::new(198, 51, 100, 11 + (i % 3) as u8),
        laddr: Ipv4Addr::new(203, 0, 113, (i >> 16) as u8),
        cport: i as u16,
        vport: 80,
        bport: 8080,
        lport: i as u16,
        proto: 6,
        state: TcpState::Established,
        flags: ConnFlags::FULLNAT,
        service: 0,
        backend_slot: (i % 3) as u16,
        backend_gen: 1,
        laddr_slot: 0,
    }
}

fn main() {
    let capacity: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1 << 24).min(1 << 24);
    let before = rss_bytes();
    let t = Instant::now();
    let mut table = ConnTable::new(capacity);
    let built = t.elapsed();
    let after_alloc = rss_bytes();
    let t = Instant::now();
    for i in 0..capacity {
        table.insert(conn(i), 0, 900_000).expect("insert");
    }
    let insert_ns = t.elapsed().as_nanos() as f64 / f64::from(capacity);
    assert!(table.insert(conn(capacity), 0, 900_000).is_err(), "a full table refuses");
    let t = Instant::now();
    let mut found = 0u64;
    for i in 0..capacity {
        let c = conn(i);
        found += u64::from(table.lookup(&c.original_key()).is_some());
        let reply = ConnKey { src: c.backend, dst: c.laddr, sport: c.bport, dport: c.lport, proto: 6 };
        found += u64::from(table.lookup(&reply).is_some());
    }
    let lookup_ns = t.elapsed().as_nanos() as f64 / (2.0 * f64::from(capacity));
    assert_eq!(found, 2 * u64::from(capacity));
    println!("capacity            {capacity} connections (full)");
    println!("bytes per conn      {} (table's own count: entry + both index entries + wheel)", table.bytes_per_conn());
    println!(
        "resident memory     {:.1} MiB for the table = {:.1} bytes per conn",
        (after_alloc - before) as f64 / (1 << 20) as f64,
        (after_alloc - before) as f64 / f64::from(capacity)
    );
    println!("build               {:.2} s (allocates and writes everything up front)", built.as_secs_f64());
    println!("insert              {insert_ns:.0} ns per connection (both keys, random order of 5-tuples)");
    println!("lookup              {lookup_ns:.0} ns per lookup (hit, both directions, table far larger than cache)");
}
