#!/usr/bin/env bash
# Set up the development environment in <repo>/.venv: openmdao_like (editable) and the test tools.
# Idempotent: a second run only checks that nothing changed. Works from any directory; on a fresh
# Debian machine it installs python3-venv when `python3 -m venv` cannot work (needs root or sudo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }

apt_install() {
  local sudo=''
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to apt-get install $*"; exit 1; }
    sudo=sudo
  fi
  say "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive \
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v python3 >/dev/null || { say "python3 (>= 3.11) is required"; exit 1; }

# A venv whose pip works (an earlier attempt without ensurepip leaves one without pip).
if ! { [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; }; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
  fi
  say "creating .venv"
  if ! python3 -m venv .venv; then  # e.g. ensurepip importable but its wheels missing
    apt_install python3-venv
    python3 -m venv .venv
  fi
fi

# The tests make TLS certificates the way servers/README.md tells operators to (openssl), and
# start real daemons: sshd (two loopback "hosts"), a one-node SLURM cluster with munge, and the
# PBS client commands (qsub, qstat, qdel) that slurm-wlm-torque maps onto SLURM.
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v munged >/dev/null || [ -x /usr/sbin/munged ] || need+=(munge)
command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
command -v slurmd >/dev/null || [ -x /usr/sbin/slurmd ] || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v qsub >/dev/null || need+=(slurm-wlm-torque)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# Reinstall only when the package metadata changed since the last successful install.
stamp=.venv/.openmdao_like-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/openmdao-like ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "pip install -e .[test]"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
fi
