//! Defence on the new-connection path: the access lists and rate limits of
//! [`crate::defence`], backends at their maximum skipped, a per-core quota of half-open TCP
//! connections, and eviction of the oldest half-open or UDP entry when the table is full
//! (established TCP connections are never evicted). Only first packets come here.

use std::net::Ipv4Addr;

use super::{CoreCtx, Frame};
use crate::conn::{handshake_incomplete, TcpState};
use crate::counters::{DropReason, Event};
use crate::defence::{per_core_max, GuardCore, Refusal};
use crate::service::{BackendState, Service};
use crate::snapshot::Snapshot;
use crate::wire::IpProtocol;

impl<F: Frame> CoreCtx<F> {
    /// Makes room in the connection table for a new connection of `proto` starting in
    /// `state`, or says why it is refused: a half-open TCP connection past the core's
    /// half-open quota, or a full table with nothing evictable.
    pub(super) fn make_room(&mut self, proto: IpProtocol, state: TcpState, now_ms: u64) -> Result<(), DropReason> {
        let conns = &self.lb.conns;
        let half_open = proto == IpProtocol::TCP && handshake_incomplete(state);
        if half_open && conns.half_open() >= self.lb.limits().half_open_capacity as usize {
            return Err(DropReason::HalfOpenFull);
        }
        if conns.len() < conns.capacity() {
            return Ok(());
        }
        match self.lb.conns.evict_oldest() {
            Some(old) => {
                self.lb.release(&old, now_ms);
                self.counters.event(Event::ConnsEvicted).inc();
                Ok(())
            }
            None => Err(DropReason::ConnTableFull),
        }
    }
}

/// A seed for a core's per-client sketch: random per process, different per core.
pub(super) fn sketch_seed(core: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(core);
    h.finish()
}

impl<F: Frame> CoreCtx<F> {
    /// The access lists and rate limits of a new connection from `client` to `svc`: Ok, or
    /// the drop reason (a deny or allow-list refusal is also counted against its rule).
    /// Only first packets come here.
    pub(super) fn admit(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        client: Ipv4Addr,
        now_ms: u64,
    ) -> Result<(), DropReason> {
        let guard = &snap.services.guard;
        if guard.deny.is_empty() && guard.services.is_empty() {
            return Ok(());
        }
        let cores = self.lb.ownership.cores;
        let refusal = self.guard.admit(&guard.deny, guard.service(svc.slot, svc.gen), client, now_ms, cores);
        refusal.map_err(|r| self.refused(snap, r))
    }

    /// The access lists alone, for a SYN to a SYN-proxied service: a source they refuse gets
    /// no SYN-ACK (the drop is counted against its rule as on the path above).
    pub(super) fn access(&self, snap: &Snapshot, svc: &Service, client: Ipv4Addr) -> Result<(), DropReason> {
        let guard = &snap.services.guard;
        if guard.deny.is_empty() && guard.services.is_empty() {
            return Ok(());
        }
        GuardCore::access(&guard.deny, guard.service(svc.slot, svc.gen), client).map_err(|r| self.refused(snap, r))
    }

    /// The drop reason of a refusal, an access list's counted against its rule.
    fn refused(&self, snap: &Snapshot, refusal: Refusal) -> DropReason {
        let (guard, core) = (&snap.services.guard, self.lb.ownership.core);
        match refusal {
            Refusal::Denied(rule) => {
                guard.counters.hit(rule, core);
                DropReason::AclDenied
            }
            Refusal::NotAllowed(rule) => {
                guard.counters.hit(rule, core);
                DropReason::AclNotAllowed
            }
            Refusal::ServiceRate => DropReason::ServiceRateLimited,
            Refusal::SourceRate => DropReason::SourceRateLimited,
        }
    }

    /// The scheduler chose `svc.backends[chosen]`: it, when it is below its `max_conns` on
    /// this core (its share), else the next schedulable backend that is, in the service's
    /// order; None when all are at their maximum.
    pub(super) fn backend_with_room(&self, snap: &Snapshot, svc: &Service, chosen: usize) -> Option<usize> {
        let Some(g) = snap.services.guard.service(svc.slot, svc.gen) else { return Some(chosen) };
        if g.backend_max_conns.is_empty() {
            return Some(chosen);
        }
        let cores = self.lb.ownership.cores;
        let has_room = |i: usize| {
            let Some(b) = svc.backends.get(i) else { return false };
            let max = per_core_max(g.backend_max_conns.get(i).copied().unwrap_or(0), cores);
            let c = &self.lb.counters.backends[usize::from(b.slot)];
            let conns = if c.gen.get() == u64::from(b.gen) { c.active.get() + c.inactive.get() } else { 0 };
            conns < u64::from(max)
        };
        if has_room(chosen) {
            return Some(chosen);
        }
        let n = svc.backends.len();
        let next = (1..n).map(|k| (chosen + k) % n).find(|&i| {
            let b = &svc.backends[i];
            svc.candidates.get(i).is_some_and(|c| c.schedulable && c.weight > 0)
                && b.state == BackendState::Active
                && has_room(i)
        })?;
        self.counters.event(Event::BackendFullSkips).inc();
        Some(next)
    }
}
