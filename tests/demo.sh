#!/usr/bin/env bash
# The farm demo (the README's main command), on one Linux machine, as root, in a couple of
# minutes once built. Three farm nodes (farmd + farm-dataplane + Apache, each in its network
# namespace) share the VIP 198.18.0.100; a client namespace with 508 addresses talks to it.
#
#   1. build the release binaries, start the farm (tests/lab/README.md), wait until every node
#      is UP (health URL 200);
#   2. one HTTP request (curl) from each client address: who served whom, as a mosaic, and the
#      share of each node;
#   3. crash n2 (kill -9 of its farmd, farm-dataplane and Apache, then its link down) while some
#      of its clients open a new connection every 20 ms: how long until they are served again,
#      and the new shares;
#   4. bring n2 back: how long until it is UP and owns its buckets again, and the shares.
#
# The lab is always torn down at the end, also on failure or Ctrl-C.
# Environment: FARM_DEMO_PREFIX (lab name prefix, default "demo"), FARM_DEMO_NODE (default n2).
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/install-deps.sh
# install-deps may have set an EXIT trap (it removes its policy-rc.d); keep it for our cleanup.
deps_exit=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
export PATH="$HOME/.cargo/bin:$PATH"

PREFIX="${FARM_DEMO_PREFIX:-demo}"
VICTIM="${FARM_DEMO_NODE:-n2}"
BIN="${CARGO_TARGET_DIR:-target}/release"
LAB=("$BIN/farm-lab" --prefix "$PREFIX")

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '%s== %s%s\n' "$B" "$*" "$N"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -x "${LAB[0]}" ]; then
    step "tearing the lab down"
    "${LAB[@]}" down >/dev/null || echo "warning: teardown failed; run: ${LAB[*]} down" >&2
  fi
  if [ -n "$deps_exit" ]; then eval "$deps_exit"; fi
  case "$status" in
    0) ;;
    130) echo "demo interrupted" >&2 ;;
    *) echo "demo FAILED (exit $status)" >&2 ;;
  esac
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step "building release binaries: farmd, farmctl, farm-dataplane, farm-lab (cargo build --release)"
t=$(date +%s.%N)
cargo build --release --quiet -p farm-control -p farm-dataplane -p farm-tests --bins
echo "   built in $(since "$t") s"

# A lab left by an interrupted earlier run goes first.
"${LAB[@]}" down >/dev/null

step "starting the farm: 3 nodes + a client in network namespaces, bridge ${PREFIX}br0 (farm-lab up --mode farm)"
t=$(date +%s.%N)
RUST_LOG=warn "${LAB[@]}" up --mode farm --nodes 3 --bin-dir "$BIN" >/dev/null
echo "   every node UP after $(since "$t") s (lab built, farmd started, data planes attached, Apache checked)"
echo "   $("${LAB[@]}" health)"

step "shares: one request from each client address to the VIP (on_addr rule: a client sticks to one node)"
"${LAB[@]}" shares

step "failover: $VICTIM crashes"
"${LAB[@]}" failover "$VICTIM"
"${LAB[@]}" shares | tail -n +2

step "rejoin: $VICTIM comes back"
"${LAB[@]}" rejoin "$VICTIM"
"${LAB[@]}" shares | tail -n +2
echo "   $("${LAB[@]}" health)"
