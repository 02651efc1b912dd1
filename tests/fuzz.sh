#!/usr/bin/env bash
# Bounded fuzz run of the packet path (fuzz/, target parse_classify): FUZZ_SECONDS (default 60)
# of libFuzzer; fails on any crash or invariant violation. Called by tests/run-tests.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
# Nightly gives AddressSanitizer; without it, stable builds the target with no sanitizer
# (the code under test is safe Rust).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  run=(cargo +nightly fuzz run parse_classify)
else
  run=(cargo fuzz run -s none parse_classify)
fi
mkdir -p fuzz/corpus/parse_classify
cargo run --quiet -p farm-wire --example fuzz_seeds -- fuzz/corpus/parse_classify >/dev/null
cd fuzz
"${run[@]}" -- -max_total_time="$secs" -max_len=2048 2>&1 | tail -n 3
echo "fuzz: parse_classify ran ${secs}s without a crash"
