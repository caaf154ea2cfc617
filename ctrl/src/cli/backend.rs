//! `fvs backend`: the backends (real servers) of a service, like `ipvsadm -a/-e/-d`. A backend
//! is named by the service's `tcp|udp VIP:PORT` and its own `ADDR:PORT` after them.

use std::net::SocketAddr;

use clap::Subcommand;

use super::table::{cells, Layout};
use super::words::{parse_socket, VerbArgs, Words};
use super::ArgsError;
use crate::config::lb::{BackendConfig, BackendState, RemovalPolicy};
use crate::proto::{HealthInfo, Request, ServiceInfo};

pub(super) const BACKEND_ADD_USAGE: &str =
    "fvs backend add tcp|udp VIP:PORT ADDR:PORT [weight W] [state active|draining|inhibited] [max-conns N]";
pub(super) const BACKEND_SET_USAGE: &str =
    "fvs backend set tcp|udp VIP:PORT ADDR:PORT [weight W] [state active|draining|inhibited]";
pub(super) const BACKEND_DEL_USAGE: &str = "fvs backend del tcp|udp VIP:PORT ADDR:PORT [drain|reset]";

#[derive(Subcommand, Debug)]
pub(super) enum BackendVerb {
    /// Every service's backends with their health: up or down, since when, why, and the
    /// last check's result.
    #[command(visible_alias = "list", after_help = "Examples:\n  fvs backend show\n  fvs -j backend show")]
    Show,
    /// Add a backend to a service (weight 1 and active unless given).
    #[command(
        override_usage = BACKEND_ADD_USAGE,
        after_help = "Examples:\n  fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080\n  fvs backend add tcp 192.0.2.100:80 198.51.100.12:8080 weight 2 state draining\n  fvs backend add tcp 192.0.2.100:80 198.51.100.13:8080 max-conns 10000\n\nmax-conns: most connections at once (each worker core takes its share); the scheduler\npasses over a backend at its maximum. 0 or absent: no limit."
    )]
    Add(VerbArgs),
    /// Change the weight or state of a backend.
    ///
    /// `draining`: no new connections, the current ones and persistent clients stay;
    /// `inhibited`: no new connections, persistence ignored (as for a failed health check).
    #[command(
        visible_alias = "change",
        override_usage = BACKEND_SET_USAGE,
        after_help = "Examples:\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 weight 5\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 state draining"
    )]
    Set(VerbArgs),
    /// Remove a backend.
    ///
    /// `drain` lets its connections run to their end, `reset` ends them; without either, the
    /// service's `removal` setting decides.
    #[command(
        visible_alias = "delete",
        override_usage = BACKEND_DEL_USAGE,
        after_help = "Examples:\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080 reset"
    )]
    Del(VerbArgs),
}

pub(super) fn backend_request(verb: BackendVerb) -> Result<Request, ArgsError> {
    match verb {
        BackendVerb::Show => Ok(Request::BackendShow),
        BackendVerb::Add(VerbArgs { args }) => {
            let mut w = Words::new("fvs backend add", &args);
            let service = w.service_key(BACKEND_ADD_USAGE)?;
            let addr = backend_addr(&mut w, BACKEND_ADD_USAGE)?;
            let (weight, state, max_conns) = backend_attrs(&mut w, true)?;
            Ok(Request::BackendAdd {
                service,
                backend: BackendConfig {
                    addr: addr.ip(),
                    port: addr.port(),
                    weight: weight.unwrap_or(1),
                    state: state.unwrap_or_default(),
                    health: None,
                    max_conns: max_conns.unwrap_or(0),
                },
            })
        }
        BackendVerb::Set(VerbArgs { args }) => {
            let mut w = Words::new("fvs backend set", &args);
            let service = w.service_key(BACKEND_SET_USAGE)?;
            let addr = backend_addr(&mut w, BACKEND_SET_USAGE)?;
            let (weight, state, _) = backend_attrs(&mut w, false)?;
            if weight.is_none() && state.is_none() {
                return Err(
                    w.error(format!("nothing to change; give weight, state or both (usage: {BACKEND_SET_USAGE})"))
                );
            }
            Ok(Request::BackendSet { service, addr: addr.ip(), port: addr.port(), weight, state })
        }
        BackendVerb::Del(VerbArgs { args }) => {
            let mut w = Words::new("fvs backend del", &args);
            let service = w.service_key(BACKEND_DEL_USAGE)?;
            let addr = backend_addr(&mut w, BACKEND_DEL_USAGE)?;
            let mut policy = None;
            while let Some(word) = w.next() {
                match word.parse::<RemovalPolicy>() {
                    Ok(_) if policy.is_some() => return Err(w.error("give only one of drain or reset".to_string())),
                    Ok(p) => policy = Some(p),
                    Err(_) => return Err(w.unknown(word, &["drain", "reset"])),
                }
            }
            Ok(Request::BackendDel { service, addr: addr.ip(), port: addr.port(), policy })
        }
    }
}

/// A duration for people: `850ms`, `12s`, `3m20s`, `2h5m`.
pub(super) fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// `up 12s` / `down 3s` (passive: `down 3s passive`), or `-` for an unchecked backend.
pub(super) fn health_text(h: Option<&HealthInfo>) -> String {
    match h {
        None => "-".to_string(),
        Some(h) => {
            let word = if h.up { "up" } else { "down" };
            let passive = if h.passive_down { " passive" } else { "" };
            format!("{word} {}{passive}", ago(h.since_ms))
        }
    }
}

/// `fvs backend show`: a line per backend with its health, why it last changed and the
/// last check's result.
pub(super) fn format_backends(services: &[ServiceInfo]) -> String {
    let mut rows = vec![cells(["Service", "Backend", "Weight", "State", "Health", "Last check", "Why"])];
    let mut services = services.to_vec();
    services.sort_by_key(|s| (s.protocol, s.vip, s.port));
    for s in &mut services {
        s.backends.sort_by_key(|b| (b.addr, b.port));
        for b in &s.backends {
            let h = b.health.as_ref();
            let last = match h.and_then(|h| Some((h.last_ok?, h.last.clone()?, h.last_ms_ago?))) {
                Some((ok, what, ago_ms)) => format!("{} {what} ({} ago)", if ok { "ok" } else { "FAIL" }, ago(ago_ms)),
                None => "-".to_string(),
            };
            let mut why = h.map_or_else(|| "not checked".to_string(), |h| h.reason.clone());
            if let Some(n) = h.and_then(|h| h.syn_failures) {
                why.push_str(&format!(" [failed new conns: {n}]"));
            }
            rows.push(vec![
                format!("{} {}", s.protocol.as_str(), SocketAddr::new(s.vip, s.port)),
                SocketAddr::new(b.addr, b.port).to_string(),
                b.weight.to_string(),
                b.state.as_str().to_string(),
                health_text(h),
                last,
                why,
            ]);
        }
    }
    let layout = Layout::new(&[22, 22, 6, 9, 14, 30], usize::MAX, " ", &rows);
    rows.iter().map(|r| layout.line(r)).collect()
}

/// `weight W` and `state S`.
/// `weight`, `state` and (with `max_conns`: `backend add`) `max-conns`.
type BackendAttrs = (Option<u32>, Option<BackendState>, Option<u32>);

fn backend_attrs(w: &mut Words<'_>, max_conns: bool) -> Result<BackendAttrs, ArgsError> {
    let (mut weight, mut state, mut max) = (None, None, None);
    while let Some(word) = w.next() {
        match word {
            "weight" => {
                let v = w.value("weight", "a number")?;
                let n = w.number(v, "weight")?;
                w.once(&mut weight, "weight", n)?;
            }
            "state" => {
                let v = w.value("state", "active, draining or inhibited")?;
                let s = v
                    .to_ascii_lowercase()
                    .parse::<BackendState>()
                    .map_err(|_| w.error(format!("'{v}' is not a backend state (active, draining or inhibited)")))?;
                w.once(&mut state, "state", s)?;
            }
            "max-conns" if max_conns => {
                let v = w.value("max-conns", "a number")?;
                let n = w.number(v, "max-conns")?;
                w.once(&mut max, "max-conns", n)?;
            }
            other if max_conns => return Err(w.unknown(other, &["weight", "state", "max-conns"])),
            other => return Err(w.unknown(other, &["weight", "state"])),
        }
    }
    Ok((weight, state, max))
}

/// The backend's `ADDR:PORT`, after the service.
fn backend_addr(w: &mut Words<'_>, line: &str) -> Result<SocketAddr, ArgsError> {
    let Some(word) = w.next() else {
        return Err(w.error(format!("missing the backend ADDR:PORT (usage: {line})")));
    };
    parse_socket(word).map_err(|m| w.error(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{ip, key, request, usage_error};
    use crate::cli::{parse_args, ArgsError};

    #[test]
    fn backend_commands() {
        let service = key("tcp 192.0.2.100:80");
        let backend = |weight, state| Request::BackendAdd {
            service,
            backend: BackendConfig { addr: ip("198.51.100.11"), port: 8080, weight, state, health: None, max_conns: 0 },
        };
        assert_eq!(request("backend add tcp 192.0.2.100:80 198.51.100.11:8080"), backend(1, BackendState::Active));
        assert_eq!(
            request("b add tcp 192.0.2.100:80 198.51.100.11:8080 state draining weight 0"),
            backend(0, BackendState::Draining)
        );
        assert_eq!(
            request("backend add tcp 192.0.2.100:80 198.51.100.11:8080 max-conns 500"),
            Request::BackendAdd {
                service,
                backend: BackendConfig {
                    addr: ip("198.51.100.11"),
                    port: 8080,
                    weight: 1,
                    state: BackendState::Active,
                    max_conns: 500,
                    health: None,
                },
            }
        );
        assert_eq!(
            request("backend set tcp 192.0.2.100:80 198.51.100.11:8080 weight 5"),
            Request::BackendSet { service, addr: ip("198.51.100.11"), port: 8080, weight: Some(5), state: None }
        );
        assert_eq!(
            request("backend change tcp 192.0.2.100:80 198.51.100.11:8080 state Inhibited"),
            Request::BackendSet {
                service,
                addr: ip("198.51.100.11"),
                port: 8080,
                weight: None,
                state: Some(BackendState::Inhibited),
            }
        );
        let del = |policy| Request::BackendDel { service, addr: ip("198.51.100.11"), port: 8080, policy };
        assert_eq!(request("backend del tcp 192.0.2.100:80 198.51.100.11:8080"), del(None));
        assert_eq!(
            request("backend delete tcp 192.0.2.100:80 198.51.100.11:8080 reset"),
            del(Some(RemovalPolicy::Reset))
        );
        assert_eq!(request("backend del tcp 192.0.2.100:80 198.51.100.11:8080 drain"), del(Some(RemovalPolicy::Drain)));
        assert_eq!(
            request("backend add udp [2001:db8::1]:53 [2001:db8:1::11]:5353"),
            Request::BackendAdd {
                service: key("udp [2001:db8::1]:53"),
                backend: BackendConfig {
                    addr: ip("2001:db8:1::11"),
                    port: 5353,
                    weight: 1,
                    state: BackendState::Active,
                    health: None,
                    max_conns: 0,
                },
            }
        );
    }

    #[test]
    fn backend_errors() {
        let cases = [
            (
                "backend add tcp 192.0.2.100:80",
                &format!("fvs backend add: missing the backend ADDR:PORT (usage: {BACKEND_ADD_USAGE})") as &str,
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11",
                "fvs backend add: '198.51.100.11' is not ADDR:PORT (e.g. 198.51.100.11:80)",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight heavy",
                "fvs backend add: 'heavy' is not a number (after 'weight')",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight",
                "fvs backend add: 'weight' needs a number",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 state up",
                "fvs backend add: 'up' is not a backend state (active, draining or inhibited)",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 3",
                "fvs backend add: unknown keyword '3' (expected weight, state or max-conns; did you mean 'weight 3'?)",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 draining",
                "fvs backend add: unknown keyword 'draining' (expected weight, state or max-conns; did you mean 'state draining'?)",
            ),
            (
                "backend set tcp 192.0.2.100:80 198.51.100.11:8080",
                &format!("fvs backend set: nothing to change; give weight, state or both (usage: {BACKEND_SET_USAGE})"),
            ),
            (
                "backend set tcp 192.0.2.100:80 198.51.100.11:8080 weight 1 weight 2",
                "fvs backend set: 'weight' given twice",
            ),
            (
                "backend del tcp 192.0.2.100:80 198.51.100.11:8080 now",
                "fvs backend del: unknown keyword 'now' (expected drain or reset)",
            ),
            (
                "backend del tcp 192.0.2.100:80 198.51.100.11:8080 drain reset",
                "fvs backend del: give only one of drain or reset",
            ),
            (
                "backend del udp:53",
                "fvs backend del: 'udp:53' is not a protocol (tcp or udp)",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(usage_error(line), want, "{line}");
        }
        match parse_args(["fvs", "backend"]) {
            Err(ArgsError::Clap(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backend_show_gives_health_last_check_and_why() {
        use crate::config::{ServiceConfig, ServiceKey};
        use crate::proto::BackendInfo;
        let mut svc =
            ServiceConfig::new(ServiceKey { protocol: crate::config::Protocol::Tcp, vip: ip("192.0.2.100"), port: 80 });
        svc.backends = vec![];
        let b = |last: &str, health: Option<HealthInfo>| BackendInfo {
            addr: ip(last),
            port: 8080,
            weight: 1,
            state: BackendState::Active,
            active_conns: 0,
            inactive_conns: 0,
            stats: None,
            handshake: None,
            health,
        };
        let up = HealthInfo {
            up: true,
            check: Some("http 198.51.100.11:8080 / expect 200".into()),
            last_ok: Some(true),
            last: Some("HTTP 200".into()),
            last_ms_ago: Some(120),
            since_ms: 125_000,
            reason: "http check passed 2 time(s): HTTP 200".into(),
            passive_down: false,
            syn_failures: None,
        };
        let down = HealthInfo {
            up: false,
            last_ok: Some(false),
            last: Some("connection refused".into()),
            last_ms_ago: Some(80),
            since_ms: 4_200,
            reason: "http check failed 2 time(s): connection refused".into(),
            ..up.clone()
        };
        let info = ServiceInfo::new(
            &svc,
            vec![b("198.51.100.12", Some(down)), b("198.51.100.11", Some(up)), b("198.51.100.13", None)],
            None,
        );
        let want = "\
Service                Backend                Weight State     Health         Last check                         Why
tcp 192.0.2.100:80     198.51.100.11:8080     1      active    up 2m5s        ok HTTP 200 (120ms ago)            http check passed 2 time(s): HTTP 200
tcp 192.0.2.100:80     198.51.100.12:8080     1      active    down 4s        FAIL connection refused (80ms ago) http check failed 2 time(s): connection refused
tcp 192.0.2.100:80     198.51.100.13:8080     1      active    -              -                                  not checked
";
        assert_eq!(format_backends(&[info]), want);
        assert_eq!(ago(999), "999ms");
        assert_eq!(ago(7_300_000), "2h1m");
    }
}
