#!/usr/bin/env bash
# Prepares a bare-metal box for a ferrovs config (Debian 12, as root):
#   - hugepages on each NUMA node that has the NICs or worker cores, sized from the config
#     (1 GB pages where the CPU has pdpe1gb, else 2 MB): reserved now in
#     /sys/devices/system/node/nodeN/hugepages, and at boot by /etc/tmpfiles.d/ferrovs-hugepages.conf
#     (2 MB) or by the kernel command line it prints (1 GB);
#   - the PCI NICs bound to vfio-pci with dpdk-devbind.py when there is an IOMMU (mlx5 NICs stay
#     on mlx5_core; without an IOMMU it explains the choices and binds nothing);
#   - IRQs moved off the worker cores (/proc/irq/N/smp_affinity_list, default_smp_affinity);
#   - prints the isolcpus/nohz_full/rcu_nocbs (and 1 GB hugepage) kernel arguments to add.
# Every change it makes is recorded in /var/lib/ferrovs/bootstrap.state; --undo reverts them.
#
#   scripts/bootstrap.sh -c CONFIG [--dry-run]     print every change; --dry-run makes none
#   scripts/bootstrap.sh --undo [--dry-run]        revert what earlier runs recorded
#   --root DIR                                     use DIR/sys, DIR/proc, DIR/etc, DIR/var (tests);
#                                                  commands go to DIR/var/lib/ferrovs/bootstrap.commands
set -euo pipefail
here=$(dirname "$0")

case " $* " in
  *" --dry-run "*|*" --root "*|*" --root="*) ;;  # reads only, or works on a fake tree
  *) source "$here/root.sh"; fvs_as_root "$@" ;;
esac
# Debian's python3-yaml is for Debian's python3; prefer it to another python3 on PATH.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
"$python" -c 'import yaml' 2>/dev/null || {
  echo "bootstrap.sh: python3 with PyYAML is needed: apt-get install python3-yaml (scripts/setup.sh installs it)" >&2
  exit 1
}
exec "$python" "$here/bootstrap.py" "$@"
