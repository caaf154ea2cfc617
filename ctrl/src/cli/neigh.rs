//! `fvs neigh`: the neighbour (ARP/NDP) tables of every worker core, `ip neigh`-style.

use std::fmt::Write as _;

use crate::proto::NeighInfo;

/// `ip neigh`-style, sorted by address then core.
pub(super) fn format_neighs(neighs: &[NeighInfo]) -> String {
    let mut sorted: Vec<&NeighInfo> = neighs.iter().collect();
    sorted.sort_by_key(|n| (n.addr.is_ipv6(), n.addr, n.core));
    let mut s = String::new();
    for n in sorted {
        let _ = write!(s, "{} dev {}", n.addr, n.port);
        if let Some(mac) = n.mac {
            let _ = write!(s, " lladdr {mac}");
        }
        let _ = write!(s, " {} core {} age {}", n.state.to_uppercase(), n.core, format_age(n.age_ms));
        if n.queued > 0 {
            let _ = write!(s, " queued {}", n.queued);
        }
        s.push('\n');
    }
    s
}

/// Tenths of a second while that precision means something, whole seconds after.
fn format_age(ms: u64) -> String {
    if ms < 100_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighs_formatted() {
        let n = |core, addr: &str, mac: Option<&str>, state: &str, age_ms, queued| NeighInfo {
            core,
            port: "dp0".into(),
            addr: addr.parse().unwrap(),
            mac: mac.map(|m| m.parse().unwrap()),
            state: state.into(),
            age_ms,
            queued,
        };
        let text = format_neighs(&[
            n(1, "192.0.2.2", Some("02:00:00:00:00:02"), "stale", 250_000, 0),
            n(0, "192.0.2.9", None, "incomplete", 300, 2),
            n(0, "192.0.2.2", Some("02:00:00:00:00:02"), "reachable", 1234, 0),
        ]);
        let want = "\
192.0.2.2 dev dp0 lladdr 02:00:00:00:00:02 REACHABLE core 0 age 1.2s
192.0.2.2 dev dp0 lladdr 02:00:00:00:00:02 STALE core 1 age 250s
192.0.2.9 dev dp0 INCOMPLETE core 0 age 0.3s queued 2
";
        assert_eq!(text, want);
    }
}
