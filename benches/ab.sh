#!/usr/bin/env bash
# Interleaved A/B of two roomcast builds on this machine: judge a change by
# this, not by one run (the machine is shared and noisy).
#
#   benches/ab.sh OLD_BINARY NEW_BINARY            # echo-1 shout, fanout-100, idle 10k
#   ROUNDS=7 CASES="echo-1 echo-8 fanout-100" benches/ab.sh A B
#   CASES="fanout-sio-100 echo-sio idle-sio" benches/ab.sh A B   # socket.io 4
#   CASES="echo-8-shout echo-8-native" benches/ab.sh A B   # shout.rhai, native shout
#   CASES="cluster-fanout-100 shards-fanout-100" benches/ab.sh A B   # two nodes over one Redis / a 3-master Redis Cluster
#
# Each round runs every case against A, then B (alternating which goes
# first), each server alone on a free loopback port pinned to CPU 0, the load
# generator (built here, release) pinned to CPU 1, with
# benches/roomcast-bench.toml. Prints each run and the medians, and B ÷ A.
# Every run is bounded by --warmup + --duration; traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh

A=${1:?usage: benches/ab.sh OLD_BINARY NEW_BINARY}
B=${2:?usage: benches/ab.sh OLD_BINARY NEW_BINARY}
ROUNDS=${ROUNDS:-5}
CASES=${CASES:-echo-1 fanout-100 idle}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
OUT=target/bench/ab
SERVER_CPU=0
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
LOAD=$(load_binary)
[ -x "$LOAD" ] || { echo "ab: load generator not built" >&2; exit 1; }

SERVER_PID=
PORT=
start() { # start LABEL BINARY
    PORT=$(free_port)
    ROOMCAST_LOG=warn taskset -c 0 "$2" --config benches/roomcast-bench.toml \
        --listen "127.0.0.1:$PORT" --scripts scripts >"$OUT/$1.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" && return 0
    echo "ab: $1 did not start" >&2
    exit 1
}
stop() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop; stop_cluster' EXIT

run() { # run LABEL BINARY CASE
    local common=(--case "$3" --server "$1" --warmup "$WARMUP" --duration "$DURATION" --json "$RESULTS" --quiet)
    local node=(env ROOMCAST_LOG=warn "$2" --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts)
    case $3 in
        # A 100-member room split over two nodes: through one Redis, or a
        # Redis Cluster of three masters (sharded channels).
        cluster-fanout-100 | shards-fanout-100)
            if [ "$3" = cluster-fanout-100 ]; then start_cluster "$1-$3" "${node[@]}"; else start_shards "$1-$3" "${node[@]}"; fi
            taskset -c 1 "$LOAD" fanout --url "ws://127.0.0.1:$PORT_A/chat/bench,ws://127.0.0.1:$PORT_B/chat/bench" \
                --conns 100 --size 20 "${common[@]}"
            stop_cluster
            return ;;
    esac
    start "$1" "$2"
    case $3 in
        echo-1) taskset -c 1 "$LOAD" echo --url "ws://127.0.0.1:$PORT/shout" --conns 100 --size 20 --inflight 1 "${common[@]}" ;;
        echo-8) taskset -c 1 "$LOAD" echo --url "ws://127.0.0.1:$PORT/echo" --conns 100 --size 20 --inflight 8 "${common[@]}" ;;
        # shout.rhai and the native shout route at 8 in flight (issue 22's rows).
        echo-8-shout) taskset -c 1 "$LOAD" echo --url "ws://127.0.0.1:$PORT/shout" --conns 100 --size 20 --inflight 8 "${common[@]}" ;;
        echo-8-native) taskset -c 1 "$LOAD" echo --url "ws://127.0.0.1:$PORT/fast-shout" --conns 100 --size 20 --inflight 8 "${common[@]}" ;;
        fanout-100) taskset -c 1 "$LOAD" fanout --url "ws://127.0.0.1:$PORT/chat/bench" --conns 100 --size 20 "${common[@]}" ;;
        idle) taskset -c 1 "$LOAD" idle --url "ws://127.0.0.1:$PORT/echo" --conns "$IDLE_CONNS" --size 20 --concurrency 200 --pid "$SERVER_PID" "${common[@]}" ;;
        # socket.io 4 over WebSocket (Engine.IO 4), as compare.sh runs them.
        fanout-sio-100) taskset -c 1 "$LOAD" fanout --url "ws://127.0.0.1:$PORT/" --conns 100 --size 20 --proto socketio "${common[@]}" ;;
        echo-sio) taskset -c 1 "$LOAD" echo --url "ws://127.0.0.1:$PORT/shout" --conns 100 --size 20 --inflight 1 --proto socketio "${common[@]}" ;;
        idle-sio) taskset -c 1 "$LOAD" idle --url "ws://127.0.0.1:$PORT/echo" --conns "$IDLE_CONNS" --size 20 --concurrency 200 --proto socketio --pid "$SERVER_PID" "${common[@]}" ;;
        *) echo "ab: unknown case $3" >&2; exit 2 ;;
    esac
    stop
}

for round in $(seq "$ROUNDS"); do
    for c in $CASES; do
        if [ $((round % 2)) -eq 1 ]; then run A "$A" "$c"; run B "$B" "$c"; else run B "$B" "$c"; run A "$A" "$c"; fi
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def figure(r):
    if r.get("rss_per_conn") is not None:
        return "bytes/conn (RSS)", r["rss_per_conn"]
    return r["unit"], r["rate"]
cases = sorted({r["case"] for r in rows})
print(f"{'case':12} {'figure':20} {'A median':>12} {'B median':>12} {'B/A':>6}  runs (A | B)")
for c in cases:
    by = {s: [figure(r) for r in rows if r["case"] == c and r["server"] == s] for s in ("A", "B")}
    key = by["A"][0][0]
    a = statistics.median(v for _, v in by["A"]); b = statistics.median(v for _, v in by["B"])
    runs = " ".join(f"{v:.0f}" for _, v in by["A"]) + " | " + " ".join(f"{v:.0f}" for _, v in by["B"])
    print(f"{c:12} {key:20} {a:12.0f} {b:12.0f} {b / a:6.3f}  {runs}")
PY
