//! How big a connection table gets and what it costs to fill: builds a `ConnTable` of the
//! given capacity (default 16M), inserts that many FullNAT connections, looks each up from
//! both directions, and prints bytes per connection (the table's own count and the process's
//! resident memory) and ns per insert / lookup.
//!
//!     cargo run --release -p ferrovs-benches --example conn_table -- 16777216
//!
//! With `--memory-mib N` it first finds the largest capacity whose table fits in N MiB by the
//! table's own account, then does the same. That account (`bytes_per_conn`: everything the
//! table allocates divided by its capacity) rounds down, so a table of capacity c with an
//! account of b bytes holds less than (b + 1) * c bytes: the capacity chosen is the largest c
//! with (b + 1) * c <= N MiB, b being the account of a table of that capacity (found by building
//! such tables until b stays put). It errs on the small side, by less than one byte per
//! connection; the resident memory growth shows the real size.
//!
//!     cargo run --release -p ferrovs-benches --example conn_table -- --memory-mib 1024

use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::conn::{Conn, ConnFlags, ConnKey, ConnTable, TcpState};
use dataplane::wire::IpProtocol;

/// Resident set size of this process, from /proc/self/statm (pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn conn(i: u32) -> Conn {
    Conn {
        // Up to MAX_TUPLES distinct tuples: 256 clients x 65536 ports, 256 local addresses x 65536 ports.
        client: Ipv4Addr::new(192, 0, 2, (i >> 16) as u8),
        vip: Ipv4Addr::new(192, 0, 2, 100),
        backend: Ipv4Addr::new(198, 51, 100, 11 + (i % 3) as u8),
        laddr: Ipv4Addr::new(203, 0, 113, (i >> 16) as u8),
        cport: i as u16,
        vport: 80,
        bport: 8080,
        lport: i as u16,
        proto: IpProtocol::TCP,
        state: TcpState::Established,
        flags: ConnFlags::FULLNAT,
        service: 0,
        backend_slot: (i % 3) as u16,
        backend_gen: 1,
        laddr_slot: 0,
    }
}

/// Tuples `conn` can make distinct.
const MAX_TUPLES: u32 = 1 << 24;

/// The largest capacity whose table fits in `budget` bytes by the table's own account; see the
/// module documentation.
fn fit(budget: u64) -> u32 {
    // A first account from a small table, whose fixed part (the wheel) weighs more per
    // connection: the capacity it gives is at most the answer.
    let mut account = ConnTable::new(1 << 16).bytes_per_conn() as u64;
    // The account falls with capacity (the fixed part spreads), so this settles at once.
    for _ in 0..8 {
        let capacity = (budget / (account + 1)).min(u64::from(MAX_TUPLES)) as u32;
        let actual = ConnTable::new(capacity).bytes_per_conn() as u64;
        if actual == account {
            return capacity;
        }
        println!("(capacity {capacity}: account {actual} bytes per conn, not {account}: again)");
        account = actual;
    }
    panic!("the table's account does not settle");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget_mib: Option<u64> = match args.first().map(String::as_str) {
        Some("--memory-mib") => {
            Some(args.get(1).and_then(|a| a.parse().ok()).expect("--memory-mib takes a number of MiB"))
        }
        _ => None,
    };
    let capacity = match budget_mib {
        Some(mib) => fit(mib << 20),
        None => args.first().and_then(|a| a.parse().ok()).unwrap_or(MAX_TUPLES).min(MAX_TUPLES),
    };
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
        let reply = ConnKey { src: c.backend, dst: c.laddr, sport: c.bport, dport: c.lport, proto: IpProtocol::TCP };
        found += u64::from(table.lookup(&reply).is_some());
    }
    let lookup_ns = t.elapsed().as_nanos() as f64 / (2.0 * f64::from(capacity));
    assert_eq!(found, 2 * u64::from(capacity));
    let filled = rss_bytes();
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
    if let Some(mib) = budget_mib {
        let budget = mib << 20;
        let account = table.bytes_per_conn() as u64;
        let conns = u64::from(capacity);
        let grown = filled - before;
        println!();
        println!("memory budget       {mib} MiB = {budget} bytes");
        println!(
            "capacity            {capacity}: the largest c with ({account} + 1) * c <= budget{}",
            if capacity == MAX_TUPLES { " (or the most tuples this example makes)" } else { "" }
        );
        println!("connections stored  {} (every insert succeeded, the next one was refused)", table.len());
        println!(
            "table bytes         {} to {} by the table's account ({account} per conn, rounded down)",
            account * conns,
            (account + 1) * conns - 1
        );
        println!(
            "resident growth     {grown} bytes = {:.1} MiB = {:.2} bytes per conn (built and filled)",
            grown as f64 / (1 << 20) as f64,
            grown as f64 / conns as f64
        );
        println!("at 64 bytes/conn    {} connections would fit", budget / 64);
    }
}
