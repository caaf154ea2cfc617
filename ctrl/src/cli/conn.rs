//! `fvs conn`: the tracked connections, like `ipvsadm -Lnc`, filtered by service, backend or
//! state.

use std::fmt::Write as _;
use std::net::SocketAddr;

use clap::Subcommand;

use super::table::{cells, table};
use super::words::{or_list, parse_conn_state, parse_socket, service_key, VerbArgs, Words, CONN_STATES};
use super::ArgsError;
use crate::proto::{ConnFilter, ConnList, Request};

pub(super) const CONN_LIST_USAGE: &str =
    "fvs conn list [service tcp|udp VIP:PORT] [backend ADDR:PORT] [state STATE] [limit N]";

#[derive(Subcommand, Debug)]
pub(super) enum ConnVerb {
    /// List connections, all of them or those matching every filter given (the default).
    #[command(
        visible_alias = "show",
        aliases = ["s", "sh", "sho", "l", "ls", "lst"],
        override_usage = CONN_LIST_USAGE,
        after_help = "Examples:\n  fvs conn list\n  fvs conn list service tcp 192.0.2.100:80 state established\n  fvs conn list backend 198.51.100.11:8080 limit 10\n\nStates: NONE ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK\n        LISTEN SYNACK UDP (any case)\nAt most 1000 connections are listed unless 'limit' says otherwise."
    )]
    List(VerbArgs),
}

pub(super) fn conn_request(verb: Option<ConnVerb>) -> Result<Request, ArgsError> {
    let args = match verb {
        None => Vec::new(),
        Some(ConnVerb::List(VerbArgs { args })) => args,
    };
    let mut w = Words::new("fvs conn list", &args);
    let mut filter = ConnFilter::default();
    while let Some(word) = w.next() {
        match word {
            "service" => {
                let what = "tcp|udp VIP:PORT";
                let proto = w.value("service", what)?;
                let addr = w.value("service", what)?;
                let key = service_key(proto, addr).map_err(|m| w.error(m))?;
                w.once(&mut filter.service, "service", key)?;
            }
            "backend" => {
                let v = w.value("backend", "ADDR:PORT")?;
                let addr = parse_socket(v).map_err(|m| w.error(m))?;
                w.once(&mut filter.backend, "backend", addr)?;
            }
            "state" => {
                let what = format!("a connection state ({})", or_list(&CONN_STATES));
                let v = w.value("state", &what)?;
                let state = parse_conn_state(v).map_err(|m| w.error(m))?;
                w.once(&mut filter.state, "state", state)?;
            }
            "limit" => {
                let v = w.value("limit", "a number")?;
                let n = w.number(v, "limit")?;
                w.once(&mut filter.limit, "limit", n)?;
            }
            other => return Err(w.unknown(other, &["service", "backend", "state", "limit"])),
        }
    }
    Ok(Request::ConnList { filter })
}

/// `ipvsadm -Lnc`-style, plus the worker core, the forwarding mode and the FullNAT/SNAT local
/// address; in the daemon's order. Says so when the limit cut the list. A SNAT connection has
/// no virtual address: its backend is the remote server.
pub(super) fn format_conns(list: &ConnList) -> String {
    let mut rows = vec![cells(["core", "pro", "expire", "state", "mode", "client", "virtual", "local", "backend"])];
    let or_dash = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
    for c in &list.conns {
        let secs = c.expires_ms / 1000;
        rows.push(vec![
            c.core.to_string(),
            c.protocol.as_str().to_ascii_uppercase(),
            format!("{:02}:{:02}", secs / 60, secs % 60),
            c.state.clone(),
            c.mode.as_str().to_string(),
            c.client.to_string(),
            or_dash(c.virtual_addr),
            or_dash(c.local),
            c.backend.to_string(),
        ]);
    }
    let mut out = table(&rows, &[4, 3, 6, 11, 7, 18, 18, 18], usize::MAX, " ");
    if list.matched > list.conns.len() as u64 {
        let _ = writeln!(out, "{} of {} connections shown", list.conns.len(), list.matched);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{key, request, sock, usage_error};
    use crate::cli::{parse_args, render, Command, Invocation};
    use crate::config::lb::Protocol;
    use crate::proto::{ConnInfo, ConnMode, Response};

    #[test]
    fn conn_commands() {
        for line in ["conn list", "conn", "conn show", "c", "conns ls"] {
            assert_eq!(request(line), Request::ConnList { filter: ConnFilter::default() }, "{line}");
        }
        assert_eq!(
            request("conn list service tcp 192.0.2.100:80 backend 198.51.100.11:8080 state established limit 20"),
            Request::ConnList {
                filter: ConnFilter {
                    service: Some(key("tcp 192.0.2.100:80")),
                    backend: Some(sock("198.51.100.11:8080")),
                    state: Some("ESTABLISHED".into()),
                    limit: Some(20),
                }
            }
        );
        assert_eq!(
            request("conn list state syn-recv"),
            Request::ConnList { filter: ConnFilter { state: Some("SYN_RECV".into()), ..Default::default() } }
        );
        let states = "NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, SYNACK or UDP";
        let cases = [
            (
                "conn list state open".to_string(),
                format!("fvs conn list: 'open' is not a connection state ({states})"),
            ),
            (
                "conn list state".to_string(),
                format!("fvs conn list: 'state' needs a connection state ({states})"),
            ),
            (
                "conn list service tcp".to_string(),
                "fvs conn list: 'service' needs tcp|udp VIP:PORT".to_string(),
            ),
            (
                "conn list service tcp 192.0.2.100".to_string(),
                "fvs conn list: '192.0.2.100' is not ADDR:PORT (e.g. 192.0.2.100:80)".to_string(),
            ),
            (
                "conn list backend 198.51.100.11".to_string(),
                "fvs conn list: '198.51.100.11' is not ADDR:PORT (e.g. 198.51.100.11:80)".to_string(),
            ),
            (
                "conn list limit all".to_string(),
                "fvs conn list: 'all' is not a number (after 'limit')".to_string(),
            ),
            (
                "conn list limit 1 limit 2".to_string(),
                "fvs conn list: 'limit' given twice".to_string(),
            ),
            (
                "conn list established".to_string(),
                "fvs conn list: unknown keyword 'established' (expected service, backend, state or limit; did you mean 'state established'?)".to_string(),
            ),
            (
                "conn list 198.51.100.11:8080".to_string(),
                "fvs conn list: unknown keyword '198.51.100.11:8080' (expected service, backend, state or limit; did you mean 'backend 198.51.100.11:8080'?)".to_string(),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(usage_error(&line), want, "{line}");
        }
    }

    fn conn(core: u32, state: &str, client: &str, local: Option<&str>, backend: &str, expires_ms: u64) -> ConnInfo {
        ConnInfo {
            core,
            protocol: if state == "UDP" { Protocol::Udp } else { Protocol::Tcp },
            mode: if local.is_some() { ConnMode::Fullnat } else { ConnMode::Nat },
            client: sock(client),
            virtual_addr: Some(sock(if state == "UDP" { "192.0.2.100:53" } else { "192.0.2.100:80" })),
            local: local.map(sock),
            backend: sock(backend),
            state: state.into(),
            expires_ms,
        }
    }

    #[test]
    fn conns_formatted() {
        let list = ConnList {
            conns: vec![
                conn(0, "ESTABLISHED", "192.0.2.2:40000", None, "198.51.100.11:8080", 898_999),
                conn(1, "SYN_RECV", "192.0.2.3:40001", None, "198.51.100.12:8080", 59_000),
                conn(1, "UDP", "192.0.2.2:5353", Some("198.51.100.1:1025"), "198.51.100.21:53", 300_000),
            ],
            matched: 3,
        };
        let want = "\
core pro expire state       mode    client             virtual            local              backend
0    TCP 14:58  ESTABLISHED nat     192.0.2.2:40000    192.0.2.100:80     -                  198.51.100.11:8080
1    TCP 00:59  SYN_RECV    nat     192.0.2.3:40001    192.0.2.100:80     -                  198.51.100.12:8080
1    UDP 05:00  UDP         fullnat 192.0.2.2:5353     192.0.2.100:53     198.51.100.1:1025  198.51.100.21:53
";
        assert_eq!(format_conns(&list), want);
        let cut = ConnList { conns: list.conns[..1].to_vec(), matched: 1500 };
        let want = "\
core pro expire state       mode    client             virtual            local              backend
0    TCP 14:58  ESTABLISHED nat     192.0.2.2:40000    192.0.2.100:80     -                  198.51.100.11:8080
1 of 1500 connections shown
";
        assert_eq!(format_conns(&cut), want);
        let none = ConnList { conns: vec![], matched: 7 };
        assert_eq!(
            format_conns(&none),
            "core pro expire state       mode    client             virtual            local              backend\n0 of 7 connections shown\n"
        );
        let v6 = ConnList {
            conns: vec![conn(
                0,
                "TIME_WAIT",
                "[2001:db8::2]:40000",
                Some("[2001:db8:1::1]:1024"),
                "[2001:db8:2::11]:8080",
                1_000,
            )],
            matched: 1,
        };
        let want = "\
core pro expire state       mode    client              virtual            local                backend
0    TCP 00:01  TIME_WAIT   fullnat [2001:db8::2]:40000 192.0.2.100:80     [2001:db8:1::1]:1024 [2001:db8:2::11]:8080
";
        assert_eq!(format_conns(&v6), want);
    }

    #[test]
    fn conns_show_their_mode() {
        let mut dr = conn(0, "ESTABLISHED", "192.0.2.2:40000", None, "192.0.2.11:80", 60_000);
        dr.mode = ConnMode::Dr;
        let mut tun = conn(0, "SYN_RECV", "192.0.2.3:40000", None, "203.0.113.11:80", 30_000);
        tun.mode = ConnMode::Tun;
        // An outbound connection: no service; the backend is the remote server.
        let mut snat =
            conn(1, "ESTABLISHED", "198.51.100.7:51000", Some("192.0.2.50:1030"), "203.0.113.9:443", 900_000);
        snat.mode = ConnMode::Snat;
        snat.virtual_addr = None;
        let list = ConnList { conns: vec![dr, tun, snat], matched: 3 };
        let want = "\
core pro expire state       mode    client             virtual            local              backend
0    TCP 01:00  ESTABLISHED dr      192.0.2.2:40000    192.0.2.100:80     -                  192.0.2.11:80
0    TCP 00:30  SYN_RECV    tun     192.0.2.3:40000    192.0.2.100:80     -                  203.0.113.11:80
1    TCP 15:00  ESTABLISHED snat    198.51.100.7:51000 -                  192.0.2.50:1030    203.0.113.9:443
";
        assert_eq!(format_conns(&list), want);
        let json = serde_json::to_string(&list.conns[2]).unwrap();
        assert!(json.contains(r#""mode":"snat""#) && json.contains(r#""virtual_addr":null"#), "{json}");
    }

    #[test]
    fn render_conn_views() {
        let list = ConnList {
            conns: vec![conn(0, "ESTABLISHED", "192.0.2.2:40000", None, "198.51.100.11:8080", 1000)],
            matched: 2,
        };
        let req = Request::ConnList { filter: ConnFilter::default() };
        let text = render(&req, Response::ok(&list), false, false).unwrap();
        assert!(text.ends_with("\n1 of 2 connections shown\n"), "{text}");
        let json = render(&req, Response::ok(&list), true, false).unwrap();
        assert_eq!(serde_json::from_str::<ConnList>(&json).unwrap(), list);
        assert!(json.contains("\"matched\": 2"), "{json}");
        let inv = parse_args(["fvs", "-j", "conn", "list", "limit", "5"]).unwrap();
        assert!(matches!(inv, Invocation { json: true, command: Command::Send(Request::ConnList { .. }), .. }));
    }
}
