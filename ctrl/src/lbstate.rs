//! The control plane's side of load balancing: turns the service config and the SNAT rules
//! into the workers' [`Services`] (slots and generations, scheduler tables), applies
//! `fvs service/backend/laddr/snat` edits to the config, and sums the per-core counters. No
//! DPDK here: unit-tested as is.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::conn::Timeouts;
use dataplane::lb::LbCounters;
use dataplane::net::Prefix;
use dataplane::sched::{backend_key, Candidate, HashTable, SchedKind};
use dataplane::service::{
    Backend, BackendSlot, Encap, FwdMode, Laddr, LbLimits, Service, Services, SnatRule, SnatRule6, SynProxy, TooBig,
    Tunnel,
};
use dataplane::wire::IpProtocol;

use crate::config::{
    snat_name, AllDownPolicy, BackendConfig, BackendState, ConnectionsConfig, DownPolicy, Encapsulation, ForwardMode,
    HealthSpec, PassiveConfig, RemovalPolicy, ServiceConfig, ServiceKey, SnatConfig, SynProxyMode, TimeoutsConfig,
    TooBigPolicy,
};
use crate::proto::{
    BackendInfo, HandshakeBucket, HandshakeStats, LaddrInfo, ServiceInfo, ServicePatch, SnatAddrInfo, SnatInfo,
    TrafficStats,
};

/// Slots of one kind: a slot keeps its (slot, generation) while its key exists; freed slots
/// are reused oldest first, each time with a new generation.
#[derive(Clone)]
struct Slots<K> {
    assigned: HashMap<K, (u16, u32)>,
    free: VecDeque<u16>,
}

impl<K: std::hash::Hash + Eq + Clone> Slots<K> {
    fn new(count: u16) -> Self {
        Slots { assigned: HashMap::new(), free: (0..count).collect() }
    }

    fn get_or_assign(&mut self, key: &K, next_gen: &mut u32) -> Option<(u16, u32)> {
        if let Some(&s) = self.assigned.get(key) {
            return Some(s);
        }
        let slot = self.free.pop_front()?;
        *next_gen = next_gen.wrapping_add(1).max(1);
        self.assigned.insert(key.clone(), (slot, *next_gen));
        Some((slot, *next_gen))
    }

    /// Frees the slots of keys not in `keep`; returns them with their generations.
    fn release_others(&mut self, keep: &dyn Fn(&K) -> bool) -> Vec<(K, u16, u32)> {
        let gone: Vec<K> = self.assigned.keys().filter(|k| !keep(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|k| {
                let (slot, gen) = self.assigned.remove(&k)?;
                self.free.push_back(slot);
                Some((k, slot, gen))
            })
            .collect()
    }
}

/// A backend of a service: (service, address, port).
pub type BackendId = (ServiceKey, IpAddr, u16);

/// A cached scheduler table and what it was built from.
#[derive(Clone)]
struct CachedTable {
    sched: SchedKind,
    size: u32,
    inputs: Vec<(u64, u32)>,
    table: Arc<HashTable>,
}

/// Cloned whole for a transaction (the scheduler tables are shared, not copied).
#[derive(Clone)]
pub struct LbState {
    limits: LbLimits,
    backends: Slots<BackendId>,
    services: Slots<ServiceKey>,
    /// Local addresses (FullNAT laddrs and SNAT addresses: one address, one slot and port pool,
    /// whichever uses it) keep their slot for the life of the process (until the slots run
    /// out): re-adding an address must not hand out ports its old connections still use.
    laddrs: Slots<IpAddr>,
    backend_slots: Vec<BackendSlot>,
    tables: HashMap<ServiceKey, CachedTable>,
    /// Each service's removal policy as of the last build.
    policies: HashMap<ServiceKey, RemovalPolicy>,
    next_gen: u32,
    /// Backends the health checks (active or passive) found down: the next build gives them
    /// no new connections (unless their service fails open with every backend down).
    down: BTreeSet<BackendId>,
    /// The SYN proxy's cookie secret: drawn once per process, so cookies stay valid across
    /// config changes and mean nothing after a restart.
    syn_cookie_secret: [u64; 2],
}

/// Two random words from the standard library's per-process random hasher keys (drawn from
/// the OS at start-up).
fn boot_secret() -> [u64; 2] {
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    [s.hash_one(0x5359_4e43_4f4f_4b49u64), s.hash_one(0x4546_4552_524f_5653u64)]
}

pub fn limits(c: &ConnectionsConfig, services_max: u16) -> LbLimits {
    LbLimits {
        conn_capacity: c.capacity,
        half_open_capacity: c.half_open_capacity.unwrap_or(c.capacity / 2),
        auto_half_open: c.syn_proxy_auto.half_open.unwrap_or(c.half_open_capacity.unwrap_or(c.capacity / 2) / 4),
        auto_syns_per_s: c.syn_proxy_auto.syns_per_s,
        conn6_capacity: c.capacity6,
        persistence_capacity: c.persistence_capacity,
        max_backends: c.max_backends as u16,
        max_services: services_max,
        max_laddrs: c.max_laddrs as u16,
        lport_min: c.lport_min,
        lport_max: c.lport_max,
        lport_quiet_ms: c.lport_quiet_s.saturating_mul(1000),
    }
}

/// Most services at once (per-core scheduler state is sized for it).
pub const MAX_SERVICES: u16 = 4096;

pub fn timeouts(t: &TimeoutsConfig) -> Timeouts {
    let ms = |s: u32| s.saturating_mul(1000);
    Timeouts {
        established_ms: ms(t.tcp_established),
        syn_sent_ms: ms(t.tcp_syn_sent),
        syn_recv_ms: ms(t.tcp_syn_recv),
        fin_wait_ms: ms(t.tcp_fin_wait),
        time_wait_ms: ms(t.tcp_time_wait),
        close_ms: ms(t.tcp_close),
        close_wait_ms: ms(t.tcp_close_wait),
        last_ack_ms: ms(t.tcp_last_ack),
        listen_ms: ms(t.tcp_listen),
        synack_ms: ms(t.tcp_synack),
        udp_ms: ms(t.udp),
        ..Timeouts::default()
    }
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        // Validation refuses mixed-family services and IPv6 SNAT rules before they get here.
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// An IPv6 service's address. NAT64's backends and local addresses are IPv4: the workers hold
/// them IPv4-mapped (`::ffff:a.b.c.d`), which validation refuses anywhere else.
fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// The workers' tunnel of a service (the defaults, unused, for a service not in TUN mode).
fn tunnel_of(s: &ServiceConfig) -> Tunnel {
    if s.mode != ForwardMode::Tun {
        return Tunnel::default();
    }
    let t = s.tunnel_or_default();
    Tunnel {
        encap: match t.encap {
            Encapsulation::Ipip => Encap::Ipip,
            Encapsulation::Gue => Encap::Gue { port: t.gue_port },
        },
        too_big: match t.too_big {
            TooBigPolicy::Icmp => TooBig::Icmp,
            TooBigPolicy::Drop => TooBig::Drop,
        },
    }
}

impl LbState {
    pub fn new(limits: LbLimits) -> LbState {
        LbState {
            limits,
            backends: Slots::new(limits.max_backends),
            services: Slots::new(limits.max_services),
            laddrs: Slots::new(limits.max_laddrs),
            backend_slots: vec![BackendSlot::default(); usize::from(limits.max_backends)],
            tables: HashMap::new(),
            policies: HashMap::new(),
            next_gen: 0,
            down: BTreeSet::new(),
            syn_cookie_secret: boot_secret(),
        }
    }

    pub fn limits(&self) -> &LbLimits {
        &self.limits
    }

    /// Marks a backend down (or up again) for the next build; true when that changed anything.
    pub fn set_down(&mut self, id: BackendId, down: bool) -> bool {
        if down {
            self.down.insert(id)
        } else {
            self.down.remove(&id)
        }
    }

    /// Whether the health checks hold this backend down.
    pub fn is_down(&self, id: &BackendId) -> bool {
        self.down.contains(id)
    }

    /// Whether `s` has no usable backend the health checks leave up (its all-down policy
    /// applies); false for a service without usable backends at all (nothing to fail open to).
    pub fn all_down(&self, s: &ServiceConfig) -> bool {
        let key = s.key();
        let mut usable = s.backends.iter().filter(|b| b.is_usable()).peekable();
        usable.peek().is_some() && usable.all(|b| self.down.contains(&(key, b.addr, b.port)))
    }

    /// The state the workers get for backend `b` of `s`: an active backend the health checks
    /// hold down is inhibited, unless every backend is down and the service fails open.
    pub fn effective_state(&self, s: &ServiceConfig, b: &BackendConfig) -> BackendState {
        if b.state == BackendState::Active
            && self.down.contains(&(s.key(), b.addr, b.port))
            && !(s.all_down == AllDownPolicy::FailOpen && self.all_down(s))
        {
            BackendState::Inhibited
        } else {
            b.state
        }
    }

    /// The VIP is worth announcing: a backend is usable and up, or the service fails open.
    pub fn announces(&self, s: &ServiceConfig) -> bool {
        s.has_usable_backend() && (s.all_down == AllDownPolicy::FailOpen || !self.all_down(s))
    }

    /// Everything this state holds, in a fixed order (maps sorted), so two states can be
    /// compared whole: the same text means the same slots, generations, free lists, cached
    /// tables (by identity) and policies.
    pub fn dump(&self) -> String {
        fn sorted<T: std::fmt::Debug>(items: impl Iterator<Item = T>) -> Vec<String> {
            let mut v: Vec<String> = items.map(|i| format!("{i:?}")).collect();
            v.sort();
            v
        }
        let tables = sorted(
            self.tables.iter().map(|(k, c)| (k, c.sched, c.size, &c.inputs, Arc::as_ptr(&c.table), c.table.as_ref())),
        );
        format!(
            "limits {:?}\nbackends {:?} free {:?}\nservices {:?} free {:?}\nladdrs {:?} free {:?}\n\
             backend_slots {:?}\ntables {tables:?}\npolicies {:?}\nnext_gen {}\ndown {:?}",
            self.limits,
            sorted(self.backends.assigned.iter()),
            self.backends.free,
            sorted(self.services.assigned.iter()),
            self.services.free,
            sorted(self.laddrs.assigned.iter()),
            self.laddrs.free,
            self.backend_slots,
            sorted(self.policies.iter()),
            self.next_gen,
            self.down,
        )
    }

    /// Builds the workers' view of a validated service list and SNAT rules. Backends that
    /// disappeared since the last build are marked removed, with their service's policy unless
    /// `removal` overrides it (`fvs backend del ... reset`); their slot keeps its tunnel for the
    /// connections still draining. `port_id` gives the DPDK port id of a port name (a SNAT
    /// rule's `out_port`); nothing changes when one is unknown.
    pub fn build(
        &mut self,
        services: &[ServiceConfig],
        snat: &[SnatConfig],
        port_id: &dyn Fn(&str) -> Option<u16>,
        timeouts_config: &TimeoutsConfig,
        removal: Option<RemovalPolicy>,
    ) -> Result<Services, String> {
        let out_ports = snat
            .iter()
            .map(|r| {
                port_id(&r.out_port).ok_or_else(|| format!("SNAT rule {}: no port named '{}'", r.name(), r.out_port))
            })
            .collect::<Result<Vec<u16>, String>>()?;
        let policy_of: HashMap<ServiceKey, RemovalPolicy> =
            services.iter().map(|s| (s.key(), s.on_backend_removal)).collect();
        let wanted: std::collections::HashSet<BackendId> =
            services.iter().flat_map(|s| s.backends.iter().map(move |b| (s.key(), b.addr, b.port))).collect();
        for ((svc, _, _), slot, gen) in self.backends.release_others(&|k| wanted.contains(k)) {
            // A deleted service's backends go by the policy it had.
            let policy = removal
                .or_else(|| policy_of.get(&svc).copied())
                .or_else(|| self.policies.get(&svc).copied())
                .unwrap_or_default();
            let entry = &mut self.backend_slots[usize::from(slot)];
            *entry = BackendSlot { gen, live: false, reset: policy == RemovalPolicy::Reset, tunnel: entry.tunnel };
        }
        let keys: std::collections::HashSet<ServiceKey> = services.iter().map(ServiceConfig::key).collect();
        // Health verdicts go with their backend.
        self.down.retain(|id| wanted.contains(id));
        self.services.release_others(&|k| keys.contains(k));
        self.tables.retain(|k, _| keys.contains(k));

        let mut list = Vec::with_capacity(services.len());
        let mut list6 = Vec::new();
        for s in services {
            // Validation made every address of a service of its VIP's family.
            match s.vip {
                IpAddr::V4(_) => list.push(self.build_service(s, v4)?),
                IpAddr::V6(_) => list6.push(self.build_service(s, v6)?),
            }
        }
        let mut rules = Vec::with_capacity(snat.len());
        let mut rules6 = Vec::new();
        for (r, out_port) in snat.iter().zip(out_ports) {
            let source = r.source.network();
            // Validation made a rule's addresses of its source's family.
            if source.is_ipv4() {
                let addrs =
                    r.addresses.iter().map(|a| self.local_addr(*a, v4)).collect::<Result<Vec<Laddr>, String>>()?;
                rules.push(SnatRule { prefix: v4(source.addr()), prefix_len: source.len(), out_port, addrs });
            } else {
                let addrs = r
                    .addresses
                    .iter()
                    .map(|a| self.local_addr(*a, v6))
                    .collect::<Result<Vec<Laddr<Ipv6Addr>>, String>>()?;
                rules6.push(SnatRule6 { prefix: v6(source.addr()), prefix_len: source.len(), out_port, addrs });
            }
        }
        self.policies = policy_of;
        Ok(Services::new(list, self.backend_slots.clone(), timeouts(timeouts_config))
            .with_snat(rules)
            .with_v6_snat(list6, rules6)
            .with_syn_cookie_secret(self.syn_cookie_secret))
    }

    /// The slot of a local address, assigned on first use.
    fn local_addr<A>(&mut self, addr: IpAddr, family: fn(IpAddr) -> A) -> Result<Laddr<A>, String> {
        let (slot, gen) = self
            .laddrs
            .get_or_assign(&addr, &mut self.next_gen)
            .ok_or_else(|| format!("more than {} local addresses (connections.max_laddrs)", self.limits.max_laddrs))?;
        Ok(Laddr { addr: family(addr), slot, gen })
    }

    /// The workers' view of one service, its addresses taken by `family` (`v4` or `v6`).
    fn build_service<A>(&mut self, s: &ServiceConfig, family: fn(IpAddr) -> A) -> Result<Service<A>, String> {
        let key = s.key();
        let (slot, gen) = self
            .services
            .get_or_assign(&key, &mut self.next_gen)
            .ok_or_else(|| format!("more than {} services", self.limits.max_services))?;
        let tunnel = tunnel_of(s);
        let mut backends = Vec::with_capacity(s.backends.len());
        let states: Vec<BackendState> = s.backends.iter().map(|b| self.effective_state(s, b)).collect();
        for (b, &state) in s.backends.iter().zip(&states) {
            let (bslot, bgen) = self
                .backends
                .get_or_assign(&(key, b.addr, b.port), &mut self.next_gen)
                .ok_or_else(|| format!("more than {} backends (connections.max_backends)", self.limits.max_backends))?;
            // on_backend_down: reset, once the health checks took it out: its connections end at
            // their next packet, as a removed backend's with reset do (the workers' check of an
            // established packet stays one comparison).
            let reset = s.on_backend_down == DownPolicy::Reset
                && state == BackendState::Inhibited
                && self.down.contains(&(key, b.addr, b.port));
            self.backend_slots[usize::from(bslot)] = BackendSlot { gen: bgen, live: !reset, reset, tunnel };
            backends.push(Backend {
                addr: family(b.addr),
                port: b.port,
                weight: b.weight,
                state: match state {
                    BackendState::Active => dataplane::service::BackendState::Active,
                    BackendState::Draining => dataplane::service::BackendState::Draining,
                    BackendState::Inhibited => dataplane::service::BackendState::Inhibited,
                },
                slot: bslot,
                gen: bgen,
            });
        }
        let laddrs = s.laddrs.iter().map(|l| self.local_addr(*l, family)).collect::<Result<Vec<Laddr<A>>, String>>()?;
        let candidates: Vec<Candidate> = s
            .backends
            .iter()
            .zip(&states)
            .map(|(b, st)| Candidate { weight: b.weight, schedulable: *st == BackendState::Active })
            .collect();
        let table = self.table_for(s, &candidates)?;
        Ok(Service {
            slot,
            gen,
            vip: family(s.vip),
            port: s.port,
            proto: s.protocol.ip_protocol(),
            sched: s.scheduler,
            mode: match s.mode {
                ForwardMode::Nat => FwdMode::Nat,
                ForwardMode::Fullnat => FwdMode::FullNat,
                ForwardMode::Dr => FwdMode::Dr,
                ForwardMode::Tun => FwdMode::Tun,
                ForwardMode::Nat64 => FwdMode::Nat64,
            },
            tunnel,
            persistence_ms: s.persistence_s.saturating_mul(1000),
            reset_on_removal: s.on_backend_removal == RemovalPolicy::Reset,
            reset_when_all_down: s.all_down == AllDownPolicy::Reset,
            pickup: s.pickup(),
            syn_proxy: match s.syn_proxy {
                SynProxyMode::Off => SynProxy::Off,
                SynProxyMode::On => SynProxy::On,
                SynProxyMode::Auto => SynProxy::Auto,
            },
            client_address: s.client_address.dataplane(),
            backends,
            candidates,
            table,
            laddrs,
        })
    }

    /// The sh/mh table, rebuilt only when the backends, their weights or states changed.
    fn table_for(&mut self, s: &ServiceConfig, candidates: &[Candidate]) -> Result<Option<Arc<HashTable>>, String> {
        if !s.scheduler.needs_table() {
            self.tables.remove(&s.key());
            return Ok(None);
        }
        let inputs: Vec<(u64, u32)> = s
            .backends
            .iter()
            .zip(candidates)
            .map(|(b, c)| {
                let weight = if c.schedulable { c.weight } else { 0 };
                (backend_key(std::net::SocketAddr::new(b.addr, b.port)), weight)
            })
            .collect();
        if let Some(c) = self.tables.get(&s.key()) {
            if c.sched == s.scheduler && c.size == s.maglev_size && c.inputs == inputs {
                return Ok(Some(c.table.clone()));
            }
        }
        let weights: Vec<u32> = inputs.iter().map(|i| i.1).collect();
        let table = match s.scheduler {
            SchedKind::Mh => {
                let keys: Vec<u64> = inputs.iter().map(|i| i.0).collect();
                HashTable::maglev(&keys, &weights, s.maglev_size as usize)
                    .map_err(|e| format!("service {}: {e}", s.key()))?
            }
            _ => HashTable::source_hash(&weights),
        };
        let table = Arc::new(table);
        self.tables
            .insert(s.key(), CachedTable { sched: s.scheduler, size: s.maglev_size, inputs, table: table.clone() });
        Ok(Some(table))
    }

    /// The (slot, generation) of a live backend, for reading its counters.
    fn backend_slot(&self, key: ServiceKey, addr: IpAddr, port: u16) -> Option<(u16, u32)> {
        self.backends.assigned.get(&(key, addr, port)).copied()
    }

    /// (ports in use, ports in all) of a local address, over all cores: of `proto`'s pool
    /// (TCP and UDP have a pool each), or of both pools together when `proto` is None.
    fn laddr_ports(&self, addr: IpAddr, proto: Option<IpProtocol>, cores: &[Arc<LbCounters>]) -> (u64, u64) {
        let Some(&(slot, gen)) = self.laddrs.assigned.get(&addr) else { return (0, 0) };
        cores.iter().fold((0, 0), |(used, total), c| {
            let l = &c.laddrs[usize::from(slot)];
            if l.gen.get() == u64::from(gen) {
                let per_protocol = l.ports_per_protocol.get();
                match proto {
                    Some(p) => (used + l.in_use(p).get(), total + per_protocol),
                    None => (used + l.tcp_in_use.get() + l.udp_in_use.get(), total + 2 * per_protocol),
                }
            } else {
                (used, total) // This core has not filled the address's pool yet.
            }
        })
    }

    /// `service show`: the config with per-backend counts and, with `stats`, traffic, summed
    /// over the cores' counters.
    pub fn service_infos(
        &self,
        services: &[ServiceConfig],
        cores: &[Arc<LbCounters>],
        stats: bool,
    ) -> Vec<ServiceInfo> {
        services
            .iter()
            .map(|s| {
                let mut total = TrafficStats::default();
                let backends = s
                    .backends
                    .iter()
                    .map(|b| {
                        let (active, inactive, traffic) = self
                            .backend_slot(s.key(), b.addr, b.port)
                            .map(|(slot, gen)| sum_backend(cores, slot, gen))
                            .unwrap_or_default();
                        total += traffic;
                        BackendInfo {
                            addr: b.addr,
                            port: b.port,
                            weight: b.weight,
                            state: b.state,
                            active_conns: active,
                            inactive_conns: inactive,
                            stats: stats.then_some(traffic),
                            handshake: self
                                .backend_slot(s.key(), b.addr, b.port)
                                .filter(|_| stats)
                                .map(|(slot, gen)| sum_handshake(cores, slot, gen)),
                            health: None,
                        }
                    })
                    .collect();
                ServiceInfo::new(s, backends, stats.then_some(total))
            })
            .collect()
    }

    /// A backend's failed new connections (passive health detection) summed over the cores
    /// that have served its current occupant of the slot.
    pub fn syn_failures(&self, id: BackendId, cores: &[Arc<LbCounters>]) -> u64 {
        let Some((slot, gen)) = self.backend_slot(id.0, id.1, id.2) else { return 0 };
        cores
            .iter()
            .map(|c| &c.backends[usize::from(slot)])
            .filter(|b| b.gen.get() == u64::from(gen))
            .map(|b| b.syn_failures.get())
            .sum()
    }

    /// `laddr show`: each service's local addresses with the ports of the service's protocol.
    pub fn laddr_infos(&self, services: &[ServiceConfig], cores: &[Arc<LbCounters>]) -> Vec<LaddrInfo> {
        let mut out = Vec::new();
        for s in services {
            for l in &s.laddrs {
                let (in_use, total) = self.laddr_ports(*l, Some(s.protocol.ip_protocol()), cores);
                out.push(LaddrInfo { service: s.key(), addr: *l, ports_in_use: in_use, ports_total: total });
            }
        }
        out
    }

    /// `snat show`: the rules in order, with the ports in use of each address (counted over
    /// everything that uses the address, FullNAT services included).
    pub fn snat_infos(&self, snat: &[SnatConfig], cores: &[Arc<LbCounters>]) -> Vec<SnatInfo> {
        snat.iter()
            .map(|r| SnatInfo {
                source: r.source,
                out_port: r.out_port.clone(),
                addresses: r
                    .addresses
                    .iter()
                    .map(|a| {
                        let (ports_in_use, ports_total) = self.laddr_ports(*a, None, cores);
                        SnatAddrInfo { addr: *a, ports_in_use, ports_total }
                    })
                    .collect(),
            })
            .collect()
    }
}

/// (active, inactive, traffic) of backend (slot, gen) over all cores.
fn sum_backend(cores: &[Arc<LbCounters>], slot: u16, gen: u32) -> (u64, u64, TrafficStats) {
    let mut out = (0, 0, TrafficStats::default());
    for c in cores {
        let b = &c.backends[usize::from(slot)];
        if b.gen.get() != u64::from(gen) {
            continue; // This core never used this backend.
        }
        out.0 += b.active.get();
        out.1 += b.inactive.get();
        out.2 += TrafficStats {
            conns: b.conns.get(),
            in_packets: b.in_packets.get(),
            out_packets: b.out_packets.get(),
            in_bytes: b.in_bytes.get(),
            out_bytes: b.out_bytes.get(),
        };
    }
    out
}

/// The handshake latency histogram of backend (slot, gen) over all cores.
fn sum_handshake(cores: &[Arc<LbCounters>], slot: u16, gen: u32) -> HandshakeStats {
    use dataplane::handshake::{BUCKETS_US, N_BUCKETS};
    let mut counts = [0u64; N_BUCKETS];
    let mut sum_us = 0;
    for c in cores {
        let Some(h) = c.handshake.get(usize::from(slot)) else { continue };
        if h.gen.get() != u64::from(gen) {
            continue; // No sample of this backend on that core (or only of the slot's last).
        }
        for (total, b) in counts.iter_mut().zip(h.buckets.iter()) {
            *total += b.get();
        }
        sum_us += h.sum_us.get();
    }
    let bounds = BUCKETS_US.iter().map(|b| Some(*b)).chain([None]);
    HandshakeStats {
        count: counts.iter().sum(),
        sum_us,
        buckets: bounds.zip(counts).map(|(le_us, count)| HandshakeBucket { le_us, count }).collect(),
    }
}

/// An edit of the service list, as `fvs service|backend|laddr add|set|del` ask. Returns the
/// new list (to validate and build) and, for `backend del`, the removal policy to use.
pub enum Edit {
    ServiceAdd(ServiceConfig),
    ServiceSet(ServiceKey, ServicePatch),
    ServiceDel(ServiceKey),
    BackendAdd(ServiceKey, BackendConfig),
    BackendSet {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
        weight: Option<u32>,
        state: Option<BackendState>,
    },
    BackendDel {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    LaddrAdd(ServiceKey, IpAddr),
    LaddrDel(ServiceKey, IpAddr),
    HealthSet {
        service: ServiceKey,
        backend: Option<(IpAddr, u16)>,
        spec: HealthSpec,
        passive: Option<Option<PassiveConfig>>,
        on_down: Option<DownPolicy>,
        all_down: Option<AllDownPolicy>,
    },
    HealthDel {
        service: ServiceKey,
        backend: Option<(IpAddr, u16)>,
    },
}

fn find(services: &mut [ServiceConfig], key: ServiceKey) -> Result<&mut ServiceConfig, String> {
    services.iter_mut().find(|s| s.key() == key).ok_or_else(|| format!("no service {key} (see fvs service show)"))
}

/// Applies `edit` to a copy of `services`. Errors name what is missing or already there;
/// everything else is for validation to judge.
pub fn edit(services: &[ServiceConfig], edit: Edit) -> Result<Vec<ServiceConfig>, String> {
    let mut out = services.to_vec();
    match edit {
        Edit::ServiceAdd(s) => {
            if out.iter().any(|o| o.key() == s.key()) {
                return Err(format!("service {} already exists (change it with fvs service set)", s.key()));
            }
            out.push(s);
        }
        Edit::ServiceSet(key, patch) => {
            let s = find(&mut out, key)?;
            if patch == ServicePatch::default() {
                return Err(
                    "nothing to change: give scheduler, mode, persistence, removal, maglev-size, encap, gue-port, too-big, pickup, syn-proxy or client-address"
                        .into(),
                );
            }
            if let Some(v) = patch.scheduler {
                s.scheduler = v;
            }
            if let Some(v) = patch.mode {
                s.mode = v;
                // Tunnel settings mean nothing in the other modes (validation refuses them there),
                // nor does pickup outside dr and tun.
                if v != ForwardMode::Tun {
                    s.tunnel = None;
                }
                if !v.keeps_packet() {
                    s.pickup = None;
                }
            }
            if let Some(v) = patch.syn_proxy {
                s.syn_proxy = v;
            }
            if let Some(v) = patch.client_address {
                s.client_address = v;
            }
            if let Some(v) = patch.pickup {
                s.pickup = Some(v);
            }
            if patch.encap.is_some() || patch.gue_port.is_some() || patch.too_big.is_some() {
                let mut t = s.tunnel_or_default();
                t.encap = patch.encap.unwrap_or(t.encap);
                t.gue_port = patch.gue_port.unwrap_or(t.gue_port);
                t.too_big = patch.too_big.unwrap_or(t.too_big);
                s.tunnel = Some(t);
            }
            if let Some(v) = patch.persistence_s {
                s.persistence_s = v;
            }
            if let Some(v) = patch.on_backend_removal {
                s.on_backend_removal = v;
            }
            if let Some(v) = patch.maglev_size {
                s.maglev_size = v;
            }
        }
        Edit::ServiceDel(key) => {
            find(&mut out, key)?;
            out.retain(|s| s.key() != key);
        }
        Edit::BackendAdd(key, b) => {
            let s = find(&mut out, key)?;
            if s.backend(b.addr, b.port).is_some() {
                return Err(format!(
                    "backend {} is already in service {key} (change it with fvs backend set)",
                    std::net::SocketAddr::new(b.addr, b.port)
                ));
            }
            s.backends.push(b);
        }
        Edit::BackendSet { service, addr, port, weight, state } => {
            let s = find(&mut out, service)?;
            let i = s
                .backend(addr, port)
                .ok_or_else(|| format!("no backend {} in service {service}", std::net::SocketAddr::new(addr, port)))?;
            if weight.is_none() && state.is_none() {
                return Err("nothing to change: give weight or state".into());
            }
            if let Some(w) = weight {
                s.backends[i].weight = w;
            }
            if let Some(st) = state {
                s.backends[i].state = st;
            }
        }
        Edit::BackendDel { service, addr, port } => {
            let s = find(&mut out, service)?;
            let i = s
                .backend(addr, port)
                .ok_or_else(|| format!("no backend {} in service {service}", std::net::SocketAddr::new(addr, port)))?;
            s.backends.remove(i);
        }
        Edit::HealthSet { service, backend, spec, passive, on_down, all_down } => {
            let s = find(&mut out, service)?;
            let slot = match backend {
                Some((addr, port)) => {
                    let i = s.backend(addr, port).ok_or_else(|| {
                        format!("no backend {} in service {service}", std::net::SocketAddr::new(addr, port))
                    })?;
                    &mut s.backends[i].health
                }
                None => &mut s.health,
            };
            if spec != HealthSpec::default() {
                *slot = Some(Box::new(slot.as_deref().cloned().unwrap_or_default().merged(&spec)));
            }
            if let Some(p) = passive {
                s.passive = p;
            }
            if let Some(p) = on_down {
                s.on_backend_down = p;
            }
            if let Some(p) = all_down {
                s.all_down = p;
            }
        }
        Edit::HealthDel { service, backend } => {
            let s = find(&mut out, service)?;
            let slot = match backend {
                Some((addr, port)) => {
                    let i = s.backend(addr, port).ok_or_else(|| {
                        format!("no backend {} in service {service}", std::net::SocketAddr::new(addr, port))
                    })?;
                    &mut s.backends[i].health
                }
                None => &mut s.health,
            };
            if slot.take().is_none() {
                return Err("no health check to remove there (see fvs backend show)".to_string());
            }
        }
        Edit::LaddrAdd(key, addr) => {
            let s = find(&mut out, key)?;
            if s.laddrs.contains(&addr) {
                return Err(format!("{addr} is already a local address of service {key}"));
            }
            s.laddrs.push(addr);
        }
        Edit::LaddrDel(key, addr) => {
            let s = find(&mut out, key)?;
            let before = s.laddrs.len();
            s.laddrs.retain(|a| *a != addr);
            if s.laddrs.len() == before {
                return Err(format!("{addr} is not a local address of service {key} (see fvs laddr show)"));
            }
        }
    }
    Ok(out)
}

/// An edit of the SNAT rules, as `fvs snat add|del` ask.
pub enum SnatEdit {
    /// Appends the rule: it is tried after the existing ones.
    Add(SnatConfig),
    Del {
        source: Prefix,
        out_port: String,
    },
}

/// Applies `edit` to a copy of `snat`; like [`edit`], errors name what is missing or already
/// there and validation judges the rest.
pub fn edit_snat(snat: &[SnatConfig], edit: SnatEdit) -> Result<Vec<SnatConfig>, String> {
    let mut out = snat.to_vec();
    match edit {
        SnatEdit::Add(rule) => {
            if out.iter().any(|r| r.source == rule.source && r.out_port == rule.out_port) {
                return Err(format!("SNAT rule {} already exists (delete it first with fvs snat del)", rule.name()));
            }
            out.push(rule);
        }
        SnatEdit::Del { source, out_port } => {
            let before = out.len();
            out.retain(|r| !(r.source == source && r.out_port == out_port));
            if out.len() == before {
                return Err(format!("no SNAT rule {} (see fvs snat show)", snat_name(source, &out_port)));
            }
        }
    }
    Ok(out)
}

/// `snat add` and `snat del` lines for `fvs apply`'s report; a rule whose addresses changed is
/// deleted and added, and a mere change of order says so.
pub fn snat_changes(prev: &[SnatConfig], next: &[SnatConfig]) -> Vec<String> {
    let same_name = |a: &SnatConfig, b: &SnatConfig| a.source == b.source && a.out_port == b.out_port;
    let mut out = Vec::new();
    for p in prev.iter().filter(|p| !next.contains(p)) {
        out.push(format!("snat del {}", p.name()));
    }
    for n in next.iter().filter(|n| !prev.contains(n)) {
        let addresses: Vec<String> = n.addresses.iter().map(|a| format!("address {a}")).collect();
        out.push(format!("snat add {} {}", n.name(), addresses.join(" ")));
    }
    let reordered = prev.len() == next.len() && prev.iter().zip(next).any(|(p, n)| !same_name(p, n));
    if out.is_empty() && reordered {
        out.push("snat rules reordered".to_string());
    }
    out
}

/// Lines describing how `next` differs from `prev`, for `fvs apply`'s report.
pub fn service_changes(prev: &[ServiceConfig], next: &[ServiceConfig]) -> Vec<String> {
    let mut out = Vec::new();
    for s in prev {
        if !next.iter().any(|n| n.key() == s.key()) {
            out.push(format!("service del {}", s.key()));
        }
    }
    for n in next {
        match prev.iter().find(|p| p.key() == n.key()) {
            None => out.push(format!("service add {} ({} backends)", n.key(), n.backends.len())),
            Some(p) if p != n => {
                let mut attrs = p.clone();
                attrs.backends = n.backends.clone();
                if attrs != *n {
                    out.push(format!("service set {}", n.key()));
                }
                for b in &p.backends {
                    if n.backend(b.addr, b.port).is_none() {
                        out.push(format!("backend del {} {}", n.key(), std::net::SocketAddr::new(b.addr, b.port)));
                    }
                }
                for b in &n.backends {
                    match p.backend(b.addr, b.port) {
                        None => {
                            out.push(format!("backend add {} {}", n.key(), std::net::SocketAddr::new(b.addr, b.port)))
                        }
                        Some(i) if p.backends[i] != *b => {
                            out.push(format!("backend set {} {}", n.key(), std::net::SocketAddr::new(b.addr, b.port)))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Protocol, TunnelConfig};

    fn key(port: u16) -> ServiceKey {
        ServiceKey { protocol: Protocol::Tcp, vip: "192.0.2.100".parse().unwrap(), port }
    }

    fn backend(last: u8, weight: u32) -> BackendConfig {
        BackendConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)),
            port: 8080,
            weight,
            state: BackendState::Active,
            health: None,
            max_conns: 0,
        }
    }

    fn service(port: u16, sched: SchedKind, backends: Vec<BackendConfig>) -> ServiceConfig {
        ServiceConfig { scheduler: sched, backends, ..ServiceConfig::new(key(port)) }
    }

    fn state() -> LbState {
        LbState::new(limits(&ConnectionsConfig { max_backends: 4, max_laddrs: 4, ..Default::default() }, 8))
    }

    /// Port names as the daemon maps them: dp0 is DPDK port 0, dp1 port 3.
    fn port_id(name: &str) -> Option<u16> {
        match name {
            "dp0" => Some(0),
            "dp1" => Some(3),
            _ => None,
        }
    }

    /// Builds services without SNAT rules.
    fn build(lb: &mut LbState, services: &[ServiceConfig], removal: Option<RemovalPolicy>) -> Result<Services, String> {
        lb.build(services, &[], &port_id, &TimeoutsConfig::default(), removal)
    }

    fn snat_rule(source: &str, out_port: &str, addresses: &[&str]) -> SnatConfig {
        SnatConfig {
            source: source.parse().unwrap(),
            out_port: out_port.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn slots_stay_while_backends_stay_and_removals_leave_tombstones() {
        let mut lb = state();
        let v1 = vec![service(80, SchedKind::Rr, vec![backend(11, 1), backend(12, 1)])];
        let s1 = build(&mut lb, &v1, None).unwrap();
        let (b11, b12) = (s1.list[0].backends[0], s1.list[0].backends[1]);
        assert_ne!(b11.slot, b12.slot);
        assert!(s1.backend_slot(b11.slot).live);

        // Reweighting keeps slot and generation; removing with reset leaves a reset tombstone.
        let v2 = vec![service(80, SchedKind::Rr, vec![backend(12, 5)])];
        let s2 = build(&mut lb, &v2, Some(RemovalPolicy::Reset)).unwrap();
        let b12b = s2.list[0].backends[0];
        assert_eq!((b12b.slot, b12b.gen, b12b.weight), (b12.slot, b12.gen, 5));
        assert_eq!(
            s2.backend_slot(b11.slot),
            BackendSlot { gen: b11.gen, live: false, reset: true, ..Default::default() }
        );

        // A re-added backend is a new occupant: other slot or newer generation.
        let s3 = build(&mut lb, &v1, None).unwrap();
        let again = s3.list[0].backends[0];
        assert_ne!((again.slot, again.gen), (b11.slot, b11.gen));
        // The freed slot is reused last (oldest first), so the tombstone outlives other frees.
        assert_ne!(again.slot, b11.slot);

        // Deleting the service drains its backends by its own (default) policy.
        let s4 = build(&mut lb, &[], None).unwrap();
        assert!(s4.list.is_empty());
        assert_eq!(
            s4.backend_slot(b12.slot),
            BackendSlot { gen: b12.gen, live: false, reset: false, ..Default::default() }
        );
    }

    #[test]
    fn hash_tables_are_built_once_per_backend_set() {
        let mut lb = state();
        let mut v = vec![ServiceConfig {
            maglev_size: 251,
            ..service(80, SchedKind::Mh, vec![backend(11, 1), backend(12, 3)])
        }];
        let a = build(&mut lb, &v, None).unwrap();
        let b = build(&mut lb, &v, None).unwrap();
        let (ta, tb) = (a.list[0].table.clone().unwrap(), b.list[0].table.clone().unwrap());
        assert!(Arc::ptr_eq(&ta, &tb), "unchanged backends reuse the table");
        assert_eq!(ta.len(), 251);
        let share = ta.slots().iter().filter(|&&i| i == 1).count();
        assert!((170..=206).contains(&share), "weight 3 of 4 gets about 3/4 of 251 slots: {share}");
        v[0].backends[1].state = BackendState::Inhibited;
        let c = build(&mut lb, &v, None).unwrap();
        let tc = c.list[0].table.clone().unwrap();
        assert!(tc.slots().iter().all(|&i| i == 0), "an inhibited backend gets no slots");
        assert!(!c.list[0].candidates[1].schedulable);
        let rr = build(&mut lb, &[service(80, SchedKind::Rr, vec![backend(11, 1)])], None).unwrap();
        assert!(rr.list[0].table.is_none());
    }

    #[test]
    fn health_down_inhibits_resets_and_fails_open() {
        let mut lb = state();
        let mut v = vec![service(80, SchedKind::Rr, vec![backend(11, 1), backend(12, 1)])];
        let id = |last: u8| (key(80), IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)), 8080u16);
        assert!(lb.set_down(id(11), true));
        let built = build(&mut lb, &v, None).unwrap();
        let svc = &built.list[0];
        assert_eq!(svc.backends[0].state, dataplane::service::BackendState::Inhibited);
        assert!(!svc.candidates[0].schedulable && svc.candidates[1].schedulable);
        assert!(!built.backend_slot(svc.backends[0].slot).reset, "on_backend_down keep");
        assert!(lb.announces(&v[0]));

        v[0].on_backend_down = DownPolicy::Reset;
        let built = build(&mut lb, &v, None).unwrap();
        let slot = built.backend_slot(built.list[0].backends[0].slot);
        assert!(!slot.live && slot.reset, "a downed backend whose connections are reset: {slot:?}");
        assert_eq!(slot.gen, built.list[0].backends[0].gen, "it keeps its slot and generation");

        // Both down: fail_open (the default) schedules them all and stays announced.
        lb.set_down(id(12), true);
        let built = build(&mut lb, &v, None).unwrap();
        assert!(built.list[0].candidates.iter().all(|c| c.schedulable));
        assert!(lb.all_down(&v[0]) && lb.announces(&v[0]));
        // drop: none schedulable, withdrawn; reset: the workers answer SYNs with a RST.
        v[0].all_down = AllDownPolicy::Drop;
        let built = build(&mut lb, &v, None).unwrap();
        assert!(built.list[0].candidates.iter().all(|c| !c.schedulable));
        assert!(!lb.announces(&v[0]));
        v[0].all_down = AllDownPolicy::Reset;
        assert!(build(&mut lb, &v, None).unwrap().list[0].reset_when_all_down);

        // A removed backend's verdict goes with it.
        v[0].backends.remove(0);
        build(&mut lb, &v, None).unwrap();
        assert!(!lb.is_down(&id(11)));
    }

    #[test]
    fn out_of_slots_is_an_error() {
        let mut lb = state();
        let five: Vec<BackendConfig> = (11..16).map(|i| backend(i, 1)).collect();
        let e = build(&mut lb, &[service(80, SchedKind::Rr, five)], None).unwrap_err();
        assert!(e.contains("more than 4 backends"), "{e}");
    }

    #[test]
    fn edits_name_what_is_missing_or_present() {
        let base = vec![service(80, SchedKind::Rr, vec![backend(11, 1)])];
        let err = |e| edit(&base, e).unwrap_err();
        assert_eq!(
            err(Edit::ServiceAdd(ServiceConfig::new(key(80)))),
            "service tcp 192.0.2.100:80 already exists (change it with fvs service set)"
        );
        assert_eq!(err(Edit::ServiceDel(key(81))), "no service tcp 192.0.2.100:81 (see fvs service show)");
        assert_eq!(
            err(Edit::BackendAdd(key(80), backend(11, 2))),
            "backend 198.51.100.11:8080 is already in service tcp 192.0.2.100:80 (change it with fvs backend set)"
        );
        let addr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99));
        assert_eq!(
            err(Edit::BackendDel { service: key(80), addr, port: 8080 }),
            "no backend 198.51.100.99:8080 in service tcp 192.0.2.100:80"
        );
        assert!(err(Edit::ServiceSet(key(80), ServicePatch::default())).starts_with("nothing to change"));
        assert!(err(Edit::LaddrDel(key(80), addr)).contains("is not a local address"));

        let next = edit(
            &base,
            Edit::BackendSet {
                service: key(80),
                addr: base[0].backends[0].addr,
                port: 8080,
                weight: Some(7),
                state: None,
            },
        )
        .unwrap();
        assert_eq!(next[0].backends[0].weight, 7);
        let next =
            edit(&next, Edit::ServiceSet(key(80), ServicePatch { persistence_s: Some(30), ..Default::default() }))
                .unwrap();
        assert_eq!(next[0].persistence_s, 30);
        assert_eq!(
            service_changes(&base, &next),
            vec![
                "service set tcp 192.0.2.100:80".to_string(),
                "backend set tcp 192.0.2.100:80 198.51.100.11:8080".to_string()
            ]
        );
        assert_eq!(service_changes(&next, &[]), vec!["service del tcp 192.0.2.100:80".to_string()]);
    }

    #[test]
    fn a_nat64_service_is_an_ipv6_one_with_its_ipv4_addresses_mapped() {
        let mut lb = state();
        let vip: IpAddr = "2001:db8:1::100".parse().unwrap();
        let nat64 = ServiceConfig {
            mode: ForwardMode::Nat64,
            laddrs: vec!["198.51.100.200".parse().unwrap()],
            ..ServiceConfig::new(ServiceKey { protocol: Protocol::Tcp, vip, port: 80 })
        };
        let nat64 = ServiceConfig { backends: vec![backend(11, 1)], ..nat64 };
        let built = build(&mut lb, &[nat64], None).unwrap();
        assert!(built.list.is_empty());
        let s = &built.v6.list[0];
        assert_eq!(s.mode, FwdMode::Nat64);
        assert_eq!(s.backends[0].addr, Ipv4Addr::new(198, 51, 100, 11).to_ipv6_mapped());
        assert_eq!(s.laddrs[0].addr, Ipv4Addr::new(198, 51, 100, 200).to_ipv6_mapped());
        // Its local address is an IPv4 one for the IPv4 path.
        assert!(built.v6.is_nat64_laddr(Ipv4Addr::new(198, 51, 100, 200)));
        assert!(built.is_local_port_addr(Ipv4Addr::new(198, 51, 100, 200)));
    }

    #[test]
    fn modes_and_tunnels_reach_the_workers_and_tombstones_keep_the_tunnel() {
        let mut lb = state();
        let gue = TunnelConfig { encap: Encapsulation::Gue, gue_port: 7777, too_big: TooBigPolicy::Drop };
        let tun = ServiceConfig {
            mode: ForwardMode::Tun,
            tunnel: Some(gue),
            ..service(80, SchedKind::Rr, vec![backend(11, 1), backend(12, 1)])
        };
        let dr = ServiceConfig { mode: ForwardMode::Dr, ..service(81, SchedKind::Rr, vec![backend(13, 1)]) };
        let built = build(&mut lb, &[tun.clone(), dr.clone()], None).unwrap();
        let want = Tunnel { encap: Encap::Gue { port: 7777 }, too_big: TooBig::Drop };
        let (t, d) = (&built.list[0], &built.list[1]);
        assert_eq!((t.mode, t.tunnel), (FwdMode::Tun, want));
        assert_eq!((d.mode, d.tunnel), (FwdMode::Dr, Tunnel::default()));
        let (b11, b12) = (t.backends[0], t.backends[1]);
        assert_eq!(built.backend_slot(b11.slot), BackendSlot { gen: b11.gen, live: true, reset: false, tunnel: want });
        assert_eq!(built.backend_slot(d.backends[0].slot).tunnel, Tunnel::default());

        // A removed backend's connections still drain through its tunnel.
        let one = ServiceConfig { backends: vec![backend(12, 1)], ..tun.clone() };
        let after = build(&mut lb, &[one, dr.clone()], Some(RemovalPolicy::Drain)).unwrap();
        assert_eq!(after.backend_slot(b11.slot), BackendSlot { gen: b11.gen, live: false, reset: false, tunnel: want });
        // So do those of a deleted TUN service, by its policy.
        let gone = build(&mut lb, &[dr], None).unwrap();
        assert_eq!(gone.backend_slot(b12.slot), BackendSlot { gen: b12.gen, live: false, reset: false, tunnel: want });

        // A TUN service without a tunnel section uses the defaults: IPIP, ICMP.
        let plain = ServiceConfig { mode: ForwardMode::Tun, ..service(82, SchedKind::Rr, vec![]) };
        let built = build(&mut lb, &[plain], None).unwrap();
        assert_eq!(built.list[0].tunnel, Tunnel { encap: Encap::Ipip, too_big: TooBig::Icmp });
    }

    #[test]
    fn snat_rules_get_port_ids_and_share_local_address_slots() {
        let mut lb = state();
        let t = TimeoutsConfig::default();
        let web = vec![ServiceConfig {
            mode: ForwardMode::Fullnat,
            laddrs: vec!["192.0.2.200".parse().unwrap()],
            ..service(80, SchedKind::Rr, vec![backend(11, 1)])
        }];
        let snat = vec![
            snat_rule("198.51.100.0/24", "dp1", &["192.0.2.200", "192.0.2.201"]),
            snat_rule("0.0.0.0/0", "dp0", &["192.0.2.202"]),
        ];
        let built = lb.build(&web, &snat, &port_id, &t, None).unwrap();
        let laddr = built.list[0].laddrs[0];
        assert_eq!(built.snat.len(), 2);
        let (first, second) = (&built.snat[0], &built.snat[1]);
        assert_eq!((first.prefix, first.prefix_len, first.out_port), (Ipv4Addr::new(198, 51, 100, 0), 24, 3));
        assert_eq!(first.addrs[0], laddr, "the address FullNAT uses has one slot");
        assert_ne!(first.addrs[1].slot, laddr.slot);
        assert_eq!((second.prefix, second.prefix_len, second.out_port), (Ipv4Addr::UNSPECIFIED, 0, 0));
        // In config order: the first match wins.
        let src = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(built.snat_rule(src, 3), Some(first));
        assert_eq!(built.snat_rule(src, 0), Some(second));
        assert_eq!(built.snat_rule(src, 1), None);

        // An unknown port changes nothing; 4 slots: a fifth address is one too many.
        let bad = vec![snat_rule("198.51.100.0/24", "dp7", &["192.0.2.203"])];
        let e = lb.build(&web, &bad, &port_id, &t, None).unwrap_err();
        assert_eq!(e, "SNAT rule source 198.51.100.0/24 out-port dp7: no port named 'dp7'");
        let again = lb.build(&web, &snat, &port_id, &t, None).unwrap();
        assert_eq!(again.snat, built.snat);
        let five = vec![snat_rule("198.51.100.0/24", "dp0", &["192.0.2.203", "192.0.2.204"])];
        let e = lb.build(&web, &five, &port_id, &t, None).unwrap_err();
        assert_eq!(e, "more than 4 local addresses (connections.max_laddrs)");
    }

    #[test]
    fn laddr_infos_show_the_pool_of_the_services_protocol() {
        let mut lb = state();
        let web = vec![ServiceConfig {
            mode: ForwardMode::Fullnat,
            laddrs: vec!["192.0.2.200".parse().unwrap()],
            ..service(80, SchedKind::Rr, vec![backend(11, 1)])
        }];
        let built = build(&mut lb, &web, None).unwrap();
        let laddr = built.list[0].laddrs[0];
        let cores: Vec<Arc<LbCounters>> = (0..2).map(|_| Arc::new(LbCounters::new(lb.limits()))).collect();
        for (core, (tcp, udp)) in cores.iter().zip([(3, 10), (4, 20)]) {
            let c = &core.laddrs[usize::from(laddr.slot)];
            c.gen.set(u64::from(laddr.gen));
            c.tcp_in_use.set(tcp);
            c.udp_in_use.set(udp);
            c.ports_per_protocol.set(32_256);
        }
        // A TCP service can use the TCP pool only: 64,512 ports over the two cores, 7 in use.
        let infos = lb.laddr_infos(&web, &cores);
        assert_eq!(
            infos,
            vec![LaddrInfo { service: key(80), addr: laddr.addr.into(), ports_in_use: 7, ports_total: 64_512 }]
        );
    }

    #[test]
    fn snat_infos_sum_the_cores_ports() {
        let mut lb = state();
        let snat = vec![snat_rule("198.51.100.0/24", "dp0", &["192.0.2.50", "192.0.2.51"])];
        let built = lb.build(&[], &snat, &port_id, &TimeoutsConfig::default(), None).unwrap();
        let cores: Vec<Arc<LbCounters>> = (0..2).map(|_| Arc::new(LbCounters::new(lb.limits()))).collect();
        let filled = built.snat[0].addrs[0];
        for (core, used) in cores.iter().zip([3, 4]) {
            let c = &core.laddrs[usize::from(filled.slot)];
            c.gen.set(u64::from(filled.gen));
            c.tcp_in_use.set(used);
            c.udp_in_use.set(1);
            c.ports_per_protocol.set(500);
        }
        let infos = lb.snat_infos(&snat, &cores);
        assert_eq!(
            infos,
            vec![SnatInfo {
                source: snat[0].source,
                out_port: "dp0".into(),
                addresses: vec![
                    SnatAddrInfo { addr: "192.0.2.50".parse().unwrap(), ports_in_use: 9, ports_total: 2000 },
                    // No core has filled this pool yet.
                    SnatAddrInfo { addr: "192.0.2.51".parse().unwrap(), ports_in_use: 0, ports_total: 0 },
                ],
            }]
        );
    }

    #[test]
    fn snat_edits_and_changes() {
        let base = vec![snat_rule("198.51.100.0/24", "dp0", &["192.0.2.50"])];
        let dup = edit_snat(&base, SnatEdit::Add(snat_rule("198.51.100.0/24", "dp0", &["192.0.2.51"]))).unwrap_err();
        assert_eq!(
            dup,
            "SNAT rule source 198.51.100.0/24 out-port dp0 already exists (delete it first with fvs snat del)"
        );
        let missing =
            edit_snat(&base, SnatEdit::Del { source: "198.51.100.0/24".parse().unwrap(), out_port: "dp1".into() })
                .unwrap_err();
        assert_eq!(missing, "no SNAT rule source 198.51.100.0/24 out-port dp1 (see fvs snat show)");

        let two =
            edit_snat(&base, SnatEdit::Add(snat_rule("0.0.0.0/0", "dp0", &["192.0.2.51", "192.0.2.52"]))).unwrap();
        assert_eq!(two[1].source.to_string(), "0.0.0.0/0", "added rules go last");
        assert_eq!(
            snat_changes(&base, &two),
            vec!["snat add source 0.0.0.0/0 out-port dp0 address 192.0.2.51 address 192.0.2.52"]
        );
        let one = edit_snat(&two, SnatEdit::Del { source: "198.51.100.0/24".parse().unwrap(), out_port: "dp0".into() })
            .unwrap();
        assert_eq!(one, two[1..].to_vec());
        assert_eq!(snat_changes(&two, &one), vec!["snat del source 198.51.100.0/24 out-port dp0"]);
        let swapped = vec![two[1].clone(), two[0].clone()];
        assert_eq!(snat_changes(&two, &swapped), vec!["snat rules reordered"]);
        assert!(snat_changes(&two, &two).is_empty());
    }

    #[test]
    fn service_set_changes_the_tunnel() {
        let base = vec![ServiceConfig { mode: ForwardMode::Tun, ..service(80, SchedKind::Rr, vec![]) }];
        let gue = edit(
            &base,
            Edit::ServiceSet(key(80), ServicePatch { encap: Some(Encapsulation::Gue), ..Default::default() }),
        )
        .unwrap();
        assert_eq!(gue[0].tunnel, Some(TunnelConfig { encap: Encapsulation::Gue, ..TunnelConfig::default() }));
        let port =
            edit(&gue, Edit::ServiceSet(key(80), ServicePatch { gue_port: Some(7000), ..Default::default() })).unwrap();
        assert_eq!(
            port[0].tunnel,
            Some(TunnelConfig { encap: Encapsulation::Gue, gue_port: 7000, too_big: TooBigPolicy::Icmp })
        );
        // Leaving tun mode drops the tunnel settings; validation refuses them in other modes.
        let nat =
            edit(&port, Edit::ServiceSet(key(80), ServicePatch { mode: Some(ForwardMode::Nat), ..Default::default() }))
                .unwrap();
        assert_eq!((nat[0].mode, nat[0].tunnel), (ForwardMode::Nat, None));
        let nat_gue = edit(
            &nat,
            Edit::ServiceSet(key(80), ServicePatch { too_big: Some(TooBigPolicy::Drop), ..Default::default() }),
        )
        .unwrap();
        assert_eq!(nat_gue[0].tunnel.map(|t| t.too_big), Some(TooBigPolicy::Drop));
        assert_eq!(service_changes(&port, &nat), vec!["service set tcp 192.0.2.100:80".to_string()]);
    }
}
