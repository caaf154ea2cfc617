//! `fvs`, the ferrovs command line: a thin `ip`-style client of the admin API.
//!
//! clap handles the global options and the object/verb structure; the `ip`-style keyword
//! tails (`dev PORT`, `via ADDR`) are parsed here so their errors can read like `ip`'s.
//! Output formatting is in plain functions from response data to `String`. The
//! load-balancing objects (service, backend, laddr, conn) are in the `lb` submodule, the
//! SNAT rules in `snat`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dataplane::net::Prefix;

use crate::client;
use crate::config::{RouteConfig, DEFAULT_SOCKET};
use crate::proto::{
    AddrInfo, ApplyResult, ConfigStats, ConnList, LaddrInfo, LinkInfo, NeighInfo, PortStats, Request, Response,
    RouteInfo, ServiceInfo, SnatInfo, StatsInfo,
};

mod lb;
mod snat;

const EXAMPLES: &str = "\
Examples:
  fvs link show                      ports, their driver, queues, reply steering and link state
  fvs -s link                        the same with packet counters
  fvs addr add 192.0.2.1/24 dev dp0
  fvs route add 203.0.113.0/24 via 192.0.2.2
  fvs route show
  fvs neigh show
  fvs stats                          counters per core; delay of config changes to all workers
  fvs apply -f /etc/ferrovs/ferrovs.yaml
  fvs -j route show                  JSON for scripts

Load balancing (like ipvsadm):
  fvs service show                   services and their backends (ipvsadm -Ln)
  fvs service show --stats           their connections, packets and bytes
  fvs service add tcp 192.0.2.100:80 scheduler wrr persistence 300
  fvs service add tcp 192.0.2.100:443 mode fullnat laddr 198.51.100.1
  fvs service add tcp 192.0.2.100:8080 mode dr
  fvs service add tcp 192.0.2.100:8443 mode tun encap gue gue-port 6080
  fvs service set tcp 192.0.2.100:80 scheduler mh
  fvs service del tcp 192.0.2.100:80
  fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight 2
  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 state draining
  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080 reset
  fvs laddr show                     FullNAT local addresses and their ports in use
  fvs laddr add tcp 192.0.2.100:443 198.51.100.2
  fvs laddr del tcp 192.0.2.100:443 198.51.100.2
  fvs conn list                      connections (ipvsadm -Lnc)
  fvs conn list service tcp 192.0.2.100:80 state established limit 20

Source NAT for outbound connections (rules tried in order, first match wins):
  fvs snat show                      rules and their addresses' ports in use
  fvs snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50
  fvs snat del source 198.51.100.0/24 out-port dp0";

/// Control a running ferrovs load balancer (like `ip` and `ipvsadm` control Linux).
#[derive(Parser, Debug)]
#[command(name = "fvs", version, after_help = EXAMPLES)]
struct Cli {
    /// The ferrovs admin socket (api.socket in the config).
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// Show statistics: port counters (link show), traffic per service and backend (service show).
    #[arg(short = 's', long = "stats", global = true)]
    stats: bool,
    #[command(subcommand)]
    object: Object,
}

#[derive(Subcommand, Debug)]
enum Object {
    /// Show the DPDK ports.
    #[command(
        aliases = ["l", "li", "lin"],
        after_help = "Examples:\n  fvs link show\n  fvs link show -s       with RX/TX counters"
    )]
    Link {
        #[command(subcommand)]
        verb: Option<ShowVerb>,
    },
    /// Show, add or delete the addresses of ports.
    #[command(
        visible_alias = "address",
        aliases = ["a", "ad"],
        after_help = "Examples:\n  fvs addr show\n  fvs addr add 192.0.2.1/24 dev dp0\n  fvs addr del 192.0.2.1/24 dev dp0"
    )]
    Addr {
        #[command(subcommand)]
        verb: Option<AddrVerb>,
    },
    /// Show, add or delete static routes (connected routes come from addresses).
    #[command(
        aliases = ["r", "ro", "rou", "rout"],
        after_help = "Examples:\n  fvs route show\n  fvs route add 203.0.113.0/24 via 192.0.2.2\n  fvs route add default via 192.0.2.254 dev dp0\n  fvs route add 198.51.100.0/24 dev dp1\n  fvs route del 203.0.113.0/24"
    )]
    Route {
        #[command(subcommand)]
        verb: Option<RouteVerb>,
    },
    /// Show the neighbour (ARP/NDP) tables of every worker core.
    #[command(
        visible_aliases = ["neighbour", "neighbor"],
        aliases = ["n", "ne", "nei"],
        after_help = "Example:\n  fvs neigh show"
    )]
    Neigh {
        #[command(subcommand)]
        verb: Option<ShowVerb>,
    },
    /// Show the per-core packet counters and their totals, and how fast config changes
    /// reach every worker.
    #[command(
        alias = "stat",
        after_help = "Examples:\n  fvs stats\n  fvs stats --all        include counters that are zero\n  fvs -j stats           JSON; the config delays in exact microseconds\n\n\
The config section counts the config snapshots published (one per accepted change) and the\n\
delay from publishing one until every worker uses it: last, max, mean and a histogram.\n\
Timed out ones are counted apart; a worker that stops polling would cause them."
    )]
    Stats {
        /// Also show counters that are zero.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Show, add, change or delete virtual services (ipvsadm -L, -A, -E, -D).
    #[command(
        aliases = ["se", "ser", "serv", "svc", "services"],
        after_help = "Examples:\n  fvs service show\n  fvs service show --stats\n  fvs service add tcp 192.0.2.100:80 scheduler wrr persistence 300\n  fvs service add tcp 192.0.2.100:8080 mode dr\n  fvs service add tcp 192.0.2.100:8443 mode tun encap gue\n  fvs service set tcp 192.0.2.100:80 scheduler mh\n  fvs service del tcp 192.0.2.100:80"
    )]
    Service {
        #[command(subcommand)]
        verb: Option<lb::ServiceVerb>,
    },
    /// Add, change or remove the backends (real servers) of a service (ipvsadm -a, -e, -d).
    #[command(
        aliases = ["b", "ba", "back", "backends"],
        after_help = "Examples:\n  fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight 2\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 state draining\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080 reset\n\nfvs service show lists the backends."
    )]
    Backend {
        #[command(subcommand)]
        verb: lb::BackendVerb,
    },
    /// Show, add or remove the local addresses of fullnat services.
    #[command(
        aliases = ["la", "lad", "ladd", "laddrs"],
        after_help = "Examples:\n  fvs laddr show\n  fvs laddr add tcp 192.0.2.100:443 198.51.100.2\n  fvs laddr del tcp 192.0.2.100:443 198.51.100.2"
    )]
    Laddr {
        #[command(subcommand)]
        verb: Option<lb::LaddrVerb>,
    },
    /// List the tracked connections (ipvsadm -Lnc).
    #[command(
        aliases = ["c", "co", "con", "conns", "connection", "connections"],
        after_help = "Examples:\n  fvs conn list\n  fvs conn list service tcp 192.0.2.100:80 state established limit 20"
    )]
    Conn {
        #[command(subcommand)]
        verb: Option<lb::ConnVerb>,
    },
    /// Show, add or delete source-NAT rules for outbound connections.
    #[command(
        aliases = ["sn", "sna"],
        after_help = "Examples:\n  fvs snat show\n  fvs snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50\n  fvs snat del source 198.51.100.0/24 out-port dp0\n\nRules are tried in order: the first whose source prefix holds the connection's source\naddress and whose out-port it leaves by wins. snat add appends."
    )]
    Snat {
        #[command(subcommand)]
        verb: Option<snat::SnatVerb>,
    },
    /// Apply a config file as one transaction: all of it or nothing.
    #[command(after_help = "Example:\n  fvs apply -f /etc/ferrovs/ferrovs.yaml")]
    Apply {
        /// The YAML config file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ShowVerb {
    /// Show them (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
}

#[derive(Subcommand, Debug)]
enum AddrVerb {
    /// Show the addresses of all ports (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add an address to a port.
    #[command(
        override_usage = "fvs addr add PREFIX dev PORT",
        after_help = "Example:\n  fvs addr add 192.0.2.1/24 dev dp0"
    )]
    Add {
        #[arg(value_name = "PREFIX dev PORT", hide = true)]
        args: Vec<String>,
    },
    /// Remove an address from a port.
    #[command(
        visible_alias = "delete",
        override_usage = "fvs addr del PREFIX dev PORT",
        after_help = "Example:\n  fvs addr del 192.0.2.1/24 dev dp0"
    )]
    Del {
        #[arg(value_name = "PREFIX dev PORT", hide = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RouteVerb {
    /// Show the routing table: connected and static routes (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
    /// Add a static route. Without `dev`, the port is the one whose network holds the `via`
    /// address. PREFIX may be `default`.
    #[command(
        override_usage = "fvs route add PREFIX [via ADDR] [dev PORT]",
        after_help = "Examples:\n  fvs route add 203.0.113.0/24 via 192.0.2.2\n  fvs route add default via 192.0.2.254 dev dp0\n  fvs route add 198.51.100.0/24 dev dp1"
    )]
    Add {
        #[arg(value_name = "PREFIX [via ADDR] [dev PORT]", hide = true)]
        args: Vec<String>,
    },
    /// Delete a static route.
    #[command(
        visible_alias = "delete",
        override_usage = "fvs route del PREFIX",
        after_help = "Example:\n  fvs route del 203.0.113.0/24"
    )]
    Del {
        #[arg(value_name = "PREFIX", hide = true)]
        args: Vec<String>,
    },
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub socket: PathBuf,
    pub json: bool,
    /// `fvs stats --all`: keep zero counters.
    pub all: bool,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Send(Request),
    /// `apply -f FILE`: the file is read when the command runs.
    ApplyFile(PathBuf),
}

/// Why a command line was refused. Both kinds exit with status 2, like clap.
#[derive(Debug)]
pub enum ArgsError {
    /// From clap; also `--help` and `--version`, which are not errors (exit 0, stdout).
    Clap(clap::Error),
    /// From a keyword tail, e.g. `fvs route add: 'via' needs an address`.
    Usage(String),
}

pub const USAGE_EXIT: i32 = 2;

/// Parses `fvs` arguments, the first being the program name.
pub fn parse_args<I, T>(args: I) -> Result<Invocation, ArgsError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(ArgsError::Clap)?;
    let (command, all) = match cli.object {
        Object::Link { .. } => (Command::Send(Request::LinkShow { stats: cli.stats }), false),
        Object::Addr { verb } => (Command::Send(addr_request(verb)?), false),
        Object::Route { verb } => (Command::Send(route_request(verb)?), false),
        Object::Neigh { .. } => (Command::Send(Request::NeighShow), false),
        Object::Stats { all } => (Command::Send(Request::Stats), all),
        Object::Service { verb } => (Command::Send(lb::service_request(verb, cli.stats)?), false),
        Object::Backend { verb } => (Command::Send(lb::backend_request(verb)?), false),
        Object::Laddr { verb } => (Command::Send(lb::laddr_request(verb)?), false),
        Object::Conn { verb } => (Command::Send(lb::conn_request(verb)?), false),
        Object::Snat { verb } => (Command::Send(snat::snat_request(verb)?), false),
        Object::Apply { file } => (Command::ApplyFile(file), false),
    };
    Ok(Invocation { socket: cli.socket, json: cli.json, all, command })
}

fn addr_request(verb: Option<AddrVerb>) -> Result<Request, ArgsError> {
    let (cmd, args, add) = match verb {
        None | Some(AddrVerb::Show) => return Ok(Request::AddrShow),
        Some(AddrVerb::Add { args }) => ("fvs addr add", args, true),
        Some(AddrVerb::Del { args }) => ("fvs addr del", args, false),
    };
    let tail = Tail::parse(cmd, &args, &[("dev", "a port name")])?;
    let addr = parse_prefix(cmd, tail.positional(cmd, "PREFIX")?, None)?;
    let Some(port) = tail.value("dev") else {
        return Err(usage(cmd, format!("missing 'dev PORT' (usage: {cmd} PREFIX dev PORT)")));
    };
    let port = port.to_string();
    Ok(if add { Request::AddrAdd { port, addr } } else { Request::AddrDel { port, addr } })
}

fn route_request(verb: Option<RouteVerb>) -> Result<Request, ArgsError> {
    match verb {
        None | Some(RouteVerb::Show) => Ok(Request::RouteShow),
        Some(RouteVerb::Add { args }) => {
            let cmd = "fvs route add";
            let tail = Tail::parse(cmd, &args, &[("via", "an address"), ("dev", "a port name")])?;
            let via = tail.value("via").map(|v| parse_ip(cmd, v, "via")).transpose()?;
            let prefix = parse_prefix(cmd, tail.positional(cmd, "PREFIX")?, via)?;
            let port = tail.value("dev").map(str::to_string);
            if via.is_none() && port.is_none() {
                return Err(usage(cmd, "give 'via ADDR', 'dev PORT' or both".to_string()));
            }
            Ok(Request::RouteAdd { route: RouteConfig { prefix, via, port } })
        }
        Some(RouteVerb::Del { args }) => {
            let cmd = "fvs route del";
            let tail = Tail::parse(cmd, &args, &[])?;
            let prefix = parse_prefix(cmd, tail.positional(cmd, "PREFIX")?, None)?;
            Ok(Request::RouteDel { prefix })
        }
    }
}

fn usage(cmd: &str, message: String) -> ArgsError {
    ArgsError::Usage(format!("{cmd}: {message}"))
}

/// An `ip`-style argument tail: at most one positional word plus `keyword value` pairs.
struct Tail<'a> {
    positional: Option<&'a str>,
    values: Vec<(&'static str, &'a str)>,
}

impl<'a> Tail<'a> {
    /// `keywords` pairs each keyword with what its value is, for "'via' needs an address".
    fn parse(cmd: &str, args: &'a [String], keywords: &[(&'static str, &str)]) -> Result<Tail<'a>, ArgsError> {
        let mut tail = Tail { positional: None, values: Vec::new() };
        let mut words = args.iter().map(String::as_str);
        while let Some(word) = words.next() {
            if let Some(&(key, what)) = keywords.iter().find(|(k, _)| *k == word) {
                let value = words.next().ok_or_else(|| usage(cmd, format!("'{key}' needs {what}")))?;
                if tail.value(key).is_some() {
                    return Err(usage(cmd, format!("'{key}' given twice")));
                }
                tail.values.push((key, value));
            } else if tail.positional.is_none() {
                tail.positional = Some(word);
            } else {
                return Err(usage(cmd, format!("unexpected argument '{word}'")));
            }
        }
        Ok(tail)
    }

    fn value(&self, key: &str) -> Option<&'a str> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn positional(&self, cmd: &str, name: &str) -> Result<&'a str, ArgsError> {
        self.positional.ok_or_else(|| usage(cmd, format!("missing {name}")))
    }
}

/// A prefix, or `default`: 0.0.0.0/0, or ::/0 when the next hop is IPv6.
fn parse_prefix(cmd: &str, word: &str, via: Option<IpAddr>) -> Result<Prefix, ArgsError> {
    if word == "default" {
        let any = match via {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        return Prefix::new(any, 0).map_err(|e| usage(cmd, e));
    }
    word.parse().map_err(|e| usage(cmd, format!("'{word}' is not a prefix ({e})")))
}

fn parse_ip(cmd: &str, word: &str, after: &str) -> Result<IpAddr, ArgsError> {
    word.parse().map_err(|_| usage(cmd, format!("'{word}' is not an IP address (after '{after}')")))
}

/// Runs `fvs` with real stdout and stderr; returns the exit status.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match parse_args(args) {
        Ok(inv) => execute(&inv, &mut io::stdout().lock(), &mut io::stderr().lock()),
        // clap prints with colour when stdout/stderr is a terminal.
        Err(ArgsError::Clap(e)) => {
            let _ = e.print();
            e.exit_code()
        }
        Err(ArgsError::Usage(msg)) => {
            eprintln!("{msg}");
            USAGE_EXIT
        }
    }
}

/// Parses and runs with the given outputs (tests use buffers); returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match parse_args(args) {
        Ok(inv) => execute(&inv, out, err),
        Err(ArgsError::Clap(e)) => {
            let text = e.render().to_string();
            let _ = if e.use_stderr() { err.write_all(text.as_bytes()) } else { out.write_all(text.as_bytes()) };
            e.exit_code()
        }
        Err(ArgsError::Usage(msg)) => {
            let _ = writeln!(err, "{msg}");
            USAGE_EXIT
        }
    }
}

/// Sends the request and prints the answer: 0 on success, 1 on any failure.
pub fn execute(inv: &Invocation, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = request_for(&inv.command)
        .and_then(|req| {
            let response = client::call(&inv.socket, &req).map_err(|e| e.to_string())?;
            render(&req, response, inv.json, inv.all)
        })
        .and_then(|text| write_out(out, &text));
    match result {
        Ok(()) => 0,
        Err(msg) => {
            let _ = writeln!(err, "fvs: {msg}");
            1
        }
    }
}

fn request_for(command: &Command) -> Result<Request, String> {
    match command {
        Command::Send(req) => Ok(req.clone()),
        Command::ApplyFile(file) => {
            let yaml = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            Ok(Request::Apply { source: file.display().to_string(), yaml })
        }
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), String> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // `fvs stats | head`: the reader left, nothing to complain about.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("cannot write the output: {e}")),
        _ => Ok(()),
    }
}

/// The text to print for a response: the `ip`-style view for the request, or with `--json`
/// the data as pretty JSON (decoded first where the type is known, so fields keep their
/// declared order). Changes print nothing on success, like `ip`.
pub fn render(req: &Request, response: Response, json: bool, all: bool) -> Result<String, String> {
    match req {
        Request::LinkShow { .. } => view(response, json, |d: Vec<LinkInfo>| format_links(&d)),
        Request::AddrShow => view(response, json, |d: Vec<AddrInfo>| format_addrs(&d)),
        Request::RouteShow => view(response, json, |d: Vec<RouteInfo>| format_routes(&d)),
        Request::NeighShow => view(response, json, |d: Vec<NeighInfo>| format_neighs(&d)),
        Request::Stats => view(response, json, |d: StatsInfo| format_stats(&d, all)),
        Request::Apply { .. } => view(response, json, |d: ApplyResult| format_apply(&d)),
        Request::ServiceShow { stats: false } => view(response, json, |d: Vec<ServiceInfo>| lb::format_services(&d)),
        Request::ServiceShow { stats: true } => {
            view(response, json, |d: Vec<ServiceInfo>| lb::format_service_stats(&d))
        }
        Request::LaddrShow => view(response, json, |d: Vec<LaddrInfo>| lb::format_laddrs(&d)),
        Request::ConnList { .. } => view(response, json, |d: ConnList| lb::format_conns(&d)),
        Request::SnatShow => view(response, json, |d: Vec<SnatInfo>| snat::format_snat(&d)),
        Request::AddrAdd { .. }
        | Request::AddrDel { .. }
        | Request::RouteAdd { .. }
        | Request::RouteDel { .. }
        | Request::ServiceAdd { .. }
        | Request::ServiceSet { .. }
        | Request::ServiceDel { .. }
        | Request::BackendAdd { .. }
        | Request::BackendSet { .. }
        | Request::BackendDel { .. }
        | Request::LaddrAdd { .. }
        | Request::LaddrDel { .. }
        | Request::SnatAdd { .. }
        | Request::SnatDel { .. } => view(response, json, |_: serde_json::Value| String::new()),
    }
}

fn view<T, F>(response: Response, json: bool, format: F) -> Result<String, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce(T) -> String,
{
    let data: T = response.into_data()?;
    if json {
        serde_json::to_string_pretty(&data).map(|s| s + "\n").map_err(|e| e.to_string())
    } else {
        Ok(format(data))
    }
}

/// `ip link`-style: two lines per port, four more with counters.
pub fn format_links(links: &[LinkInfo]) -> String {
    let mut s = String::new();
    for l in links {
        let state = if l.link_up { "UP" } else { "DOWN" };
        let numa = if l.numa_socket < 0 { "any".to_string() } else { l.numa_socket.to_string() };
        let rss = if l.rss { "on" } else { "off" };
        let _ = write!(
            s,
            "{}: {}: <{state}> mtu {} driver {} numa {numa} queues rx {} tx {} rss {rss}",
            l.port_id, l.name, l.mtu, l.driver, l.rx_queues, l.tx_queues
        );
        if l.link_up && l.speed_mbps > 0 {
            let _ = write!(s, " speed {}Mb/s", l.speed_mbps);
        }
        let _ = writeln!(s, "\n    link/ether {} device {}", l.mac, l.device);
        if !l.steering.is_empty() {
            let _ = writeln!(s, "    steering {} ({})", l.steering, l.steering_detail);
        }
        if let Some(st) = &l.stats {
            s.push_str(&format_port_stats(st));
        }
    }
    s
}

fn format_port_stats(st: &PortStats) -> String {
    let rx = [st.rx_packets, st.rx_bytes, st.rx_missed, st.rx_errors, st.rx_nombuf];
    let tx = [st.tx_packets, st.tx_bytes, st.tx_errors];
    stat_block("RX:", &["packets", "bytes", "missed", "errors", "nombuf"], &rx)
        + &stat_block("TX:", &["packets", "bytes", "errors"], &tx)
}

/// A header line and a value line, columns right-aligned under each other.
fn stat_block(label: &str, headers: &[&str], values: &[u64]) -> String {
    let mut head = format!("    {label}");
    let mut vals = format!("    {}", " ".repeat(label.len()));
    for (h, v) in headers.iter().zip(values) {
        let v = v.to_string();
        let w = h.len().max(v.len());
        let _ = write!(head, "  {h:>w$}");
        let _ = write!(vals, "  {v:>w$}");
    }
    format!("{head}\n{vals}\n")
}

/// One line per address, grouped by port in the order the daemon listed the ports.
pub fn format_addrs(addrs: &[AddrInfo]) -> String {
    let width = addrs.iter().map(|a| a.port.len()).max().unwrap_or(0);
    let mut ports: Vec<&str> = Vec::new();
    for a in addrs {
        if !ports.contains(&a.port.as_str()) {
            ports.push(&a.port);
        }
    }
    let mut s = String::new();
    for port in ports {
        for a in addrs.iter().filter(|a| a.port == port) {
            let family = if a.addr.is_ipv4() { "inet" } else { "inet6" };
            let _ = writeln!(s, "{port:<width$}    {family} {}", a.addr);
        }
    }
    s
}

/// IPv4 then IPv6, longest prefix first, as a lookup would meet them.
pub fn format_routes(routes: &[RouteInfo]) -> String {
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

/// `ip neigh`-style, sorted by address then core.
pub fn format_neighs(neighs: &[NeighInfo]) -> String {
    let mut sorted: Vec<&NeighInfo> = neighs.iter().collect();
    sorted.sort_by_key(|n| (n.addr.is_ipv6(), n.addr, n.core));
    let mut s = String::new();
    for n in sorted {
        let _ = write!(s, "{} dev {}", n.addr, n.port);
        if let Some(mac) = n.mac {
            let _ = write!(s, " lladdr {mac}");
        }
        let _ = write!(s, " {} core {} age {}", n.state.to_uppercase(), n.core, format_age(n.age_ms));
        if n.queued > 0 {
            let _ = write!(s, " queued {}", n.queued);
        }
        s.push('\n');
    }
    s
}

/// Tenths of a second while that precision means something, whole seconds after.
fn format_age(ms: u64) -> String {
    if ms < 100_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// A table: one row per counter (sorted), one column per core and a total. Counters that are
/// zero in total are left out unless `all`, with a note saying how many.
pub fn format_stats(stats: &StatsInfo, all: bool) -> String {
    let names: BTreeSet<&String> =
        stats.total.keys().chain(stats.cores.iter().flat_map(|c| c.counters.keys())).collect();
    let total = |name: &String| {
        stats.total.get(name).copied().unwrap_or_else(|| stats.cores.iter().filter_map(|c| c.counters.get(name)).sum())
    };
    let mut header = vec!["counter".to_string()];
    header.extend(stats.cores.iter().map(|c| format!("core{}(lcore{})", c.core, c.lcore)));
    header.push("total".to_string());
    let mut rows = vec![header];
    let mut hidden = 0;
    for name in names {
        let sum = total(name);
        if sum == 0 && !all {
            hidden += 1;
            continue;
        }
        let mut row = vec![name.clone()];
        row.extend(stats.cores.iter().map(|c| c.counters.get(name).copied().unwrap_or(0).to_string()));
        row.push(sum.to_string());
        rows.push(row);
    }
    let mut s = if rows.len() > 1 { format_table(&rows) } else { "no counters to show\n".to_string() };
    if hidden > 0 {
        let _ = writeln!(s, "({hidden} zero counters hidden; fvs stats --all shows them)");
    }
    if let Some(config) = &stats.config {
        s.push_str(&format_config_stats(config));
    }
    s
}

/// The config publication line and, once something was published, the delay histogram.
fn format_config_stats(c: &ConfigStats) -> String {
    let mut s = format!("\nconfig: {} published", c.published);
    if c.not_visible > 0 {
        let _ = write!(s, ", {} not visible on every worker within {}", c.not_visible, format_micros(c.timeout_us));
    }
    let visible = c.visible();
    let Some(last) = c.visible_last_us.filter(|_| visible > 0) else {
        s.push('\n');
        return s;
    };
    let _ = writeln!(
        s,
        "; visible on all workers after: last {}, max {}, mean {}",
        format_micros(last),
        format_micros(c.visible_max_us),
        format_micros(c.visible_sum_us / visible)
    );
    let mut previous = None;
    let headers: Vec<String> = c
        .visible_buckets
        .iter()
        .map(|b| {
            let h = match b.below_us {
                Some(bound) => format!("<{}", format_micros(bound)),
                None => format!(">={}", format_micros(previous.unwrap_or(0))),
            };
            previous = b.below_us;
            h
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let counts: Vec<u64> = c.visible_buckets.iter().map(|b| b.count).collect();
    s + &stat_block("visible:", &headers, &counts)
}

/// Microseconds as `850us`, `1.2ms` or `2s`: the unit a reader expects at that size.
fn format_micros(us: u64) -> String {
    // One decimal (truncated) only where it matters; --json has the exact value.
    if us < 1_000 {
        format!("{us}us")
    } else if us < 10_000 && us % 1_000 >= 100 {
        format!("{}.{}ms", us / 1_000, us % 1_000 / 100)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1_000)
    } else if us < 10_000_000 && us % 1_000_000 >= 100_000 {
        format!("{}.{}s", us / 1_000_000, us % 1_000_000 / 100_000)
    } else {
        format!("{}s", us / 1_000_000)
    }
}

/// First column left-aligned, the others right-aligned, two spaces apart.
fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(String::len).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            let _ = if c == 0 { write!(s, "{cell:<w$}") } else { write!(s, "  {cell:>w$}") };
        }
        s.push('\n');
    }
    s
}

pub fn format_apply(result: &ApplyResult) -> String {
    if result.changes.is_empty() {
        return "no changes\n".to_string();
    }
    result.changes.iter().map(|c| format!("{c}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::CoreStats;
    use clap::CommandFactory;
    use std::collections::BTreeMap;

    pub(super) fn parse(line: &str) -> Result<Invocation, ArgsError> {
        parse_args(std::iter::once("fvs").chain(line.split_whitespace()))
    }

    pub(super) fn request(line: &str) -> Request {
        match parse(line) {
            Ok(Invocation { command: Command::Send(req), .. }) => req,
            other => panic!("{line}: {other:?}"),
        }
    }

    pub(super) fn usage_error(line: &str) -> String {
        match parse(line) {
            Err(ArgsError::Usage(msg)) => msg,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn clap_error(line: &str) -> String {
        match parse(line) {
            Err(ArgsError::Clap(e)) => {
                assert_eq!(e.exit_code(), USAGE_EXIT, "{line}");
                e.render().to_string()
            }
            other => panic!("{line}: {other:?}"),
        }
    }

    fn prefix(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn clap_definition_is_sound() {
        Cli::command().debug_assert();
    }

    #[test]
    fn show_commands_and_abbreviations() {
        for line in ["link show", "link", "l", "link list", "l s", "link ls"] {
            assert_eq!(request(line), Request::LinkShow { stats: false }, "{line}");
        }
        for line in ["link show -s", "-s link", "link -s show", "l show --stats"] {
            assert_eq!(request(line), Request::LinkShow { stats: true }, "{line}");
        }
        for line in ["addr show", "addr", "a", "address list", "a s", "ad ls"] {
            assert_eq!(request(line), Request::AddrShow, "{line}");
        }
        for line in ["route show", "route", "r", "ro list", "rou sh"] {
            assert_eq!(request(line), Request::RouteShow, "{line}");
        }
        for line in ["neigh show", "n", "neighbour", "neighbor list", "nei show"] {
            assert_eq!(request(line), Request::NeighShow, "{line}");
        }
        assert_eq!(request("stats"), Request::Stats);
    }

    #[test]
    fn global_options_anywhere() {
        let inv = parse("--socket /tmp/x.sock -j route show").unwrap();
        assert_eq!((inv.socket, inv.json), (PathBuf::from("/tmp/x.sock"), true));
        let inv = parse("route show --json --socket /tmp/y.sock").unwrap();
        assert_eq!((inv.socket, inv.json), (PathBuf::from("/tmp/y.sock"), true));
        let inv = parse("addr add 192.0.2.1/24 dev dp0 -j").unwrap();
        assert!(inv.json);
        assert_eq!(inv.command, Command::Send(Request::AddrAdd { port: "dp0".into(), addr: prefix("192.0.2.1/24") }));
        let inv = parse("stats").unwrap();
        assert_eq!((inv.socket, inv.json, inv.all), (PathBuf::from(DEFAULT_SOCKET), false, false));
        assert!(parse("stats --all").unwrap().all);
        assert_eq!(parse("apply -f conf/demo.yaml").unwrap().command, Command::ApplyFile("conf/demo.yaml".into()));
    }

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

    #[test]
    fn clap_errors_exit_2() {
        assert!(clap_error("bogus").contains("unrecognized subcommand 'bogus'"));
        assert!(clap_error("link frob").contains("unrecognized subcommand 'frob'"));
        assert!(clap_error("apply").contains("--file <FILE>"));
        assert!(clap_error("").contains("Usage: fvs"));
        assert!(clap_error("stats --bogus").contains("unexpected argument '--bogus'"));
        match parse("--help") {
            Err(ArgsError::Clap(e)) => {
                assert_eq!(e.exit_code(), 0);
                let help = e.render().to_string();
                assert!(help.contains("fvs route add 203.0.113.0/24 via 192.0.2.2"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_reports_errors_with_exit_codes() {
        let run_line = |line: &str| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(std::iter::once("fvs").chain(line.split_whitespace()), &mut out, &mut err);
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        };
        let (code, out, err) = run_line("route add 10.0.0.0/8 via x");
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (2, "", "fvs route add: 'x' is not an IP address (after 'via')\n")
        );
        let (code, _, err) = run_line("--socket /nonexistent/fvs.sock stats");
        assert_eq!(code, 1);
        assert!(err.starts_with("fvs: cannot reach ferrovs at /nonexistent/fvs.sock: "), "{err}");
        let (code, _, err) = run_line("--socket /nonexistent/fvs.sock apply -f /nonexistent/ferrovs.yaml");
        assert_eq!(code, 1);
        assert!(err.starts_with("fvs: cannot read /nonexistent/ferrovs.yaml: "), "{err}");
        let (code, out, _) = run_line("link --help");
        assert_eq!(code, 0);
        assert!(out.contains("fvs link show -s"), "{out}");
    }

    fn link(stats: Option<PortStats>) -> LinkInfo {
        LinkInfo {
            port_id: 0,
            name: "dp0".into(),
            device: "net_af_packet0,iface=veth-lb0".into(),
            driver: "net_af_packet".into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            mtu: 1500,
            link_up: true,
            speed_mbps: 0,
            rx_queues: 1,
            tx_queues: 1,
            rss: false,
            numa_socket: 0,
            steering: "single".into(),
            steering_detail: "one worker".into(),
            stats,
        }
    }

    #[test]
    fn links_formatted() {
        assert_eq!(
            format_links(&[link(None)]),
            "0: dp0: <UP> mtu 1500 driver net_af_packet numa 0 queues rx 1 tx 1 rss off\n    link/ether 02:00:00:00:00:01 device net_af_packet0,iface=veth-lb0\n    steering single (one worker)\n"
        );
        let stats = PortStats {
            rx_packets: 12,
            rx_bytes: 123456789,
            tx_packets: 3,
            tx_bytes: 180,
            rx_missed: 1,
            ..Default::default()
        };
        let mut l = link(Some(stats));
        l.link_up = false;
        l.numa_socket = -1;
        l.rss = true;
        let text = format_links(&[l]);
        let want = "\
0: dp0: <DOWN> mtu 1500 driver net_af_packet numa any queues rx 1 tx 1 rss on
    link/ether 02:00:00:00:00:01 device net_af_packet0,iface=veth-lb0
    steering single (one worker)
    RX:  packets      bytes  missed  errors  nombuf
              12  123456789       1       0       0
    TX:  packets  bytes  errors
               3    180       0
";
        assert_eq!(text, want);
        let mut fast = link(None);
        fast.speed_mbps = 25000;
        assert!(format_links(&[fast]).lines().next().unwrap().ends_with("rss off speed 25000Mb/s"));
    }

    #[test]
    fn addrs_formatted() {
        let a = |port: &str, addr: &str| AddrInfo { port: port.into(), addr: prefix(addr) };
        let text = format_addrs(&[a("dp0", "192.0.2.1/24"), a("dp10", "198.51.100.1/24"), a("dp0", "2001:db8::1/64")]);
        assert_eq!(text, "dp0     inet 192.0.2.1/24\ndp0     inet6 2001:db8::1/64\ndp10    inet 198.51.100.1/24\n");
        assert_eq!(format_addrs(&[a("dp0", "192.0.2.1/24")]), "dp0    inet 192.0.2.1/24\n");
        assert_eq!(format_addrs(&[]), "");
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

    #[test]
    fn neighs_formatted() {
        let n = |core, addr: &str, mac: Option<&str>, state: &str, age_ms, queued| NeighInfo {
            core,
            port: "dp0".into(),
            addr: addr.parse().unwrap(),
            mac: mac.map(|m| m.parse().unwrap()),
            state: state.into(),
            age_ms,
            queued,
        };
        let text = format_neighs(&[
            n(1, "192.0.2.2", Some("02:00:00:00:00:02"), "stale", 250_000, 0),
            n(0, "192.0.2.9", None, "incomplete", 300, 2),
            n(0, "192.0.2.2", Some("02:00:00:00:00:02"), "reachable", 1234, 0),
        ]);
        let want = "\
192.0.2.2 dev dp0 lladdr 02:00:00:00:00:02 REACHABLE core 0 age 1.2s
192.0.2.2 dev dp0 lladdr 02:00:00:00:00:02 STALE core 1 age 250s
192.0.2.9 dev dp0 INCOMPLETE core 0 age 0.3s queued 2
";
        assert_eq!(text, want);
    }

    #[test]
    fn stats_formatted() {
        let counters =
            |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
        let stats = StatsInfo {
            cores: vec![
                CoreStats {
                    core: 0,
                    lcore: 1,
                    counters: counters(&[("rx_packets", 10), ("drop_no_route", 0), ("tx_packets", 7)]),
                },
                CoreStats {
                    core: 1,
                    lcore: 2,
                    counters: counters(&[("rx_packets", 5), ("drop_no_route", 0), ("tx_packets", 123456)]),
                },
            ],
            total: counters(&[("rx_packets", 15), ("drop_no_route", 0), ("tx_packets", 123463)]),
            config: None,
        };
        let want = "\
counter     core0(lcore1)  core1(lcore2)   total
rx_packets             10              5      15
tx_packets              7         123456  123463
(1 zero counters hidden; fvs stats --all shows them)
";
        assert_eq!(format_stats(&stats, false), want);
        let all = format_stats(&stats, true);
        assert!(all.starts_with("counter        core0(lcore1)"), "{all}");
        assert!(all.contains("\ndrop_no_route              0              0       0\n"), "{all}");
        assert!(!all.contains("hidden"));
        assert_eq!(format_stats(&StatsInfo::default(), false), "no counters to show\n");
    }

    #[test]
    fn config_stats_formatted() {
        use std::time::Duration;
        let mut config = ConfigStats::new(Duration::from_secs(2));
        let with = |config: &ConfigStats| StatsInfo { config: Some(config.clone()), ..Default::default() };
        assert_eq!(format_stats(&with(&config), false), "no counters to show\n\nconfig: 0 published\n");
        for us in [4, 40, 60, 1_250] {
            config.record(Some(Duration::from_micros(us)));
        }
        let want = "\
no counters to show

config: 4 published; visible on all workers after: last 1.2ms, max 1.2ms, mean 338us
    visible:  <10us  <100us  <1ms  <10ms  <100ms  >=100ms
                  1       2     0      1       0        0
";
        assert_eq!(format_stats(&with(&config), false), want);
        config.record(None);
        let text = format_stats(&with(&config), false);
        assert!(
            text.contains("\nconfig: 5 published, 1 not visible on every worker within 2s; visible on all workers after: last 1.2ms,"),
            "{text}"
        );
        let micros: Vec<String> =
            [0, 999, 1_000, 1_099, 1_100, 9_999, 10_500, 999_999, 1_000_000, 2_500_000, 12_345_678]
                .iter()
                .map(|us| format_micros(*us))
                .collect();
        assert_eq!(micros, ["0us", "999us", "1ms", "1ms", "1.1ms", "9.9ms", "10ms", "999ms", "1s", "2.5s", "12s"]);
        // JSON keeps the exact microseconds.
        let json = render(&Request::Stats, Response::ok(&with(&config)), true, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["config"]["visible_last_us"], 1_250);
        assert_eq!(v["config"]["visible_sum_us"], 1_354);
    }

    #[test]
    fn apply_formatted() {
        assert_eq!(format_apply(&ApplyResult::default()), "no changes\n");
        let r = ApplyResult {
            changes: vec!["addr add 192.0.2.1/24 dev dp0".into(), "route del 10.0.0.0/8 dev dp0".into()],
        };
        assert_eq!(format_apply(&r), "addr add 192.0.2.1/24 dev dp0\nroute del 10.0.0.0/8 dev dp0\n");
    }

    #[test]
    fn render_picks_the_view() {
        let ok_null = Response::ok(&());
        let add = Request::AddrAdd { port: "dp0".into(), addr: prefix("192.0.2.1/24") };
        assert_eq!(render(&add, ok_null.clone(), false, false), Ok(String::new()));
        assert_eq!(render(&add, ok_null, true, false), Ok("null\n".to_string()));
        assert_eq!(
            render(&add, Response::err("no port named 'dp0'"), false, false),
            Err("no port named 'dp0'".to_string())
        );
        let addrs = Response::ok(&vec![AddrInfo { port: "dp0".into(), addr: prefix("192.0.2.1/24") }]);
        assert_eq!(
            render(&Request::AddrShow, addrs.clone(), false, false),
            Ok("dp0    inet 192.0.2.1/24\n".to_string())
        );
        assert_eq!(
            render(&Request::AddrShow, addrs, true, false),
            Ok("[\n  {\n    \"port\": \"dp0\",\n    \"addr\": \"192.0.2.1/24\"\n  }\n]\n".to_string())
        );
        let wrong = render(&Request::RouteShow, Response::ok(&5), false, false).unwrap_err();
        assert!(wrong.starts_with("unexpected answer from ferrovs"), "{wrong}");
    }
}
