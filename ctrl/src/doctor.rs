//! `ferrovs --doctor`: what this machine lacks for a config, each finding with its fix, and
//! whether ferrovs can start here. Everything is read under a root directory (`/` on a real
//! box, a fake sysfs/procfs tree in tests), so it runs without DPDK and changes nothing.
//!
//! The hugepage sizing is `scripts/bootstrap.py`'s, to the byte (same constants, same
//! rounding): bootstrap reserves what doctor checks, and tests/bootstrap/test_bootstrap.py
//! compares the two on its fake trees so they cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{Config, DeviceKind};
use crate::machine;

const MIB: u64 = 1 << 20;
/// One mbuf in ferrovs' pools: 2176 bytes of data room (2048 + 128 headroom,
/// RTE_MBUF_DEFAULT_BUF_SIZE) + 128 for struct rte_mbuf + 128 for the mempool's object header
/// and its channel-spreading padding. Same as bootstrap.py's MBUF_BYTES.
pub const MBUF_BYTES: u64 = 2176 + 128 + 128;
/// Per node with workers or NICs: NIC descriptor rings, hand-off rings, the EAL's own heaps.
pub const SLACK_BYTES: u64 = 256 * MIB;
/// One tracked connection, all included (dataplane::conn::table::bytes_per_conn), on the
/// ordinary heap, not in hugepages.
pub const CONN_BYTES: u64 = 68;

/// How serious a finding is: only `Fail` stops ferrovs from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What was probed and what was found.
    pub text: String,
    /// What to do about it; empty for `Ok` and `Info`.
    pub fix: String,
}

/// Doctor's findings, in the order probed.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, level: Level, text: impl Into<String>, fix: impl Into<String>) {
        self.findings.push(Finding { level, text: text.into(), fix: fix.into() });
    }
    fn ok(&mut self, text: impl Into<String>) {
        self.push(Level::Ok, text, "");
    }
    fn info(&mut self, text: impl Into<String>) {
        self.push(Level::Info, text, "");
    }

    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// Whether ferrovs can start: no finding is a failure (warnings do not count).
    pub fn can_start(&self) -> bool {
        self.count(Level::Fail) == 0
    }

    /// One line per finding (and an indented `fix:` line), then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Info => "info",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            let _ = writeln!(out, "{tag}  {}", f.text);
            if !f.fix.is_empty() {
                let _ = writeln!(out, "      fix: {}", f.fix);
            }
        }
        let (fails, warns) = (self.count(Level::Fail), self.count(Level::Warn));
        if fails == 0 {
            let _ = writeln!(out, "ferrovs can start here ({warns} warning(s))");
        } else {
            let _ = writeln!(out, "ferrovs cannot start here: {fails} failure(s), {warns} warning(s)");
        }
        out
    }
}

/// The machine's /sys, /proc and /dev, under `root` (`/` for the real ones).
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    pub fn new(root: &Path) -> Tree {
        Tree { root: root.to_path_buf() }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }
    fn read_u64(&self, p: &str) -> Option<u64> {
        self.read(p)?.trim().parse().ok()
    }
    fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }
    fn list(&self, p: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(p))
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
    /// The last component of a symlink's target (a device's `driver` link names the driver).
    fn link_name(&self, p: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(p)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// `{node: cpus}` from /sys/devices/system/node; one node 0 with every online CPU on a
    /// kernel without NUMA (as bootstrap.py's node_cpus).
    fn node_cpus(&self) -> BTreeMap<u32, BTreeSet<u32>> {
        let mut nodes = BTreeMap::new();
        for name in self.list("/sys/devices/system/node") {
            let Some(n) = name.strip_prefix("node").and_then(|n| n.parse::<u32>().ok()) else { continue };
            let cpus = self.read(&format!("/sys/devices/system/node/{name}/cpulist")).unwrap_or_default();
            nodes.insert(n, machine::parse_cpu_list(&cpus).unwrap_or_default());
        }
        if nodes.is_empty() {
            let online = self.read(machine::ONLINE_CPUS_PATH).unwrap_or_else(|| "0".into());
            nodes.insert(0, machine::parse_cpu_list(&online).unwrap_or_default());
        }
        nodes
    }

    fn numa(&self) -> bool {
        self.exists("/sys/devices/system/node/node0")
    }

    /// Hugepages reserved (`nr_hugepages`) and free on a node, in bytes, over every page size.
    fn hugepages(&self, node: u32) -> (u64, u64, Vec<String>) {
        let dir = if self.numa() {
            format!("/sys/devices/system/node/node{node}/hugepages")
        } else {
            "/sys/kernel/mm/hugepages".to_string()
        };
        let (mut reserved, mut free, mut sizes) = (0, 0, Vec::new());
        for name in self.list(&dir) {
            let Some(kb) = name.strip_prefix("hugepages-").and_then(|s| s.strip_suffix("kB")?.parse::<u64>().ok())
            else {
                continue;
            };
            let nr = self.read_u64(&format!("{dir}/{name}/nr_hugepages")).unwrap_or(0);
            let fr = self.read_u64(&format!("{dir}/{name}/free_hugepages")).unwrap_or(nr);
            reserved += nr * kb * 1024;
            free += fr * kb * 1024;
            if nr > 0 {
                sizes.push(format!("{nr} x {}", page_name(kb * 1024)));
            }
        }
        (reserved, free, sizes)
    }
}

fn page_name(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GB", bytes >> 30)
    } else {
        format!("{} MB", bytes >> 20)
    }
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

fn cpu_list(cpus: impl IntoIterator<Item = u32>) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for c in cpus.into_iter().collect::<BTreeSet<_>>() {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == c => *hi = c,
            _ => runs.push((c, c)),
        }
    }
    let parts: Vec<String> =
        runs.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    parts.join(",")
}

/// A port's `kernel` block (a kernel interface beside the port), read leniently from the raw
/// YAML so doctor works whether or not this build's config model knows the block yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelIface {
    pub port: String,
    pub name: String,
    pub device: String,
}

/// What the config needs in hugepages, per NUMA node: bootstrap.py's formula.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// Bytes of hugepages per node.
    pub per_node: BTreeMap<u32, u64>,
    /// Nodes with worker cores (they hold an mbuf pool each).
    pub worker_nodes: BTreeSet<u32>,
    /// Connection-table bytes per worker, on the ordinary heap.
    pub conn_bytes_per_worker: u64,
    pub workers: usize,
}

/// A node with workers needs `mempool.mbufs` x [`MBUF_BYTES`]; every node with workers or
/// NICs [`SLACK_BYTES`] more; the nodes together at least `eal.memory_mb`, the shortfall going
/// to the workers' nodes in equal shares. Connection tables: `connections.capacity` x
/// [`CONN_BYTES`] per worker, not in hugepages.
pub fn sizing(config: &Config, worker_nodes: &BTreeSet<u32>, nic_nodes: &BTreeSet<u32>, workers: usize) -> Sizing {
    let mut per_node = BTreeMap::new();
    for &n in worker_nodes.union(nic_nodes) {
        let pool = if worker_nodes.contains(&n) { u64::from(config.mempool.mbufs) * MBUF_BYTES } else { 0 };
        per_node.insert(n, SLACK_BYTES + pool);
    }
    let total: u64 = per_node.values().sum();
    let wanted = u64::from(config.eal.memory_mb) * MIB;
    if wanted > total && !worker_nodes.is_empty() {
        let share = (wanted - total).div_ceil(worker_nodes.len() as u64);
        for n in worker_nodes {
            *per_node.entry(*n).or_default() += share;
        }
    }
    Sizing {
        per_node,
        worker_nodes: worker_nodes.clone(),
        conn_bytes_per_worker: u64::from(config.connections.capacity) * CONN_BYTES,
        workers,
    }
}

/// Reads the config for doctor: the validated model, and the ports' `kernel` blocks from the
/// raw YAML. A model that does not know `kernel` yet is given the file without those blocks.
pub fn load(path: &Path) -> Result<(Config, Vec<KernelIface>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let source = path.display().to_string();
    let mut raw: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| format!("{source}: not YAML: {e}"))?;
    let mut kernel = Vec::new();
    let mut stripped = false;
    if let Some(ports) = raw.get_mut("ports").and_then(|p| p.as_sequence_mut()) {
        for (i, port) in ports.iter_mut().enumerate() {
            let Some(map) = port.as_mapping_mut() else { continue };
            let name = map.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string();
            let Some(block) = map.get("kernel") else { continue };
            let field = |key: &str| block.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let device = field("device").ok_or_else(|| {
                format!("{source}: ports[{i}].kernel.device: missing or not a string (tap or virtio_user)")
            })?;
            kernel.push(KernelIface { port: name.clone(), name: field("name").unwrap_or(name), device });
            map.remove("kernel");
            stripped = true;
        }
    }
    let config = match Config::from_yaml(&text, &source) {
        Ok(c) => c,
        Err(e) if stripped && e.to_string().contains("kernel") => {
            let text = serde_norway::to_string(&raw).map_err(|e| format!("{source}: {e}"))?;
            Config::from_yaml(&text, &source).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    Ok((config, kernel))
}

/// Probes the tree for `config` (read from `config_path`, named in the fixes).
pub fn diagnose(tree: &Tree, mut config: Config, kernel: &[KernelIface], config_path: &str) -> Report {
    let mut r = Report::default();
    let nodes = tree.node_cpus();
    let cpu_node: BTreeMap<u32, u32> = nodes.iter().flat_map(|(n, cs)| cs.iter().map(move |c| (*c, *n))).collect();
    r.ok(format!("config {config_path}: valid"));

    // Worker lcores: the check a start makes, against this tree's online CPUs.
    let online = tree.read(machine::ONLINE_CPUS_PATH).ok_or_else(|| std::io::Error::other("unreadable"));
    let lcores_ok = match machine::resolve_lcores_under(&mut config, online, &tree.root) {
        Ok(auto) => {
            let how = if auto { "picked (workers.lcores unset)" } else { "from workers.lcores" };
            r.ok(format!("worker lcores {}: {how}, online", cpu_list(config.workers.lcores.iter().copied())));
            true
        }
        Err(e) => {
            r.push(
                Level::Fail,
                format!("worker lcores: {e}"),
                "set workers.lcores (and eal.main_lcore) to online CPUs",
            );
            false
        }
    };
    let w = &config.workers;
    let worker_cpus: Vec<u32> = if w.cpus.is_empty() { w.lcores.clone() } else { w.cpus.clone() };

    // Ports: PCI device, driver, NUMA node.
    let mut nic_nodes = BTreeSet::new();
    let mut pci_ports = Vec::new(); // (port, address, driver, node)
    for p in &config.ports {
        match p.device_kind() {
            DeviceKind::Vdev { name, .. } => {
                r.ok(format!("port {}: DPDK vdev {name}: no PCI device, so no driver or NUMA node to check", p.name))
            }
            DeviceKind::Pci(addr) => {
                let dev = format!("/sys/bus/pci/devices/{addr}");
                if !tree.exists(&dev) {
                    r.push(
                        Level::Fail,
                        format!("port {}: no PCI device {addr} on this machine ({dev} is missing)", p.name),
                        "correct ports[].device (lspci -D lists the NICs)",
                    );
                    continue;
                }
                let raw_node = tree.read(&format!("{dev}/numa_node")).and_then(|s| s.trim().parse::<i64>().ok());
                let node = raw_node.filter(|n| *n >= 0).unwrap_or(0) as u32;
                let node_text = if raw_node.is_some_and(|n| n >= 0) {
                    format!("NUMA node {node}")
                } else {
                    "NUMA node unknown (taken as 0)".into()
                };
                let driver = tree.link_name(&format!("{dev}/driver"));
                nic_nodes.insert(node);
                let d = driver.as_deref().unwrap_or("none");
                match d {
                    "vfio-pci" | "uio_pci_generic" | "igb_uio" => {
                        r.ok(format!("port {} {addr}: driver {d}, {node_text}", p.name))
                    }
                    "mlx5_core" => r.ok(format!(
                        "port {} {addr}: driver mlx5_core (bifurcated: DPDK's mlx5 PMD works through it and rdma-core), {node_text}",
                        p.name
                    )),
                    _ => r.push(
                        Level::Fail,
                        format!("port {} {addr}: driver {d}, {node_text}: DPDK cannot drive it", p.name),
                        format!("scripts/bootstrap.sh -c {config_path} (or: dpdk-devbind.py -b vfio-pci {addr}, its interface down)"),
                    ),
                }
                pci_ports.push((p.name.clone(), addr, d.to_string(), node));
            }
        }
    }

    // IOMMU and vfio, for the PCI ports not on mlx5_core.
    let vfio_ports: Vec<&(String, String, String, u32)> = pci_ports.iter().filter(|p| p.2 != "mlx5_core").collect();
    if vfio_ports.is_empty() {
        r.info("IOMMU and vfio: not needed (no PCI port that DPDK takes from the kernel)");
    } else {
        let iommu = !tree.list("/sys/kernel/iommu_groups").is_empty();
        let noiommu =
            tree.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").is_some_and(|s| s.trim() == "Y");
        let on_vfio = vfio_ports.iter().any(|p| p.2 == "vfio-pci");
        if iommu {
            r.ok("IOMMU: on (/sys/kernel/iommu_groups has groups)");
        } else if noiommu {
            r.push(
                Level::Warn,
                "IOMMU: none; vfio's unsafe no-IOMMU mode is on: the NICs' DMA is not isolated",
                "turn the IOMMU on (VT-d/AMD-Vi in the firmware, intel_iommu=on iommu=pt or amd_iommu=on iommu=pt)",
            );
        } else if on_vfio {
            r.push(
                Level::Fail,
                "IOMMU: none and vfio's no-IOMMU mode is off: vfio-pci cannot give DPDK the NICs",
                "intel_iommu=on iommu=pt (or amd_iommu=on iommu=pt) on the kernel command line, or modprobe vfio enable_unsafe_noiommu_mode=1",
            );
        } else {
            r.push(
                Level::Warn,
                "IOMMU: none (/sys/kernel/iommu_groups is empty): vfio-pci cannot take the NICs",
                "turn the IOMMU on (intel_iommu=on iommu=pt or amd_iommu=on iommu=pt), see scripts/bootstrap.sh",
            );
        }
        if tree.exists("/sys/bus/pci/drivers/vfio-pci") {
            r.ok("vfio-pci: loaded");
        } else {
            r.push(Level::Warn, "vfio-pci: not loaded", "modprobe vfio-pci (scripts/bootstrap.sh loads it)");
        }
    }

    // Workers on their NICs' node, isolated, at full clock.
    // Without usable lcores, size for the NICs' nodes (node 0 with none), as bootstrap does.
    let worker_nodes: BTreeSet<u32> = if worker_cpus.is_empty() || !lcores_ok {
        if nic_nodes.is_empty() {
            [0].into()
        } else {
            nic_nodes.clone()
        }
    } else {
        worker_cpus.iter().map(|c| cpu_node.get(c).copied().unwrap_or(0)).collect()
    };
    if lcores_ok {
        for (port, addr, _, node) in &pci_ports {
            let remote: Vec<u32> = worker_cpus.iter().copied().filter(|c| cpu_node.get(c) != Some(node)).collect();
            if remote.is_empty() {
                r.ok(format!("port {port} {addr}: every worker CPU is on its NUMA node {node}"));
            } else {
                let local = nodes.get(node).map(|c| cpu_list(c.iter().copied())).unwrap_or_default();
                r.push(
                    Level::Warn,
                    format!(
                        "port {port} {addr}: worker CPU(s) {} poll it from another NUMA node than its {node}",
                        cpu_list(remote)
                    ),
                    format!("take workers.lcores (or workers.cpus) from node {node}'s CPUs {local}"),
                );
            }
        }
        let wl = cpu_list(worker_cpus.iter().copied());
        let isolated = machine::parse_cpu_list(&tree.read("/sys/devices/system/cpu/isolated").unwrap_or_default())
            .unwrap_or_default();
        let shared: Vec<u32> = worker_cpus.iter().copied().filter(|c| !isolated.contains(c)).collect();
        if shared.is_empty() {
            r.ok(format!("worker CPUs {wl}: isolated (/sys/devices/system/cpu/isolated)"));
        } else {
            r.push(
                Level::Warn,
                format!("worker CPU(s) {}: not isolated, the kernel schedules other work there", cpu_list(shared)),
                format!("kernel command line: isolcpus=managed_irq,domain,{wl} nohz_full={wl} rcu_nocbs={wl} (scripts/bootstrap.sh prints it)"),
            );
        }
        let mut no_cpufreq = Vec::new();
        let mut slow = Vec::new();
        for &c in &worker_cpus {
            match tree.read(&format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")) {
                None => no_cpufreq.push(c),
                Some(g) if g.trim() != "performance" => slow.push(format!("{c}: {}", g.trim())),
                Some(_) => {}
            }
        }
        if !slow.is_empty() {
            r.push(
                Level::Warn,
                format!("CPU frequency governor not 'performance' on worker CPU(s) ({})", slow.join(", ")),
                format!(
                    "for c in {}; do echo performance > /sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor; done",
                    worker_cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
                ),
            );
        } else if !no_cpufreq.is_empty() {
            r.info(format!(
                "CPU frequency governor: no cpufreq for CPU(s) {} (a VM, or the firmware sets the clock)",
                cpu_list(no_cpufreq)
            ));
        } else {
            r.ok(format!("CPU frequency governor: performance on worker CPUs {wl}"));
        }
    }

    // Hugepages per node, and ordinary memory for the connection tables.
    let sz = sizing(&config, &worker_nodes, &nic_nodes, worker_cpus.len().max(1));
    if !config.eal.hugepages {
        r.info("hugepages: eal.hugepages is false: ferrovs runs on ordinary memory (--no-huge)");
    } else {
        let mounted = tree
            .read("/proc/mounts")
            .is_some_and(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")));
        if mounted {
            r.ok("hugetlbfs: mounted");
        } else {
            r.push(
                Level::Fail,
                "hugetlbfs: not mounted, the EAL finds no hugepages",
                "mount -t hugetlbfs nodev /dev/hugepages (scripts/setup.sh does)",
            );
        }
        r.info(format!(
            "hugepages needed: {} mbufs x {MBUF_BYTES} B on each node with workers + {} MiB (rings, EAL heaps) on each node with workers or NICs; at least eal.memory_mb = {} MiB in all",
            config.mempool.mbufs,
            SLACK_BYTES / MIB,
            config.eal.memory_mb
        ));
        for (&n, &need) in &sz.per_node {
            let (reserved, free, sizes) = tree.hugepages(n);
            let have = if sizes.is_empty() { "none reserved".to_string() } else { sizes.join(" + ") };
            let text = format!(
                "hugepages node {n}: needs {} MiB, has {} MiB ({have}; {} MiB free now)",
                mib(need),
                reserved / MIB,
                free / MIB
            );
            if reserved >= need {
                r.ok(text);
            } else {
                let file = if tree.numa() {
                    format!("/sys/devices/system/node/node{n}/hugepages/hugepages-2048kB/nr_hugepages")
                } else {
                    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages".to_string()
                };
                r.push(
                    Level::Fail,
                    text,
                    format!("scripts/bootstrap.sh -c {config_path} (or: echo {} > {file})", need.div_ceil(2 * MIB)),
                );
            }
        }
    }
    let tables = sz.conn_bytes_per_worker * sz.workers as u64;
    let meminfo = |key: &str| {
        tree.read("/proc/meminfo")?
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    let text = format!(
        "connection tables: {} workers x {} x {CONN_BYTES} B = {} MiB of ordinary memory",
        sz.workers,
        config.connections.capacity,
        mib(tables)
    );
    match (meminfo("MemTotal:"), meminfo("MemAvailable:")) {
        (Some(total), _) if tables > total * 1024 => {
            r.push(Level::Fail, format!("{text}; the machine has {} MiB", total / 1024), "lower connections.capacity")
        }
        (_, Some(avail)) if tables > avail * 1024 => r.push(
            Level::Warn,
            format!("{text}; {} MiB available now", avail / 1024),
            "free memory, or lower connections.capacity",
        ),
        (_, Some(avail)) => r.ok(format!("{text}; {} MiB available", avail / 1024)),
        _ => r.info(format!("{text}; /proc/meminfo unreadable")),
    }

    // Kernel interfaces beside the ports.
    for k in kernel {
        let (dev, module) = match k.device.as_str() {
            "tap" => ("/dev/net/tun", "tun"),
            "virtio_user" => ("/dev/vhost-net", "vhost_net"),
            other => {
                r.push(
                    Level::Fail,
                    format!(
                        "port {} kernel interface {}: device '{other}' is neither tap nor virtio_user",
                        k.port, k.name
                    ),
                    "set ports[].kernel.device to tap or virtio_user",
                );
                continue;
            }
        };
        if tree.exists(dev) {
            r.ok(format!("port {} kernel interface {} ({}): {dev} present", k.port, k.name, k.device));
        } else {
            r.push(
                Level::Fail,
                format!("port {} kernel interface {} ({}): {dev} is missing", k.port, k.name, k.device),
                format!("modprobe {module}"),
            );
        }
    }
    if kernel.is_empty() {
        r.info("kernel interfaces: no port has a kernel block");
    }

    // Routing daemons: the config has no setting for them yet, so only their presence is told.
    for (name, bins) in [
        ("bird2", ["/usr/sbin/bird", "/usr/bin/bird"]),
        ("keepalived", ["/usr/sbin/keepalived", "/usr/bin/keepalived"]),
    ] {
        let found = bins.iter().find(|b| tree.exists(b));
        r.info(format!(
            "{name}: {} (the config names no {name} setting, so it is not required)",
            found.map(|b| format!("installed ({b})")).unwrap_or_else(|| "not installed".into())
        ));
    }
    r
}

#[cfg(test)]
mod tests;
