//! `fvs route`: the routing table, `ip route`-style; static routes are added and deleted here,
//! connected ones come from addresses.

use std::fmt::Write as _;

use clap::Subcommand;

use super::words::{parse_ip, parse_prefix_or_default, VerbArgs, Words};
use super::ArgsError;
use crate::config::RouteConfig;
use crate::proto::{Request, RouteInfo};

#[derive(Subcommand, Debug)]
pub(super) enum RouteVerb {
    /// Show the routing table: connected and static routes (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add a static route. Without `dev`, the port is the one whose network holds the `via`
    /// address. PREFIX may be `default`.
    #[command(
        override_usage = "fvs route add PREFIX [via ADDR] [dev PORT]",
        after_help = "Examples:\n  fvs route add 203.0.113.0/24 via 192.0.2.2\n  fvs route add default via 192.0.2.254 dev dp0\n  fvs route add 198.51.100.0/24 dev dp1"
    )]
    Add(VerbArgs),
    /// Delete a static route.
    #[command(
        visible_alias = "delete",
        override_usage = "fvs route del PREFIX",
        after_help = "Example:\n  fvs route del 203.0.113.0/24"
    )]
    Del(VerbArgs),
}

/// `add PREFIX [via ADDR] [dev PORT]` in any order, `del PREFIX`.
pub(super) fn route_request(verb: Option<RouteVerb>) -> Result<Request, ArgsError> {
    match verb {
        None | Some(RouteVerb::Show) => Ok(Request::RouteShow),
        Some(RouteVerb::Add(VerbArgs { args })) => {
            let mut w = Words::new("fvs route add", &args);
            let (mut prefix, mut via, mut port) = (None, None, None);
            while let Some(word) = w.next() {
                match word {
                    "via" => {
                        let v = w.value("via", "an address")?;
                        w.not_given(&via, "via")?;
                        via = Some(parse_ip(v, "via").map_err(|m| w.error(m))?);
                    }
                    "dev" => {
                        let v = w.value("dev", "a port name")?;
                        w.once(&mut port, "dev", v.to_string())?;
                    }
                    _ => w.positional(&mut prefix, word)?,
                }
            }
            let prefix = parse_prefix_or_default(w.required(prefix, "PREFIX")?, via).map_err(|m| w.error(m))?;
            if via.is_none() && port.is_none() {
                return Err(w.error("give 'via ADDR', 'dev PORT' or both".to_string()));
            }
            Ok(Request::RouteAdd { route: RouteConfig { prefix, via, port } })
        }
        Some(RouteVerb::Del(VerbArgs { args })) => {
            let mut w = Words::new("fvs route del", &args);
            let word = w.next();
            w.end()?;
            let prefix = parse_prefix_or_default(w.required(word, "PREFIX")?, None).map_err(|m| w.error(m))?;
            Ok(Request::RouteDel { prefix })
        }
    }
}

/// IPv4 then IPv6, longest prefix first, as a lookup would meet them.
pub(super) fn format_routes(routes: &[RouteInfo]) -> String {
    let mut sorted: Vec<&RouteInfo> = routes.iter().collect();
    sorted.sort_by_key(|r| (!r.prefix.is_ipv4(), std::cmp::Reverse(r.prefix.len()), r.prefix.addr()));
    let mut s = String::new();
    for r in sorted {
        if r.prefix.len() == 0 {
            s.push_str("default");
        } else {
            let _ = write!(s, "{}", r.prefix);
        }
        if let Some(via) = r.via {
            let _ = write!(s, " via {via}");
        }
        let _ = writeln!(s, " dev {} proto {}", r.port, r.origin);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{prefix, request, usage_error};

    #[test]
    fn route_changes() {
        let route = |p: &str, via: Option<&str>, port: Option<&str>| Request::RouteAdd {
            route: RouteConfig {
                prefix: prefix(p),
                via: via.map(|v| v.parse().unwrap()),
                port: port.map(str::to_string),
            },
        };
        assert_eq!(request("route add 203.0.113.0/24 via 192.0.2.2"), route("203.0.113.0/24", Some("192.0.2.2"), None));
        assert_eq!(request("r add 203.0.113.0/24 dev dp1"), route("203.0.113.0/24", None, Some("dp1")));
        assert_eq!(
            request("route add via 192.0.2.2 203.0.113.0/24 dev dp0"),
            route("203.0.113.0/24", Some("192.0.2.2"), Some("dp0"))
        );
        assert_eq!(request("route add default via 192.0.2.254"), route("0.0.0.0/0", Some("192.0.2.254"), None));
        assert_eq!(request("route add default via 2001:db8::1"), route("::/0", Some("2001:db8::1"), None));
        assert_eq!(request("route del 203.0.113.0/24"), Request::RouteDel { prefix: prefix("203.0.113.0/24") });
        assert_eq!(request("route delete default"), Request::RouteDel { prefix: prefix("0.0.0.0/0") });
    }

    #[test]
    fn route_errors() {
        assert_eq!(usage_error("route add 203.0.113.0/24 via"), "fvs route add: 'via' needs an address");
        assert_eq!(
            usage_error("route add 203.0.113.0/24 via 198.51.100.300"),
            "fvs route add: '198.51.100.300' is not an IP address (after 'via')"
        );
        assert_eq!(usage_error("route add 203.0.113.0/24"), "fvs route add: give 'via ADDR', 'dev PORT' or both");
        assert_eq!(usage_error("route add via 192.0.2.2"), "fvs route add: missing PREFIX");
        assert_eq!(usage_error("route add 203.0.113.0/24 192.0.2.2"), "fvs route add: unexpected argument '192.0.2.2'");
        assert_eq!(usage_error("route del 203.0.113.0/24 via 192.0.2.2"), "fvs route del: unexpected argument 'via'");
        assert_eq!(usage_error("route del"), "fvs route del: missing PREFIX");
    }

    /// A keyword's value is checked where it stands, so the error names that word and not a
    /// later one the bad value pushed out of place.
    #[test]
    fn a_bad_value_is_named_where_it_stands() {
        assert_eq!(
            usage_error("route add 203.0.113.0/24 via dev dp0"),
            "fvs route add: 'dev' is not an IP address (after 'via')"
        );
        assert_eq!(
            usage_error("route add via dev 203.0.113.0/24"),
            "fvs route add: 'dev' is not an IP address (after 'via')"
        );
        // A keyword given twice is named before its second value is read.
        assert_eq!(usage_error("route add 203.0.113.0/24 via 192.0.2.2 via dp0"), "fvs route add: 'via' given twice");
    }

    #[test]
    fn routes_formatted() {
        let r = |p: &str, via: Option<&str>, origin: &str| RouteInfo {
            prefix: prefix(p),
            via: via.map(|v| v.parse().unwrap()),
            port: "dp0".into(),
            origin: origin.into(),
        };
        let text = format_routes(&[
            r("::/0", Some("2001:db8::ff"), "static"),
            r("0.0.0.0/0", Some("192.0.2.254"), "static"),
            r("192.0.2.0/24", None, "connected"),
            r("2001:db8::/64", None, "connected"),
            r("203.0.113.0/24", Some("192.0.2.2"), "static"),
            r("10.0.0.0/8", Some("192.0.2.3"), "static"),
        ]);
        let want = "\
192.0.2.0/24 dev dp0 proto connected
203.0.113.0/24 via 192.0.2.2 dev dp0 proto static
10.0.0.0/8 via 192.0.2.3 dev dp0 proto static
default via 192.0.2.254 dev dp0 proto static
2001:db8::/64 dev dp0 proto connected
default via 2001:db8::ff dev dp0 proto static
";
        assert_eq!(text, want);
    }
}
