//! The admin API's messages: one JSON `Request` per line in, one JSON `Response` per line out.
//!
//! ```text
//! {"op":"route_add","route":{"prefix":"203.0.113.0/24","via":"192.0.2.2"}}
//! {"ok":true,"data":null}
//! {"op":"link_show","stats":true}
//! {"ok":false,"error":"no port named 'dp9' (ports are: dp0, dp1)"}
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use dataplane::counters::PortStats;
use dataplane::net::{MacAddr, Prefix};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::RouteConfig;
use crate::config::{
    BackendConfig, BackendState, ClientAddressMode, Encapsulation, ForwardMode, Protocol, RemovalPolicy, ServiceConfig,
    ServiceKey, SnatConfig, SynProxyMode, TooBigPolicy, TunnelConfig,
};
use dataplane::sched::SchedKind;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    LinkShow {
        #[serde(default)]
        stats: bool,
    },
    AddrShow,
    AddrAdd {
        port: String,
        addr: Prefix,
    },
    AddrDel {
        port: String,
        addr: Prefix,
    },
    RouteShow,
    RouteAdd {
        route: RouteConfig,
    },
    RouteDel {
        prefix: Prefix,
    },
    NeighShow,
    Stats,
    /// `fvs apply -f FILE`: `source` is the file's path (for messages), `yaml` its text.
    Apply {
        source: String,
        yaml: String,
    },
    ServiceShow {
        #[serde(default)]
        stats: bool,
    },
    /// The backends of every service with their health (the data of `service show`).
    BackendShow,
    /// Sets fields of a service's health block (or, with `backend`, that backend's overrides)
    /// and its health policies; `passive: Some(None)` turns passive detection off.
    HealthSet {
        service: ServiceKey,
        #[serde(default)]
        backend: Option<std::net::SocketAddr>,
        /// Boxed: the other requests are a few words.
        #[serde(default)]
        spec: Box<crate::config::HealthSpec>,
        #[serde(default)]
        passive: Option<Option<crate::config::PassiveConfig>>,
        #[serde(default)]
        on_down: Option<crate::config::DownPolicy>,
        #[serde(default)]
        all_down: Option<crate::config::AllDownPolicy>,
    },
    /// Removes a service's health block (or a backend's overrides).
    HealthDel {
        service: ServiceKey,
        #[serde(default)]
        backend: Option<std::net::SocketAddr>,
    },
    /// A new service; `service.backends` and `service.laddrs` may already be filled.
    ServiceAdd {
        service: ServiceConfig,
    },
    /// Changes the given attributes of a service; the others stay.
    ServiceSet {
        key: ServiceKey,
        #[serde(default)]
        set: ServicePatch,
    },
    ServiceDel {
        key: ServiceKey,
    },
    BackendAdd {
        service: ServiceKey,
        backend: BackendConfig,
    },
    BackendSet {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<BackendState>,
    },
    /// `policy` overrides the service's `on_backend_removal` for this removal.
    BackendDel {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<RemovalPolicy>,
    },
    LaddrShow,
    LaddrAdd {
        service: ServiceKey,
        addr: IpAddr,
    },
    LaddrDel {
        service: ServiceKey,
        addr: IpAddr,
    },
    ConnList {
        #[serde(default)]
        filter: ConnFilter,
    },
    SnatShow,
    /// The access-list rules with their drops.
    AclShow,
    /// Appends a SNAT rule: it is tried after the existing ones.
    SnatAdd {
        rule: SnatConfig,
    },
    SnatDel {
        source: Prefix,
        out_port: String,
    },
    /// `fvs trace`: arms a trace on every worker for the next `count` packets matching
    /// `filter`, ending after `timeout_s` at the latest. Answers a [`TraceStarted`].
    TraceStart {
        #[serde(default)]
        filter: TraceSpec,
        count: u32,
        timeout_s: u32,
    },
    /// The packets trace `id` recorded since the last poll: a [`TraceBatch`].
    TracePoll {
        id: u64,
    },
}

/// Which packets `fvs trace` follows: every given field must match.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The IPv4 source or destination address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    /// The TCP or UDP source or destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TraceProtocol>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    Tcp,
    Udp,
    Icmp,
}

impl TraceProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceProtocol::Tcp => "tcp",
            TraceProtocol::Udp => "udp",
            TraceProtocol::Icmp => "icmp",
        }
    }
}

/// Most packets one trace may follow, and its longest timeout.
pub const TRACE_MAX_COUNT: u32 = 1000;
pub const TRACE_MAX_TIMEOUT_S: u32 = 3600;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TraceStarted {
    pub id: u64,
    /// Worker cores armed.
    pub cores: u32,
}

/// What a trace recorded since the last poll.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceBatch {
    pub packets: Vec<TracePacket>,
    /// The trace has ended (`ended` says why) and this batch holds all it had left.
    pub done: bool,
    /// `count` (it followed its packets) or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// One traced packet: what it was and what ferrovs decided, step by step.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TracePacket {
    pub core: u32,
    /// The worker's clock (ms since it started) when the packet was handled.
    pub at_ms: u64,
    /// `core 0 dp0: tcp 192.0.2.2:40000 > 192.0.2.100:80 [S] (74 bytes)`.
    pub packet: String,
    pub steps: Vec<TraceStep>,
    /// `sent`, `dropped: REASON`, `handed off`, `to the kernel`, `answered`, `held: ...`.
    pub verdict: String,
}

/// One decision: `classify`, `connection`, `schedule`, `rewrite`, `output`, `counted`, `drop`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    pub step: String,
    pub detail: String,
}

/// The attributes `service set` can change; `None` keeps the current value.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ForwardMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_backend_removal: Option<RemovalPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_size: Option<u32>,
    /// Tunnel settings (tun mode only); those not given keep their value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap: Option<Encapsulation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_big: Option<TooBigPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_proxy: Option<SynProxyMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<ClientAddressMode>,
}

/// Which connections `conn list` shows; every given field must match.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ConnFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<std::net::SocketAddr>,
    /// An LVS state name as `conn list` prints it (`ESTABLISHED`, `SYN_RECV`, ..., `UDP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Most connections returned (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}` on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(serde_json::Value),
    Err(String),
}

impl Response {
    /// A success carrying `data` (use `()` for none: it becomes `null`).
    pub fn ok<T: Serialize>(data: &T) -> Response {
        match serde_json::to_value(data) {
            Ok(v) => Response::Ok(v),
            Err(e) => Response::Err(format!("internal error: cannot encode the answer: {e}")),
        }
    }

    pub fn err(message: impl Into<String>) -> Response {
        Response::Err(message.into())
    }

    /// The data decoded as `T`, or the daemon's error text.
    pub fn into_data<T: DeserializeOwned>(self) -> Result<T, String> {
        match self {
            Response::Ok(v) => serde_json::from_value(v).map_err(|e| format!("unexpected answer from ferrovs: {e}")),
            Response::Err(e) => Err(e),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireResponse {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Response::Ok(v) => WireResponse { ok: true, data: Some(v.clone()), error: None },
            Response::Err(e) => WireResponse { ok: false, data: None, error: Some(e.clone()) },
        };
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireResponse::deserialize(d)?;
        match (wire.ok, wire.error) {
            // `"data": null` arrives as None.
            (true, _) => Ok(Response::Ok(wire.data.unwrap_or(serde_json::Value::Null))),
            (false, Some(e)) => Ok(Response::Err(e)),
            (false, None) => Err(serde::de::Error::custom("an error response without \"error\"")),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LinkInfo {
    pub port_id: u16,
    pub name: String,
    pub device: String,
    pub driver: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: bool,
    pub numa_socket: i32,
    /// How replies reach the worker that owns their connection: single, toeplitz or rings.
    #[serde(default)]
    pub steering: String,
    /// What the start-up probe found: why a better method was not used, or the RSS key and
    /// table size a Toeplitz choice rests on.
    #[serde(default)]
    pub steering_detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<PortStats>,
    /// The port's kernel interface (exception path), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelLinkInfo>,
}

/// A port's kernel interface, for `fvs link show`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct KernelLinkInfo {
    /// The Linux netdev's name.
    pub name: String,
    /// `tap` or `virtio_user`.
    pub device: String,
    /// Its DPDK port id.
    pub port_id: u16,
    /// Up when ferrovs set it up: it follows the port's link.
    pub link_up: bool,
    /// Each worker's rate to it (frames a second) and bucket depth.
    pub rate_pps: u32,
    pub burst: u32,
    /// Summed over the workers, with `-s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<KernelStats>,
}

/// Frames passed to a kernel interface, frames it sent out of the port, and frames over the
/// rate (dropped), summed over the workers.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelStats {
    pub to_kernel: u64,
    pub from_kernel: u64,
    pub rate_limited: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AddrInfo {
    pub port: String,
    pub addr: Prefix,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteInfo {
    pub prefix: Prefix,
    #[serde(default)]
    pub via: Option<IpAddr>,
    pub port: String,
    /// "connected" or "static".
    pub origin: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NeighInfo {
    pub core: u32,
    pub port: String,
    pub addr: IpAddr,
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// "reachable", "stale" or "incomplete".
    pub state: String,
    pub age_ms: u64,
    pub queued: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StatsInfo {
    pub cores: Vec<CoreStats>,
    pub total: BTreeMap<String, u64>,
    /// Config publication; None from a daemon that does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigStats>,
}

/// Upper bounds (exclusive, microseconds) of the publish-to-visible histogram buckets; a last
/// bucket takes everything slower.
pub const VISIBLE_BUCKETS_US: [u64; 5] = [10, 100, 1_000, 10_000, 100_000];

/// Config snapshots published since the daemon started, and how long each took from
/// publication until every worker used it. Kept by the control thread alone.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConfigStats {
    /// Snapshots published (each accepted change publishes one).
    pub published: u64,
    /// Publishes not used by every worker within `timeout_us` (not in the delays below).
    pub not_visible: u64,
    pub timeout_us: u64,
    /// Delay of the last publish that became visible; None before the first.
    pub visible_last_us: Option<u64>,
    pub visible_max_us: u64,
    /// Sum of all measured delays (the mean is this over the buckets' total).
    pub visible_sum_us: u64,
    /// One per `VISIBLE_BUCKETS_US` bound, then one for slower.
    pub visible_buckets: Vec<VisibleBucket>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisibleBucket {
    /// Exclusive upper bound; None for the last bucket (no bound).
    pub below_us: Option<u64>,
    pub count: u64,
}

impl ConfigStats {
    pub fn new(timeout: std::time::Duration) -> ConfigStats {
        let bounds = VISIBLE_BUCKETS_US.iter().map(|b| Some(*b)).chain([None]);
        ConfigStats {
            published: 0,
            not_visible: 0,
            timeout_us: saturating_micros(timeout),
            visible_last_us: None,
            visible_max_us: 0,
            visible_sum_us: 0,
            visible_buckets: bounds.map(|below_us| VisibleBucket { below_us, count: 0 }).collect(),
        }
    }

    /// Records one publish: how long it took to reach every worker, None on timeout.
    pub fn record(&mut self, visible_after: Option<std::time::Duration>) {
        self.published += 1;
        let Some(took) = visible_after else {
            self.not_visible += 1;
            return;
        };
        let us = saturating_micros(took);
        self.visible_last_us = Some(us);
        self.visible_max_us = self.visible_max_us.max(us);
        self.visible_sum_us = self.visible_sum_us.saturating_add(us);
        if let Some(b) = self.visible_buckets.iter_mut().find(|b| !matches!(b.below_us, Some(bound) if us >= bound)) {
            b.count += 1;
        }
    }

    /// Publishes whose delay was measured (all but the timed out ones).
    pub fn visible(&self) -> u64 {
        self.visible_buckets.iter().map(|b| b.count).sum()
    }
}

fn saturating_micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CoreStats {
    pub core: u32,
    pub lcore: u32,
    pub counters: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ApplyResult {
    /// One line per change, e.g. `route add 203.0.113.0/24 via 192.0.2.2 dev dp0`.
    pub changes: Vec<String>,
}

/// Packets, bytes and connections, like `ipvsadm --stats`. "In" is client to backend.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficStats {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl std::ops::AddAssign for TrafficStats {
    fn add_assign(&mut self, o: TrafficStats) {
        self.conns += o.conns;
        self.in_packets += o.in_packets;
        self.out_packets += o.out_packets;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ServiceInfo {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    pub scheduler: SchedKind,
    pub mode: ForwardMode,
    pub persistence_s: u32,
    pub on_backend_removal: RemovalPolicy,
    pub maglev_size: u32,
    pub laddrs: Vec<IpAddr>,
    /// The tunnel a tun service uses (its settings or the defaults); absent in other modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelConfig>,
    /// Mid-flow pickup in effect (set, or the default for the scheduler and mode).
    #[serde(default)]
    pub pickup: bool,
    /// The SYN proxy setting.
    #[serde(default, skip_serializing_if = "SynProxyMode::is_off")]
    pub syn_proxy: SynProxyMode,
    /// How backends learn the client's address (fullnat).
    #[serde(default, skip_serializing_if = "ClientAddressMode::is_off")]
    pub client_address: ClientAddressMode,
    pub backends: Vec<BackendInfo>,
    /// The health settings in a few words (`on-down reset all-down drop`), when any differ
    /// from the defaults; `--json` has them whole below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::config::HealthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<crate::config::PassiveConfig>,
    #[serde(default)]
    pub on_backend_down: crate::config::DownPolicy,
    #[serde(default)]
    pub all_down: crate::config::AllDownPolicy,
    /// Sum over the service's current backends (with `stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TrafficStats>,
}

/// `health http passive on-down reset all-down drop`: what `service show` flags.
fn health_policy(s: &ServiceConfig) -> Option<String> {
    let mut words = Vec::new();
    if let Some(k) = s.health.as_ref().and_then(|h| h.check) {
        words.push(format!("health {}", k.as_str()));
    }
    if s.passive.is_some() {
        words.push("passive".to_string());
    }
    if s.on_backend_down != crate::config::DownPolicy::Keep {
        words.push(format!("on-down {}", s.on_backend_down.as_str()));
    }
    if s.all_down != crate::config::AllDownPolicy::FailOpen {
        words.push(format!("all-down {}", s.all_down.as_str()));
    }
    (!words.is_empty()).then(|| words.join(" "))
}

impl ServiceInfo {
    /// A service as configured, with its backends' lines and (for `--stats`) its totals.
    pub fn new(s: &ServiceConfig, backends: Vec<BackendInfo>, stats: Option<TrafficStats>) -> ServiceInfo {
        ServiceInfo {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
            scheduler: s.scheduler,
            mode: s.mode,
            persistence_s: s.persistence_s,
            on_backend_removal: s.on_backend_removal,
            maglev_size: s.maglev_size,
            laddrs: s.laddrs.clone(),
            tunnel: (s.mode == ForwardMode::Tun).then(|| s.tunnel_or_default()),
            pickup: s.pickup(),
            syn_proxy: s.syn_proxy,
            client_address: s.client_address,
            backends,
            health_policy: health_policy(s),
            health: s.health.as_deref().cloned(),
            passive: s.passive,
            on_backend_down: s.on_backend_down,
            all_down: s.all_down,
            stats,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BackendInfo {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
    /// Connections in ESTABLISHED (TCP) or live (UDP), summed over cores.
    pub active_conns: u64,
    /// TCP connections in any other state.
    pub inactive_conns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TrafficStats>,
    /// Handshake latency (with `stats`; NAT and FullNAT TCP): SYN forwarded to SYN-ACK seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeStats>,
    /// Absent when no check (active or passive) watches the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
}

/// A backend's health as the checks see it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HealthInfo {
    /// Up: it gets new connections (as far as health goes; its state may still say no).
    pub up: bool,
    /// The active check (`http 198.51.100.11:8080 / expect 200`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The last probe's outcome and what it saw, and how long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ms_ago: Option<u64>,
    /// Since the verdict last changed (or checks began), and why it changed.
    pub since_ms: u64,
    pub reason: String,
    /// Held down by passive detection (backing off).
    #[serde(default)]
    pub passive_down: bool,
    /// Failed new connections the workers counted (passive detection on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_failures: Option<u64>,
}

/// A backend's handshake latencies, summed over the cores: how many in each bucket (not
/// cumulative) and their sum.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeStats {
    pub count: u64,
    pub sum_us: u64,
    pub buckets: Vec<HandshakeBucket>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeBucket {
    /// Inclusive upper bound; None for the last bucket (slower than every bound).
    pub le_us: Option<u64>,
    pub count: u64,
}

impl HandshakeStats {
    /// The bucket bound at or below which `q` (0 to 1) of the samples fall: None when there
    /// are none or the quantile is in the last, unbounded bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for b in &self.buckets {
            seen += b.count;
            if seen >= want && self.count > 0 {
                return b.le_us;
            }
        }
        None
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LaddrInfo {
    pub service: ServiceKey,
    pub addr: IpAddr,
    /// Local ports of this address in use by connections of the service's protocol (all
    /// services and SNAT, all cores).
    pub ports_in_use: u64,
    /// Local ports of the service's protocol (TCP and UDP have a pool each; the configured
    /// range, all cores).
    pub ports_total: u64,
}

/// A SNAT rule as `snat show` reports it, in rule order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnatInfo {
    pub source: Prefix,
    pub out_port: String,
    pub addresses: Vec<SnatAddrInfo>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnatAddrInfo {
    pub addr: IpAddr,
    /// Local ports of this address in use (by SNAT and any FullNAT service using it, TCP and
    /// UDP, all cores).
    pub ports_in_use: u64,
    /// Local ports available: the TCP and the UDP pool together (the configured range twice,
    /// all cores).
    pub ports_total: u64,
}

/// How a connection is forwarded: its service's mode, or `snat` for an outbound connection
/// under a SNAT rule.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConnMode {
    Nat,
    Fullnat,
    Dr,
    Tun,
    Snat,
    Nat64,
}

impl ConnMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnMode::Nat => "nat",
            ConnMode::Fullnat => "fullnat",
            ConnMode::Dr => "dr",
            ConnMode::Tun => "tun",
            ConnMode::Snat => "snat",
            ConnMode::Nat64 => "nat64",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ConnInfo {
    pub core: u32,
    pub protocol: Protocol,
    pub mode: ConnMode,
    pub client: std::net::SocketAddr,
    /// The service's VIP:port; None for SNAT (no service: `backend` is the remote server).
    #[serde(default)]
    pub virtual_addr: Option<std::net::SocketAddr>,
    /// The FullNAT or SNAT local address:port; None in NAT, DR and TUN modes.
    #[serde(default)]
    pub local: Option<std::net::SocketAddr>,
    pub backend: std::net::SocketAddr,
    /// LVS state name (`ESTABLISHED`, `SYN_RECV`, ...) or `UDP`.
    pub state: String,
    pub expires_ms: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ConnList {
    pub conns: Vec<ConnInfo>,
    /// Connections that matched the filter, before the limit.
    pub matched: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: Request, json: &str) {
        assert_eq!(serde_json::to_string(&req).unwrap(), json);
        assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
    }

    #[test]
    fn requests_on_the_wire() {
        round_trip(Request::LinkShow { stats: true }, r#"{"op":"link_show","stats":true}"#);
        round_trip(Request::AddrShow, r#"{"op":"addr_show"}"#);
        round_trip(
            Request::AddrAdd { port: "dp0".into(), addr: "192.0.2.1/24".parse().unwrap() },
            r#"{"op":"addr_add","port":"dp0","addr":"192.0.2.1/24"}"#,
        );
        round_trip(
            Request::RouteAdd {
                route: RouteConfig {
                    prefix: "203.0.113.0/24".parse().unwrap(),
                    via: Some("192.0.2.2".parse().unwrap()),
                    port: None,
                },
            },
            r#"{"op":"route_add","route":{"prefix":"203.0.113.0/24","via":"192.0.2.2"}}"#,
        );
        round_trip(
            Request::RouteDel { prefix: "2001:db8::/32".parse().unwrap() },
            r#"{"op":"route_del","prefix":"2001:db8::/32"}"#,
        );
        round_trip(Request::Stats, r#"{"op":"stats"}"#);
        round_trip(
            Request::Apply { source: "a.yaml".into(), yaml: "ports: []\n".into() },
            r#"{"op":"apply","source":"a.yaml","yaml":"ports: []\n"}"#,
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"link_show"}"#).unwrap(),
            Request::LinkShow { stats: false }
        );
    }

    #[test]
    fn lb_requests_on_the_wire() {
        round_trip(
            Request::SnatAdd {
                rule: SnatConfig {
                    source: "198.51.100.0/24".parse().unwrap(),
                    out_port: "dp0".into(),
                    addresses: vec!["192.0.2.50".parse().unwrap()],
                },
            },
            r#"{"op":"snat_add","rule":{"source":"198.51.100.0/24","out_port":"dp0","addresses":["192.0.2.50"]}}"#,
        );
        round_trip(
            Request::SnatDel { source: "198.51.100.0/24".parse().unwrap(), out_port: "dp0".into() },
            r#"{"op":"snat_del","source":"198.51.100.0/24","out_port":"dp0"}"#,
        );
        round_trip(Request::SnatShow, r#"{"op":"snat_show"}"#);
        round_trip(Request::AclShow, r#"{"op":"acl_show"}"#);
        let key = ServiceKey { protocol: Protocol::Tcp, vip: "192.0.2.100".parse().unwrap(), port: 443 };
        round_trip(
            Request::ServiceSet {
                key,
                set: ServicePatch {
                    mode: Some(ForwardMode::Tun),
                    encap: Some(Encapsulation::Gue),
                    gue_port: Some(6081),
                    too_big: Some(TooBigPolicy::Drop),
                    ..Default::default()
                },
            },
            r#"{"op":"service_set","key":{"protocol":"tcp","vip":"192.0.2.100","port":443},"set":{"mode":"tun","encap":"gue","gue_port":6081,"too_big":"drop"}}"#,
        );
        let mut tun = ServiceConfig::new(key);
        tun.mode = ForwardMode::Tun;
        let info = serde_json::to_value(ServiceInfo::new(&tun, vec![], None)).unwrap();
        assert_eq!(info["tunnel"], serde_json::json!({ "encap": "ipip", "gue_port": 6080, "too_big": "icmp" }));
        let nat = serde_json::to_value(ServiceInfo::new(&ServiceConfig::new(key), vec![], None)).unwrap();
        assert!(nat.get("tunnel").is_none(), "{nat}");
    }

    #[test]
    fn bad_requests_refused() {
        let err = |s: &str| serde_json::from_str::<Request>(s).unwrap_err().to_string();
        assert!(err(r#"{"op":"link_sho"}"#).contains("unknown variant `link_sho`"));
        assert!(err(r#"{"op":"addr_add","port":"dp0"}"#).contains("missing field `addr`"));
        assert!(err(r#"{"op":"addr_add","port":"dp0","addr":"192.0.2.1/24","x":1}"#).contains("unknown field `x`"));
        assert!(
            err(r#"{"op":"route_add","route":{"prefix":"10.0.0.0/8","dev":"dp0"}}"#).contains("unknown field `dev`")
        );
        assert!(err(r#"{"op":"addr_add","port":"dp0","addr":"192.0.2.300/24"}"#).contains("192.0.2.300"));
        assert!(err(r#"{"port":"dp0"}"#).contains("missing field `op`"));
    }

    #[test]
    fn responses_on_the_wire() {
        let ok = Response::ok(&ApplyResult { changes: vec!["addr add 192.0.2.1/24 dev dp0".into()] });
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(json, r#"{"ok":true,"data":{"changes":["addr add 192.0.2.1/24 dev dp0"]}}"#);
        assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), ok);
        let back: ApplyResult = ok.into_data().unwrap();
        assert_eq!(back.changes.len(), 1);

        let unit = Response::ok(&());
        assert_eq!(serde_json::to_string(&unit).unwrap(), r#"{"ok":true,"data":null}"#);
        assert_eq!(serde_json::from_str::<Response>(r#"{"ok":true,"data":null}"#).unwrap(), unit);
        assert_eq!(serde_json::from_str::<Response>(r#"{"ok":true}"#).unwrap(), unit);

        let err = Response::err("no port named 'dp9'");
        assert_eq!(serde_json::to_string(&err).unwrap(), r#"{"ok":false,"error":"no port named 'dp9'"}"#);
        assert_eq!(serde_json::from_str::<Response>(r#"{"ok":false,"error":"x"}"#).unwrap(), Response::err("x"));
        assert!(serde_json::from_str::<Response>(r#"{"ok":false}"#).is_err());
        assert_eq!(err.into_data::<()>(), Err("no port named 'dp9'".to_string()));
    }

    #[test]
    fn config_stats_bucket_delays() {
        use std::time::Duration;
        let mut c = ConfigStats::new(Duration::from_secs(2));
        assert_eq!((c.published, c.visible(), c.visible_last_us), (0, 0, None));
        for us in [3, 10, 999, 1_000, 250_000] {
            c.record(Some(Duration::from_micros(us)));
        }
        c.record(None);
        let counts: Vec<u64> = c.visible_buckets.iter().map(|b| b.count).collect();
        // Bounds are exclusive: 10us is in <100us, 1000us in <10ms.
        assert_eq!(counts, [1, 1, 1, 1, 0, 1]);
        assert_eq!((c.published, c.not_visible, c.visible()), (6, 1, 5));
        assert_eq!((c.visible_last_us, c.visible_max_us, c.visible_sum_us), (Some(250_000), 250_000, 252_012));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["timeout_us"], 2_000_000);
        assert_eq!(v["visible_buckets"][0], serde_json::json!({ "below_us": 10, "count": 1 }));
        assert_eq!(v["visible_buckets"][5], serde_json::json!({ "below_us": null, "count": 1 }));
        assert_eq!(serde_json::from_value::<ConfigStats>(v).unwrap(), c);
        // An older daemon's answer has no config section.
        let old: StatsInfo = serde_json::from_str(r#"{"cores":[],"total":{}}"#).unwrap();
        assert_eq!(old.config, None);
    }

    #[test]
    fn data_shapes_round_trip() {
        let link = LinkInfo {
            port_id: 0,
            name: "dp0".into(),
            device: "net_af_packet0,iface=veth-lb0".into(),
            driver: "net_af_packet".into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            mtu: 1500,
            link_up: true,
            speed_mbps: 10000,
            rx_queues: 1,
            tx_queues: 1,
            rss: false,
            numa_socket: 0,
            steering: "rings".into(),
            steering_detail: "flow rules: not offered".into(),
            stats: Some(PortStats { rx_packets: 1, ..Default::default() }),
            kernel: Some(KernelLinkInfo {
                name: "fvs-dp0".into(),
                device: "tap".into(),
                port_id: 2,
                link_up: true,
                rate_pps: 20_000,
                burst: 2_000,
                stats: Some(KernelStats { to_kernel: 5, from_kernel: 4, rate_limited: 3 }),
            }),
        };
        let v = serde_json::to_value(&link).unwrap();
        assert_eq!(v["mac"], "02:00:00:00:00:01");
        assert_eq!(serde_json::from_value::<LinkInfo>(v).unwrap(), link);
        let neigh = NeighInfo {
            core: 0,
            port: "dp0".into(),
            addr: "192.0.2.2".parse().unwrap(),
            mac: None,
            state: "incomplete".into(),
            age_ms: 10,
            queued: 2,
        };
        let v = serde_json::to_value(&neigh).unwrap();
        assert_eq!(v["mac"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<NeighInfo>(v).unwrap(), neigh);
    }
}
