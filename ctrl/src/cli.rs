//! `fvs`, the ferrovs command line: a thin `ip`-style client of the admin API.
//!
//! clap handles the global options and the object/verb structure; the `ip`-style keyword
//! tails (`dev PORT`, `via ADDR`) are read by `words` so their errors read like `ip`'s.
//! Each object (link, addr, route, neigh, stats, service, backend, laddr, conn, snat, apply)
//! has a module with its verbs, its request and its view, a plain function from response
//! data to `String`; tables are laid out by `table`. This module dispatches and holds the
//! help text.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::client;
use crate::config::DEFAULT_SOCKET;
use crate::proto::{
    AddrInfo, ApplyResult, ConnList, LaddrInfo, LinkInfo, NeighInfo, Request, Response, RouteInfo, ServiceInfo,
    SnatInfo, StatsInfo, TraceBatch, TraceStarted,
};

mod addr;
mod apply;
mod backend;
mod conn;
mod health;
mod laddr;
mod link;
mod neigh;
mod route;
mod service;
mod snat;
mod stats;
mod table;
mod top;
mod trace;
mod words;

const EXAMPLES: &str = "\
Examples:
  fvs link show                      ports, their driver, queues, reply steering, link state and
                                     kernel interface (name, tap or virtio_user, rate)
  fvs -s link                        the same with packet counters and the kernel interface's
                                     (to kernel, from kernel, rate-limited drops)
  fvs addr add 192.0.2.1/24 dev dp0  (a port's kernel interface gets the address too)
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

Observing:
  fvs trace host 192.0.2.2 port 80   what ferrovs decides for the next 10 matching packets
  fvs top                            live view: per-core Mpps and drops, per-service connections
                                     per second and active, top drop reasons (q quits)

Source NAT for outbound connections (rules tried in order, first match wins):
  fvs snat show                      rules and their addresses' ports in use
  fvs snat add source 198.51.100.0/24 out-port dp0 address 192.0.2.50
  fvs snat del source 198.51.100.0/24 out-port dp0

Health checks:
  fvs backend show                   every backend's health, last check, since when and why
  fvs health set tcp 192.0.2.100:80 type http path /healthz interval 1000 rise 2 fall 3
  fvs health set tcp 192.0.2.100:80 on-down reset all-down drop passive 5/10000/5000
  fvs health del tcp 192.0.2.100:80
  fvs import keepalived /etc/keepalived/keepalived.conf   its virtual servers as ferrovs YAML";

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
    /// Show statistics: port counters (link show), traffic and handshake latency per service and
    /// backend (service show).
    #[arg(short = 's', long = "stats", global = true)]
    stats: bool,
    #[command(subcommand)]
    object: Object,
}

#[derive(Subcommand, Debug)]
enum Object {
    /// Show the DPDK ports and their kernel interfaces.
    #[command(
        aliases = ["l", "li", "lin"],
        after_help = "Examples:\n  fvs link show\n  fvs link show -s       with RX/TX counters and the kernel interface's\n                         (to kernel, from kernel, rate-limited drops)"
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
        verb: Option<addr::AddrVerb>,
    },
    /// Show, add or delete static routes (connected routes come from addresses).
    #[command(
        aliases = ["r", "ro", "rou", "rout"],
        after_help = "Examples:\n  fvs route show\n  fvs route add 203.0.113.0/24 via 192.0.2.2\n  fvs route add default via 192.0.2.254 dev dp0\n  fvs route add 198.51.100.0/24 dev dp1\n  fvs route del 203.0.113.0/24"
    )]
    Route {
        #[command(subcommand)]
        verb: Option<route::RouteVerb>,
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
        verb: Option<service::ServiceVerb>,
    },
    /// Add, change or remove the backends (real servers) of a service (ipvsadm -a, -e, -d).
    #[command(
        aliases = ["b", "ba", "back", "backends"],
        after_help = "Examples:\n  fvs backend show\n  fvs backend add tcp 192.0.2.100:80 198.51.100.11:8080 weight 2\n  fvs backend set tcp 192.0.2.100:80 198.51.100.11:8080 state draining\n  fvs backend del tcp 192.0.2.100:80 198.51.100.11:8080 reset\n\nfvs service show lists the backends."
    )]
    Backend {
        #[command(subcommand)]
        verb: backend::BackendVerb,
    },
    /// Set or remove the health checks of a service or backend, and its health policies.
    #[command(
        aliases = ["h", "he", "hc", "check"],
        after_help = "Examples:\n  fvs health set tcp 192.0.2.100:80 type http path /healthz interval 1000 rise 2 fall 3\n  fvs health set tcp 192.0.2.100:80 all-down drop on-down reset\n  fvs health del tcp 192.0.2.100:80\n\nfvs backend show lists every backend's health."
    )]
    Health {
        #[command(subcommand)]
        verb: health::HealthVerb,
    },
    /// Show, add or remove the local addresses of fullnat services.
    #[command(
        aliases = ["la", "lad", "ladd", "laddrs"],
        after_help = "Examples:\n  fvs laddr show\n  fvs laddr add tcp 192.0.2.100:443 198.51.100.2\n  fvs laddr del tcp 192.0.2.100:443 198.51.100.2"
    )]
    Laddr {
        #[command(subcommand)]
        verb: Option<laddr::LaddrVerb>,
    },
    /// List the tracked connections (ipvsadm -Lnc).
    #[command(
        aliases = ["c", "co", "con", "conns", "connection", "connections"],
        after_help = "Examples:\n  fvs conn list\n  fvs conn list service tcp 192.0.2.100:80 state established limit 20"
    )]
    Conn {
        #[command(subcommand)]
        verb: Option<conn::ConnVerb>,
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
    /// Follow the next packets matching a filter: what ferrovs decided for each, step by step.
    #[command(override_usage = trace::TRACE_USAGE, after_help = trace::TRACE_HELP)]
    Trace(words::VerbArgs),
    /// A live view of the counters, refreshed every second (q quits).
    #[command(after_help = top::TOP_HELP)]
    Top,
    /// Convert another load balancer's config to ferrovs YAML (printed; nothing is sent).
    #[command(after_help = "Example:\n  fvs import keepalived /etc/keepalived/keepalived.conf > services.yaml")]
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Show the access-list rules (global deny list, services' deny and allow lists) with the
    /// new connections each refused.
    #[command(
        after_help = "Example:\n  fvs acl show\n\nThe lists are set in the config file (deny, services[].deny, services[].allow)\nand changed with fvs apply. Counts restart when the rules change."
    )]
    Acl {
        #[command(subcommand)]
        verb: Option<ShowVerb>,
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
enum ImportFrom {
    /// keepalived.conf's virtual_server blocks (lb_algo, lb_kind, protocol, persistence_timeout,
    /// delay_loop, real_server weight, TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK) as `services:`;
    /// what has no equivalent is listed, with its file and line, as comments on top.
    Keepalived {
        /// keepalived.conf (its includes are read relative to it).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ShowVerb {
    /// Show them (the default).
    #[command(visible_alias = "list", aliases = ["s", "sh", "sho", "l", "ls", "lst"])]
    Show,
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
    /// `trace ...`: a trace started, then polled until it ends.
    Trace(trace::TraceArgs),
    /// `top`: a live view until q.
    Top,
    /// `import keepalived FILE`: converted here, no daemon needed.
    ImportKeepalived(PathBuf),
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
        Object::Addr { verb } => (Command::Send(addr::addr_request(verb)?), false),
        Object::Route { verb } => (Command::Send(route::route_request(verb)?), false),
        Object::Neigh { .. } => (Command::Send(Request::NeighShow), false),
        Object::Stats { all } => (Command::Send(Request::Stats), all),
        Object::Service { verb } => (Command::Send(service::service_request(verb, cli.stats)?), false),
        Object::Backend { verb } => (Command::Send(backend::backend_request(verb)?), false),
        Object::Laddr { verb } => (Command::Send(laddr::laddr_request(verb)?), false),
        Object::Health { verb } => (Command::Send(health::health_request(verb)?), false),
        Object::Conn { verb } => (Command::Send(conn::conn_request(verb)?), false),
        Object::Snat { verb } => (Command::Send(snat::snat_request(verb)?), false),
        Object::Acl { .. } => (Command::Send(Request::AclShow), false),
        Object::Apply { file } => (Command::ApplyFile(file), false),
        Object::Trace(args) => (Command::Trace(trace::trace_args(args)?), false),
        Object::Top => (Command::Top, false),
        Object::Import { from: ImportFrom::Keepalived { file } } => (Command::ImportKeepalived(file), false),
    };
    Ok(Invocation { socket: cli.socket, json: cli.json, all, command })
}

/// Runs `fvs` with real stdout and stderr; returns the exit status.
/// The clap command, for man pages and completions (`xtask`).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

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
    match &inv.command {
        Command::Trace(args) => return trace::run(&inv.socket, args, inv.json, out, err),
        Command::Top => return top::run(&inv.socket, err),
        Command::ImportKeepalived(file) => return import_keepalived(file, out, err),
        Command::Send(_) | Command::ApplyFile(_) => {}
    }
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
        Command::Trace(_) | Command::Top => Err("internal error: trace and top make their own requests".into()),
        Command::ImportKeepalived(_) => Err("fvs import runs locally".into()),
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
        Request::LinkShow { .. } => view(response, json, |d: Vec<LinkInfo>| link::format_links(&d)),
        Request::AddrShow => view(response, json, |d: Vec<AddrInfo>| addr::format_addrs(&d)),
        Request::RouteShow => view(response, json, |d: Vec<RouteInfo>| route::format_routes(&d)),
        Request::NeighShow => view(response, json, |d: Vec<NeighInfo>| neigh::format_neighs(&d)),
        Request::Stats => view(response, json, |d: StatsInfo| stats::format_stats(&d, all)),
        Request::Apply { .. } => view(response, json, |d: ApplyResult| apply::format_apply(&d)),
        Request::ServiceShow { stats: false } => {
            view(response, json, |d: Vec<ServiceInfo>| service::format_services(&d))
        }
        Request::BackendShow => view(response, json, |d: Vec<ServiceInfo>| backend::format_backends(&d)),
        Request::ServiceShow { stats: true } => {
            view(response, json, |d: Vec<ServiceInfo>| service::format_service_stats(&d))
        }
        Request::LaddrShow => view(response, json, |d: Vec<LaddrInfo>| laddr::format_laddrs(&d)),
        Request::ConnList { .. } => view(response, json, |d: ConnList| conn::format_conns(&d)),
        Request::SnatShow => view(response, json, |d: Vec<SnatInfo>| snat::format_snat(&d)),
        Request::TraceStart { .. } => view(response, json, |d: TraceStarted| format!("trace {} started\n", d.id)),
        Request::TracePoll { .. } => view(response, json, |d: TraceBatch| {
            d.packets.iter().map(|p| trace::format_packet(p) + "\n").collect::<String>()
        }),
        Request::AclShow => view(response, json, |d: Vec<crate::acl::AclInfo>| format_acl(&d)),
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
        | Request::SnatDel { .. }
        | Request::HealthSet { .. }
        | Request::HealthDel { .. } => view(response, json, |_: serde_json::Value| String::new()),
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

/// `fvs acl show`: one rule a line, in the order they are numbered.
fn format_acl(rules: &[crate::acl::AclInfo]) -> String {
    use crate::acl::AclAction;
    if rules.is_empty() {
        return "no access-list rules\n".to_string();
    }
    let mut rows = vec![table::cells(["SCOPE", "ACTION", "PREFIX", "DROPS"])];
    for r in rules {
        let action = match r.rule.action {
            AclAction::Deny => "deny",
            AclAction::Allow => "allow",
            AclAction::NotAllowed => "not-allowed",
        };
        let prefix = r.rule.prefix.map_or_else(|| "(others)".to_string(), |p| p.to_string());
        let drops = if r.rule.action == AclAction::Allow { "-".to_string() } else { r.drops.to_string() };
        rows.push(vec![r.rule.scope.clone(), action.to_string(), prefix, drops]);
    }
    table::table(&rows, &[0, 0, 0, 0], 3, "  ")
}

/// `fvs import keepalived FILE`: converted here, no daemon needed.
fn import_keepalived(file: &std::path::Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result =
        crate::health::keepalived::import_file(file).and_then(|i| i.to_yaml()).and_then(|text| write_out(out, &text));
    match result {
        Ok(()) => 0,
        Err(msg) => {
            let _ = writeln!(err, "fvs: {msg}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lb::ServiceKey;
    use clap::CommandFactory;
    use dataplane::net::Prefix;
    use std::net::{IpAddr, SocketAddr};

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

    pub(super) fn prefix(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    pub(super) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(super) fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// `tcp 192.0.2.100:80`.
    pub(super) fn key(s: &str) -> ServiceKey {
        let (proto, addr) = s.split_once(' ').unwrap();
        words::service_key(proto, addr).unwrap()
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

    #[test]
    fn help_documents_the_commands() {
        let help = |line: &str| match parse_args(std::iter::once("fvs").chain(line.split_whitespace())) {
            Err(ArgsError::Clap(e)) => {
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
        assert!(add.contains(service::SERVICE_ADD_USAGE), "{add}");
        assert!(add.contains("twos  best of two random"), "{add}");
        assert!(add.contains("arp_ignore=1, arp_announce=2"), "{add}");
        assert!(add.contains("tun      the packet goes to the backend inside IPIP"), "{add}");
        let snat_add = help("snat add --help");
        assert!(snat_add.contains(snat::SNAT_ADD_USAGE), "{snat_add}");
        assert!(help("snat --help").contains("the first whose source prefix holds"));
        assert!(help("backend del --help").contains(backend::BACKEND_DEL_USAGE));
        assert!(help("laddr add --help").contains(laddr::LADDR_ADD_USAGE));
        assert!(help("conn list --help").contains(conn::CONN_LIST_USAGE));
        assert!(help("service set --help").contains(service::SERVICE_SET_USAGE));
        assert!(top.contains("fvs trace host 192.0.2.2 port 80") && top.contains("fvs top  "), "{top}");
        let trace_help = help("trace --help");
        assert!(trace_help.contains(trace::TRACE_USAGE) && trace_help.contains("classify"), "{trace_help}");
        assert!(help("top --help").contains("q (or Esc, Ctrl-C) quits"));
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
