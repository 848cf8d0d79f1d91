#!/usr/bin/env bash
# permessage-deflate side by side on this machine: roomcast (its default
# [compression]: a broadcast compressed once) against Bun with
# perMessageDeflate (uWebSockets' shared compressor) and Node `ws` with
# perMessageDeflate: true, in 100- and 1000-member chat rooms of ~1 KiB
# chat JSON; and roomcast's RSS per idle connection with the extension
# negotiated against without it.
#
#   benches/compression.sh                 # 3 interleaved rounds of everything
#   ROUNDS=1 CASES="deflate-100" benches/compression.sh
#
# Every client offers deflate as a browser does (`--deflate`: the load
# generator fails unless the server agrees) and counts compressed frames
# without inflating them, so the client's core measures the server's work
# (its CPU share is printed with each run). Server on CPU 0, load on CPU 1,
# loopback only, each run bounded by --warmup + --duration. Results in
# target/bench/compression/results.jsonl; docs/BENCHMARKS.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh

ROUNDS=${ROUNDS:-3}
CASES=${CASES:-deflate-100 deflate-1000 idle-deflate}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
OUT=target/bench/compression
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "==> building roomcast (release) and the load generator"
cargo build --release --bin roomcast >/dev/null
LOAD=$(load_binary)
[ -x "$LOAD" ] || { echo "compression: load generator not built" >&2; exit 1; }
echo "==> installing peers (npm ci in benches/peers)"
npm ci --prefix benches/peers --no-audit --no-fund --loglevel=error
BUN=benches/peers/node_modules/.bin/bun

SERVER_PID=
PORT=
start() { # start LABEL ENV... -- COMMAND...
    local name=$1; shift
    PORT=$(free_port)
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env PORT="$PORT" ROOMCAST_LOG=warn "${envs[@]}" taskset -c 0 "${@//\{PORT\}/$PORT}" >"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" && return 0
    echo "compression: $name did not start" >&2
    exit 1
}
stop() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop EXIT

ROOMCAST=(target/release/roomcast --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts)
server() { # server NAME: start it
    case $1 in
        roomcast) start roomcast -- "${ROOMCAST[@]}"; PATH_=/chat/bench ;;
        bun) start bun MODE=pubsub DEFLATE=1 -- "$BUN" benches/peers/bun-server.ts; PATH_=/ ;;
        nodews) start nodews MODE=chat DEFLATE=1 -- node benches/peers/node-ws.mjs; PATH_=/ ;;
    esac
}

run() { # run SERVER CASE
    local common=(--case "$2" --server "$1" --warmup "$WARMUP" --duration "$DURATION" --json "$RESULTS" --quiet)
    case $2 in
        deflate-100|deflate-1000)
            server "$1"
            taskset -c 1 "$LOAD" fanout --url "ws://127.0.0.1:$PORT$PATH_" --conns "${2#deflate-}" --size 1000 --deflate "${common[@]}" ;;
        idle-deflate)
            # roomcast with and without the extension negotiated.
            server roomcast
            local flag=()
            [ "$1" = roomcast-deflate ] && flag=(--deflate)
            taskset -c 1 "$LOAD" idle --url "ws://127.0.0.1:$PORT/echo" --conns "$IDLE_CONNS" --size 20 --concurrency 200 --pid "$SERVER_PID" "${flag[@]}" "${common[@]}" ;;
    esac
    stop
}

for round in $(seq "$ROUNDS"); do
    for c in $CASES; do
        case $c in
            idle-deflate) servers="roomcast-plain roomcast-deflate" ;;
            deflate-1000) servers="roomcast bun" ;;   # Node ws: see deflate-100
            *) servers="roomcast bun nodews" ;;
        esac
        # Alternate who goes first from round to round.
        [ $((round % 2)) -eq 0 ] && servers=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')
        for s in $servers; do run "$s" "$c"; done
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'case':14} {'server':18} {'median':>12} {'unit':14} {'B/delivery':>10} {'load cpu':>8}  runs")
for c in sorted({r["case"] for r in rows}):
    for s in sorted({r["server"] for r in rows if r["case"] == c}):
        rs = [r for r in rows if r["case"] == c and r["server"] == s]
        fig = (lambda r: r["rss_per_conn"]) if rs[0].get("rss_per_conn") is not None else (lambda r: r["rate"])
        unit = "B/conn (RSS)" if rs[0].get("rss_per_conn") is not None else rs[0]["unit"]
        wire = [r["wire_bytes_per_delivery"] for r in rs if r.get("wire_bytes_per_delivery")]
        cpu = max(r.get("client_cpu") or 0 for r in rs)
        print(f"{c:14} {s:18} {statistics.median(map(fig, rs)):12.0f} {unit:14} "
              f"{statistics.median(wire) if wire else 0:10.0f} {cpu * 100:7.0f}%  "
              + " ".join(f"{fig(r):.0f}" for r in rs))
PY
