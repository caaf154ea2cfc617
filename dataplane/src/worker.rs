//! The per-lcore run-to-completion poll loop: rx burst -> pipeline -> tx burst, with the
//! config snapshot refreshed at the burst boundary and control messages handled between
//! bursts. No allocation, lock or syscall per packet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::counters::{CoreCounters, DropReason, Event};
use crate::dpdk::{rdtsc, Mbuf, Mempool, MempoolRef, Port, RingConsumer, RingProducer, RxBurst, TxBuffer};
use crate::l3::neigh::NeighView;
use crate::l3::NeighParams;
use crate::lb::{ConnQuery, ConnView, ConnView6, LbCore, LbCounters};
use crate::pipeline::{CoreCtx, NeighLearned, TxSink};
use crate::rcu::Reader;
use crate::service::LbLimits;
use crate::snapshot::Snapshot;
use crate::steer::Ownership;
use crate::trace::TraceArm;

/// What the control thread asks of a worker.
pub enum CoreMsg {
    /// Another core confirmed a neighbour.
    NeighLearned(NeighLearned),
    /// Reply with this core's neighbour table.
    NeighDump(Sender<Vec<NeighView>>),
    /// Reply with the IPv4 and the IPv6 connections matching the query (up to its limit
    /// each) and how many matched in all.
    ConnDump(ConnQuery, Sender<(Vec<ConnView>, Vec<ConnView6>, u64)>),
    /// Start tracing (`fvs trace`): records go to the arm's channel.
    TraceArm(TraceArm),
    /// Stop the trace with this id (a later one stays armed).
    TraceDisarm(u64),
}

/// What a worker tells the control thread.
pub enum CoreEvent {
    NeighLearned { core: u32, neigh: NeighLearned },
}

/// Everything a worker core needs, moved onto its lcore.
pub struct WorkerSetup {
    /// Index among workers; also the rx/tx queue it owns on every port.
    pub core: u32,
    pub ports: Vec<Port>,
    /// Each port's kernel interface (a tap or virtio_user device), by position in `ports`:
    /// this worker writes what goes to the kernel to its own tx queue `core` of it and reads
    /// what the kernel sends from rx queue `core`.
    pub kernel_ports: Vec<Option<Port>>,
    pub mempool: Arc<Mempool>,
    pub snapshots: Reader<Snapshot>,
    pub counters: Arc<CoreCounters>,
    pub neigh: NeighParams,
    /// How many workers there are and which of them owns what.
    pub ownership: Ownership,
    /// Rings to the other workers, by core (None for this one).
    pub handoff_out: Vec<Option<RingProducer>>,
    /// Rings from the other workers.
    pub handoff_in: Vec<RingConsumer>,
    pub lb_limits: LbLimits,
    pub lb_counters: Arc<LbCounters>,
    pub stop: Arc<AtomicBool>,
    pub mailbox: Receiver<CoreMsg>,
    pub events: Sender<CoreEvent>,
    pub tsc_hz: u64,
    /// Sleep this long after a poll that received nothing (0: pure polling).
    pub idle_sleep: Duration,
}

/// How often a worker reads its queues of the kernel interfaces. A tap read is a system
/// call, so not on every poll: at most 10 000 a second per worker, and what the kernel sends
/// waits at most this long.
const KERNEL_POLL_INTERVAL_US: u64 = 100;

/// Per-port tx buffers of this worker's queue, per-port buffers of its queue of each kernel
/// interface, and per-core buffers of the rings to the other workers.
struct TxPorts<'a> {
    ports: &'a [Port],
    bufs: Vec<TxBuffer>,
    kernel_ports: &'a [Option<Port>],
    kernel_bufs: Vec<TxBuffer>,
    queue: u16,
    counters: &'a CoreCounters,
    handoff: Vec<(Option<RingProducer>, TxBuffer)>,
}

impl TxPorts<'_> {
    fn flush(&mut self) {
        for index in 0..self.bufs.len() {
            self.flush_port(index);
            self.flush_kernel(index);
        }
        for (ring, buf) in &mut self.handoff {
            if let Some(ring) = ring {
                let unsent = buf.flush_to_ring(ring);
                self.counters.drop_reason(DropReason::HandoffFull).add(unsent as u64);
            }
        }
    }

    /// Hands port `index`'s buffered frames to its tx queue. `tx_packets` and `tx_bytes` count
    /// what the port took, so they agree with the link's own counters; what it refused is
    /// freed and counted as `drop_tx_full` only.
    #[inline]
    fn flush_port(&mut self, index: usize) {
        let flushed = self.bufs[index].flush(self.ports[index], self.queue);
        self.counters.event(Event::TxPackets).add(flushed.sent as u64);
        self.counters.event(Event::TxBytes).add(flushed.sent_bytes);
        self.counters.drop_reason(DropReason::TxFull).add(flushed.refused as u64);
    }
}

impl TxPorts<'_> {
    /// Hands port `index`'s frames for the kernel to its kernel interface; what the interface
    /// refused is freed and counted as `drop_tx_full`.
    #[inline]
    fn flush_kernel(&mut self, index: usize) {
        let Some(kernel) = self.kernel_ports[index] else { return };
        let flushed = self.kernel_bufs[index].flush(kernel, self.queue);
        self.counters.drop_reason(DropReason::TxFull).add(flushed.refused as u64);
    }
}

impl TxSink<Mbuf> for TxPorts<'_> {
    #[inline]
    fn send(&mut self, port: u16, frame: Mbuf) {
        // A handful of ports: a short scan beats a sparse id-indexed table.
        let Some(index) = self.ports.iter().position(|p| p.id() == port) else {
            self.counters.drop_reason(DropReason::UnknownPort).inc();
            return;
        };
        if let Err(frame) = self.bufs[index].push(frame) {
            drop(frame);
            self.counters.drop_reason(DropReason::TxFull).inc();
            return;
        }
        if self.bufs[index].is_full() {
            self.flush_port(index);
        }
    }

    fn send_to_kernel(&mut self, port: u16, frame: Mbuf) {
        let index = self.ports.iter().position(|p| p.id() == port);
        let Some(index) = index.filter(|&i| self.kernel_ports[i].is_some()) else {
            self.counters.drop_reason(DropReason::UnknownPort).inc();
            return;
        };
        if let Err(frame) = self.kernel_bufs[index].push(frame) {
            drop(frame);
            self.counters.drop_reason(DropReason::TxFull).inc();
            return;
        }
        if self.kernel_bufs[index].is_full() {
            self.flush_kernel(index);
        }
    }

    #[inline]
    fn hand_off(&mut self, core: u32, frame: Mbuf) -> Result<(), Mbuf> {
        let Some((Some(ring), buf)) = self.handoff.get_mut(core as usize) else { return Err(frame) };
        buf.push(frame)?;
        if buf.is_full() {
            let unsent = buf.flush_to_ring(ring);
            self.counters.drop_reason(DropReason::HandoffFull).add(unsent as u64);
        }
        Ok(())
    }
}

/// What the kernel sent through this worker's queue of each kernel interface goes out of that
/// interface's port unchanged (ARP included). Returns how many frames there were.
fn from_kernel(
    ports: &[Port],
    kernel_ports: &[Option<Port>],
    queue: u16,
    counters: &CoreCounters,
    rx: &mut RxBurst,
    tx: &mut TxPorts<'_>,
) -> usize {
    let mut received = 0;
    for (port, kernel) in ports.iter().zip(kernel_ports) {
        let Some(kernel) = kernel else { continue };
        let n = rx.receive(*kernel, queue);
        received += n;
        counters.event(Event::FromKernel).add(n as u64);
        if let Some(c) = counters.kernel(port.id()) {
            c.from_kernel.add(n as u64);
        }
        for frame in &mut *rx {
            tx.send(port.id(), frame);
        }
    }
    received
}

/// Runs until `stop` is set. Returns 0 (the lcore's exit code).
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        core,
        ports,
        kernel_ports,
        mempool,
        mut snapshots,
        counters,
        neigh,
        ownership,
        handoff_out,
        mut handoff_in,
        lb_limits,
        lb_counters,
        stop,
        mailbox,
        events,
        tsc_hz,
        idle_sleep,
    } = setup;
    let queue = core as u16;
    let lb = LbCore::new(core, ownership.cores, lb_limits, lb_counters).with_ownership(ownership);
    let mut ctx: CoreCtx<Mbuf> = CoreCtx::new(core, counters.clone(), neigh, lb);
    snapshots.refresh();
    ctx.snapshot_changed(snapshots.current());
    let mut tx = TxPorts {
        ports: &ports,
        bufs: ports.iter().map(|_| TxBuffer::default()).collect(),
        kernel_ports: &kernel_ports,
        kernel_bufs: ports.iter().map(|_| TxBuffer::default()).collect(),
        queue,
        counters: &counters,
        handoff: handoff_out.into_iter().map(|ring| (ring, TxBuffer::default())).collect(),
    };
    let mut rx = RxBurst::default();
    let mut pool = MempoolRef(&mempool);
    let tsc_per_ms = (tsc_hz / 1000).max(1);
    let tsc_per_us = (tsc_hz / 1_000_000).max(1);
    let kernel_poll_tsc = tsc_per_us * KERNEL_POLL_INTERVAL_US;
    let has_kernel = kernel_ports.iter().any(Option::is_some);
    let start = rdtsc();
    let mut next_kernel_poll = start;

    while !stop.load(Ordering::Relaxed) {
        let switched = snapshots.refresh();
        let snap: &Snapshot = snapshots.current();
        if switched {
            counters.event(Event::SnapshotSwitches).inc();
            ctx.snapshot_changed(snap);
        }
        let elapsed = rdtsc() - start;
        let now_ms = elapsed / tsc_per_ms;
        ctx.set_clock(elapsed, tsc_per_us);
        let mut received = 0;
        for port in &ports {
            received += rx.receive(*port, queue);
            ctx.process_burst(snap, now_ms, &mut rx, &mut pool, &mut tx);
        }
        for ring in &mut handoff_in {
            received += rx.receive_ring(ring);
            ctx.process_handed_in(snap, now_ms, &mut rx, &mut pool, &mut tx);
        }
        if has_kernel && rdtsc() >= next_kernel_poll {
            next_kernel_poll = rdtsc() + kernel_poll_tsc;
            received += from_kernel(&ports, &kernel_ports, queue, &counters, &mut rx, &mut tx);
        }
        ctx.run_timers(snap, now_ms, &mut pool, &mut tx);
        while let Ok(msg) = mailbox.try_recv() {
            match msg {
                CoreMsg::NeighLearned(n) => ctx.learn_remote(snap, now_ms, n, &mut tx),
                CoreMsg::NeighDump(reply) => {
                    let _ = reply.send(ctx.neigh.dump(now_ms));
                }
                CoreMsg::ConnDump(query, reply) => {
                    let (v4, matched4) = ctx.lb.dump(&query, now_ms);
                    let (v6, matched6) = ctx.lb.dump6(&query, now_ms);
                    let _ = reply.send((v4, v6, matched4 + matched6));
                }
                CoreMsg::TraceArm(arm) => ctx.arm_trace(arm),
                CoreMsg::TraceDisarm(id) => ctx.disarm_trace(id),
            }
        }
        tx.flush();
        for neigh in ctx.drain_learned() {
            // The control thread relays these to the other cores. If it lags, they re-learn
            // by themselves (their own requests), so a full channel loses nothing vital.
            if let Err(TrySendError::Disconnected(_)) = events.try_send(CoreEvent::NeighLearned { core, neigh }) {
                break;
            }
        }
        counters.event(Event::Polls).inc();
        if received == 0 {
            counters.event(Event::IdlePolls).inc();
            if !idle_sleep.is_zero() {
                std::thread::sleep(idle_sleep);
            }
        }
    }
    0
}
