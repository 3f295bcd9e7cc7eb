#!/usr/bin/env bash
# Set up the environment in <repo>/.venv: `bash scripts/setup.sh [--test]`.
#   (no option)  what the demo needs: python3-venv (apt, only if `python3 -m venv` cannot work)
#                and openmdao_like installed editable (`pip install -e .`);
#   --test       also the test infrastructure (openssl, sshd, munge, SLURM, the PBS client
#                commands, PostgreSQL, chromium and its driver; apt, only those missing) and the test tools
#                (`pip install -e .[test]`).
# Idempotent: a second run only checks that nothing changed. Works from any directory; apt-get
# needs root or sudo (on a fresh Debian machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }

mode=demo
case "${1-}" in
  '') ;;
  --test) mode=test ;;
  *) say "unknown option '$1'; expected no option (the demo) or --test (the test suite)"
     exit 2 ;;
esac

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

if [ "$mode" = test ]; then
  # The tests make TLS certificates the way servers/README.md tells operators to (openssl), and
  # start real daemons: sshd (two loopback "hosts"), a one-node SLURM cluster with munge, and
  # the PBS client commands (qsub, qstat, qdel) that slurm-wlm-torque maps onto SLURM.
  need=()
  command -v openssl >/dev/null || need+=(openssl)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  command -v munged >/dev/null || [ -x /usr/sbin/munged ] || need+=(munge)
  command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
  command -v slurmd >/dev/null || [ -x /usr/sbin/slurmd ] || need+=(slurmd)
  command -v sbatch >/dev/null || need+=(slurm-client)
  command -v qsub >/dev/null || need+=(slurm-wlm-torque)
  # PostgreSQL for the job store's tests (tests/pg_server.py starts a private server; Debian's
  # package starts no cluster here). Its programs live below /usr/lib/postgresql/<version>/bin.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql)
  # A real browser for the model view's tests (selenium drives Debian's chromium).
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
fi

# Reinstall only when the package metadata changed since the last successful install, or when
# the tests need the test extra and the last install was the demo's. The stamp holds the hash of
# pyproject.toml and the mode installed ("demo" or "test"; "test" serves the demo too).
stamp=.venv/.openmdao_like-setup
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
up_to_date() {
  [ -x .venv/bin/openmdao-like ] && { [ "$have" = "$hash $mode" ] || [ "$have" = "$hash test" ]; }
}
if ! up_to_date; then
  spec=.
  [ "$mode" = test ] && spec='.[test]'
  say "pip install -e $spec"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
  echo "$hash $mode" > "$stamp"
fi
