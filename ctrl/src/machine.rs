//! What start-up checks against the machine it runs on, apart from the EAL: the online CPUs
//! (`eal.main_lcore`, `workers.lcores`, `workers.cpus`, and the worker lcores picked when
//! `workers.lcores` is empty: on the PCI ports' NUMA nodes). The daemon runs these before starting DPDK and
//! `ferrovs --check` runs the same ones, so both refuse with the same message; the devices,
//! hugepages and memory are found by the EAL only when ferrovs starts.

use std::collections::BTreeSet;

use std::path::Path;

use crate::config::{Config, DeviceKind};

/// Where Linux lists the online CPUs.
pub const ONLINE_CPUS_PATH: &str = "/sys/devices/system/cpu/online";

/// The checks `ferrovs --check` makes on this machine, or skips with `--for-other-machine`.
pub const MACHINE_CHECKS: &str =
    "online CPUs for eal.main_lcore, workers.lcores and workers.cpus (and the lcores picked when workers.lcores is empty)";

/// Most workers picked when `workers.lcores` is empty.
const MAX_AUTO_WORKERS: usize = 128;

/// Parses a Linux CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(list: &str) -> Option<BTreeSet<u32>> {
    let mut cpus = BTreeSet::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.trim().parse::<u32>().ok()?..=hi.trim().parse::<u32>().ok()?);
    }
    Some(cpus)
}

/// Reads this machine's online CPU list (its text, as Linux gives it).
pub fn read_online_cpus() -> std::io::Result<String> {
    std::fs::read_to_string(ONLINE_CPUS_PATH)
}

/// Fills `workers.lcores` when it is empty (every online CPU but the main lcore) and checks
/// that every lcore is an online CPU, before the EAL buries the reason in its usage text.
/// `online` is the online CPU list as read from [`ONLINE_CPUS_PATH`]. Returns whether the
/// lcores were picked here.
pub fn resolve_lcores(config: &mut Config, online: std::io::Result<String>) -> Result<bool, String> {
    resolve_lcores_under(config, online, Path::new("/"))
}

/// [`resolve_lcores`] with the NUMA facts (the PCI ports' `numa_node`, each node's
/// `cpulist`) read under `root` (a fake tree for `ferrovs --doctor --root` and tests): picked
/// lcores are the online CPUs of the PCI ports' nodes, so that no worker polls a NIC across
/// nodes; every online CPU when the ports are vdevs, their node is unknown or has no CPU to
/// spare.
pub fn resolve_lcores_under(config: &mut Config, online: std::io::Result<String>, root: &Path) -> Result<bool, String> {
    let auto = config.workers.lcores.is_empty();
    if auto {
        let text = online
            .as_ref()
            .map_err(|e| format!("workers.lcores not set and {ONLINE_CPUS_PATH} unreadable ({e}): list the lcores"))?;
        let cpus = parse_cpu_list(text)
            .ok_or_else(|| format!("cannot read the online CPU list '{}': set workers.lcores", text.trim()))?;
        let main = config.eal.main_lcore;
        let local = nic_node_cpus(config, root);
        let spare = |c: &u32| *c != main && (local.is_empty() || local.contains(c));
        let pick = if cpus.iter().any(spare) { cpus.iter().copied().filter(spare).collect() } else { cpus.clone() };
        config.workers.lcores = pick.into_iter().filter(|&c| c != main).take(MAX_AUTO_WORKERS).collect();
        if config.workers.lcores.is_empty() {
            return Err(format!("workers.lcores: no online CPU besides eal.main_lcore {main} to run a worker"));
        }
    }
    // Without a readable list the EAL is left to judge, as it would be anyway.
    let Ok(online_text) = online else { return Ok(auto) };
    let Some(online) = parse_cpu_list(&online_text) else { return Ok(auto) };
    let w = &config.workers;
    let cpus = if w.cpus.is_empty() { (&w.lcores, "workers.lcores") } else { (&w.cpus, "workers.cpus") };
    let wanted = std::iter::once(("eal.main_lcore", config.eal.main_lcore)).chain(cpus.0.iter().map(|l| (cpus.1, *l)));
    for (field, lcore) in wanted {
        if !online.contains(&lcore) {
            return Err(format!(
                "{field}: {lcore} is not an online CPU of this machine (online: {})",
                online_text.trim()
            ));
        }
    }
    Ok(auto)
}

/// The CPUs of the NUMA nodes that hold the config's PCI ports (empty when none is known).
fn nic_node_cpus(config: &Config, root: &Path) -> BTreeSet<u32> {
    let read = |p: String| std::fs::read_to_string(root.join(p)).ok();
    let mut cpus = BTreeSet::new();
    for port in &config.ports {
        let DeviceKind::Pci(addr) = port.device_kind() else { continue };
        let node = read(format!("sys/bus/pci/devices/{addr}/numa_node")).and_then(|n| n.trim().parse::<u32>().ok());
        if let Some(node) = node {
            let list = read(format!("sys/devices/system/node/node{node}/cpulist")).unwrap_or_default();
            cpus.extend(parse_cpu_list(&list).unwrap_or_default());
        }
    }
    cpus
}

/// Workers that poll a port on another NUMA node: each crossing costs a remote memory access
/// per packet (descriptors, mbufs, the NIC's doorbells). `ports`: (name, NUMA node; negative
/// when unknown, as for virtual devices); `workers`: (lcore, node). One line per port, naming
/// the remote workers and where the port is.
pub fn remote_polls(ports: &[(String, i32)], workers: &[(u32, u32)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, node) in ports {
        let Ok(node) = u32::try_from(*node) else { continue };
        let remote: Vec<String> =
            workers.iter().filter(|(_, n)| *n != node).map(|(l, n)| format!("{l} (node {n})")).collect();
        if !remote.is_empty() {
            lines.push(format!(
                "port {name} is on NUMA node {node} but worker lcore(s) {} poll it from another node: \
                 put workers.lcores on node {node} (ferrovs --doctor lists its CPUs)",
                remote.join(", ")
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(workers: &str) -> Config {
        let yaml = format!(
            "eal: {{ hugepages: false }}\nworkers: {workers}\nports:\n  - {{ name: dp0, device: net_null0 }}\n"
        );
        Config::from_yaml(&yaml, "t.yaml").unwrap()
    }

    fn online(text: &str) -> std::io::Result<String> {
        Ok(text.to_string())
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some([0, 1].into()));
        assert_eq!(parse_cpu_list("0,2-4,7"), Some([0, 2, 3, 4, 7].into()));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn lcores_must_be_online_cpus() {
        let mut c = config("{ lcores: [999] }");
        assert_eq!(
            resolve_lcores(&mut c, online("0-1\n")),
            Err("workers.lcores: 999 is not an online CPU of this machine (online: 0-1)".into())
        );
        let mut c = config("{ lcores: [1], cpus: [5] }");
        assert_eq!(
            resolve_lcores(&mut c, online("0-3")),
            Err("workers.cpus: 5 is not an online CPU of this machine (online: 0-3)".into())
        );
        let mut c = config("{ lcores: [1] }");
        assert_eq!(resolve_lcores(&mut c, online("0-1")), Ok(false));
        assert_eq!(c.workers.lcores, [1]);
        // Unreadable: left to the EAL.
        let mut c = config("{ lcores: [999] }");
        assert_eq!(resolve_lcores(&mut c, Err(std::io::Error::other("gone"))), Ok(false));
    }

    #[test]
    fn workers_on_another_node_than_a_port_are_named() {
        let ports = [("outside".to_string(), 1), ("vdev".to_string(), -1)];
        assert_eq!(remote_polls(&ports, &[(4, 1), (5, 1)]), Vec::<String>::new());
        let lines = remote_polls(&ports, &[(1, 0), (4, 1)]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("port outside is on NUMA node 1 but worker lcore(s) 1 (node 0) poll it"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn empty_lcores_are_picked_on_the_nics_numa_node() {
        let root = std::env::temp_dir().join(format!("ferrovs-machine-numa-{}", std::process::id()));
        let write = |p: &str, text: &str| {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        write("sys/devices/system/node/node0/cpulist", "0-3\n");
        write("sys/devices/system/node/node1/cpulist", "4-7\n");
        write("sys/bus/pci/devices/0000:3b:00.0/numa_node", "1\n");
        let pci = |lcores: &str| {
            let yaml = format!(
                "eal: {{ hugepages: false, main_lcore: 4 }}\nworkers: {lcores}\nports:\n  - {{ name: p0, device: \"3b:00.0\" }}\n"
            );
            Config::from_yaml(&yaml, "t.yaml").unwrap()
        };
        let mut c = pci("{}");
        assert_eq!(resolve_lcores_under(&mut c, online("0-7"), &root), Ok(true));
        assert_eq!(c.workers.lcores, [5, 6, 7], "node 1's CPUs but the main lcore");
        // Node 1 offline but for the main lcore: every online CPU.
        let mut c = pci("{}");
        assert_eq!(resolve_lcores_under(&mut c, online("0-4"), &root), Ok(true));
        assert_eq!(c.workers.lcores, [0, 1, 2, 3]);
        // Unknown node (-1): every online CPU.
        write("sys/bus/pci/devices/0000:3b:00.0/numa_node", "-1\n");
        let mut c = pci("{}");
        assert_eq!(resolve_lcores_under(&mut c, online("0-7"), &root), Ok(true));
        assert_eq!(c.workers.lcores, [0, 1, 2, 3, 5, 6, 7]);
        // Set lcores are left as they are.
        let mut c = pci("{ lcores: [1] }");
        assert_eq!(resolve_lcores_under(&mut c, online("0-7"), &root), Ok(false));
        assert_eq!(c.workers.lcores, [1]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn empty_lcores_take_every_online_cpu_but_the_main_one() {
        let mut c = config("{}");
        assert_eq!(resolve_lcores(&mut c, online("0-2,5")), Ok(true));
        assert_eq!(c.workers.lcores, [1, 2, 5]);
        let mut c = config("{}");
        assert_eq!(
            resolve_lcores(&mut c, online("0")),
            Err("workers.lcores: no online CPU besides eal.main_lcore 0 to run a worker".into())
        );
        let mut c = config("{}");
        let e = resolve_lcores(&mut c, Err(std::io::Error::other("gone"))).unwrap_err();
        assert!(e.starts_with("workers.lcores not set and /sys/devices/system/cpu/online unreadable"), "{e}");
    }
}
