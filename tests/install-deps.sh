#!/usr/bin/env bash
# Installs what farm needs on a Debian 12 machine, idempotently and quietly (run as root).
# Sourced or run by tests/run-tests.sh and tests/demo.sh; safe to run again.
set -euo pipefail

PKGS=(
  libdpdk-dev clang libclang-dev pkg-config libpcap-dev   # build: DPDK bindings
  iproute2 nftables procps psmisc ethtool                  # lab: namespaces, veth, offloads, faults
  apache2 curl wrk tcpdump netsniff-ng util-linux          # lab + perf: server, clients, capture, trafgen
  python3                                                  # lab: plots, reference scripts
  chromium fonts-dejavu-core                               # tests: the web console in a headless browser
)

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (DPDK, namespaces and apt need it)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  case "$p" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the system-wide apache2: the lab runs its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: no Rust toolchain found (cargo); install Rust >= 1.80 with rustup, then run this again" >&2
  exit 1
fi
pkg-config --exists libdpdk || { echo "error: libdpdk not found by pkg-config after install" >&2; exit 1; }
