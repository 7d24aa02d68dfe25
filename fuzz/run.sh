#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (seconds per target, default 30).
# Installs cargo-fuzz if missing. cargo fuzz needs nightly flags; on stable,
# RUSTC_BOOTSTRAP=1 enables them. Finds go to fuzz/artifacts/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
cargo fuzz build -O
# The session target keeps a scratch store under TMPDIR: give it a folder of
# its own, removed at the end.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"
for target in parse frame session; do
  # Work on a copy of the seeds so generated inputs never land in git.
  corpus="$(mktemp -d)"
  cp corpus/"$target"/seed* "$corpus"/
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run -O "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -n 12
  rm -rf "$corpus"
done
echo "fuzzing finished without findings"
