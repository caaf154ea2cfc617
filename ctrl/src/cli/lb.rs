//! The load-balancing objects of `fvs`: services, their backends, FullNAT local addresses and
//! connections. They do what `ipvsadm -A/-E/-D`, `-a/-e/-d`, `-Ln` and `-Lnc` do, with
//! `ip`-style keywords: `fvs service add tcp 192.0.2.100:80 scheduler wrr`. The keyword reader
//! and table layout here also serve the SNAT rules (`snat`).
//!
//! A service is always named by its first two words, `tcp|udp VIP:PORT`; a backend by the
//! `ADDR:PORT` after them. Keywords and their values follow in any order.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use clap::Subcommand;
use dataplane::sched::SchedKind;

use super::{usage, ArgsError};
use crate::lbconf::{
    BackendConfig, BackendState, Encapsulation, ForwardMode, Protocol, RemovalPolicy, ServiceConfig, ServiceKey,
    TooBigPolicy, TunnelConfig,
};
use crate::proto::{ConnFilter, ConnList, LaddrInfo, Request, ServiceInfo, ServicePatch};

pub(super) const SERVICE_ADD_USAGE: &str = "fvs service add tcp|udp VIP:PORT [scheduler S] [mode nat|fullnat|dr|tun] [persistence SECONDS] [removal drain|reset] [maglev-size N] [laddr ADDR]... [encap ipip|gue] [gue-port N] [too-big icmp|drop]";
pub(super) const SERVICE_SET_USAGE: &str = "fvs service set tcp|udp VIP:PORT [scheduler S] [mode nat|fullnat|dr|tun] [persistence SECONDS] [removal drain|reset] [maglev-size N] [encap ipip|gue] [gue-port N] [too-big icmp|drop]";
pub(super) const SERVICE_DEL_USAGE: &str = "fvs service del tcp|udp VIP:PORT";
pub(super) const BACKEND_ADD_USAGE: &str =
    "fvs backend add tcp|udp VIP:PORT ADDR:PORT [weight W] [state active|draining|inhibited]";
pub(super) const BACKEND_SET_USAGE: &str =
    "fvs backend set tcp|udp VIP:PORT ADDR:PORT [weight W] [state active|draining|inhibited]";
pub(super) const BACKEND_DEL_USAGE: &str = "fvs backend del tcp|udp VIP:PORT ADDR:PORT [drain|reset]";
pub(super) const LADDR_ADD_USAGE: &str = "fvs laddr add tcp|udp VIP:PORT ADDR";
pub(super) const LADDR_DEL_USAGE: &str = "fvs laddr del tcp|udp VIP:PORT ADDR";
pub(super) const CONN_LIST_USAGE: &str =
    "fvs conn list [service tcp|udp VIP:PORT] [backend ADDR:PORT] [state STATE] [limit N]";

pub(super) const SERVICE_ADD_HELP: &str = concat!(
    "\
Examples:
  fvs service add tcp 192.0.2.100:80
  fvs service add tcp 192.0.2.100:80 scheduler wrr persistence 300 removal reset
  fvs service add udp 192.0.2.100:53 scheduler mh maglev-size 65537
  fvs service add tcp 192.0.2.100:443 mode fullnat laddr 198.51.100.1 laddr 198.51.100.2
  fvs service add tcp 192.0.2.100:8080 mode dr
  fvs service add tcp 192.0.2.100:8443 mode tun encap gue gue-port 6080 too-big icmp

",
    "\
Schedulers:
  rr    round robin              wrr   weighted round robin
  lc    least connections        wlc   weighted least connections (the default)
  sh    source hash              mh    Maglev hash (maglev-size: a prime, e.g. 65537)
  twos  best of two random       fo    weighted failover (highest weight wins)

",
    "\
Modes:
  nat      the destination becomes the backend; backends route their replies through ferrovs
  fullnat  the source becomes a local address of ferrovs too (laddr, one at least)
  dr       the frame goes unchanged to the backend's MAC: the backend is on a network of a
           ferrovs port, holds the VIP (on lo, arp_ignore=1, arp_announce=2) and answers the
           client directly; backend port = service port
  tun      the packet goes to the backend inside IPIP (encap ipip, the default) or GUE (encap
           gue, to UDP gue-port, default 6080); the backend decapsulates, holds the VIP and
           answers the client directly; backend port = service port. too-big icmp (the
           default) tells the client when a packet no longer fits once encapsulated, too-big
           drop drops it"
);

/// The scheduler names, in the words of the errors: `rr, wrr, ... or fo`.
fn schedulers() -> String {
    let names: Vec<&str> = SchedKind::ALL.iter().map(|k| k.as_str()).collect();
    or_list(&names)
}

/// The LVS connection states `conn list state` accepts (as the daemon prints them).
pub(super) const CONN_STATES: [&str; 12] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
    "UDP",
];

#[derive(Subcommand, Debug)]
pub(super) enum ServiceVerb {
    /// Show the services and their backends, like `ipvsadm -Ln` (the default).
    #[command(
        visible_alias = "list",
        aliases = ["s", "sh", "sho", "l", "ls", "lst"],
        after_help = "Examples:\n  fvs service show\n  fvs service show --stats    packets and bytes, like ipvsadm -Ln --stats"
    )]
    Show,
    /// Add a service.
    ///
    /// Without keywords: scheduler wlc, mode nat, no persistence, removal drain.
    #[command(override_usage = SERVICE_ADD_USAGE, after_help = SERVICE_ADD_HELP)]
    Add {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
    /// Change attributes of a service; the others stay.
    #[command(
        visible_alias = "change",
        override_usage = SERVICE_SET_USAGE,
        after_help = concat!(
            "Examples:\n  fvs service set tcp 192.0.2.100:80 scheduler mh\n  fvs service set tcp 192.0.2.100:80 persistence 0 removal drain\n  fvs service set tcp 192.0.2.100:8443 mode tun encap gue\n\n",
            "Schedulers: rr, wrr, lc, wlc, sh, mh, twos, fo; modes: nat, fullnat, dr, tun (see fvs service add --help).\n",
            "Leaving tun mode drops the service's tunnel settings."
        )
    )]
    Set {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
    /// Delete a service with its backends; its connections are dropped.
    #[command(
        visible_alias = "delete",
        override_usage = SERVICE_DEL_USAGE,
        after_help = "Example:\n  fvs service del tcp 192.0.2.100:80"
    )]
    Del {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum BackendVerb {
    /// Add a backend to a service (weight 1 and active unless given).
    #[command(
        override_usage = BACKEND_ADD_USAGE,
        after_help = "Examples:\n  fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080\n  fvs backend add tcp 192.0.2.100:80 198.51.100.12:8080 weight 2 state draining"
    )]
    Add {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
    /// Change the weight or state of a backend.
    ///
    /// `draining`: no new connections, the current ones and persistent clients stay;
    /// `inhibited`: no new connections, persistence ignored (as for a failed health check).
    #[command(
        visible_alias = "change",
        override_usage = BACKEND_SET_USAGE,
        after_help = "Examples:\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 weight 5\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 state draining"
    )]
    Set {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
    /// Remove a backend.
    ///
    /// `drain` lets its connections run to their end, `reset` ends them; without either, the
    /// service's `removal` setting decides.
    #[command(
        visible_alias = "delete",
        override_usage = BACKEND_DEL_USAGE,
        after_help = "Examples:\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080 reset"
    )]
    Del {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
}

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
    Add {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
    /// Remove a local address from a fullnat service; its connections are dropped.
    #[command(
        visible_alias = "delete",
        override_usage = LADDR_DEL_USAGE,
        after_help = "Example:\n  fvs laddr del tcp 192.0.2.100:443 198.51.100.2"
    )]
    Del {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum ConnVerb {
    /// List connections, all of them or those matching every filter given (the default).
    #[command(
        visible_alias = "show",
        aliases = ["s", "sh", "sho", "l", "ls", "lst"],
        override_usage = CONN_LIST_USAGE,
        after_help = "Examples:\n  fvs conn list\n  fvs conn list service tcp 192.0.2.100:80 state established\n  fvs conn list backend 198.51.100.11:8080 limit 10\n\nStates: NONE ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK\n        LISTEN SYNACK UDP (any case)\nAt most 1000 connections are listed unless 'limit' says otherwise."
    )]
    List {
        #[arg(value_name = "ARGS", hide = true)]
        args: Vec<String>,
    },
}

/// `fvs service ...`; `stats` is the global `-s`.
pub(super) fn service_request(verb: Option<ServiceVerb>, stats: bool) -> Result<Request, ArgsError> {
    match verb {
        None | Some(ServiceVerb::Show) => Ok(Request::ServiceShow { stats }),
        Some(ServiceVerb::Add { args }) => {
            let mut w = Words::new("fvs service add", &args);
            let key = w.service_key(SERVICE_ADD_USAGE)?;
            let mut laddrs = Vec::new();
            let patch = service_attrs(&mut w, Some(&mut laddrs))?;
            let mut service = ServiceConfig::new(key);
            let ServicePatch {
                scheduler,
                mode,
                persistence_s,
                on_backend_removal,
                maglev_size,
                encap,
                gue_port,
                too_big,
            } = patch;
            service.scheduler = scheduler.unwrap_or(service.scheduler);
            service.mode = mode.unwrap_or(service.mode);
            service.persistence_s = persistence_s.unwrap_or(service.persistence_s);
            service.on_backend_removal = on_backend_removal.unwrap_or(service.on_backend_removal);
            service.maglev_size = maglev_size.unwrap_or(service.maglev_size);
            service.laddrs = laddrs;
            // Only a service given tunnel keywords gets a tunnel section, as in the YAML.
            if encap.is_some() || gue_port.is_some() || too_big.is_some() {
                let d = TunnelConfig::default();
                service.tunnel = Some(TunnelConfig {
                    encap: encap.unwrap_or(d.encap),
                    gue_port: gue_port.unwrap_or(d.gue_port),
                    too_big: too_big.unwrap_or(d.too_big),
                });
            }
            Ok(Request::ServiceAdd { service })
        }
        Some(ServiceVerb::Set { args }) => {
            let mut w = Words::new("fvs service set", &args);
            let key = w.service_key(SERVICE_SET_USAGE)?;
            let set = service_attrs(&mut w, None)?;
            if set == ServicePatch::default() {
                return Err(w.error(format!(
                    "nothing to change; give {} (usage: {SERVICE_SET_USAGE})",
                    or_list(SERVICE_SET_KEYWORDS)
                )));
            }
            Ok(Request::ServiceSet { key, set })
        }
        Some(ServiceVerb::Del { args }) => {
            let mut w = Words::new("fvs service del", &args);
            let key = w.service_key(SERVICE_DEL_USAGE)?;
            w.end()?;
            Ok(Request::ServiceDel { key })
        }
    }
}

const SERVICE_ADD_KEYWORDS: &[&str] =
    &["scheduler", "mode", "persistence", "removal", "maglev-size", "laddr", "encap", "gue-port", "too-big"];
const SERVICE_SET_KEYWORDS: &[&str] =
    &["scheduler", "mode", "persistence", "removal", "maglev-size", "encap", "gue-port", "too-big"];

/// The keywords of `service add` (with `laddrs`) and `service set` (without).
fn service_attrs(w: &mut Words<'_>, mut laddrs: Option<&mut Vec<IpAddr>>) -> Result<ServicePatch, ArgsError> {
    let mut p = ServicePatch::default();
    while let Some(word) = w.next() {
        match word {
            "scheduler" | "sched" => {
                let v = w.value("scheduler", &format!("a scheduler ({})", schedulers()))?;
                let s = parse_scheduler(v).map_err(|m| w.error(m))?;
                w.once(&mut p.scheduler, "scheduler", s)?;
            }
            "mode" => {
                let v = w.value("mode", "nat, fullnat, dr or tun")?;
                let m = v.to_ascii_lowercase().parse::<ForwardMode>();
                let m = m.map_err(|_| w.error(format!("'{v}' is not a forwarding mode (nat, fullnat, dr or tun)")))?;
                w.once(&mut p.mode, "mode", m)?;
            }
            "encap" => {
                let v = w.value("encap", "ipip or gue")?;
                let e = v.to_ascii_lowercase().parse::<Encapsulation>();
                let e = e.map_err(|_| w.error(format!("'{v}' is not an encapsulation (ipip or gue)")))?;
                w.once(&mut p.encap, "encap", e)?;
            }
            "gue-port" => {
                let v = w.value("gue-port", "a UDP port number")?;
                let n = w.port(v, "gue-port")?;
                w.once(&mut p.gue_port, "gue-port", n)?;
            }
            "too-big" => {
                let v = w.value("too-big", "icmp or drop")?;
                let t = v.to_ascii_lowercase().parse::<TooBigPolicy>();
                let t = t.map_err(|_| w.error(format!("'{v}' is not a too-big policy (icmp or drop)")))?;
                w.once(&mut p.too_big, "too-big", t)?;
            }
            "persistence" | "persistent" => {
                let v = w.value("persistence", "a number of seconds (0: off)")?;
                let n = w.number(v, "persistence")?;
                w.once(&mut p.persistence_s, "persistence", n)?;
            }
            "removal" => {
                let v = w.value("removal", "drain or reset")?;
                let r = parse_removal(v).map_err(|m| w.error(m))?;
                w.once(&mut p.on_backend_removal, "removal", r)?;
            }
            "maglev-size" => {
                let v = w.value("maglev-size", "a table size (a prime, e.g. 65537)")?;
                let n = w.number(v, "maglev-size")?;
                w.once(&mut p.maglev_size, "maglev-size", n)?;
            }
            "laddr" if laddrs.is_some() => {
                let v = w.value("laddr", "an IP address")?;
                let ip = parse_ip(v, "laddr").map_err(|m| w.error(m))?;
                if let Some(l) = laddrs.as_deref_mut() {
                    l.push(ip);
                }
            }
            "laddr" => {
                return Err(w.error(format!(
                    "unknown keyword 'laddr' (expected {}; local addresses change with 'fvs laddr add|del')",
                    or_list(SERVICE_SET_KEYWORDS)
                )))
            }
            other => {
                let keywords = if laddrs.is_some() { SERVICE_ADD_KEYWORDS } else { SERVICE_SET_KEYWORDS };
                return Err(w.unknown(other, keywords));
            }
        }
    }
    Ok(p)
}

pub(super) fn backend_request(verb: BackendVerb) -> Result<Request, ArgsError> {
    match verb {
        BackendVerb::Add { args } => {
            let mut w = Words::new("fvs backend add", &args);
            let service = w.service_key(BACKEND_ADD_USAGE)?;
            let addr = w.backend(BACKEND_ADD_USAGE)?;
            let (weight, state) = backend_attrs(&mut w)?;
            Ok(Request::BackendAdd {
                service,
                backend: BackendConfig {
                    addr: addr.ip(),
                    port: addr.port(),
                    weight: weight.unwrap_or(1),
                    state: state.unwrap_or_default(),
                },
            })
        }
        BackendVerb::Set { args } => {
            let mut w = Words::new("fvs backend set", &args);
            let service = w.service_key(BACKEND_SET_USAGE)?;
            let addr = w.backend(BACKEND_SET_USAGE)?;
            let (weight, state) = backend_attrs(&mut w)?;
            if weight.is_none() && state.is_none() {
                return Err(
                    w.error(format!("nothing to change; give weight, state or both (usage: {BACKEND_SET_USAGE})"))
                );
            }
            Ok(Request::BackendSet { service, addr: addr.ip(), port: addr.port(), weight, state })
        }
        BackendVerb::Del { args } => {
            let mut w = Words::new("fvs backend del", &args);
            let service = w.service_key(BACKEND_DEL_USAGE)?;
            let addr = w.backend(BACKEND_DEL_USAGE)?;
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

/// `weight W` and `state S`.
fn backend_attrs(w: &mut Words<'_>) -> Result<(Option<u32>, Option<BackendState>), ArgsError> {
    let (mut weight, mut state) = (None, None);
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
            other => return Err(w.unknown(other, &["weight", "state"])),
        }
    }
    Ok((weight, state))
}

pub(super) fn laddr_request(verb: Option<LaddrVerb>) -> Result<Request, ArgsError> {
    let (cmd, line, args, add) = match verb {
        None | Some(LaddrVerb::Show) => return Ok(Request::LaddrShow),
        Some(LaddrVerb::Add { args }) => ("fvs laddr add", LADDR_ADD_USAGE, args, true),
        Some(LaddrVerb::Del { args }) => ("fvs laddr del", LADDR_DEL_USAGE, args, false),
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

pub(super) fn conn_request(verb: Option<ConnVerb>) -> Result<Request, ArgsError> {
    let args = match verb {
        None => Vec::new(),
        Some(ConnVerb::List { args }) => args,
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

/// The words after the verb, read front to back; errors start with the command's name.
pub(super) struct Words<'a> {
    cmd: &'static str,
    words: std::slice::Iter<'a, String>,
}

impl<'a> Words<'a> {
    pub(super) fn new(cmd: &'static str, args: &'a [String]) -> Words<'a> {
        Words { cmd, words: args.iter() }
    }

    pub(super) fn next(&mut self) -> Option<&'a str> {
        self.words.next().map(String::as_str)
    }

    pub(super) fn error(&self, message: String) -> ArgsError {
        usage(self.cmd, message)
    }

    /// The value after keyword `key`; `what` says what it should be.
    pub(super) fn value(&mut self, key: &str, what: &str) -> Result<&'a str, ArgsError> {
        self.next().ok_or_else(|| self.error(format!("'{key}' needs {what}")))
    }

    /// Fills `slot`, refusing a keyword given twice.
    pub(super) fn once<T>(&self, slot: &mut Option<T>, key: &str, value: T) -> Result<(), ArgsError> {
        if slot.is_some() {
            return Err(self.error(format!("'{key}' given twice")));
        }
        *slot = Some(value);
        Ok(())
    }

    fn number(&self, word: &str, key: &str) -> Result<u32, ArgsError> {
        word.parse().map_err(|_| self.error(format!("'{word}' is not a number (after '{key}')")))
    }

    fn port(&self, word: &str, key: &str) -> Result<u16, ArgsError> {
        word.parse().map_err(|_| self.error(format!("'{word}' is not a port number (after '{key}')")))
    }

    /// `tcp|udp VIP:PORT`, the first two words.
    fn service_key(&mut self, line: &str) -> Result<ServiceKey, ArgsError> {
        let Some(proto) = self.next() else {
            return Err(self.error(format!("missing tcp|udp VIP:PORT (usage: {line})")));
        };
        let protocol = parse_protocol(proto).map_err(|m| self.error(m))?;
        let Some(addr) = self.next() else {
            return Err(
                self.error(format!("missing VIP:PORT after '{proto}' (e.g. {} 192.0.2.100:80)", protocol.as_str()))
            );
        };
        let vip = parse_socket(addr).map_err(|m| self.error(m))?;
        Ok(ServiceKey { protocol, vip: vip.ip(), port: vip.port() })
    }

    /// The backend's `ADDR:PORT`, after the service.
    fn backend(&mut self, line: &str) -> Result<SocketAddr, ArgsError> {
        let Some(word) = self.next() else {
            return Err(self.error(format!("missing the backend ADDR:PORT (usage: {line})")));
        };
        parse_socket(word).map_err(|m| self.error(m))
    }

    /// Refuses any word left.
    fn end(&mut self) -> Result<(), ArgsError> {
        match self.next() {
            Some(word) => Err(self.error(format!("unexpected argument '{word}'"))),
            None => Ok(()),
        }
    }

    /// An unknown keyword: names the valid ones, and guesses the keyword when `word` looks
    /// like one of their values (`wrr` -> `scheduler wrr`).
    pub(super) fn unknown(&self, word: &str, keywords: &[&str]) -> ArgsError {
        let lower = word.to_ascii_lowercase();
        let guesses = [
            ("scheduler", lower.parse::<SchedKind>().is_ok()),
            ("mode", lower.parse::<ForwardMode>().is_ok()),
            ("removal", lower.parse::<RemovalPolicy>().is_ok()),
            ("encap", lower.parse::<Encapsulation>().is_ok()),
            ("too-big", lower.parse::<TooBigPolicy>().is_ok()),
            ("state", lower.parse::<BackendState>().is_ok() || parse_conn_state(word).is_ok()),
            ("weight", keywords.contains(&"weight") && word.parse::<u32>().is_ok()),
            ("laddr", word.parse::<IpAddr>().is_ok()),
            ("address", word.parse::<IpAddr>().is_ok()),
            ("source", word.contains('/') && word.parse::<dataplane::net::Prefix>().is_ok()),
            ("backend", parse_socket(word).is_ok()),
        ];
        let guess = guesses
            .iter()
            .find(|(key, hit)| *hit && keywords.contains(key))
            .map(|(key, _)| format!("; did you mean '{key} {word}'?"))
            .unwrap_or_default();
        self.error(format!("unknown keyword '{word}' (expected {}{guess})", or_list(keywords)))
    }
}

/// `a, b or c`.
pub(super) fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn parse_protocol(word: &str) -> Result<Protocol, String> {
    word.to_ascii_lowercase().parse().map_err(|_| {
        if word.parse::<SocketAddr>().is_ok() {
            format!("missing the protocol before '{word}' (e.g. tcp {word})")
        } else {
            format!("'{word}' is not a protocol (tcp or udp)")
        }
    })
}

fn service_key(proto: &str, addr: &str) -> Result<ServiceKey, String> {
    let protocol = parse_protocol(proto)?;
    let vip = parse_socket(addr)?;
    Ok(ServiceKey { protocol, vip: vip.ip(), port: vip.port() })
}

/// `192.0.2.100:80` or `[2001:db8::1]:80`.
fn parse_socket(word: &str) -> Result<SocketAddr, String> {
    word.parse().map_err(|_| {
        let bare = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')).unwrap_or(word);
        let example = match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("{ip}:80"),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:80"),
            Err(_) => "192.0.2.100:80 or [2001:db8::1]:80".to_string(),
        };
        let port = word.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_err() {
            format!("'{word}' is not ADDR:PORT (the port must be 65535 or less)")
        } else {
            format!("'{word}' is not ADDR:PORT (e.g. {example})")
        }
    })
}

fn parse_ip(word: &str, after: &str) -> Result<IpAddr, String> {
    word.parse().map_err(|_| format!("'{word}' is not an IP address (after '{after}')"))
}

fn parse_scheduler(word: &str) -> Result<SchedKind, String> {
    word.to_ascii_lowercase().parse().map_err(|_| format!("'{word}' is not a scheduler ({})", schedulers()))
}

fn parse_removal(word: &str) -> Result<RemovalPolicy, String> {
    word.to_ascii_lowercase().parse().map_err(|_| format!("'{word}' is not a removal policy (drain or reset)"))
}

/// Any case, `-` for `_`: `established`, `syn-recv`.
fn parse_conn_state(word: &str) -> Result<String, String> {
    let state = word.to_ascii_uppercase().replace('-', "_");
    if CONN_STATES.contains(&state.as_str()) {
        Ok(state)
    } else {
        Err(format!("'{word}' is not a connection state ({})", or_list(&CONN_STATES)))
    }
}

/// Column widths for rows of cells: each column as wide as its widest cell, at least its
/// minimum. Columns from `right_from` on are right-aligned.
pub(super) struct Layout {
    widths: Vec<usize>,
    right_from: usize,
    sep: &'static str,
}

impl Layout {
    pub(super) fn new<'r>(
        mins: &[usize],
        right_from: usize,
        sep: &'static str,
        rows: impl IntoIterator<Item = &'r Vec<String>>,
    ) -> Layout {
        let mut widths = mins.to_vec();
        for row in rows {
            for (c, cell) in row.iter().enumerate() {
                if c >= widths.len() {
                    widths.push(0);
                }
                widths[c] = widths[c].max(cell.len());
            }
        }
        Layout { widths, right_from, sep }
    }

    /// One line, without trailing blanks.
    pub(super) fn line(&self, cells: &[String]) -> String {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c > 0 {
                s.push_str(self.sep);
            }
            let w = self.widths[c];
            let _ = if c >= self.right_from { write!(s, "{cell:>w$}") } else { write!(s, "{cell:<w$}") };
        }
        let mut line = s.trim_end().to_string();
        line.push('\n');
        line
    }
}

pub(super) fn cells<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn upper(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// Services by protocol, VIP and port, and their backends by address, as `ipvsadm` lists
/// them.
fn sorted(services: &[ServiceInfo]) -> Vec<ServiceInfo> {
    let mut services = services.to_vec();
    services.sort_by_key(|s| (s.protocol, s.vip, s.port));
    for s in &mut services {
        s.backends.sort_by_key(|b| (b.addr, b.port));
    }
    services
}

/// `ipvsadm -Ln`-style: a line per service, then a line per backend.
pub(super) fn format_services(services: &[ServiceInfo]) -> String {
    let services = sorted(services);
    let mut service_rows = vec![cells(["Prot", "LocalAddress:Port", "Scheduler", "Mode", "Flags"])];
    let mut backend_rows = vec![cells(["  ->", "RemoteAddress:Port", "Weight", "State", "ActiveConn", "InActConn"])];
    for s in &services {
        let mut flags = Vec::new();
        if s.persistence_s > 0 {
            flags.push(format!("persistent {}", s.persistence_s));
        }
        if s.on_backend_removal == RemovalPolicy::Reset {
            flags.push("reset".to_string());
        }
        if s.scheduler == SchedKind::Mh {
            flags.push(format!("maglev-size {}", s.maglev_size));
        }
        if !s.laddrs.is_empty() {
            let laddrs: Vec<String> = s.laddrs.iter().map(IpAddr::to_string).collect();
            flags.push(format!("local {}", laddrs.join(",")));
        }
        if s.tunnel.is_some_and(|t| t.too_big == TooBigPolicy::Drop) {
            flags.push("too-big drop".to_string());
        }
        service_rows.push(vec![
            upper(s.protocol).to_string(),
            SocketAddr::new(s.vip, s.port).to_string(),
            s.scheduler.as_str().to_string(),
            mode_text(s),
            flags.join(" "),
        ]);
        for b in &s.backends {
            backend_rows.push(vec![
                "  ->".to_string(),
                SocketAddr::new(b.addr, b.port).to_string(),
                b.weight.to_string(),
                b.state.as_str().to_string(),
                b.active_conns.to_string(),
                b.inactive_conns.to_string(),
            ]);
        }
    }
    let sl = Layout::new(&[4, 17, 9, 7], usize::MAX, " ", &service_rows);
    let bl = Layout::new(&[4, 28, 6, 9, 10], usize::MAX, " ", &backend_rows);
    let mut out = sl.line(&service_rows[0]) + &bl.line(&backend_rows[0]);
    let mut backends = backend_rows[1..].iter();
    for (s, row) in services.iter().zip(&service_rows[1..]) {
        out.push_str(&sl.line(row));
        for b in backends.by_ref().take(s.backends.len()) {
            out.push_str(&bl.line(b));
        }
    }
    out
}

/// The mode, with the encapsulation for tun: `tun/ipip`, `tun/gue:6080`.
fn mode_text(s: &ServiceInfo) -> String {
    match (s.mode, s.tunnel) {
        (ForwardMode::Tun, Some(t)) => match t.encap {
            Encapsulation::Ipip => "tun/ipip".to_string(),
            Encapsulation::Gue => format!("tun/gue:{}", t.gue_port),
        },
        (mode, _) => mode.as_str().to_string(),
    }
}

/// `ipvsadm -Ln --stats`-style: connections, packets and bytes per service and backend.
pub(super) fn format_service_stats(services: &[ServiceInfo]) -> String {
    let numbers = |st: Option<crate::proto::TrafficStats>| {
        let st = st.unwrap_or_default();
        [st.conns, st.in_packets, st.out_packets, st.in_bytes, st.out_bytes].map(|n| n.to_string())
    };
    let mut rows = vec![
        cells(["Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]),
        cells(["  -> RemoteAddress:Port"]),
    ];
    for s in sorted(services) {
        let mut row = vec![format!("{:<4} {}", upper(s.protocol), SocketAddr::new(s.vip, s.port))];
        row.extend(numbers(s.stats));
        rows.push(row);
        for b in &s.backends {
            let mut row = vec![format!("  -> {}", SocketAddr::new(b.addr, b.port))];
            row.extend(numbers(b.stats));
            rows.push(row);
        }
    }
    let layout = Layout::new(&[33, 8, 8, 8, 8, 8], 1, " ", &rows);
    rows.iter().map(|r| layout.line(r)).collect()
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
    let layout = Layout::new(&[], 2, "  ", &rows);
    rows.iter().map(|r| layout.line(r)).collect()
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
            upper(c.protocol).to_string(),
            format!("{:02}:{:02}", secs / 60, secs % 60),
            c.state.clone(),
            c.mode.as_str().to_string(),
            c.client.to_string(),
            or_dash(c.virtual_addr),
            or_dash(c.local),
            c.backend.to_string(),
        ]);
    }
    let layout = Layout::new(&[4, 3, 6, 11, 7, 18, 18, 18], usize::MAX, " ", &rows);
    let mut out: String = rows.iter().map(|r| layout.line(r)).collect();
    if list.matched > list.conns.len() as u64 {
        let _ = writeln!(out, "{} of {} connections shown", list.conns.len(), list.matched);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{request, usage_error};
    use super::super::{parse_args, render, Command, Invocation};
    use super::*;
    use crate::proto::{BackendInfo, ConnInfo, ConnMode, Response, TrafficStats};

    fn key(s: &str) -> ServiceKey {
        let (proto, addr) = s.split_once(' ').unwrap();
        service_key(proto, addr).unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn service_show() {
        for line in ["service show", "service", "service list", "svc", "se ls", "serv s"] {
            assert_eq!(request(line), Request::ServiceShow { stats: false }, "{line}");
        }
        for line in ["service show --stats", "-s service", "service -s", "service list -s"] {
            assert_eq!(request(line), Request::ServiceShow { stats: true }, "{line}");
        }
    }

    #[test]
    fn service_add() {
        let k = key("tcp 192.0.2.100:80");
        assert_eq!(request("service add tcp 192.0.2.100:80"), Request::ServiceAdd { service: ServiceConfig::new(k) });
        let mut want = ServiceConfig::new(k);
        want.scheduler = SchedKind::Wrr;
        want.mode = ForwardMode::Fullnat;
        want.persistence_s = 300;
        want.on_backend_removal = RemovalPolicy::Reset;
        want.maglev_size = 251;
        want.laddrs = vec![ip("198.51.100.1"), ip("198.51.100.2")];
        let want = Request::ServiceAdd { service: want };
        assert_eq!(
            request("service add tcp 192.0.2.100:80 scheduler wrr mode fullnat persistence 300 removal reset maglev-size 251 laddr 198.51.100.1 laddr 198.51.100.2"),
            want
        );
        // Any order, aliases and upper case.
        assert_eq!(
            request("svc add TCP 192.0.2.100:80 laddr 198.51.100.1 removal reset sched WRR persistent 300 laddr 198.51.100.2 maglev-size 251 mode fullnat"),
            want
        );
        let mut tun = ServiceConfig::new(k);
        tun.mode = ForwardMode::Tun;
        tun.tunnel = Some(TunnelConfig { encap: Encapsulation::Gue, gue_port: 7000, too_big: TooBigPolicy::Icmp });
        assert_eq!(
            request("service add tcp 192.0.2.100:80 mode tun encap gue gue-port 7000"),
            Request::ServiceAdd { service: tun }
        );
        // Without tunnel keywords a tun service has no tunnel section: the defaults apply.
        let mut dr = ServiceConfig::new(k);
        dr.mode = ForwardMode::Dr;
        assert_eq!(request("service add tcp 192.0.2.100:80 mode DR"), Request::ServiceAdd { service: dr });
        let mut udp6 = ServiceConfig::new(key("udp [2001:db8::1]:53"));
        udp6.scheduler = SchedKind::Mh;
        assert_eq!(request("service add udp [2001:db8::1]:53 scheduler mh"), Request::ServiceAdd { service: udp6 });
    }

    #[test]
    fn service_set_and_del() {
        let k = key("tcp 192.0.2.100:80");
        assert_eq!(
            request("service set tcp 192.0.2.100:80 scheduler mh maglev-size 65537"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch { scheduler: Some(SchedKind::Mh), maglev_size: Some(65537), ..Default::default() }
            }
        );
        assert_eq!(
            request("service change tcp 192.0.2.100:80 persistence 0 removal drain mode nat"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch {
                    mode: Some(ForwardMode::Nat),
                    persistence_s: Some(0),
                    on_backend_removal: Some(RemovalPolicy::Drain),
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            request("service set tcp 192.0.2.100:80 too-big drop encap ipip"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch {
                    encap: Some(Encapsulation::Ipip),
                    too_big: Some(TooBigPolicy::Drop),
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            request("service set tcp 192.0.2.100:80 mode tun gue-port 6081"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch { mode: Some(ForwardMode::Tun), gue_port: Some(6081), ..Default::default() }
            }
        );
        for line in ["service del tcp 192.0.2.100:80", "service delete tcp 192.0.2.100:80"] {
            assert_eq!(request(line), Request::ServiceDel { key: k }, "{line}");
        }
    }

    #[test]
    fn service_errors() {
        let cases = [
            (
                "service add tcp 192.0.2.100 scheduler wrr",
                "fvs service add: '192.0.2.100' is not ADDR:PORT (e.g. 192.0.2.100:80)",
            ),
            (
                "service add tcp 2001:db8::1",
                "fvs service add: '2001:db8::1' is not ADDR:PORT (e.g. [2001:db8::1]:80)",
            ),
            (
                "service add tcp [2001:db8::1]",
                "fvs service add: '[2001:db8::1]' is not ADDR:PORT (e.g. [2001:db8::1]:80)",
            ),
            (
                "service add tcp 192.0.2.100:65536",
                "fvs service add: '192.0.2.100:65536' is not ADDR:PORT (the port must be 65535 or less)",
            ),
            (
                "service add tcp www:80",
                "fvs service add: 'www:80' is not ADDR:PORT (e.g. 192.0.2.100:80 or [2001:db8::1]:80)",
            ),
            (
                "service add sctp 192.0.2.100:80",
                "fvs service add: 'sctp' is not a protocol (tcp or udp)",
            ),
            (
                "service add 192.0.2.100:80",
                "fvs service add: missing the protocol before '192.0.2.100:80' (e.g. tcp 192.0.2.100:80)",
            ),
            (
                "service add",
                &format!("fvs service add: missing tcp|udp VIP:PORT (usage: {SERVICE_ADD_USAGE})"),
            ),
            (
                "service add udp",
                "fvs service add: missing VIP:PORT after 'udp' (e.g. udp 192.0.2.100:80)",
            ),
            (
                "service add tcp 192.0.2.100:80 scheduler",
                "fvs service add: 'scheduler' needs a scheduler (rr, wrr, lc, wlc, sh, mh, twos or fo)",
            ),
            (
                "service add tcp 192.0.2.100:80 scheduler fastest",
                "fvs service add: 'fastest' is not a scheduler (rr, wrr, lc, wlc, sh, mh, twos or fo)",
            ),
            (
                "service add tcp 192.0.2.100:80 mode dsr",
                "fvs service add: 'dsr' is not a forwarding mode (nat, fullnat, dr or tun)",
            ),
            (
                "service add tcp 192.0.2.100:80 mode",
                "fvs service add: 'mode' needs nat, fullnat, dr or tun",
            ),
            (
                "service add tcp 192.0.2.100:80 mode tun encap vxlan",
                "fvs service add: 'vxlan' is not an encapsulation (ipip or gue)",
            ),
            (
                "service add tcp 192.0.2.100:80 mode tun gue-port 70000",
                "fvs service add: '70000' is not a port number (after 'gue-port')",
            ),
            (
                "service add tcp 192.0.2.100:80 mode tun too-big fragment",
                "fvs service add: 'fragment' is not a too-big policy (icmp or drop)",
            ),
            (
                "service add tcp 192.0.2.100:80 mode tun gue",
                "fvs service add: unknown keyword 'gue' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port or too-big; did you mean 'encap gue'?)",
            ),
            (
                "service set tcp 192.0.2.100:80 drop",
                "fvs service set: unknown keyword 'drop' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port or too-big; did you mean 'too-big drop'?)",
            ),
            (
                "service add tcp 192.0.2.100:80 persistence 5m",
                "fvs service add: '5m' is not a number (after 'persistence')",
            ),
            (
                "service add tcp 192.0.2.100:80 persistence",
                "fvs service add: 'persistence' needs a number of seconds (0: off)",
            ),
            (
                "service add tcp 192.0.2.100:80 removal later",
                "fvs service add: 'later' is not a removal policy (drain or reset)",
            ),
            (
                "service add tcp 192.0.2.100:80 maglev-size big",
                "fvs service add: 'big' is not a number (after 'maglev-size')",
            ),
            (
                "service add tcp 192.0.2.100:80 mode fullnat laddr 198.51.100.300",
                "fvs service add: '198.51.100.300' is not an IP address (after 'laddr')",
            ),
            (
                "service add tcp 192.0.2.100:80 laddr",
                "fvs service add: 'laddr' needs an IP address",
            ),
            (
                "service add tcp 192.0.2.100:80 scheduler rr sched wrr",
                "fvs service add: 'scheduler' given twice",
            ),
            (
                "service add tcp 192.0.2.100:80 weight 2",
                "fvs service add: unknown keyword 'weight' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port or too-big)",
            ),
            (
                "service add tcp 192.0.2.100:80 wrr",
                "fvs service add: unknown keyword 'wrr' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port or too-big; did you mean 'scheduler wrr'?)",
            ),
            (
                "service add tcp 192.0.2.100:80 fullnat",
                "fvs service add: unknown keyword 'fullnat' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port or too-big; did you mean 'mode fullnat'?)",
            ),
            (
                "service set tcp 192.0.2.100:80",
                &format!("fvs service set: nothing to change; give scheduler, mode, persistence, removal, maglev-size, encap, gue-port or too-big (usage: {SERVICE_SET_USAGE})"),
            ),
            (
                "service set tcp 192.0.2.100:80 laddr 198.51.100.1",
                "fvs service set: unknown keyword 'laddr' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port or too-big; local addresses change with 'fvs laddr add|del')",
            ),
            (
                "service set tcp 192.0.2.100:80 reset",
                "fvs service set: unknown keyword 'reset' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port or too-big; did you mean 'removal reset'?)",
            ),
            (
                "service del tcp 192.0.2.100:80 now",
                "fvs service del: unexpected argument 'now'",
            ),
            (
                "service del",
                &format!("fvs service del: missing tcp|udp VIP:PORT (usage: {SERVICE_DEL_USAGE})"),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(usage_error(line), want, "{line}");
        }
    }

    #[test]
    fn backend_commands() {
        let service = key("tcp 192.0.2.100:80");
        let backend = |weight, state| Request::BackendAdd {
            service,
            backend: BackendConfig { addr: ip("198.51.100.11"), port: 8080, weight, state },
        };
        assert_eq!(request("backend add tcp 192.0.2.100:80 198.51.100.11:8080"), backend(1, BackendState::Active));
        assert_eq!(
            request("b add tcp 192.0.2.100:80 198.51.100.11:8080 state draining weight 0"),
            backend(0, BackendState::Draining)
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
                "fvs backend add: unknown keyword '3' (expected weight or state; did you mean 'weight 3'?)",
            ),
            (
                "backend add tcp 192.0.2.100:80 198.51.100.11:8080 draining",
                "fvs backend add: unknown keyword 'draining' (expected weight or state; did you mean 'state draining'?)",
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
            Err(super::super::ArgsError::Clap(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{other:?}"),
        }
    }

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

    #[test]
    fn help_documents_the_commands() {
        let help = |line: &str| match parse_args(std::iter::once("fvs").chain(line.split_whitespace())) {
            Err(super::super::ArgsError::Clap(e)) => {
                assert_eq!(e.exit_code(), 0, "{line}");
                e.render().to_string()
            }
            other => panic!("{line}: {other:?}"),
        };
        let top = help("--help");
        for want in [
            "service  ",
            "backend  ",
            "laddr  ",
            "conn  ",
            "fvs service add tcp 192.0.2.100:80 scheduler wrr",
            "fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight 2",
            "fvs conn list",
        ] {
            assert!(top.contains(want), "{want}\n{top}");
        }
        for want in [
            "snat  ",
            "fvs service add tcp 192.0.2.100:8080 mode dr",
            "fvs service add tcp 192.0.2.100:8443 mode tun encap gue gue-port 6080",
            "fvs snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50",
        ] {
            assert!(top.contains(want), "{want}\n{top}");
        }
        let add = help("service add --help");
        assert!(add.contains(SERVICE_ADD_USAGE), "{add}");
        assert!(add.contains("twos  best of two random"), "{add}");
        assert!(add.contains("arp_ignore=1, arp_announce=2"), "{add}");
        assert!(add.contains("tun      the packet goes to the backend inside IPIP"), "{add}");
        let snat_add = help("snat add --help");
        assert!(snat_add.contains(super::super::snat::SNAT_ADD_USAGE), "{snat_add}");
        assert!(help("snat --help").contains("the first whose source prefix holds"));
        assert!(help("backend del --help").contains(BACKEND_DEL_USAGE));
        assert!(help("laddr add --help").contains(LADDR_ADD_USAGE));
        assert!(help("conn list --help").contains(CONN_LIST_USAGE));
        assert!(help("service set --help").contains(SERVICE_SET_USAGE));
    }

    fn backend(addr: &str, weight: u32, state: BackendState, active: u64, inactive: u64) -> BackendInfo {
        let a = sock(addr);
        BackendInfo {
            addr: a.ip(),
            port: a.port(),
            weight,
            state,
            active_conns: active,
            inactive_conns: inactive,
            stats: None,
        }
    }

    fn services() -> Vec<ServiceInfo> {
        let traffic = |n: u64| TrafficStats {
            conns: n,
            in_packets: n * 10,
            out_packets: n * 8 + 1,
            in_bytes: n * 833 + 1,
            out_bytes: n * 1666 + 2,
        };
        let mut b11 = backend("198.51.100.11:8080", 1, BackendState::Active, 3, 0);
        b11.stats = Some(traffic(4));
        let mut b12 = backend("198.51.100.12:8080", 2, BackendState::Draining, 0, 1);
        b12.stats = Some(traffic(8));
        let web = ServiceInfo {
            protocol: Protocol::Tcp,
            vip: ip("192.0.2.100"),
            port: 80,
            scheduler: SchedKind::Wrr,
            mode: ForwardMode::Nat,
            persistence_s: 300,
            on_backend_removal: RemovalPolicy::Drain,
            maglev_size: 65537,
            laddrs: vec![],
            tunnel: None,
            // Out of order: the view sorts.
            backends: vec![b12, b11],
            stats: Some(TrafficStats {
                conns: 12,
                in_packets: 120,
                out_packets: 100,
                in_bytes: 10000,
                out_bytes: 20000,
            }),
        };
        let dns = ServiceInfo {
            protocol: Protocol::Udp,
            vip: ip("192.0.2.100"),
            port: 53,
            scheduler: SchedKind::Mh,
            mode: ForwardMode::Fullnat,
            persistence_s: 0,
            on_backend_removal: RemovalPolicy::Reset,
            maglev_size: 65537,
            laddrs: vec![ip("198.51.100.1"), ip("198.51.100.2")],
            tunnel: None,
            backends: vec![backend("198.51.100.21:53", 10, BackendState::Inhibited, 1234567, 0)],
            stats: Some(TrafficStats { conns: 123456789012, ..Default::default() }),
        };
        let empty = ServiceInfo {
            protocol: Protocol::Tcp,
            vip: ip("192.0.2.101"),
            port: 443,
            scheduler: SchedKind::Wlc,
            mode: ForwardMode::Nat,
            persistence_s: 0,
            on_backend_removal: RemovalPolicy::Drain,
            maglev_size: 65537,
            laddrs: vec![],
            tunnel: None,
            backends: vec![],
            stats: None,
        };
        vec![dns, empty, web]
    }

    #[test]
    fn services_formatted() {
        let want = "\
Prot LocalAddress:Port Scheduler Mode    Flags
  -> RemoteAddress:Port           Weight State     ActiveConn InActConn
TCP  192.0.2.100:80    wrr       nat     persistent 300
  -> 198.51.100.11:8080           1      active    3          0
  -> 198.51.100.12:8080           2      draining  0          1
TCP  192.0.2.101:443   wlc       nat
UDP  192.0.2.100:53    mh        fullnat reset maglev-size 65537 local 198.51.100.1,198.51.100.2
  -> 198.51.100.21:53             10     inhibited 1234567    0
";
        assert_eq!(format_services(&services()), want);
        assert_eq!(
            format_services(&[]),
            "Prot LocalAddress:Port Scheduler Mode    Flags\n  -> RemoteAddress:Port           Weight State     ActiveConn InActConn\n"
        );
        // Long addresses widen their column.
        let mut v6 = services().remove(1);
        v6.vip = ip("2001:db8:ffff::100");
        v6.backends = vec![backend("[2001:db8:ffff:ffff::11]:8080", 1, BackendState::Active, 0, 0)];
        let want = "\
Prot LocalAddress:Port        Scheduler Mode    Flags
  -> RemoteAddress:Port            Weight State     ActiveConn InActConn
TCP  [2001:db8:ffff::100]:443 wlc       nat
  -> [2001:db8:ffff:ffff::11]:8080 1      active    0          0
";
        assert_eq!(format_services(&[v6]), want);
    }

    #[test]
    fn service_stats_formatted() {
        // A wide number widens its column.
        let want = "\
Prot LocalAddress:Port                   Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.100:80                         12      120      100    10000    20000
  -> 198.51.100.11:8080                      4       40       33     3333     6666
  -> 198.51.100.12:8080                      8       80       65     6665    13330
TCP  192.0.2.101:443                         0        0        0        0        0
UDP  192.0.2.100:53               123456789012        0        0        0        0
  -> 198.51.100.21:53                        0        0        0        0        0
";
        assert_eq!(format_service_stats(&services()), want);
        let narrow = "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.100:80                     12      120      100    10000    20000
  -> 198.51.100.11:8080                  4       40       33     3333     6666
  -> 198.51.100.12:8080                  8       80       65     6665    13330
";
        assert_eq!(format_service_stats(&services()[2..]), narrow);
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
    fn dr_and_tun_services_formatted() {
        let mut dr = services().remove(1);
        dr.mode = ForwardMode::Dr;
        dr.backends = vec![backend("192.0.2.11:443", 1, BackendState::Active, 2, 0)];
        let mut tun = services().remove(2);
        tun.mode = ForwardMode::Tun;
        tun.tunnel = Some(TunnelConfig { encap: Encapsulation::Gue, gue_port: 6080, too_big: TooBigPolicy::Drop });
        tun.backends.truncate(1);
        let mut ipip = services().remove(1);
        ipip.port = 444;
        ipip.mode = ForwardMode::Tun;
        ipip.tunnel = Some(TunnelConfig::default());
        let want = "\
Prot LocalAddress:Port Scheduler Mode         Flags
  -> RemoteAddress:Port           Weight State     ActiveConn InActConn
TCP  192.0.2.100:80    wrr       tun/gue:6080 persistent 300 too-big drop
  -> 198.51.100.12:8080           2      draining  0          1
TCP  192.0.2.101:443   wlc       dr
  -> 192.0.2.11:443               1      active    2          0
TCP  192.0.2.101:444   wlc       tun/ipip
";
        assert_eq!(format_services(&[tun, dr, ipip]), want);
    }

    #[test]
    fn render_lb_views() {
        let show = Response::ok(&services()[2..].to_vec());
        let text = render(&Request::ServiceShow { stats: false }, show.clone(), false, false).unwrap();
        assert!(text.contains("\nTCP  192.0.2.100:80    wrr       nat     persistent 300\n"), "{text}");
        let text = render(&Request::ServiceShow { stats: true }, show.clone(), false, false).unwrap();
        assert!(text.starts_with("Prot LocalAddress:Port               Conns"), "{text}");
        let json = render(&Request::ServiceShow { stats: true }, show, true, false).unwrap();
        let back: Vec<ServiceInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, services()[2..].to_vec());
        assert!(json.contains("\n    \"scheduler\": \"wrr\",\n"), "{json}");

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

        // Changes print nothing, or null with --json; refusals are errors.
        let del = request("service del tcp 192.0.2.100:80");
        assert_eq!(render(&del, Response::ok(&()), false, false), Ok(String::new()));
        assert_eq!(render(&del, Response::ok(&()), true, false), Ok("null\n".into()));
        assert_eq!(
            render(&del, Response::err("no service tcp 192.0.2.100:80"), false, false),
            Err("no service tcp 192.0.2.100:80".into())
        );
        let inv = parse_args(["fvs", "-j", "conn", "list", "limit", "5"]).unwrap();
        assert!(matches!(inv, Invocation { json: true, command: Command::Send(Request::ConnList { .. }), .. }));
    }
}
