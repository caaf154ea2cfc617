//! `fvs trace`: arms a trace on every worker core for the next packets matching a filter,
//! prints what ferrovs decided for each as it arrives (polling the daemon), and exits after
//! `count` packets or `timeout` seconds.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::words::{VerbArgs, Words};
use super::ArgsError;
use crate::client;
use crate::proto::{Request, TraceBatch, TracePacket, TraceProtocol, TraceSpec, TraceStarted};

pub(super) const TRACE_USAGE: &str =
    "fvs trace [host ADDR] [port PORT] [proto tcp|udp|icmp] [count N] [timeout SECONDS]";

pub(super) const TRACE_HELP: &str = "\
Examples:
  fvs trace host 192.0.2.2 port 80           the next 10 packets from or to 192.0.2.2, port 80
  fvs trace proto udp count 100 timeout 60
  fvs -j trace host 192.0.2.100              one JSON object per packet

For the next N packets (count, default 10) that match every filter given (an IPv4 address as
source or destination, a TCP/UDP port as source or destination port, the protocol), on any
worker core, it prints what ferrovs decided, step by step: classify (what the packet is: to a
service, of a tracked connection, to a VIP port no service uses, ...), connection (found,
created, ended; its state), schedule (the scheduler and the backend it chose), rewrite (the
headers as they left), output (port, destination MAC, next hop; or the kernel interface, or
the core that owns the connection), counted (the counters it moved), drop (the reason) and
the verdict. It stops after count packets or timeout seconds (default 10). One trace runs at
a time. While a trace is armed, the workers handle packets one at a time instead of in bursts.";

const DEFAULT_COUNT: u32 = 10;
const DEFAULT_TIMEOUT_S: u32 = 10;
/// How often the daemon is asked for what was traced.
const POLL: Duration = Duration::from_millis(100);

/// What `fvs trace` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceArgs {
    pub spec: TraceSpec,
    pub count: u32,
    pub timeout_s: u32,
}

pub(super) fn trace_args(args: VerbArgs) -> Result<TraceArgs, ArgsError> {
    let mut w = Words::new("fvs trace", &args.args);
    let (mut spec, mut count, mut timeout) = (TraceSpec::default(), None, None);
    while let Some(word) = w.next() {
        match word {
            "host" | "addr" => {
                let v = w.value(word, "an IPv4 address")?;
                let addr: IpAddr =
                    v.parse().map_err(|_| w.error(format!("'{v}' is not an IP address (after '{word}')")))?;
                w.once(&mut spec.addr, "host", addr)?;
            }
            "port" => {
                let v = w.value("port", "a port number")?;
                let port = w.port(v, "port")?;
                w.once(&mut spec.port, "port", port)?;
            }
            "proto" | "protocol" => {
                let v = w.value(word, "tcp, udp or icmp")?;
                let proto = match v.to_ascii_lowercase().as_str() {
                    "tcp" => TraceProtocol::Tcp,
                    "udp" => TraceProtocol::Udp,
                    "icmp" => TraceProtocol::Icmp,
                    _ => return Err(w.error(format!("'{v}' is not tcp, udp or icmp (after '{word}')"))),
                };
                w.once(&mut spec.protocol, "proto", proto)?;
            }
            "count" => {
                let v = w.value("count", "a number")?;
                let n = w.number(v, "count")?;
                w.once(&mut count, "count", n)?;
            }
            "timeout" => {
                let v = w.value("timeout", "a number of seconds")?;
                let n = w.number(v, "timeout")?;
                w.once(&mut timeout, "timeout", n)?;
            }
            other => return Err(w.unknown(other, &["host", "port", "proto", "count", "timeout"])),
        }
    }
    Ok(TraceArgs { spec, count: count.unwrap_or(DEFAULT_COUNT), timeout_s: timeout.unwrap_or(DEFAULT_TIMEOUT_S) })
}

/// One packet as text: its line, then one indented line per step, then the verdict.
pub(super) fn format_packet(p: &TracePacket) -> String {
    let mut out = format!("{}\n", p.packet);
    for s in &p.steps {
        out.push_str(&format!("  {:<11} {}\n", s.step, s.detail));
    }
    out.push_str(&format!("  {:<11} {}\n", "verdict", p.verdict));
    out
}

/// Starts the trace and prints its packets until it ends; 0 when it ran, 1 on an error.
pub(super) fn run(socket: &Path, args: &TraceArgs, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match trace(socket, args, json, out) {
        Ok(()) => 0,
        Err(msg) => {
            let _ = writeln!(err, "fvs: {msg}");
            1
        }
    }
}

fn trace(socket: &Path, args: &TraceArgs, json: bool, out: &mut dyn Write) -> Result<(), String> {
    let start = Request::TraceStart { filter: args.spec, count: args.count, timeout_s: args.timeout_s };
    let started: TraceStarted = client::call(socket, &start).map_err(|e| e.to_string())?.into_data()?;
    if !json {
        super::write_out(
            out,
            &format!(
                "trace {}: the next {} matching packet(s) on {} worker core(s), for {} s at most\n\n",
                started.id, args.count, started.cores, args.timeout_s
            ),
        )?;
    }
    // The daemon ends the trace at its deadline; this is only in case it stops answering.
    let give_up = Instant::now() + Duration::from_secs(u64::from(args.timeout_s)) + client::TIMEOUT;
    let mut shown = 0;
    loop {
        let batch: TraceBatch =
            client::call(socket, &Request::TracePoll { id: started.id }).map_err(|e| e.to_string())?.into_data()?;
        for p in &batch.packets {
            let text = if json {
                serde_json::to_string(p).map_err(|e| e.to_string())? + "\n"
            } else {
                format_packet(p) + "\n"
            };
            super::write_out(out, &text)?;
        }
        shown += batch.packets.len();
        if batch.done {
            if !json {
                let why = match batch.ended.as_deref() {
                    Some("count") => "all of them".to_string(),
                    _ => format!("timeout after {} s", args.timeout_s),
                };
                super::write_out(out, &format!("trace {}: {shown} packet(s) ({why})\n", started.id))?;
            }
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(format!("trace {}: the daemon did not end it after its timeout", started.id));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{parse, usage_error};
    use crate::cli::Command;
    use crate::proto::TraceStep;

    fn args(line: &str) -> TraceArgs {
        match parse(line).unwrap().command {
            Command::Trace(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trace_arguments() {
        assert_eq!(args("trace"), TraceArgs { spec: TraceSpec::default(), count: 10, timeout_s: 10 });
        assert_eq!(
            args("trace host 192.0.2.2 port 80 proto tcp count 3 timeout 20"),
            TraceArgs {
                spec: TraceSpec {
                    addr: Some("192.0.2.2".parse().unwrap()),
                    port: Some(80),
                    protocol: Some(TraceProtocol::Tcp)
                },
                count: 3,
                timeout_s: 20
            }
        );
        assert_eq!(usage_error("trace port x"), "fvs trace: 'x' is not a port number (after 'port')");
        assert_eq!(usage_error("trace proto sctp"), "fvs trace: 'sctp' is not tcp, udp or icmp (after 'proto')");
        assert_eq!(usage_error("trace host 1.2.3.4 host 1.2.3.5"), "fvs trace: 'host' given twice");
        assert_eq!(usage_error("trace count"), "fvs trace: 'count' needs a number");
        assert!(usage_error("trace bogus").starts_with("fvs trace: unknown"), "{}", usage_error("trace bogus"));
    }

    #[test]
    fn packets_print_step_by_step() {
        let p = TracePacket {
            core: 0,
            at_ms: 12,
            packet: "core 0 dp0: tcp 192.0.2.2:40000 > 192.0.2.100:81 [S] (74 bytes)".into(),
            steps: vec![TraceStep { step: "drop".into(), detail: "no_service".into() }],
            verdict: "dropped: no_service".into(),
        };
        assert_eq!(
            format_packet(&p),
            "core 0 dp0: tcp 192.0.2.2:40000 > 192.0.2.100:81 [S] (74 bytes)\n  drop        no_service\n  verdict     dropped: no_service\n"
        );
    }
}
