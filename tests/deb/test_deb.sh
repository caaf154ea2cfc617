#!/usr/bin/env bash
# The Debian package round trip, as root: builds it from the dev profile (scripts/deb.sh
# --debug), checks its contents, installs it (dpkg -i: nothing is enabled or started), runs the
# installed ferrovs on the installed default config, `systemd-analyze verify`s the installed
# unit where systemd-analyze exists, and purges it, checking nothing is left. Each step counts
# as one test; ends with "deb: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."

passed=0 failed=0
step() { # step NAME COMMAND...: one test
  local name=$1 log
  shift
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "deb: $name: ok"
  else
    failed=$((failed + 1))
    tail -30 "$log"
    echo "deb: $name FAILED"
  fi
  rm -f "$log"
}
finish() {
  echo "deb: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}

if dpkg-query -W -f='${Status}' ferrovs 2>/dev/null | grep -q installed; then
  echo "deb: a ferrovs package is installed on this machine; this test would replace and purge it"
  failed=1
  finish
fi

start=$(date +%s)
deb=$(scripts/deb.sh --debug 2>/tmp/fvs-deb-build.$$ | tail -1)
if [ -f "$deb" ]; then
  passed=$((passed + 1))
  echo "deb: build $deb: ok in $(( $(date +%s) - start )) s"
  rm -f /tmp/fvs-deb-build.$$
else
  failed=$((failed + 1))
  tail -30 /tmp/fvs-deb-build.$$
  rm -f /tmp/fvs-deb-build.$$
  echo "deb: build FAILED"
  finish
fi

contents() {
  local listing want
  listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for want in ./usr/bin/ferrovs ./usr/bin/fvs ./lib/systemd/system/ferrovs.service ./etc/ferrovs/ferrovs.yaml \
      ./usr/share/man/man8/ferrovs.8.gz ./usr/share/man/man8/fvs.8.gz \
      ./usr/share/bash-completion/completions/ferrovs ./usr/share/bash-completion/completions/fvs \
      ./usr/share/zsh/vendor-completions/_ferrovs ./usr/share/zsh/vendor-completions/_fvs \
      ./usr/share/fish/vendor_completions.d/ferrovs.fish ./usr/share/fish/vendor_completions.d/fvs.fish; do
    grep -qx -- "$want" <<<"$listing" || { echo "missing from the package: $want"; return 1; }
  done
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/ferrovs/ferrovs.yaml || { echo "the config is not a conffile"; return 1; }
  dpkg-deb -f "$deb" Depends | grep -q librte-ethdev || { echo "no DPDK library in Depends"; return 1; }
  # The man pages are troff with the options the binaries parse.
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man8/ferrovs.8.gz | zcat | grep -q -- '\\-\\-doctor'
}
step "contents (dpkg-deb -c, conffiles, Depends, man page)" contents

step "dpkg -i (nothing enabled or started)" bash -c "dpkg -i '$deb' && ! systemctl is-enabled ferrovs 2>/dev/null | grep -qx enabled"
step "installed ferrovs --check --for-other-machine -c /etc/ferrovs/ferrovs.yaml" \
  /usr/bin/ferrovs --check --for-other-machine -c /etc/ferrovs/ferrovs.yaml
step "installed fvs --help, man ferrovs" bash -c '/usr/bin/fvs --help | grep -q "fvs link show" && { ! command -v man >/dev/null || man -w ferrovs; }'
step "bash completion for fvs offers 'service'" bash -c \
  'source /usr/share/bash-completion/completions/fvs && COMP_WORDS=(fvs ser) COMP_CWORD=1 && _fvs fvs ser fvs && printf "%s\n" "${COMPREPLY[@]}" | grep -qx service'
if command -v systemd-analyze >/dev/null; then
  step "systemd-analyze verify ferrovs.service" systemd-analyze verify /lib/systemd/system/ferrovs.service
else
  echo "deb: systemd-analyze not installed: the unit is not verified"
fi
purged() {
  dpkg --purge ferrovs || return 1
  local left
  for left in /usr/bin/ferrovs /usr/bin/fvs /lib/systemd/system/ferrovs.service /etc/ferrovs/ferrovs.yaml \
      /usr/share/man/man8/ferrovs.8.gz; do
    [ ! -e "$left" ] || { echo "left after purge: $left"; return 1; }
  done
}
step "dpkg --purge leaves nothing" purged
echo "deb: the package step took $(( $(date +%s) - start )) s"
finish
