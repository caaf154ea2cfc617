"""Builds a fake /sys and /proc for scripts/bootstrap.sh --root: two NUMA nodes of four CPUs
each, three NICs (ice and mlx5_core on node 1, i40e on node 0), a few IRQs, and an IOMMU or
none, a CPU with 1 GB pages or without."""

import os

NICS = {  # PCI address: (driver, NUMA node)
    "0000:3b:00.0": ("ice", 1),
    "0000:5e:00.0": ("mlx5_core", 1),
    "0000:af:00.0": ("i40e", 0),
}
# IRQ: its affinity list before bootstrap.
IRQS = {"0": "0", "24": "0-7", "25": "5", "120": "4-7", "121": "1", "122": "6"}


def write(root, path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def build(root, gig_pages=True, iommu=True, noiommu_mode=False):
    write(root, "/sys/devices/system/cpu/online", "0-7\n")
    for node, cpus in ((0, "0-3"), (1, "4-7")):
        write(root, f"/sys/devices/system/node/node{node}/cpulist", cpus + "\n")
        for size in ("2048kB", "1048576kB"):
            write(root, f"/sys/devices/system/node/node{node}/hugepages/hugepages-{size}/nr_hugepages", "0\n")
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge sse sse2 ht syscall nx"
    if gig_pages:
        flags += " pdpe1gb"
    flags += " rdtscp lm constant_tsc"
    write(root, "/proc/cpuinfo", "".join(f"processor\t: {c}\nflags\t\t: {flags}\n\n" for c in range(8)))
    write(root, "/proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro quiet\n")
    for driver in {d for d, _ in NICS.values()}:
        os.makedirs(os.path.join(root, f"sys/bus/pci/drivers/{driver}"), exist_ok=True)
    for pci, (driver, node) in NICS.items():
        write(root, f"/sys/bus/pci/devices/{pci}/numa_node", f"{node}\n")
        os.symlink(f"../../drivers/{driver}", os.path.join(root, f"sys/bus/pci/devices/{pci}/driver"))
    os.makedirs(os.path.join(root, "sys/kernel/iommu_groups"), exist_ok=True)
    if iommu:
        for group in ("12", "40", "41"):
            os.makedirs(os.path.join(root, f"sys/kernel/iommu_groups/{group}/devices"))
    write(root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n" if noiommu_mode else "N\n")
    cols = " ".join(f"{c:>10}" for c in range(8))
    lines = ["           " + "       ".join(f"CPU{c}" for c in range(8))]
    for irq in IRQS:
        lines.append(f"{irq:>4}: {cols}  IR-PCI-MSI 524288-edge  dev{irq}")
    lines += [" NMI: " + cols + "  Non-maskable interrupts", " LOC: " + cols + "  Local timer interrupts"]
    write(root, "/proc/interrupts", "\n".join(lines) + "\n")
    for irq, cpus in IRQS.items():
        write(root, f"/proc/irq/{irq}/smp_affinity_list", cpus + "\n")
    write(root, "/proc/irq/default_smp_affinity", "ff\n")
    write(root, "/proc/mounts", "sysfs /sys sysfs rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime 0 0\n")
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    os.makedirs(os.path.join(root, "var/lib"), exist_ok=True)


def snapshot(root):
    """Every path under root: a file's text, a link's target, or a directory."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                tree[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                tree[rel] = ("dir",)
            else:
                with open(full) as f:
                    tree[rel] = ("file", f.read())
    return tree
