//! Health-check settings of a service (`health:`, `passive:`, `on_backend_down:`,
//! `all_down:`) and of a backend (`health:` overrides), and how they resolve into the one
//! check a backend gets. Uses [`super::error`] only; [`super::lb`] holds these in its service
//! and backend types and calls [`validate_health`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// What an active check does.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect to the backend (keepalived's TCP_CHECK).
    Tcp,
    /// GET `path`, expect `status` and, if given, `body` in the answer (HTTP_GET).
    Http,
    /// The same over TLS (SSL_GET).
    Https,
    /// Send `payload`, expect a reply (containing `expect` if given).
    Udp,
    /// ICMP echo.
    Ping,
    /// Run `command` (sh -c); exit code 0 is healthy (MISC_CHECK).
    Script,
    /// No active check (a backend override turning the service's check off).
    None,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Udp => "udp",
            CheckKind::Ping => "ping",
            CheckKind::Script => "script",
            CheckKind::None => "none",
        }
    }
}

impl FromStr for CheckKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(CheckKind::Tcp),
            "http" => Ok(CheckKind::Http),
            "https" => Ok(CheckKind::Https),
            "udp" => Ok(CheckKind::Udp),
            "ping" => Ok(CheckKind::Ping),
            "script" => Ok(CheckKind::Script),
            "none" => Ok(CheckKind::None),
            _ => Err(format!("'{s}' is not a check type (tcp, http, https, udp, ping, script or none)")),
        }
    }
}

/// A health block: every field optional, so a backend's block overrides only what it names
/// of its service's.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckKind>,
    /// Between the starts of two probes (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// A probe not done by then failed (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Successes in a row that bring a down backend up (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failures in a row that take an up backend down (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// The probes' source address (default: the kernel picks by its routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// The port probed (default: the backend's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// http/https: the path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// http/https: the Host header and TLS server name (default: the backend's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// http/https: the status expected (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// http/https: a string the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// https: verify the backend's certificate against the web PKI roots (default false:
    /// backends mostly have self-signed or internal certificates, as with keepalived's SSL_GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// udp: what is sent (default empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// udp: a string the reply must contain (default: any reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// script: run with `sh -c`, FVS_BACKEND_ADDR and FVS_BACKEND_PORT in its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl HealthSpec {
    /// `self` with the fields `over` names replaced.
    pub fn merged(&self, over: &HealthSpec) -> HealthSpec {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            b.clone().or_else(|| a.clone())
        }
        HealthSpec {
            check: pick(&self.check, &over.check),
            interval_ms: pick(&self.interval_ms, &over.interval_ms),
            timeout_ms: pick(&self.timeout_ms, &over.timeout_ms),
            rise: pick(&self.rise, &over.rise),
            fall: pick(&self.fall, &over.fall),
            source: pick(&self.source, &over.source),
            port: pick(&self.port, &over.port),
            path: pick(&self.path, &over.path),
            host: pick(&self.host, &over.host),
            status: pick(&self.status, &over.status),
            body: pick(&self.body, &over.body),
            tls_verify: pick(&self.tls_verify, &over.tls_verify),
            payload: pick(&self.payload, &over.payload),
            expect: pick(&self.expect, &over.expect),
            command: pick(&self.command, &over.command),
        }
    }
}

pub const DEFAULT_INTERVAL_MS: u32 = 2000;
pub const DEFAULT_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;

/// The check one backend gets: its service's block with its own overrides, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub source: Option<IpAddr>,
    /// Where the probe goes (the backend's address, the check's port).
    pub target: SocketAddr,
    pub path: String,
    pub host: Option<String>,
    pub status: u16,
    pub body: Option<String>,
    pub tls_verify: bool,
    pub payload: String,
    pub expect: Option<String>,
    pub command: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CheckKind::Http | CheckKind::Https => {
                write!(f, "{} {} {} expect {}", self.kind.as_str(), self.target, self.path, self.status)
            }
            CheckKind::Ping => write!(f, "ping {}", self.target.ip()),
            CheckKind::Script => write!(f, "script {:?}", self.command),
            k => write!(f, "{} {}", k.as_str(), self.target),
        }
    }
}

/// The check of a backend at `backend` with its service's block `service` and its own
/// `overrides`; None when neither names a type (or the result is `none`).
pub fn resolve(service: Option<&HealthSpec>, overrides: Option<&HealthSpec>, backend: SocketAddr) -> Option<Check> {
    let spec = match (service, overrides) {
        (None, None) => return None,
        (Some(s), None) => s.clone(),
        (None, Some(o)) => o.clone(),
        (Some(s), Some(o)) => s.merged(o),
    };
    let kind = spec.check?;
    if kind == CheckKind::None {
        return None;
    }
    Some(Check {
        kind,
        interval: Duration::from_millis(u64::from(spec.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS))),
        timeout: Duration::from_millis(u64::from(spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))),
        rise: spec.rise.unwrap_or(DEFAULT_RISE),
        fall: spec.fall.unwrap_or(DEFAULT_FALL),
        source: spec.source,
        target: SocketAddr::new(backend.ip(), spec.port.unwrap_or(backend.port())),
        path: spec.path.unwrap_or_else(|| "/".into()),
        host: spec.host,
        status: spec.status.unwrap_or(200),
        body: spec.body,
        tls_verify: spec.tls_verify.unwrap_or(false),
        payload: spec.payload.unwrap_or_default(),
        expect: spec.expect,
        command: spec.command.unwrap_or_default(),
    })
}

/// Passive detection (DPVS's dest-check): `failures` failed new connections to a backend
/// within `window_ms` take it out for `backoff_ms`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct PassiveConfig {
    #[serde(default = "default_passive_failures")]
    pub failures: u32,
    #[serde(default = "default_passive_window")]
    pub window_ms: u32,
    #[serde(default = "default_passive_backoff")]
    pub backoff_ms: u32,
}

fn default_passive_failures() -> u32 {
    5
}
fn default_passive_window() -> u32 {
    10_000
}
fn default_passive_backoff() -> u32 {
    5_000
}

impl Default for PassiveConfig {
    fn default() -> Self {
        PassiveConfig {
            failures: default_passive_failures(),
            window_ms: default_passive_window(),
            backoff_ms: default_passive_backoff(),
        }
    }
}

/// What happens to the connections of a backend that turns unhealthy (IPVS's
/// expire_nodest_conn): `keep` lets them run, `reset` ends them at their next packet.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum DownPolicy {
    #[default]
    Keep,
    Reset,
}

impl DownPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DownPolicy::Keep => "keep",
            DownPolicy::Reset => "reset",
        }
    }
}

impl FromStr for DownPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(DownPolicy::Keep),
            "reset" => Ok(DownPolicy::Reset),
            _ => Err(format!("'{s}' is not an on-down policy (keep or reset)")),
        }
    }
}

/// What a service does when every backend is down: `fail_open` uses them all (as AWS NLB),
/// `drop` drops new connections, `reset` answers their SYN with a RST; the last two withdraw
/// the VIP from the routers.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum AllDownPolicy {
    #[default]
    FailOpen,
    Drop,
    Reset,
}

impl AllDownPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AllDownPolicy::FailOpen => "fail_open",
            AllDownPolicy::Drop => "drop",
            AllDownPolicy::Reset => "reset",
        }
    }
}

impl FromStr for AllDownPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail_open" => Ok(AllDownPolicy::FailOpen),
            "drop" => Ok(AllDownPolicy::Drop),
            "reset" => Ok(AllDownPolicy::Reset),
            _ => Err(format!("'{s}' is not an all-down policy (fail_open, drop or reset)")),
        }
    }
}

fn err(path: String, message: String) -> ConfigError {
    ConfigError::new(path, message)
}

/// Checks a health block at `path` (a service's, or a backend's override: `merged` is then
/// the service's block with it, which must make a whole check).
pub fn validate_health(
    spec: &HealthSpec,
    merged: &HealthSpec,
    path: &str,
    is_override: bool,
) -> Result<(), ConfigError> {
    let at = |f: &str| format!("{path}.{f}");
    if let Some(v) = spec.interval_ms {
        if !(100..=3_600_000).contains(&v) {
            return Err(err(at("interval_ms"), format!("{v} is out of range, must be 100..=3600000")));
        }
    }
    if let Some(v) = spec.timeout_ms {
        if !(10..=600_000).contains(&v) {
            return Err(err(at("timeout_ms"), format!("{v} is out of range, must be 10..=600000")));
        }
    }
    for (name, v) in [("rise", spec.rise), ("fall", spec.fall)] {
        if let Some(v) = v {
            if !(1..=100).contains(&v) {
                return Err(err(at(name), format!("{v} is out of range, must be 1..=100")));
            }
        }
    }
    if spec.port == Some(0) {
        return Err(err(at("port"), "port 0 is not a port to probe (1..=65535)".into()));
    }
    if let Some(s) = spec.status {
        if !(100..=599).contains(&s) {
            return Err(err(at("status"), format!("{s} is not an HTTP status (100..=599)")));
        }
    }
    if let Some(p) = &spec.path {
        if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(at("path"), format!("'{p}' is not an HTTP path (starts with /, no spaces)")));
        }
    }
    if let Some(h) = &spec.host {
        if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(at("host"), format!("'{h}' is not a host name")));
        }
    }
    if let Some(IpAddr::V6(a)) = spec.source {
        return Err(err(at("source"), format!("{a} is IPv6; backends are IPv4, so probes are too")));
    }
    match merged.check {
        // A backend's overrides without a check of its service's to override check nothing
        // (its service's block may come back with `fvs health set`).
        None if is_override => {}
        None => {
            return Err(err(
                at("type"),
                "a health block needs a type (tcp, http, https, udp, ping, script or none)".into(),
            ))
        }
        Some(CheckKind::Script) if merged.command.as_deref().is_none_or(|c| c.trim().is_empty()) => {
            return Err(err(at("command"), "a script check needs a command".into()));
        }
        _ => {}
    }
    Ok(())
}

/// Checks a passive block at `path`.
pub fn validate_passive(p: &PassiveConfig, path: &str) -> Result<(), ConfigError> {
    if !(1..=1_000_000).contains(&p.failures) {
        return Err(err(format!("{path}.failures"), format!("{} is out of range, must be 1..=1000000", p.failures)));
    }
    for (name, v) in [("window_ms", p.window_ms), ("backoff_ms", p.backoff_ms)] {
        if !(100..=3_600_000).contains(&v) {
            return Err(err(format!("{path}.{name}"), format!("{v} is out of range, must be 100..=3600000")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> SocketAddr {
        "198.51.100.11:8080".parse().unwrap()
    }

    #[test]
    fn a_backend_override_replaces_only_what_it_names() {
        let service = HealthSpec {
            check: Some(CheckKind::Http),
            path: Some("/health".into()),
            interval_ms: Some(500),
            ..Default::default()
        };
        let over = HealthSpec { path: Some("/other".into()), port: Some(9000), ..Default::default() };
        let c = resolve(Some(&service), Some(&over), backend()).unwrap();
        assert_eq!(c.kind, CheckKind::Http);
        assert_eq!(c.path, "/other");
        assert_eq!(c.target, "198.51.100.11:9000".parse().unwrap());
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!((c.timeout, c.rise, c.fall, c.status), (Duration::from_millis(1000), 2, 3, 200));
        let off = HealthSpec { check: Some(CheckKind::None), ..Default::default() };
        assert_eq!(resolve(Some(&service), Some(&off), backend()), None);
        assert_eq!(resolve(None, None, backend()), None);
        // A backend alone may have a check its service has not.
        let tcp = HealthSpec { check: Some(CheckKind::Tcp), ..Default::default() };
        assert_eq!(resolve(None, Some(&tcp), backend()).unwrap().target, backend());
    }

    #[test]
    fn bad_blocks_are_named() {
        let ok = HealthSpec { check: Some(CheckKind::Tcp), ..Default::default() };
        assert!(validate_health(&ok, &ok, "s", false).is_ok());
        let bad = HealthSpec { interval_ms: Some(5), ..ok.clone() };
        let e = validate_health(&bad, &bad, "services[0].health", false).unwrap_err();
        assert_eq!(e.path, "services[0].health.interval_ms");
        let script = HealthSpec { check: Some(CheckKind::Script), ..Default::default() };
        assert_eq!(
            validate_health(&script, &script, "h", false).unwrap_err().message,
            "a script check needs a command"
        );
        let untyped = HealthSpec { path: Some("/x".into()), ..Default::default() };
        assert!(validate_health(&untyped, &untyped, "h", false).unwrap_err().message.contains("needs a type"));
        assert!(validate_health(&untyped, &untyped, "h", true).is_ok(), "a backend override may lack a type");
        let path = HealthSpec { path: Some("x y".into()), ..ok.clone() };
        assert_eq!(validate_health(&path, &path, "h", false).unwrap_err().path, "h.path");
        let p = PassiveConfig { failures: 0, ..Default::default() };
        assert_eq!(validate_passive(&p, "p").unwrap_err().path, "p.failures");
    }
}
