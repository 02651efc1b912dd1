#!/usr/bin/env bash
# The test command: installs what it needs, then builds and runs every test of the workspace
# (unit, property, DPDK-backed, table stress, simulation, end-to-end), clippy, and a bounded
# fuzz run. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

echo "== cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test (workspace)"
# DPDK tests run for real on virtual devices (--no-huge --in-memory): root is required.
cargo test --workspace --quiet 2>&1 | tee target/test.log
grep -q "test result:" target/test.log

if [ -x tests/fuzz.sh ]; then
  echo "== fuzz (bounded)"
  bash tests/fuzz.sh
fi
echo "== all tests passed"
