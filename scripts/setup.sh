#!/usr/bin/env bash
# Prepares a Debian 12 machine for ferrovs: installs every package it needs through apt,
# reserves and mounts 2 MB hugepages, and builds. Run as root (from another account it re-runs
# itself through sudo where sudo is installed). Safe to run again.
#
#   scripts/setup.sh [--release|--debug] [--no-build] [--hugepages N]
set -euo pipefail
source "$(dirname "$0")/root.sh"
fvs_as_root "$@"
cd "$(dirname "$0")/.."

profile=release build=1 hugepages=${FVS_HUGEPAGES:-512}
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --hugepages) hugepages="$2"; shift ;;
    *) echo "setup.sh: unknown argument '$1' (want --release, --debug, --no-build, --hugepages N)" >&2; exit 2 ;;
  esac
  shift
done

# DPDK and bindgen's libclang; iproute2/iputils/ethtool for the demo topology and tests;
# libpcap for the pcap PMD tests; python3 runs the test backends and clients
# (tests/e2e/tools) and scripts/bootstrap.sh (with python3-yaml), curl is the demo's client;
# wrk (new-connection load), nginx-light (backends under load) and python3-scapy (crafted ARP
# and oversized frames) drive tests/e2e/robustness.sh; bird2 announces VIPs over BGP
# (conf/bird-*.conf, checked by the test run; tests/e2e/ecmp_cluster.sh); prometheus (promtool
# and a server the test starts itself) drives tests/e2e/observability.sh, with tmux (a terminal
# for `fvs top`, whose screen the test reads with capture-pane).
packages=(dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config gcc libc6-dev
          iproute2 iputils-ping iputils-arping ethtool tcpdump libpcap-dev procps kmod
          python3 python3-yaml curl wrk nginx-light python3-scapy dpkg-dev bird2 prometheus tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's prometheus (and nginx) packages start their service on install; the tests start
  # their own. A policy-rc.d that denies every start, for this install only (unless the
  # machine already has one, e.g. a container's).
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || install_failed=1
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ -z "${install_failed:-}" ] || { echo "setup.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
  # Nor enabled at boot: it would scrape nothing and hold port 9090.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

command -v cargo >/dev/null || {
  echo "setup.sh: cargo not found; ferrovs needs Rust 1.80 or newer (rustup.rs), Debian 12's rustc is too old" >&2
  exit 1
}

# cargo-fuzz for the fuzz step of scripts/test.sh. It runs on stable Rust with
# RUSTC_BOOTSTRAP=1 and `-s none` (no sanitizer), so no nightly toolchain is needed. Pinned:
# its CLI is what test.sh relies on.
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  echo "setup: installing cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --quiet "cargo-fuzz@$cargo_fuzz_version"
fi

# cargo-deb for the Debian package (scripts/deb.sh, tests/deb/test_deb.sh); dpkg-dev gives it
# dpkg-shlibdeps for the package's Depends. Pinned: 3.8.0 still packs the dev profile, which
# the test uses to avoid a release build.
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "setup: installing cargo-deb $cargo_deb_version"
  cargo install --locked --quiet "cargo-deb@$cargo_deb_version"
fi

# Hugepages: reserve, and mount hugetlbfs where DPDK looks for it.
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$nr" ] && [ "$(cat "$nr")" -lt "$hugepages" ]; then
  echo "$hugepages" > "$nr"
  echo "setup: reserved $(cat "$nr") x 2 MB hugepages (asked for $hugepages)"
fi
if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages
  echo "setup: mounted hugetlbfs on /dev/hugepages"
fi

if [ "$build" = 1 ]; then
  if [ "$profile" = release ]; then
    cargo build --release --bins
  else
    cargo build --bins
  fi
fi
