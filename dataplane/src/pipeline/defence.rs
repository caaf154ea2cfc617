//! Defence of the connection table on the new-connection path: a per-core quota of half-open
//! TCP connections, and eviction of the oldest half-open or UDP entry when the table is full
//! (established TCP connections are never evicted). Only first packets come here.

use super::{CoreCtx, Frame};
use crate::conn::{handshake_incomplete, TcpState};
use crate::counters::{DropReason, Event};
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
