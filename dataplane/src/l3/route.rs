//! Routes with longest-prefix match, built by the control plane and only read by workers.
//!
//! One sorted array per prefix length that is present, probed from the longest length
//! down: a binary search per present length. Routing tables on a load balancer are small
//! (connected networks, a default, a few statics), so this stays a handful of probes.

use std::net::IpAddr;

use crate::net::Prefix;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOrigin {
    /// Derived from an interface address.
    Connected,
    /// Configured.
    Static,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Host bits cleared.
    pub prefix: Prefix,
    /// None: the destination itself is on the link.
    pub via: Option<IpAddr>,
    pub port: u16,
    pub origin: RouteOrigin,
}

impl Route {
    /// The neighbour a packet to `dst` is handed to.
    #[inline]
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.via.unwrap_or(dst)
    }
}

/// Prefix-length-indexed sorted arrays over one address family, keys as integers.
#[derive(Clone, Debug)]
struct Lpm<K: Copy + Ord> {
    /// (length, sorted (masked key, route index)), longest length first.
    levels: Vec<(u8, Vec<(K, u32)>)>,
}

impl<K: Copy + Ord> Default for Lpm<K> {
    fn default() -> Self {
        Lpm { levels: Vec::new() }
    }
}

impl<K: Copy + Ord> Lpm<K> {
    /// Inserts or replaces the entry for (key, len).
    fn insert(&mut self, key: K, len: u8, index: u32) {
        let pos = match self.levels.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(p) => p,
            Err(p) => {
                self.levels.insert(p, (len, Vec::new()));
                p
            }
        };
        let level = &mut self.levels[pos].1;
        match level.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => level[i].1 = index,
            Err(i) => level.insert(i, (key, index)),
        }
    }

    #[inline]
    fn lookup(&self, mask_to: impl Fn(u8) -> K) -> Option<u32> {
        for (len, entries) in &self.levels {
            let key = mask_to(*len);
            if let Ok(i) = entries.binary_search_by(|(k, _)| k.cmp(&key)) {
                return Some(entries[i].1);
            }
        }
        None
    }
}

/// Routes for both families.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

#[inline]
fn mask_v4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

#[inline]
fn mask_v6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl RouteTable {
    /// Adds a route; a route for the same prefix replaces the earlier one.
    pub fn insert(&mut self, mut route: Route) {
        route.prefix = route.prefix.network();
        let index = self.routes.len() as u32;
        match route.prefix.addr() {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), route.prefix.len(), index),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), route.prefix.len(), index),
        }
        self.routes.push(route);
    }

    /// The most specific route to `dst`.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        self.lookup_indexed(dst).map(|(_, route)| route)
    }

    /// `lookup`, with the route's index: stable within this table (a cache key), not across
    /// tables.
    #[inline]
    pub fn lookup_indexed(&self, dst: IpAddr) -> Option<(usize, &Route)> {
        let index = match dst {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.lookup(|len| mask_v4(a, len))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.lookup(|len| mask_v6(a, len))
            }
        }?;
        self.routes.get(index as usize).map(|route| (index as usize, route))
    }

    /// The routes in effect (a replaced route is not listed), most specific first.
    pub fn routes(&self) -> Vec<Route> {
        let mut out = Vec::new();
        for (_, entries) in &self.v4.levels {
            out.extend(entries.iter().map(|(_, i)| self.routes[*i as usize]));
        }
        for (_, entries) in &self.v6.levels {
            out.extend(entries.iter().map(|(_, i)| self.routes[*i as usize]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str, via: Option<&str>, port: u16) -> Route {
        Route { prefix: p.parse().unwrap(), via: via.map(|v| v.parse().unwrap()), port, origin: RouteOrigin::Static }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::default();
        t.insert(route("0.0.0.0/0", Some("192.0.2.254"), 0));
        t.insert(route("198.51.100.0/24", None, 1));
        t.insert(route("198.51.100.128/25", Some("198.51.100.1"), 2));
        t.insert(route("2001:db8::/32", None, 3));
        let l = |a: &str| t.lookup(a.parse().unwrap()).map(|r| r.port);
        assert_eq!(l("203.0.113.7"), Some(0));
        assert_eq!(l("198.51.100.5"), Some(1));
        assert_eq!(l("198.51.100.200"), Some(2));
        assert_eq!(l("2001:db8:1::1"), Some(3));
        assert_eq!(l("2001:db9::1"), None);
        let r = t.lookup("203.0.113.7".parse().unwrap()).unwrap();
        assert_eq!(r.next_hop("203.0.113.7".parse().unwrap()).to_string(), "192.0.2.254");
        let r = t.lookup("198.51.100.5".parse().unwrap()).unwrap();
        assert_eq!(r.next_hop("198.51.100.5".parse().unwrap()).to_string(), "198.51.100.5");
    }

    #[test]
    fn replace_and_list() {
        let mut t = RouteTable::default();
        t.insert(route("198.51.100.7/24", None, 1));
        t.insert(route("198.51.100.0/24", None, 4));
        t.insert(route("198.51.100.9/32", None, 5));
        let routes = t.routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].prefix.to_string(), "198.51.100.9/32");
        assert_eq!(routes[1].prefix.to_string(), "198.51.100.0/24");
        assert_eq!(routes[1].port, 4);
    }

    proptest::proptest! {
        #[test]
        fn lookup_matches_linear_scan(
            prefixes in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32), 1..40),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..100),
        ) {
            let mut t = RouteTable::default();
            let mut model: Vec<(u32, u8, u16)> = Vec::new();
            for (i, (a, len)) in prefixes.iter().enumerate() {
                let p = Prefix::new(IpAddr::V4((*a).into()), *len).unwrap();
                t.insert(Route { prefix: p, via: None, port: i as u16, origin: RouteOrigin::Static });
                let key = mask_v4(*a, *len);
                model.retain(|(k, l, _)| !(*k == key && *l == *len));
                model.push((key, *len, i as u16));
            }
            for probe in probes {
                let want = model.iter().filter(|(k, l, _)| mask_v4(probe, *l) == *k).max_by_key(|(_, l, _)| *l).map(|m| m.2);
                let got = t.lookup(IpAddr::V4(probe.into())).map(|r| r.port);
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
