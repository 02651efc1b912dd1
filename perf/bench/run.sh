#!/bin/bash
# The performance harness of DESIGN.md ("Performance targets"), in one run:
# farm-dataplane (1 and 2 workers) vs a minimal C DPDK loop over net_memif (busy
# cycles per frame from their own counters); an nftables jhash filter on a veth
# fed by netsniff-ng's trafgen (softirq cycles per packet); HTTP (wrk) through
# the network-namespace lab vs directly to Apache, per local port (tap,
# af_xdp), with the network path's CPU per request; table rebuild +
# publish; failover time over 20 kills at the default timers and with pulse
# 20 ms.
#
#   sudo perf/bench/run.sh [farm-bench options, e.g. --sizes 64 --duration 2s]
#
# Builds what it needs (release), then writes results.json, results.md and
# mpps.svg, failover.svg (plus per-run logs) under perf/results/<date>/. Needs
# root (network namespaces), libdpdk-dev, pkg-config, a C compiler, trafgen
# (Debian package netsniff-ng), wrk and apache2 (tests/install-deps.sh installs
# them all). Runs take about 13 minutes on 2 CPUs, after the build; stop anything
# else running on the machine first, or the figures mostly measure the other
# work (the load average is recorded).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out=${FARM_BENCH_OUT:-perf/results/$(date +%Y-%m-%d_%H%M%S)}

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: needs root (network namespaces, nftables)" >&2
    exit 1
fi
for need in trafgen:netsniff-ng wrk:wrk apache2:apache2; do
    if ! PATH="$PATH:/usr/sbin" command -v "${need%%:*}" >/dev/null; then
        echo "run.sh: ${need%%:*} not found: apt-get install ${need#*:} (or bash tests/install-deps.sh)" >&2
        exit 1
    fi
done

build_start=$(date +%s)
cargo build --release -p farm-perf --bin farm-trafgen --bin farm-bench
cargo build --release -p farm-dataplane --bin farm-dataplane
cargo build --release -p farm-control --bin farmd --bin farmctl
make -s -C perf/c
echo "run.sh: build took $(( $(date +%s) - build_start )) s" >&2

mkdir -p "$out"
# --nice -15 (this session's autogroup and the measured processes): on a machine
# shared with other work the pinned generator and forwarder would otherwise get
# about half a CPU each. Override with --nice 0.
cmd=("$target/release/farm-bench" --out "$out" --cfwd perf/c/build/farm-cfwd --nice -15 "$@")
printf '%q ' "${cmd[@]}" > "$out/command.txt"
echo >> "$out/command.txt"
"${cmd[@]}"
