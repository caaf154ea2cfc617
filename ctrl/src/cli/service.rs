//! `fvs service`: the virtual services, like `ipvsadm -A/-E/-D` and `-Ln`, with `ip`-style
//! keywords: `fvs service add tcp 192.0.2.100:80 scheduler wrr`. A service is named by its
//! first two words, `tcp|udp VIP:PORT`; keywords and their values follow in any order.

use std::net::{IpAddr, SocketAddr};

use clap::Subcommand;
use dataplane::sched::SchedKind;

use super::table::{cells, table, Layout};
use super::words::{or_list, parse_ip, VerbArgs, Words};
use super::ArgsError;
use crate::config::lb::{
    ClientAddressMode, Encapsulation, ForwardMode, RemovalPolicy, ServiceConfig, SynProxyMode, TooBigPolicy,
    TunnelConfig,
};
use crate::proto::{Request, ServiceInfo, ServicePatch, TrafficStats};

pub(super) const SERVICE_ADD_USAGE: &str = "fvs service add tcp|udp VIP:PORT [scheduler S] [mode nat|fullnat|dr|tun|nat64] [persistence SECONDS] [removal drain|reset] [maglev-size N] [laddr ADDR]... [encap ipip|gue] [gue-port N] [too-big icmp|drop] [pickup on|off] [syn-proxy on|off|auto] [client-address proxy-v2|proxy-v1|toa|off]";
pub(super) const SERVICE_SET_USAGE: &str = "fvs service set tcp|udp VIP:PORT [scheduler S] [mode nat|fullnat|dr|tun|nat64] [persistence SECONDS] [removal drain|reset] [maglev-size N] [encap ipip|gue] [gue-port N] [too-big icmp|drop] [pickup on|off] [syn-proxy on|off|auto] [client-address proxy-v2|proxy-v1|toa|off]";
pub(super) const SERVICE_DEL_USAGE: &str = "fvs service del tcp|udp VIP:PORT";

pub(super) const SERVICE_ADD_HELP: &str = concat!(
    "\
Examples:
  fvs service add tcp 192.0.2.100:80
  fvs service add tcp 192.0.2.100:80 scheduler wrr persistence 300 removal reset
  fvs service add udp 192.0.2.100:53 scheduler mh maglev-size 65537
  fvs service add tcp 192.0.2.100:443 mode fullnat laddr 198.51.100.1 laddr 198.51.100.2
  fvs service add tcp 192.0.2.100:8080 mode dr
  fvs service add tcp 192.0.2.100:8443 mode tun encap gue gue-port 6080 too-big icmp
  fvs service add tcp 192.0.2.100:80 mode dr scheduler mh pickup on
  fvs service add tcp [2001:db8:1::100]:80 mode nat64 laddr 198.51.100.200
  fvs service set tcp 192.0.2.100:80 syn-proxy on
  fvs service add tcp 192.0.2.100:443 mode fullnat laddr 198.51.100.1 client-address proxy-v2

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
           drop drops it
  nat64    an IPv6 VIP to IPv4 backends: fullnat from IPv4 local addresses (laddr, one at
           least), each packet translated between IPv6 and IPv4 (RFC 7915), ICMP errors
           included; the backends see the local address. The only mode whose backends are
           of another family than the VIP

",
    "\
Pickup (tcp in dr or tun mode; on by default with scheduler mh, off otherwise):
  pickup on   a packet other than a SYN with no connection entry opens one, for the backend
              the scheduler picks: with mh every balancer of an ECMP group picks the same, so
              a connection the routers move here from another balancer goes on
  pickup off  such a packet is dropped (counted as no_connection)

",
    "\
SYN proxy (tcp in nat or fullnat mode; off by default):
  syn-proxy on   ferrovs answers SYNs itself with a SYN cookie and keeps nothing; a client
                 that completes the handshake gets a connection and a backend (a SYN flood
                 from spoofed sources never reaches the table or the backends)
  syn-proxy auto like on while a worker core is under a SYN flood (connections.syn_proxy_auto
                 in the config: half-open connections or SYNs a second on the core), off
                 otherwise; the syn_proxy_auto_engaged counter says how many cores are on
  syn-proxy off  SYNs go to a backend as they come

",
    "\
Client address (tcp in fullnat and nat64 modes, where backends see only ferrovs's local address; off by default):
  client-address proxy-v2  each connection to a backend starts with a PROXY protocol v2
                           header naming the client and the VIP (nginx: listen ... proxy_protocol;
                           haproxy: accept-proxy); sequence numbers are shifted to match
  client-address proxy-v1  the same with the PROXY protocol v1 text line
  client-address toa       the TOA TCP option (kind 254: client port and address) on the
                           connection's first segments, for backends with the TOA kernel module
  client-address off       nothing added"
);

/// The scheduler names, in the words of the errors: `rr, wrr, ... or fo`.
fn schedulers() -> String {
    let names: Vec<&str> = SchedKind::ALL.iter().map(|k| k.as_str()).collect();
    or_list(&names)
}

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
    Add(VerbArgs),
    /// Change attributes of a service; the others stay.
    #[command(
        visible_alias = "change",
        override_usage = SERVICE_SET_USAGE,
        after_help = concat!(
            "Examples:\n  fvs service set tcp 192.0.2.100:80 scheduler mh\n  fvs service set tcp 192.0.2.100:80 persistence 0 removal drain\n  fvs service set tcp 192.0.2.100:8443 mode tun encap gue\n\n",
            "Schedulers: rr, wrr, lc, wlc, sh, mh, twos, fo; modes: nat, fullnat, dr, tun, nat64 (see fvs service add --help).\n",
            "Leaving tun mode drops the service's tunnel settings."
        )
    )]
    Set(VerbArgs),
    /// Delete a service with its backends; its connections are dropped.
    #[command(
        visible_alias = "delete",
        override_usage = SERVICE_DEL_USAGE,
        after_help = "Example:\n  fvs service del tcp 192.0.2.100:80"
    )]
    Del(VerbArgs),
}

/// `fvs service ...`; `stats` is the global `-s`.
pub(super) fn service_request(verb: Option<ServiceVerb>, stats: bool) -> Result<Request, ArgsError> {
    match verb {
        None | Some(ServiceVerb::Show) => Ok(Request::ServiceShow { stats }),
        Some(ServiceVerb::Add(VerbArgs { args })) => {
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
                pickup,
                syn_proxy,
                client_address,
            } = patch;
            service.scheduler = scheduler.unwrap_or(service.scheduler);
            service.mode = mode.unwrap_or(service.mode);
            service.persistence_s = persistence_s.unwrap_or(service.persistence_s);
            service.on_backend_removal = on_backend_removal.unwrap_or(service.on_backend_removal);
            service.maglev_size = maglev_size.unwrap_or(service.maglev_size);
            service.laddrs = laddrs;
            service.pickup = pickup;
            service.syn_proxy = syn_proxy.unwrap_or_default();
            service.client_address = client_address.unwrap_or_default();
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
        Some(ServiceVerb::Set(VerbArgs { args })) => {
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
        Some(ServiceVerb::Del(VerbArgs { args })) => {
            let mut w = Words::new("fvs service del", &args);
            let key = w.service_key(SERVICE_DEL_USAGE)?;
            w.end()?;
            Ok(Request::ServiceDel { key })
        }
    }
}

const SERVICE_ADD_KEYWORDS: &[&str] = &[
    "scheduler",
    "mode",
    "persistence",
    "removal",
    "maglev-size",
    "laddr",
    "encap",
    "gue-port",
    "too-big",
    "pickup",
    "syn-proxy",
    "client-address",
];
const SERVICE_SET_KEYWORDS: &[&str] = &[
    "scheduler",
    "mode",
    "persistence",
    "removal",
    "maglev-size",
    "encap",
    "gue-port",
    "too-big",
    "pickup",
    "syn-proxy",
    "client-address",
];

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
                let v = w.value("mode", "nat, fullnat, dr, tun or nat64")?;
                let m = v.to_ascii_lowercase().parse::<ForwardMode>();
                let m =
                    m.map_err(|_| w.error(format!("'{v}' is not a forwarding mode (nat, fullnat, dr, tun or nat64)")))?;
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
            "pickup" => {
                let v = w.value("pickup", "on or off")?;
                let on = match v.to_ascii_lowercase().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(w.error(format!("'{v}' is not a pickup setting (on or off)"))),
                };
                w.once(&mut p.pickup, "pickup", on)?;
            }
            "client-address" => {
                let v = w.value("client-address", "proxy-v2, proxy-v1, toa or off")?;
                let mode = v.to_ascii_lowercase().parse::<ClientAddressMode>().map_err(|m| w.error(m))?;
                w.once(&mut p.client_address, "client-address", mode)?;
            }
            "syn-proxy" => {
                let v = w.value("syn-proxy", "on, off or auto")?;
                let mode = match v.to_ascii_lowercase().as_str() {
                    "on" => SynProxyMode::On,
                    "off" => SynProxyMode::Off,
                    "auto" => SynProxyMode::Auto,
                    _ => return Err(w.error(format!("'{v}' is not a syn-proxy setting (on, off or auto)"))),
                };
                w.once(&mut p.syn_proxy, "syn-proxy", mode)?;
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

fn parse_scheduler(word: &str) -> Result<SchedKind, String> {
    word.to_ascii_lowercase().parse().map_err(|_| format!("'{word}' is not a scheduler ({})", schedulers()))
}

fn parse_removal(word: &str) -> Result<RemovalPolicy, String> {
    word.to_ascii_lowercase().parse().map_err(|_| format!("'{word}' is not a removal policy (drain or reset)"))
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
    // The health column only where a check watches some backend (it reads like ipvsadm else).
    let checked = services.iter().any(|s| s.backends.iter().any(|b| b.health.is_some()));
    if checked {
        backend_rows[0].push("Health".to_string());
    }
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
        if s.pickup {
            flags.push("pickup".to_string());
        }
        if let Some(h) = &s.health_policy {
            flags.push(h.clone());
        }
        match s.syn_proxy {
            SynProxyMode::Off => {}
            SynProxyMode::On => flags.push("syn-proxy".to_string()),
            SynProxyMode::Auto => flags.push("syn-proxy-auto".to_string()),
        }
        if !s.client_address.is_off() {
            flags.push(format!("client-address {}", s.client_address.as_str().replace('_', "-")));
        }
        service_rows.push(vec![
            s.protocol.as_str().to_ascii_uppercase(),
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
            if checked {
                backend_rows.last_mut().expect("just pushed").push(super::backend::health_text(b.health.as_ref()));
            }
        }
    }
    let sl = Layout::new(&[4, 17, 9, 7], usize::MAX, " ", &service_rows);
    let bl = if checked {
        Layout::new(&[4, 28, 6, 9, 10, 9], usize::MAX, " ", &backend_rows)
    } else {
        Layout::new(&[4, 28, 6, 9, 10], usize::MAX, " ", &backend_rows)
    };
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
    let numbers = |st: Option<TrafficStats>| {
        let st = st.unwrap_or_default();
        [st.conns, st.in_packets, st.out_packets, st.in_bytes, st.out_bytes].map(|n| n.to_string())
    };
    let mut rows = vec![
        cells(["Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]),
        cells(["  -> RemoteAddress:Port"]),
    ];
    for s in sorted(services) {
        let mut row =
            vec![format!("{:<4} {}", s.protocol.as_str().to_ascii_uppercase(), SocketAddr::new(s.vip, s.port))];
        row.extend(numbers(s.stats));
        rows.push(row);
        for b in &s.backends {
            let mut row = vec![format!("  -> {}", SocketAddr::new(b.addr, b.port))];
            row.extend(numbers(b.stats));
            rows.push(row);
        }
    }
    table(&rows, &[33, 8, 8, 8, 8, 8], 1, " ") + &format_handshakes(services)
}

/// `250us`, `2.5ms`, `1s`.
fn duration_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}us"),
        1_000..1_000_000 if us.is_multiple_of(1_000) => format!("{}ms", us / 1_000),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{}s", us as f64 / 1e6),
    }
}

/// The handshake latency of each backend with samples (NAT and FullNAT TCP): count, mean,
/// the bucket bounds of the median, 90th and 99th percentiles, and the non-empty buckets.
fn format_handshakes(services: &[ServiceInfo]) -> String {
    let mut out = String::new();
    for s in sorted(services) {
        for b in &s.backends {
            let Some(h) = b.handshake.as_ref().filter(|h| h.count > 0) else { continue };
            if out.is_empty() {
                out.push_str("\nHandshake latency (SYN forwarded to SYN-ACK seen):\n");
            }
            let q = |q: f64| h.quantile_bound_us(q).map_or("> 1s".to_string(), |us| format!("<= {}", duration_us(us)));
            out.push_str(&format!(
                "{:<4} {} -> {}  count {}  mean {}  p50 {}  p90 {}  p99 {}\n",
                s.protocol.as_str().to_ascii_uppercase(),
                SocketAddr::new(s.vip, s.port),
                SocketAddr::new(b.addr, b.port),
                h.count,
                duration_us(h.sum_us / h.count),
                q(0.5),
                q(0.9),
                q(0.99),
            ));
            let buckets: Vec<String> = h
                .buckets
                .iter()
                .filter(|k| k.count > 0)
                .map(|k| match k.le_us {
                    Some(us) => format!("<={} {}", duration_us(us), k.count),
                    None => format!(">1s {}", k.count),
                })
                .collect();
            out.push_str(&format!("     {}\n", buckets.join("  ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render;
    use crate::cli::tests::{ip, key, request, sock, usage_error};
    use crate::config::lb::{BackendState, Protocol};
    use crate::proto::{BackendInfo, Response};

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
            request("service set tcp 192.0.2.100:80 pickup OFF"),
            Request::ServiceSet { key: k, set: ServicePatch { pickup: Some(false), ..Default::default() } }
        );
        assert_eq!(
            request("service set tcp 192.0.2.100:80 syn-proxy on"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch { syn_proxy: Some(SynProxyMode::On), ..Default::default() }
            }
        );
        for (word, mode) in [
            ("proxy-v2", ClientAddressMode::ProxyV2),
            ("proxy_v1", ClientAddressMode::ProxyV1),
            ("TOA", ClientAddressMode::Toa),
            ("off", ClientAddressMode::Off),
        ] {
            assert_eq!(
                request(&format!("service set tcp 192.0.2.100:80 client-address {word}")),
                Request::ServiceSet { key: k, set: ServicePatch { client_address: Some(mode), ..Default::default() } }
            );
        }
        let mut with_header = ServiceConfig::new(k);
        with_header.mode = ForwardMode::Fullnat;
        with_header.client_address = ClientAddressMode::ProxyV2;
        assert_eq!(
            request("service add tcp 192.0.2.100:80 mode fullnat client-address proxy-v2"),
            Request::ServiceAdd { service: with_header }
        );
        assert_eq!(
            usage_error("service set tcp 192.0.2.100:80 client-address proxy-v3"),
            "fvs service set: 'proxy-v3' is not a client address mode (proxy_v2, proxy_v1, toa or off)"
        );
        let mut proxied = ServiceConfig::new(k);
        proxied.syn_proxy = SynProxyMode::On;
        assert_eq!(request("service add tcp 192.0.2.100:80 syn-proxy ON"), Request::ServiceAdd { service: proxied });
        assert_eq!(
            request("service set tcp 192.0.2.100:80 syn-proxy auto"),
            Request::ServiceSet {
                key: k,
                set: ServicePatch { syn_proxy: Some(SynProxyMode::Auto), ..Default::default() }
            }
        );
        assert_eq!(
            usage_error("service set tcp 192.0.2.100:80 syn-proxy sometimes"),
            "fvs service set: 'sometimes' is not a syn-proxy setting (on, off or auto)"
        );
        let mut dr = ServiceConfig::new(k);
        (dr.mode, dr.scheduler, dr.pickup) = (ForwardMode::Dr, SchedKind::Mh, Some(true));
        assert_eq!(
            request("service add tcp 192.0.2.100:80 mode dr scheduler mh pickup on"),
            Request::ServiceAdd { service: dr }
        );
        assert_eq!(
            usage_error("service set tcp 192.0.2.100:80 pickup yes"),
            "fvs service set: 'yes' is not a pickup setting (on or off)"
        );
        assert_eq!(
            usage_error("service set tcp 192.0.2.100:80 off"),
            "fvs service set: unknown keyword 'off' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'pickup off'?)"
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
                "fvs service add: 'dsr' is not a forwarding mode (nat, fullnat, dr, tun or nat64)",
            ),
            (
                "service add tcp 192.0.2.100:80 mode",
                "fvs service add: 'mode' needs nat, fullnat, dr, tun or nat64",
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
                "fvs service add: unknown keyword 'gue' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'encap gue'?)",
            ),
            (
                "service set tcp 192.0.2.100:80 drop",
                "fvs service set: unknown keyword 'drop' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'too-big drop'?)",
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
                "fvs service add: unknown keyword 'weight' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port, too-big, pickup, syn-proxy or client-address)",
            ),
            (
                "service add tcp 192.0.2.100:80 wrr",
                "fvs service add: unknown keyword 'wrr' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'scheduler wrr'?)",
            ),
            (
                "service add tcp 192.0.2.100:80 fullnat",
                "fvs service add: unknown keyword 'fullnat' (expected scheduler, mode, persistence, removal, maglev-size, laddr, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'mode fullnat'?)",
            ),
            (
                "service set tcp 192.0.2.100:80",
                &format!("fvs service set: nothing to change; give scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address (usage: {SERVICE_SET_USAGE})"),
            ),
            (
                "service set tcp 192.0.2.100:80 laddr 198.51.100.1",
                "fvs service set: unknown keyword 'laddr' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address; local addresses change with 'fvs laddr add|del')",
            ),
            (
                "service set tcp 192.0.2.100:80 reset",
                "fvs service set: unknown keyword 'reset' (expected scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address; did you mean 'removal reset'?)",
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
            handshake: None,
            health: None,
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
            pickup: false,
            syn_proxy: SynProxyMode::Off,
            client_address: Default::default(),
            // Out of order: the view sorts.
            backends: vec![b12, b11],
            health_policy: None,
            health: None,
            passive: None,
            on_backend_down: Default::default(),
            all_down: Default::default(),
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
            pickup: false,
            syn_proxy: SynProxyMode::Off,
            client_address: Default::default(),
            backends: vec![backend("198.51.100.21:53", 10, BackendState::Inhibited, 1234567, 0)],
            health_policy: None,
            health: None,
            passive: None,
            on_backend_down: Default::default(),
            all_down: Default::default(),
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
            pickup: false,
            syn_proxy: SynProxyMode::Off,
            client_address: Default::default(),
            backends: vec![],
            health_policy: None,
            health: None,
            passive: None,
            on_backend_down: Default::default(),
            all_down: Default::default(),
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
    fn handshake_latency_formatted() {
        use crate::proto::{HandshakeBucket, HandshakeStats};
        let mut list = services()[2..].to_vec();
        let counts = [(Some(100), 2), (Some(250), 7), (Some(2_500), 1), (None, 0)];
        list[0].backends[1].handshake = Some(HandshakeStats {
            count: 10,
            sum_us: 3_100,
            buckets: counts.iter().map(|&(le_us, count)| HandshakeBucket { le_us, count }).collect(),
        });
        let text = format_service_stats(&list);
        let want = "
Handshake latency (SYN forwarded to SYN-ACK seen):
TCP  192.0.2.100:80 -> 198.51.100.11:8080  count 10  mean 310us  p50 <= 250us  p90 <= 250us  p99 <= 2.5ms
     <=100us 2  <=250us 7  <=2.5ms 1
";
        assert!(text.ends_with(want), "{text}");
    }

    #[test]
    fn dr_and_tun_services_formatted() {
        let mut dr = services().remove(1);
        dr.mode = ForwardMode::Dr;
        dr.scheduler = SchedKind::Mh;
        dr.pickup = true;
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
TCP  192.0.2.101:443   mh        dr           maglev-size 65537 pickup
  -> 192.0.2.11:443               1      active    2          0
TCP  192.0.2.101:444   wlc       tun/ipip
";
        assert_eq!(format_services(&[tun, dr, ipip]), want);
    }

    #[test]
    fn render_service_views() {
        let show = Response::ok(&services()[2..].to_vec());
        let text = render(&Request::ServiceShow { stats: false }, show.clone(), false, false).unwrap();
        assert!(text.contains("\nTCP  192.0.2.100:80    wrr       nat     persistent 300\n"), "{text}");
        let text = render(&Request::ServiceShow { stats: true }, show.clone(), false, false).unwrap();
        assert!(text.starts_with("Prot LocalAddress:Port               Conns"), "{text}");
        let json = render(&Request::ServiceShow { stats: true }, show, true, false).unwrap();
        let back: Vec<ServiceInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, services()[2..].to_vec());
        assert!(json.contains("\n    \"scheduler\": \"wrr\",\n"), "{json}");
        // Changes print nothing, or null with --json; refusals are errors.
        let del = request("service del tcp 192.0.2.100:80");
        assert_eq!(render(&del, Response::ok(&()), false, false), Ok(String::new()));
        assert_eq!(render(&del, Response::ok(&()), true, false), Ok("null\n".into()));
        assert_eq!(
            render(&del, Response::err("no service tcp 192.0.2.100:80"), false, false),
            Err("no service tcp 192.0.2.100:80".into())
        );
    }
}
