#!/usr/bin/env python3
"""Prepares a bare-metal box for the ferrovs config given: hugepages per NUMA node (now and at
boot), the PCI NICs on vfio-pci, IRQs off the worker cores, and the kernel command line to
add. scripts/bootstrap.sh runs this; see its header and README "Bare metal" for what it does.

Every change goes through Changes, which prints it, and (unless --dry-run) makes it and
records the previous value in the state file so --undo can put it back.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    sys.exit("bootstrap: python3-yaml is missing (apt-get install python3-yaml, or run scripts/setup.sh)")

MIB = 1 << 20
# One mbuf in ferrovs' pools: 2176 bytes of data room (2048 + 128 headroom,
# RTE_MBUF_DEFAULT_BUF_SIZE) + 128 for struct rte_mbuf + 128 for the mempool's object header
# and its channel-spreading padding.
MBUF_BYTES = 2176 + 128 + 128
# Per node with workers or ports: NIC descriptor rings, hand-off rings, the EAL's own heaps.
SLACK_BYTES = 256 * MIB
# Tracked connection, all included (dataplane::conn::table::bytes_per_conn); on the ordinary
# heap, not in hugepages.
CONN_BYTES = 64
PAGE_2M = 2 * MIB
PAGE_1G = 1024 * MIB
STATE = "/var/lib/ferrovs/bootstrap.state"
COMMANDS = "/var/lib/ferrovs/bootstrap.commands"
TMPFILES = "/etc/tmpfiles.d/ferrovs-hugepages.conf"


class Refused(Exception):
    """A config or box the script cannot work with; the message says what and where."""


def parse_cpulist(text):
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; '' -> []."""
    cpus = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def format_cpulist(cpus):
    """[0, 1, 2, 3, 8] -> '0-3,8'."""
    runs, cpus = [], sorted(set(cpus))
    for c in cpus:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_mask(text):
    """'ff' or '00000000,000000ff' (the kernel's cpumask form) -> CPU list."""
    value = int(text.strip().replace(",", "") or "0", 16)
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def format_mask(cpus):
    """CPU list -> the kernel's cpumask form: hex, 32-bit groups separated by commas."""
    value = sum(1 << c for c in cpus)
    groups = []
    while True:
        groups.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            break
    groups.reverse()
    return ",".join([f"{groups[0]:x}"] + [f"{g:08x}" for g in groups[1:]])


def normalise_pci(dev):
    """'3b:00.0' or '0000:3B:00.0' -> '0000:3b:00.0'; None if not a PCI address."""
    long = f"0000:{dev}" if dev.count(":") == 1 else dev
    parts = long.replace(".", ":").split(":")
    if len(parts) != 4:
        return None
    sizes = [4, 2, 2, 1]
    if all(len(p) == n and all(ch in "0123456789abcdefABCDEF" for ch in p) for p, n in zip(parts, sizes)):
        return long.lower()
    return None


class Box:
    """The machine's /sys, /proc, /etc and /var, under `root` ('' for the real ones)."""

    def __init__(self, root):
        self.root = root

    def path(self, p):
        return self.root + p

    def read(self, p):
        try:
            with open(self.path(p)) as f:
                return f.read()
        except OSError:
            return None

    def exists(self, p):
        return os.path.exists(self.path(p))

    def listdir(self, p):
        try:
            return sorted(os.listdir(self.path(p)))
        except OSError:
            return []


class Changes:
    """Prints each change; unless dry, makes it and records the value it replaced."""

    def __init__(self, box, dry):
        self.box, self.dry = box, dry
        self.state = self.load_state()
        self.recorded = {(e["kind"], e.get("path") or e.get("pci")) for e in self.state}
        self.made = 0

    def load_state(self):
        text = self.box.read(STATE)
        if not text:
            return []
        try:
            return json.loads(text)["changes"]
        except (ValueError, KeyError) as e:
            raise Refused(f"{STATE}: unreadable state file ({e}); fix or remove it")

    def save_state(self):
        if self.dry:
            return
        os.makedirs(os.path.dirname(self.box.path(STATE)), exist_ok=True)
        with open(self.box.path(STATE), "w") as f:
            json.dump({"version": 1, "changes": self.state}, f, indent=1)
            f.write("\n")

    def remember(self, entry):
        # The first run's old value is the one to restore: a re-run records nothing new for
        # a path it already changed.
        key = (entry["kind"], entry.get("path") or entry.get("pci"))
        if key not in self.recorded:
            self.recorded.add(key)
            self.state.append(entry)
            self.save_state()

    def write_value(self, path, value, why):
        """A one-line kernel setting (sysfs, procfs). Returns False when the kernel refused."""
        old = (self.box.read(path) or "").strip()
        print(f"  write {path}: {old or '(empty)'} -> {value}   ({why})")
        if self.dry:
            return True
        try:
            with open(self.box.path(path), "w") as f:
                f.write(f"{value}\n")
        except OSError as e:
            print(f"    the kernel refused: {e.strerror}")
            return False
        self.made += 1
        self.remember({"kind": "value", "path": path, "old": old})
        return True

    def write_file(self, path, content, why):
        old = self.box.read(path)
        if old == content:
            print(f"  {path} already says this ({why})")
            return
        print(f"  write {path} ({why}):")
        for line in content.splitlines():
            print(f"    | {line}")
        if self.dry:
            return
        os.makedirs(os.path.dirname(self.box.path(path)), exist_ok=True)
        with open(self.box.path(path), "w") as f:
            f.write(content)
        self.made += 1
        self.remember({"kind": "file", "path": path, "old": old})

    def run(self, argv, why):
        """A command. Under --root it is never run, only appended to the commands file."""
        line = " ".join(argv)
        print(f"  run {line}   ({why})")
        if self.dry:
            return True
        if self.box.root:
            os.makedirs(os.path.dirname(self.box.path(COMMANDS)), exist_ok=True)
            with open(self.box.path(COMMANDS), "a") as f:
                f.write(line + "\n")
            return True
        done = subprocess.run(argv)
        if done.returncode != 0:
            print(f"    failed with exit code {done.returncode}")
        return done.returncode == 0

    def bind(self, pci, old_driver):
        """Returns False when the NIC did not end up on vfio-pci."""
        argv = [devbind(self.box), "-b", "vfio-pci", pci]
        if not self.run(argv, f"was {old_driver or 'unbound'}"):
            return False
        if self.dry:
            return True
        if not self.box.root:
            # dpdk-devbind.py skips an interface that is up with a warning and exit code 0.
            link = f"/sys/bus/pci/devices/{pci}/driver"
            now = os.path.basename(os.readlink(link)) if os.path.islink(link) else None
            if now != "vfio-pci":
                print(f"    {pci} is still on {now or 'no driver'}: dpdk-devbind.py leaves a NIC with routes"
                      " alone; take its interface down")
                return False
        self.made += 1
        self.remember({"kind": "bind", "pci": pci, "old": old_driver})
        return True


def devbind(box):
    if box.root:
        return "dpdk-devbind.py"
    found = shutil.which("dpdk-devbind.py")
    if not found:
        raise Refused("dpdk-devbind.py not found: apt-get install dpdk (it ships /usr/bin/dpdk-devbind.py)")
    return found


def load_config(path):
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}")
    except yaml.YAMLError as e:
        raise Refused(f"{path}: not YAML: {e}")
    if not isinstance(cfg, dict):
        raise Refused(f"{path}: not a ferrovs config (a mapping at the top)")

    def section(name):
        value = cfg.get(name) or {}
        if not isinstance(value, dict):
            raise Refused(f"{path}: {name}: must be a mapping")
        return value

    eal, workers, mempool, conns = section("eal"), section("workers"), section("mempool"), section("connections")

    def number(sec, name, key, default):
        value = sec.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Refused(f"{path}: {name}.{key}: {value!r} is not a non-negative integer")
        return value

    def cpus(key):
        value = workers.get(key) or []
        if not isinstance(value, list) or not all(isinstance(c, int) and c >= 0 for c in value):
            raise Refused(f"{path}: workers.{key}: must be a list of CPU numbers")
        return value

    lcores, cpu_map = cpus("lcores"), cpus("cpus")
    if cpu_map and len(cpu_map) != len(lcores):
        raise Refused(f"{path}: workers.cpus: {len(cpu_map)} CPUs for {len(lcores)} lcores")
    ports = []
    for i, port in enumerate(cfg.get("ports") or []):
        device = str((port or {}).get("device", ""))
        if device.startswith("net_"):
            continue  # a DPDK vdev: nothing to bind
        pci = normalise_pci(device)
        if pci is None:
            raise Refused(f"{path}: ports[{i}].device: '{device}' is neither a vdev (net_...) nor a PCI address")
        ports.append((str(port.get("name", f"ports[{i}]")), pci))
    return {
        "hugepages": bool(eal.get("hugepages", True)),
        "memory_mb": number(eal, "eal", "memory_mb", 512),
        "main_lcore": number(eal, "eal", "main_lcore", 0),
        "worker_cpus": cpu_map or lcores,
        "mbufs": number(mempool, "mempool", "mbufs", 8191),
        "capacity": number(conns, "connections", "capacity", 1 << 20),
        "ports": ports,
    }


def node_cpus(box):
    """{node: [cpus]} from /sys/devices/system/node; one node 0 with every online CPU on a
    kernel without NUMA."""
    nodes = {}
    for name in box.listdir("/sys/devices/system/node"):
        if name.startswith("node") and name[4:].isdigit():
            nodes[int(name[4:])] = parse_cpulist(box.read(f"/sys/devices/system/node/{name}/cpulist") or "")
    if not nodes:
        nodes[0] = parse_cpulist(box.read("/sys/devices/system/cpu/online") or "0")
    return nodes


def hugepage_file(box, node, page_kb, numa):
    if numa:
        return f"/sys/devices/system/node/node{node}/hugepages/hugepages-{page_kb}kB/nr_hugepages"
    return f"/sys/kernel/mm/hugepages/hugepages-{page_kb}kB/nr_hugepages"


def bootstrap(box, cfg, changes):
    nodes = node_cpus(box)
    numa = box.exists("/sys/devices/system/node/node0")
    cpu_node = {c: n for n, cs in nodes.items() for c in cs}
    online = parse_cpulist(box.read("/sys/devices/system/cpu/online") or "") or sorted(cpu_node)
    cmdline = (box.read("/proc/cmdline") or "").split()
    needs_user = []  # what the user must still do, printed at the end
    boot_args = []  # the kernel command line to add

    # The NICs: where they are and what drives them.
    print("NICs:")
    nic_node = {}
    for name, pci in cfg["ports"]:
        dev = f"/sys/bus/pci/devices/{pci}"
        if not box.exists(dev):
            raise Refused(f"port {name}: no PCI device {pci} on this machine ({dev} is missing)")
        node = int((box.read(f"{dev}/numa_node") or "-1").strip())
        link = box.path(f"{dev}/driver")
        driver = os.path.basename(os.readlink(link)) if os.path.islink(link) else None
        if node < 0:
            print(f"  {name} {pci}: driver {driver or 'none'}, NUMA node unknown (firmware says -1): taken as 0")
            node = 0
        else:
            print(f"  {name} {pci}: driver {driver or 'none'}, NUMA node {node}")
        nic_node[pci] = (name, node, driver)
    if not nic_node:
        print("  no PCI ports in the config (vdevs only): nothing to bind")

    # Worker cores and their nodes.
    workers = cfg["worker_cpus"]
    for c in workers + [cfg["main_lcore"]]:
        if c not in online:
            raise Refused(f"CPU {c} (workers or eal.main_lcore) is not online here (online: {format_cpulist(online)})")
    if workers:
        worker_nodes = sorted({cpu_node.get(c, 0) for c in workers})
        print(f"worker CPUs {format_cpulist(workers)} on NUMA node(s) {', '.join(map(str, worker_nodes))}")
        for name, node, _ in nic_node.values():
            if node not in worker_nodes:
                print(f"  note: port {name} is on node {node}, which has no worker: its packets cross nodes")
    else:
        worker_nodes = sorted({n for _, n, _ in nic_node.values()}) or [cpu_node.get(cfg["main_lcore"], 0)]
        print("workers.lcores is unset: ferrovs takes every online CPU but the main lcore; hugepages are")
        print(f"  sized for node(s) {', '.join(map(str, worker_nodes))} and IRQs are left alone (set workers.lcores)")

    # Hugepages per node.
    print("hugepages:")
    if not cfg["hugepages"]:
        print("  eal.hugepages is false: ferrovs runs on ordinary memory (--no-huge); nothing to reserve")
    else:
        gig = "pdpe1gb" in (box.read("/proc/cpuinfo") or "").split()
        probe = hugepage_file(box, min(nodes), 1048576, numa)
        if gig and not box.exists(probe):
            print("  the CPU has 1 GB pages (pdpe1gb) but this kernel offers none: using 2 MB pages")
            gig = False
        page = PAGE_1G if gig else PAGE_2M
        page_kb = page // 1024
        need = {}
        for n in sorted(set(worker_nodes) | {node for _, node, _ in nic_node.values()}):
            need[n] = SLACK_BYTES + (cfg["mbufs"] * MBUF_BYTES if n in worker_nodes else 0)
        shortfall = cfg["memory_mb"] * MIB - sum(need.values())
        if shortfall > 0:  # the EAL preallocates eal.memory_mb (-m) at start
            for n in worker_nodes:
                need[n] += math.ceil(shortfall / len(worker_nodes))
        print(f"  per node: {cfg['mbufs']} mbufs x {MBUF_BYTES} B on nodes with workers + {SLACK_BYTES // MIB} MiB")
        print(f"  (rings, EAL heaps) on nodes with workers or NICs; at least eal.memory_mb = {cfg['memory_mb']} MiB")
        print(f"  in all. Page size {'1 GB (the CPU has pdpe1gb)' if gig else '2 MB (the CPU has no pdpe1gb)'}.")
        counts = {}
        for n, b in need.items():
            counts[n] = math.ceil(b / page)
            path = hugepage_file(box, n, page_kb, numa)
            have = int((box.read(path) or "0").strip() or 0)
            print(f"  node {n}: needs {math.ceil(b / MIB)} MiB = {counts[n]} page(s), has {have}")
            if have < counts[n]:
                if changes.write_value(path, counts[n], f"node {n} hugepages now") and not changes.dry:
                    got = int((box.read(path) or "0").strip() or 0)
                    if got < counts[n]:
                        print(f"    the kernel gave {got} of {counts[n]} (memory fragmented):"
                              " the boot-time setting below is reliable")
                        needs_user.append(f"reboot for node {n}'s hugepages (got {got} of {counts[n]} now)")
        if gig:
            spec = ",".join(f"{n}:{c}" for n, c in sorted(counts.items())) if numa else str(sum(counts.values()))
            boot_args += ["default_hugepagesz=1G", "hugepagesz=1G", f"hugepages={spec}"]
            print("  at boot: 1 GB pages can only be reserved reliably on the kernel command line (below)")
        else:
            lines = [f"# ferrovs: 2 MB hugepages per NUMA node at boot (scripts/bootstrap.sh; --undo removes)"]
            lines += [f"w {hugepage_file(box, n, page_kb, numa)} - - - - {c}" for n, c in sorted(counts.items())]
            changes.write_file(TMPFILES, "\n".join(lines) + "\n", "systemd-tmpfiles sets each node's count at boot")
        workers_n = len(workers) or max(1, len(online) - 1)
        print(f"  connection tables: ordinary memory, not hugepages: {workers_n} workers x {cfg['capacity']}"
              f" x {CONN_BYTES} B = {math.ceil(workers_n * cfg['capacity'] * CONN_BYTES / MIB)} MiB")

    # NIC drivers.
    if nic_node:
        print("NIC drivers:")
    iommu = bool(box.listdir("/sys/kernel/iommu_groups"))
    noiommu = (box.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode") or "").strip() == "Y"
    to_bind = []
    for pci, (name, node, driver) in nic_node.items():
        if driver == "mlx5_core":
            print(f"  {name} {pci}: mlx5 NICs stay on their kernel driver mlx5_core (bifurcated: DPDK's mlx5 PMD")
            print("    drives them through rdma-core/ibverbs, the kernel keeps the netdev); nothing to bind")
        elif driver == "vfio-pci":
            print(f"  {name} {pci}: already on vfio-pci")
        else:
            to_bind.append((pci, name, driver))
    if to_bind and not iommu and not noiommu:
        print("  no IOMMU: /sys/kernel/iommu_groups is empty, so vfio-pci cannot take the NICs. NOT binding")
        print(f"  {', '.join(f'{n} {p}' for p, n, _ in to_bind)}. Choose one, then run bootstrap again:")
        print("   - turn the IOMMU on (best): VT-d/AMD-Vi in the firmware and intel_iommu=on iommu=pt (Intel) or")
        print("     amd_iommu=on iommu=pt (AMD) on the kernel command line, reboot;")
        print("   - vfio's no-IOMMU mode: modprobe vfio enable_unsafe_noiommu_mode=1 (no DMA isolation: the")
        print("     NIC can write anywhere in memory; taints the kernel); bootstrap then binds to vfio-pci;")
        print("   - uio_pci_generic: modprobe uio_pci_generic; dpdk-devbind.py -b uio_pci_generic ADDR (no")
        print("     isolation either, and no MSI-X interrupts; enough for ferrovs, which polls).")
        needs_user.append("an IOMMU (or a no-IOMMU choice) for " + ", ".join(p for p, _, _ in to_bind))
        to_bind = []
    elif to_bind and not iommu:
        print("  no IOMMU, but vfio's unsafe no-IOMMU mode is on: binding to vfio-pci without DMA isolation")
    if to_bind:
        if not box.exists("/sys/bus/pci/drivers/vfio-pci"):
            changes.run(["modprobe", "vfio-pci"], "load the vfio-pci driver")
        for pci, name, driver in to_bind:
            print(f"  {name} {pci}: {driver or 'no driver'} -> vfio-pci (its kernel interface, if any, must be down)")
            if not changes.bind(pci, driver):
                needs_user.append(f"{name} {pci} on vfio-pci (see above)")

    # IRQs off the worker cores.
    print("IRQs:")
    if workers:
        housekeeping = [c for c in online if c not in workers]
        if not housekeeping:
            raise Refused(f"workers take every online CPU ({format_cpulist(online)}): leave one for the kernel")
        moved = 0
        for line in (box.read("/proc/interrupts") or "").splitlines():
            irq = line.split(":", 1)[0].strip()
            if not irq.isdigit():
                continue
            path = f"/proc/irq/{irq}/smp_affinity_list"
            current = box.read(path)
            if current is None:
                continue
            cpus = parse_cpulist(current)
            if not set(cpus) & set(workers):
                continue
            keep = [c for c in cpus if c not in workers] or housekeeping
            if changes.write_value(path, format_cpulist(keep), f"IRQ {irq} off the workers"):
                moved += 1
            else:
                print(f"    IRQ {irq} cannot move (a driver-managed IRQ, typically;"
                      " isolcpus=managed_irq below keeps those off the workers)")
        default = box.read("/proc/irq/default_smp_affinity")
        if default is not None and set(parse_mask(default)) & set(workers):
            changes.write_value("/proc/irq/default_smp_affinity", format_mask(housekeeping), "new IRQs")
        print(f"  {moved} IRQs {'would move' if changes.dry else 'moved'} to CPUs outside {format_cpulist(workers)}."
              " irqbalance, if it runs, honours isolcpus/nohz_full once the line below is in place.")
        wl = format_cpulist(workers)
        boot_args += [f"isolcpus=managed_irq,domain,{wl}", f"nohz_full={wl}", f"rcu_nocbs={wl}"]
    else:
        print("  workers.lcores is unset: no worker cores to keep IRQs off")

    missing = [a for a in boot_args if a not in cmdline]
    print("kernel command line:")
    if missing:
        print("  add to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot:")
        print("    " + " ".join(missing))
        needs_user.append("the kernel command line above, and a reboot")
    else:
        print("  nothing to add")
    print("left for you: " + ("; ".join(needs_user) if needs_user else "nothing"))


def undo(box, changes):
    if not changes.state:
        print(f"nothing to undo: no changes recorded in {STATE}")
        return
    print(f"undoing {len(changes.state)} recorded change(s), newest first:")
    for entry in reversed(changes.state):
        if entry["kind"] == "value":
            changes.write_value(entry["path"], entry["old"], "as before bootstrap")
        elif entry["kind"] == "file":
            if entry["old"] is None:
                print(f"  remove {entry['path']}   (bootstrap created it)")
                if not changes.dry and box.exists(entry["path"]):
                    os.remove(box.path(entry["path"]))
            else:
                changes.write_file(entry["path"], entry["old"], "as before bootstrap")
        elif entry["kind"] == "bind":
            if entry["old"]:
                changes.run([devbind(box), "-b", entry["old"], entry["pci"]], "its driver before bootstrap")
            else:
                changes.run([devbind(box), "-u", entry["pci"]], "it had no driver before bootstrap")
    if not changes.dry:
        os.remove(box.path(STATE))
        print(f"removed {STATE}")
    print("kernel command-line arguments bootstrap printed are yours to remove from /etc/default/grub")


def main():
    parser = argparse.ArgumentParser(
        prog="scripts/bootstrap.sh",
        description="Prepare a bare-metal box for a ferrovs config: hugepages per NUMA node, NICs on vfio-pci, "
        "IRQs off the worker cores, the kernel command line to add.",
    )
    parser.add_argument("-c", "--config", help="the ferrovs config (YAML); not needed with --undo")
    parser.add_argument("--dry-run", action="store_true", help="print every change, make none")
    parser.add_argument("--undo", action="store_true", help=f"revert what earlier runs recorded in {STATE}")
    parser.add_argument("--root", default="", help="prefix for /sys, /proc, /etc, /var (a fake tree for tests); "
                        "commands are then written to " + COMMANDS + " under it, never run")
    args = parser.parse_args()
    if not args.undo and not args.config:
        parser.error("-c CONFIG is needed (or --undo)")
    if args.root and not args.root.strip("/"):
        parser.error("--root /: that is the real tree; leave --root out")
    box = Box(args.root.rstrip("/"))
    try:
        changes = Changes(box, args.dry_run)
        if args.dry_run:
            print("dry run: nothing is changed; these are the changes bootstrap would make")
        if args.undo:
            undo(box, changes)
        else:
            bootstrap(box, load_config(args.config), changes)
    except Refused as e:
        sys.exit(f"bootstrap: {e}")


if __name__ == "__main__":
    main()
