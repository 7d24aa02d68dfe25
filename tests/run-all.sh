#!/usr/bin/env bash
# The project's one test command (README: "Run the tests"). CI runs exactly this.
# Bounded: every step has its own time limit; the whole run takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Test output is also kept here, to print one total at the end.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# glommio needs locked memory for its io_uring rings (see docs/OPERATIONS.md).
ulimit -l unlimited 2>/dev/null || ulimit -l 65536 2>/dev/null || true
echo "locked-memory limit: $(ulimit -l)"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --features failpoints -- -D warnings

step "build (the binary the process and interop tests run)"
cargo build --workspace --bins

step "unit, property and integration tests"
timeout 1200 cargo test --workspace -- --test-threads=4 2>&1 | tee -a "$log"

step "protocol crate alone (no runtime feature)"
timeout 600 cargo test --no-default-features --lib 2>&1 | tee -a "$log"

step "benches compile and run once (criterion test mode)"
timeout 600 cargo test --benches

step "loadtest smoke: every scenario for a few seconds against a debug server"
timeout 300 bash loadtest/smoke.sh

step "interop with the official Python SDK (atsdk)"
timeout 900 bash tests/interop/run.sh 2>&1 | tee -a "$log"

# Last of the Rust steps: it rebuilds the binary with failpoints compiled in
# (inert without ATSERVER_FAILPOINTS), after the steps that run the plain one.
step "failures stop loudly (failpoints build: a failed commit, a panicking write actor)"
timeout 900 cargo test --features failpoints --lib storage 2>&1 | tee -a "$log"
timeout 900 cargo test --features failpoints --test failures 2>&1 | tee -a "$log"

step "fuzz the parser, the framer and whole sessions briefly"
timeout 1200 bash fuzz/run.sh 30

rust_passed=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
python_passed=$(grep -oE '^[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "all test steps passed (Rust: $rust_passed, Python SDK interop: $python_passed)"
echo "tests: $((rust_passed + python_passed)) passed, 0 failed"
