#!/usr/bin/env bash
# CI smoke for the load generator: ~3 s per scenario against a fresh debug
# atserver (the loadtest starts and stops it), failing on any error or zero
# throughput. Builds nothing: run `cargo build --workspace --bins` first.
# Bounded: every run has --duration and the whole script a 60 s budget.
set -euo pipefail
cd "$(dirname "$0")/.."

LOADTEST=target/debug/loadtest
ATSERVER=target/debug/atserver
for bin in "$LOADTEST" "$ATSERVER"; do
    if [[ ! -x "$bin" ]]; then
        echo "smoke: $bin is missing: run cargo build --workspace --bins" >&2
        exit 1
    fi
done

# glommio needs locked memory; many idle connections need file descriptors.
ulimit -l unlimited 2>/dev/null || ulimit -l 65536 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
started=$SECONDS
fail=0

# Each run lasts 3 s unless DURATION says otherwise (`DURATION=2s run …`),
# and is given 20 s unless TIMEOUT says otherwise.
run() {
    local name=$1
    local duration=${DURATION:-3s}
    local limit=${TIMEOUT:-20}
    shift
    echo "== smoke: $name"
    # The loadtest exits non-zero on errors or zero throughput; timeout
    # bounds a hung run (it should never get there).
    if ! timeout "$limit" "$LOADTEST" --atserver-bin "$ATSERVER" --duration "$duration" --json "$out/$name.json" "$@" >"$out/$name.txt" 2>"$out/$name.err"; then
        echo "smoke: $name FAILED" >&2
        cat "$out/$name.txt" "$out/$name.err" >&2
        fail=1
        return
    fi
    # Belt and braces: check the JSON too.
    local errors ops
    errors=$(grep -o '"errors": [0-9]*' "$out/$name.json" | head -1 | grep -o '[0-9]*$')
    ops=$(grep -o '"ops": [0-9]*' "$out/$name.json" | head -1 | grep -o '[0-9]*$')
    if [[ "${errors:-1}" != 0 || "${ops:-0}" == 0 ]]; then
        echo "smoke: $name reported errors=$errors ops=$ops" >&2
        cat "$out/$name.txt" >&2
        fail=1
        return
    fi
    grep -E 'throughput|latency p99 |errors' "$out/$name.txt" | sed 's/^/   /'
}

run update-llookup-p1 --scenario update-llookup --connections 16 --pipeline 1
run update-llookup-p16 --scenario update-llookup --connections 16 --pipeline 16
# The server started here reports what its reactor ticks found (decision 0010).
for counter in stranded_ticks woken_late_ticks late_ticks; do
    if [[ -f "$out/update-llookup-p1.json" ]] &&
        ! grep -q "\"$counter\": [0-9]" "$out/update-llookup-p1.json"; then
        echo "smoke: update-llookup-p1 reports no $counter" >&2
        fail=1
    fi
done
run lookup --scenario lookup --connections 16 --client-threads 2
run pkam-storm --scenario pkam-storm --connections 4
run idle --scenario idle --connections 200 --idle-threads 4
# A directory and two servers; 3 cold lookups (each adds an atSign, with a
# signing key pair generated at start, to both servers) then warm ones.
run remote-lookup --scenario remote-lookup --connections 2 --cold-lookups 3
if [[ -f "$out/remote-lookup.json" ]]; then
    # Every cold lookup measured (and one new peer connection each), and no
    # connection opened during the warm window.
    field() { grep -o "\"$1\": [0-9]*" "$out/remote-lookup.json" | head -1 | grep -o '[0-9]*$'; }
    cold_p50=$(grep -A4 '"cold_latency_us"' "$out/remote-lookup.json" | grep -o '"p50": [0-9.]*' | grep -o '[0-9.]*$')
    if [[ "$(field cold_lookups)" != 3 || "$(field cold_errors)" != 0 ||
        "$(field cold_peer_connections_opened)" != 3 ||
        "$(field warm_peer_connections_start)" != "$(field warm_peer_connections_end)" ||
        "${cold_p50:-0}" == 0 ]]; then
        echo "smoke: remote-lookup cold/warm figures are wrong" >&2
        cat "$out/remote-lookup.json" >&2
        fail=1
    else
        echo "   cold lookups: 3, p50 ${cold_p50} µs"
    fi
fi

# Notifications: @alice's notify reaching @bob's monitor on another server
# (a directory and two servers again), and monitors holding and receiving.
# The loadtest itself fails on a lost or duplicated notification.
DURATION=2s run notify --scenario notify --connections 2
DURATION=1s run monitors-idle --scenario monitors-idle --connections 200 --idle-threads 4
if [[ -f "$out/monitors-idle.json" ]] &&
    ! grep -q '"fanout_delivered": 200' "$out/monitors-idle.json"; then
    echo "smoke: monitors-idle did not reach every monitor" >&2
    cat "$out/monitors-idle.json" >&2
    fail=1
fi

# Many atSigns: four runs of 0.4 s (one atSign and 10, each at 1 and 2
# shards) on servers prepared first (10 signing key pairs each, generated
# by both 10-atSign servers at once): about 5 s in all, but eight server
# starts and stops, so it gets more time on a loaded machine.
TIMEOUT=40 DURATION=400ms run many-atsigns --scenario many-atsigns --atsigns 10 --connections 4
if [[ -f "$out/many-atsigns.json" ]]; then
    runs=$(grep -c '"ops_per_s": [1-9]' "$out/many-atsigns.json" || true)
    if [[ "$runs" != 4 ]] || ! grep -q '"scaling_two_over_one_shard": {' "$out/many-atsigns.json"; then
        echo "smoke: many-atsigns has $runs runs with throughput (want 4) or no scaling figure" >&2
        cat "$out/many-atsigns.json" >&2
        fail=1
    else
        grep -E '^(ratio|scaling)' "$out/many-atsigns.txt" | sed 's/^/   /'
    fi
fi

# The Redis comparison with both baselines (no persistence, AOF everysec),
# 1 s each (about 4 s in all). Skipped when Redis is not installed: the
# smoke installs nothing (the loadtest itself would run loadtest/redis.sh).
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    DURATION=1s run compare-redis --scenario update-llookup --connections 8 --compare-redis --redis-persistence both
    if [[ -f "$out/compare-redis.json" ]]; then
        # A CPU ratio at the top and in each baseline, and an AOF written
        # by the everysec one.
        cpu_ratios=$(grep -c '"cpu_ratio": [0-9]' "$out/compare-redis.json" || true)
        aofs=$(grep -c '"aof_bytes_end": [1-9]' "$out/compare-redis.json" || true)
        if [[ "$cpu_ratios" != 3 || "$aofs" != 1 ]]; then
            echo "smoke: compare-redis has $cpu_ratios CPU ratios (want 3) and $aofs AOFs (want 1)" >&2
            cat "$out/compare-redis.json" >&2
            fail=1
        else
            grep '^ratio ours/redis' "$out/compare-redis.txt" | sed 's/^/   /'
        fi
    fi
else
    echo "== smoke: compare-redis SKIPPED: redis-server or redis-benchmark not on PATH (loadtest/redis.sh installs them)"
fi

elapsed=$((SECONDS - started))
echo "smoke: finished in ${elapsed}s"
if ((elapsed >= 60)); then
    echo "smoke: took ${elapsed}s, over the 60 s budget" >&2
    fail=1
fi
exit $fail
