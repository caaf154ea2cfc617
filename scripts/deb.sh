#!/usr/bin/env bash
# Builds the ferrovs Debian package: the binaries, xtask's man pages and shell completions
# (target/PROFILE/dist), then cargo-deb (scripts/setup.sh installs a pinned one). Prints the .deb's path
# on its last line.
#
#   scripts/deb.sh [--debug]     --debug packs the dev profile's binaries (what the tests do:
#                                no release build); default: release
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  --debug) profile=dev ;;
  "") ;;
  *) echo "deb.sh: unknown argument '$1' (want --debug or nothing)" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || { echo "deb.sh: cargo-deb missing: run scripts/setup.sh" >&2; exit 1; }

outdir=target/release
[ "$profile" = dev ] && outdir=target/debug
cargo build --profile "$profile" -p ctrl --bins >&2
# Beside the binaries, so that cargo-deb maps the assets' target/release/ to this profile.
rm -rf "$outdir/dist"
cargo run -q -p xtask -- dist "$outdir/dist" >&2
gzip -9n "$outdir"/dist/man/*.8
mkdir -p target/deb
# --no-build: built above; cargo-deb strips the binaries' debug info.
cargo deb -p ctrl --no-build --profile "$profile" -o target/deb/ >&2
ls -t target/deb/ferrovs_*.deb | head -1
