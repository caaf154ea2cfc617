//! The control plane's side of load balancing: turns the service config into the workers'
//! [`Services`] (slots and generations, scheduler tables), applies `fvs service/backend/laddr`
//! edits to the config, and sums the per-core counters. No DPDK here: unit-tested as is.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use dataplane::conn::Timeouts;
use dataplane::lb::LbCounters;
use dataplane::sched::{backend_key, Candidate, HashTable, SchedKind};
use dataplane::service::{Backend, BackendSlot, FwdMode, Laddr, LbLimits, Service, Services};

use crate::lbconf::{
    BackendConfig, BackendState, ConnectionsConfig, ForwardMode, RemovalPolicy, ServiceConfig, ServiceKey,
    TimeoutsConfig,
};
use crate::proto::{BackendInfo, LaddrInfo, ServiceInfo, ServicePatch, TrafficStats};

/// Slots of one kind: a slot keeps its (slot, generation) while its key exists; freed slots
/// are reused oldest first, each time with a new generation.
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

type BackendId = (ServiceKey, IpAddr, u16);

/// A cached scheduler table and what it was built from.
struct CachedTable {
    sched: SchedKind,
    size: u32,
    inputs: Vec<(u64, u32)>,
    table: Arc<HashTable>,
}

pub struct LbState {
    limits: LbLimits,
    backends: Slots<BackendId>,
    services: Slots<ServiceKey>,
    /// Local addresses keep their slot for the life of the process (until the slots run out):
    /// re-adding an address must not hand out ports its old connections still use.
    laddrs: Slots<Ipv4Addr>,
    backend_slots: Vec<BackendSlot>,
    tables: HashMap<ServiceKey, CachedTable>,
    /// Each service's removal policy as of the last build.
    policies: HashMap<ServiceKey, RemovalPolicy>,
    next_gen: u32,
}

pub fn limits(c: &ConnectionsConfig, services_max: u16) -> LbLimits {
    LbLimits {
        conn_capacity: c.capacity,
        persistence_capacity: c.persistence_capacity,
        max_backends: c.max_backends as u16,
        max_services: services_max,
        max_laddrs: c.max_laddrs as u16,
        lport_min: c.lport_min,
        lport_max: c.lport_max,
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
        // Validation refuses IPv6 services before they get here.
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
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
        }
    }

    pub fn limits(&self) -> &LbLimits {
        &self.limits
    }

    /// Builds the workers' view of a validated service list. Backends that disappeared since
    /// the last build are marked removed, with their service's policy unless `removal`
    /// overrides it (`fvs backend del ... reset`).
    pub fn build(
        &mut self,
        services: &[ServiceConfig],
        timeouts_config: &TimeoutsConfig,
        removal: Option<RemovalPolicy>,
    ) -> Result<Services, String> {
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
            self.backend_slots[usize::from(slot)] = BackendSlot { gen, live: false, reset: policy == RemovalPolicy::Reset, ..Default::default() };
        }
        let keys: std::collections::HashSet<ServiceKey> = services.iter().map(ServiceConfig::key).collect();
        self.services.release_others(&|k| keys.contains(k));
        self.tables.retain(|k, _| keys.contains(k));

        let mut list = Vec::with_capacity(services.len());
        for s in services {
            list.push(self.build_service(s)?);
        }
        self.policies = policy_of;
        Ok(Services::new(list, self.backend_slots.clone(), timeouts(timeouts_config)))
    }

    fn build_service(&mut self, s: &ServiceConfig) -> Result<Service, String> {
        let key = s.key();
        let (slot, gen) = self
            .services
            .get_or_assign(&key, &mut self.next_gen)
            .ok_or_else(|| format!("more than {} services", self.limits.max_services))?;
        let mut backends = Vec::with_capacity(s.backends.len());
        for b in &s.backends {
            let (bslot, bgen) = self
                .backends
                .get_or_assign(&(key, b.addr, b.port), &mut self.next_gen)
                .ok_or_else(|| format!("more than {} backends (connections.max_backends)", self.limits.max_backends))?;
            self.backend_slots[usize::from(bslot)] = BackendSlot { gen: bgen, live: true, reset: false, ..Default::default() };
            backends.push(Backend {
                addr: v4(b.addr),
                port: b.port,
                weight: b.weight,
                state: match b.state {
                    BackendState::Active => dataplane::service::BackendState::Active,
                    BackendState::Draining => dataplane::service::BackendState::Draining,
                    BackendState::Inhibited => dataplane::service::BackendState::Inhibited,
                },
                slot: bslot,
                gen: bgen,
            });
        }
        let mut laddrs = Vec::with_capacity(s.laddrs.len());
        for l in &s.laddrs {
            let addr = v4(*l);
            let (lslot, lgen) = self
                .laddrs
                .get_or_assign(&addr, &mut self.next_gen)
                .ok_or_else(|| format!("more than {} local addresses (connections.max_laddrs)", self.limits.max_laddrs))?;
            laddrs.push(Laddr { addr, slot: lslot, gen: lgen });
        }
        let candidates: Vec<Candidate> = s
            .backends
            .iter()
            .map(|b| Candidate { weight: b.weight, schedulable: b.state == BackendState::Active })
            .collect();
        let table = self.table_for(s, &candidates)?;
        Ok(Service {
            slot,
            gen,
            vip: v4(s.vip),
            port: s.port,
            proto: s.protocol.number(),
            sched: s.scheduler,
            mode: match s.mode {
                ForwardMode::Nat => FwdMode::Nat,
                ForwardMode::Fullnat => FwdMode::FullNat,
            },
            tunnel: Default::default(),
            persistence_ms: s.persistence_s.saturating_mul(1000),
            reset_on_removal: s.on_backend_removal == RemovalPolicy::Reset,
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
                HashTable::maglev(&keys, &weights, s.maglev_size as usize).map_err(|e| format!("service {}: {e}", s.key()))?
            }
            _ => HashTable::source_hash(&weights),
        };
        let table = Arc::new(table);
        self.tables.insert(
            s.key(),
            CachedTable { sched: s.scheduler, size: s.maglev_size, inputs, table: table.clone() },
        );
        Ok(Some(table))
    }

    /// The (slot, generation) of a live backend, for reading its counters.
    fn backend_slot(&self, key: ServiceKey, addr: IpAddr, port: u16) -> Option<(u16, u32)> {
        self.backends.assigned.get(&(key, addr, port)).copied()
    }

    fn laddr_slot(&self, addr: IpAddr) -> Option<(u16, u32)> {
        self.laddrs.assigned.get(&v4(addr)).copied()
    }

    /// `service show`: the config with per-backend counts and, with `stats`, traffic, summed
    /// over the cores' counters.
    pub fn service_infos(&self, services: &[ServiceConfig], cores: &[Arc<LbCounters>], stats: bool) -> Vec<ServiceInfo> {
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
                        }
                    })
                    .collect();
                ServiceInfo::new(s, backends, stats.then_some(total))
            })
            .collect()
    }

    pub fn laddr_infos(&self, services: &[ServiceConfig], cores: &[Arc<LbCounters>]) -> Vec<LaddrInfo> {
        let mut out = Vec::new();
        for s in services {
            for l in &s.laddrs {
                let (in_use, total) = self
                    .laddr_slot(*l)
                    .map(|(slot, gen)| {
                        cores.iter().fold((0, 0), |(u, t), c| {
                            let l = &c.laddrs[usize::from(slot)];
                            if l.gen.get() == u64::from(gen) {
                                (u + l.ports_in_use.get(), t + l.ports_total.get())
                            } else {
                                (u, t)
                            }
                        })
                    })
                    .unwrap_or_default();
                out.push(LaddrInfo { service: s.key(), addr: *l, ports_in_use: in_use, ports_total: total });
            }
        }
        out
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

/// An edit of the service list, as `fvs service|backend|laddr add|set|del` ask. Returns the
/// new list (to validate and build) and, for `backend del`, the removal policy to use.
pub enum Edit {
    ServiceAdd(ServiceConfig),
    ServiceSet(ServiceKey, ServicePatch),
    ServiceDel(ServiceKey),
    BackendAdd(ServiceKey, BackendConfig),
    BackendSet { service: ServiceKey, addr: IpAddr, port: u16, weight: Option<u32>, state: Option<BackendState> },
    BackendDel { service: ServiceKey, addr: IpAddr, port: u16 },
    LaddrAdd(ServiceKey, IpAddr),
    LaddrDel(ServiceKey, IpAddr),
}

fn find(services: &mut [ServiceConfig], key: ServiceKey) -> Result<&mut ServiceConfig, String> {
    services
        .iter_mut()
        .find(|s| s.key() == key)
        .ok_or_else(|| format!("no service {key} (see fvs service show)"))
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
                return Err("nothing to change: give scheduler, mode, persistence, removal or maglev-size".into());
            }
            if let Some(v) = patch.scheduler {
                s.scheduler = v;
            }
            if let Some(v) = patch.mode {
                s.mode = v;
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
                        None => out.push(format!("backend add {} {}", n.key(), std::net::SocketAddr::new(b.addr, b.port))),
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
    use crate::lbconf::Protocol;

    fn key(port: u16) -> ServiceKey {
        ServiceKey { protocol: Protocol::Tcp, vip: "192.0.2.100".parse().unwrap(), port }
    }

    fn backend(last: u8, weight: u32) -> BackendConfig {
        BackendConfig { addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)), port: 8080, weight, state: BackendState::Active }
    }

    fn service(port: u16, sched: SchedKind, backends: Vec<BackendConfig>) -> ServiceConfig {
        ServiceConfig { scheduler: sched, backends, ..ServiceConfig::new(key(port)) }
    }

    fn state() -> LbState {
        LbState::new(limits(&ConnectionsConfig { max_backends: 4, ..Default::default() }, 8))
    }

    #[test]
    fn slots_stay_while_backends_stay_and_removals_leave_tombstones() {
        let mut lb = state();
        let t = TimeoutsConfig::default();
        let v1 = vec![service(80, SchedKind::Rr, vec![backend(11, 1), backend(12, 1)])];
        let s1 = lb.build(&v1, &t, None).unwrap();
        let (b11, b12) = (s1.list[0].backends[0], s1.list[0].backends[1]);
        assert_ne!(b11.slot, b12.slot);
        assert!(s1.backend_slot(b11.slot).live);

        // Reweighting keeps slot and generation; removing with reset leaves a reset tombstone.
        let v2 = vec![service(80, SchedKind::Rr, vec![backend(12, 5)])];
        let s2 = lb.build(&v2, &t, Some(RemovalPolicy::Reset)).unwrap();
        let b12b = s2.list[0].backends[0];
        assert_eq!((b12b.slot, b12b.gen, b12b.weight), (b12.slot, b12.gen, 5));
        assert_eq!(s2.backend_slot(b11.slot), BackendSlot { gen: b11.gen, live: false, reset: true, ..Default::default() });

        // A re-added backend is a new occupant: other slot or newer generation.
        let s3 = lb.build(&v1, &t, None).unwrap();
        let again = s3.list[0].backends[0];
        assert_ne!((again.slot, again.gen), (b11.slot, b11.gen));
        // The freed slot is reused last (oldest first), so the tombstone outlives other frees.
        assert_ne!(again.slot, b11.slot);

        // Deleting the service drains its backends by its own (default) policy.
        let s4 = lb.build(&[], &t, None).unwrap();
        assert!(s4.list.is_empty());
        assert_eq!(s4.backend_slot(b12.slot), BackendSlot { gen: b12.gen, live: false, reset: false, ..Default::default() });
    }

    #[test]
    fn hash_tables_are_built_once_per_backend_set() {
        let mut lb = state();
        let t = TimeoutsConfig::default();
        let mut v = vec![ServiceConfig { maglev_size: 251, ..service(80, SchedKind::Mh, vec![backend(11, 1), backend(12, 3)]) }];
        let a = lb.build(&v, &t, None).unwrap();
        let b = lb.build(&v, &t, None).unwrap();
        let (ta, tb) = (a.list[0].table.clone().unwrap(), b.list[0].table.clone().unwrap());
        assert!(Arc::ptr_eq(&ta, &tb), "unchanged backends reuse the table");
        assert_eq!(ta.len(), 251);
        let share = ta.slots().iter().filter(|&&i| i == 1).count();
        assert!((170..=206).contains(&share), "weight 3 of 4 gets about 3/4 of 251 slots: {share}");
        v[0].backends[1].state = BackendState::Inhibited;
        let c = lb.build(&v, &t, None).unwrap();
        let tc = c.list[0].table.clone().unwrap();
        assert!(tc.slots().iter().all(|&i| i == 0), "an inhibited backend gets no slots");
        assert!(!c.list[0].candidates[1].schedulable);
        let rr = lb.build(&[service(80, SchedKind::Rr, vec![backend(11, 1)])], &t, None).unwrap();
        assert!(rr.list[0].table.is_none());
    }

    #[test]
    fn out_of_slots_is_an_error() {
        let mut lb = state();
        let five: Vec<BackendConfig> = (11..16).map(|i| backend(i, 1)).collect();
        let e = lb.build(&[service(80, SchedKind::Rr, five)], &TimeoutsConfig::default(), None).unwrap_err();
        assert!(e.contains("more than 4 backends"), "{e}");
    }

    #[test]
    fn edits_name_what_is_missing_or_present() {
        let base = vec![service(80, SchedKind::Rr, vec![backend(11, 1)])];
        let err = |e| edit(&base, e).unwrap_err();
        assert_eq!(err(Edit::ServiceAdd(ServiceConfig::new(key(80)))), "service tcp 192.0.2.100:80 already exists (change it with fvs service set)");
        assert_eq!(err(Edit::ServiceDel(key(81))), "no service tcp 192.0.2.100:81 (see fvs service show)");
        assert_eq!(
            err(Edit::BackendAdd(key(80), backend(11, 2))),
            "backend 198.51.100.11:8080 is already in service tcp 192.0.2.100:80 (change it with fvs backend set)"
        );
        let addr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99));
        assert_eq!(err(Edit::BackendDel { service: key(80), addr, port: 8080 }), "no backend 198.51.100.99:8080 in service tcp 192.0.2.100:80");
        assert!(err(Edit::ServiceSet(key(80), ServicePatch::default())).starts_with("nothing to change"));
        assert!(err(Edit::LaddrDel(key(80), addr)).contains("is not a local address"));

        let next = edit(&base, Edit::BackendSet { service: key(80), addr: base[0].backends[0].addr, port: 8080, weight: Some(7), state: None }).unwrap();
        assert_eq!(next[0].backends[0].weight, 7);
        let next = edit(&next, Edit::ServiceSet(key(80), ServicePatch { persistence_s: Some(30), ..Default::default() })).unwrap();
        assert_eq!(next[0].persistence_s, 30);
        assert_eq!(
            service_changes(&base, &next),
            vec!["service set tcp 192.0.2.100:80".to_string(), "backend set tcp 192.0.2.100:80 198.51.100.11:8080".to_string()]
        );
        assert_eq!(service_changes(&next, &[]), vec!["service del tcp 192.0.2.100:80".to_string()]);
    }
}
