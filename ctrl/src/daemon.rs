//! The ferrovs daemon: brings up DPDK from the config, launches the workers, and runs the
//! control loop (admin API, neighbour relay between cores, snapshot reclamation) until
//! SIGINT/SIGTERM, then stops everything in order and leaves nothing behind. Changes are
//! decided by the control state ([`crate::state`]); the daemon publishes the snapshots it
//! returns and answers the reads that need the ports or the workers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::conn::ConnFlags;
use dataplane::counters::CoreCounters;
use dataplane::dpdk::{self, Eal, Mempool, Port, PortConf, PortSetup, RingConsumer, RingProducer};
use dataplane::l3::{NeighParams, RouteOrigin};
use dataplane::lb::{ConnQuery, LbCounters};
use dataplane::rcu::{self, Publisher};
use dataplane::rss::{ReplySteering, Reta, Toeplitz};
use dataplane::snapshot::Snapshot;
use dataplane::steer::{Ownership, Steering};
use dataplane::wire::IpProtocol;
use dataplane::worker::{self, CoreEvent, CoreMsg, WorkerSetup};
use tracing::{info, warn};

use crate::announce::KernelRoutes;
use crate::api::{self, ApiCall};
use crate::config::Protocol;
use crate::config::{self, Config, DeviceKind, KernelConfig, VIRTIO_USER_QUEUE_SIZE};
use crate::health::{self, runner::Runner, HealthBoard, Transition};
use crate::machine;
use crate::metrics::export::Exporter;
use crate::metrics::MetricsView;
use crate::netlink::Rtnl;
use crate::proto::{
    ConfigStats, ConnFilter, ConnInfo, ConnList, ConnMode, CoreStats, KernelLinkInfo, KernelStats, LinkInfo, NeighInfo,
    Request, Response, RouteInfo, StatsInfo, TraceSpec, TraceStarted,
};
use crate::state::{ControlState, KernelAddrChange, Outcome, PortFacts};
use crate::trace::TraceSession;

/// How long a change may take to reach every worker before the API says so.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `neigh show` waits for each worker's table.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
const MAILBOX_DEPTH: usize = 1024;
/// Frames in flight from one worker to another (a power of two; holds one less). Taken from
/// the mbuf pool, like a queue's descriptors.
const HANDOFF_RING_SIZE: u32 = 1024;
/// How often the workers' failed-connection counts are summed for passive health detection.
const PASSIVE_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How often the kernel interfaces' link state is brought in step with their ports'.
const LINK_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// A port's kernel interface, made at start-up.
struct KernelRuntime {
    config: KernelConfig,
    /// The DPDK vdev's name (`net_tap_k_dp0`), to remove it on the way out.
    vdev_name: String,
    port: Port,
    /// The Linux netdev's index.
    index: u32,
    /// What ferrovs last set: up when the port's link is.
    up: bool,
}

/// A started port.
struct PortRuntime {
    name: String,
    device: String,
    port: Port,
    setup: PortSetup,
    driver: String,
    socket: i32,
    mac: dataplane::net::MacAddr,
    mtu: u16,
    steering: Steering,
    steering_detail: String,
    kernel: Option<KernelRuntime>,
}

struct WorkerHandle {
    lcore: u32,
    counters: Arc<CoreCounters>,
    lb_counters: Arc<LbCounters>,
    mailbox: Sender<CoreMsg>,
}

/// The arguments `rte_eal_init` gets for `config`.
pub fn eal_args(config: &Config) -> Vec<String> {
    let eal = &config.eal;
    let workers = &config.workers;
    let lcore_flag = if workers.cpus.is_empty() {
        let lcores: BTreeSet<u32> = std::iter::once(eal.main_lcore).chain(workers.lcores.iter().copied()).collect();
        ["-l".to_string(), lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(",")]
    } else {
        // lcore@cpu: the main lcore on its own CPU number, each worker where `cpus` says.
        let map = std::iter::once((eal.main_lcore, eal.main_lcore))
            .chain(workers.lcores.iter().copied().zip(workers.cpus.iter().copied()));
        ["--lcores".to_string(), map.map(|(l, c)| format!("{l}@{c}")).collect::<Vec<_>>().join(",")]
    };
    let mut args = vec![
        "ferrovs".to_string(),
        lcore_flag[0].clone(),
        lcore_flag[1].clone(),
        "--main-lcore".into(),
        eal.main_lcore.to_string(),
        "--file-prefix".into(),
        eal.file_prefix.clone(),
        "-m".into(),
        eal.memory_mb.to_string(),
    ];
    if !eal.telemetry {
        // The telemetry socket would outlive a crash in /var/run/dpdk; ferrovs has its own API.
        args.push("--no-telemetry".into());
    }
    if eal.hugepages && !eal.pdump {
        // Hugepage memory without files in /dev/hugepages: nothing is left behind on exit.
        args.push("--in-memory".into());
    } else if eal.hugepages {
        // eal.pdump: hugepage files and the shared config under the file prefix, which
        // dpdk-dumpcap (a secondary process) maps to reach our ports and mbufs.
    } else {
        args.extend(["--no-huge".into(), "--no-shconf".into()]);
    }
    let mut any_pci = false;
    for port in &config.ports {
        match port.device_kind() {
            DeviceKind::Vdev { .. } => args.extend(["--vdev".into(), port.device.clone()]),
            DeviceKind::Pci(addr) => {
                any_pci = true;
                args.extend(["-a".into(), addr]);
            }
        }
    }
    if !any_pci {
        // Without an allow-list DPDK would probe every PCI NIC it can bind.
        args.push("--no-pci".into());
    }
    args.extend(eal.extra_args.iter().cloned());
    args
}

/// The name DPDK gives the port of a configured device.
fn dpdk_port_name(device: &DeviceKind) -> String {
    match device {
        DeviceKind::Vdev { name, .. } => name.clone(),
        DeviceKind::Pci(addr) => addr.clone(),
    }
}

fn neigh_params(config: &Config) -> NeighParams {
    let n = &config.neighbours;
    NeighParams {
        capacity: n.capacity as usize,
        reachable_ms: n.reachable_ms,
        stale_ms: n.stale_ms,
        pending_per_neighbour: n.pending_per_neighbour as usize,
        probe_interval_ms: n.probe_interval_ms,
        max_probes: n.max_probes.min(255) as u8,
    }
}

/// Runs the daemon until SIGINT/SIGTERM. Errors are start-up failures, worded for an operator.
pub fn run(config: Config) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    // Bind first: a second daemon on the same socket fails before touching DPDK.
    let listener =
        api::bind(&config.api.socket).map_err(|e| format!("api.socket {}: {e}", config.api.socket.display()))?;
    let socket_path = config.api.socket.clone();
    let result = run_bound(config, listener, stop);
    let _ = std::fs::remove_file(&socket_path);
    result
}

/// How replies to local addresses reach their owner on this port, best first: the NIC's
/// Toeplitz RSS (local ports chosen so their replies hash to the owner's queue), else rings.
/// Flow rules are probed and reported; ferrovs does not install them yet. Returns the method
/// and what the probe found.
fn probe_steering(port: Port, setup: &PortSetup, queues: u16) -> (Steering, String) {
    if queues == 1 {
        return (Steering::Single, "one worker".into());
    }
    let flow = match port.flow_steering_probe(queues) {
        Ok(()) => "flow rules: offered, not used by ferrovs yet".to_string(),
        Err(why) => format!("flow rules: not offered: {why}"),
    };
    if !setup.rss {
        return (Steering::Rings, format!("{flow}; rss: off (the device has no RSS)"));
    }
    let rss = port.rss_steering(queues).and_then(|(key, reta)| {
        let toeplitz = Toeplitz::new(&key)?;
        let entries = reta.len();
        Ok((ReplySteering { toeplitz, reta: Reta::new(reta)? }, key, entries))
    });
    match rss {
        Ok((steering, key, entries)) => {
            let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
            (Steering::Toeplitz(steering), format!("{flow}; rss key {key} reta {entries} entries"))
        }
        Err(why) => (Steering::Rings, format!("{flow}; rss: {why}")),
    }
}

/// Rings between every pair of workers: `out[a][b]` is a's end of the ring a -> b, `in[b]`
/// the receiving ends b polls. Each ring lives on its consumer's NUMA socket.
#[allow(clippy::type_complexity)]
fn handoff_rings(
    cores: usize,
    lcores: &[u32],
    eal: &Eal,
) -> Result<(Vec<Vec<Option<RingProducer>>>, Vec<Vec<RingConsumer>>), String> {
    let mut out: Vec<Vec<Option<RingProducer>>> = (0..cores).map(|_| (0..cores).map(|_| None).collect()).collect();
    let mut inbound: Vec<Vec<RingConsumer>> = (0..cores).map(|_| Vec::new()).collect();
    if cores == 1 {
        return Ok((out, inbound));
    }
    for (from, outs) in out.iter_mut().enumerate() {
        for (to, slot) in outs.iter_mut().enumerate() {
            if from == to {
                continue;
            }
            let socket = eal.lcore_socket(lcores[to]) as i32;
            let (producer, consumer) =
                dpdk::handoff_ring(&format!("fvs_handoff_{from}_{to}"), HANDOFF_RING_SIZE, socket)
                    .map_err(|e| format!("hand-off ring from worker {from} to {to}: {e}"))?;
            *slot = Some(producer);
            inbound[to].push(consumer);
        }
    }
    Ok((out, inbound))
}

/// The port the EAL made for `ports[index]`, and what its device can do.
fn probed_port(index: usize, pc: &config::PortConfig) -> Result<(Port, dataplane::dpdk::PortInfo), String> {
    let name = dpdk_port_name(&pc.device_kind());
    let port = Port::by_name(&name)
        .map_err(|e| format!("ports[{index}] ({}): device '{name}' did not come up: {e}", pc.name))?;
    let info = port.info().map_err(|e| format!("ports[{index}] ({}): {e}", pc.name))?;
    Ok((port, info))
}

fn run_bound(
    mut config: Config,
    listener: std::os::unix::net::UnixListener,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    // The same checks `ferrovs --check` makes on the machine it runs on.
    let auto_lcores = machine::resolve_lcores(&mut config, machine::read_online_cpus())?;
    let args = eal_args(&config);
    info!(args = %args.join(" "), "starting DPDK EAL");
    let eal = Eal::init(&args).map_err(|e| format!("{e}; EAL arguments were: {}", args.join(" ")))?;
    if config.eal.pdump {
        dpdk::pdump_init().map_err(|e| format!("eal.pdump: {e}"))?;
        info!(file_prefix = %config.eal.file_prefix, "pdump ready: dpdk-dumpcap --file-prefix {} can capture", config.eal.file_prefix);
    }
    if auto_lcores {
        // As many workers as every port has queue pairs for (af_packet: its qpairs=N).
        let mut queues = config.workers.lcores.len();
        for (index, pc) in config.ports.iter().enumerate() {
            let (_, info) = probed_port(index, pc)?;
            queues = queues.min(usize::from(info.max_rx_queues.min(info.max_tx_queues)).max(1));
        }
        config.workers.lcores.truncate(queues);
        info!(lcores = ?config.workers.lcores, "workers.lcores not set: one worker per online CPU but the main lcore, as many as the ports have queues for");
    }
    // One mbuf pool per NUMA socket that has workers; each rx queue uses its worker's.
    let mut pools: BTreeMap<u32, Arc<Mempool>> = BTreeMap::new();
    for lcore in &config.workers.lcores {
        let socket = eal.lcore_socket(*lcore);
        if let std::collections::btree_map::Entry::Vacant(slot) = pools.entry(socket) {
            let pool = Mempool::create(
                &format!("fvs_mbuf_s{socket}"),
                config.mempool.mbufs,
                config.mempool.cache_size,
                socket as i32,
            )
            .map_err(|e| {
                format!("mempool: {e} (is memory_mb / are hugepages enough? scripts/setup.sh reserves them)")
            })?;
            slot.insert(pool);
        }
    }
    let worker_pools: Vec<Arc<Mempool>> =
        config.workers.lcores.iter().map(|l| pools[&eal.lcore_socket(*l)].clone()).collect();

    let queues = config.workers.lcores.len() as u16;
    let mut ports: Vec<PortRuntime> = Vec::new();
    for (index, pc) in config.ports.iter().enumerate() {
        let (port, info) = probed_port(index, pc)?;
        let conf = PortConf {
            rx_queues: queues,
            tx_queues: queues,
            rx_descriptors: pc.rx_descriptors,
            tx_descriptors: pc.tx_descriptors,
            mtu: pc.mtu,
            promiscuous: pc.promiscuous,
        };
        let rx_pools: Vec<&Mempool> = worker_pools.iter().map(|p| p.as_ref()).collect();
        let setup = port.configure(&conf, &rx_pools).map_err(|e| format!("ports[{index}] ({}): {e}", pc.name))?;
        port.start(pc.promiscuous).map_err(|e| format!("ports[{index}] ({}): {e}", pc.name))?;
        let mac = port.mac();
        let (steering, steering_detail) = probe_steering(port, &setup, queues);
        info!(port = %pc.name, id = port.id(), driver = %info.driver, %mac, rss = setup.rss, queues,
            steering = steering.name(), detail = %steering_detail, "port started");
        ports.push(PortRuntime {
            name: pc.name.clone(),
            device: pc.device.clone(),
            port,
            setup,
            driver: info.driver,
            socket: info.socket,
            mac,
            mtu: pc.mtu,
            steering,
            steering_detail,
            kernel: None,
        });
    }
    // The kernel interfaces come after every port, so their port ids never take a data
    // port's. Each carries its port's MAC (in the vdev arguments) and MTU.
    let mut rtnl = None;
    for (index, pc) in config.ports.iter().enumerate() {
        let Some(k) = &pc.kernel else { continue };
        let rtnl = rtnl.get_or_insert_with(|| {
            Rtnl::open().map_err(|e| format!("rtnetlink socket for the kernel interfaces: {e}"))
        });
        let rtnl = rtnl.as_mut().map_err(|e| e.clone())?;
        let at = |e: String| format!("ports[{index}] ({}): kernel interface {}: {e}", pc.name, k.name);
        let runtime = ports.iter_mut().find(|p| p.name == pc.name).expect("every configured port started");
        let rx_pools: Vec<&Mempool> = worker_pools.iter().map(|p| p.as_ref()).collect();
        let kernel = start_kernel_interface(k, runtime, queues, &rx_pools, rtnl).map_err(at)?;
        info!(port = %pc.name, kernel = %k.name, device = k.device.as_str(), id = kernel.port.id(), ifindex = kernel.index,
            up = kernel.up, "kernel interface started");
        runtime.kernel = Some(kernel);
    }
    // Workers index their tx buffers by position: keep ports in id order.
    ports.sort_by_key(|p| p.port.id());
    let port_nodes: Vec<(String, i32)> = ports.iter().map(|p| (p.name.clone(), p.socket)).collect();
    let worker_nodes: Vec<(u32, u32)> = config.workers.lcores.iter().map(|l| (*l, eal.lcore_socket(*l))).collect();
    for line in machine::remote_polls(&port_nodes, &worker_nodes) {
        warn!("{line}");
    }

    let facts = ports.iter().map(|p| PortFacts { id: p.port.id(), name: p.name.clone(), mac: p.mac, mtu: p.mtu });
    let (state, snapshot) = ControlState::new(config.clone(), facts.collect())?;
    if let Some(rtnl) = rtnl.as_mut().and_then(|r| r.as_mut().ok()) {
        // The kernel interfaces start with their ports' addresses, or ferrovs does not start.
        let failures = apply_kernel_addrs(rtnl, &ports, &state.kernel_addrs());
        if !failures.is_empty() {
            return Err(format!("kernel interface addresses: {}", failures.join("; ")));
        }
    }
    // Routes left by an instance that was killed are ours too: the first sync replaces them.
    let kernel_routes = match &config.announce {
        Some(a) => {
            let mut routes = KernelRoutes::open(a)
                .map_err(|e| format!("announce: cannot open a netlink socket: {e} (ferrovs needs CAP_NET_ADMIN)"))?;
            sync_routes(&mut routes, &state.announced_vips()).map_err(|e| format!("announce: {e}"))?;
            Some(routes)
        }
        None => None,
    };
    let lb_limits = *state.lb().limits();
    let (publisher, readers) = rcu::channel(snapshot, config.workers.lcores.len());
    let (event_tx, event_rx) = bounded::<CoreEvent>(MAILBOX_DEPTH);
    let workers_stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let mut launch_error = None;
    let cores = config.workers.lcores.len();
    let steering_by_port = {
        let mut v = vec![Steering::Rings; ports.iter().map(|p| usize::from(p.port.id()) + 1).max().unwrap_or(0)];
        for p in &ports {
            v[usize::from(p.port.id())] = p.steering.clone();
        }
        v
    };
    let (mut handoff_out, mut handoff_in) = handoff_rings(cores, &config.workers.lcores, &eal)?;
    for (core, (reader, lcore)) in readers.into_iter().zip(config.workers.lcores.iter().copied()).enumerate() {
        let counters = Arc::new(CoreCounters::default());
        let lb_counters = Arc::new(LbCounters::new(&lb_limits));
        let (mail_tx, mail_rx) = bounded(MAILBOX_DEPTH);
        let setup = WorkerSetup {
            core: core as u32,
            ports: ports.iter().map(|p| p.port).collect(),
            kernel_ports: ports.iter().map(|p| p.kernel.as_ref().map(|k| k.port)).collect(),
            mempool: worker_pools[core].clone(),
            snapshots: reader,
            counters: counters.clone(),
            neigh: neigh_params(&config),
            ownership: Ownership::new(core as u32, cores as u32, steering_by_port.clone()),
            handoff_out: std::mem::take(&mut handoff_out[core]),
            handoff_in: std::mem::take(&mut handoff_in[core]),
            lb_limits,
            lb_counters: lb_counters.clone(),
            stop: workers_stop.clone(),
            mailbox: mail_rx,
            events: event_tx.clone(),
            tsc_hz: dpdk::tsc_hz(),
            idle_sleep: Duration::from_micros(u64::from(config.workers.idle_sleep_us)),
        };
        if let Err(e) = dpdk::launch(lcore, move || worker::run(setup)) {
            launch_error = Some(format!("workers.lcores: {e}"));
            break;
        }
        info!(core, lcore, "worker started");
        workers.push(WorkerHandle { lcore, counters, lb_counters, mailbox: mail_tx });
    }

    let (call_tx, call_rx) = bounded::<ApiCall>(64);
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let metrics = match Exporter::start(&config, metrics_stop.clone()) {
        Ok(m) => m,
        Err(e) => {
            launch_error.get_or_insert(e);
            Exporter::disabled()
        }
    };
    let runner = match Runner::start() {
        Ok(r) => Some(r),
        Err(e) => {
            launch_error.get_or_insert(e);
            None
        }
    };
    info!("health checks: {}", probe_route_note(&config));
    let mut control = Control {
        health: HealthBoard::default(),
        runner,
        state,
        ports,
        rtnl: rtnl.and_then(Result::ok),
        publisher,
        workers,
        events: event_rx,
        publish_stats: ConfigStats::new(VISIBLE_TIMEOUT),
        kernel_routes,
        metrics,
        trace: None,
        trace_ids: 0,
    };
    control.sync_health();
    if launch_error.is_none() {
        let _server = api::spawn_server(listener, call_tx);
        info!(socket = %control.state.config().api.socket.display(), "ferrovs running; stop with SIGINT or SIGTERM");
        let mut systemd = crate::systemd::Systemd::from_env();
        systemd.ready(&format!("{} ports, {} workers", control.ports.len(), control.workers.len()));
        control.run(&call_rx, &stop, &mut systemd);
        systemd.stopping();
        info!("stopping");
    }
    // Routers stop sending the VIPs here before the workers stop.
    if let Some(routes) = &mut control.kernel_routes {
        if let Err(e) = sync_routes(routes, &BTreeSet::new()) {
            warn!(error = %e, "announce: could not withdraw the VIP routes");
        }
    }

    // Order matters: workers return before ports stop, ports close before pools are freed,
    // and the EAL is cleaned up last.
    workers_stop.store(true, Ordering::Relaxed);
    metrics_stop.store(true, Ordering::Relaxed);
    for w in &control.workers {
        let code = dpdk::wait_lcore(w.lcore);
        if code != 0 {
            warn!(lcore = w.lcore, code, "worker exited with an error");
        }
    }
    for p in &control.ports {
        p.port.stop();
        p.port.close();
        if let Some(k) = &p.kernel {
            k.port.stop();
            k.port.close();
            Port::remove_vdev(&k.vdev_name);
        }
    }
    drop(control);
    if config.eal.pdump {
        dpdk::pdump_uninit();
    }
    drop(worker_pools);
    drop(pools);
    drop(eal);
    match launch_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The control thread: the control state (config and load balancing, changed only by its
/// transactions), the ports, the handles to the workers and the publication.
struct Control {
    state: ControlState,
    ports: Vec<PortRuntime>,
    /// For the kernel interfaces (None when no port has one).
    rtnl: Option<Rtnl>,
    publisher: Publisher<Snapshot>,
    workers: Vec<WorkerHandle>,
    events: Receiver<CoreEvent>,
    /// Publications and their delay until every worker used them, for `fvs stats`.
    publish_stats: ConfigStats,
    /// The VIP routes for routing daemons (`announce`), when configured.
    kernel_routes: Option<KernelRoutes>,
    /// The metrics endpoint's and telemetry's view, refreshed here every second.
    metrics: Exporter,
    /// The `fvs trace` in progress or finished and not yet handed over, and the last id.
    trace: Option<TraceSession>,
    trace_ids: u64,
    /// Every checked backend's verdict.
    health: HealthBoard,
    /// The active checks' runtime (None only when it could not start: ferrovs then stops).
    runner: Option<Runner>,
}

/// What the probes go through, for the start-up log: the kernel of ferrovs' network
/// namespace, and with a kernel interface on a port, the box's own address on it.
fn probe_route_note(config: &Config) -> String {
    let kernels: Vec<String> = config
        .ports
        .iter()
        .filter_map(|p| p.kernel.as_ref().map(|k| format!("{} (port {})", k.name, p.name)))
        .collect();
    if kernels.is_empty() {
        "probes use the kernel network stack of ferrovs' network namespace and its routes; no port has a kernel \
         interface, so they do NOT cross ferrovs' NICs (give a port a `kernel` block so they do)"
            .to_string()
    } else {
        format!(
            "probes leave through the kernel with the box's own addresses, over the kernel interface(s) {} where the \
             kernel routes to the backends go, crossing the same NICs as the traffic",
            kernels.join(", ")
        )
    }
}

/// Makes the VIP routes in the kernel `vips`, saying what changed.
fn sync_routes(routes: &mut KernelRoutes, vips: &BTreeSet<std::net::IpAddr>) -> Result<(), String> {
    let (added, removed) =
        routes.sync(vips).map_err(|e| format!("cannot change the VIP routes: {e} (ferrovs needs CAP_NET_ADMIN)"))?;
    for vip in added {
        info!(%vip, "VIP announced (kernel route added)");
    }
    for vip in removed {
        info!(%vip, "VIP withdrawn (kernel route removed)");
    }
    Ok(())
}

impl Control {
    fn run(&mut self, calls: &Receiver<ApiCall>, stop: &AtomicBool, systemd: &mut crate::systemd::Systemd) {
        let mut links_checked = std::time::Instant::now();
        let mut passive_sampled = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            systemd.tick();
            if self.metrics.due() {
                let view =
                    MetricsView { stats: self.stats(), links: self.links(true), services: self.service_infos(true) };
                self.metrics.publish(view);
            }
            self.health_step(&mut passive_sampled);
            if let Ok(call) = calls.recv_timeout(Duration::from_millis(20)) {
                let response = self.handle(call.request);
                let _ = call.reply.send(response);
            }
            self.relay_events();
            self.drain_trace();
            self.publisher.reclaim();
            if links_checked.elapsed() >= LINK_FOLLOW_INTERVAL {
                links_checked = std::time::Instant::now();
                self.follow_links();
            }
        }
    }

    /// Each kernel interface is up when its port's link is, down when it is not.
    fn follow_links(&mut self) {
        let Some(rtnl) = self.rtnl.as_mut() else { return };
        for p in &mut self.ports {
            let Some(k) = p.kernel.as_mut() else { continue };
            let up = p.port.link().up;
            if up == k.up {
                continue;
            }
            match rtnl.set_up(k.index, up) {
                Ok(()) => {
                    info!(port = %p.name, kernel = %k.config.name, up, "kernel interface follows its port's link");
                    k.up = up;
                }
                Err(e) => {
                    warn!(port = %p.name, kernel = %k.config.name, up, "cannot set the kernel interface's link: {e}")
                }
            }
        }
    }

    /// Takes what the workers traced; disarms them when the trace ends, and forgets a
    /// finished trace once handed over (or unclaimed for long).
    fn drain_trace(&mut self) {
        let now = std::time::Instant::now();
        let Some(mut session) = self.trace.take() else { return };
        if session.drain(now, &|p| self.port_name(p)) {
            for w in &self.workers {
                // A full mailbox (a stuck worker) keeps tracing until `max`: bounded anyway.
                let _ = w.mailbox.try_send(CoreMsg::TraceDisarm(session.id));
            }
        }
        if !session.finished(now) {
            self.trace = Some(session);
        }
    }

    /// `fvs trace`: arms every worker, unless a trace is running.
    fn trace_start(&mut self, spec: &TraceSpec, count: u32, timeout_s: u32) -> Response {
        let now = std::time::Instant::now();
        if let Some(t) = self.trace.as_ref().filter(|t| t.running()) {
            return Response::err(format!(
                "trace {} is running (it ends within {} s); one trace at a time",
                t.id,
                t.remaining_s(now) + 1
            ));
        }
        let id = self.trace_ids + 1;
        let (session, arms) = match TraceSession::start(id, spec, count, timeout_s, self.workers.len(), now) {
            Ok(s) => s,
            Err(e) => return Response::err(e),
        };
        for (core, (w, arm)) in self.workers.iter().zip(arms).enumerate() {
            if w.mailbox.send_timeout(CoreMsg::TraceArm(arm), DUMP_TIMEOUT).is_err() {
                for w in &self.workers {
                    let _ = w.mailbox.try_send(CoreMsg::TraceDisarm(id));
                }
                return Response::err(format!("worker {core} (lcore {}) did not take the trace", w.lcore));
            }
        }
        self.trace_ids = id;
        self.trace = Some(session);
        Response::ok(&TraceStarted { id, cores: self.workers.len() as u32 })
    }

    fn trace_poll(&mut self, id: u64) -> Response {
        self.drain_trace();
        match self.trace.as_mut().filter(|t| t.id == id) {
            Some(t) => Response::ok(&t.poll()),
            None => Response::err(format!("no trace {id} (finished and handed over, or never started)")),
        }
    }

    /// Hands what one core learned to the others.
    fn relay_events(&mut self) {
        while let Ok(CoreEvent::NeighLearned { core, neigh }) = self.events.try_recv() {
            for (i, w) in self.workers.iter().enumerate() {
                if i as u32 != core {
                    let _ = w.mailbox.try_send(CoreMsg::NeighLearned(neigh));
                }
            }
        }
    }

    /// A change goes to the control state as one transaction and what it built is
    /// published; reads that need the workers or the ports are answered here.
    fn handle(&mut self, request: Request) -> Response {
        match self.state.handle(request) {
            Outcome::Done { response, publish, kernel } => {
                if let Some(snapshot) = publish {
                    self.publish(*snapshot);
                    self.sync_health();
                    // After the workers have the change: a VIP is announced once it is served.
                    if let Some(routes) = &mut self.kernel_routes {
                        if let Err(e) = sync_routes(routes, &self.state.announced_vips()) {
                            warn!(error = %e, "announce: the kernel routes lag the services");
                        }
                    }
                }
                let Some(rtnl) = self.rtnl.as_mut().filter(|_| !kernel.is_empty()) else { return response };
                let failures = apply_kernel_addrs(rtnl, &self.ports, &kernel);
                if failures.is_empty() {
                    return response;
                }
                // ferrovs made the change; saying so in an error makes sure a script notices
                // that the kernel interface did not follow.
                Response::err(format!(
                    "ferrovs made the change, but the kernel interface did not follow: {}",
                    failures.join("; ")
                ))
            }
            Outcome::Refused(message) => Response::err(message),
            Outcome::NotMine(Request::TraceStart { filter, count, timeout_s }) => {
                self.trace_start(&filter, count, timeout_s)
            }
            Outcome::NotMine(Request::TracePoll { id }) => self.trace_poll(id),
            Outcome::NotMine(read) => self.read(read),
        }
    }

    fn read(&self, request: Request) -> Response {
        let config = self.state.config();
        match request {
            Request::LinkShow { stats } => Response::ok(&self.links(stats)),
            Request::RouteShow => Response::ok(&self.route_infos()),
            Request::NeighShow => self.neighbours(),
            Request::Stats => Response::ok(&self.stats()),
            Request::ServiceShow { stats } => Response::ok(&self.service_infos(stats)),
            Request::BackendShow => Response::ok(&self.service_infos(false)),
            Request::LaddrShow => Response::ok(&self.state.lb().laddr_infos(&config.services, &self.lb_counters())),
            Request::ConnList { filter } => self.conn_list(&filter),
            Request::SnatShow => Response::ok(&self.state.lb().snat_infos(&config.snat, &self.lb_counters())),
            // The control state answers every other request itself.
            other => Response::err(format!("internal error: the daemon has no answer to {other:?}")),
        }
    }

    /// `service show`: the services with their counters and each backend's health.
    fn service_infos(&self, stats: bool) -> Vec<crate::proto::ServiceInfo> {
        let mut infos = self.state.lb().service_infos(&self.state.config().services, &self.lb_counters(), stats);
        let now = std::time::Instant::now();
        for s in &mut infos {
            let key = config::ServiceKey { protocol: s.protocol, vip: s.vip, port: s.port };
            for b in &mut s.backends {
                b.health = self.health.info(&(key, b.addr, b.port), now);
            }
        }
        infos
    }

    /// Watches the backends the running services name, and runs their active checks.
    fn sync_health(&mut self) {
        let targets = health::targets(&self.state.config().services);
        let released = self.health.sync(&targets, std::time::Instant::now());
        if let Some(r) = &self.runner {
            r.set_checks(self.health.checks());
        }
        self.apply_health(released);
    }

    /// Probe reports, passive samples and ended backoffs; their verdict changes applied.
    fn health_step(&mut self, passive_sampled: &mut std::time::Instant) {
        let now = std::time::Instant::now();
        let mut changes = Vec::new();
        if let Some(r) = &self.runner {
            while let Ok(report) = r.reports.try_recv() {
                changes.extend(self.health.probe(report, now));
            }
        }
        if self.health.has_passive() && now.duration_since(*passive_sampled) >= PASSIVE_SAMPLE_INTERVAL {
            *passive_sampled = now;
            let cores = self.lb_counters();
            for id in self.health.passive_ids() {
                let total = self.state.lb().syn_failures(id, &cores);
                changes.extend(self.health.passive_sample(id, total, now));
            }
            changes.extend(self.health.tick(now));
        }
        self.apply_health(changes);
    }

    /// Logs each verdict change once and publishes them all as one snapshot.
    fn apply_health(&mut self, changes: Vec<Transition>) {
        if changes.is_empty() {
            return;
        }
        for t in &changes {
            let backend = std::net::SocketAddr::new(t.id.1, t.id.2);
            let service = t.id.0;
            if t.down {
                info!(%service, %backend, reason = %t.reason, "backend down");
            } else {
                info!(%service, %backend, reason = %t.reason, "backend up");
            }
        }
        let verdicts: Vec<_> = changes.iter().map(|t| (t.id, t.down)).collect();
        if let Outcome::Done { publish: Some(snapshot), .. } = self.state.set_health(&verdicts) {
            self.publish(*snapshot);
            if let Some(routes) = &mut self.kernel_routes {
                if let Err(e) = sync_routes(routes, &self.state.announced_vips()) {
                    warn!(error = %e, "announce: the kernel routes lag the services");
                }
            }
        }
    }

    fn lb_counters(&self) -> Vec<Arc<LbCounters>> {
        self.workers.iter().map(|w| w.lb_counters.clone()).collect()
    }

    /// `conn list`: asks every worker for its matching connections.
    fn conn_list(&self, filter: &ConnFilter) -> Response {
        let limit = filter.limit.unwrap_or(1000) as usize;
        let query = ConnQuery {
            service: filter.service.map(|k| (k.vip, k.port, k.protocol.ip_protocol())),
            backend: filter.backend.map(|b| (b.ip(), b.port())),
            state: filter.state.clone(),
            limit,
        };
        let mut out = ConnList::default();
        for (core, w) in self.workers.iter().enumerate() {
            let (reply_tx, reply_rx) = bounded(1);
            if w.mailbox.send_timeout(CoreMsg::ConnDump(query.clone(), reply_tx), DUMP_TIMEOUT).is_err() {
                return Response::err(format!("worker {core} (lcore {}) did not take the request", w.lcore));
            }
            let Ok((views, views6, matched)) = reply_rx.recv_timeout(DUMP_TIMEOUT) else {
                return Response::err(format!(
                    "worker {core} (lcore {}) did not answer within {DUMP_TIMEOUT:?}",
                    w.lcore
                ));
            };
            out.matched += matched;
            let protocol = |p| if p == IpProtocol::TCP { Protocol::Tcp } else { Protocol::Udp };
            // Both families as (protocol, mode, state, client, vip, local, backend, expiry).
            let v4 = views.iter().map(|v| {
                let (c, sock) = (&v.conn, |a, p| std::net::SocketAddr::new(std::net::IpAddr::V4(a), p));
                let local = (c.laddr_slot != u16::MAX).then(|| sock(c.laddr, c.lport));
                (
                    c.proto,
                    conn_mode(c.flags),
                    c.state_name(),
                    sock(c.client, c.cport),
                    sock(c.vip, c.vport),
                    local,
                    sock(c.backend, c.bport),
                    v.expires_ms,
                )
            });
            let v6 = views6.iter().map(|v| {
                // NAT64's local address and backend are IPv4, held IPv4-mapped: shown as IPv4.
                let c = &v.conn;
                let sock =
                    |a: std::net::Ipv6Addr, p| std::net::SocketAddr::new(std::net::IpAddr::V6(a).to_canonical(), p);
                let local = (c.laddr_slot != u16::MAX).then(|| sock(c.laddr, c.lport));
                let mode = if c.nat64().is_some() { ConnMode::Nat64 } else { conn_mode(c.flags) };
                (
                    c.proto,
                    mode,
                    c.state_name(),
                    sock(c.client, c.cport),
                    sock(c.vip, c.vport),
                    local,
                    sock(c.backend, c.bport),
                    v.expires_ms,
                )
            });
            for (proto, mode, state, client, vip, local, backend, expires_ms) in v4.chain(v6) {
                out.conns.push(ConnInfo {
                    core: core as u32,
                    protocol: protocol(proto),
                    mode,
                    client,
                    // A SNAT connection has no service: its `vip` is the remote server.
                    virtual_addr: (mode != ConnMode::Snat).then_some(vip),
                    local,
                    backend,
                    state: state.to_string(),
                    expires_ms,
                });
            }
        }
        out.conns.sort_by_key(|c| (c.virtual_addr, c.client, c.core));
        out.conns.truncate(limit);
        Response::ok(&out)
    }

    /// Hands the workers a new snapshot and records how long it took to reach them all.
    fn publish(&mut self, snapshot: Snapshot) {
        let generation = self.publisher.publish(snapshot);
        let visible = self.publisher.wait_visible(generation, VISIBLE_TIMEOUT);
        self.publish_stats.record(visible);
        match visible {
            Some(took) => info!(generation, micros = took.as_micros() as u64, "config visible on all workers"),
            None => warn!(generation, "config not yet visible on every worker after {VISIBLE_TIMEOUT:?}"),
        }
    }

    fn links(&self, with_stats: bool) -> Vec<LinkInfo> {
        self.ports
            .iter()
            .map(|p| {
                let link = p.port.link();
                LinkInfo {
                    port_id: p.port.id(),
                    name: p.name.clone(),
                    device: p.device.clone(),
                    driver: p.driver.clone(),
                    mac: p.mac,
                    mtu: p.mtu,
                    link_up: link.up,
                    speed_mbps: link.speed_mbps,
                    rx_queues: p.setup.rx_queues,
                    tx_queues: p.setup.tx_queues,
                    rss: p.setup.rss,
                    numa_socket: p.socket,
                    steering: p.steering.name().into(),
                    steering_detail: p.steering_detail.clone(),
                    stats: with_stats.then(|| p.port.stats()),
                    kernel: p.kernel.as_ref().map(|k| KernelLinkInfo {
                        name: k.config.name.clone(),
                        device: k.config.device.as_str().into(),
                        port_id: k.port.id(),
                        link_up: k.up,
                        rate_pps: k.config.rate_pps,
                        burst: k.config.burst,
                        stats: with_stats.then(|| self.kernel_stats(p.port.id())),
                    }),
                }
            })
            .collect()
    }

    /// A port's exception-path counters, summed over the workers.
    fn kernel_stats(&self, port: u16) -> KernelStats {
        let mut sum = KernelStats::default();
        for c in self.workers.iter().filter_map(|w| w.counters.kernel(port)) {
            sum.to_kernel += c.to_kernel.get();
            sum.from_kernel += c.from_kernel.get();
            sum.rate_limited += c.rate_limited.get();
        }
        sum
    }

    fn port_name(&self, id: u16) -> String {
        self.ports.iter().find(|p| p.port.id() == id).map(|p| p.name.clone()).unwrap_or_else(|| format!("port{id}"))
    }

    fn route_infos(&self) -> Vec<RouteInfo> {
        self.publisher
            .current()
            .routes
            .routes()
            .into_iter()
            .map(|r| RouteInfo {
                prefix: r.prefix,
                via: r.via,
                port: self.port_name(r.port),
                origin: match r.origin {
                    RouteOrigin::Connected => "connected".into(),
                    RouteOrigin::Static => "static".into(),
                },
            })
            .collect()
    }

    fn neighbours(&self) -> Response {
        let mut out = Vec::new();
        for (core, w) in self.workers.iter().enumerate() {
            let (reply_tx, reply_rx) = bounded(1);
            if w.mailbox.send_timeout(CoreMsg::NeighDump(reply_tx), DUMP_TIMEOUT).is_err() {
                return Response::err(format!("worker {core} (lcore {}) did not take the request", w.lcore));
            }
            let Ok(entries) = reply_rx.recv_timeout(DUMP_TIMEOUT) else {
                return Response::err(format!(
                    "worker {core} (lcore {}) did not answer within {DUMP_TIMEOUT:?}",
                    w.lcore
                ));
            };
            out.extend(entries.into_iter().map(|n| NeighInfo {
                core: core as u32,
                port: self.port_name(n.port),
                addr: n.ip,
                mac: n.mac,
                state: n.state.as_str().to_string(),
                age_ms: n.age_ms,
                queued: n.queued,
            }));
        }
        out.sort_by_key(|n| (n.addr, n.core));
        Response::ok(&out)
    }

    fn stats(&self) -> StatsInfo {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        let cores = self
            .workers
            .iter()
            .enumerate()
            .map(|(core, w)| {
                let counters: BTreeMap<String, u64> = w.counters.snapshot().into_iter().collect();
                for (name, value) in &counters {
                    *total.entry(name.clone()).or_default() += value;
                }
                CoreStats { core: core as u32, lcore: w.lcore, counters }
            })
            .collect();
        StatsInfo { cores, total, config: Some(self.publish_stats.clone()) }
    }
}

/// Makes `port`'s kernel interface: the DPDK device (one queue pair per worker), then its
/// MTU and link state through rtnetlink. Its addresses come with the control state's.
fn start_kernel_interface(
    k: &KernelConfig,
    port: &PortRuntime,
    queues: u16,
    rx_pools: &[&Mempool],
    rtnl: &mut Rtnl,
) -> Result<KernelRuntime, String> {
    let vdev = k.vdev(&port.name, port.mac, queues);
    let vdev_name = vdev.split(',').next().unwrap_or_default().to_string();
    let kport = Port::create_vdev(&vdev).map_err(|e| {
        let hint = match k.device {
            config::KernelDevice::Tap => "is /dev/net/tun there, and is the name free?",
            config::KernelDevice::VirtioUser => {
                "is the vhost_net module loaded (/dev/vhost-net), and is the name free?"
            }
        };
        format!("{vdev}: {e} ({hint})")
    })?;
    let conf = PortConf {
        rx_queues: queues,
        tx_queues: queues,
        rx_descriptors: VIRTIO_USER_QUEUE_SIZE,
        tx_descriptors: VIRTIO_USER_QUEUE_SIZE,
        mtu: port.mtu,
        promiscuous: false,
    };
    let fail = |e: String| {
        kport.close();
        Port::remove_vdev(&vdev_name);
        e
    };
    kport.configure(&conf, &rx_pools[..usize::from(queues)]).map_err(fail)?;
    kport.start(false).map_err(|e| fail(e.to_string()))?;
    let index = Rtnl::index(&k.name).map_err(|e| fail(format!("no netdev of that name after it was made: {e}")))?;
    rtnl.set_mtu(index, u32::from(port.mtu)).map_err(|e| fail(format!("set mtu {}: {e}", port.mtu)))?;
    let up = port.port.link().up;
    rtnl.set_up(index, up).map_err(|e| fail(format!("set link {}: {e}", if up { "up" } else { "down" })))?;
    Ok(KernelRuntime { config: k.clone(), vdev_name, port: kport, index, up })
}

/// Applies address changes to the kernel interfaces. Returns what failed, each naming the
/// interface and the change, after logging it; the other changes are made all the same.
fn apply_kernel_addrs(rtnl: &mut Rtnl, ports: &[PortRuntime], changes: &[KernelAddrChange]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in changes {
        let Some(k) = ports.iter().find(|p| p.name == c.port).and_then(|p| p.kernel.as_ref()) else { continue };
        let result = if c.add { rtnl.add_addr(k.index, c.addr) } else { rtnl.del_addr(k.index, c.addr) };
        let what = format!("addr {} {} dev {}", if c.add { "add" } else { "del" }, c.addr, k.config.name);
        match result {
            Ok(()) => info!(port = %c.port, "kernel interface: {what}"),
            Err(e) => {
                warn!(port = %c.port, "kernel interface: {what} failed: {e}");
                failures.push(format!("{what}: {e}"));
            }
        }
    }
    failures
}

/// What `conn list` calls a connection's forwarding, from its flags (SNAT ones have FULLNAT
/// set too).
fn conn_mode(flags: ConnFlags) -> ConnMode {
    if flags.contains(ConnFlags::SNAT) {
        ConnMode::Snat
    } else if flags.contains(ConnFlags::FULLNAT) {
        ConnMode::Fullnat
    } else if flags.contains(ConnFlags::DR) {
        ConnMode::Dr
    } else if flags.contains(ConnFlags::TUN) {
        ConnMode::Tun
    } else {
        ConnMode::Nat
    }
}

/// Reads and validates the config file; the error names the file and field.
pub fn load_config(path: &PathBuf) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Config::from_yaml(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_args_keep_what_telemetry_and_pdump_need() {
        let yaml = |eal: &str| format!("eal: {{ {eal} }}\nports: [ {{ name: dp0, device: net_null0 }} ]\n");
        let plain = eal_args(&Config::from_yaml(&yaml("hugepages: true"), "t.yaml").unwrap());
        assert!(plain.iter().any(|a| a == "--in-memory") && plain.iter().any(|a| a == "--no-telemetry"));
        let tools =
            eal_args(&Config::from_yaml(&yaml("hugepages: true, telemetry: true, pdump: true"), "t.yaml").unwrap());
        assert!(!tools.iter().any(|a| a == "--in-memory" || a == "--no-telemetry" || a == "--no-shconf"), "{tools:?}");
        assert!(tools.windows(2).any(|w| w[0] == "--file-prefix" && w[1] == "ferrovs"), "{tools:?}");
    }

    #[test]
    fn conn_modes_from_flags() {
        assert_eq!(conn_mode(ConnFlags::empty()), ConnMode::Nat);
        assert_eq!(conn_mode(ConnFlags::FULLNAT | ConnFlags::REPLIED), ConnMode::Fullnat);
        assert_eq!(conn_mode(ConnFlags::SNAT | ConnFlags::FULLNAT), ConnMode::Snat);
        assert_eq!(conn_mode(ConnFlags::DR), ConnMode::Dr);
        assert_eq!(conn_mode(ConnFlags::TUN | ConnFlags::RESET), ConnMode::Tun);
    }
}
