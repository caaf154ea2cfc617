//! The control thread's side of `fvs trace`: one trace at a time, armed on every worker with
//! a bounded channel per core, drained by the control loop (`try_recv` only, so a worker's
//! `try_send` never meets a waiting receiver's lock) into a buffer that `TracePoll` empties.
//! The trace ends when `count` packets were recorded or at its deadline; the daemon then
//! disarms the workers. No DPDK here: the daemon sends the arms and disarms.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use dataplane::trace::{TraceArm, TraceFilter, TraceRecord};
use dataplane::wire::IpProtocol;

use crate::proto::{
    TraceBatch, TracePacket, TraceProtocol, TraceSpec, TraceStep, TRACE_MAX_COUNT, TRACE_MAX_TIMEOUT_S,
};

/// A finished trace nobody polled is forgotten after this long.
const UNCLAIMED: Duration = Duration::from_secs(30);

pub struct TraceSession {
    pub id: u64,
    receivers: Vec<Receiver<TraceRecord>>,
    count: u32,
    /// Packets taken from the workers so far (at most `count`).
    taken: u32,
    deadline: Instant,
    buffer: Vec<TracePacket>,
    /// Why it ended: `count` or `timeout`.
    ended: Option<&'static str>,
    ended_at: Option<Instant>,
    /// A poll has returned `done`: nothing is left to hand over.
    handed_over: bool,
}

/// The dataplane filter for a request's, or why it cannot be.
pub fn filter(spec: &TraceSpec) -> Result<TraceFilter, String> {
    let addr = match spec.addr {
        None => None,
        Some(IpAddr::V4(a)) => Some(a),
        Some(IpAddr::V6(a)) => {
            return Err(format!("trace: {a}: only IPv4 addresses can be traced (IPv6 is not forwarded)"))
        }
    };
    let proto = spec.protocol.map(|p| match p {
        TraceProtocol::Tcp => IpProtocol::TCP,
        TraceProtocol::Udp => IpProtocol::UDP,
        TraceProtocol::Icmp => IpProtocol::ICMP,
    });
    if spec.port.is_some() && spec.protocol == Some(TraceProtocol::Icmp) {
        return Err("trace: icmp has no ports; drop 'port' or trace tcp or udp".into());
    }
    Ok(TraceFilter { addr, port: spec.port, proto })
}

impl TraceSession {
    /// A session for `cores` workers and the arms to send them, or why the request is refused.
    pub fn start(
        id: u64,
        spec: &TraceSpec,
        count: u32,
        timeout_s: u32,
        cores: usize,
        now: Instant,
    ) -> Result<(TraceSession, Vec<TraceArm>), String> {
        if count == 0 || count > TRACE_MAX_COUNT {
            return Err(format!("trace: count {count} is out of range (1 to {TRACE_MAX_COUNT})"));
        }
        if timeout_s == 0 || timeout_s > TRACE_MAX_TIMEOUT_S {
            return Err(format!("trace: timeout {timeout_s} s is out of range (1 to {TRACE_MAX_TIMEOUT_S})"));
        }
        let filter = filter(spec)?;
        let (arms, receivers) = (0..cores)
            .map(|_| {
                // Each core sends at most `count`: room for all of them, allocated here.
                let (records, rx) = crossbeam_channel::bounded(count as usize);
                (TraceArm { id, filter, max: count, records }, rx)
            })
            .unzip();
        let session = TraceSession {
            id,
            receivers,
            count,
            taken: 0,
            deadline: now + Duration::from_secs(u64::from(timeout_s)),
            buffer: Vec::new(),
            ended: None,
            ended_at: None,
            handed_over: false,
        };
        Ok((session, arms))
    }

    /// Still following packets.
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// Seconds until its deadline.
    pub fn remaining_s(&self, now: Instant) -> u64 {
        self.deadline.saturating_duration_since(now).as_secs()
    }

    /// Takes what the workers recorded, in the order each core recorded it (cores one after
    /// the other). Returns true when the trace just ended: the caller disarms the workers.
    pub fn drain(&mut self, now: Instant, port_name: &dyn Fn(u16) -> String) -> bool {
        if self.ended.is_some() {
            return false;
        }
        for rx in &self.receivers {
            while self.taken < self.count {
                let Ok(record) = rx.try_recv() else { break };
                self.taken += 1;
                self.buffer.push(packet(&record, port_name));
            }
        }
        let why = if self.taken >= self.count {
            "count"
        } else if now >= self.deadline {
            "timeout"
        } else {
            return false;
        };
        self.ended = Some(why);
        self.ended_at = Some(now);
        true
    }

    /// What was recorded since the last poll.
    pub fn poll(&mut self) -> TraceBatch {
        self.handed_over = self.ended.is_some();
        TraceBatch {
            packets: std::mem::take(&mut self.buffer),
            done: self.ended.is_some(),
            ended: self.ended.map(str::to_string),
        }
    }

    /// Ended, and a poll said so (all handed over) or none came for long: the daemon drops it.
    pub fn finished(&self, now: Instant) -> bool {
        match self.ended_at {
            Some(at) => self.handed_over || now.duration_since(at) >= UNCLAIMED,
            None => false,
        }
    }
}

/// A record in the API's words.
pub fn packet(record: &TraceRecord, port_name: &dyn Fn(u16) -> String) -> TracePacket {
    let text = record.describe(port_name);
    TracePacket {
        core: record.core,
        at_ms: record.now_ms,
        packet: text.packet,
        steps: text.steps.into_iter().map(|(step, detail)| TraceStep { step: step.to_string(), detail }).collect(),
        verdict: text.verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::trace::FrameView;

    fn record(core: u32) -> TraceRecord {
        TraceRecord {
            trace: 1,
            core,
            now_ms: 5,
            handed_in: false,
            rx_port: 0,
            packet: FrameView::of(&[0u8; 14]),
            class: dataplane::trace::Class::OtherEthertype,
            service: None,
            conn_before: None,
            conn_after: None,
            events: [None; dataplane::trace::MAX_EVENTS],
            drops: [None; dataplane::trace::MAX_DROPS],
            outputs: [None; dataplane::trace::MAX_OUTPUTS],
            more_outputs: 0,
        }
    }

    fn name(p: u16) -> String {
        format!("dp{p}")
    }

    #[test]
    fn bad_requests_are_refused() {
        let now = Instant::now();
        let spec = TraceSpec::default();
        let err =
            |spec: &TraceSpec, count, timeout| TraceSession::start(1, spec, count, timeout, 2, now).err().unwrap();
        assert_eq!(err(&spec, 0, 10), "trace: count 0 is out of range (1 to 1000)");
        assert_eq!(err(&spec, 1001, 10), "trace: count 1001 is out of range (1 to 1000)");
        assert_eq!(err(&spec, 1, 0), "trace: timeout 0 s is out of range (1 to 3600)");
        let v6 = TraceSpec { addr: Some("2001:db8::1".parse().unwrap()), ..spec };
        assert!(err(&v6, 1, 1).contains("only IPv4"));
        let icmp_port = TraceSpec { port: Some(80), protocol: Some(TraceProtocol::Icmp), ..spec };
        assert!(err(&icmp_port, 1, 1).contains("icmp has no ports"));
    }

    #[test]
    fn a_session_collects_until_its_count_or_deadline() {
        let now = Instant::now();
        let spec = TraceSpec { port: Some(80), protocol: Some(TraceProtocol::Tcp), ..TraceSpec::default() };
        let (mut s, arms) = TraceSession::start(9, &spec, 3, 10, 2, now).unwrap();
        assert_eq!(arms.len(), 2);
        assert_eq!((arms[0].id, arms[0].max, arms[0].filter.port), (9, 3, Some(80)));
        arms[0].records.try_send(record(0)).unwrap();
        arms[1].records.try_send(record(1)).unwrap();
        assert!(!s.drain(now, &name));
        let batch = s.poll();
        assert_eq!((batch.packets.len(), batch.done), (2, false));
        assert_eq!(batch.packets[1].core, 1);
        assert!(s.poll().packets.is_empty());
        // Each core may send `count`; the session keeps the first `count` in all.
        arms[1].records.try_send(record(1)).unwrap();
        arms[1].records.try_send(record(1)).unwrap();
        assert!(s.drain(now, &name), "the third packet ends it");
        assert!(!s.finished(now), "not yet handed over");
        let batch = s.poll();
        assert_eq!((batch.packets.len(), batch.done, batch.ended.as_deref()), (1, true, Some("count")));
        assert!(s.finished(now));

        let (mut s, _arms) = TraceSession::start(10, &spec, 3, 10, 1, now).unwrap();
        assert!(!s.drain(now + Duration::from_secs(9), &name));
        assert!(s.drain(now + Duration::from_secs(10), &name));
        assert_eq!(s.poll().ended.as_deref(), Some("timeout"));
    }
}
