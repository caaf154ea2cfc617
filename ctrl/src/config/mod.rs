//! The YAML config model: the top-level [`Config`], its loading (with YAML positions and typo
//! hints) and the checks of the sections fixed at start (EAL, workers, mempool, neighbours,
//! API, log level). The parts that can change while ferrovs runs have their own modules,
//! whose imports point one way: [`error`] (ConfigError and its helpers) <- [`l3`] (ports,
//! addresses, routes) <- [`lb`] (services, SNAT, connections); this module assembles them and
//! re-exports their items, so `crate::config::X` names any of them.

use std::collections::HashSet;
use std::path::PathBuf;

use dataplane::net::Prefix;
use serde::{Deserialize, Serialize};

pub mod error;
pub mod health;
pub mod l3;
pub mod lb;

pub use error::ConfigError;
pub use health::*;
pub use l3::*;
pub use lb::*;

use error::{check, in_range, power_of_two_in};

/// Where the admin socket lives unless the config or `fvs --socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ferrovs/ferrovs.sock";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub addresses: Vec<AddressConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub neighbours: NeighbourConfig,
    #[serde(default)]
    pub connections: ConnectionsConfig,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Source NAT for outbound connections; the first matching rule wins.
    #[serde(default)]
    pub snat: Vec<SnatConfig>,
    /// Sources (IPv4 prefixes) that may open no connection to any service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Prefix>,
    #[serde(default)]
    pub api: ApiConfig,
    /// VIPs as kernel routes for a routing daemon (BIRD, FRR) to announce; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".to_string()
}

/// Where the VIPs go for routing daemons: each VIP with a usable backend is a route
/// `blackhole VIP/32 table TABLE proto PROTOCOL` in the box's network namespace, which
/// BIRD's `kernel` protocol (`learn`) or FRR's `redistribute table` picks up.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// A kernel routing table of its own (1..=252 or above 255), not used for forwarding.
    pub table: u32,
    /// The route protocol number that marks the routes as ferrovs's (`ip route ... proto N`):
    /// every route with it in `table` is ferrovs's to add and remove.
    #[serde(default = "default_announce_protocol")]
    pub protocol: u8,
}

/// Unassigned in /etc/iproute2/rt_protos and by the routing daemons.
fn default_announce_protocol() -> u8 {
    250
}

fn validate_announce(announce: &Option<AnnounceConfig>) -> Result<(), ConfigError> {
    let Some(a) = announce else { return Ok(()) };
    check(!matches!(a.table, 0 | 253..=255), "announce.table", || {
        format!(
            "table {} is one of the kernel's own (0 unspec, 253 default, 254 main, 255 local); pick one for ferrovs alone, e.g. 100",
            a.table
        )
    })?;
    check(a.protocol > 4 && a.protocol != 12, "announce.protocol", || {
        format!(
            "protocol {} belongs to the kernel or to others (0-4: kernel, boot, static; 12: BIRD's own routes, which BIRD would remove); pick an unused one, e.g. 250",
            a.protocol
        )
    })
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EalConfig {
    pub file_prefix: String,
    pub hugepages: bool,
    pub memory_mb: u32,
    pub main_lcore: u32,
    pub extra_args: Vec<String>,
    /// DPDK's telemetry socket (/var/run/dpdk/<file_prefix>/dpdk_telemetry.v2), so the stock
    /// `dpdk-telemetry.py -f <file_prefix>` shows ethdev's and ferrovs' `/ferrovs/...`
    /// commands. Off by default: the socket would outlive a crash.
    pub telemetry: bool,
    /// Packet capture by the stock `dpdk-dumpcap` (a DPDK secondary process): ferrovs starts
    /// pdump and keeps its hugepage memory in files under its file prefix (no --in-memory)
    /// so the secondary can attach. Needs `hugepages: true`.
    pub pdump: bool,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            file_prefix: "ferrovs".to_string(),
            hugepages: true,
            memory_mb: 512,
            main_lcore: 0,
            extra_args: Vec::new(),
            telemetry: false,
            pdump: false,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// One worker per lcore, each with its own rx/tx queue on every port. Empty (the
    /// default): the online CPUs of the PCI ports' NUMA nodes (every online CPU for vdevs or
    /// an unknown node) but `eal.main_lcore`, as many as the ports have queues for.
    pub lcores: Vec<u32>,
    /// The CPU each lcore runs on, same order (default: lcore n on CPU n). Lets two lcores
    /// share a CPU, e.g. two workers on a two-CPU test machine; never do that for speed.
    pub cpus: Vec<u32>,
    /// Sleep this many microseconds after a poll that received nothing. 0 (the default)
    /// polls without pause, as an appliance should; a demo on a laptop may prefer 50.
    pub idle_sleep_us: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    pub mbufs: u32,
    pub cache_size: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { mbufs: 8191, cache_size: 256 }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NeighbourConfig {
    /// Entries per core.
    pub capacity: u32,
    pub reachable_ms: u64,
    /// An entry unused this long is removed.
    pub stale_ms: u64,
    /// Packets held while ARP/ND resolves.
    pub pending_per_neighbour: u32,
    pub probe_interval_ms: u64,
    pub max_probes: u32,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            capacity: 4096,
            reachable_ms: 30_000,
            stale_ms: 600_000,
            pending_per_neighbour: 4,
            probe_interval_ms: 1000,
            max_probes: 3,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub socket: PathBuf,
}

/// The Prometheus/OpenMetrics endpoint.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// ADDR:PORT to serve `GET /metrics` on (e.g. 127.0.0.1:9470, [::1]:9470); none (the
    /// default): no endpoint.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The validated listen address.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { socket: PathBuf::from(DEFAULT_SOCKET) }
    }
}

impl Config {
    /// Parses and validates a whole config. `source` names the text in errors (its path).
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let config = parse_yaml(text).map_err(|e| e.with_source(source))?;
        config.validate().map_err(|e| e.with_source(source))?;
        Ok(config)
    }

    pub fn to_yaml(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Checks everything serde's types cannot: ranges, names, uniqueness, references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_eal(&self.eal)?;
        validate_workers(&self.workers, self.eal.main_lcore)?;
        validate_mempool(&self.mempool)?;
        validate_ports(&self.ports)?;
        validate_neighbours(&self.neighbours)?;
        validate_api(&self.api)?;
        validate_metrics(&self.metrics)?;
        validate_log_level(&self.log_level)?;
        validate_announce(&self.announce)?;
        validate_connections(&self.connections)?;
        validate_l3(&self.ports, &self.addresses, &self.routes)?;
        lb::validate_acl(&self.deny, "deny")?;
        let prefixes = self.deny.len() + self.services.iter().map(|s| s.deny.len() + s.allow.len()).sum::<usize>();
        if prefixes > lb::MAX_ACL_PREFIXES {
            return Err(ConfigError::new(
                "deny",
                format!("{prefixes} access-list prefixes in all, at most {}", lb::MAX_ACL_PREFIXES),
            ));
        }
        validate_services(&self.services, &self.snat, &self.connections, &self.ports, &self.addresses)
    }

    /// Names of the top-level sections other than `addresses`, `routes`, `services`, `snat`
    /// and `connections.timeouts` that differ from
    /// `other`: the daemon decides which of them it can change without a restart.
    pub fn static_differences(&self, other: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                out.push(name)
            }
        };
        check("eal", self.eal != other.eal);
        check("workers", self.workers != other.workers);
        check("mempool", self.mempool != other.mempool);
        check("ports", self.ports != other.ports);
        check("neighbours", self.neighbours != other.neighbours);
        let sizes = |c: &Config| ConnectionsConfig { timeouts: Default::default(), ..c.connections.clone() };
        check("connections", sizes(self) != sizes(other));
        check("api", self.api != other.api);
        check("announce", self.announce != other.announce);
        check("metrics", self.metrics != other.metrics);
        check("log_level", self.log_level != other.log_level);
        out
    }
}

fn parse_yaml(text: &str) -> Result<Config, ConfigError> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(ConfigError::new("", "the config is empty; at least 'ports' is required"));
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // serde_path_to_error writes `?` for a position it could not name (a YAML syntax
        // error inside a mapping): keep only the part of the path that is real.
        let path = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p.split(".?").next().unwrap_or_default().trim_end_matches('?').to_string(),
        };
        yaml_error(path, e.inner())
    })
}

/// serde_norway's message already carries the path and " at line L column C"; keep only the
/// bare message so ConfigError can print each part once.
fn yaml_error(path: String, err: &serde_norway::Error) -> ConfigError {
    let mut message = err.to_string();
    // serde_norway's own path may stop at the enclosing mapping (`addresses[0]` where
    // serde_path_to_error knows `addresses[0].addr`).
    if let Some((head, rest)) = message.split_once(": ") {
        if !path.is_empty() && path.starts_with(head) {
            message = rest.to_string();
        }
    }
    let mut location = err.location().map(|l| (l.line(), l.column()));
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        } else if message.contains(" at line ") {
            // A YAML syntax error that names its own positions.
            location = None;
        }
    }
    if let Some(hint) = typo_hint(&message) {
        message.push_str(&hint);
    }
    ConfigError { source: String::new(), path, message, location }
}

/// For serde's "unknown field `portz`, expected one of `eal`, ..., `ports`": "; did you mean
/// `ports`?" when one expected name is a slip away.
fn typo_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once("`, expected ")?;
    let best = expected.split('`').skip(1).step_by(2).map(|name| (edit_distance(unknown, name), name)).min()?;
    (best.0 <= 2).then(|| format!("; did you mean `{}`?", best.1))
}

/// Levenshtein distance, for short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn validate_eal(eal: &EalConfig) -> Result<(), ConfigError> {
    let p = &eal.file_prefix;
    let ok = (1..=32).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    check(ok, "eal.file_prefix", || format!("'{p}' is not a valid file prefix (1 to 32 of A-Z a-z 0-9 _ -)"))?;
    check(!eal.pdump || eal.hugepages, "eal.pdump", || {
        "needs eal.hugepages: true (dpdk-dumpcap attaches to ferrovs' hugepage memory)".to_string()
    })?;
    in_range(eal.memory_mb, 64, 1_048_576, "eal.memory_mb")
}

fn validate_metrics(m: &MetricsConfig) -> Result<(), ConfigError> {
    let Some(listen) = &m.listen else { return Ok(()) };
    let addr = listen.parse::<std::net::SocketAddr>();
    check(addr.is_ok(), "metrics.listen", || {
        format!("'{listen}' is not ADDR:PORT (e.g. 127.0.0.1:9470 or [::1]:9470)")
    })?;
    check(addr.is_ok_and(|a| a.port() != 0), "metrics.listen", || format!("'{listen}': port 0 is not a port to scrape"))
}

fn validate_workers(w: &WorkersConfig, main_lcore: u32) -> Result<(), ConfigError> {
    let n = w.lcores.len();
    check(n <= 128, "workers.lcores", || format!("{n} worker lcores given, at most 128"))?;
    check(w.cpus.is_empty() || w.cpus.len() == n, "workers.cpus", || {
        if n == 0 {
            "cpus needs lcores: list the lcores they map".to_string()
        } else {
            format!("{} cpus for {n} lcores: give one per lcore, in the same order", w.cpus.len())
        }
    })?;
    let mut seen = HashSet::new();
    for (i, &lcore) in w.lcores.iter().enumerate() {
        let path = format!("workers.lcores[{i}]");
        check(seen.insert(lcore), &path, || format!("lcore {lcore} is listed twice"))?;
        check(lcore != main_lcore, &path, || {
            format!("lcore {lcore} is eal.main_lcore, which runs the control thread; pick another lcore")
        })?;
    }
    Ok(())
}

fn validate_mempool(m: &MempoolConfig) -> Result<(), ConfigError> {
    in_range(m.mbufs, 1023, 16_777_215, "mempool.mbufs")?;
    in_range(m.cache_size, 0, 512, "mempool.cache_size")
}

fn validate_neighbours(n: &NeighbourConfig) -> Result<(), ConfigError> {
    power_of_two_in(n.capacity.into(), 16, 1_048_576, "neighbours.capacity")?;
    in_range(n.pending_per_neighbour, 1, 64, "neighbours.pending_per_neighbour")?;
    check(n.reachable_ms > 0, "neighbours.reachable_ms", || "must be more than 0".to_string())?;
    check(n.probe_interval_ms > 0, "neighbours.probe_interval_ms", || "must be more than 0".to_string())?;
    check(n.max_probes > 0, "neighbours.max_probes", || "must be at least 1".to_string())?;
    check(n.stale_ms >= n.reachable_ms, "neighbours.stale_ms", || {
        format!("{} is shorter than neighbours.reachable_ms ({})", n.stale_ms, n.reachable_ms)
    })
}

fn validate_api(api: &ApiConfig) -> Result<(), ConfigError> {
    use std::os::unix::ffi::OsStrExt;
    let len = api.socket.as_os_str().as_bytes().len();
    check(len > 0, "api.socket", || "the socket path is empty".to_string())?;
    // sun_path holds 108 bytes including the terminating NUL.
    check(len < 108, "api.socket", || format!("the socket path is {len} bytes long, the limit is 107"))
}

fn validate_log_level(level: &str) -> Result<(), ConfigError> {
    // The daemon hands this to tracing_subscriber's EnvFilter, so accept what it accepts
    // (`info`, `ctrl=debug,warn`, ...).
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| ConfigError::new("log_level", format!("'{level}' is not a log level or filter: {e}")))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    pub const EXAMPLE: &str = r#"
eal:
  file_prefix: ferrovs-demo
  hugepages: true
  memory_mb: 512
  main_lcore: 0
  extra_args: []
workers:
  lcores: [1]
mempool:
  mbufs: 8191
  cache_size: 256
ports:
  - name: dp0
    device: "net_af_packet0,iface=veth-lb0"
    rx_descriptors: 1024
    tx_descriptors: 1024
    mtu: 1500
    promiscuous: true
addresses:
  - { port: dp0, addr: 192.0.2.1/24 }
routes:
  - { prefix: 203.0.113.0/24, via: 192.0.2.2, port: dp0 }
neighbours:
  capacity: 4096
  reachable_ms: 30000
  stale_ms: 600000
  pending_per_neighbour: 4
  probe_interval_ms: 1000
  max_probes: 3
api:
  socket: /run/ferrovs/ferrovs.sock
log_level: info
"#;

    const MINIMAL: &str = "ports:\n  - name: dp0\n    device: net_null0\n";

    /// Parses MINIMAL plus `extra`, expecting a refusal; returns the error text.
    fn refused(text: &str) -> String {
        match Config::from_yaml(text, "t.yaml") {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_refused(text: &str, wants: &[&str]) {
        let msg = refused(text);
        for want in wants {
            assert!(msg.contains(want), "message {msg:?} lacks {want:?}");
        }
    }

    fn two_ports(l3: &str) -> String {
        format!(
            "ports:\n  - {{ name: dp0, device: net_null0 }}\n  - {{ name: dp1, device: net_null1 }}\naddresses:\n  - {{ port: dp0, addr: 192.0.2.1/24 }}\n  - {{ port: dp1, addr: 198.51.100.1/24 }}\n  - {{ port: dp0, addr: '2001:db8::1/64' }}\n{l3}"
        )
    }

    #[test]
    fn example_parses_with_values() {
        let c = Config::from_yaml(EXAMPLE, "demo.yaml").unwrap();
        assert_eq!(c.eal.file_prefix, "ferrovs-demo");
        assert_eq!(
            c.ports[0].device_kind(),
            DeviceKind::Vdev { name: "net_af_packet0".into(), args: "iface=veth-lb0".into() }
        );
        assert_eq!(c.addresses[0].addr.to_string(), "192.0.2.1/24");
        assert_eq!(c.routes[0].via, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(c.api.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn example_round_trips() {
        let c = Config::from_yaml(EXAMPLE, "demo.yaml").unwrap();
        let again = Config::from_yaml(&c.to_yaml(), "again").unwrap();
        assert_eq!(c, again);
        // A route without via/port serialises without those keys.
        let r = RouteConfig { prefix: "10.0.0.0/8".parse().unwrap(), via: None, port: Some("dp0".into()) };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"prefix":"10.0.0.0/8","port":"dp0"}"#);
    }

    #[test]
    fn appliance_config_is_valid() {
        let c = Config::from_yaml(include_str!("../../../conf/appliance.yaml"), "conf/appliance.yaml").unwrap();
        let modes: Vec<&str> = c.services.iter().map(|s| s.mode.as_str()).collect();
        assert_eq!(modes, ["fullnat", "nat", "dr", "tun", "nat64"]);
        let tunnel = c.services[3].tunnel.unwrap();
        assert_eq!((tunnel.encap.as_str(), tunnel.gue_port), ("gue", 6080));
        assert_eq!(c.snat[0].name(), "source 198.51.100.0/24 out-port outside");
        assert_eq!(c.announce, Some(AnnounceConfig { table: 100, protocol: 250 }));
        assert_eq!(Config::from_yaml(&c.to_yaml(), "again").unwrap(), c);
        // Its commented client_address, uncommented, is valid and survives a round trip.
        let appliance =
            include_str!("../../../conf/appliance.yaml").replace("    # client_address:", "    client_address:");
        let c = Config::from_yaml(&appliance, "conf/appliance.yaml").unwrap();
        assert_eq!(c.services[0].client_address, ClientAddressMode::ProxyV2);
        assert_eq!(Config::from_yaml(&c.to_yaml(), "again").unwrap(), c);
    }

    #[test]
    fn snat_is_checked_against_the_ports() {
        let snat = "snat:\n  - { source: 10.0.0.0/8, out_port: dp2, addresses: [198.51.100.50] }\n";
        assert_refused(&two_ports(snat), &["t.yaml: snat[0].out_port: no port named 'dp2' (ports are: dp0, dp1)"]);
        let c = Config::from_yaml(&two_ports(&snat.replace("dp2", "dp1")), "t").unwrap();
        assert_eq!(c.snat[0].addresses, vec!["198.51.100.50".parse::<IpAddr>().unwrap()]);
        assert_eq!(Config::from_yaml(&c.to_yaml(), "again").unwrap(), c);
    }

    #[test]
    fn minimal_gets_defaults() {
        let c = Config::from_yaml(MINIMAL, "m").unwrap();
        assert_eq!(c.eal, EalConfig::default());
        assert!(c.workers.lcores.is_empty(), "derived at start-up");
        assert!(c.workers.cpus.is_empty());
        assert_eq!(c.mempool, MempoolConfig::default());
        assert_eq!(c.neighbours, NeighbourConfig::default());
        assert_eq!(c.log_level, "info");
        let p = &c.ports[0];
        assert_eq!((p.rx_descriptors, p.tx_descriptors, p.mtu, p.promiscuous), (1024, 1024, 1500, true));
        assert_eq!(p.device_kind(), DeviceKind::Vdev { name: "net_null0".into(), args: String::new() });
    }

    #[test]
    fn pci_devices() {
        let c = Config::from_yaml(
            "ports:\n  - { name: p0, device: '0000:3B:00.0' }\n  - { name: p1, device: '3b:00.1' }\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.ports[0].device_kind(), DeviceKind::Pci("0000:3b:00.0".into()));
        assert_eq!(c.ports[1].device_kind(), DeviceKind::Pci("0000:3b:00.1".into()));
        assert_refused(
            "ports:\n  - { name: p0, device: '0000:3b:00.0' }\n  - { name: p1, device: '3b:00.0' }\n",
            &["t.yaml: ports[1].device: device '0000:3b:00.0' is already used by ports[0] (p0)"],
        );
        assert_refused("ports:\n  - { name: p0, device: eth0 }\n", &["ports[0].device: 'eth0' is neither"]);
    }

    #[test]
    fn serde_errors_carry_path_and_position() {
        let text = EXAMPLE.replace("via: 192.0.2.2", "via: 192.0.2.300");
        let err = Config::from_yaml(&text, "conf/demo.yaml").unwrap_err();
        assert_eq!(err.path, "routes[0].via");
        assert!(err.location.is_some());
        let msg = err.to_string();
        assert!(msg.starts_with("conf/demo.yaml: routes[0].via: invalid IP address syntax (line 23, column "), "{msg}");
        // The path of a field in the second list element.
        let text =
            two_ports("routes:\n  - { prefix: 10.0.0.0/8, port: dp0 }\n  - { prefix: 10.1.0.0/16, via: nope }\n");
        let err = Config::from_yaml(&text, "t").unwrap_err();
        assert_eq!(err.path, "routes[1].via");
        assert!(!err.message.contains("line"), "{err:?}");
    }

    #[test]
    fn bad_prefix_names_field() {
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0 }\naddresses:\n  - { port: dp0, addr: 192.0.2.1/33 }\n",
            &["t.yaml: addresses[0].addr: prefix length /33 is longer than /32 (line 4"],
        );
    }

    #[test]
    fn unknown_fields_refused() {
        assert_refused(
            &format!("{MINIMAL}portz: []\n"),
            &["t.yaml: portz: unknown field `portz`, expected one of", "; did you mean `ports`? (line 4, column 1)"],
        );
        assert_refused(&format!("{MINIMAL}bogus: 1\n"), &["unknown field `bogus`"]);
        assert!(!refused(&format!("{MINIMAL}bogus: 1\n")).contains("did you mean"));
        assert_refused(
            "ports:\n  - name: dp0\n    device: net_null0\n    mtuu: 9000\n",
            &["ports[0]", "unknown field `mtuu`"],
        );
        assert_refused(&format!("{MINIMAL}eal:\n  memory: 1024\n"), &["eal.memory: unknown field `memory`"]);
        assert_refused(&format!("{MINIMAL}neighbors:\n  capacity: 16\n"), &["did you mean `neighbours`?"]);
        assert_refused("eal: {}\n", &["missing field `ports`"]);
        assert_refused("", &["the config is empty"]);
        assert_refused("ports: [\n", &["t.yaml: "]);
    }

    #[test]
    fn wrong_types_refused() {
        assert_refused(&format!("{MINIMAL}mempool:\n  mbufs: lots\n"), &["mempool.mbufs: invalid type"]);
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0, mtu: 70000 }\n",
            &["ports[0].mtu: invalid value: integer `70000`"],
        );
    }

    #[test]
    fn ranges_refused() {
        let cases: &[(&str, &str)] = &[
            ("eal:\n  file_prefix: 'a b'\n", "eal.file_prefix: 'a b' is not a valid file prefix"),
            ("eal:\n  memory_mb: 32\n", "eal.memory_mb: 32 is out of range, must be 64..=1048576"),
            ("workers:\n  cpus: [1]\n", "workers.cpus: cpus needs lcores"),
            ("workers:\n  lcores: [1, 2]\n  cpus: [1]\n", "workers.cpus: 1 cpus for 2 lcores"),
            ("workers:\n  lcores: [1, 2, 1]\n", "workers.lcores[2]: lcore 1 is listed twice"),
            ("workers:\n  lcores: [0]\n", "workers.lcores[0]: lcore 0 is eal.main_lcore"),
            ("mempool:\n  mbufs: 100\n", "mempool.mbufs: 100 is out of range"),
            ("mempool:\n  cache_size: 513\n", "mempool.cache_size: 513 is out of range, must be 0..=512"),
            ("neighbours:\n  capacity: 1000\n", "neighbours.capacity: 1000 must be a power of two from 16 to 1048576"),
            ("neighbours:\n  pending_per_neighbour: 0\n", "neighbours.pending_per_neighbour: 0 is out of range"),
            ("neighbours:\n  stale_ms: 10\n", "neighbours.stale_ms: 10 is shorter than neighbours.reachable_ms"),
            ("neighbours:\n  max_probes: 0\n", "neighbours.max_probes: must be at least 1"),
            ("log_level: 'debug=debug=x'\n", "log_level: 'debug=debug=x' is not a log level"),
            ("api:\n  socket: ''\n", "api.socket: the socket path is empty"),
            ("announce: { table: 254 }\n", "announce.table: table 254 is one of the kernel's own (0 unspec, 253 default, 254 main, 255 local); pick one for ferrovs alone, e.g. 100"),
            ("announce: { table: 0 }\n", "announce.table: table 0 is one of the kernel's own"),
            ("announce: { table: 100, protocol: 4 }\n", "announce.protocol: protocol 4 belongs to the kernel or to others"),
            ("announce: { table: 100, protocol: 12 }\n", "announce.protocol: protocol 12 belongs to the kernel or to others (0-4: kernel, boot, static; 12: BIRD's own routes, which BIRD would remove)"),
            ("announce: { protocol: 250 }\n", "announce: missing field `table`"),
            ("announce: { table: 100, proto: 250 }\n", "announce.proto: unknown field `proto`, expected `table` or `protocol`"),
            ("metrics:\n  listen: localhost\n", "metrics.listen: 'localhost' is not ADDR:PORT"),
            ("metrics:\n  listen: 127.0.0.1:0\n", "metrics.listen: '127.0.0.1:0': port 0"),
            ("metrics:\n  listen: 1.2.3.4\n", "metrics.listen: '1.2.3.4' is not ADDR:PORT"),
            ("eal:\n  hugepages: false\n  pdump: true\n", "eal.pdump: needs eal.hugepages: true"),
        ];
        for (extra, want) in cases {
            assert_refused(&format!("{MINIMAL}{extra}"), &[want]);
        }
    }

    #[test]
    fn kernel_interfaces() {
        let yaml = "ports:\n  - name: dp0\n    device: net_af_packet0,iface=veth-lb0\n    kernel:\n      name: fvs-dp0\n  - name: dp1\n    device: net_null1\n    kernel: { name: fvs-dp1, device: virtio_user, rate_pps: 500, burst: 50 }\n";
        let c = Config::from_yaml(yaml, "t.yaml").unwrap();
        let k0 = c.ports[0].kernel.clone().unwrap();
        assert_eq!(
            (k0.name.as_str(), k0.device, k0.rate_pps, k0.burst),
            ("fvs-dp0", KernelDevice::Tap, 20_000, 2_000),
            "defaults"
        );
        let mac = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(k0.vdev("dp0", mac, 2), "net_tap_k_dp0,iface=fvs-dp0,mac=02:00:00:00:00:01");
        let k1 = c.ports[1].kernel.clone().unwrap();
        assert_eq!((k1.device, k1.rate_pps, k1.burst), (KernelDevice::VirtioUser, 500, 50));
        assert_eq!(
            k1.vdev("dp1", mac, 2),
            "virtio_user_k_dp1,path=/dev/vhost-net,iface=fvs-dp1,mac=02:00:00:00:00:01,queues=2,queue_size=1024"
        );
        assert_eq!(c.ports[0].kernel.as_ref().map(|k| k.device.as_str()), Some("tap"));
        // The appliance's commented block, uncommented, is a virtio_user interface.
        let appliance = include_str!("../../../conf/appliance.yaml").replace("    # kernel:", "    kernel:");
        let appliance = appliance.replace("    #   name:", "      name:").replace("    #   device:", "      device:");
        let c = Config::from_yaml(&appliance, "conf/appliance.yaml").unwrap();
        let k = c.ports[0].kernel.clone().expect("the appliance's kernel block");
        assert_eq!((k.name.as_str(), k.device), ("fvs-outside", KernelDevice::VirtioUser));
        let port = |kernel: &str| format!("ports:\n  - {{ name: dp0, device: net_null0, kernel: {kernel} }}\n");
        for (kernel, want) in [
            ("{ name: 'a/b' }", "ports[0].kernel.name: 'a/b' is not a valid Linux interface name"),
            ("{ name: abcdefghijklmnop }", "ports[0].kernel.name: 'abcdefghijklmnop' is not a valid"),
            ("{ name: '' }", "ports[0].kernel.name: '' is not a valid"),
            ("{ name: k0, rate_pps: 0 }", "ports[0].kernel.rate_pps: 0 is out of range, must be 1..=10000000"),
            ("{ name: k0, burst: 0 }", "ports[0].kernel.burst: 0 is out of range"),
            ("{ name: k0, device: kni }", "unknown variant `kni`, expected `tap` or `virtio_user`"),
            ("{ name: k0, mtu: 1500 }", "unknown field `mtu`"),
            ("{ device: tap }", "missing field `name`"),
        ] {
            assert_refused(&port(kernel), &[want]);
        }
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0, kernel: { name: k } }\n  - { name: dp1, device: net_null1, kernel: { name: k } }\n",
            &["ports[1].kernel.name: kernel interface 'k' is already ports[0]'s (dp0)"],
        );
    }

    #[test]
    fn ports_refused() {
        assert_refused("ports: []\n", &["ports: 0 ports given, must be 1 to 16"]);
        assert_refused(
            "ports:\n  - { name: Dp0, device: net_null0 }\n",
            &["ports[0].name: 'Dp0' is not a valid port name"],
        );
        assert_refused(
            "ports:\n  - { name: abcdefghijklmnop, device: net_null0 }\n",
            &["ports[0].name: 'abcdefghijklmnop' is not a valid port name"],
        );
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0 }\n  - { name: dp0, device: net_null1 }\n",
            &["ports[1].name: port name 'dp0' is already used by ports[0]"],
        );
        assert_refused(
            "ports:\n  - { name: dp0, device: 'net_tap0,iface=a' }\n  - { name: dp1, device: 'net_tap0,iface=b' }\n",
            &["ports[1].device: device 'net_tap0' is already used by ports[0] (dp0)"],
        );
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0, rx_descriptors: 1000 }\n",
            &["ports[0].rx_descriptors: 1000 must be a power of two"],
        );
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0, tx_descriptors: 32 }\n",
            &["ports[0].tx_descriptors: 32"],
        );
        assert_refused(
            "ports:\n  - { name: dp0, device: net_null0, mtu: 9601 }\n",
            &["ports[0].mtu: 9601 is out of range, must be 68..=9600"],
        );
    }

    #[test]
    fn addresses_refused() {
        assert_refused(
            &two_ports("  - { port: dp9, addr: 10.0.0.1/8 }\n"),
            &["t.yaml: addresses[3].port: no port named 'dp9' (ports are: dp0, dp1)"],
        );
        assert_refused(
            &two_ports("  - { port: dp1, addr: 192.0.2.1/25 }\n"),
            &["addresses[3].addr: 192.0.2.1 is already an address of port dp0 (addresses[0])"],
        );
        assert_refused(
            &two_ports("  - { port: dp1, addr: 192.0.2.9/24 }\n"),
            &["addresses[3].addr: network 192.0.2.0/24 is already connected to port dp0"],
        );
        assert_refused(
            &two_ports("  - { port: dp1, addr: 10.0.0.0/8 }\n"),
            &["addresses[3].addr: 10.0.0.0/8 is the network address itself; give the port's own address, e.g. 10.0.0.1/8"],
        );
        assert_refused(
            &two_ports("  - { port: dp1, addr: 10.255.255.255/8 }\n"),
            &["is the broadcast address of 10.0.0.0/8"],
        );
        assert_refused(&two_ports("  - { port: dp1, addr: 0.0.0.0/0 }\n"), &["0.0.0.0 cannot be an interface address"]);
        // Two addresses of one network on one port are fine, so is a /31 or /32.
        Config::from_yaml(
            &two_ports("  - { port: dp0, addr: 192.0.2.7/24 }\n  - { port: dp1, addr: 10.0.0.0/31 }\n"),
            "t",
        )
        .unwrap();
    }

    #[test]
    fn routes_refused() {
        let cases: &[(&str, &str)] = &[
            ("routes:\n  - { prefix: 203.0.113.5/24, via: 192.0.2.2 }\n", "routes[0].prefix: 203.0.113.5/24 has host bits set, did you mean 203.0.113.0/24?"),
            (
                "routes:\n  - { prefix: 203.0.113.0/24, via: 192.0.2.2 }\n  - { prefix: 203.0.113.0/24, via: 192.0.2.3 }\n",
                "routes[1].prefix: a route to 203.0.113.0/24 already exists (routes[0])",
            ),
            ("routes:\n  - { prefix: 203.0.113.0/24, via: '2001:db8::2' }\n", "routes[0].via: next hop 2001:db8::2 is IPv6 but the prefix 203.0.113.0/24 is IPv4"),
            ("routes:\n  - { prefix: 203.0.113.0/24 }\n", "routes[0].via: route to 203.0.113.0/24 needs a 'via' next hop, a 'port', or both"),
            ("routes:\n  - { prefix: 203.0.113.0/24, via: 10.9.9.9 }\n", "routes[0].via: next hop 10.9.9.9 is not in any connected network"),
            ("routes:\n  - { prefix: 203.0.113.0/24, via: 192.0.2.2, port: dp7 }\n", "routes[0].port: no port named 'dp7' (ports are: dp0, dp1)"),
            ("routes:\n  - { prefix: 203.0.113.0/24, via: 192.0.2.2, port: dp1 }\n", "routes[0].via: next hop 192.0.2.2 is on port dp0's network 192.0.2.0/24, not on port dp1"),
            ("routes:\n  - { prefix: 203.0.113.0/24, via: 192.0.2.1 }\n", "routes[0].via: 192.0.2.1 is ferrovs's own address on port dp0"),
            ("routes:\n  - { prefix: 192.0.2.0/24, port: dp0 }\n", "routes[0].prefix: 192.0.2.0/24 is the connected network of 192.0.2.1/24 on port dp0"),
        ];
        for (routes, want) in cases {
            assert_refused(&two_ports(routes), &[want]);
        }
    }

    #[test]
    fn routes_accepted_and_resolved() {
        let text = two_ports(
            "routes:\n  - { prefix: 0.0.0.0/0, via: 198.51.100.254 }\n  - { prefix: 10.0.0.0/8, port: dp0 }\n  - { prefix: 172.16.0.0/12, via: 172.31.0.1, port: dp1 }\n  - { prefix: '2001:db8:1::/48', via: '2001:db8::ff' }\n",
        );
        let c = Config::from_yaml(&text, "t").unwrap();
        let ports: Vec<_> = c.routes.iter().map(|r| r.resolved_port(&c.addresses)).collect();
        let want = ["dp1", "dp0", "dp1", "dp0"].map(|p| Some(p.to_string()));
        assert_eq!(ports, want);
        let orphan =
            RouteConfig { prefix: "10.0.0.0/8".parse().unwrap(), via: Some("10.1.1.1".parse().unwrap()), port: None };
        assert_eq!(orphan.resolved_port(&c.addresses), None);
    }

    #[test]
    fn validate_l3_on_its_own() {
        let c = Config::from_yaml(EXAMPLE, "demo.yaml").unwrap();
        let mut addresses = c.addresses.clone();
        addresses.push(AddressConfig { port: "dp1".into(), addr: "10.0.0.1/8".parse().unwrap() });
        let err = validate_l3(&c.ports, &addresses, &c.routes).unwrap_err();
        assert_eq!(err.message, "no port named 'dp1' (ports are: dp0)");
        assert_eq!(err.to_string(), "addresses[1].port: no port named 'dp1' (ports are: dp0)");
        // Removing the address a port-less route's next hop depends on is refused.
        let mut routes = c.routes.clone();
        routes[0].port = None;
        validate_l3(&c.ports, &c.addresses, &routes).unwrap();
        let err = validate_l3(&c.ports, &[], &routes).unwrap_err();
        assert!(err.message.starts_with("next hop 192.0.2.2 is not in any connected network"), "{err}");
        // With a port the next hop is on-link there even without an address on its network.
        validate_l3(&c.ports, &[], &c.routes).unwrap();
    }

    #[test]
    fn changes_and_differences() {
        let old = Config::from_yaml(EXAMPLE, "a").unwrap();
        let mut new = old.clone();
        new.addresses.push(AddressConfig { port: "dp0".into(), addr: "198.51.100.1/24".parse().unwrap() });
        new.routes.clear();
        new.eal.memory_mb = 1024;
        new.log_level = "debug".into();
        let changes = l3_changes(&old.addresses, &old.routes, &new.addresses, &new.routes);
        assert_eq!(
            changes,
            vec![
                "route del 203.0.113.0/24 via 192.0.2.2 dev dp0".to_string(),
                "addr add 198.51.100.1/24 dev dp0".to_string(),
            ]
        );
        assert_eq!(old.static_differences(&new), vec!["eal", "log_level"]);
        assert!(old.static_differences(&old).is_empty());
    }
}
