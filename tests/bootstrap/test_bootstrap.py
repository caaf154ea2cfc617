"""scripts/bootstrap.sh against fake sysfs/procfs trees (tests/bootstrap/fixture.py): the
files it writes, its dry run, its undo, and what it says about mlx5 NICs and a missing IOMMU.
Run: python3 tests/bootstrap/test_bootstrap.py (prints "bootstrap: N passed, M failed")."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
FERROVS = os.path.join(REPO, "target", os.environ.get("FVS_PROFILE", "debug"), "ferrovs")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/bootstrap.sh")
NODE = "sys/devices/system/node/node{}/hugepages/hugepages-{}/nr_hugepages"
COMMANDS = "var/lib/ferrovs/bootstrap.commands"
STATE = "var/lib/ferrovs/bootstrap.state"

# Workers on CPUs 5 and 6 (node 1, with the ice and mlx5 NICs); the i40e NIC is on node 0.
CONFIG = """\
eal: {{ memory_mb: {memory_mb}, main_lcore: 0 }}
workers: {{ lcores: [5, 6] }}
mempool: {{ mbufs: 262143 }}
ports:
  - {{ name: a, device: "0000:3b:00.0" }}
  - {{ name: b, device: "5e:00.0" }}
  - {{ name: c, device: "0000:AF:00.0" }}
  - {{ name: v, device: "net_af_packet0,iface=eth9" }}
connections: {{ capacity: 1048576 }}
"""


class Bootstrap(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "root")

    def tearDown(self):
        self.tmp.cleanup()

    def tree(self, memory_mb=512, **kw):
        fixture.build(self.root, **kw)
        self.config = os.path.join(self.tmp.name, "ferrovs.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(memory_mb=memory_mb))

    def run_script(self, *args, ok=True):
        done = subprocess.run(["bash", SCRIPT, "--root", self.root, *args], capture_output=True, text=True)
        if ok:
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done

    def read(self, rel):
        with open(os.path.join(self.root, rel)) as f:
            return f.read()

    def exists(self, rel):
        return os.path.exists(os.path.join(self.root, rel))

    def devbind(self, done):
        """Does what the dpdk-devbind.py lines in the commands file after the first `done` ask
        (the fake tree's driver links), as the real one would; returns the lines seen."""
        lines = self.read(COMMANDS).splitlines()
        for line in lines[done:]:
            argv = line.split()
            if argv[0] == "dpdk-devbind.py" and argv[1] == "-b":
                link = os.path.join(self.root, f"sys/bus/pci/devices/{argv[3]}/driver")
                os.remove(link)
                os.symlink(f"../../drivers/{argv[2]}", link)
        return len(lines)

    def irqs(self):
        return {irq: self.read(f"proc/irq/{irq}/smp_affinity_list").strip() for irq in fixture.IRQS}

    # Node 1: 262143 mbufs x 2432 B + 256 MiB = 905967232 B = 432 x 2 MB (431 x 2 MB = 903872512
    # is short); node 0 (a NIC, no worker): 256 MiB = 128 x 2 MB. 1174402688 B in all > 512 MiB.
    def test_2mb_pages_iommu(self):
        self.tree(gig_pages=False)
        out = self.run_script("-c", self.config).stdout
        self.assertEqual(self.read(NODE.format(1, "2048kB")), "432\n")
        self.assertEqual(self.read(NODE.format(0, "2048kB")), "128\n")
        self.assertEqual(self.read(NODE.format(1, "1048576kB")), "0\n")
        self.assertEqual(self.read(NODE.format(0, "1048576kB")), "0\n")
        self.assertEqual(
            self.read("etc/tmpfiles.d/ferrovs-hugepages.conf"),
            "# ferrovs: 2 MB hugepages per NUMA node at boot (scripts/bootstrap.sh; --undo removes)\n"
            "w /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages - - - - 128\n"
            "w /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages - - - - 432\n",
        )
        # Workers 5 and 6 leave every IRQ list; an IRQ only on workers goes to the others.
        self.assertEqual(
            self.irqs(), {"0": "0", "24": "0-4,7", "25": "0-4,7", "120": "4,7", "121": "1", "122": "0-4,7"}
        )
        self.assertEqual(self.read("proc/irq/default_smp_affinity"), "9f\n")
        # ice and i40e go to vfio-pci; mlx5 stays on mlx5_core; nothing else is run.
        self.assertEqual(
            self.read(COMMANDS),
            "modprobe vfio-pci\ndpdk-devbind.py -b vfio-pci 0000:3b:00.0\ndpdk-devbind.py -b vfio-pci 0000:af:00.0\n",
        )
        self.assertIn("mlx5 NICs stay on their kernel driver mlx5_core (bifurcated", out)
        self.assertIn("b 0000:5e:00.0: driver mlx5_core, NUMA node 1", out)
        self.assertIn("    isolcpus=managed_irq,domain,5-6 nohz_full=5-6 rcu_nocbs=5-6\n", out)
        self.assertNotIn("hugepagesz", out)

    # eal.memory_mb 4096: the 3120564608 B short of it go to node 1, the workers' node:
    # 4026531840 B = 3840 MiB = 4 x 1 GB; node 0 keeps 256 MiB = 1 x 1 GB.
    def test_1gb_pages_on_the_kernel_command_line(self):
        self.tree(memory_mb=4096, gig_pages=True)
        out = self.run_script("-c", self.config).stdout
        self.assertEqual(self.read(NODE.format(1, "1048576kB")), "4\n")
        self.assertEqual(self.read(NODE.format(0, "1048576kB")), "1\n")
        self.assertEqual(self.read(NODE.format(1, "2048kB")), "0\n")
        self.assertFalse(self.exists("etc/tmpfiles.d/ferrovs-hugepages.conf"))
        self.assertIn(
            "    default_hugepagesz=1G hugepagesz=1G hugepages=0:1,1:4"
            " isolcpus=managed_irq,domain,5-6 nohz_full=5-6 rcu_nocbs=5-6\n",
            out,
        )

    # A kernel without 1 GB pages gets 2 MB ones whatever the CPU; a NIC whose firmware gives
    # no node (-1) counts as node 0, which then holds both NIC nodes' needs: node 1 (workers,
    # mlx5) 432 x 2 MB as above, node 0 (ice, i40e) 128 x 2 MB.
    def test_1gb_cpu_on_a_kernel_without_them_and_an_unknown_node(self):
        self.tree(gig_pages=True)
        for node in (0, 1):
            shutil.rmtree(os.path.join(self.root, f"sys/devices/system/node/node{node}/hugepages/hugepages-1048576kB"))
        fixture.write(self.root, "/sys/bus/pci/devices/0000:3b:00.0/numa_node", "-1\n")
        out = self.run_script("-c", self.config).stdout
        self.assertIn("the CPU has 1 GB pages (pdpe1gb) but this kernel offers none: using 2 MB pages", out)
        self.assertIn("a 0000:3b:00.0: driver ice, NUMA node unknown (firmware says -1): taken as 0", out)
        self.assertEqual(self.read(NODE.format(1, "2048kB")), "432\n")
        self.assertEqual(self.read(NODE.format(0, "2048kB")), "128\n")
        self.assertTrue(self.exists("etc/tmpfiles.d/ferrovs-hugepages.conf"))

    def test_dry_run_prints_every_change_and_makes_none(self):
        self.tree(gig_pages=False)
        before = fixture.snapshot(self.root)
        out = self.run_script("-c", self.config, "--dry-run").stdout
        self.assertEqual(fixture.snapshot(self.root), before)
        for line in [
            "dry run: nothing is changed",
            "  write /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages: 0 -> 432",
            "  write /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages: 0 -> 128",
            "  write /etc/tmpfiles.d/ferrovs-hugepages.conf",
            "    | w /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages - - - - 432",
            "  run modprobe vfio-pci",
            "  run dpdk-devbind.py -b vfio-pci 0000:3b:00.0",
            "  run dpdk-devbind.py -b vfio-pci 0000:af:00.0",
            "  write /proc/irq/24/smp_affinity_list: 0-7 -> 0-4,7",
            "  write /proc/irq/25/smp_affinity_list: 5 -> 0-4,7",
            "  write /proc/irq/120/smp_affinity_list: 4-7 -> 4,7",
            "  write /proc/irq/122/smp_affinity_list: 6 -> 0-4,7",
            "  write /proc/irq/default_smp_affinity: ff -> 9f",
        ]:
            self.assertIn(line, out)
        self.assertNotIn("/proc/irq/0/", out)
        self.assertNotIn("/proc/irq/121/", out)
        self.assertNotIn("0000:5e:00.0   (", out)  # no bind line for the mlx5 NIC

    def test_undo_restores_the_tree(self):
        self.tree(gig_pages=False)
        before = fixture.snapshot(self.root)
        self.run_script("-c", self.config)
        seen = self.devbind(0)
        after_first = fixture.snapshot(self.root)
        self.assertNotEqual(after_first, before)
        self.assertEqual(after_first["sys/bus/pci/devices/0000:3b:00.0/driver"], ("link", "../../drivers/vfio-pci"))
        # A second run changes nothing and keeps the first run's old values for undo.
        second = self.run_script("-c", self.config).stdout
        self.assertNotIn("  write /sys", second)
        self.assertNotIn("  write /proc", second)
        self.assertNotIn("dpdk-devbind.py", second)
        self.assertIn("a 0000:3b:00.0: already on vfio-pci", second)
        with_undo = fixture.snapshot(self.root)
        without_commands = lambda tree: {k: v for k, v in tree.items() if k != COMMANDS}  # noqa: E731
        self.assertEqual(without_commands(with_undo), without_commands(after_first))
        # Undo's dry run changes nothing either.
        self.run_script("--undo", "--dry-run")
        self.assertEqual(fixture.snapshot(self.root), with_undo)
        out = self.run_script("--undo").stdout
        self.devbind(seen)
        self.assertIn("remove /etc/tmpfiles.d/ferrovs-hugepages.conf", out)
        undone = "dpdk-devbind.py -b i40e 0000:af:00.0\ndpdk-devbind.py -b ice 0000:3b:00.0\n"  # newest first
        self.assertTrue(self.read(COMMANDS).endswith(undone), self.read(COMMANDS))
        self.assertFalse(self.exists(STATE))
        ours = ("var/lib/ferrovs", COMMANDS, "etc/tmpfiles.d")
        self.assertEqual({k: v for k, v in fixture.snapshot(self.root).items() if k not in ours}, before)
        self.assertIn("nothing to undo", self.run_script("--undo").stdout)

    def test_no_iommu_binds_nothing_and_says_why(self):
        self.tree(gig_pages=False, iommu=False)
        out = self.run_script("-c", self.config).stdout
        self.assertFalse(self.exists(COMMANDS))
        self.assertIn("no IOMMU: /sys/kernel/iommu_groups is empty, so vfio-pci cannot take the NICs. NOT binding", out)
        self.assertIn("a 0000:3b:00.0, c 0000:af:00.0", out)
        self.assertIn("enable_unsafe_noiommu_mode=1", out)
        self.assertIn("uio_pci_generic", out)
        self.assertIn("mlx5 NICs stay on their kernel driver", out)
        self.assertIn("left for you: an IOMMU (or a no-IOMMU choice) for 0000:3b:00.0, 0000:af:00.0", out)
        self.assertEqual(self.read(NODE.format(1, "2048kB")), "432\n")  # the rest is still done

    def test_no_iommu_with_vfio_noiommu_mode_binds(self):
        self.tree(gig_pages=False, iommu=False, noiommu_mode=True)
        out = self.run_script("-c", self.config).stdout
        self.assertIn("unsafe no-IOMMU mode is on", out)
        self.assertIn("dpdk-devbind.py -b vfio-pci 0000:3b:00.0\n", self.read(COMMANDS))

    def test_bad_config_is_refused_and_nothing_changes(self):
        self.tree()
        before = fixture.snapshot(self.root)
        for text, message in [
            ('ports:\n  - { name: x, device: "0000:99:00.0" }\n',
             "bootstrap: port x: no PCI device 0000:99:00.0 on this machine"),
            ("workers: { lcores: [5, 9] }\n",
             "bootstrap: CPU 9 (workers or eal.main_lcore) is not online here (online: 0-7)"),
            ('ports:\n  - { name: x, device: "eth0" }\n',
             "ports[0].device: 'eth0' is neither a vdev (net_...) nor a PCI address"),
            ("mempool: { mbufs: -1 }\n", "mempool.mbufs: -1 is not a non-negative integer"),
        ]:
            with open(self.config, "w") as f:
                f.write(text)
            done = self.run_script("-c", self.config, ok=False)
            self.assertNotEqual(done.returncode, 0)
            self.assertIn(message, done.stderr)
            self.assertEqual(fixture.snapshot(self.root), before)

    # `ferrovs --doctor` checks what bootstrap reserves, by the same formula (ctrl/src/doctor.rs
    # has it in Rust): before bootstrap it fails on the hugepages and drivers, after it every
    # node's need is the one bootstrap printed and ferrovs can start.
    def test_doctor_agrees_with_bootstrap(self):
        self.assertTrue(os.access(FERROVS, os.X_OK), f"{FERROVS} missing: cargo build --bins first")
        for memory_mb, gig in ((512, False), (4096, True)):
            self.tree(memory_mb=memory_mb, gig_pages=gig)
            doctor = [FERROVS, "--doctor", "--root", self.root, "-c", self.config]
            before = subprocess.run(doctor, capture_output=True, text=True)
            self.assertEqual(before.returncode, 1, before.stdout + before.stderr)
            self.assertIn("FAIL  hugepages node 1: needs", before.stdout)
            self.assertIn("FAIL  port a 0000:3b:00.0: driver ice, NUMA node 1: DPDK cannot drive it", before.stdout)
            out = self.run_script("-c", self.config).stdout
            self.devbind(0)
            after = subprocess.run(doctor, capture_output=True, text=True)
            self.assertEqual(after.returncode, 0, after.stdout + after.stderr)
            needs = re.findall(r"node (\d+): needs (\d+) MiB", out)
            self.assertEqual(len(needs), 2, out)
            for node, mib in needs:
                self.assertIn(f"ok    hugepages node {node}: needs {mib} MiB, has", after.stdout)
            self.assertIn("ok    port c 0000:af:00.0: driver vfio-pci, NUMA node 0", after.stdout)
            shutil.rmtree(self.root)

    def test_root_slash_is_refused(self):
        # --root promises that no command runs; "/" would be the real machine.
        done = subprocess.run(["bash", SCRIPT, "--root", "/", "--dry-run", "--undo"], capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)
        self.assertIn("--root /: that is the real tree; leave --root out", done.stderr)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"bootstrap: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
