//! The one reader of the words after an `fvs` verb, and the parsers of the values more than one
//! object takes (addresses, prefixes, `ADDR:PORT`, `tcp|udp VIP:PORT`, connection states).
//! Every error starts with the command's name and quotes the word that was wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dataplane::net::Prefix;
use dataplane::sched::SchedKind;

use super::ArgsError;
use crate::config::lb::{BackendState, Encapsulation, ForwardMode, Protocol, RemovalPolicy, ServiceKey, TooBigPolicy};

/// The words after a verb, as clap hands them over: its usage line and help describe them.
#[derive(clap::Args, Debug)]
pub(super) struct VerbArgs {
    #[arg(value_name = "ARGS", hide = true)]
    pub(super) args: Vec<String>,
}

/// The words after the verb, read front to back.
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

    /// A usage error: `fvs route add: MESSAGE`.
    pub(super) fn error(&self, message: String) -> ArgsError {
        ArgsError::Usage(format!("{}: {message}", self.cmd))
    }

    /// The value after keyword `key`; `what` says what it should be.
    pub(super) fn value(&mut self, key: &str, what: &str) -> Result<&'a str, ArgsError> {
        self.next().ok_or_else(|| self.error(format!("'{key}' needs {what}")))
    }

    /// Fills `slot`, refusing a keyword given twice.
    pub(super) fn once<T>(&self, slot: &mut Option<T>, key: &str, value: T) -> Result<(), ArgsError> {
        self.not_given(slot, key)?;
        *slot = Some(value);
        Ok(())
    }

    /// Refuses keyword `key` when `slot` already holds its value.
    pub(super) fn not_given<T>(&self, slot: &Option<T>, key: &str) -> Result<(), ArgsError> {
        match slot {
            Some(_) => Err(self.error(format!("'{key}' given twice"))),
            None => Ok(()),
        }
    }

    /// Fills the one positional `slot` of an `ip`-style command, refusing a second word.
    pub(super) fn positional(&self, slot: &mut Option<&'a str>, word: &'a str) -> Result<(), ArgsError> {
        if slot.is_some() {
            return Err(self.error(format!("unexpected argument '{word}'")));
        }
        *slot = Some(word);
        Ok(())
    }

    /// The positional word, or `missing NAME`.
    pub(super) fn required(&self, slot: Option<&'a str>, name: &str) -> Result<&'a str, ArgsError> {
        slot.ok_or_else(|| self.error(format!("missing {name}")))
    }

    /// Refuses any word left.
    pub(super) fn end(&mut self) -> Result<(), ArgsError> {
        match self.next() {
            Some(word) => Err(self.error(format!("unexpected argument '{word}'"))),
            None => Ok(()),
        }
    }

    pub(super) fn number(&self, word: &str, key: &str) -> Result<u32, ArgsError> {
        word.parse().map_err(|_| self.error(format!("'{word}' is not a number (after '{key}')")))
    }

    pub(super) fn port(&self, word: &str, key: &str) -> Result<u16, ArgsError> {
        word.parse().map_err(|_| self.error(format!("'{word}' is not a port number (after '{key}')")))
    }

    /// `tcp|udp VIP:PORT`, the first two words; `line` is the usage shown when they are missing.
    pub(super) fn service_key(&mut self, line: &str) -> Result<ServiceKey, ArgsError> {
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
            ("pickup", lower == "on" || lower == "off"),
            ("state", lower.parse::<BackendState>().is_ok() || parse_conn_state(word).is_ok()),
            ("weight", keywords.contains(&"weight") && word.parse::<u32>().is_ok()),
            ("laddr", word.parse::<IpAddr>().is_ok()),
            ("address", word.parse::<IpAddr>().is_ok()),
            ("source", word.contains('/') && word.parse::<Prefix>().is_ok()),
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

pub(super) fn parse_ip(word: &str, after: &str) -> Result<IpAddr, String> {
    word.parse().map_err(|_| format!("'{word}' is not an IP address (after '{after}')"))
}

pub(super) fn parse_prefix(word: &str) -> Result<Prefix, String> {
    word.parse().map_err(|e| format!("'{word}' is not a prefix ({e})"))
}

/// A prefix, or `default`: 0.0.0.0/0, or ::/0 when the next hop is IPv6.
pub(super) fn parse_prefix_or_default(word: &str, via: Option<IpAddr>) -> Result<Prefix, String> {
    if word != "default" {
        return parse_prefix(word);
    }
    let any = match via {
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Prefix::new(any, 0)
}

/// `192.0.2.100:80` or `[2001:db8::1]:80`.
pub(super) fn parse_socket(word: &str) -> Result<SocketAddr, String> {
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

fn parse_protocol(word: &str) -> Result<Protocol, String> {
    word.to_ascii_lowercase().parse().map_err(|_| {
        if word.parse::<SocketAddr>().is_ok() {
            format!("missing the protocol before '{word}' (e.g. tcp {word})")
        } else {
            format!("'{word}' is not a protocol (tcp or udp)")
        }
    })
}

/// `tcp|udp VIP:PORT` as two words already read.
pub(super) fn service_key(proto: &str, addr: &str) -> Result<ServiceKey, String> {
    let protocol = parse_protocol(proto)?;
    let vip = parse_socket(addr)?;
    Ok(ServiceKey { protocol, vip: vip.ip(), port: vip.port() })
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

/// Any case, `-` for `_`: `established`, `syn-recv`.
pub(super) fn parse_conn_state(word: &str) -> Result<String, String> {
    let state = word.to_ascii_uppercase().replace('-', "_");
    if CONN_STATES.contains(&state.as_str()) {
        Ok(state)
    } else {
        Err(format!("'{word}' is not a connection state ({})", or_list(&CONN_STATES)))
    }
}
