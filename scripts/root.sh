# Sourced by the scripts that need root (setup, demo, test, bootstrap): `fvs_as_root "$@"` goes
# on as it is for root, re-runs the script through sudo for anyone else where sudo is installed,
# and otherwise stops with a message (Debian's minimal images have no sudo; run as root there).
fvs_as_root() {
  [ "$(id -u)" = 0 ] && return 0
  case " $* " in *" -h "*|*" --help "*) return 0 ;; esac  # help needs no root
  local script=$0
  command -v sudo >/dev/null || { echo "$(basename "$script"): run as root (there is no sudo here)" >&2; exit 1; }
  # sudo resets PATH: keep the caller's, so a rustup cargo in ~/.cargo/bin is found, and
  # RUSTUP_HOME so that cargo finds the caller's toolchains rather than root's (none); and the
  # scripts' own FVS_* settings.
  local keep=("PATH=$PATH") name
  for name in $(compgen -e); do
    case "$name" in FVS_*) keep+=("$name=${!name}") ;; esac
  done
  [ -d "${RUSTUP_HOME:-$HOME/.rustup}" ] && keep+=("RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}")
  exec sudo env "${keep[@]}" bash "$script" "$@"
}
