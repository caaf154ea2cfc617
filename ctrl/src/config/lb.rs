//! The load-balancing part of the config model: services, their backends and local
//! addresses, SNAT rules, and the connection-table settings. Uses [`super::l3`] (a service
//! is checked against the ports and their addresses) and [`super::error`], nothing above. The YAML file and the admin API
//! share these types; `validate_services` is the one check every change goes through, so
//! `fvs service add`, `fvs backend set`, `fvs snat add` and `fvs apply` are refused with the
//! same words.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use dataplane::net::Prefix;
use dataplane::sched::{is_prime, SchedKind, DEFAULT_MAGLEV_SIZE};
use dataplane::wire::IpProtocol;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::health::{validate_health, validate_passive, AllDownPolicy, DownPolicy, HealthSpec, PassiveConfig};
use super::l3::{port_exists, AddressConfig, PortConfig};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
    /// The IP protocol.
    pub fn ip_protocol(self) -> IpProtocol {
        match self {
            Protocol::Tcp => IpProtocol::TCP,
            Protocol::Udp => IpProtocol::UDP,
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("'{s}' is not a protocol (tcp or udp)")),
        }
    }
}

/// How a service forwards. `nat` rewrites the destination (backends route replies through
/// ferrovs); `fullnat` rewrites both ends, so backends reply to a local address of ferrovs;
/// `dr` sends the unchanged frame to the backend's MAC and `tun` encapsulates the packet to the
/// backend: in both the backend holds the VIP and answers the client directly. `nat64` is
/// fullnat from an IPv6 VIP to IPv4 backends, from IPv4 local addresses, each packet's header
/// translated between the two (RFC 7915). It is a mode of its own, not a fullnat setting: the
/// one service whose addresses are of two families says so where its families are read, and
/// an IPv4 backend added to an IPv6 fullnat service by mistake stays an error.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    #[default]
    Nat,
    Fullnat,
    Dr,
    Tun,
    Nat64,
}

impl ForwardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMode::Nat => "nat",
            ForwardMode::Fullnat => "fullnat",
            ForwardMode::Dr => "dr",
            ForwardMode::Tun => "tun",
            ForwardMode::Nat64 => "nat64",
        }
    }

    /// FullNAT and NAT64 take the source from local addresses (`laddrs`).
    pub fn uses_laddrs(self) -> bool {
        matches!(self, ForwardMode::Fullnat | ForwardMode::Nat64)
    }

    /// DR and TUN deliver the client's packet as it came (only an outer header may be added),
    /// so the backend listens on the service's own port.
    pub fn keeps_packet(self) -> bool {
        matches!(self, ForwardMode::Dr | ForwardMode::Tun)
    }
}

impl FromStr for ForwardMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nat" => Ok(ForwardMode::Nat),
            "fullnat" => Ok(ForwardMode::Fullnat),
            "dr" => Ok(ForwardMode::Dr),
            "tun" => Ok(ForwardMode::Tun),
            "nat64" => Ok(ForwardMode::Nat64),
            _ => Err(format!("'{s}' is not a forwarding mode (nat, fullnat, dr, tun or nat64)")),
        }
    }
}

/// The outer header of TUN mode: IPv4 in IPv4, or GUE (the inner packet in UDP to `gue_port`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encapsulation {
    #[default]
    Ipip,
    Gue,
}

impl Encapsulation {
    pub fn as_str(self) -> &'static str {
        match self {
            Encapsulation::Ipip => "ipip",
            Encapsulation::Gue => "gue",
        }
    }
}

impl FromStr for Encapsulation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ipip" => Ok(Encapsulation::Ipip),
            "gue" => Ok(Encapsulation::Gue),
            _ => Err(format!("'{s}' is not an encapsulation (ipip or gue)")),
        }
    }
}

/// Whether a service's SYNs are answered by ferrovs's SYN proxy.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum SynProxyMode {
    #[default]
    Off,
    On,
    /// On while a worker core is under a SYN flood (`connections.syn_proxy_auto`).
    Auto,
}

impl SynProxyMode {
    pub fn is_off(&self) -> bool {
        *self == SynProxyMode::Off
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SynProxyMode::Off => "off",
            SynProxyMode::On => "on",
            SynProxyMode::Auto => "auto",
        }
    }
}

/// How a FullNAT service's backends learn the client's address (they see only ferrovs's
/// local address otherwise): `proxy_v2` or `proxy_v1` sends a PROXY protocol header (haproxy's
/// spec; binary v2 or text v1) at the start of each TCP connection to the backend, ahead of the
/// client's bytes, and shifts the connection's sequence numbers for it; `toa` puts the TOA TCP
/// option (kind 254, as LVS and DPVS do, for backends running the TOA kernel module) on the
/// connection's first segments to the backend.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAddressMode {
    #[default]
    Off,
    ProxyV1,
    ProxyV2,
    Toa,
}

impl ClientAddressMode {
    pub fn is_off(&self) -> bool {
        *self == ClientAddressMode::Off
    }

    pub fn as_str(self) -> &'static str {
        self.dataplane().as_str()
    }

    pub fn dataplane(self) -> dataplane::xlate::clientaddr::ClientAddr {
        use dataplane::xlate::clientaddr::ClientAddr;
        match self {
            ClientAddressMode::Off => ClientAddr::Off,
            ClientAddressMode::ProxyV1 => ClientAddr::ProxyV1,
            ClientAddressMode::ProxyV2 => ClientAddr::ProxyV2,
            ClientAddressMode::Toa => ClientAddr::Toa,
        }
    }
}

impl FromStr for ClientAddressMode {
    type Err = String;
    /// The YAML spelling (`proxy_v2`), or with a dash as the CLI writes words (`proxy-v2`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.replace('-', "_").as_str() {
            "off" => Ok(ClientAddressMode::Off),
            "proxy_v1" => Ok(ClientAddressMode::ProxyV1),
            "proxy_v2" => Ok(ClientAddressMode::ProxyV2),
            "toa" => Ok(ClientAddressMode::Toa),
            _ => Err(format!("'{s}' is not a client address mode (proxy_v2, proxy_v1, toa or off)")),
        }
    }
}

/// What happens to a TUN packet that no longer fits the MTU once encapsulated: `icmp` tells
/// the client the size that fits (fragmentation needed), `drop` drops it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum TooBigPolicy {
    #[default]
    Icmp,
    Drop,
}

impl TooBigPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TooBigPolicy::Icmp => "icmp",
            TooBigPolicy::Drop => "drop",
        }
    }
}

impl FromStr for TooBigPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "icmp" => Ok(TooBigPolicy::Icmp),
            "drop" => Ok(TooBigPolicy::Drop),
            _ => Err(format!("'{s}' is not a too-big policy (icmp or drop)")),
        }
    }
}

/// The UDP port of GUE unless the service says otherwise.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// The `tunnel` section of a TUN service.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelConfig {
    pub encap: Encapsulation,
    /// Where GUE packets go on the backend (its decapsulating listener); unused with ipip.
    pub gue_port: u16,
    pub too_big: TooBigPolicy,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig { encap: Encapsulation::default(), gue_port: DEFAULT_GUE_PORT, too_big: TooBigPolicy::default() }
    }
}

/// `active` backends get new connections. `draining` ones get none but keep their
/// connections and their persistent clients (an operator taking a backend out gracefully);
/// `inhibited` ones get none and persistence to them is ignored (a failed health check).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    #[default]
    Active,
    Draining,
    Inhibited,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Active => "active",
            BackendState::Draining => "draining",
            BackendState::Inhibited => "inhibited",
        }
    }
}

impl FromStr for BackendState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(BackendState::Active),
            "draining" => Ok(BackendState::Draining),
            "inhibited" => Ok(BackendState::Inhibited),
            _ => Err(format!("'{s}' is not a backend state (active, draining or inhibited)")),
        }
    }
}

/// What happens to the connections of a removed backend: `drain` lets them run until they
/// end or time out; `reset` ends them at their next packet (TCP gets a RST).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum RemovalPolicy {
    #[default]
    Drain,
    Reset,
}

impl RemovalPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPolicy::Drain => "drain",
            RemovalPolicy::Reset => "reset",
        }
    }
}

impl FromStr for RemovalPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drain" => Ok(RemovalPolicy::Drain),
            "reset" => Ok(RemovalPolicy::Reset),
            _ => Err(format!("'{s}' is not a removal policy (drain or reset)")),
        }
    }
}

/// What names a service: `tcp 192.0.2.100:80`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol.as_str(), std::net::SocketAddr::new(self.vip, self.port))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    #[serde(default = "default_scheduler")]
    pub scheduler: SchedKind,
    #[serde(default)]
    pub mode: ForwardMode,
    /// Seconds a client keeps going to the same backend after its last connection; 0: off.
    #[serde(default)]
    pub persistence_s: u32,
    #[serde(default)]
    pub on_backend_removal: RemovalPolicy,
    /// Maglev table size (the `mh` scheduler); a prime.
    #[serde(default = "default_maglev_size")]
    pub maglev_size: u32,
    /// FullNAT source addresses. Each worker core owns its own share of their ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub laddrs: Vec<IpAddr>,
    /// TUN settings; only a `tun` service may have them (defaults when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelConfig>,
    /// Mid-flow pickup (TCP in dr or tun mode): a packet other than a SYN without a
    /// connection entry opens one. Unset: on for the `mh` scheduler, off otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<bool>,
    /// SYN proxy (tcp in nat or fullnat mode): SYNs are answered by ferrovs with a SYN
    /// cookie and a backend sees the connection only once the client completes it.
    #[serde(default, skip_serializing_if = "SynProxyMode::is_off")]
    pub syn_proxy: SynProxyMode,
    /// The client's address for the backends (fullnat tcp only): `proxy_v2`, `proxy_v1`,
    /// `toa` or `off` (see [`ClientAddressMode`]).
    #[serde(default, skip_serializing_if = "ClientAddressMode::is_off")]
    pub client_address: ClientAddressMode,
    /// Sources (IPv4 prefixes) that may not open connections to this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Prefix>,
    /// When not empty, only these sources may open connections to this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Prefix>,
    /// Rates of new connections (whole box; each worker core takes its share).
    #[serde(default, skip_serializing_if = "LimitsConfig::is_none")]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// The active check of every backend (each may override fields); none when absent. Boxed,
    /// as it is large and mostly absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Box<HealthSpec>>,
    /// Passive detection of failed new connections in the data path; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveConfig>,
    /// What becomes of a backend's connections when it turns unhealthy.
    #[serde(default)]
    pub on_backend_down: DownPolicy,
    /// What the service does when every backend is down.
    #[serde(default)]
    pub all_down: AllDownPolicy,
}

fn default_scheduler() -> SchedKind {
    SchedKind::Wlc
}
fn default_maglev_size() -> u32 {
    DEFAULT_MAGLEV_SIZE as u32
}
fn default_weight() -> u32 {
    1
}

impl ServiceConfig {
    pub fn key(&self) -> ServiceKey {
        ServiceKey { protocol: self.protocol, vip: self.vip, port: self.port }
    }

    /// A service with defaults for everything but its name.
    pub fn new(key: ServiceKey) -> ServiceConfig {
        ServiceConfig {
            vip: key.vip,
            port: key.port,
            protocol: key.protocol,
            scheduler: default_scheduler(),
            mode: ForwardMode::default(),
            persistence_s: 0,
            on_backend_removal: RemovalPolicy::default(),
            maglev_size: default_maglev_size(),
            laddrs: Vec::new(),
            tunnel: None,
            pickup: None,
            syn_proxy: SynProxyMode::Off,
            client_address: ClientAddressMode::Off,
            deny: Vec::new(),
            allow: Vec::new(),
            limits: LimitsConfig::default(),
            backends: Vec::new(),
            health: None,
            passive: None,
            on_backend_down: DownPolicy::default(),
            all_down: AllDownPolicy::default(),
        }
    }

    /// Whether a TCP packet other than a SYN without a connection entry opens one (IPVS's
    /// sloppy TCP). Only DR and TUN see no replies, so only they can continue a connection
    /// begun on another balancer; with `mh` every balancer built from the same config picks
    /// the same backend for it, hence the default.
    pub fn pickup(&self) -> bool {
        self.protocol == Protocol::Tcp
            && self.mode.keeps_packet()
            && self.pickup.unwrap_or(self.scheduler == SchedKind::Mh)
    }

    /// The VIP is worth announcing to routers: at least one backend can take a new
    /// connection. The one definition the control state, `service show` and the health
    /// checks go by.
    pub fn has_usable_backend(&self) -> bool {
        self.backends.iter().any(BackendConfig::is_usable)
    }

    /// The tunnel this service uses in TUN mode: its own settings or the defaults.
    pub fn tunnel_or_default(&self) -> TunnelConfig {
        self.tunnel.unwrap_or_default()
    }

    pub fn backend(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.backends.iter().position(|b| b.addr == addr && b.port == port)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub addr: IpAddr,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub state: BackendState,
    /// Fields of the service's health block this backend has otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Box<HealthSpec>>,
    /// Most connections (any state) at once; 0: no limit. Each worker core takes its share
    /// (rounded up); the scheduler passes over a backend at its maximum.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_conns: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A service's new-connection rates; 0: no limit.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// New connections per second to the service, from all clients.
    pub conns_per_s: u32,
    /// New connections per second from one client address.
    pub source_conns_per_s: u32,
    /// How many a client may open at once above its rate (default: one second's worth).
    pub source_burst: u32,
}

impl LimitsConfig {
    pub fn is_none(&self) -> bool {
        *self == LimitsConfig::default()
    }
}

/// Most prefixes in all access lists together (the global deny list and the services').
pub const MAX_ACL_PREFIXES: usize = 1 << 20;

/// An access-list entry must be IPv4 (the data path is).
pub fn validate_acl(list: &[Prefix], path: &str) -> Result<(), ConfigError> {
    for (i, p) in list.iter().enumerate() {
        if !p.addr().is_ipv4() {
            return Err(err(format!("{path}[{i}]"), format!("{p}: IPv6 prefixes are not supported yet (IPv4 only)")));
        }
    }
    Ok(())
}

impl BackendConfig {
    /// Takes new connections: active with a weight above 0.
    pub fn is_usable(&self) -> bool {
        self.state == BackendState::Active && self.weight > 0
    }
}

/// A source-NAT rule: outbound TCP and UDP connections from `source` that leave by the port
/// named `out_port` get one of `addresses` (and a local port of it) as their source. Rules are
/// tried in order; the first that matches wins.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct SnatConfig {
    pub source: Prefix,
    pub out_port: String,
    pub addresses: Vec<IpAddr>,
}

impl SnatConfig {
    /// What names a rule, in the words of `fvs snat del`: `source 198.51.100.0/24 out-port dp0`.
    pub fn name(&self) -> String {
        snat_name(self.source, &self.out_port)
    }
}

/// `source PREFIX out-port PORT`, as a rule is named in messages and commands.
pub fn snat_name(source: Prefix, out_port: &str) -> String {
    format!("source {source} out-port {out_port}")
}

/// The connection tables: sizes are fixed at start (restart to change), timeouts are not.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Tracked connections per worker core.
    pub capacity: u32,
    /// Of those, how many may be half-open TCP connections (handshake not completed) per
    /// core; a SYN past it is refused and counted (`drop_half_open_full`), so a SYN flood
    /// cannot fill the table. Unset: half the capacity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_capacity: Option<u32>,
    /// Tracked IPv6 connections per worker core (a table of their own).
    pub capacity6: u32,
    /// Persistence records (client, service) per worker core.
    pub persistence_capacity: u32,
    /// Most backends alive at once, over all services.
    pub max_backends: u32,
    /// Most distinct local addresses: FullNAT laddrs of all services and SNAT addresses.
    pub max_laddrs: u32,
    /// FullNAT and SNAT local ports are taken from this range (inclusive), split between the
    /// cores.
    pub lport_min: u16,
    pub lport_max: u16,
    /// Seconds a TCP local port rests after its connection ends before it is handed out again,
    /// where the pool allows (backends keep the old tuple in TIME_WAIT, 60 s on Linux); 0: no
    /// rest. Reuses that could not wait are counted as `lport_reused_early`.
    pub lport_quiet_s: u32,
    /// When `syn_proxy: auto` services are proxied on a worker core.
    #[serde(skip_serializing_if = "SynProxyAutoConfig::is_default")]
    pub syn_proxy_auto: SynProxyAutoConfig,
    pub timeouts: TimeoutsConfig,
}

/// `syn_proxy: auto` engages on a worker core while its half-open TCP connections are at
/// least `half_open` or it receives at least `syns_per_s` SYNs a second for auto services,
/// and disengages after a second below both. 0 turns a trigger off.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SynProxyAutoConfig {
    /// Unset: a quarter of `half_open_capacity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open: Option<u32>,
    pub syns_per_s: u32,
}

impl Default for SynProxyAutoConfig {
    fn default() -> Self {
        SynProxyAutoConfig { half_open: None, syns_per_s: dataplane::service::DEFAULT_AUTO_SYNS_PER_S }
    }
}

impl SynProxyAutoConfig {
    pub fn is_default(&self) -> bool {
        *self == SynProxyAutoConfig::default()
    }
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            capacity: 1 << 20,
            half_open_capacity: None,
            capacity6: 1 << 16,
            persistence_capacity: 1 << 16,
            max_backends: 4096,
            max_laddrs: 64,
            lport_min: 1024,
            lport_max: 65535,
            lport_quiet_s: 60,
            syn_proxy_auto: SynProxyAutoConfig::default(),
            timeouts: TimeoutsConfig::default(),
        }
    }
}

/// Idle timeouts in seconds per TCP state (the LVS state names) and for UDP. The defaults are
/// IPVS's.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_listen: u32,
    pub tcp_synack: u32,
    pub udp: u32,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_listen: 120,
            tcp_synack: 120,
            udp: 300,
        }
    }
}

impl TimeoutsConfig {
    fn fields(&self) -> [(&'static str, u32); 11] {
        [
            ("tcp_established", self.tcp_established),
            ("tcp_syn_sent", self.tcp_syn_sent),
            ("tcp_syn_recv", self.tcp_syn_recv),
            ("tcp_fin_wait", self.tcp_fin_wait),
            ("tcp_time_wait", self.tcp_time_wait),
            ("tcp_close", self.tcp_close),
            ("tcp_close_wait", self.tcp_close_wait),
            ("tcp_last_ack", self.tcp_last_ack),
            ("tcp_listen", self.tcp_listen),
            ("tcp_synack", self.tcp_synack),
            ("udp", self.udp),
        ]
    }
}

/// Longest idle timeout or persistence accepted: one week.
const MAX_TIMEOUT_S: u32 = 7 * 24 * 3600;
/// Largest Maglev table accepted.
const MAX_MAGLEV_SIZE: u32 = 1 << 22;
/// IPVS's weight range.
const MAX_WEIGHT: u32 = 65535;
/// Slots are u16 in the connection entries.
const MAX_SLOTS: u32 = 65535;

fn err(path: String, message: String) -> ConfigError {
    ConfigError::new(path, message)
}

/// The longest local-port quiet time: an hour, far beyond any TIME_WAIT.
const MAX_LPORT_QUIET_S: u32 = 3600;

pub fn validate_connections(c: &ConnectionsConfig) -> Result<(), ConfigError> {
    let range = |v: u32, lo: u32, hi: u32, field: &str| {
        if v < lo || v > hi {
            Err(err(format!("connections.{field}"), format!("{v} is out of range, must be {lo}..={hi}")))
        } else {
            Ok(())
        }
    };
    range(c.capacity, 16, 1 << 28, "capacity")?;
    if let Some(h) = c.half_open_capacity {
        range(h, 1, c.capacity, "half_open_capacity")?;
    }
    range(c.capacity6, 16, 1 << 26, "capacity6")?;
    range(c.persistence_capacity, 16, 1 << 24, "persistence_capacity")?;
    range(c.max_backends, 1, MAX_SLOTS, "max_backends")?;
    range(c.max_laddrs, 1, 1024, "max_laddrs")?;
    if c.lport_min == 0 || c.lport_min > c.lport_max {
        return Err(err(
            "connections.lport_min".into(),
            format!("the local port range {}..={} is empty or starts at 0", c.lport_min, c.lport_max),
        ));
    }
    range(c.lport_quiet_s, 0, MAX_LPORT_QUIET_S, "lport_quiet_s")?;
    if let Some(h) = c.syn_proxy_auto.half_open {
        range(h, 0, c.half_open_capacity.unwrap_or(c.capacity / 2), "syn_proxy_auto.half_open")?;
    }
    range(c.syn_proxy_auto.syns_per_s, 0, 100_000_000, "syn_proxy_auto.syns_per_s")?;
    for (name, v) in c.timeouts.fields() {
        range(v, 1, MAX_TIMEOUT_S, &format!("timeouts.{name}"))?;
    }
    Ok(())
}

/// A service address (VIP, backend or local address): a unicast address of either family.
fn unicast(ip: IpAddr, path: &str, what: &str) -> Result<(), ConfigError> {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_loopback(),
    };
    if bad {
        return Err(err(
            path.into(),
            format!("{ip} cannot be a {what} (unspecified, broadcast, loopback or multicast)"),
        ));
    }
    Ok(())
}

/// A backend or local address of a service: unicast, of the VIP's family, except in nat64
/// mode (IPv6 VIP), where they are all IPv4.
fn of_vip_family(ip: IpAddr, s: &ServiceConfig, path: &str, what: &str) -> Result<(), ConfigError> {
    unicast(ip, path, what)?;
    not_v4_mapped(ip, path, what)?;
    let family = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
    if s.mode == ForwardMode::Nat64 {
        if ip.is_ipv6() {
            return Err(err(
                path.into(),
                format!(
                    "{what} {ip} is IPv6 but service {} is in nat64 mode: its backends and local addresses are IPv4",
                    s.key()
                ),
            ));
        }
        return Ok(());
    }
    if ip.is_ipv4() != s.vip.is_ipv4() {
        let hint = if s.vip.is_ipv6() {
            " (mode nat64 is the one exception: IPv6 VIP, IPv4 backends and local addresses)"
        } else {
            ""
        };
        return Err(err(
            path.into(),
            format!(
                "{what} {ip} is {} but service {} has an {} VIP: a service's addresses are all of one family{hint}",
                family(ip.is_ipv4()),
                s.key(),
                family(s.vip.is_ipv4())
            ),
        ));
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is refused: it is how the workers hold
/// NAT64's IPv4 addresses in IPv6 connections, and on the wire it means an IPv4 host.
fn not_v4_mapped(ip: IpAddr, path: &str, what: &str) -> Result<(), ConfigError> {
    if let IpAddr::V6(a) = ip {
        if let Some(v4) = a.to_ipv4_mapped() {
            return Err(err(
                path.into(),
                format!("{what} {ip} is an IPv4-mapped IPv6 address; write the IPv4 address {v4} (with mode nat64 for an IPv6 VIP)"),
            ));
        }
    }
    Ok(())
}

/// A service's health block, each backend's override merged over it, and its passive block.
fn validate_service_health(s: &ServiceConfig, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let empty = HealthSpec::default();
    let service = s.health.as_deref();
    if let Some(h) = service {
        validate_health(h, h, &at("health"), false)?;
    }
    for (k, b) in s.backends.iter().enumerate() {
        if let Some(o) = &b.health {
            let merged = service.unwrap_or(&empty).merged(o);
            validate_health(o, &merged, &at(&format!("backends[{k}].health")), true)?;
        }
    }
    if let Some(p) = &s.passive {
        validate_passive(p, &at("passive"))?;
    }
    Ok(())
}

/// Checks the whole service list and the SNAT rules together (they share the local-address
/// slots) against the connection settings and the box: `ports` (a SNAT rule names one) and
/// `addresses`, the ports' own addresses (a backend cannot be one of them; a DR backend must
/// be inside one of their networks).
pub fn validate_services(
    services: &[ServiceConfig],
    snat: &[SnatConfig],
    conns: &ConnectionsConfig,
    ports: &[PortConfig],
    addresses: &[AddressConfig],
) -> Result<(), ConfigError> {
    let local: Vec<IpAddr> = addresses.iter().map(|a| a.addr.addr()).collect();
    let mut keys: HashMap<ServiceKey, usize> = HashMap::new();
    let mut backend_total = 0u32;
    let mut laddrs_all: HashSet<IpAddr> = HashSet::new();
    let vips: HashSet<IpAddr> = services.iter().map(|s| s.vip).collect();
    for (i, s) in services.iter().enumerate() {
        let at = |field: &str| format!("services[{i}].{field}");
        unicast(s.vip, &at("vip"), "VIP")?;
        not_v4_mapped(s.vip, &at("vip"), "VIP")?;
        if s.mode == ForwardMode::Nat64 && s.vip.is_ipv4() {
            return Err(err(
                at("vip"),
                format!(
                    "service {} is in nat64 mode, which takes an IPv6 VIP to IPv4 backends: its VIP must be IPv6",
                    s.key()
                ),
            ));
        }
        if s.port == 0 {
            return Err(err(at("port"), "port 0 is not a service port (1..=65535)".into()));
        }
        if let Some(j) = keys.insert(s.key(), i) {
            return Err(err(at("port"), format!("service {} is already defined (services[{j}])", s.key())));
        }
        if s.persistence_s > MAX_TIMEOUT_S {
            return Err(err(
                at("persistence_s"),
                format!("{} is out of range, must be 0..={MAX_TIMEOUT_S}", s.persistence_s),
            ));
        }
        if s.scheduler == SchedKind::Mh
            && (!is_prime(s.maglev_size as usize) || s.maglev_size < 7 || s.maglev_size > MAX_MAGLEV_SIZE)
        {
            return Err(err(
                at("maglev_size"),
                format!("{} must be a prime from 7 to {MAX_MAGLEV_SIZE} (65537 is a good choice)", s.maglev_size),
            ));
        }
        match s.mode {
            mode if mode.uses_laddrs() && s.laddrs.is_empty() => {
                return Err(err(
                    at("laddrs"),
                    format!(
                        "service {} is in {} mode and needs at least one local address (laddrs)",
                        s.key(),
                        mode.as_str()
                    ),
                ));
            }
            mode if mode.uses_laddrs() => {}
            mode if !s.laddrs.is_empty() => {
                return Err(err(
                    at("laddrs"),
                    format!(
                        "service {} is in {} mode; local addresses are only used in fullnat and nat64 modes",
                        s.key(),
                        mode.as_str()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(t) = s.tunnel {
            if s.mode != ForwardMode::Tun {
                return Err(err(
                    at("tunnel"),
                    format!(
                        "service {} is in {} mode; tunnel settings are only used in tun mode",
                        s.key(),
                        s.mode.as_str()
                    ),
                ));
            }
            if t.gue_port == 0 {
                return Err(err(at("tunnel.gue_port"), "port 0 is not a GUE port (1..=65535)".into()));
            }
        }
        if s.pickup == Some(true) {
            if !s.mode.keeps_packet() {
                return Err(err(
                    at("pickup"),
                    format!(
                        "service {} is in {} mode; mid-flow pickup is only for dr and tun (nat and fullnat translate both directions, which a connection begun elsewhere has not set up here)",
                        s.key(),
                        s.mode.as_str()
                    ),
                ));
            }
            if s.protocol != Protocol::Tcp {
                return Err(err(
                    at("pickup"),
                    format!(
                        "service {} is udp; mid-flow pickup is for tcp (any udp packet opens a connection)",
                        s.key()
                    ),
                ));
            }
        }
        if !s.syn_proxy.is_off() {
            if s.mode.keeps_packet() {
                return Err(err(
                    at("syn_proxy"),
                    format!(
                        "service {} is in {} mode; the SYN proxy is only for nat and fullnat (in dr and tun the backend answers the client directly, so its sequence numbers cannot be translated)",
                        s.key(),
                        s.mode.as_str()
                    ),
                ));
            }
            if s.protocol != Protocol::Tcp {
                return Err(err(at("syn_proxy"), format!("service {} is udp; the SYN proxy is for tcp", s.key())));
            }
            if s.vip.is_ipv6() {
                return Err(err(
                    at("syn_proxy"),
                    format!("service {} has an IPv6 VIP; the SYN proxy is IPv4 only for now", s.key()),
                ));
            }
        }
        if !s.client_address.is_off() {
            if !matches!(s.mode, ForwardMode::Fullnat | ForwardMode::Nat64) {
                return Err(err(
                    at("client_address"),
                    format!(
                        "service {} is in {} mode; client_address is only for fullnat and nat64 (in nat, dr and tun the backend sees the client's own address already)",
                        s.key(),
                        s.mode.as_str()
                    ),
                ));
            }
            if s.protocol != Protocol::Tcp {
                return Err(err(
                    at("client_address"),
                    format!(
                        "service {} is udp; client_address ({}) is for tcp only (the PROXY header and TOA ride on a TCP stream)",
                        s.key(),
                        s.client_address.as_str()
                    ),
                ));
            }
        }
        validate_acl(&s.deny, &at("deny"))?;
        validate_acl(&s.allow, &at("allow"))?;
        let l = s.limits;
        for (field, v) in [
            ("conns_per_s", l.conns_per_s),
            ("source_conns_per_s", l.source_conns_per_s),
            ("source_burst", l.source_burst),
        ] {
            if v > 100_000_000 {
                return Err(err(at(&format!("limits.{field}")), format!("{v} is out of range, must be 0..=100000000")));
            }
        }
        let mut seen_laddrs = HashSet::new();
        for (k, l) in s.laddrs.iter().enumerate() {
            let path = at(&format!("laddrs[{k}]"));
            of_vip_family(*l, s, &path, "local address")?;
            if !seen_laddrs.insert(*l) {
                return Err(err(path, format!("local address {l} is listed twice")));
            }
            if vips.contains(l) {
                return Err(err(path, format!("local address {l} is also a VIP")));
            }
            laddrs_all.insert(*l);
        }
        let mut seen = HashMap::new();
        for (k, b) in s.backends.iter().enumerate() {
            let path = |field: &str| at(&format!("backends[{k}].{field}"));
            of_vip_family(b.addr, s, &path("addr"), "backend address")?;
            if b.port == 0 {
                return Err(err(path("port"), "port 0 is not a backend port (1..=65535)".into()));
            }
            if b.weight > MAX_WEIGHT {
                return Err(err(path("weight"), format!("{} is out of range, must be 0..={MAX_WEIGHT}", b.weight)));
            }
            if local.contains(&b.addr) || vips.contains(&b.addr) || laddrs_all.contains(&b.addr) {
                return Err(err(path("addr"), format!("{} is an address of ferrovs itself, not a backend", b.addr)));
            }
            if let Some(j) = seen.insert((b.addr, b.port), k) {
                return Err(err(
                    path("addr"),
                    format!(
                        "backend {} is already in service {} (backends[{j}])",
                        std::net::SocketAddr::new(b.addr, b.port),
                        s.key()
                    ),
                ));
            }
            if s.mode.keeps_packet() && b.port != s.port {
                return Err(err(
                    path("port"),
                    format!(
                        "service {} is in {} mode, which cannot change ports: backend port must be {}",
                        s.key(),
                        s.mode.as_str(),
                        s.port
                    ),
                ));
            }
            if s.mode == ForwardMode::Dr && !addresses.iter().any(|a| a.addr.contains(b.addr)) {
                return Err(err(
                    path("addr"),
                    format!(
                        "service {} is in dr mode and backend {} is not on a directly connected network (dr sends frames to the backend's MAC)",
                        s.key(),
                        b.addr
                    ),
                ));
            }
        }
        validate_service_health(s, &at)?;
        backend_total += s.backends.len() as u32;
    }
    if backend_total > conns.max_backends {
        return Err(err(
            "services".into(),
            format!("{backend_total} backends in all; connections.max_backends allows {}", conns.max_backends),
        ));
    }
    if laddrs_all.len() as u32 > conns.max_laddrs {
        return Err(err(
            "services".into(),
            format!(
                "{} distinct local addresses; connections.max_laddrs allows {}",
                laddrs_all.len(),
                conns.max_laddrs
            ),
        ));
    }
    let backends: HashMap<IpAddr, ServiceKey> =
        services.iter().flat_map(|s| s.backends.iter().map(move |b| (b.addr, s.key()))).collect();
    validate_snat(snat, conns, ports, &vips, &backends, laddrs_all)
}

/// The SNAT rules, after the services: `vips` and `backends` are the services', `laddrs` their
/// FullNAT addresses (SNAT addresses count with them against `max_laddrs`).
fn validate_snat(
    snat: &[SnatConfig],
    conns: &ConnectionsConfig,
    ports: &[PortConfig],
    vips: &HashSet<IpAddr>,
    backends: &HashMap<IpAddr, ServiceKey>,
    mut laddrs: HashSet<IpAddr>,
) -> Result<(), ConfigError> {
    let mut rules: HashMap<(Prefix, &str), usize> = HashMap::new();
    for (i, r) in snat.iter().enumerate() {
        let at = |field: &str| format!("snat[{i}].{field}");
        let network = r.source.network();
        if network != r.source {
            return Err(err(at("source"), format!("{} has host bits set, did you mean {network}?", r.source)));
        }
        port_exists(ports, &r.out_port, at("out_port"))?;
        if let Some(j) = rules.insert((r.source, r.out_port.as_str()), i) {
            return Err(err(at("source"), format!("SNAT rule {} is already defined (snat[{j}])", r.name())));
        }
        if r.addresses.is_empty() {
            return Err(err(at("addresses"), format!("SNAT rule {} needs at least one address", r.name())));
        }
        let mut seen = HashSet::new();
        for (k, a) in r.addresses.iter().enumerate() {
            let path = at(&format!("addresses[{k}]"));
            unicast(*a, &path, "SNAT address")?;
            if a.is_ipv4() != r.source.is_ipv4() {
                let family = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
                return Err(err(
                    path,
                    format!(
                        "SNAT address {a} is {} but the rule's source {} is {}: a rule's addresses are of its source's family",
                        family(a.is_ipv4()),
                        r.source,
                        family(r.source.is_ipv4())
                    ),
                ));
            }
            if !seen.insert(*a) {
                return Err(err(path, format!("SNAT address {a} is listed twice")));
            }
            if vips.contains(a) {
                return Err(err(path, format!("SNAT address {a} is also a VIP")));
            }
            if let Some(key) = backends.get(a) {
                return Err(err(path, format!("SNAT address {a} is also a backend of service {key}")));
            }
            laddrs.insert(*a);
        }
    }
    if laddrs.len() as u32 > conns.max_laddrs {
        return Err(err(
            "snat".into(),
            format!(
                "{} distinct local addresses (FullNAT laddrs and SNAT addresses); connections.max_laddrs allows {}",
                laddrs.len(),
                conns.max_laddrs
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Vec<ServiceConfig> {
        serde_norway::from_str(yaml).unwrap()
    }

    /// Two ports: dp0 on 192.0.2.1/24, dp1 on 203.0.113.1/24.
    fn ports() -> Vec<PortConfig> {
        serde_norway::from_str("- { name: dp0, device: net_null0 }\n- { name: dp1, device: net_null1 }").unwrap()
    }

    fn addresses() -> Vec<AddressConfig> {
        serde_norway::from_str("- { port: dp0, addr: 192.0.2.1/24 }\n- { port: dp1, addr: 203.0.113.1/24 }").unwrap()
    }

    /// Services and SNAT rules (YAML lists) against `ports()` and `addresses()`.
    fn check_lb(services: &str, snat: &str) -> Result<(), String> {
        let snat: Vec<SnatConfig> = serde_norway::from_str(snat).unwrap();
        validate_services(&svc(services), &snat, &ConnectionsConfig::default(), &ports(), &addresses())
            .map_err(|e| e.to_string())
    }

    fn check(yaml: &str) -> Result<(), String> {
        check_lb(yaml, "[]")
    }

    #[test]
    fn defaults_and_round_trip() {
        let s = svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 198.51.100.11, port: 8080}]}");
        assert_eq!(s[0].scheduler, SchedKind::Wlc);
        assert_eq!(s[0].mode, ForwardMode::Nat);
        assert_eq!(s[0].backends[0].weight, 1);
        assert_eq!(s[0].backends[0].state, BackendState::Active);
        assert_eq!(s[0].key().to_string(), "tcp 192.0.2.100:80");
        let back: Vec<ServiceConfig> = serde_norway::from_str(&serde_norway::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(check("- {vip: 192.0.2.100, port: 80, protocol: tcp}").is_ok());
    }

    #[test]
    fn dr_tun_and_snat_round_trip() {
        let s = svc(
            "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{addr: 192.0.2.11, port: 80}]}\n\
             - {vip: 192.0.2.100, port: 443, protocol: tcp, mode: tun, tunnel: {encap: gue}, backends: [{addr: 198.51.100.11, port: 443}]}\n\
             - {vip: 192.0.2.100, port: 53, protocol: udp, mode: tun}",
        );
        assert_eq!(s[0].mode, ForwardMode::Dr);
        assert_eq!(
            s[1].tunnel,
            Some(TunnelConfig { encap: Encapsulation::Gue, gue_port: 6080, too_big: TooBigPolicy::Icmp })
        );
        assert_eq!(s[2].tunnel, None);
        assert_eq!(
            s[2].tunnel_or_default(),
            TunnelConfig { encap: Encapsulation::Ipip, gue_port: 6080, too_big: TooBigPolicy::Icmp }
        );
        let yaml = serde_norway::to_string(&s).unwrap();
        assert!(yaml.contains("tunnel:\n    encap: gue\n    gue_port: 6080\n    too_big: icmp\n"), "{yaml}");
        assert_eq!(yaml.matches("tunnel:").count(), 1, "a service without a tunnel section gets none: {yaml}");
        assert_eq!(serde_norway::from_str::<Vec<ServiceConfig>>(&yaml).unwrap(), s);
        assert_eq!(check_lb(&yaml, "[]"), Ok(()));

        let snat: Vec<SnatConfig> =
            serde_norway::from_str("- { source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.50, 192.0.2.51] }")
                .unwrap();
        assert_eq!(snat[0].name(), "source 198.51.100.0/24 out-port dp0");
        let back: Vec<SnatConfig> = serde_norway::from_str(&serde_norway::to_string(&snat).unwrap()).unwrap();
        assert_eq!(back, snat);
        let e = serde_norway::from_str::<Vec<ServiceConfig>>(
            "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, tunnel: {encap: vxlan}}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `vxlan`, expected `ipip` or `gue`"), "{e}");
    }

    #[test]
    fn ipv6_services_in_every_mode() {
        let yaml = "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, backends: [{addr: '2001:db8:2::11', port: 8080}]}\n\
                    - {vip: '2001:db8:1::100', port: 81, protocol: udp, mode: fullnat, laddrs: ['2001:db8:2::200'], backends: [{addr: '2001:db8:2::11', port: 53}]}\n\
                    - {vip: '2001:db8:1::100', port: 82, protocol: tcp, mode: tun, tunnel: {encap: gue}, backends: [{addr: '2001:db8:9::11', port: 82}]}";
        check(yaml).unwrap();
    }

    #[test]
    fn nat64_takes_an_ipv6_vip_to_ipv4_backends_and_local_addresses() {
        let ok = "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64, scheduler: rr, persistence_s: 60, laddrs: [198.51.100.200], backends: [{addr: 198.51.100.11, port: 8080}, {addr: 198.51.100.12, port: 8080}]}";
        check(ok).unwrap();
        let cases = [
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: nat64, laddrs: [198.51.100.200]}",
                "services[0].vip: service tcp 192.0.2.100:80 is in nat64 mode, which takes an IPv6 VIP to IPv4 backends: its VIP must be IPv6",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64}",
                "services[0].laddrs: service tcp [2001:db8:1::100]:80 is in nat64 mode and needs at least one local address (laddrs)",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64, laddrs: ['2001:db8:2::200']}",
                "services[0].laddrs[0]: local address 2001:db8:2::200 is IPv6 but service tcp [2001:db8:1::100]:80 is in nat64 mode: its backends and local addresses are IPv4",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64, laddrs: [198.51.100.200], backends: [{addr: '2001:db8:2::11', port: 80}]}",
                "services[0].backends[0].addr: backend address 2001:db8:2::11 is IPv6 but service tcp [2001:db8:1::100]:80 is in nat64 mode",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: fullnat, laddrs: ['2001:db8:2::200'], backends: [{addr: 198.51.100.11, port: 80}]}",
                "services[0].backends[0].addr: backend address 198.51.100.11 is IPv4 but service tcp [2001:db8:1::100]:80 has an IPv6 VIP: a service's addresses are all of one family (mode nat64 is the one exception",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, backends: [{addr: '::ffff:198.51.100.11', port: 80}]}",
                "services[0].backends[0].addr: backend address ::ffff:198.51.100.11 is an IPv4-mapped IPv6 address; write the IPv4 address 198.51.100.11",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64, laddrs: [198.51.100.200], tunnel: {encap: gue}}",
                "services[0].tunnel: service tcp [2001:db8:1::100]:80 is in nat64 mode; tunnel settings are only used in tun mode",
            ),
            (
                "- {vip: '2001:db8:1::100', port: 80, protocol: tcp, mode: nat64, laddrs: [198.51.100.200], pickup: true}",
                "services[0].pickup: service tcp [2001:db8:1::100]:80 is in nat64 mode; mid-flow pickup is only for dr and tun",
            ),
        ];
        for (yaml, want) in cases {
            let got = check(yaml).unwrap_err();
            assert!(got.contains(want), "{yaml}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            ("- {vip: 'ff02::1', port: 80, protocol: tcp}", "services[0].vip: ff02::1 cannot be a VIP"),
            (
                "- {vip: '2001:db8::1', port: 80, protocol: tcp, mode: fullnat, laddrs: [198.51.100.1]}",
                "services[0].laddrs[0]: local address 198.51.100.1 is IPv4 but service tcp [2001:db8::1]:80 has an IPv6 VIP",
            ),
            ("- {vip: 192.0.2.100, port: 0, protocol: tcp}", "services[0].port: port 0"),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp}\n- {vip: 192.0.2.100, port: 80, protocol: tcp}",
                "services[1].port: service tcp 192.0.2.100:80 is already defined (services[0])",
            ),
            ("- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: fullnat}", "services[0].laddrs: service tcp 192.0.2.100:80 is in fullnat mode"),
            ("- {vip: 192.0.2.100, port: 80, protocol: tcp, laddrs: [198.51.100.1]}", "services[0].laddrs: service tcp 192.0.2.100:80 is in nat mode"),
            ("- {vip: 192.0.2.100, port: 80, protocol: tcp, scheduler: mh, maglev_size: 65536}", "services[0].maglev_size: 65536 must be a prime"),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 198.51.100.11, port: 80}, {addr: 198.51.100.11, port: 80}]}",
                "services[0].backends[1].addr: backend 198.51.100.11:80 is already in service tcp 192.0.2.100:80 (backends[0])",
            ),
            ("- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 192.0.2.1, port: 80}]}", "is an address of ferrovs itself"),
            ("- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 198.51.100.11, port: 80, weight: 70000}]}", "backends[0].weight: 70000 is out of range"),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: '2001:db8::11', port: 80}]}",
                "services[0].backends[0].addr: backend address 2001:db8::11 is IPv6 but service tcp 192.0.2.100:80 has an IPv4 VIP: a service's addresses are all of one family",
            ),
        ];
        for (yaml, want) in cases {
            let got = check(yaml).unwrap_err();
            assert!(got.contains(want), "{yaml}\n got: {got}\nwant: {want}");
        }
        let e =
            serde_norway::from_str::<Vec<ServiceConfig>>("- {vip: 192.0.2.100, port: 80, protocol: sctp}").unwrap_err();
        assert!(e.to_string().contains("unknown variant `sctp`"), "{e}");
    }

    #[test]
    fn dr_and_tun_refusals() {
        let cases = [
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{addr: 192.0.2.11, port: 80}, {addr: 192.0.2.12, port: 8080}]}",
                "services[0].backends[1].port: service tcp 192.0.2.100:80 is in dr mode, which cannot change ports: backend port must be 80",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, backends: [{addr: 198.51.100.11, port: 8080}]}",
                "services[0].backends[0].port: service tcp 192.0.2.100:80 is in tun mode, which cannot change ports: backend port must be 80",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{addr: 198.51.100.9, port: 80}]}",
                "services[0].backends[0].addr: service tcp 192.0.2.100:80 is in dr mode and backend 198.51.100.9 is not on a directly connected network (dr sends frames to the backend's MAC)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, tunnel: {encap: gue}}",
                "services[0].tunnel: service tcp 192.0.2.100:80 is in nat mode; tunnel settings are only used in tun mode",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, tunnel: {}}",
                "services[0].tunnel: service tcp 192.0.2.100:80 is in dr mode; tunnel settings are only used in tun mode",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, tunnel: {encap: gue, gue_port: 0}}",
                "services[0].tunnel.gue_port: port 0 is not a GUE port (1..=65535)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, laddrs: [198.51.100.1]}",
                "services[0].laddrs: service tcp 192.0.2.100:80 is in dr mode; local addresses are only used in fullnat and nat64 modes",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: fullnat, laddrs: [198.51.100.1], pickup: true}",
                "services[0].pickup: service tcp 192.0.2.100:80 is in fullnat mode; mid-flow pickup is only for dr and tun (nat and fullnat translate both directions, which a connection begun elsewhere has not set up here)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, scheduler: mh, pickup: true}",
                "services[0].pickup: service tcp 192.0.2.100:80 is in nat mode; mid-flow pickup is only for dr and tun (nat and fullnat translate both directions, which a connection begun elsewhere has not set up here)",
            ),
            (
                "- {vip: 192.0.2.100, port: 53, protocol: udp, mode: tun, pickup: true}",
                "services[0].pickup: service udp 192.0.2.100:53 is udp; mid-flow pickup is for tcp (any udp packet opens a connection)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, syn_proxy: on}",
                "services[0].syn_proxy: service tcp 192.0.2.100:80 is in dr mode; the SYN proxy is only for nat and fullnat (in dr and tun the backend answers the client directly, so its sequence numbers cannot be translated)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, syn_proxy: on}",
                "services[0].syn_proxy: service tcp 192.0.2.100:80 is in tun mode; the SYN proxy is only for nat and fullnat (in dr and tun the backend answers the client directly, so its sequence numbers cannot be translated)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, syn_proxy: auto}",
                "services[0].syn_proxy: service tcp 192.0.2.100:80 is in dr mode; the SYN proxy is only for nat and fullnat (in dr and tun the backend answers the client directly, so its sequence numbers cannot be translated)",
            ),
            (
                "- {vip: 192.0.2.100, port: 53, protocol: udp, syn_proxy: on}",
                "services[0].syn_proxy: service udp 192.0.2.100:53 is udp; the SYN proxy is for tcp",
            ),
            (
                "- {vip: \"2001:db8::100\", port: 80, protocol: tcp, syn_proxy: on}",
                "services[0].syn_proxy: service tcp [2001:db8::100]:80 has an IPv6 VIP; the SYN proxy is IPv4 only for now",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, client_address: proxy_v2}",
                "services[0].client_address: service tcp 192.0.2.100:80 is in nat mode; client_address is only for fullnat and nat64 (in nat, dr and tun the backend sees the client's own address already)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, client_address: toa}",
                "services[0].client_address: service tcp 192.0.2.100:80 is in dr mode; client_address is only for fullnat and nat64 (in nat, dr and tun the backend sees the client's own address already)",
            ),
            (
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, client_address: proxy_v1}",
                "services[0].client_address: service tcp 192.0.2.100:80 is in tun mode; client_address is only for fullnat and nat64 (in nat, dr and tun the backend sees the client's own address already)",
            ),
            (
                "- {vip: 192.0.2.100, port: 53, protocol: udp, mode: fullnat, laddrs: [198.51.100.1], client_address: proxy_v2}",
                "services[0].client_address: service udp 192.0.2.100:53 is udp; client_address (proxy_v2) is for tcp only (the PROXY header and TOA ride on a TCP stream)",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(check(yaml).unwrap_err(), want, "{yaml}");
        }
        // The client's address for FullNAT backends, over IPv4 and IPv6.
        for mode in ["proxy_v2", "proxy_v1", "toa", "off"] {
            let v4 = format!("- {{vip: 192.0.2.100, port: 80, protocol: tcp, mode: fullnat, laddrs: [198.51.100.1], client_address: {mode}}}");
            assert_eq!(check(&v4), Ok(()), "{v4}");
            let v6 = format!("- {{vip: \"2001:db8::100\", port: 80, protocol: tcp, mode: fullnat, laddrs: [\"2001:db8:1::1\"], client_address: {mode}}}");
            assert_eq!(check(&v6), Ok(()), "{v6}");
        }
        let bad = serde_norway::from_str::<Vec<ServiceConfig>>(
            "- {vip: 192.0.2.100, port: 80, protocol: tcp, client_address: proxy_v3}",
        );
        assert!(bad.unwrap_err().to_string().contains("proxy_v3"));
        // A TUN backend may be anywhere routed; a DR one on either port's network.
        assert_eq!(
            check(
                "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: tun, backends: [{addr: 198.51.100.9, port: 80}]}"
            ),
            Ok(())
        );
        assert_eq!(
            check("- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{addr: 203.0.113.9, port: 80}, {addr: 192.0.2.9, port: 80}]}"),
            Ok(())
        );
        // Without the address, the same DR backend is refused (fvs addr del goes through this).
        let s =
            svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{addr: 203.0.113.9, port: 80}]}");
        let e = validate_services(&s, &[], &ConnectionsConfig::default(), &ports(), &addresses()[..1]).unwrap_err();
        assert!(e.message.contains("backend 203.0.113.9 is not on a directly connected network"), "{e}");
    }

    #[test]
    fn pickup_defaults_on_only_for_mh_in_dr_and_tun() {
        let s = svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, scheduler: mh}\n\
             - {vip: 192.0.2.100, port: 81, protocol: tcp, mode: tun, scheduler: mh}\n\
             - {vip: 192.0.2.100, port: 82, protocol: tcp, mode: dr}\n\
             - {vip: 192.0.2.100, port: 83, protocol: tcp, mode: nat, scheduler: mh}\n\
             - {vip: 192.0.2.100, port: 84, protocol: tcp, mode: dr, scheduler: mh, pickup: false}\n\
             - {vip: 192.0.2.100, port: 85, protocol: tcp, mode: tun, scheduler: sh, pickup: true}\n\
             - {vip: 192.0.2.100, port: 86, protocol: udp, mode: dr, scheduler: mh}\n\
             - {vip: 192.0.2.100, port: 87, protocol: tcp, mode: fullnat, scheduler: mh, laddrs: [192.0.2.60], pickup: false}");
        let got: Vec<bool> = s.iter().map(ServiceConfig::pickup).collect();
        assert_eq!(got, [true, true, false, false, false, true, false, false]);
        assert_eq!(check(&serde_norway::to_string(&s).unwrap()), Ok(()));
        // Only a setting given is written back.
        let yaml = serde_norway::to_string(&s).unwrap();
        assert_eq!(yaml.matches("pickup:").count(), 3, "{yaml}");
        assert_eq!(serde_norway::from_str::<Vec<ServiceConfig>>(&yaml).unwrap(), s);
    }

    #[test]
    fn usable_backends() {
        let s = svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 198.51.100.11, port: 80, weight: 0}, {addr: 198.51.100.12, port: 80, state: draining}, {addr: 198.51.100.13, port: 80, state: inhibited}]}");
        assert!(!s[0].has_usable_backend(), "weight 0, draining and inhibited take no new connection");
        let mut one = s[0].clone();
        one.backends[0].weight = 1;
        assert!(one.has_usable_backend());
        assert!(!ServiceConfig::new(s[0].key()).has_usable_backend(), "no backend at all");
    }

    #[test]
    fn snat_refusals_name_the_field() {
        let web = "- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: fullnat, laddrs: [192.0.2.200], backends: [{addr: 198.51.100.11, port: 80}]}";
        let cases = [
            ("- {source: 198.51.100.7/24, out_port: dp0, addresses: [192.0.2.50]}", "snat[0].source: 198.51.100.7/24 has host bits set, did you mean 198.51.100.0/24?"),
            ("- {source: '2001:db8::/32', out_port: dp0, addresses: [192.0.2.50]}", "snat[0].addresses[0]: SNAT address 192.0.2.50 is IPv4 but the rule's source 2001:db8::/32 is IPv6: a rule's addresses are of its source's family"),
            ("- {source: 198.51.100.0/24, out_port: dp9, addresses: [192.0.2.50]}", "snat[0].out_port: no port named 'dp9' (ports are: dp0, dp1)"),
            ("- {source: 198.51.100.0/24, out_port: dp0, addresses: []}", "snat[0].addresses: SNAT rule source 198.51.100.0/24 out-port dp0 needs at least one address"),
            ("- {source: 198.51.100.0/24, out_port: dp0, addresses: ['2001:db8::50']}", "snat[0].addresses[0]: SNAT address 2001:db8::50 is IPv6 but the rule's source 198.51.100.0/24 is IPv4: a rule's addresses are of its source's family"),
            (
                "- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.50, 192.0.2.50]}",
                "snat[0].addresses[1]: SNAT address 192.0.2.50 is listed twice",
            ),
            ("- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.100]}", "snat[0].addresses[0]: SNAT address 192.0.2.100 is also a VIP"),
            (
                "- {source: 10.0.0.0/8, out_port: dp0, addresses: [198.51.100.11]}",
                "snat[0].addresses[0]: SNAT address 198.51.100.11 is also a backend of service tcp 192.0.2.100:80",
            ),
            (
                "- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.50]}\n- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.51]}",
                "snat[1].source: SNAT rule source 198.51.100.0/24 out-port dp0 is already defined (snat[0])",
            ),
        ];
        for (snat, want) in cases {
            assert_eq!(check_lb(web, snat).unwrap_err(), want, "{snat}");
        }
        // One source may leave by two ports; a FullNAT laddr may also serve SNAT.
        let fine = "- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.200]}\n- {source: 198.51.100.0/24, out_port: dp1, addresses: [203.0.113.50]}";
        assert_eq!(check_lb(web, fine), Ok(()));
    }

    #[test]
    fn limits() {
        let few = ConnectionsConfig { max_backends: 1, ..Default::default() };
        let s = svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, backends: [{addr: 198.51.100.11, port: 80}, {addr: 198.51.100.12, port: 80}]}");
        let e = validate_services(&s, &[], &few, &ports(), &[]).unwrap_err().to_string();
        assert!(e.contains("2 backends in all; connections.max_backends allows 1"), "{e}");
        let bad = ConnectionsConfig { lport_min: 2000, lport_max: 1000, ..Default::default() };
        assert!(validate_connections(&bad).unwrap_err().to_string().contains("connections.lport_min"));
        let bad = ConnectionsConfig { lport_quiet_s: 3601, ..Default::default() };
        let e = validate_connections(&bad).unwrap_err().to_string();
        assert!(e.contains("connections.lport_quiet_s") && e.contains("3601 is out of range, must be 0..=3600"), "{e}");
        assert!(validate_connections(&ConnectionsConfig { lport_quiet_s: 0, ..Default::default() }).is_ok());
        let bad = ConnectionsConfig { capacity: 4096, half_open_capacity: Some(5000), ..Default::default() };
        let e = validate_connections(&bad).unwrap_err().to_string();
        assert!(e.contains("connections.half_open_capacity: 5000 is out of range, must be 1..=4096"), "{e}");
        let fine = ConnectionsConfig { capacity: 4096, half_open_capacity: Some(1024), ..Default::default() };
        assert!(validate_connections(&fine).is_ok());
        let auto = |half_open| SynProxyAutoConfig { half_open, syns_per_s: 5000 };
        let bad = ConnectionsConfig { capacity: 4096, syn_proxy_auto: auto(Some(2049)), ..Default::default() };
        let e = validate_connections(&bad).unwrap_err().to_string();
        assert!(e.contains("connections.syn_proxy_auto.half_open: 2049 is out of range, must be 0..=2048"), "{e}");
        let fine = ConnectionsConfig { capacity: 4096, syn_proxy_auto: auto(Some(512)), ..Default::default() };
        assert!(validate_connections(&fine).is_ok());
        let parsed: ConnectionsConfig = serde_norway::from_str("syn_proxy_auto: { syns_per_s: 0 }").unwrap();
        assert_eq!(parsed.syn_proxy_auto, SynProxyAutoConfig { half_open: None, syns_per_s: 0 });
        assert!(serde_norway::from_str::<ConnectionsConfig>("syn_proxy_auto: { rate: 5 }").is_err());
        let mut t = ConnectionsConfig::default();
        t.timeouts.udp = 0;
        assert!(validate_connections(&t)
            .unwrap_err()
            .to_string()
            .contains("connections.timeouts.udp: 0 is out of range"));
        assert!(validate_connections(&ConnectionsConfig::default()).is_ok());
    }

    #[test]
    fn snat_addresses_count_with_laddrs() {
        let two = ConnectionsConfig { max_laddrs: 2, ..Default::default() };
        let s = svc("- {vip: 192.0.2.100, port: 80, protocol: tcp, mode: fullnat, laddrs: [192.0.2.200, 192.0.2.201]}");
        let snat = |yaml: &str| serde_norway::from_str::<Vec<SnatConfig>>(yaml).unwrap();
        // An address both use is counted once.
        let shared = snat("- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.201]}");
        assert_eq!(validate_services(&s, &shared, &two, &ports(), &addresses()), Ok(()));
        let third = snat("- {source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.201, 192.0.2.202]}");
        let e = validate_services(&s, &third, &two, &ports(), &addresses()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "snat: 3 distinct local addresses (FullNAT laddrs and SNAT addresses); connections.max_laddrs allows 2"
        );
    }
}
