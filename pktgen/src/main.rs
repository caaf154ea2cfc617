//! fvs-pktgen: a DPDK traffic generator and sink on one lcore, for benchmarking ferrovs (or
//! anything that forwards between two ports, such as dpdk-testpmd, the harness's ceiling).
//!
//! It sends on one port (to the device under test's MAC) and counts what arrives on the
//! other (with --queues N: N queues on each port, flow i sent on tx queue i % N, every rx
//! queue polled; still one lcore), unwrapping IPIP and GUE as ferrovs' TUN mode sends them. Every packet carries the
//! low 32 bits of the TSC at send time (TCP: the sequence number; UDP: the first payload
//! bytes), so every packet that comes back is a latency sample. It answers ARP on both ports
//! for the prefixes it stands in for (the backends on the sink side, the client router on the
//! sending side), so the device under test resolves its neighbours as on a real network.
//!
//! A run: wait for both links; probe until a packet comes back through; (tcp-est) open every
//! flow with a SYN, twice, at a gentle rate; warm up (neighbours resolve, caches fill); a short
//! pause so nothing from the warm-up is in flight; then the measured period; then a drain. It
//! prints one JSON line: packets sent and received in the measured period, Mpps, loss, and
//! latency percentiles.
//!
//!   fvs-pktgen [EAL options] -- --tx-port DEV --rx-port DEV --dst-mac MAC [options]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

use clap::Parser;
use dataplane::dpdk::{rdtsc, tsc_hz, Eal, Mempool, Port, PortConf, RxBurst, TxBuffer, BURST_SIZE};
use dataplane::net::MacAddr;
use dataplane::pipeline::Frame;
use pktgen::{
    arp_reply_in_place, classify, client_tuple, Histogram, Mode, Prefix, Received, Spread, Template, TCP_ACK, TCP_SYN,
};

#[derive(Parser, Debug)]
#[command(
    name = "fvs-pktgen",
    about = "DPDK traffic generator and sink for benchmarking ferrovs",
    override_usage = "fvs-pktgen [EAL options] -- --tx-port DEV --rx-port DEV --dst-mac MAC [options]"
)]
struct Args {
    /// DPDK device to send on (e.g. net_memif0): it faces the device under test's client side.
    #[arg(long)]
    tx_port: String,
    /// DPDK device whose received packets are counted (e.g. net_memif1): it stands in for the
    /// backends.
    #[arg(long)]
    rx_port: String,
    /// Destination MAC of the frames sent: the device under test's MAC on the tx port.
    #[arg(long)]
    dst_mac: MacAddr,
    /// udp: UDP over --flows tuples; syn: a TCP SYN from a new tuple every packet (new
    /// connections); tcp-est: TCP ACKs over --flows tuples, each opened by a SYN first.
    #[arg(long, default_value = "tcp-est")]
    mode: Mode,
    /// Clients come from this /24 (hosts .1 to .254, source ports 1024 and up).
    #[arg(long, default_value = "203.0.113.0")]
    clients: Ipv4Addr,
    /// Where the packets go: the VIP and port.
    #[arg(long, default_value = "192.0.2.100:80")]
    dst: SocketAddrV4,
    /// Distinct tuples for udp and tcp-est.
    #[arg(long, default_value_t = 65536)]
    flows: u64,
    /// Frame size in bytes without the FCS: 60 is 64 B on the wire.
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Packets per second to send, in millions; 0 sends as fast as the tx port takes them.
    #[arg(long, default_value_t = 0.0)]
    rate_mpps: f64,
    /// Rate of tcp-est's opening SYNs, in Mpps (gentle, so none is lost).
    #[arg(long, default_value_t = 0.5)]
    open_rate_mpps: f64,
    /// Seconds of traffic before the measured period.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Prefixes to answer ARP requests for, on both ports (comma-separated).
    #[arg(long, value_delimiter = ',')]
    answer_arp: Vec<Prefix>,
    /// UDP port on which GUE-encapsulated packets arrive (0: no GUE).
    #[arg(long, default_value_t = 6080)]
    gue_port: u16,
    /// Seconds to wait for both links to come up (memif: until the peer connects).
    #[arg(long, default_value_t = 20.0)]
    link_timeout: f64,
    /// Seconds to wait for the first packet to come back through the device under test.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout: f64,
    /// Seconds to keep the links up (answering ARP) after printing the results, so the
    /// harness can read and stop the device under test before its peer goes away.
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// Mbufs in the generator's pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// Rx and tx queues on each port (a device under test with N workers, one queue pair
    /// each): flow i goes out on tx queue i % N, every rx queue is polled. Still one lcore.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
    /// Count the stamped packets that come back on the tx port as received too (a SYN
    /// proxy's SYN-ACKs to a SYN flood): rx and the readiness probe include them, latency
    /// does not (their stamp is not ours).
    #[arg(long)]
    count_back: bool,
    /// tcp-est only: besides the established traffic, during warm-up and measurement, a SYN
    /// flood at this many Mpps to the same destination, each SYN from a new tuple (clients
    /// from the same /24, tuples past the established ones), on queue 0 from a buffer of its
    /// own. Not counted in tx; reported as flood_tx.
    #[arg(long, default_value_t = 0.0)]
    flood_mpps: f64,
}

/// Seconds with nothing sent between warm-up and measurement, and after the measurement.
const PAUSE_S: f64 = 0.05;
const DRAIN_S: f64 = 0.3;

struct Counters {
    tx: u64,
    /// Sent, per tx queue.
    tx_queue: Vec<u64>,
    /// Stamped packets received on the rx port, per rx queue.
    rx_queue: Vec<u64>,
    tx_nombuf: u64,
    /// Stamped packets received on the rx port.
    rx: u64,
    /// Stamped packets that came back on the tx port (e.g. a forwarder that sends back).
    rx_back: u64,
    rx_other: u64,
    arp_replies: u64,
    /// Flood SYNs sent (--flood-mpps).
    flood_tx: u64,
    latency: Histogram,
}

struct Generator {
    tx_port: Port,
    rx_port: Port,
    ports_differ: bool,
    macs: [MacAddr; 2],
    pool: std::sync::Arc<Mempool>,
    /// Queues on each port.
    queues: u16,
    /// Frames waiting, per tx queue of the tx port.
    tx: Vec<TxBuffer>,
    /// ARP replies, per port (0: tx port, 1: rx port) and queue (each goes back out on the
    /// queue its request came in on).
    replies: [Vec<TxBuffer>; 2],
    rx: RxBurst,
    answer_arp: Vec<Prefix>,
    gue_port: u16,
    clients: Ipv4Addr,
    hz: f64,
    c: Counters,
    /// Per tx queue: packets of its stream sent so far (see [`Spread::flow`]).
    next_flow: Vec<u64>,
    count_back: bool,
    /// The next flood SYN's tuple index (past the established flows).
    next_flood: u64,
    /// Flood SYNs waiting, sent on tx queue 0 beside the established traffic's buffer.
    flood_buf: TxBuffer,
}

/// What a phase sends.
struct Traffic<'a> {
    template: Option<&'a Template>,
    /// Packets per TSC cycle; 0: as fast as possible.
    rate: f64,
    /// Tuples cycle through 0..flows; u64::MAX: never repeat (SYN flood).
    flows: u64,
    /// Stop after this many packets (or at the deadline).
    count: u64,
    /// The stamp (TCP sequence number, UDP payload) of every packet, instead of the send time:
    /// the probe's and the opening SYNs of a flow (the probe reuses the first flows' tuples)
    /// must carry one ISN, or ferrovs takes the later ones for new connections.
    fixed_stamp: Option<u32>,
    /// A SYN flood alongside, on queue 0: its template and rate (packets per TSC cycle).
    flood: Option<(&'a Template, f64)>,
}

impl Generator {
    /// Runs one phase for `seconds` (or until `send.count` packets went out). Each tx queue
    /// sends its own flows, its share of the count and of the rate.
    fn phase(&mut self, seconds: f64, send: &Traffic<'_>) {
        let start = rdtsc();
        let end = start + (seconds * self.hz) as u64;
        let spread = Spread::new(send.flows, self.queues);
        let queues = usize::from(self.queues);
        let quota: Vec<u64> = (0..self.queues).map(|q| spread.share(send.count, q)).collect();
        let rate: Vec<f64> = (0..self.queues).map(|q| send.rate * spread.fraction(q)).collect();
        let mut sent = vec![0u64; queues];
        let mut flooded = 0u64;
        loop {
            let now = rdtsc();
            if now >= end {
                break;
            }
            if let Some((t, rate)) = send.flood {
                // A flood does not catch up: what the port did not take in time is skipped.
                let target = ((now - start) as f64 * rate) as u64;
                flooded = flooded.max(target.saturating_sub(BURST_SIZE as u64));
                flooded += self.fill_flood(t, target - flooded, now as u32);
                if !self.flood_buf.is_empty() {
                    self.c.flood_tx += self.flood_buf.send_retaining(self.tx_port, 0) as u64;
                }
            }
            if let Some(t) = send.template {
                for q in 0..queues {
                    if sent[q] < quota[q] {
                        let target = if send.rate == 0.0 { u64::MAX } else { ((now - start) as f64 * rate[q]) as u64 };
                        self.fill(
                            t,
                            &spread,
                            q,
                            target.saturating_sub(sent[q]).min(quota[q] - sent[q]),
                            send.fixed_stamp.unwrap_or(now as u32),
                        );
                    }
                    if !self.tx[q].is_empty() {
                        let n = self.tx[q].send_retaining(self.tx_port, q as u16) as u64;
                        sent[q] += n;
                        self.c.tx += n;
                        self.c.tx_queue[q] += n;
                    }
                }
            }
            for q in 0..self.queues {
                self.poll(self.rx_port, 1, q);
                if self.ports_differ {
                    self.poll(self.tx_port, 0, q);
                }
            }
        }
    }

    /// Tops tx queue `q`'s buffer up with at most `due` more frames (minus what is still
    /// waiting).
    fn fill(&mut self, template: &Template, spread: &Spread, q: usize, due: u64, stamp: u32) {
        let tx = &mut self.tx[q];
        let room = (BURST_SIZE - tx.len()) as u64;
        for _ in 0..room.min(due.saturating_sub(tx.len() as u64)) {
            let Some(mut m) = self.pool.alloc() else {
                self.c.tx_nombuf += 1;
                return;
            };
            // Templates are at most 1514 bytes; an mbuf holds 2 KiB.
            let fits = m.set_len(template.len());
            debug_assert!(fits);
            let i = spread.flow(q as u16, self.next_flow[q]);
            self.next_flow[q] += 1;
            let (src, sport) = client_tuple(self.clients, i);
            template.stamp(m.data_mut(), src, sport, stamp);
            if tx.push(m).is_err() {
                return;
            }
        }
    }

    /// Queues at most `due` flood SYNs in the flood's own buffer; returns how many.
    fn fill_flood(&mut self, template: &Template, due: u64, stamp: u32) -> u64 {
        let tx = &mut self.flood_buf;
        let mut n = 0;
        while n < due && tx.len() < BURST_SIZE {
            let Some(mut m) = self.pool.alloc() else {
                self.c.tx_nombuf += 1;
                break;
            };
            let fits = m.set_len(template.len());
            debug_assert!(fits);
            let (src, sport) = client_tuple(self.clients, self.next_flood);
            self.next_flood += 1;
            template.stamp(m.data_mut(), src, sport, stamp);
            if tx.push(m).is_err() {
                break;
            }
            n += 1;
        }
        n
    }

    /// Receives one burst on queue `queue` of `port` (index `which`: 0 tx port, 1 rx port).
    fn poll(&mut self, port: Port, which: usize, queue: u16) {
        let replies = &mut self.replies[which][usize::from(queue)];
        if self.rx.receive(port, queue) == 0 {
            if !replies.is_empty() {
                replies.send_retaining(port, queue);
            }
            return;
        }
        let now = rdtsc() as u32;
        for mut m in self.rx.by_ref() {
            match classify(m.data(), self.gue_port) {
                Received::Stamped(stamp) => {
                    if which == 1 || self.count_back {
                        self.c.rx += 1;
                        self.c.rx_queue[usize::from(queue)] += 1;
                    }
                    if which == 1 {
                        self.c.latency.record(u64::from(now.wrapping_sub(stamp)));
                    } else {
                        self.c.rx_back += 1;
                    }
                }
                Received::ArpRequest { target, .. } if self.answer_arp.iter().any(|p| p.contains(target)) => {
                    arp_reply_in_place(m.data_mut(), self.macs[which]);
                    if replies.push(m).is_ok() {
                        self.c.arp_replies += 1;
                    }
                }
                _ => self.c.rx_other += 1,
            }
        }
        replies.send_retaining(port, queue);
    }
}

fn open_port(name: &str, pool: &Mempool, queues: u16) -> Result<Port, String> {
    let port = Port::by_name(name).map_err(|e| format!("port {name}: {e} (is it in the EAL's --vdev/-a list?)"))?;
    let conf = PortConf {
        rx_queues: queues,
        tx_queues: queues,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        mtu: 1500,
        promiscuous: true,
    };
    port.configure(&conf, &vec![pool; usize::from(queues)]).map_err(|e| format!("port {name}: {e}"))?;
    port.start(true).map_err(|e| format!("port {name}: {e}"))?;
    Ok(port)
}

fn wait_link(ports: &[Port], names: &[&str], timeout_s: f64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout_s);
    loop {
        let down: Vec<&str> = ports.iter().zip(names).filter(|(p, _)| !p.link().up).map(|(_, n)| *n).collect();
        if down.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("link still down after {timeout_s} s: {} (is the peer running?)", down.join(", ")));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (proto, flags) = match args.mode {
        Mode::Udp => (17, 0),
        Mode::Syn => (6, TCP_SYN),
        Mode::TcpEstablished => (6, TCP_ACK),
    };
    if args.flows == 0 {
        return Err("--flows must be at least 1".into());
    }
    let pool = Mempool::create("pktgen", args.mbufs, 256, -1).map_err(|e| e.to_string())?;
    let tx_port = open_port(&args.tx_port, &pool, args.queues)?;
    let ports_differ = args.rx_port != args.tx_port;
    let rx_port = if ports_differ { open_port(&args.rx_port, &pool, args.queues)? } else { tx_port };
    wait_link(&[tx_port, rx_port], &[&args.tx_port, &args.rx_port], args.link_timeout)?;
    let main = Template::new(tx_port.mac(), args.dst_mac, proto, *args.dst.ip(), args.dst.port(), flags, args.size)?;
    let hz = tsc_hz() as f64;
    let per_cycle = |mpps: f64| mpps * 1e6 / hz;
    let queues = usize::from(args.queues);
    let buffers = || (0..queues).map(|_| TxBuffer::default()).collect::<Vec<_>>();
    let mut g = Generator {
        tx_port,
        rx_port,
        ports_differ,
        macs: [tx_port.mac(), rx_port.mac()],
        pool,
        queues: args.queues,
        tx: buffers(),
        replies: [buffers(), buffers()],
        rx: RxBurst::default(),
        answer_arp: args.answer_arp.clone(),
        gue_port: args.gue_port,
        hz,
        c: Counters {
            tx: 0,
            tx_queue: vec![0; queues],
            rx_queue: vec![0; queues],
            tx_nombuf: 0,
            rx: 0,
            rx_back: 0,
            rx_other: 0,
            arp_replies: 0,
            flood_tx: 0,
            latency: Histogram::default(),
        },
        next_flow: vec![0; queues],
        clients: args.clients,
        count_back: args.count_back,
        next_flood: args.flows,
        flood_buf: TxBuffer::default(),
    };
    if args.flood_mpps > 0.0 && args.mode != Mode::TcpEstablished {
        return Err("--flood-mpps is for --mode tcp-est (a flood alongside established traffic)".into());
    }
    let flows = if args.mode == Mode::Syn { u64::MAX } else { args.flows };

    // Until the device under test forwards (it may still be starting after its link came
    // up, or resolving its neighbours), nothing sent would count: probe at 1 kpps until a
    // packet comes back.
    let probe = Template::new(tx_port.mac(), args.dst_mac, proto, *args.dst.ip(), args.dst.port(), TCP_SYN, 60)?;
    let probe = if proto == 6 { &probe } else { &main };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(args.ready_timeout);
    while g.c.rx == 0 {
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "nothing came back within {} s: is the device under test forwarding?",
                args.ready_timeout
            ));
        }
        g.phase(
            0.05,
            &Traffic {
                template: Some(probe),
                rate: per_cycle(0.001),
                flows: u64::MAX,
                count: 50,
                fixed_stamp: Some(0),
                flood: None,
            },
        );
    }
    if args.mode != Mode::Syn {
        g.next_flow.fill(0);
    }
    let mut open = (g.c.tx, g.c.rx);
    if args.mode == Mode::TcpEstablished {
        let syn = Template::new(tx_port.mac(), args.dst_mac, 6, *args.dst.ip(), args.dst.port(), TCP_SYN, 60)?;
        // Two passes: a SYN lost while the device under test still resolved a backend's MAC
        // would leave its flow unopened; a second SYN on an open flow is a retransmission.
        let seconds = 2.0 * args.flows as f64 / (args.open_rate_mpps * 1e6) * 1.5 + 0.5;
        let send = Traffic {
            template: Some(&syn),
            rate: per_cycle(args.open_rate_mpps),
            flows,
            count: 2 * args.flows,
            fixed_stamp: Some(0),
            flood: None,
        };
        g.phase(seconds, &send);
        g.phase(PAUSE_S * 4.0, &Traffic { template: None, ..send });
        open = (g.c.tx - open.0, g.c.rx - open.1);
        g.next_flow.fill(0);
    } else {
        open = (0, 0);
    }
    let flood_syn = Template::new(tx_port.mac(), args.dst_mac, 6, *args.dst.ip(), args.dst.port(), TCP_SYN, 60)?;
    let flood = (args.flood_mpps > 0.0).then(|| (&flood_syn, per_cycle(args.flood_mpps)));
    let send = Traffic {
        template: Some(&main),
        rate: per_cycle(args.rate_mpps),
        flows,
        count: u64::MAX,
        fixed_stamp: None,
        flood,
    };
    g.phase(args.warmup, &send);
    g.phase(PAUSE_S, &Traffic { template: None, flood: None, ..send });
    // The measured period starts with a clean slate.
    g.c = Counters { latency: Histogram::default(), ..g.c };
    let (tx0, rx0, back0, other0, flood0) = (g.c.tx, g.c.rx, g.c.rx_back, g.c.rx_other, g.c.flood_tx);
    let (txq0, rxq0) = (g.c.tx_queue.clone(), g.c.rx_queue.clone());
    let start = rdtsc();
    g.phase(args.duration, &send);
    let elapsed = (rdtsc() - start) as f64 / hz;
    let rx_in_period = g.c.rx - rx0;
    // Frames still in the tx buffer were never sent: the count is of what went out.
    g.phase(DRAIN_S, &Traffic { template: None, flood: None, ..send });
    let flood_tx = g.c.flood_tx - flood0;
    let tx = g.c.tx - tx0;
    let rx = g.c.rx - rx0;
    let per_queue = |now: &[u64], then: &[u64]| {
        now.iter().zip(then).map(|(n, t)| (n - t).to_string()).collect::<Vec<_>>().join(",")
    };
    let (tx_queues, rx_queues) = (per_queue(&g.c.tx_queue, &txq0), per_queue(&g.c.rx_queue, &rxq0));
    let ns = |cycles: u64| cycles as f64 * 1e9 / hz;
    let l = &g.c.latency;
    let mode = match args.mode {
        Mode::Udp => "udp",
        Mode::Syn => "syn",
        Mode::TcpEstablished => "tcp-est",
    };
    let line = format!(
        concat!(
            "{{\"mode\":\"{}\",\"size\":{},\"flows\":{},\"seconds\":{:.3},\"tx\":{},\"rx\":{},\"tx_mpps\":{:.4},",
            "\"rx_mpps\":{:.4},\"loss\":{},\"flood_tx\":{},\"flood_mpps\":{:.4},\"rx_back\":{},\"rx_other\":{},\"tx_nombuf\":{},\"arp_replies\":{},",
            "\"open_tx\":{},\"open_rx\":{},\"queues\":{},\"tx_per_queue\":[{}],\"rx_per_queue\":[{}],\"latency_ns\":{{\"samples\":{},\"p50\":{:.0},\"p99\":{:.0},\"p999\":{:.0},\"max\":{:.0}}}}}"
        ),
        mode,
        args.size,
        if args.mode == Mode::Syn { 0 } else { args.flows },
        elapsed,
        tx,
        rx,
        tx as f64 / elapsed / 1e6,
        rx_in_period as f64 / elapsed / 1e6,
        tx.saturating_sub(rx),
        flood_tx,
        flood_tx as f64 / elapsed / 1e6,
        g.c.rx_back - back0,
        g.c.rx_other - other0,
        g.c.tx_nombuf,
        g.c.arp_replies,
        open.0,
        open.1,
        args.queues,
        tx_queues,
        rx_queues,
        l.count(),
        ns(l.quantile(0.5)),
        ns(l.quantile(0.99)),
        ns(l.quantile(0.999)),
        ns(l.max()),
    );
    println!("{line}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // The links stay up (and ARP answered) while the harness reads the device under test's
    // counters: a memif peer that loses its link mid-run may not survive it.
    g.phase(args.linger, &Traffic { template: None, flood: None, ..send });
    for port in if ports_differ { vec![tx_port, rx_port] } else { vec![tx_port] } {
        port.stop();
        port.close();
    }
    Ok(())
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().collect();
    let (eal_args, app_args) = match all.iter().position(|a| a == "--") {
        Some(i) => (all[..i].to_vec(), std::iter::once(all[0].clone()).chain(all[i + 1..].iter().cloned()).collect()),
        None => (vec![all[0].clone()], all.clone()),
    };
    let args = Args::parse_from(app_args);
    let eal = match Eal::init(&eal_args) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("fvs-pktgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(&args);
    drop(eal);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fvs-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}
