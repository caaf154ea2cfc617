//! Doctor against fake sysfs/procfs trees, built like tests/bootstrap/fixture.py's: two NUMA
//! nodes of four CPUs, ice and mlx5 NICs on node 1, i40e on node 0.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use super::*;

struct Fake {
    root: PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl Fake {
    /// The fixture's box: hugepages as given per node (2 MB pages), ice on its kernel driver.
    fn new(name: &str, pages: [u64; 2]) -> Fake {
        let root = std::env::temp_dir().join(format!("ferrovs-doctor-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let f = Fake { root };
        f.write("/sys/devices/system/cpu/online", "0-7\n");
        f.write("/sys/devices/system/cpu/isolated", "\n");
        for (node, cpus) in [(0, "0-3"), (1, "4-7")] {
            f.write(&format!("/sys/devices/system/node/node{node}/cpulist"), &format!("{cpus}\n"));
            f.set_pages(node, pages[node as usize]);
            f.write(&format!("/sys/devices/system/node/node{node}/hugepages/hugepages-1048576kB/nr_hugepages"), "0\n");
        }
        for (pci, driver, node) in
            [("0000:3b:00.0", "ice", 1), ("0000:5e:00.0", "mlx5_core", 1), ("0000:af:00.0", "i40e", 0)]
        {
            f.write(&format!("/sys/bus/pci/devices/{pci}/numa_node"), &format!("{node}\n"));
            f.set_driver(pci, driver);
        }
        f.write("/sys/kernel/iommu_groups/12/devices/.keep", "");
        f.write("/sys/bus/pci/drivers/vfio-pci/.keep", "");
        f.write(
            "/proc/mounts",
            "sysfs /sys sysfs rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n",
        );
        f.write(
            "/proc/meminfo",
            "MemTotal:       65536000 kB\nMemFree:        60000000 kB\nMemAvailable:   60000000 kB\n",
        );
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    fn write(&self, p: &str, text: &str) {
        let full = self.path(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, text).unwrap();
    }
    fn remove(&self, p: &str) {
        let full = self.path(p);
        if full.is_dir() {
            fs::remove_dir_all(full).unwrap();
        } else {
            fs::remove_file(full).unwrap();
        }
    }
    fn set_pages(&self, node: u32, pages: u64) {
        let dir = format!("/sys/devices/system/node/node{node}/hugepages/hugepages-2048kB");
        self.write(&format!("{dir}/nr_hugepages"), &format!("{pages}\n"));
        self.write(&format!("{dir}/free_hugepages"), &format!("{pages}\n"));
    }
    fn set_driver(&self, pci: &str, driver: &str) {
        let link = self.path(&format!("/sys/bus/pci/devices/{pci}/driver"));
        let _ = fs::remove_file(&link);
        fs::create_dir_all(self.path(&format!("/sys/bus/pci/drivers/{driver}"))).unwrap();
        symlink(format!("../../../bus/pci/drivers/{driver}"), link).unwrap();
    }

    fn config(&self, yaml: &str) -> PathBuf {
        let path = self.root.join("ferrovs.yaml");
        fs::write(&path, yaml).unwrap();
        path
    }

    fn doctor(&self, yaml: &str) -> Report {
        let path = self.config(yaml);
        let (config, kernel) = load(&path).unwrap();
        diagnose(&Tree::new(&self.root), config, &kernel, "c.yaml")
    }
}

/// bootstrap's test config: workers 5 and 6 on node 1 with the ice and mlx5 NICs, i40e on node 0.
const APPLIANCE: &str = r#"
eal: { memory_mb: 512, main_lcore: 0 }
workers: { lcores: [5, 6] }
mempool: { mbufs: 262143 }
ports:
  - { name: a, device: "0000:3b:00.0" }
  - { name: b, device: "5e:00.0" }
  - { name: c, device: "0000:AF:00.0" }
connections: { capacity: 1048576 }
"#;

fn find<'r>(r: &'r Report, start: &str) -> &'r Finding {
    r.findings.iter().find(|f| f.text.starts_with(start)).unwrap_or_else(|| panic!("no '{start}' in\n{}", r.render()))
}

fn bound(f: &Fake) {
    f.set_driver("0000:3b:00.0", "vfio-pci");
    f.set_driver("0000:af:00.0", "vfio-pci");
}

#[test]
fn sizing_is_bootstraps_formula() {
    // Node 1: 262143 mbufs x 2432 B + 256 MiB = 905967232 B (864 MiB, 432 x 2 MB); node 0 (a
    // NIC, no worker): 256 MiB. 1120 MiB in all is more than eal.memory_mb 512.
    let f = Fake::new("sizing", [128, 432]);
    bound(&f);
    let r = f.doctor(APPLIANCE);
    assert!(r.can_start(), "{}", r.render());
    assert_eq!(
        find(&r, "hugepages node 0").text,
        "hugepages node 0: needs 256 MiB, has 256 MiB (128 x 2 MB; 256 MiB free now)"
    );
    assert_eq!(
        find(&r, "hugepages node 1").text,
        "hugepages node 1: needs 864 MiB, has 864 MiB (432 x 2 MB; 864 MiB free now)"
    );
    assert_eq!(
        find(&r, "connection tables").text,
        "connection tables: 2 workers x 1048576 x 68 B = 136 MiB of ordinary memory; 58593 MiB available"
    );
    // eal.memory_mb above the sum: the shortfall goes to the workers' node (bootstrap's 1 GB test).
    let path = f.config(&APPLIANCE.replace("memory_mb: 512", "memory_mb: 4096"));
    let (config, _) = load(&path).unwrap();
    let nodes = [0, 1].into_iter().collect();
    let s = sizing(&config, &[1].into_iter().collect(), &nodes, 2);
    assert_eq!(s.per_node, [(0, 256 * MIB), (1, 4026531840)].into_iter().collect());
}

#[test]
fn one_page_short_fails_with_the_count_to_reserve() {
    let f = Fake::new("short", [128, 431]);
    bound(&f);
    let r = f.doctor(APPLIANCE);
    assert!(!r.can_start());
    let node1 = find(&r, "hugepages node 1");
    assert_eq!(node1.level, Level::Fail);
    assert_eq!(node1.text, "hugepages node 1: needs 864 MiB, has 862 MiB (431 x 2 MB; 862 MiB free now)");
    assert_eq!(
        node1.fix,
        "scripts/bootstrap.sh -c c.yaml (or: echo 432 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages)"
    );
    assert_eq!(find(&r, "hugepages node 0").level, Level::Ok);
    assert!(r.render().ends_with("ferrovs cannot start here: 1 failure(s), 2 warning(s)\n"), "{}", r.render());
    // 1 GB pages count too.
    f.write("/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages", "1\n");
    let r = f.doctor(APPLIANCE);
    assert_eq!(find(&r, "hugepages node 1").level, Level::Ok, "{}", r.render());
    assert!(r.can_start());
}

#[test]
fn ports_drivers_and_iommu() {
    let f = Fake::new("drivers", [128, 432]);
    let r = f.doctor(APPLIANCE);
    let ice = find(&r, "port a 0000:3b:00.0");
    assert_eq!(ice.level, Level::Fail);
    assert_eq!(ice.text, "port a 0000:3b:00.0: driver ice, NUMA node 1: DPDK cannot drive it");
    assert!(ice.fix.contains("dpdk-devbind.py -b vfio-pci 0000:3b:00.0"), "{}", ice.fix);
    assert_eq!(find(&r, "port b 0000:5e:00.0").level, Level::Ok);
    assert_eq!(find(&r, "port c 0000:af:00.0").level, Level::Fail);
    assert_eq!(find(&r, "IOMMU").text, "IOMMU: on (/sys/kernel/iommu_groups has groups)");

    // Bound, but the IOMMU gone: vfio-pci cannot work.
    bound(&f);
    f.remove("/sys/kernel/iommu_groups/12");
    let r = f.doctor(APPLIANCE);
    assert_eq!(find(&r, "IOMMU").level, Level::Fail, "{}", r.render());
    assert_eq!(r.count(Level::Fail), 1);
    // vfio's no-IOMMU mode: a warning, it starts.
    f.write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    let r = f.doctor(APPLIANCE);
    assert_eq!(find(&r, "IOMMU").level, Level::Warn);
    assert!(r.can_start(), "{}", r.render());

    // A missing device; a NIC whose firmware gives no node counts as node 0.
    f.write("/sys/bus/pci/devices/0000:3b:00.0/numa_node", "-1\n");
    let r = f.doctor(&APPLIANCE.replace("5e:00.0", "0000:5e:00.1"));
    assert_eq!(
        find(&r, "port b").text,
        "port b: no PCI device 0000:5e:00.1 on this machine (/sys/bus/pci/devices/0000:5e:00.1 is missing)"
    );
    assert_eq!(
        find(&r, "port a 0000:3b:00.0").text,
        "port a 0000:3b:00.0: driver vfio-pci, NUMA node unknown (taken as 0)"
    );
}

#[test]
fn workers_numa_isolation_and_governor() {
    let f = Fake::new("workers", [512, 512]);
    bound(&f);
    let r = f.doctor(APPLIANCE);
    assert_eq!(
        find(&r, "port a 0000:3b:00.0: every").text,
        "port a 0000:3b:00.0: every worker CPU is on its NUMA node 1"
    );
    let remote = find(&r, "port c 0000:af:00.0: worker");
    assert_eq!(remote.level, Level::Warn);
    assert_eq!(remote.text, "port c 0000:af:00.0: worker CPU(s) 5-6 poll it from another NUMA node than its 0");
    assert_eq!(remote.fix, "take workers.lcores (or workers.cpus) from node 0's CPUs 0-3");
    let iso = find(&r, "worker CPU(s) 5-6: not isolated");
    assert_eq!(iso.fix, "kernel command line: isolcpus=managed_irq,domain,5-6 nohz_full=5-6 rcu_nocbs=5-6 (scripts/bootstrap.sh prints it)");
    assert_eq!(find(&r, "CPU frequency").level, Level::Info);
    assert!(r.can_start(), "warnings do not fail: {}", r.render());

    f.write("/sys/devices/system/cpu/isolated", "4-7\n");
    f.write("/sys/devices/system/cpu/cpu5/cpufreq/scaling_governor", "performance\n");
    f.write("/sys/devices/system/cpu/cpu6/cpufreq/scaling_governor", "powersave\n");
    let r = f.doctor(APPLIANCE);
    assert_eq!(find(&r, "worker CPUs 5-6").text, "worker CPUs 5-6: isolated (/sys/devices/system/cpu/isolated)");
    let gov = find(&r, "CPU frequency");
    assert_eq!(gov.level, Level::Warn);
    assert_eq!(gov.text, "CPU frequency governor not 'performance' on worker CPU(s) (6: powersave)");
    f.write("/sys/devices/system/cpu/cpu6/cpufreq/scaling_governor", "performance\n");
    assert_eq!(find(&f.doctor(APPLIANCE), "CPU frequency").level, Level::Ok);

    // Offline lcores: what a start refuses, doctor refuses with the same words.
    let r = f.doctor(&APPLIANCE.replace("[5, 6]", "[5, 9]"));
    let lc = find(&r, "worker lcores");
    assert_eq!(lc.level, Level::Fail);
    assert_eq!(lc.text, "worker lcores: workers.lcores: 9 is not an online CPU of this machine (online: 0-7)");
}

#[test]
fn vdev_ports_memory_and_hugetlbfs() {
    let f = Fake::new("vdev", [0, 0]);
    let yaml = "eal: { memory_mb: 256 }\nworkers: { lcores: [1] }\nmempool: { mbufs: 4095 }\n\
                ports:\n  - { name: dp0, device: \"net_af_packet0,iface=x\" }\n";
    let r = f.doctor(yaml);
    assert_eq!(
        find(&r, "port dp0").text,
        "port dp0: DPDK vdev net_af_packet0: no PCI device, so no driver or NUMA node to check"
    );
    assert_eq!(find(&r, "IOMMU and vfio").level, Level::Info);
    // 4095 x 2432 B + 256 MiB on node 0 (CPU 1), more than 256 MiB: 266 MiB.
    let hp = find(&r, "hugepages node 0");
    assert_eq!(hp.text, "hugepages node 0: needs 266 MiB, has 0 MiB (none reserved; 0 MiB free now)");
    assert!(r.findings.iter().all(|x| !x.text.starts_with("hugepages node 1")), "node 1 has no worker nor NIC");
    f.set_pages(0, 133);
    assert!(f.doctor(yaml).can_start());
    f.write("/proc/mounts", "sysfs /sys sysfs rw 0 0\n");
    let r = f.doctor(yaml);
    assert_eq!(find(&r, "hugetlbfs").level, Level::Fail);
    // Without hugepages the EAL runs on ordinary memory: nothing to mount or reserve.
    let r = f.doctor(&yaml.replace("memory_mb: 256", "memory_mb: 256, hugepages: false"));
    assert!(r.can_start(), "{}", r.render());
    // Connection tables over the machine's memory fail; over what is available now, warn.
    f.write("/proc/meminfo", "MemTotal:        8192000 kB\nMemAvailable:    1024000 kB\n");
    let no_huge = yaml.replace("memory_mb: 256", "memory_mb: 256, hugepages: false");
    let r = f.doctor(&format!("{no_huge}connections: {{ capacity: 268435456 }}\n"));
    let t = find(&r, "connection tables");
    assert_eq!(t.level, Level::Fail);
    assert_eq!(
        t.text,
        "connection tables: 1 workers x 268435456 x 68 B = 17408 MiB of ordinary memory; the machine has 8000 MiB"
    );
    let r = f.doctor(&format!("{no_huge}connections: {{ capacity: 33554432 }}\n"));
    let t = find(&r, "connection tables");
    assert_eq!(
        (t.level, t.text.as_str()),
        (
            Level::Warn,
            "connection tables: 1 workers x 33554432 x 68 B = 2176 MiB of ordinary memory; 1000 MiB available now"
        )
    );
    assert!(r.can_start());
}

#[test]
fn kernel_interface_devices() {
    let f = Fake::new("kernel", [133, 0]);
    let yaml = "eal: { memory_mb: 256 }\nworkers: { lcores: [1] }\nmempool: { mbufs: 4095 }\nports:\n\
                - { name: dp0, device: \"net_af_packet0,iface=x\", kernel: { name: fvs0, device: tap, rate_pps: 1000, burst: 32 } }\n\
                - { name: dp1, device: \"net_af_packet1,iface=y\", kernel: { device: virtio_user } }\n";
    let r = f.doctor(yaml);
    let tap = find(&r, "port dp0 kernel interface");
    assert_eq!(
        (tap.level, tap.text.as_str()),
        (Level::Fail, "port dp0 kernel interface fvs0 (tap): /dev/net/tun is missing")
    );
    assert_eq!(tap.fix, "modprobe tun");
    let vu = find(&r, "port dp1 kernel interface");
    assert_eq!(vu.text, "port dp1 kernel interface dp1 (virtio_user): /dev/vhost-net is missing");
    assert_eq!(vu.fix, "modprobe vhost_net");
    f.write("/dev/net/tun", "");
    f.write("/dev/vhost-net", "");
    let r = f.doctor(yaml);
    assert!(r.can_start(), "{}", r.render());
    let r = f.doctor(&yaml.replace("device: virtio_user", "device: macvtap"));
    assert_eq!(find(&r, "port dp1 kernel interface").level, Level::Fail);
    // Other config errors are still refused, with the file named.
    let path = f.config(&yaml.replace("name: dp1", "name: Dp1"));
    let e = load(&path).unwrap_err();
    assert!(e.contains("ports[1].name"), "{e}");
}
