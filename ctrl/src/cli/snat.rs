//! `fvs snat`: the source-NAT rules for outbound connections. A rule is named by its source
//! prefix and the port its connections leave by; rules are tried in order and the first match
//! wins, so `snat add` appends.

use std::net::IpAddr;

use clap::Subcommand;
use dataplane::net::Prefix;

use super::table::{cells, table};
use super::words::{parse_ip, parse_prefix, VerbArgs, Words};
use super::ArgsError;
use crate::config::lb::SnatConfig;
use crate::proto::{Request, SnatInfo};

pub(super) const SNAT_ADD_USAGE: &str = "fvs snat add source PREFIX out-port PORT address ADDR [address ADDR]...";
pub(super) const SNAT_DEL_USAGE: &str = "fvs snat del source PREFIX out-port PORT";

#[derive(Subcommand, Debug)]
pub(super) enum SnatVerb {
    /// Show the rules in the order they are tried, with the ports in use of each address (the
    /// default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add a rule, tried after the existing ones.
    ///
    /// TCP and UDP connections from the source prefix that leave by the port get one of the
    /// addresses and a local port of it as their source; replies are translated back. The
    /// addresses share their ports with FullNAT services that use the same address.
    #[command(
        override_usage = SNAT_ADD_USAGE,
        after_help = "Examples:\n  fvs snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50\n  fvs snat add source 10.0.0.0/8 out-port outside address 203.0.113.50 address 203.0.113.51"
    )]
    Add(VerbArgs),
    /// Delete a rule.
    #[command(
        visible_alias = "delete",
        override_usage = SNAT_DEL_USAGE,
        after_help = "Example:\n  fvs snat del source 198.51.100.0/24 out-port dp0"
    )]
    Del(VerbArgs),
}

pub(super) fn snat_request(verb: Option<SnatVerb>) -> Result<Request, ArgsError> {
    match verb {
        None | Some(SnatVerb::Show) => Ok(Request::SnatShow),
        Some(SnatVerb::Add(VerbArgs { args })) => {
            let mut w = Words::new("fvs snat add", &args);
            let (source, out_port, addresses) = rule_words(&mut w, SNAT_ADD_USAGE, true)?;
            if addresses.is_empty() {
                return Err(w.error(format!("missing 'address ADDR' (usage: {SNAT_ADD_USAGE})")));
            }
            Ok(Request::SnatAdd { rule: SnatConfig { source, out_port, addresses } })
        }
        Some(SnatVerb::Del(VerbArgs { args })) => {
            let mut w = Words::new("fvs snat del", &args);
            let (source, out_port, _) = rule_words(&mut w, SNAT_DEL_USAGE, false)?;
            Ok(Request::SnatDel { source, out_port })
        }
    }
}

/// `source PREFIX`, `out-port PORT` and (for `add`) any number of `address ADDR`, in any
/// order.
fn rule_words(
    w: &mut Words<'_>,
    usage: &str,
    with_addresses: bool,
) -> Result<(Prefix, String, Vec<IpAddr>), ArgsError> {
    let keywords: &[&str] = if with_addresses { &["source", "out-port", "address"] } else { &["source", "out-port"] };
    let (mut source, mut out_port, mut addresses) = (None, None, Vec::new());
    while let Some(word) = w.next() {
        match word {
            "source" => {
                let v = w.value("source", "a prefix (e.g. 198.51.100.0/24)")?;
                let p = parse_prefix(v).map_err(|m| w.error(m))?;
                w.once(&mut source, "source", p)?;
            }
            "out-port" => {
                let v = w.value("out-port", "a port name")?;
                w.once(&mut out_port, "out-port", v.to_string())?;
            }
            "address" if with_addresses => {
                let v = w.value("address", "an IP address")?;
                let ip = parse_ip(v, "address").map_err(|m| w.error(m))?;
                addresses.push(ip);
            }
            other => return Err(w.unknown(other, keywords)),
        }
    }
    let Some(source) = source else {
        return Err(w.error(format!("missing 'source PREFIX' (usage: {usage})")));
    };
    let Some(out_port) = out_port else {
        return Err(w.error(format!("missing 'out-port PORT' (usage: {usage})")));
    };
    Ok((source, out_port, addresses))
}

/// A line per address of each rule, rules in the order they are tried.
pub(super) fn format_snat(rules: &[SnatInfo]) -> String {
    let mut rows = vec![cells(["Source", "OutPort", "Address", "PortsInUse", "PortsTotal"])];
    for r in rules {
        for a in &r.addresses {
            rows.push(vec![
                r.source.to_string(),
                r.out_port.clone(),
                a.addr.to_string(),
                a.ports_in_use.to_string(),
                a.ports_total.to_string(),
            ]);
        }
    }
    table(&rows, &[], 3, "  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render;
    use crate::cli::tests::{ip, prefix, request, usage_error};
    use crate::proto::{Response, SnatAddrInfo};

    #[test]
    fn snat_commands() {
        for line in ["snat show", "snat", "snat list", "snat ls"] {
            assert_eq!(request(line), Request::SnatShow, "{line}");
        }
        let rule = Request::SnatAdd {
            rule: SnatConfig {
                source: prefix("198.51.100.0/24"),
                out_port: "dp0".into(),
                addresses: vec![ip("192.0.2.50"), ip("192.0.2.51")],
            },
        };
        assert_eq!(request("snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50 address 192.0.2.51"), rule);
        // Any order.
        assert_eq!(request("snat add address 192.0.2.50 out-port dp0 address 192.0.2.51 source 198.51.100.0/24"), rule);
        let del = Request::SnatDel { source: prefix("198.51.100.0/24"), out_port: "dp0".into() };
        assert_eq!(request("snat del source 198.51.100.0/24 out-port dp0"), del);
        assert_eq!(request("snat delete out-port dp0 source 198.51.100.0/24"), del);
    }

    #[test]
    fn snat_errors() {
        let cases = [
            (
                "snat add out-port dp0 address 192.0.2.50".to_string(),
                format!("fvs snat add: missing 'source PREFIX' (usage: {SNAT_ADD_USAGE})"),
            ),
            (
                "snat add source 198.51.100.0/24 address 192.0.2.50".to_string(),
                format!("fvs snat add: missing 'out-port PORT' (usage: {SNAT_ADD_USAGE})"),
            ),
            (
                "snat add source 198.51.100.0/24 out-port dp0".to_string(),
                format!("fvs snat add: missing 'address ADDR' (usage: {SNAT_ADD_USAGE})"),
            ),
            (
                "snat add source 198.51.100.0/33 out-port dp0 address 192.0.2.50".to_string(),
                "fvs snat add: '198.51.100.0/33' is not a prefix (prefix length /33 is longer than /32)".to_string(),
            ),
            (
                "snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.300".to_string(),
                "fvs snat add: '192.0.2.300' is not an IP address (after 'address')".to_string(),
            ),
            (
                "snat add source 198.51.100.0/24 source 10.0.0.0/8 out-port dp0 address 192.0.2.50".to_string(),
                "fvs snat add: 'source' given twice".to_string(),
            ),
            (
                "snat add source 198.51.100.0/24 out-port".to_string(),
                "fvs snat add: 'out-port' needs a port name".to_string(),
            ),
            (
                "snat add 198.51.100.0/24 out-port dp0 address 192.0.2.50".to_string(),
                "fvs snat add: unknown keyword '198.51.100.0/24' (expected source, out-port or address; did you mean 'source 198.51.100.0/24'?)".to_string(),
            ),
            (
                "snat add source 198.51.100.0/24 out-port dp0 192.0.2.50".to_string(),
                "fvs snat add: unknown keyword '192.0.2.50' (expected source, out-port or address; did you mean 'address 192.0.2.50'?)".to_string(),
            ),
            (
                "snat del source 198.51.100.0/24 out-port dp0 address 192.0.2.50".to_string(),
                "fvs snat del: unknown keyword 'address' (expected source or out-port)".to_string(),
            ),
            (
                "snat del out-port dp0".to_string(),
                format!("fvs snat del: missing 'source PREFIX' (usage: {SNAT_DEL_USAGE})"),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(usage_error(&line), want, "{line}");
        }
    }

    fn rules() -> Vec<SnatInfo> {
        let a = |addr: &str, used, total| SnatAddrInfo { addr: ip(addr), ports_in_use: used, ports_total: total };
        vec![
            SnatInfo {
                source: prefix("198.51.100.0/24"),
                out_port: "outside".into(),
                addresses: vec![a("203.0.113.50", 12345, 129024), a("203.0.113.51", 0, 129024)],
            },
            SnatInfo {
                source: prefix("10.0.0.0/8"),
                out_port: "dp0".into(),
                addresses: vec![a("192.0.2.50", 3, 64512)],
            },
        ]
    }

    #[test]
    fn snat_formatted_in_rule_order() {
        let want = "\
Source           OutPort  Address       PortsInUse  PortsTotal
198.51.100.0/24  outside  203.0.113.50       12345      129024
198.51.100.0/24  outside  203.0.113.51           0      129024
10.0.0.0/8       dp0      192.0.2.50             3       64512
";
        assert_eq!(format_snat(&rules()), want);
        assert_eq!(format_snat(&[]), "Source  OutPort  Address  PortsInUse  PortsTotal\n");
    }

    #[test]
    fn render_snat_views() {
        let show = Response::ok(&rules());
        let text = render(&Request::SnatShow, show.clone(), false, false).unwrap();
        assert!(text.starts_with("Source           OutPort"), "{text}");
        let json = render(&Request::SnatShow, show, true, false).unwrap();
        assert_eq!(serde_json::from_str::<Vec<SnatInfo>>(&json).unwrap(), rules());
        assert!(json.contains("\"source\": \"198.51.100.0/24\""), "{json}");
        assert!(json.contains("\"ports_in_use\": 12345"), "{json}");
        let del = request("snat del source 198.51.100.0/24 out-port dp0");
        assert_eq!(render(&del, Response::ok(&()), false, false), Ok(String::new()));
        assert_eq!(
            render(
                &del,
                Response::err("no SNAT rule source 198.51.100.0/24 out-port dp0 (see fvs snat show)"),
                false,
                false
            ),
            Err("no SNAT rule source 198.51.100.0/24 out-port dp0 (see fvs snat show)".into())
        );
    }
}
