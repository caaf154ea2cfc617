//! `fvs addr`: the addresses of the ports, `ip addr`-style.

use clap::Subcommand;

use super::table::table;
use super::words::{parse_prefix_or_default, VerbArgs, Words};
use super::ArgsError;
use crate::proto::{AddrInfo, Request};

#[derive(Subcommand, Debug)]
pub(super) enum AddrVerb {
    /// Show the addresses of all ports (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add an address to a port.
    #[command(
        override_usage = "fvs addr add PREFIX dev PORT",
        after_help = "Example:\n  fvs addr add 192.0.2.1/24 dev dp0"
    )]
    Add(VerbArgs),
    /// Remove an address from a port.
    #[command(
        visible_alias = "delete",
        override_usage = "fvs addr del PREFIX dev PORT",
        after_help = "Example:\n  fvs addr del 192.0.2.1/24 dev dp0"
    )]
    Del(VerbArgs),
}

/// `PREFIX dev PORT`, in any order.
pub(super) fn addr_request(verb: Option<AddrVerb>) -> Result<Request, ArgsError> {
    let (cmd, args, add) = match verb {
        None | Some(AddrVerb::Show) => return Ok(Request::AddrShow),
        Some(AddrVerb::Add(VerbArgs { args })) => ("fvs addr add", args, true),
        Some(AddrVerb::Del(VerbArgs { args })) => ("fvs addr del", args, false),
    };
    let mut w = Words::new(cmd, &args);
    let (mut prefix, mut port) = (None, None);
    while let Some(word) = w.next() {
        match word {
            "dev" => {
                let v = w.value("dev", "a port name")?;
                w.once(&mut port, "dev", v.to_string())?;
            }
            _ => w.positional(&mut prefix, word)?,
        }
    }
    let addr = parse_prefix_or_default(w.required(prefix, "PREFIX")?, None).map_err(|m| w.error(m))?;
    let Some(port) = port else {
        return Err(w.error(format!("missing 'dev PORT' (usage: {cmd} PREFIX dev PORT)")));
    };
    Ok(if add { Request::AddrAdd { port, addr } } else { Request::AddrDel { port, addr } })
}

/// One line per address, grouped by port in the order the daemon listed the ports.
pub(super) fn format_addrs(addrs: &[AddrInfo]) -> String {
    let mut sorted: Vec<&AddrInfo> = addrs.iter().collect();
    // Stable: a port's addresses keep their order.
    sorted.sort_by_key(|a| addrs.iter().position(|first| first.port == a.port));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|a| vec![a.port.clone(), format!("{} {}", if a.addr.is_ipv4() { "inet" } else { "inet6" }, a.addr)])
        .collect();
    table(&rows, &[], usize::MAX, "    ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{prefix, request, usage_error};

    #[test]
    fn addr_changes() {
        let add = Request::AddrAdd { port: "dp0".into(), addr: prefix("192.0.2.1/24") };
        assert_eq!(request("addr add 192.0.2.1/24 dev dp0"), add);
        assert_eq!(request("a add dev dp0 192.0.2.1/24"), add);
        let del = Request::AddrDel { port: "dp1".into(), addr: prefix("2001:db8::1/64") };
        assert_eq!(request("addr del 2001:db8::1/64 dev dp1"), del);
        assert_eq!(request("address delete 2001:db8::1/64 dev dp1"), del);
        // A bare address is a host prefix, like `ip addr add`.
        assert_eq!(
            request("addr add 192.0.2.1 dev dp0"),
            Request::AddrAdd { port: "dp0".into(), addr: prefix("192.0.2.1/32") }
        );
    }

    #[test]
    fn addr_errors() {
        assert_eq!(usage_error("addr add 192.0.2.1/24 dev dp0 foo"), "fvs addr add: unexpected argument 'foo'");
        assert_eq!(usage_error("addr add 192.0.2.1/24 dev"), "fvs addr add: 'dev' needs a port name");
        assert_eq!(
            usage_error("addr add 192.0.2.1/24"),
            "fvs addr add: missing 'dev PORT' (usage: fvs addr add PREFIX dev PORT)"
        );
        assert_eq!(usage_error("addr add dev dp0"), "fvs addr add: missing PREFIX");
        assert_eq!(usage_error("addr add"), "fvs addr add: missing PREFIX");
        assert_eq!(usage_error("addr del 192.0.2.1/24 dev dp0 dev dp1"), "fvs addr del: 'dev' given twice");
        assert_eq!(
            usage_error("addr add 192.0.2.300/24 dev dp0"),
            "fvs addr add: '192.0.2.300/24' is not a prefix ('192.0.2.300' is not an IPv4 or IPv6 address)"
        );
        assert_eq!(
            usage_error("addr add 192.0.2.1/40 dev dp0"),
            "fvs addr add: '192.0.2.1/40' is not a prefix (prefix length /40 is longer than /32)"
        );
    }

    #[test]
    fn addrs_formatted() {
        let a = |port: &str, addr: &str| AddrInfo { port: port.into(), addr: prefix(addr) };
        let text = format_addrs(&[a("dp0", "192.0.2.1/24"), a("dp10", "198.51.100.1/24"), a("dp0", "2001:db8::1/64")]);
        assert_eq!(text, "dp0     inet 192.0.2.1/24\ndp0     inet6 2001:db8::1/64\ndp10    inet 198.51.100.1/24\n");
        assert_eq!(format_addrs(&[a("dp0", "192.0.2.1/24")]), "dp0    inet 192.0.2.1/24\n");
        assert_eq!(format_addrs(&[]), "");
    }
}
