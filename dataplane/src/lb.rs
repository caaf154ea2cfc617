//! A worker core's load-balancing state: its connection table, persistence records, local
//! port pools and per-backend counts. All of it is owned by the core; the control thread only
//! reads [`LbCounters`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::{Conn, Conn6, Conn6Table, ConnFlags, ConnTable};
use crate::counters::Counter;
use crate::handshake::{HandshakeClock, HandshakeCounters};
use crate::sched::{select, SchedState};
use crate::service::{Laddr, LbLimits, Service, Service6, Services};
use crate::steer::Ownership;
use crate::wire::IpProtocol;
use crate::xlate::clientaddr::Shift;

/// Per-backend-slot counters of one core. Valid for the backend whose generation `gen` holds;
/// the core resets them when the slot gets a new occupant.
#[derive(Default)]
#[repr(align(64))]
pub struct BackendCounters {
    pub gen: Counter,
    pub conns: Counter,
    pub in_packets: Counter,
    pub out_packets: Counter,
    pub in_bytes: Counter,
    pub out_bytes: Counter,
    /// Gauges: connections in ESTABLISHED (or UDP), and in other TCP states.
    pub active: Counter,
    pub inactive: Counter,
    /// New TCP connections that failed before their handshake completed (passive health
    /// detection, DPVS's dest-check): the backend answered the SYN with a RST or an ICMP
    /// unreachable, or (NAT/FullNAT) the half-open entry expired unanswered. Cumulative; the
    /// control plane sums the cores and turns the rate into health.
    pub syn_failures: Counter,
}

/// Per-laddr-slot gauges of one core: local ports in use, per protocol, and the size of each
/// protocol's pool (TCP and UDP have a pool each, of the same size).
#[derive(Default)]
pub struct LaddrCounters {
    pub gen: Counter,
    pub tcp_in_use: Counter,
    pub udp_in_use: Counter,
    pub ports_per_protocol: Counter,
}

impl LaddrCounters {
    /// The in-use gauge of `proto`'s pool (TCP, else UDP).
    pub fn in_use(&self, proto: IpProtocol) -> &Counter {
        if proto == IpProtocol::TCP {
            &self.tcp_in_use
        } else {
            &self.udp_in_use
        }
    }
}

/// What the control thread reads of a core's load balancing.
pub struct LbCounters {
    pub backends: Box<[BackendCounters]>,
    pub laddrs: Box<[LaddrCounters]>,
    /// Per backend slot: the handshake latency histogram (NAT and FullNAT TCP).
    pub handshake: Box<[HandshakeCounters]>,
}

impl LbCounters {
    pub fn new(limits: &LbLimits) -> LbCounters {
        LbCounters {
            backends: (0..limits.max_backends).map(|_| BackendCounters::default()).collect(),
            laddrs: (0..limits.max_laddrs).map(|_| LaddrCounters::default()).collect(),
            handshake: (0..limits.max_backends).map(|_| HandshakeCounters::default()).collect(),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct BackendLocal {
    gen: u32,
    active: u32,
    inactive: u32,
}

#[derive(Default)]
struct ServiceLocal {
    gen: u32,
    sched: SchedState,
    /// Round-robin cursor over the service's local addresses.
    next_laddr: u16,
}

/// One local address's ports owned by this core, handed out oldest-freed first so a port is
/// reused as late as possible (backends may still hold the previous connection in TIME_WAIT).
#[derive(Default)]
struct PortPool {
    gen: u32,
    tcp: VecDeque<u16>,
    udp: VecDeque<u16>,
    /// Per TCP port (from `lport_min`): the second (of `now_ms / 1000`) from which it is quiet,
    /// its last connection's release plus the quiet time. UDP has no TIME_WAIT to wait out.
    tcp_quiet_from_s: Box<[u32]>,
    /// This core's share of one protocol's pool.
    total: u32,
}

impl PortPool {
    fn queue(&mut self, proto: IpProtocol) -> &mut VecDeque<u16> {
        if proto == IpProtocol::TCP {
            &mut self.tcp
        } else {
            &mut self.udp
        }
    }
}

/// A local address and port for a new FullNAT/SNAT connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPort<A = Ipv4Addr> {
    pub addr: A,
    pub port: u16,
    /// The address's laddr slot.
    pub slot: u16,
    /// The port was released less than the quiet time ago: no quiet port was left to take.
    pub early: bool,
}

/// A client address persistence remembers (IPv4 or IPv6).
pub trait PersistClient: Copy + Eq {
    const UNSPECIFIED: Self;
    fn hash_key(self) -> u64;
}

impl PersistClient for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    #[inline]
    fn hash_key(self) -> u64 {
        u64::from(u32::from(self))
    }
}

impl PersistClient for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    #[inline]
    fn hash_key(self) -> u64 {
        let x = u128::from(self);
        (x as u64) ^ ((x >> 64) as u64).rotate_left(29)
    }
}

/// Remembers which backend a client was sent to, per service, for `persistence`.
#[derive(Clone, Copy)]
struct PersistEntry<A = Ipv4Addr> {
    client: A,
    service_slot: u16,
    backend_slot: u16,
    service_gen: u32,
    backend_gen: u32,
    expires_ms: u64,
}

impl<A: PersistClient> Default for PersistEntry<A> {
    fn default() -> Self {
        PersistEntry {
            client: A::UNSPECIFIED,
            service_slot: 0,
            backend_slot: 0,
            service_gen: 0,
            backend_gen: 0,
            expires_ms: 0,
        }
    }
}

/// Fixed-size, 4-way bucketed: a full bucket evicts its entry closest to expiry.
struct PersistTable<A = Ipv4Addr> {
    entries: Box<[PersistEntry<A>]>,
    mask: usize,
}

const PERSIST_WAYS: usize = 4;

impl<A: PersistClient> PersistTable<A> {
    fn new(capacity: u32) -> PersistTable<A> {
        let buckets = (capacity as usize / PERSIST_WAYS).next_power_of_two().max(1);
        PersistTable {
            entries: vec![PersistEntry::default(); buckets * PERSIST_WAYS].into_boxed_slice(),
            mask: buckets - 1,
        }
    }

    #[inline]
    fn bucket(&self, client: A, service_slot: u16) -> usize {
        let h = (client.hash_key() << 16 | u64::from(service_slot)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((h >> 32) as usize & self.mask) * PERSIST_WAYS
    }

    fn lookup<S>(&self, client: A, svc: &Service<S>, now_ms: u64) -> Option<(u16, u32)> {
        let b = self.bucket(client, svc.slot);
        self.entries[b..b + PERSIST_WAYS]
            .iter()
            .find(|e| {
                e.expires_ms > now_ms && e.client == client && e.service_slot == svc.slot && e.service_gen == svc.gen
            })
            .map(|e| (e.backend_slot, e.backend_gen))
    }

    /// Records (or refreshes) that `client` went to backend (slot, gen) of `svc`, for its
    /// persistence; returns true when a live entry of someone else was evicted.
    fn record<S>(&mut self, client: A, svc: &Service<S>, backend_slot: u16, backend_gen: u32, now_ms: u64) -> bool {
        let entry = PersistEntry {
            client,
            service_slot: svc.slot,
            backend_slot,
            service_gen: svc.gen,
            backend_gen,
            expires_ms: now_ms + u64::from(svc.persistence_ms),
        };
        let b = self.bucket(entry.client, entry.service_slot);
        let ways = &mut self.entries[b..b + PERSIST_WAYS];
        let same = |e: &PersistEntry<A>| e.client == entry.client && e.service_slot == entry.service_slot;
        let i = ways
            .iter()
            .position(same)
            .or_else(|| ways.iter().position(|e| e.expires_ms <= now_ms))
            .unwrap_or_else(|| (0..PERSIST_WAYS).min_by_key(|&i| ways[i].expires_ms).unwrap_or(0));
        let evicted = !same(&ways[i]) && ways[i].expires_ms > now_ms;
        ways[i] = entry;
        evicted
    }

    /// Extends the record of `client` (a connection of it just ended) to `now + persistence`.
    fn extend(&mut self, client: A, service_slot: u16, service_gen: u32, until_ms: u64) {
        let b = self.bucket(client, service_slot);
        if let Some(e) = self.entries[b..b + PERSIST_WAYS]
            .iter_mut()
            .find(|e| e.client == client && e.service_slot == service_slot && e.service_gen == service_gen)
        {
            e.expires_ms = e.expires_ms.max(until_ms);
        }
    }
}

/// A worker core's load-balancing state.
pub struct LbCore {
    pub conns: ConnTable,
    /// IPv6 connections, in a table of their own (the IPv4 one keeps its 48-byte slots).
    pub conns6: Conn6Table,
    persist: PersistTable,
    persist6: PersistTable<Ipv6Addr>,
    backends: Vec<BackendLocal>,
    services: Vec<ServiceLocal>,
    pools: Vec<PortPool>,
    /// Persistence (ms) per service slot, for extending records when connections end.
    persistence_ms: Vec<u32>,
    pub counters: Arc<LbCounters>,
    /// Which core owns which local port, and so which ports this core may hand out.
    pub ownership: Ownership,
    limits: LbLimits,
    /// Connections the timer wheel just expired, released after it returns.
    expired: Vec<Conn>,
    /// The SYN times of half-open connections, for the handshake latency.
    pub handshakes: HandshakeClock,
    expired6: Vec<Conn6>,
    /// Per connection slot, for SYN-proxied connections only: our cookie (the client's view
    /// of our ISN) until the backend answers, then the sequence delta (backend ISN - cookie).
    /// Allocated (4 bytes per connection of capacity) once a service proxies.
    proxy_seq: Box<[u32]>,
    /// Per connection slot (IPv4, and IPv6 in `client_addr6`), for connections of services
    /// with a `client_address`: where the header sits and whether the backend has it (see
    /// `xlate::clientaddr`). Allocated (8 bytes per connection of capacity) once a service
    /// of the family uses one.
    client_addr: Box<[Shift]>,
    client_addr6: Box<[Shift]>,
    /// Per connection slot, with `proxy_seq`: the rest of a SYN-proxied connection's
    /// translation (timestamps, window scales; 8 bytes per connection of capacity).
    proxy_opts: Box<[crate::xlate::seqadj::ProxyOpts]>,
}

/// Connections the timer wheel may expire per loop iteration.
pub const EXPIRE_BUDGET: usize = 64;

/// Which connections `conn list` wants; every given field must match.
#[derive(Clone, Debug, Default)]
pub struct ConnQuery {
    /// (VIP, port, IP protocol).
    pub service: Option<(IpAddr, u16, IpProtocol)>,
    pub backend: Option<(IpAddr, u16)>,
    /// State name as [`Conn::state_name`] gives it.
    pub state: Option<String>,
    pub limit: usize,
}

impl ConnQuery {
    pub fn matches(&self, c: &Conn) -> bool {
        self.service.is_none_or(|s| s == (IpAddr::V4(c.vip), c.vport, c.proto))
            && self.backend.is_none_or(|b| b == (IpAddr::V4(c.backend), c.bport))
            && self.state.as_deref().is_none_or(|s| s == c.state_name())
    }

    pub fn matches6(&self, c: &Conn6) -> bool {
        self.service.is_none_or(|s| s == (IpAddr::V6(c.vip), c.vport, c.proto))
            // A NAT64 backend is IPv4 (held IPv4-mapped).
            && self.backend.is_none_or(|b| b == (IpAddr::V6(c.backend).to_canonical(), c.bport))
            && self.state.as_deref().is_none_or(|s| s == c.state_name())
    }
}

/// Whether a connection in `state` counts as active (IPVS: ESTABLISHED; every UDP flow).
#[inline]
pub fn is_active(proto: IpProtocol, state: crate::conn::TcpState) -> bool {
    proto != IpProtocol::TCP || state == crate::conn::TcpState::Established
}

/// A connection as `conn list` reports it.
#[derive(Clone, Copy, Debug)]
pub struct ConnView {
    pub conn: Conn,
    pub expires_ms: u64,
}

/// An IPv6 connection as `conn list` reports it.
#[derive(Clone, Copy, Debug)]
pub struct ConnView6 {
    pub conn: Conn6,
    pub expires_ms: u64,
}

/// Where the replies of a FullNAT/SNAT connection come from: the port they arrive on and the
/// remote end (backend or server) that sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyFrom {
    pub port: u16,
    pub addr: Ipv4Addr,
    pub rport: u16,
}

/// Why a new connection could not get a local address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortsExhausted;

impl LbCore {
    /// `core` of `cores` workers: FullNAT local ports are split between them by number
    /// (replies steered by rings or flow rules) until [`LbCore::with_ownership`] says otherwise.
    pub fn new(core: u32, cores: u32, limits: LbLimits, counters: Arc<LbCounters>) -> LbCore {
        let cores = cores.max(1);
        LbCore {
            conns: ConnTable::new(limits.conn_capacity),
            conns6: Conn6Table::new(limits.conn6_capacity),
            persist: PersistTable::new(limits.persistence_capacity),
            persist6: PersistTable::new(limits.persistence_capacity / 4),
            backends: vec![BackendLocal::default(); usize::from(limits.max_backends)],
            services: (0..limits.max_services).map(|_| ServiceLocal::default()).collect(),
            pools: (0..limits.max_laddrs).map(|_| PortPool::default()).collect(),
            persistence_ms: vec![0; usize::from(limits.max_services)],
            counters,
            ownership: Ownership::new(core, cores, Vec::new()),
            limits,
            expired: Vec::with_capacity(EXPIRE_BUDGET),
            handshakes: HandshakeClock::default(),
            expired6: Vec::with_capacity(EXPIRE_BUDGET),
            proxy_seq: Box::default(),
            client_addr: Box::default(),
            client_addr6: Box::default(),
            proxy_opts: Box::default(),
        }
    }

    /// With each port's steering (before the first `sync`): it decides which local ports
    /// this core may use.
    pub fn with_ownership(mut self, ownership: Ownership) -> LbCore {
        self.ownership = ownership;
        self
    }

    /// Expires at most EXPIRE_BUDGET idle connections and releases what they held; returns
    /// how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        self.conns.expire(now_ms, EXPIRE_BUDGET, |c| {
            if expired.len() < expired.capacity() {
                expired.push(*c);
            }
        });
        for c in &expired {
            if syn_unanswered(c) {
                self.syn_failed(c.backend_slot, c.backend_gen);
            }
            self.release(c, now_ms);
        }
        let mut n = expired.len();
        self.expired = expired;
        if !self.conns6.is_empty() {
            let mut expired6 = std::mem::take(&mut self.expired6);
            expired6.clear();
            self.conns6.expire(now_ms, EXPIRE_BUDGET, |c| {
                if expired6.len() < expired6.capacity() {
                    expired6.push(*c);
                }
            });
            for c in &expired6 {
                self.release6(c, now_ms);
            }
            n += expired6.len();
            self.expired6 = expired6;
        }
        n
    }

    /// A core of its own with fresh counters (tests, benchmarks).
    pub fn standalone(limits: LbLimits) -> LbCore {
        LbCore::new(0, 1, limits, Arc::new(LbCounters::new(&limits)))
    }

    pub fn limits(&self) -> &LbLimits {
        &self.limits
    }

    /// The connections matching `query` (at most its limit) and how many matched in all. Runs
    /// on the worker between bursts when the control thread asks; it walks the whole table.
    pub fn dump(&self, query: &ConnQuery, now_ms: u64) -> (Vec<ConnView>, u64) {
        let mut out = Vec::new();
        let mut matched = 0u64;
        for (id, c) in self.conns.iter() {
            if query.matches(&c) {
                matched += 1;
                if out.len() < query.limit {
                    out.push(ConnView { conn: c, expires_ms: self.conns.expires_in_ms(id, now_ms) });
                }
            }
        }
        (out, matched)
    }

    /// Brings per-slot state in line with a new snapshot: slots with a new occupant start
    /// afresh. Runs when the snapshot changes, never per packet; port pools are (re)filled
    /// here, which is the only allocation.
    pub fn sync(&mut self, services: &Services) {
        if self.proxy_seq.is_empty() && services.list.iter().any(|s| s.syn_proxy != crate::service::SynProxy::Off) {
            self.proxy_seq = vec![0; self.conns.capacity()].into_boxed_slice();
            self.proxy_opts = vec![Default::default(); self.conns.capacity()].into_boxed_slice();
        }
        let off = crate::xlate::clientaddr::ClientAddr::Off;
        if self.client_addr.is_empty() && services.list.iter().any(|s| s.client_address != off) {
            self.client_addr = vec![Shift::default(); self.conns.capacity()].into_boxed_slice();
        }
        if self.client_addr6.is_empty() && services.v6.list.iter().any(|s| s.client_address != off) {
            self.client_addr6 = vec![Shift::default(); self.conns6.capacity()].into_boxed_slice();
        }
        for svc in &services.list {
            self.sync_service(svc);
        }
        for svc in &services.v6.list {
            self.sync_service(svc);
        }
        for rule in &services.v6.snat {
            for l in &rule.addrs {
                self.fill_pool(l.slot, l.gen);
            }
        }
        for rule in &services.snat {
            for l in &rule.addrs {
                self.fill_pool(l.slot, l.gen);
            }
        }
    }

    /// A SYN-proxied connection's sequence word (see `proxy_seq`); 0 when none is kept.
    #[inline]
    pub fn proxy_seq(&self, id: crate::conn::ConnId) -> u32 {
        self.proxy_seq.get(id as usize).copied().unwrap_or(0)
    }

    /// Sets a SYN-proxied connection's sequence word; false when this core keeps none (no
    /// service proxied when it last synced).
    pub fn set_proxy_seq(&mut self, id: crate::conn::ConnId, word: u32) -> bool {
        match self.proxy_seq.get_mut(id as usize) {
            Some(w) => {
                *w = word;
                true
            }
            None => false,
        }
    }

    /// The client-address state of the IPv4 connection in slot `id` (default when none is
    /// kept: `kind` is `Off`).
    #[inline]
    pub fn client_addr(&self, id: crate::conn::ConnId) -> Shift {
        self.client_addr.get(id as usize).copied().unwrap_or_default()
    }

    /// Sets it; false when this core keeps none (no IPv4 service had a `client_address`
    /// when it last synced).
    pub fn set_client_addr(&mut self, id: crate::conn::ConnId, shift: Shift) -> bool {
        self.client_addr.get_mut(id as usize).map(|s| *s = shift).is_some()
    }

    /// `client_addr` of the IPv6 connection in slot `id`.
    #[inline]
    pub fn client_addr6(&self, id: crate::conn::Conn6Id) -> Shift {
        self.client_addr6.get(id as usize).copied().unwrap_or_default()
    }

    /// `set_client_addr` for an IPv6 connection.
    pub fn set_client_addr6(&mut self, id: crate::conn::Conn6Id, shift: Shift) -> bool {
        self.client_addr6.get_mut(id as usize).map(|s| *s = shift).is_some()
    }

    /// A SYN-proxied connection's options translation (see `proxy_opts`); the default when
    /// none is kept.
    #[inline]
    pub fn proxy_opts(&self, id: crate::conn::ConnId) -> crate::xlate::seqadj::ProxyOpts {
        self.proxy_opts.get(id as usize).copied().unwrap_or_default()
    }

    /// Sets a SYN-proxied connection's options translation; false when this core keeps none.
    pub fn set_proxy_opts(&mut self, id: crate::conn::ConnId, opts: crate::xlate::seqadj::ProxyOpts) -> bool {
        match self.proxy_opts.get_mut(id as usize) {
            Some(o) => {
                *o = opts;
                true
            }
            None => false,
        }
    }

    /// This core's state for a backend slot, reset when the slot has a new occupant.
    /// One service's slots (either family: slots are numbered across both).
    fn sync_service<A>(&mut self, svc: &Service<A>) {
        let s = usize::from(svc.slot);
        if let Some(local) = self.services.get_mut(s) {
            if local.gen != svc.gen {
                *local = ServiceLocal { gen: svc.gen, ..Default::default() };
                local.sched = SchedState::with_seed(u64::from(svc.gen) << 32 | u64::from(self.ownership.core));
            }
            self.persistence_ms[s] = svc.persistence_ms;
        }
        for b in &svc.backends {
            self.backend_local(b.slot, b.gen);
        }
        for l in &svc.laddrs {
            self.fill_pool(l.slot, l.gen);
        }
    }

    fn backend_local(&mut self, slot: u16, gen: u32) -> Option<&mut BackendLocal> {
        let local = self.backends.get_mut(usize::from(slot))?;
        if local.gen != gen {
            *local = BackendLocal { gen, active: 0, inactive: 0 };
            let c = &self.counters.backends[usize::from(slot)];
            for counter in [
                &c.conns,
                &c.in_packets,
                &c.out_packets,
                &c.in_bytes,
                &c.out_bytes,
                &c.active,
                &c.inactive,
                &c.syn_failures,
            ] {
                counter.set(0);
            }
            c.gen.set(u64::from(gen));
        }
        Some(local)
    }

    fn fill_pool(&mut self, slot: u16, gen: u32) {
        let Some(pool) = self.pools.get_mut(usize::from(slot)) else { return };
        if pool.gen == gen && pool.total > 0 {
            return;
        }
        let (min, max) = (self.limits.lport_min, self.limits.lport_max);
        let own = &self.ownership;
        // Where a NIC's hash steers replies, every core may use every port (for a given
        // backend the hash gives each port to one core); otherwise the ports split by number.
        let whole_range = own.any_toeplitz();
        let mine = (min..=max).filter(|&p| whole_range || own.port_owner(p) == own.core);
        pool.tcp.clear();
        pool.udp.clear();
        pool.tcp.extend(mine.clone());
        pool.udp.extend(mine);
        // A new occupant's ports were never used by it: quiet from the start.
        pool.tcp_quiet_from_s = vec![0; usize::from(max - min) + 1].into_boxed_slice();
        let cores = if whole_range { own.cores as usize } else { 1 };
        // Counted as this core's share, so the sum over cores is the range.
        pool.total = (pool.tcp.len() / cores) as u32;
        pool.gen = gen;
        let c = &self.counters.laddrs[usize::from(slot)];
        c.gen.set(u64::from(gen));
        c.tcp_in_use.set(0);
        c.udp_in_use.set(0);
        c.ports_per_protocol.set(u64::from(pool.total));
    }

    /// The backend's SYN-ACK of connection `id`, to backend (slot, gen): a handshake latency
    /// sample when the SYN's time is still known.
    #[cold]
    pub fn handshake_done(&mut self, id: crate::conn::ConnId, slot: u16, gen: u32) {
        let Some(us) = self.handshakes.syn_ack_seen(id) else { return };
        if let Some(h) = self.counters.handshake.get(usize::from(slot)) {
            crate::handshake::record(h, gen, us);
        }
    }

    /// Active (ESTABLISHED/UDP) connections this core has on a backend, for the schedulers.
    #[inline]
    pub fn active_conns(&self, slot: u16, gen: u32) -> u32 {
        match self.backends.get(usize::from(slot)) {
            Some(b) if b.gen == gen => b.active,
            _ => 0,
        }
    }

    /// The scheduler's choice (an index into `svc.backends`) for a new connection whose client
    /// has `flow_hash` (for sh and mh), with this core's scheduler state and active counts;
    /// None when no backend is eligible or this core has not synced this generation of `svc`.
    #[inline]
    pub fn schedule<A>(&mut self, svc: &Service<A>, flow_hash: u32) -> Option<usize> {
        let local = self.services.get_mut(usize::from(svc.slot)).filter(|l| l.gen == svc.gen)?;
        let backends = &self.backends;
        let active = |i: usize| {
            svc.backends.get(i).map_or(0, |b| match backends.get(usize::from(b.slot)) {
                Some(l) if l.gen == b.gen => l.active,
                _ => 0,
            })
        };
        select(svc.sched, &mut local.sched, &svc.candidates, svc.table.as_deref(), flow_hash, active)
    }

    /// `persisted_backend` for an IPv6 client of an IPv6 service.
    pub fn persisted_backend6(&self, client: Ipv6Addr, svc: &Service6, now_ms: u64) -> Option<(u16, u32)> {
        if svc.persistence_ms == 0 {
            return None;
        }
        self.persist6.lookup(client, svc, now_ms)
    }

    /// `persist` for an IPv6 client of an IPv6 service.
    pub fn persist6(
        &mut self,
        client: Ipv6Addr,
        svc: &Service6,
        backend_slot: u16,
        backend_gen: u32,
        now_ms: u64,
    ) -> bool {
        self.persist6.record(client, svc, backend_slot, backend_gen, now_ms)
    }

    #[inline]
    pub fn persisted_backend(&self, client: Ipv4Addr, svc: &Service, now_ms: u64) -> Option<(u16, u32)> {
        if svc.persistence_ms == 0 {
            return None;
        }
        self.persist.lookup(client, svc, now_ms)
    }

    /// Records that `client` went to backend (slot, gen); true if another record was evicted.
    pub fn persist(
        &mut self,
        client: Ipv4Addr,
        svc: &Service,
        backend_slot: u16,
        backend_gen: u32,
        now_ms: u64,
    ) -> bool {
        self.persist.record(client, svc, backend_slot, backend_gen, now_ms)
    }

    /// Where a service's round robin over its `n` local addresses starts this time (each new
    /// connection starts one further on).
    fn first_laddr(&mut self, slot: u16, n: usize) -> Result<usize, PortsExhausted> {
        let Some(local) = self.services.get_mut(usize::from(slot)) else { return Err(PortsExhausted) };
        if n == 0 {
            return Err(PortsExhausted);
        }
        let start = usize::from(local.next_laddr) % n;
        local.next_laddr = ((start + 1) % n) as u16;
        Ok(start)
    }

    /// A local address and port for a new FullNAT connection of `svc`, round robin over the
    /// service's addresses, whose replies (from `reply`) reach this core.
    #[inline]
    pub fn take_local_port(
        &mut self,
        svc: &Service,
        proto: IpProtocol,
        reply: ReplyFrom,
        now_ms: u64,
    ) -> Result<LocalPort, PortsExhausted> {
        let start = self.first_laddr(svc.slot, svc.laddrs.len())?;
        self.take_port_from(&svc.laddrs, start, proto, reply, now_ms)
    }

    /// `take_local_port` for an IPv6 FullNAT service. Its replies find their core by local
    /// port number (`Ownership::owner6`: the NIC's steering is for IPv4), so only ports this
    /// core owns by number are taken, whatever the ports' steering.
    pub fn take_local_port6(
        &mut self,
        svc: &Service6,
        proto: IpProtocol,
        now_ms: u64,
    ) -> Result<LocalPort<Ipv6Addr>, PortsExhausted> {
        let start = self.first_laddr(svc.slot, svc.laddrs.len())?;
        self.take_port6_from(&svc.laddrs, start, proto, now_ms)
    }

    /// `take_local_port` for a NAT64 service, whose local addresses are IPv4 (held
    /// IPv4-mapped, as the connection keeps them): its replies are IPv4 packets, steered to
    /// their core like FullNAT's, so the port must fit `reply` as an IPv4 FullNAT one does.
    pub fn take_local_port_nat64(
        &mut self,
        svc: &Service6,
        proto: IpProtocol,
        reply: ReplyFrom,
        now_ms: u64,
    ) -> Result<LocalPort<Ipv6Addr>, PortsExhausted> {
        let start = self.first_laddr(svc.slot, svc.laddrs.len())?;
        let check = self.ownership.any_toeplitz();
        let fits = |own: &Ownership, laddr: Ipv6Addr, p: u16| match laddr.to_ipv4_mapped() {
            Some(laddr) => !check || own.lport_fits(reply.port, reply.addr, reply.rport, laddr, p),
            None => false,
        };
        self.take_port_fitting(&svc.laddrs, start, proto, now_ms, fits)
    }

    /// A port for one of `laddrs` (IPv6: FullNAT or SNAT), from `start`, that this core
    /// owns by number (see `take_local_port6`).
    pub fn take_port6_from(
        &mut self,
        laddrs: &[Laddr<Ipv6Addr>],
        start: usize,
        proto: IpProtocol,
        now_ms: u64,
    ) -> Result<LocalPort<Ipv6Addr>, PortsExhausted> {
        let fits = |own: &Ownership, _: Ipv6Addr, p: u16| own.port_owner(p) == own.core;
        self.take_port_fitting(laddrs, start, proto, now_ms, fits)
    }

    /// A port of this core's pool for one of `laddrs`, trying them in order from `start`.
    /// TCP ports are taken quiet first (released at least `lport_quiet_ms` ago, so no backend
    /// still holds the tuple in TIME_WAIT): each address's oldest-freed port that fits is
    /// looked at, and when none is quiet the first address's is taken anyway, marked `early`.
    /// Bounded work: at most two passes over the addresses, each looking at a bounded number of
    /// ports per address.
    #[inline(always)]
    pub fn take_port_from(
        &mut self,
        laddrs: &[Laddr],
        start: usize,
        proto: IpProtocol,
        reply: ReplyFrom,
        now_ms: u64,
    ) -> Result<LocalPort, PortsExhausted> {
        let check = self.ownership.any_toeplitz();
        let fits = |own: &Ownership, laddr: Ipv4Addr, p: u16| {
            !check || own.lport_fits(reply.port, reply.addr, reply.rport, laddr, p)
        };
        self.take_port_fitting(laddrs, start, proto, now_ms, fits)
    }

    /// `take_port_from`'s search, over addresses of either family, taking the first port
    /// `fits` accepts.
    #[inline(always)]
    fn take_port_fitting<A: Copy>(
        &mut self,
        laddrs: &[Laddr<A>],
        start: usize,
        proto: IpProtocol,
        now_ms: u64,
        fits: impl Fn(&Ownership, A, u16) -> bool,
    ) -> Result<LocalPort<A>, PortsExhausted> {
        match self.take_first_port(laddrs, start, proto, now_ms, &fits) {
            Some(taken) => Ok(taken),
            None => self.search_port(laddrs, start, proto, now_ms, fits),
        }
    }

    /// What `search_port` takes first when it takes the first address's oldest-freed port
    /// (the usual case): that port when it fits and, for TCP, is quiet. None (changing
    /// nothing) otherwise, for `search_port`.
    #[inline(always)]
    fn take_first_port<A: Copy>(
        &mut self,
        laddrs: &[Laddr<A>],
        start: usize,
        proto: IpProtocol,
        now_ms: u64,
        fits: &impl Fn(&Ownership, A, u16) -> bool,
    ) -> Option<LocalPort<A>> {
        let n = laddrs.len();
        if n == 0 || self.ownership.cores == 0 {
            return None;
        }
        let l = laddrs[start % n];
        let pool = self.pools.get_mut(usize::from(l.slot)).filter(|pool| pool.gen == l.gen)?;
        let tcp = proto == IpProtocol::TCP;
        let queue = if tcp { &mut pool.tcp } else { &mut pool.udp };
        let &port = queue.front()?;
        if !fits(&self.ownership, l.addr, port) {
            return None;
        }
        if tcp && self.limits.lport_quiet_ms > 0 {
            let now_s = (now_ms / 1000) as u32;
            let quiet_from = pool.tcp_quiet_from_s.get(usize::from(port.wrapping_sub(self.limits.lport_min)));
            if quiet_from.is_some_and(|&q| now_s < q) {
                return None;
            }
        }
        queue.pop_front();
        self.counters.laddrs[usize::from(l.slot)].in_use(proto).add(1);
        Some(LocalPort { addr: l.addr, port, slot: l.slot, early: false })
    }

    /// `take_port_fitting`'s search.
    #[inline(never)]
    fn search_port<A: Copy>(
        &mut self,
        laddrs: &[Laddr<A>],
        start: usize,
        proto: IpProtocol,
        now_ms: u64,
        fits: impl Fn(&Ownership, A, u16) -> bool,
    ) -> Result<LocalPort<A>, PortsExhausted> {
        let n = laddrs.len();
        let own = &self.ownership;
        // A port that does not fit goes to the back: it fits other backends. With a fair
        // redirection table one in `cores` fits; give up on an address well after that.
        let attempts = 16 * own.cores as usize;
        let quiet_time = proto == IpProtocol::TCP && self.limits.lport_quiet_ms > 0;
        let now_s = (now_ms / 1000) as u32;
        let lport_min = self.limits.lport_min;
        for strict in [true, false] {
            if !strict && !quiet_time {
                break;
            }
            for k in 0..n {
                let l = laddrs[(start + k) % n];
                let Some(pool) = self.pools.get_mut(usize::from(l.slot)) else { continue };
                if pool.gen != l.gen {
                    continue;
                }
                let quiet_from = &pool.tcp_quiet_from_s;
                let is_quiet = |p: u16| {
                    !quiet_time || quiet_from.get(usize::from(p.wrapping_sub(lport_min))).is_none_or(|&q| now_s >= q)
                };
                let queue = if proto == IpProtocol::TCP { &mut pool.tcp } else { &mut pool.udp };
                let mut taken = None;
                for _ in 0..attempts.min(queue.len()) {
                    let Some(p) = queue.pop_front() else { break };
                    if !fits(own, l.addr, p) {
                        queue.push_back(p);
                        continue;
                    }
                    if strict && quiet_time && !is_quiet(p) {
                        // Ports behind it were freed later: try the next address.
                        queue.push_front(p);
                        break;
                    }
                    taken = Some((p, !is_quiet(p)));
                    break;
                }
                if let Some((port, early)) = taken {
                    self.counters.laddrs[usize::from(l.slot)].in_use(proto).add(1);
                    return Ok(LocalPort { addr: l.addr, port, slot: l.slot, early });
                }
            }
        }
        Err(PortsExhausted)
    }

    /// Returns a local port taken by `take_local_port` (also for a connection that could not
    /// be inserted). `used_until_ms`: when its connection ended, None if it never carried one
    /// (its quiet time is then unchanged).
    pub fn return_local_port(
        &mut self,
        laddr_slot: u16,
        gen_check: Option<u32>,
        proto: IpProtocol,
        port: u16,
        used_until_ms: Option<u64>,
    ) {
        let Some(pool) = self.pools.get_mut(usize::from(laddr_slot)) else { return };
        if gen_check.is_some_and(|g| g != pool.gen) {
            return;
        }
        if let (IpProtocol::TCP, Some(ms)) = (proto, used_until_ms) {
            let quiet_s = self.limits.lport_quiet_ms.div_ceil(1000);
            if let Some(q) = pool.tcp_quiet_from_s.get_mut(usize::from(port.wrapping_sub(self.limits.lport_min))) {
                // From the next whole second after the quiet time: never early.
                *q = ((ms / 1000) as u32).saturating_add(quiet_s + 1);
            }
        }
        let q = pool.queue(proto);
        if q.len() < q.capacity() {
            q.push_back(port);
            let c = self.counters.laddrs[usize::from(laddr_slot)].in_use(proto);
            c.set(c.get().saturating_sub(1));
        }
    }

    /// The generation of the pool in a laddr slot (connections remember it implicitly by
    /// their slot; a pool refilled for a new occupant takes no stale ports back).
    pub fn pool_gen(&self, laddr_slot: u16) -> Option<u32> {
        self.pools.get(usize::from(laddr_slot)).map(|p| p.gen)
    }

    /// Counts a new connection on its backend.
    pub fn conn_opened(&mut self, slot: u16, gen: u32, active: bool) {
        let Some(b) = self.backend_local(slot, gen) else { return };
        if active {
            b.active += 1;
        } else {
            b.inactive += 1;
        }
        let (a, i) = (b.active, b.inactive);
        let c = &self.counters.backends[usize::from(slot)];
        c.conns.inc();
        c.active.set(u64::from(a));
        c.inactive.set(u64::from(i));
    }

    /// A new connection to backend (slot, gen) failed before its handshake completed (see
    /// [`BackendCounters::syn_failures`]). Off the established path: only a reply RST or ICMP
    /// error to a half-open connection, or its expiry, comes here.
    #[cold]
    pub fn syn_failed(&mut self, slot: u16, gen: u32) {
        if self.backend_local(slot, gen).is_some() {
            self.counters.backends[usize::from(slot)].syn_failures.inc();
        }
    }

    /// A connection moved between active and inactive.
    pub fn conn_activity(&mut self, slot: u16, gen: u32, now_active: bool) {
        let Some(b) = self.backends.get_mut(usize::from(slot)) else { return };
        if b.gen != gen {
            return;
        }
        if now_active {
            b.inactive = b.inactive.saturating_sub(1);
            b.active += 1;
        } else {
            b.active = b.active.saturating_sub(1);
            b.inactive += 1;
        }
        let c = &self.counters.backends[usize::from(slot)];
        c.active.set(u64::from(b.active));
        c.inactive.set(u64::from(b.inactive));
    }

    /// Traffic of a connection's backend; `inbound` is client to backend.
    #[inline(always)]
    pub fn count_packet(&self, slot: u16, gen: u32, inbound: bool, bytes: usize) {
        let Some(b) = self.backends.get(usize::from(slot)) else { return };
        if b.gen != gen {
            return;
        }
        let c = &self.counters.backends[usize::from(slot)];
        if inbound {
            c.in_packets.inc();
            c.in_bytes.add(bytes as u64);
        } else {
            c.out_packets.inc();
            c.out_bytes.add(bytes as u64);
        }
    }

    /// Everything a connection holds, given back when it ends (expired, reset or replaced):
    /// its backend count, its local port, and its persistence record's lease.
    /// `release` for an IPv6 connection.
    pub fn release6(&mut self, conn: &Conn6, now_ms: u64) {
        self.release_slots(
            conn.proto,
            conn.state,
            conn.backend_slot,
            conn.backend_gen,
            conn.laddr_slot,
            conn.lport,
            now_ms,
        );
        let s = usize::from(conn.service);
        if let (Some(&ms), Some(local)) = (self.persistence_ms.get(s), self.services.get(s)) {
            if ms > 0 {
                self.persist6.extend(conn.client, conn.service, local.gen, now_ms + u64::from(ms));
            }
        }
    }

    /// What an IPv6 connection held, given back: its backend's counts and its local port.
    #[allow(clippy::too_many_arguments)]
    fn release_slots(
        &mut self,
        proto: IpProtocol,
        state: crate::conn::TcpState,
        slot: u16,
        gen: u32,
        laddr_slot: u16,
        lport: u16,
        now_ms: u64,
    ) {
        let was_active = is_active(proto, state);
        if let Some(b) = self.backends.get_mut(usize::from(slot)) {
            if b.gen == gen {
                if was_active {
                    b.active = b.active.saturating_sub(1);
                } else {
                    b.inactive = b.inactive.saturating_sub(1);
                }
                let c = &self.counters.backends[usize::from(slot)];
                c.active.set(u64::from(b.active));
                c.inactive.set(u64::from(b.inactive));
            }
        }
        if laddr_slot != u16::MAX {
            let gen = self.pool_gen(laddr_slot);
            self.return_local_port(laddr_slot, gen, proto, lport, Some(now_ms));
        }
    }

    /// `dump` of the IPv6 table.
    pub fn dump6(&self, query: &ConnQuery, now_ms: u64) -> (Vec<ConnView6>, u64) {
        let mut out = Vec::new();
        let mut matched = 0u64;
        for (id, c) in self.conns6.iter() {
            if query.matches6(&c) {
                matched += 1;
                if out.len() < query.limit {
                    out.push(ConnView6 { conn: c, expires_ms: self.conns6.expires_in_ms(id, now_ms) });
                }
            }
        }
        (out, matched)
    }

    pub fn release(&mut self, conn: &Conn, now_ms: u64) {
        let was_active = is_active(conn.proto, conn.state);
        let (slot, gen) = (conn.backend_slot, conn.backend_gen);
        if let Some(b) = self.backends.get_mut(usize::from(slot)) {
            if b.gen == gen {
                if was_active {
                    b.active = b.active.saturating_sub(1);
                } else {
                    b.inactive = b.inactive.saturating_sub(1);
                }
                let c = &self.counters.backends[usize::from(slot)];
                c.active.set(u64::from(b.active));
                c.inactive.set(u64::from(b.inactive));
            }
        }
        if conn.laddr_slot != u16::MAX {
            let gen = self.pool_gen(conn.laddr_slot);
            self.return_local_port(conn.laddr_slot, gen, conn.proto, conn.lport, Some(now_ms));
        }
        let s = usize::from(conn.service);
        if let (Some(&ms), Some(local)) = (self.persistence_ms.get(s), self.services.get(s)) {
            if ms > 0 {
                self.persist.extend(conn.client, conn.service, local.gen, now_ms + u64::from(ms));
            }
        }
    }
}

/// An expiring connection whose backend never answered its SYN: TCP, its handshake incomplete
/// and no reply seen, in a mode that sees replies (NAT, FullNAT; not DR/TUN, not SNAT's servers).
fn syn_unanswered(c: &Conn) -> bool {
    c.proto == IpProtocol::TCP
        && crate::conn::handshake_incomplete(c.state)
        && !c.flags.intersects(ConnFlags::REPLIED | ConnFlags::SNAT)
        && !c.flags.is_one_way()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(persistence_ms: u32) -> Service {
        Service {
            slot: 1,
            gen: 7,
            vip: Ipv4Addr::new(192, 0, 2, 100),
            port: 80,
            proto: IpProtocol::TCP,
            sched: crate::sched::SchedKind::Rr,
            mode: crate::service::FwdMode::FullNat,
            tunnel: Default::default(),
            persistence_ms,
            reset_on_removal: false,
            reset_when_all_down: false,
            pickup: false,
            syn_proxy: crate::service::SynProxy::Off,
            client_address: Default::default(),
            backends: vec![],
            candidates: vec![],
            table: None,
            laddrs: vec![
                crate::service::Laddr { addr: Ipv4Addr::new(198, 51, 100, 1), slot: 0, gen: 3 },
                crate::service::Laddr { addr: Ipv4Addr::new(198, 51, 100, 2), slot: 1, gen: 4 },
            ],
        }
    }

    fn core(core: u32, cores: u32) -> LbCore {
        let limits = LbLimits { lport_min: 1000, lport_max: 1009, ..LbLimits::default() };
        LbCore::new(core, cores, limits, Arc::new(LbCounters::new(&limits)))
    }

    /// Replies from a backend on port 1 (the split by number ignores it).
    const REPLY: ReplyFrom = ReplyFrom { port: 1, addr: Ipv4Addr::new(198, 51, 100, 11), rport: 8080 };

    #[test]
    fn local_ports_are_split_between_cores_and_round_robin_over_addresses() {
        let s = svc(0);
        let services = Services::new(vec![s.clone()], vec![], Default::default());
        let mut c0 = core(0, 2);
        let mut c1 = core(1, 2);
        c0.sync(&services);
        c1.sync(&services);
        let mut got0 = Vec::new();
        while let Ok(p) = c0.take_local_port(&s, IpProtocol::TCP, REPLY, 0) {
            got0.push((p.addr, p.port, p.slot));
        }
        let mut got1 = Vec::new();
        while let Ok(p) = c1.take_local_port(&s, IpProtocol::TCP, REPLY, 0) {
            got1.push((p.addr, p.port, p.slot));
        }
        // Each core has the 5 ports of its parity on each of the 2 addresses.
        assert_eq!(got0.len(), 10);
        assert_eq!(got1.len(), 10);
        assert!(got0.iter().all(|(_, p, _)| p % 2 == 0));
        assert!(got1.iter().all(|(_, p, _)| p % 2 == 1));
        assert_eq!(got0[0].0, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(got0[1].0, Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(c0.counters.laddrs[0].tcp_in_use.get(), 5);
        // A returned port is handed out again (the only free TCP port left on either address).
        c0.return_local_port(0, Some(3), IpProtocol::TCP, 1004, None);
        assert_eq!(c0.counters.laddrs[0].tcp_in_use.get(), 4);
        let again = LocalPort { addr: Ipv4Addr::new(198, 51, 100, 1), port: 1004, slot: 0, early: false };
        assert_eq!(c0.take_local_port(&s, IpProtocol::TCP, REPLY, 0), Ok(again));
        // A port of a stale generation is not taken back.
        c0.return_local_port(0, Some(99), IpProtocol::TCP, 1002, None);
        assert_eq!(c0.counters.laddrs[0].tcp_in_use.get(), 5);
        // UDP has ports of its own.
        assert!(c0.take_local_port(&s, IpProtocol::UDP, REPLY, 0).is_ok());
    }

    #[test]
    fn where_a_nic_hash_steers_replies_each_core_takes_the_ports_that_land_on_its_queue() {
        use crate::rss::{ReplySteering, Reta, Toeplitz, MICROSOFT_KEY};
        use crate::steer::Steering;
        let rss = ReplySteering {
            toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(),
            reta: Reta::round_robin(128, 2).unwrap(),
        };
        let s = svc(0);
        let services = Services::new(vec![s.clone()], vec![], Default::default());
        let mut taken = Vec::new();
        for c in 0..2 {
            let own = Ownership::new(c, 2, vec![Steering::Rings, Steering::Toeplitz(rss.clone())]);
            let mut core = core(c, 2).with_ownership(own);
            core.sync(&services);
            // Each core's share, as counted, is half of the 10 ports of one protocol.
            assert_eq!(core.counters.laddrs[0].ports_per_protocol.get(), 5);
            let mut mine = Vec::new();
            while let Ok(LocalPort { addr, port, .. }) = core.take_local_port(&s, IpProtocol::TCP, REPLY, 0) {
                assert_eq!(u32::from(rss.reply_queue(REPLY.addr, REPLY.rport, addr, port)), c, "{addr}:{port}");
                mine.push((addr, port));
            }
            taken.push(mine);
        }
        // Between them the two cores use every port of both addresses once for this backend.
        let mut all: Vec<_> = taken.concat();
        all.sort();
        let want: Vec<_> = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)]
            .iter()
            .flat_map(|&a| (1000..=1009).map(move |p| (a, p)))
            .collect();
        assert_eq!(all, want);
        assert!(taken.iter().all(|t| !t.is_empty()));
    }

    #[test]
    fn tcp_local_ports_rest_for_the_quiet_time_where_the_pool_allows() {
        // One core, two addresses of 4 ports each (1000..=1003), quiet time 60 s.
        let limits = LbLimits { lport_min: 1000, lport_max: 1003, lport_quiet_ms: 60_000, ..LbLimits::default() };
        let mut s = svc(0);
        s.laddrs.truncate(1);
        let services = Services::new(vec![s.clone()], vec![], Default::default());
        let mut c = LbCore::new(0, 1, limits, Arc::new(LbCounters::new(&limits)));
        c.sync(&services);
        let take = |c: &mut LbCore, now_ms| c.take_local_port(&s, IpProtocol::TCP, REPLY, now_ms).unwrap();
        // 4 connections, all released at t = 10 s; at 20 s a fifth needs a port: none is quiet,
        // so the oldest-freed is reused, marked early.
        let first: Vec<LocalPort> = (0..4).map(|_| take(&mut c, 0)).collect();
        assert!(first.iter().all(|p| !p.early), "never used: quiet");
        for p in &first {
            c.return_local_port(p.slot, Some(3), IpProtocol::TCP, p.port, Some(10_000));
        }
        let p = take(&mut c, 20_000);
        assert_eq!((p.port, p.early), (1000, true));
        c.return_local_port(p.slot, Some(3), IpProtocol::TCP, p.port, Some(20_000));
        // From 70 s on (60 s after release, whole seconds), the ports released at 10 s are quiet.
        assert!(take(&mut c, 70_999).early);
        let p = take(&mut c, 71_000);
        assert_eq!((p.port, p.early), (1002, false));

        // With a second address, a port that is not quiet is skipped for the other's quiet one.
        let two = svc(0);
        let services = Services::new(vec![two.clone()], vec![], Default::default());
        let mut c = LbCore::new(0, 1, limits, Arc::new(LbCounters::new(&limits)));
        c.sync(&services);
        let (addr1, addr2) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2));
        let from_first =
            |c: &mut LbCore, now_ms| c.take_port_from(&two.laddrs, 0, IpProtocol::TCP, REPLY, now_ms).unwrap();
        let all: Vec<LocalPort> = (0..4).map(|_| from_first(&mut c, 0)).collect();
        assert!(all.iter().all(|p| p.addr == addr1 && !p.early));
        c.return_local_port(all[0].slot, Some(3), IpProtocol::TCP, all[0].port, Some(1_000));
        // Address 1's only free port was released 1 s ago: address 2's quiet ports go first.
        for port in 1000..=1003 {
            assert_eq!(from_first(&mut c, 2_000), LocalPort { addr: addr2, port, slot: 1, early: false });
        }
        // None is quiet any more: address 1's port is reused, early.
        assert_eq!(from_first(&mut c, 2_000), LocalPort { addr: addr1, port: 1000, slot: 0, early: true });
        // UDP has no TIME_WAIT: never early.
        let u = c.take_local_port(&two, IpProtocol::UDP, REPLY, 2_000).unwrap();
        c.return_local_port(u.slot, None, IpProtocol::UDP, u.port, Some(2_000));
        assert!(c.take_local_port(&two, IpProtocol::UDP, REPLY, 2_000).is_ok_and(|p| !p.early));
    }

    #[test]
    fn persistence_records_expire_and_extend() {
        let s = svc(1000);
        let mut c = core(0, 1);
        c.sync(&Services::new(vec![s.clone()], vec![], Default::default()));
        let client = Ipv4Addr::new(192, 0, 2, 2);
        assert_eq!(c.persisted_backend(client, &s, 0), None);
        assert!(!c.persist(client, &s, 5, 9, 0));
        assert_eq!(c.persisted_backend(client, &s, 999), Some((5, 9)));
        assert_eq!(c.persisted_backend(client, &s, 1000), None);
        c.persist.extend(client, s.slot, s.gen, 3000);
        assert_eq!(c.persisted_backend(client, &s, 2999), Some((5, 9)));
        // Another generation of the service does not see it.
        let other = Service { gen: 8, ..s.clone() };
        assert_eq!(c.persisted_backend(client, &other, 10), None);
    }

    #[test]
    fn schedule_keeps_this_cores_state_and_counts_per_service_generation() {
        use crate::sched::{Candidate, SchedKind};
        use crate::service::{Backend, BackendState};
        let backend = |slot: u16| Backend {
            addr: Ipv4Addr::new(10, 0, 0, slot as u8),
            port: 80,
            weight: 1,
            state: BackendState::Active,
            slot,
            gen: 1,
        };
        let mut s = svc(0);
        s.backends = vec![backend(2), backend(3), backend(4)];
        s.candidates = vec![Candidate { weight: 1, schedulable: true }; 3];
        s.candidates[1].schedulable = false;
        let mut c = core(0, 1);
        // Not synced yet: nothing to schedule with.
        assert_eq!(c.schedule(&s, 0), None);
        c.sync(&Services::new(vec![s.clone()], vec![], Default::default()));
        // Round robin over the eligible ones, its cursor kept between calls.
        let picks: Vec<_> = (0..4).map(|_| c.schedule(&s, 0)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        // Another generation of the service is not this core's.
        assert_eq!(c.schedule(&Service { gen: 8, ..s.clone() }, 0), None);
        // Least connections sees this core's active counts (backend slot 2 has one).
        let lc = Service { sched: SchedKind::Lc, ..s.clone() };
        c.conn_opened(2, 1, true);
        assert_eq!(c.schedule(&lc, 0), Some(2));
        c.conn_opened(4, 1, true);
        c.conn_opened(4, 1, true);
        assert_eq!(c.schedule(&lc, 0), Some(0));
    }

    #[test]
    fn backend_counts_follow_generations() {
        let mut c = core(0, 1);
        c.conn_opened(3, 1, false);
        c.conn_activity(3, 1, true);
        assert_eq!(c.active_conns(3, 1), 1);
        assert_eq!(c.counters.backends[3].conns.get(), 1);
        // A new occupant of slot 3 starts from zero; the old connection's end changes nothing.
        c.conn_opened(3, 2, true);
        assert_eq!(c.active_conns(3, 2), 1);
        assert_eq!(c.counters.backends[3].conns.get(), 1);
        assert_eq!(c.counters.backends[3].gen.get(), 2);
        c.conn_activity(3, 1, false);
        assert_eq!(c.active_conns(3, 2), 1);
    }
}
