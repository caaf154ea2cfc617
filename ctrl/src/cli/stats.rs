//! `fvs stats`: the per-core packet counters and how fast config changes reach the workers.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::table::{stat_block, table};
use crate::proto::{ConfigStats, StatsInfo};

/// A table: one row per counter (sorted), one column per core and a total. Counters that are
/// zero in total are left out unless `all`, with a note saying how many.
pub(super) fn format_stats(stats: &StatsInfo, all: bool) -> String {
    let names: BTreeSet<&String> =
        stats.total.keys().chain(stats.cores.iter().flat_map(|c| c.counters.keys())).collect();
    let total = |name: &String| {
        stats.total.get(name).copied().unwrap_or_else(|| stats.cores.iter().filter_map(|c| c.counters.get(name)).sum())
    };
    let mut header = vec!["counter".to_string()];
    header.extend(stats.cores.iter().map(|c| format!("core{}(lcore{})", c.core, c.lcore)));
    header.push("total".to_string());
    let mut rows = vec![header];
    let mut hidden = 0;
    for name in names {
        let sum = total(name);
        if sum == 0 && !all {
            hidden += 1;
            continue;
        }
        let mut row = vec![name.clone()];
        row.extend(stats.cores.iter().map(|c| c.counters.get(name).copied().unwrap_or(0).to_string()));
        row.push(sum.to_string());
        rows.push(row);
    }
    let mut s = if rows.len() > 1 { table(&rows, &[], 1, "  ") } else { "no counters to show\n".to_string() };
    if hidden > 0 {
        let _ = writeln!(s, "({hidden} zero counters hidden; fvs stats --all shows them)");
    }
    if let Some(config) = &stats.config {
        s.push_str(&format_config_stats(config));
    }
    s
}

/// The config publication line and, once something was published, the delay histogram.
fn format_config_stats(c: &ConfigStats) -> String {
    let mut s = format!("\nconfig: {} published", c.published);
    if c.not_visible > 0 {
        let _ = write!(s, ", {} not visible on every worker within {}", c.not_visible, format_micros(c.timeout_us));
    }
    let visible = c.visible();
    let Some(last) = c.visible_last_us.filter(|_| visible > 0) else {
        s.push('\n');
        return s;
    };
    let _ = writeln!(
        s,
        "; visible on all workers after: last {}, max {}, mean {}",
        format_micros(last),
        format_micros(c.visible_max_us),
        format_micros(c.visible_sum_us / visible)
    );
    let mut previous = None;
    let headers: Vec<String> = c
        .visible_buckets
        .iter()
        .map(|b| {
            let h = match b.below_us {
                Some(bound) => format!("<{}", format_micros(bound)),
                None => format!(">={}", format_micros(previous.unwrap_or(0))),
            };
            previous = b.below_us;
            h
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let counts: Vec<u64> = c.visible_buckets.iter().map(|b| b.count).collect();
    s + &stat_block("visible:", &headers, &counts)
}

/// Microseconds as `850us`, `1.2ms` or `2s`: the unit a reader expects at that size.
fn format_micros(us: u64) -> String {
    // One decimal (truncated) only where it matters; --json has the exact value.
    if us < 1_000 {
        format!("{us}us")
    } else if us < 10_000 && us % 1_000 >= 100 {
        format!("{}.{}ms", us / 1_000, us % 1_000 / 100)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1_000)
    } else if us < 10_000_000 && us % 1_000_000 >= 100_000 {
        format!("{}.{}s", us / 1_000_000, us % 1_000_000 / 100_000)
    } else {
        format!("{}s", us / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render;
    use crate::proto::{CoreStats, Request, Response};
    use std::collections::BTreeMap;

    #[test]
    fn stats_formatted() {
        let counters =
            |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
        let stats = StatsInfo {
            cores: vec![
                CoreStats {
                    core: 0,
                    lcore: 1,
                    counters: counters(&[("rx_packets", 10), ("drop_no_route", 0), ("tx_packets", 7)]),
                },
                CoreStats {
                    core: 1,
                    lcore: 2,
                    counters: counters(&[("rx_packets", 5), ("drop_no_route", 0), ("tx_packets", 123456)]),
                },
            ],
            total: counters(&[("rx_packets", 15), ("drop_no_route", 0), ("tx_packets", 123463)]),
            config: None,
        };
        let want = "\
counter     core0(lcore1)  core1(lcore2)   total
rx_packets             10              5      15
tx_packets              7         123456  123463
(1 zero counters hidden; fvs stats --all shows them)
";
        assert_eq!(format_stats(&stats, false), want);
        let all = format_stats(&stats, true);
        assert!(all.starts_with("counter        core0(lcore1)"), "{all}");
        assert!(all.contains("\ndrop_no_route              0              0       0\n"), "{all}");
        assert!(!all.contains("hidden"));
        assert_eq!(format_stats(&StatsInfo::default(), false), "no counters to show\n");
    }

    #[test]
    fn config_stats_formatted() {
        use std::time::Duration;
        let mut config = ConfigStats::new(Duration::from_secs(2));
        let with = |config: &ConfigStats| StatsInfo { config: Some(config.clone()), ..Default::default() };
        assert_eq!(format_stats(&with(&config), false), "no counters to show\n\nconfig: 0 published\n");
        for us in [4, 40, 60, 1_250] {
            config.record(Some(Duration::from_micros(us)));
        }
        let want = "\
no counters to show

config: 4 published; visible on all workers after: last 1.2ms, max 1.2ms, mean 338us
    visible:  <10us  <100us  <1ms  <10ms  <100ms  >=100ms
                  1       2     0      1       0        0
";
        assert_eq!(format_stats(&with(&config), false), want);
        config.record(None);
        let text = format_stats(&with(&config), false);
        assert!(
            text.contains("\nconfig: 5 published, 1 not visible on every worker within 2s; visible on all workers after: last 1.2ms,"),
            "{text}"
        );
        let micros: Vec<String> =
            [0, 999, 1_000, 1_099, 1_100, 9_999, 10_500, 999_999, 1_000_000, 2_500_000, 12_345_678]
                .iter()
                .map(|us| format_micros(*us))
                .collect();
        assert_eq!(micros, ["0us", "999us", "1ms", "1ms", "1.1ms", "9.9ms", "10ms", "999ms", "1s", "2.5s", "12s"]);
        // JSON keeps the exact microseconds.
        let json = render(&Request::Stats, Response::ok(&with(&config)), true, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["config"]["visible_last_us"], 1_250);
        assert_eq!(v["config"]["visible_sum_us"], 1_354);
    }
}
