//! The L3 part of the config model: ports, their addresses and static routes, and their
//! validation. `validate_l3` is the check the control state runs for `fvs addr add`,
//! `fvs route add` and `fvs apply` alike, so a change is refused with the same words whichever
//! way it arrives. Uses only [`super::error`].

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::net::Prefix;
use serde::{Deserialize, Serialize};

use super::error::{check, in_range, power_of_two_in, ConfigError};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub device: String,
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// The port's kernel interface (exception path), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelConfig>,
}

/// A port's kernel interface: a second DPDK device whose other end is a Linux netdev, for
/// what ferrovs does not answer itself (ssh, BGP, BFD, VRRP, the host's own connections).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// The Linux netdev's name.
    pub name: String,
    #[serde(default)]
    pub device: KernelDevice,
    /// Frames per second each worker core passes to the kernel (a token bucket).
    #[serde(default = "default_kernel_rate")]
    pub rate_pps: u32,
    /// The bucket's depth: frames a core may pass at once after a quiet spell.
    #[serde(default = "default_kernel_burst")]
    pub burst: u32,
}

/// How the kernel interface is made.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KernelDevice {
    /// DPDK's `net_tap`: a TUN/TAP netdev; every frame is a read/write system call.
    #[default]
    Tap,
    /// DPDK's `virtio_user` over `/dev/vhost-net`: the kernel's vhost thread moves the frames
    /// through shared rings (the fast choice on appliances; needs the vhost_net module).
    VirtioUser,
}

impl KernelDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelDevice::Tap => "tap",
            KernelDevice::VirtioUser => "virtio_user",
        }
    }
}

/// Descriptors of each virtio_user queue (vhost-net's rings).
pub const VIRTIO_USER_QUEUE_SIZE: u16 = 1024;

impl KernelConfig {
    /// The DPDK vdev string (name and arguments) that makes this kernel interface for port
    /// `port`, carrying `mac`, with one queue pair per worker.
    pub fn vdev(&self, port: &str, mac: dataplane::net::MacAddr, queues: u16) -> String {
        match self.device {
            KernelDevice::Tap => format!("net_tap_k_{port},iface={},mac={mac}", self.name),
            KernelDevice::VirtioUser => format!(
                "virtio_user_k_{port},path=/dev/vhost-net,iface={},mac={mac},queues={queues},queue_size={VIRTIO_USER_QUEUE_SIZE}",
                self.name
            ),
        }
    }
}

fn default_kernel_rate() -> u32 {
    20_000
}
fn default_kernel_burst() -> u32 {
    2_000
}

fn default_descriptors() -> u16 {
    1024
}
fn default_mtu() -> u16 {
    1500
}
fn default_true() -> bool {
    true
}

/// What `PortConfig::device` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// A DPDK virtual device: `name` is the part before the first ',' (e.g. `net_af_packet0`),
    /// `args` the rest (e.g. `iface=veth-lb0`), empty when there is none.
    Vdev { name: String, args: String },
    /// A PCI address, normalised to the long lower-case form `0000:3b:00.0`.
    Pci(String),
}

impl PortConfig {
    /// How to open the device. Only meaningful for a validated config; an unvalidated
    /// device that is not a vdev is returned as `Pci` unchanged.
    pub fn device_kind(&self) -> DeviceKind {
        if self.device.starts_with("net_") {
            let (name, args) = self.device.split_once(',').unwrap_or((&self.device, ""));
            return DeviceKind::Vdev { name: name.to_string(), args: args.to_string() };
        }
        DeviceKind::Pci(normalise_pci(&self.device).unwrap_or_else(|| self.device.clone()))
    }
}

/// `0000:3b:00.0` or the short `3b:00.0`, hex digits, returned as long lower case.
fn normalise_pci(s: &str) -> Option<String> {
    let long = if s.matches(':').count() == 1 { format!("0000:{s}") } else { s.to_string() };
    let (domain, rest) = long.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    let func_ok = func.len() == 1 && func.chars().all(|c| ('0'..='7').contains(&c));
    if hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && func_ok {
        Some(long.to_ascii_lowercase())
    } else {
        None
    }
}

/// An interface address: the prefix keeps its host bits (`192.0.2.1/24`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct AddressConfig {
    pub port: String,
    pub addr: Prefix,
}

/// A static route. `port` may be left out when `via` lies in a connected prefix.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: Prefix,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

impl RouteConfig {
    /// The port the route leaves by: the given one, else the port of the address whose
    /// network holds `via` (the longest such network wins, as a lookup would pick it).
    pub fn resolved_port(&self, addresses: &[AddressConfig]) -> Option<String> {
        if let Some(port) = &self.port {
            return Some(port.clone());
        }
        connected_for(addresses, self.via?).map(|a| a.port.clone())
    }
}

/// The address whose network holds `ip`, longest network first.
fn connected_for(addresses: &[AddressConfig], ip: IpAddr) -> Option<&AddressConfig> {
    addresses.iter().filter(|a| a.addr.contains(ip)).max_by_key(|a| a.addr.len())
}

pub(crate) fn validate_ports(ports: &[PortConfig]) -> Result<(), ConfigError> {
    let n = ports.len();
    check((1..=16).contains(&n), "ports", || format!("{n} ports given, must be 1 to 16"))?;
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut devices: HashMap<String, usize> = HashMap::new();
    let mut kernel_names: HashMap<&str, usize> = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        validate_port(i, port)?;
        if let Some(j) = names.insert(&port.name, i) {
            return Err(ConfigError::new(
                format!("ports[{i}].name"),
                format!("port name '{}' is already used by ports[{j}]", port.name),
            ));
        }
        let key = device_key(port);
        if let Some(j) = devices.insert(key.clone(), i) {
            return Err(ConfigError::new(
                format!("ports[{i}].device"),
                format!("device '{key}' is already used by ports[{j}] ({})", ports[j].name),
            ));
        }
        if let Some(k) = &port.kernel {
            if let Some(j) = kernel_names.insert(&k.name, i) {
                return Err(ConfigError::new(
                    format!("ports[{i}].kernel.name"),
                    format!("kernel interface '{}' is already ports[{j}]'s ({})", k.name, ports[j].name),
                ));
            }
        }
    }
    Ok(())
}

/// What must be unique among devices: a vdev's name, a PCI device's address.
fn device_key(port: &PortConfig) -> String {
    match port.device_kind() {
        DeviceKind::Vdev { name, .. } => name,
        DeviceKind::Pci(addr) => addr,
    }
}

fn validate_port(i: usize, port: &PortConfig) -> Result<(), ConfigError> {
    let at = |field: &str| format!("ports[{i}].{field}");
    check(valid_port_name(&port.name), &at("name"), || {
        format!("'{}' is not a valid port name (a lower-case letter then up to 14 of a-z 0-9 _ -)", port.name)
    })?;
    let d = &port.device;
    let vdev_ok = d.starts_with("net_") && d.split(',').next().is_some_and(|name| name.len() > 4);
    check(vdev_ok || normalise_pci(d).is_some(), &at("device"), || {
        format!("'{d}' is neither a DPDK vdev (net_xxx[,args]) nor a PCI address (0000:3b:00.0)")
    })?;
    power_of_two_in(port.rx_descriptors.into(), 64, 16384, &at("rx_descriptors"))?;
    power_of_two_in(port.tx_descriptors.into(), 64, 16384, &at("tx_descriptors"))?;
    in_range(port.mtu, 68, 9600, &at("mtu"))?;
    if let Some(k) = &port.kernel {
        check(valid_netdev_name(&k.name), &at("kernel.name"), || {
            format!("'{}' is not a valid Linux interface name (1 to 15 characters, none of '/', ':', blanks)", k.name)
        })?;
        in_range(k.rate_pps, 1, 10_000_000, &at("kernel.rate_pps"))?;
        in_range(k.burst, 1, 1_000_000, &at("kernel.burst"))?;
    }
    Ok(())
}

/// What Linux accepts as an interface name (dev_valid_name), less '.' and '..'.
fn valid_netdev_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

fn valid_port_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    first_ok && rest_ok && name.len() <= 15
}

/// Checks addresses and routes against the port list: everything that can change while
/// ferrovs runs. The daemon runs it on the would-be lists before any change (`fvs addr add`,
/// `fvs route add`, `fvs apply`), so a refused change changes nothing.
pub fn validate_l3(
    ports: &[PortConfig],
    addresses: &[AddressConfig],
    routes: &[RouteConfig],
) -> Result<(), ConfigError> {
    for (i, a) in addresses.iter().enumerate() {
        validate_address(i, a, ports, &addresses[..i])?;
    }
    let mut prefixes: HashMap<Prefix, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        validate_route(i, r, ports, addresses)?;
        if let Some(j) = prefixes.insert(r.prefix, i) {
            return Err(ConfigError::new(
                format!("routes[{i}].prefix"),
                format!("a route to {} already exists (routes[{j}])", r.prefix),
            ));
        }
    }
    Ok(())
}

/// Refuses a port name that no port has, listing the names there are.
pub(crate) fn port_exists(ports: &[PortConfig], name: &str, path: String) -> Result<(), ConfigError> {
    if ports.iter().any(|p| p.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    Err(ConfigError::new(path, format!("no port named '{name}' (ports are: {})", names.join(", "))))
}

fn validate_address(
    i: usize,
    a: &AddressConfig,
    ports: &[PortConfig],
    earlier: &[AddressConfig],
) -> Result<(), ConfigError> {
    port_exists(ports, &a.port, format!("addresses[{i}].port"))?;
    let path = format!("addresses[{i}].addr");
    let ip = a.addr.addr();
    check(!ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback(), &path, || {
        format!("{ip} cannot be an interface address (unspecified, multicast or loopback)")
    })?;
    check_not_network_or_broadcast(a.addr, &path)?;
    for (j, e) in earlier.iter().enumerate() {
        check(e.addr.addr() != ip, &path, || {
            format!("{ip} is already an address of port {} (addresses[{j}])", e.port)
        })?;
        // Two ports on one network would make the connected route ambiguous.
        let clash = e.port != a.port && e.addr.network() == a.addr.network();
        check(!clash, &path, || {
            format!("network {} is already connected to port {} (addresses[{j}])", a.addr.network(), e.port)
        })?;
    }
    Ok(())
}

/// An IPv4 interface address on a /30 or wider must not be the network or broadcast address:
/// the usual slip is writing the network (`192.0.2.0/24`) where the port's address was meant.
fn check_not_network_or_broadcast(p: Prefix, path: &str) -> Result<(), ConfigError> {
    let IpAddr::V4(v4) = p.addr() else {
        return Ok(());
    };
    if p.len() > 30 {
        return Ok(());
    }
    let host_mask = u32::MAX >> p.len();
    let host = u32::from(v4) & host_mask;
    check(host != 0, path, || {
        format!(
            "{p} is the network address itself; give the port's own address, e.g. {}/{}",
            std::net::Ipv4Addr::from(u32::from(v4) + 1),
            p.len()
        )
    })?;
    check(host != host_mask, path, || format!("{p} is the broadcast address of {}", p.network()))
}

fn validate_route(
    i: usize,
    r: &RouteConfig,
    ports: &[PortConfig],
    addresses: &[AddressConfig],
) -> Result<(), ConfigError> {
    let at = |field: &str| format!("routes[{i}].{field}");
    let network = r.prefix.network();
    check(network == r.prefix, &at("prefix"), || format!("{} has host bits set, did you mean {network}?", r.prefix))?;
    if let Some(c) = addresses.iter().find(|a| a.addr.network() == network) {
        return Err(ConfigError::new(
            at("prefix"),
            format!("{network} is the connected network of {} on port {}; it needs no route", c.addr, c.port),
        ));
    }
    if let Some(port) = &r.port {
        port_exists(ports, port, at("port"))?;
    }
    match r.via {
        Some(via) => validate_via(r, via, addresses, &at("via")),
        None => check(r.port.is_some(), &at("via"), || {
            format!("route to {} needs a 'via' next hop, a 'port', or both", r.prefix)
        }),
    }
}

fn validate_via(r: &RouteConfig, via: IpAddr, addresses: &[AddressConfig], path: &str) -> Result<(), ConfigError> {
    check(via.is_ipv4() == r.prefix.is_ipv4(), path, || {
        let family = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
        format!(
            "next hop {via} is {} but the prefix {} is {}",
            family(via.is_ipv4()),
            r.prefix,
            family(r.prefix.is_ipv4())
        )
    })?;
    check(!via.is_unspecified() && !via.is_multicast() && !via.is_loopback(), path, || {
        format!("{via} cannot be a next hop (unspecified, multicast or loopback)")
    })?;
    if let Some(own) = addresses.iter().find(|a| a.addr.addr() == via) {
        return Err(ConfigError::new(path, format!("{via} is ferrovs's own address on port {}", own.port)));
    }
    let connected = connected_for(addresses, via);
    match (&r.port, connected) {
        (None, None) => Err(ConfigError::new(
            path,
            format!("next hop {via} is not in any connected network; add an address on its network or give the route a 'port'"),
        )),
        (Some(port), Some(c)) if *port != c.port => Err(ConfigError::new(
            path,
            format!("next hop {via} is on port {}'s network {}, not on port {port}", c.port, c.addr.network()),
        )),
        _ => Ok(()),
    }
}

/// The change from one set of addresses and routes to another, one line per change, worded
/// like the `fvs` command that would make it (`addr add 192.0.2.1/24 dev dp0`, `route del
/// 203.0.113.0/24 via 192.0.2.2 dev dp0`). Deletions come first. For `ApplyResult::changes`.
pub fn l3_changes(
    old_addresses: &[AddressConfig],
    old_routes: &[RouteConfig],
    new_addresses: &[AddressConfig],
    new_routes: &[RouteConfig],
) -> Vec<String> {
    let mut out = Vec::new();
    for a in old_addresses.iter().filter(|a| !new_addresses.contains(a)) {
        out.push(format!("addr del {} dev {}", a.addr, a.port));
    }
    for r in old_routes.iter().filter(|r| !new_routes.contains(r)) {
        out.push(format!("route del {}", describe_route(r)));
    }
    for a in new_addresses.iter().filter(|a| !old_addresses.contains(a)) {
        out.push(format!("addr add {} dev {}", a.addr, a.port));
    }
    for r in new_routes.iter().filter(|r| !old_routes.contains(r)) {
        out.push(format!("route add {}", describe_route(r)));
    }
    out
}

/// `PREFIX [via ADDR] [dev PORT]`, as typed to `fvs route add`.
pub fn describe_route(r: &RouteConfig) -> String {
    let mut s = r.prefix.to_string();
    if let Some(via) = r.via {
        s.push_str(&format!(" via {via}"));
    }
    if let Some(port) = &r.port {
        s.push_str(&format!(" dev {port}"));
    }
    s
}
