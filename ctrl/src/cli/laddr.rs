//! `fvs laddr`: the local addresses of FullNAT services and their ports in use.

use clap::Subcommand;

use super::table::{cells, table};
use super::words::{VerbArgs, Words};
use super::ArgsError;
use crate::proto::{LaddrInfo, Request};

pub(super) const LADDR_ADD_USAGE: &str = "fvs laddr add tcp|udp VIP:PORT ADDR";
pub(super) const LADDR_DEL_USAGE: &str = "fvs laddr del tcp|udp VIP:PORT ADDR";

#[derive(Subcommand, Debug)]
pub(super) enum LaddrVerb {
    /// Show the local addresses of every service and their ports in use (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add a local address to a fullnat service.
    #[command(
        override_usage = LADDR_ADD_USAGE,
        after_help = "Example:\n  fvs laddr add tcp 192.0.2.100:443 198.51.100.2"
    )]
    Add(VerbArgs),
    /// Remove a local address from a fullnat service; its connections are dropped.
    #[command(
        visible_alias = "delete",
        override_usage = LADDR_DEL_USAGE,
        after_help = "Example:\n  fvs laddr del tcp 192.0.2.100:443 198.51.100.2"
    )]
    Del(VerbArgs),
}

pub(super) fn laddr_request(verb: Option<LaddrVerb>) -> Result<Request, ArgsError> {
    let (cmd, line, args, add) = match verb {
        None | Some(LaddrVerb::Show) => return Ok(Request::LaddrShow),
        Some(LaddrVerb::Add(VerbArgs { args })) => ("fvs laddr add", LADDR_ADD_USAGE, args, true),
        Some(LaddrVerb::Del(VerbArgs { args })) => ("fvs laddr del", LADDR_DEL_USAGE, args, false),
    };
    let mut w = Words::new(cmd, &args);
    let service = w.service_key(line)?;
    let Some(word) = w.next() else {
        return Err(w.error(format!("missing the local ADDR (usage: {line})")));
    };
    let addr = word
        .parse()
        .map_err(|_| w.error(format!("'{word}' is not an IP address (the local address, e.g. 198.51.100.1)")))?;
    w.end()?;
    Ok(if add { Request::LaddrAdd { service, addr } } else { Request::LaddrDel { service, addr } })
}

/// A line per local address, by service.
pub(super) fn format_laddrs(laddrs: &[LaddrInfo]) -> String {
    let mut sorted: Vec<&LaddrInfo> = laddrs.iter().collect();
    sorted.sort_by_key(|l| (l.service, l.addr));
    let mut rows = vec![cells(["Service", "Address", "PortsInUse", "PortsTotal"])];
    for l in sorted {
        rows.push(vec![
            l.service.to_string(),
            l.addr.to_string(),
            l.ports_in_use.to_string(),
            l.ports_total.to_string(),
        ]);
    }
    table(&rows, &[], 2, "  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render;
    use crate::cli::tests::{ip, key, request, usage_error};
    use crate::proto::Response;

    #[test]
    fn laddr_commands() {
        for line in ["laddr show", "laddr", "la ls", "laddr list"] {
            assert_eq!(request(line), Request::LaddrShow, "{line}");
        }
        let service = key("tcp 192.0.2.100:443");
        assert_eq!(
            request("laddr add tcp 192.0.2.100:443 198.51.100.2"),
            Request::LaddrAdd { service, addr: ip("198.51.100.2") }
        );
        assert_eq!(
            request("laddr delete tcp 192.0.2.100:443 198.51.100.2"),
            Request::LaddrDel { service, addr: ip("198.51.100.2") }
        );
        assert_eq!(
            usage_error("laddr add tcp 192.0.2.100:443"),
            format!("fvs laddr add: missing the local ADDR (usage: {LADDR_ADD_USAGE})")
        );
        assert_eq!(
            usage_error("laddr add tcp 192.0.2.100:443 198.51.100.2:1024"),
            "fvs laddr add: '198.51.100.2:1024' is not an IP address (the local address, e.g. 198.51.100.1)"
        );
        assert_eq!(
            usage_error("laddr del tcp 192.0.2.100:443 198.51.100.2 198.51.100.3"),
            "fvs laddr del: unexpected argument '198.51.100.3'"
        );
    }

    #[test]
    fn laddrs_formatted() {
        let l = |service: &str, addr: &str, used, total| LaddrInfo {
            service: key(service),
            addr: ip(addr),
            ports_in_use: used,
            ports_total: total,
        };
        let text = format_laddrs(&[
            l("tcp 192.0.2.100:443", "198.51.100.2", 0, 64512),
            l("tcp 192.0.2.100:443", "198.51.100.1", 3, 64512),
            l("udp 192.0.2.100:53", "198.51.100.1", 12345, 64512),
        ]);
        let want = "\
Service              Address       PortsInUse  PortsTotal
tcp 192.0.2.100:443  198.51.100.1           3       64512
tcp 192.0.2.100:443  198.51.100.2           0       64512
udp 192.0.2.100:53   198.51.100.1       12345       64512
";
        assert_eq!(text, want);
        assert_eq!(format_laddrs(&[]), "Service  Address  PortsInUse  PortsTotal\n");
    }

    #[test]
    fn render_laddr_views() {
        let laddrs = vec![LaddrInfo {
            service: key("tcp 192.0.2.100:443"),
            addr: ip("198.51.100.1"),
            ports_in_use: 1,
            ports_total: 2,
        }];
        let text = render(&Request::LaddrShow, Response::ok(&laddrs), false, false).unwrap();
        assert!(text.ends_with("tcp 192.0.2.100:443  198.51.100.1           1           2\n"), "{text}");
        let json = render(&Request::LaddrShow, Response::ok(&laddrs), true, false).unwrap();
        assert!(json.contains("\"ports_in_use\": 1"), "{json}");
    }
}
