#!/usr/bin/env bash
# Builds WhaleWall and runs every test project: unit (in parallel with the others), kernel, end to
# end (needs root: real network namespaces, a private dockerd, the daemon as a real process).
# Each project's output goes to .artifacts/<project>.log and a .trx file; the last line printed
# is "N passed, N failed" (", N skipped" if any). After the tests the benchmark runs in its short
# mode (bench/WhaleWall.Bench --short; log .artifacts/bench.log, table echoed). Exit status is
# non-zero if the bench crashed, a test failed or a
# project could not be built or run.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ART="$ROOT/.artifacts"
mkdir -p "$ART"
rm -f "$ART"/*.trx

CONFIG=${CONFIG:-Release}
TEST_TIMEOUT=${TEST_TIMEOUT:-1800}
BG_PIDS=()

RUNS_FILE="$ART/e2e-runs.txt"
: >"$RUNS_FILE"
export WHALEWALL_E2E_RUNS_FILE="$RUNS_FILE"

# Leftovers of an end-to-end harness whose test process was killed before it could clean up.
# Only what the recorded runs made: pids from their pid files (and only if the process still
# refers to the run's directory), mounts under /tmp/<id>, namespaces <id>-h, -i, -r and -p.
sweep_e2e() {
    local id dir pidf pid m
    [ -s "$RUNS_FILE" ] || return 0
    while read -r id; do
        [[ "$id" =~ ^wwe-[0-9a-f]{6}$ ]] || continue
        dir="/tmp/$id"
        if [ -d "$dir" ]; then
            echo "sweeping leftovers of e2e run $id"
            for pidf in "$dir"/whalewall*.pid "$dir/prometheus.pid" "$dir/docker.pid" "$dir/exec/containerd/containerd.pid"; do
                pid=$(cat "$pidf" 2>/dev/null) || continue
                [[ "$pid" =~ ^[0-9]+$ ]] || continue
                if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$dir"; then
                    kill -TERM "$pid" 2>/dev/null || true
                    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                    kill -KILL "$pid" 2>/dev/null || true
                fi
            done
            awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
                while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
            rm -rf "$dir" 2>/dev/null || true
        fi
        for ns in "$id-h" "$id-i" "$id-r" "$id-p"; do
            [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null || true
        done
    done <"$RUNS_FILE"
}

# Leftovers of a bench killed before its own cleanup: exactly its table (inet wwbench_<pid>, named
# in the first line of its log) and its namespaces wwb<pid>c/r/s/-fresh.
sweep_bench() {
    local table pid ns
    table=$(grep -o -m1 'table inet wwbench_[0-9]*' "$ART/bench.log" 2>/dev/null | awk '{print $3}')
    [[ "$table" =~ ^wwbench_([0-9]+)$ ]] || return 0
    pid=${BASH_REMATCH[1]}
    kill -0 "$pid" 2>/dev/null && return 0
    nft list table inet "$table" >/dev/null 2>&1 && nft delete table inet "$table" && echo "swept table inet $table"
    for ns in "wwb${pid}c" "wwb${pid}r" "wwb${pid}s" "wwb${pid}-fresh"; do
        [ -e "/run/netns/$ns" ] && ip netns del "$ns" && echo "swept namespace $ns"
    done
    return 0
}

cleanup() {
    for pid in "${BG_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    sweep_e2e
}
trap cleanup EXIT INT TERM

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "== install-deps (log: .artifacts/install-deps.log)"
if ! bash scripts/install-deps.sh >"$ART/install-deps.log" 2>&1; then
    tail -n 20 "$ART/install-deps.log"
    echo "install-deps failed"
    echo "0 passed, 0 failed"
    exit 1
fi

echo "== build (log: .artifacts/build.log)"
if ! dotnet build WhaleWall.sln -c "$CONFIG" >"$ART/build.log" 2>&1; then
    grep -E ' error |error:' "$ART/build.log" | sort -u | head -n 40
    echo "build failed"
    echo "0 passed, 0 failed"
    exit 1
fi

# run_project <name> <csproj>: writes .artifacts/<name>.log, .artifacts/<name>.trx, .artifacts/<name>.rc
run_project() {
    local name=$1 proj=$2
    timeout --signal=TERM --kill-after=60 "$TEST_TIMEOUT" \
        dotnet test "$proj" -c "$CONFIG" --no-build \
            --logger "trx;LogFileName=$name.trx" --results-directory "$ART" \
            --logger "console;verbosity=normal" \
            >"$ART/$name.log" 2>&1
    echo $? >"$ART/$name.rc"
}

START=$(date +%s)
echo "== unit tests (background, log: .artifacts/unit.log)"
run_project unit tests/WhaleWall.Tests/WhaleWall.Tests.csproj &
BG_PIDS+=($!)
UNIT_PID=$!

echo "== kernel tests (log: .artifacts/kernel.log)"
run_project kernel tests/WhaleWall.KernelTests/WhaleWall.KernelTests.csproj
echo "== end-to-end tests (log: .artifacts/e2e.log)"
E2E_START=$(date +%s)
run_project e2e tests/WhaleWall.EndToEnd/WhaleWall.EndToEnd.csproj
E2E_SECS=$(( $(date +%s) - E2E_START ))
wait "$UNIT_PID"

# The benchmark in its short mode: seconds, no assertion on time, so it never rots. Missed
# targets do not fail CI; a crash (non-zero exit) does. Its table is echoed here.
echo "== bench --short (log: .artifacts/bench.log)"
timeout --signal=TERM --kill-after=30 600 \
    dotnet run --project bench/WhaleWall.Bench -c "$CONFIG" --no-build -- --short --out "$ART/bench-table.md" \
    >"$ART/bench.log" 2>&1
BENCH_RC=$?
sweep_bench
if [ -s "$ART/bench-table.md" ]; then cat "$ART/bench-table.md"; else tail -n 30 "$ART/bench.log"; fi
echo "bench --short: exit $BENCH_RC"

# The first failures' messages (15 lines) and the start of their output (10 lines); the whole of
# both is in the log. CI may keep only what was printed, and a name alone does not say what went wrong.
failure_details() {
    awk '
        /^  (Passed|Skipped) / { part = ""; next }
        /^  Failed / { shown++; if (shown > 3) exit; part = ""; print "----" $0; next }
        !shown { next }
        /^  Error Message:/ { part = "message"; n = 0 }
        /^  Stack Trace:/ { part = "" }
        /^  Standard Output Messages:/ { part = "output"; n = 0 }
        part == "message" && n++ < 16 { print }
        part == "output" && n++ < 11 { print }
    ' "$1"
}

passed=0 failed=0 skipped=0 broken=()
for name in unit kernel e2e; do
    rc=$(cat "$ART/$name.rc" 2>/dev/null || echo 99)
    trx="$ART/$name.trx"
    if [ ! -s "$trx" ]; then
        broken+=("$name (no results, exit $rc)")
        tail -n 30 "$ART/$name.log" 2>/dev/null
        continue
    fi
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
    get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
    p=$(get passed); f=$(get failed); e=$(get error); t=$(get timeout); a=$(get aborted)
    total=$(get total); executed=$(get executed)
    s=$(( total - executed ))
    f=$(( f + e + t + a ))
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    echo "$name: $p passed, $f failed, $s skipped (exit $rc)"
    if [ "$f" -gt 0 ]; then
        grep -E '^\s+Failed ' "$ART/$name.log" | head -n 40
        failure_details "$ART/$name.log"
    elif [ "$rc" != 0 ]; then
        broken+=("$name (exit $rc)")
    fi
done

echo "end-to-end suite: ${E2E_SECS}s; all tests: $(( $(date +%s) - START ))s; logs and .trx in .artifacts/"
status=0
if [ "${#broken[@]}" -gt 0 ]; then
    echo "projects that did not run cleanly: ${broken[*]}"
    status=1
fi
[ "$failed" -gt 0 ] && status=1
if [ "$BENCH_RC" != 0 ]; then
    echo "bench --short crashed (exit $BENCH_RC): see .artifacts/bench.log"
    status=1
fi

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
exit $status
