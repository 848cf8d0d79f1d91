#!/usr/bin/env bash
# Side-by-side comparison of roomcast with its peers, on this machine:
# each server runs alone, pinned to CPU 0; the load generator runs pinned to
# CPU 1. Writes target/bench/results.jsonl (+ .csv), then docs/BENCHMARKS.md
# and docs/benchmarks.svg.
#
#   benches/compare.sh                 # everything (about 10 minutes)
#   ONLY=echo-1 benches/compare.sh     # one case: echo-1 echo-8 echo-8-shout fanout-100 fanout-1000 fanout-sio-100 echo-sio latency-1000 idle idle-sio cluster-fanout-100 shards-fanout-100 cluster-latency storm churn yardstick both-cores fairness frozen admin-fanout
#   BENCH_DURATION=10 benches/compare.sh
#
# Installs the peers with npm into benches/peers/node_modules (nothing global).
# Network traffic stays on 127.0.0.1; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh

DURATION=${BENCH_DURATION:-5}
REPEAT=${BENCH_REPEAT:-3}
WARMUP=${BENCH_WARMUP:-2}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
STORM_CONNS=${BENCH_STORM_CONNS:-8000}
ONLY=${ONLY:-}
OUT=target/bench
RESULTS=$OUT/results.jsonl
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
mkdir -p "$OUT"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "compare: open-file limit $(ulimit -n) is below $((IDLE_CONNS + 1000)); lower BENCH_IDLE_CONNS" >&2
    exit 2
fi

echo "==> installing peers (npm ci in benches/peers)"
npm ci --prefix benches/peers --no-audit --no-fund --loglevel=error
BUN=benches/peers/node_modules/.bin/bun

echo "==> building roomcast, the raw fastwebsockets echo and the load generator (release)"
cargo build --release --quiet --bin roomcast --example raw_echo
LOAD=$(load_binary)
[ -x "$LOAD" ] || { echo "compare: load generator not built" >&2; exit 1; }

SERVER_PID=
PORT=
# start_server NAME ENV... -- CMD...: start pinned to SERVER_CPU on a free port ($PORT).
start_server() {
    local name=$1; shift
    PORT=$(free_port)
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env PORT="$PORT" "${envs[@]}" taskset -c "$SERVER_CPU" "${@//\{PORT\}/$PORT}" \
        >"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" && return 0
    echo "compare: $name did not start; see $OUT/$name.log" >&2
    cat "$OUT/$name.log" >&2
    exit 1
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

trap 'stop_server; stop_cluster' EXIT

# load SCENARIO CASE SERVER PATH [ARGS...]
load() {
    local scenario=$1 case=$2 server=$3 path=$4; shift 4
    echo "--> $case $server ($scenario ws://127.0.0.1:$PORT$path $*)"
    taskset -c "$CLIENT_CPU" "$LOAD" "$scenario" --url "ws://127.0.0.1:$PORT$path" \
        --case "$case" --server "$server" --warmup "$WARMUP" --duration "$DURATION" \
        --json "$RESULTS" --csv "$OUT/results.csv" --quiet "$@" || echo "    (run failed)"
}

# load_on URLS SCENARIO CASE SERVER [ARGS...]: as load, against explicit URLs.
load_on() {
    local urls=$1 scenario=$2 case=$3 server=$4; shift 4
    echo "--> $case $server ($scenario $urls $*)"
    taskset -c "$CLIENT_CPU" "$LOAD" "$scenario" --url "$urls" \
        --case "$case" --server "$server" --warmup "$WARMUP" --duration "$DURATION" \
        --json "$RESULTS" --csv "$OUT/results.csv" --quiet "$@" || echo "    (run failed)"
}

ROOMCAST_ENV=(ROOMCAST_LOG=warn)
roomcast() { start_server "roomcast-$1" "${ROOMCAST_ENV[@]}" "${@:2}" -- target/release/roomcast --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts; }
fws() { start_server fws -- target/release/examples/raw_echo "127.0.0.1:{PORT}"; }
nodews() { start_server "nodews-$1" MODE="$1" -- node benches/peers/node-ws.mjs; }
bun() { start_server "bun-$1" MODE="$1" -- "$BUN" benches/peers/bun-server.ts; }
seed() { start_server "seed-$1" MODE="$1" -- node benches/peers/seed.js; }
socketio() { start_server socketio -- node benches/peers/socketio.js; }

want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

if [ -z "$ONLY" ]; then
    rm -f "$RESULTS" "$OUT/results.csv"
elif [ -f "$RESULTS" ]; then
    # Re-running some cases: drop their old records, keep the others.
    python3 - "$RESULTS" $ONLY <<'PY'
import json, sys
path, cases = sys.argv[1], set(sys.argv[2:])
# A group's cases are named after it (both-cores-echo-8, fairness-echo…).
def chosen(case):
    return any(case == c or case.startswith(c + "-") for c in cases)
keep = [l for l in open(path) if l.strip() and not chosen(json.loads(l)["case"])]
open(path, "w").writelines(keep)
PY
fi

# Throughput cases run REPEAT rounds, servers interleaved, and the report
# takes each server's median: close ratios (metrics on/off, script overhead)
# are otherwise within run-to-run noise.
if want echo-1; then
    echo "==> echo-1: 100 connections × 20 B, 1 in flight (x$REPEAT)"
    E="--conns 100 --size 20 --inflight 1"
    for _ in $(seq "$REPEAT"); do
        roomcast shout
        load echo echo-1 roomcast-shout /shout $E
        load echo echo-1 roomcast-native-shout /fast-shout $E
        load echo echo-1 roomcast-echo /echo $E
        stop_server
        roomcast nometrics ROOMCAST_METRICS__ENABLED=false; load echo echo-1 roomcast-shout-nometrics /shout $E; stop_server
        fws; load echo echo-1 fws-echo / $E; stop_server
        bun echo; load echo echo-1 bun-echo / $E; stop_server
        bun shout; load echo echo-1 bun-shout / $E; stop_server
        nodews echo; load echo echo-1 nodews-echo / $E; stop_server
        nodews shout; load echo echo-1 nodews-shout / $E; stop_server
        seed shout; load echo echo-1 seed-shout / $E; stop_server
    done
fi

if want echo-8; then
    echo "==> echo-8: 100 connections × 20 B, 8 in flight (x$REPEAT)"
    E="--conns 100 --size 20 --inflight 8"
    for _ in $(seq "$REPEAT"); do
        roomcast echo; load echo echo-8 roomcast-echo /echo $E; stop_server
        fws; load echo echo-8 fws-echo / $E; stop_server
        bun echo; load echo echo-8 bun-echo / $E; stop_server
        nodews echo; load echo echo-8 nodews-echo / $E; stop_server
    done
fi

if want echo-8-shout; then
    echo "==> echo-8-shout: 100 connections × 20 B, 8 in flight, shout.rhai, the native shout and Bun's shout (x$REPEAT)"
    E="--conns 100 --size 20 --inflight 8"
    for _ in $(seq "$REPEAT"); do
        roomcast shout
        load echo echo-8-shout roomcast-shout /shout $E
        load echo echo-8-shout roomcast-native-shout /fast-shout $E
        stop_server
        roomcast nometrics ROOMCAST_METRICS__ENABLED=false; load echo echo-8-shout roomcast-shout-nometrics /shout $E; stop_server
        bun shout; load echo echo-8-shout bun-shout / $E; stop_server
    done
fi

if want fanout-100; then
    echo "==> fanout-100: a 100-member chat room, every member sends once per round (x$REPEAT)"
    F="--conns 100 --size 20"
    for _ in $(seq "$REPEAT"); do
        roomcast chat; load fanout fanout-100 roomcast-chat /chat/bench $F; stop_server
        bun pubsub; load fanout fanout-100 bun-pubsub / $F; stop_server
        nodews chat; load fanout fanout-100 nodews-chat / $F; stop_server
        seed chat; load fanout fanout-100 seed-chat / $F; stop_server
        socketio; load fanout fanout-100 socketio-chat / $F --proto socketio; stop_server
    done
fi

if want fanout-1000; then
    echo "==> fanout-1000: a 1000-member chat room, every member sends once per round (x$REPEAT)"
    F="--conns 1000 --size 20"
    for _ in $(seq "$REPEAT"); do
        roomcast chat; load fanout fanout-1000 roomcast-chat /chat/bench $F; stop_server
        bun pubsub; load fanout fanout-1000 bun-pubsub / $F; stop_server
    done
fi

if want fanout-sio-100; then
    echo "==> fanout-sio-100: a 100-member room of socket.io 4 clients over WebSocket (x$REPEAT)"
    F="--conns 100 --size 20 --proto socketio"
    for _ in $(seq "$REPEAT"); do
        roomcast chat; load fanout fanout-sio-100 roomcast-socketio-chat / $F; stop_server
        socketio; load fanout fanout-sio-100 socketio-chat / $F; stop_server
    done
fi

if want echo-sio; then
    echo "==> echo-sio: 100 socket.io 4 clients × 20 B, 1 in flight, through /shout's namespace (x$REPEAT)"
    for _ in $(seq "$REPEAT"); do
        roomcast shout; load echo echo-sio roomcast-socketio-shout /shout --conns 100 --size 20 --inflight 1 --proto socketio; stop_server
    done
fi

if want latency-1000; then
    echo "==> latency-1000: a 1000-member chat room, 100 msg/s published"
    L="--conns 1000 --size 20 --rate 100 --concurrency 100"
    roomcast chat; load latency latency-1000 roomcast-chat /chat/bench $L; stop_server
    bun pubsub; load latency latency-1000 bun-pubsub / $L; stop_server
    nodews chat; load latency latency-1000 nodews-chat / $L; stop_server
fi

if want admin-fanout; then
    echo "==> admin-fanout: fanout-100 beside 15,000 connections in 1,500 rooms, the operator view closed, open, and its socket alone (x$REPEAT)"
    [ -d tests/browser/node_modules/playwright-core ] ||
        npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
    ADMIN_KEY=0123456789abcdef-bench-admin
    ADMIN_HELD=${BENCH_ADMIN_CONNS:-15000}
    for _ in $(seq "$REPEAT"); do
        # open: the page in headless Chromium (on the load generator's
        # core); socket: only the page's live socket, read by a small Node
        # client: the server's side of an open view without a browser.
        for view in closed open socket; do
            roomcast admin ROOMCAST_API__KEY="$ADMIN_KEY"
            # The held connections: ten per room, on the load generator's core.
            taskset -c "$CLIENT_CPU" "$LOAD" idle --url "ws://127.0.0.1:$PORT/chat/r" --rooms $((ADMIN_HELD / 10)) \
                --conns "$ADMIN_HELD" --concurrency 200 --pid "$SERVER_PID" --hold 600 --quiet \
                2>"$OUT/admin-held.log" &
            HELD_PID=$!
            until grep -q "idle: holding" "$OUT/admin-held.log"; do
                kill -0 "$HELD_PID" 2>/dev/null || { echo "compare: the held connections failed" >&2; cat "$OUT/admin-held.log" >&2; exit 1; }
                sleep 0.2
            done
            VIEWER=
            if [ "$view" != closed ]; then
                local_mode=page; [ "$view" = socket ] && local_mode=socket
                # At the lowest priority: the browser needs a few ms a second,
                # and must not take the load generator's turns on its core.
                coproc VIEW { taskset -c "$CLIENT_CPU" nice -n 19 node benches/admin_view.mjs "127.0.0.1:$PORT" "$ADMIN_KEY" "$local_mode"; }
                VIEWER=$VIEW_PID
                read -r ready <&"${VIEW[0]}"
                [ "$ready" = viewing ] || { echo "compare: the operator view did not open ($ready)" >&2; exit 1; }
            fi
            load fanout admin-fanout "roomcast-view-$view" /chat/bench --conns 100 --size 20
            if [ -n "$VIEWER" ]; then
                eval "exec ${VIEW[1]}>&-"
                while read -r l <&"${VIEW[0]}"; do
                    case $l in view\ *) echo "    $view ${l}" | tee -a "$OUT/admin-view.log" ;; esac
                done
                wait "$VIEWER" 2>/dev/null || true
            fi
            kill "$HELD_PID" 2>/dev/null || true
            wait "$HELD_PID" 2>/dev/null || true
            stop_server
        done
    done
fi

if want idle; then
    echo "==> idle: $IDLE_CONNS connections that each exchanged one message"
    I="--conns $IDLE_CONNS --size 20 --concurrency 200"
    roomcast echo; load idle idle roomcast-echo /echo $I --pid "$SERVER_PID"; stop_server
    fws; load idle idle fws-echo / $I --pid "$SERVER_PID"; stop_server
    bun echo; load idle idle bun-echo / $I --pid "$SERVER_PID"; stop_server
    nodews echo; load idle idle nodews-echo / $I --pid "$SERVER_PID"; stop_server
fi

if want idle-sio; then
    echo "==> idle-sio: $IDLE_CONNS socket.io 4 connections (WebSocket, namespace /echo) that each exchanged one message"
    roomcast echo; load idle idle-sio roomcast-socketio-echo /echo --conns "$IDLE_CONNS" --size 20 --concurrency 200 --proto socketio --pid "$SERVER_PID"; stop_server
fi

if want cluster-fanout-100; then
    echo "==> cluster-fanout-100: a 100-member room split over two nodes and one Redis (x$REPEAT)"
    F="--conns 100 --size 20"
    RC=(env ROOMCAST_LOG=warn target/release/roomcast --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts)
    for _ in $(seq "$REPEAT"); do
        start_cluster roomcast-cluster "${RC[@]}"
        load_on "ws://127.0.0.1:$PORT_A/chat/bench,ws://127.0.0.1:$PORT_B/chat/bench" fanout cluster-fanout-100 roomcast-cluster-chat $F
        load_on "ws://127.0.0.1:$PORT_A/,ws://127.0.0.1:$PORT_B/" fanout cluster-fanout-100 roomcast-cluster-socketio-chat $F --proto socketio
        stop_cluster
        start_cluster socketio-cluster node benches/peers/socketio.js
        load_on "ws://127.0.0.1:$PORT_A/,ws://127.0.0.1:$PORT_B/" fanout cluster-fanout-100 socketio-cluster-chat $F --proto socketio
        stop_cluster
    done
fi

if want shards-fanout-100; then
    echo "==> shards-fanout-100: a 100-member room split over two nodes over a 3-master Redis Cluster (sharded pub/sub) (x$REPEAT)"
    F="--conns 100 --size 20"
    RC=(env ROOMCAST_LOG=warn target/release/roomcast --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts)
    for _ in $(seq "$REPEAT"); do
        start_shards roomcast-shards "${RC[@]}"
        load_on "ws://127.0.0.1:$PORT_A/chat/bench,ws://127.0.0.1:$PORT_B/chat/bench" fanout shards-fanout-100 roomcast-shards-chat $F
        load_on "ws://127.0.0.1:$PORT_A/,ws://127.0.0.1:$PORT_B/" fanout shards-fanout-100 roomcast-shards-socketio-chat $F --proto socketio
        stop_cluster
        start_shards socketio-shards node benches/peers/socketio.js
        load_on "ws://127.0.0.1:$PORT_A/,ws://127.0.0.1:$PORT_B/" fanout shards-fanout-100 socketio-shards-chat $F --proto socketio
        stop_cluster
    done
fi

if want cluster-latency; then
    echo "==> cluster-latency: 100 members at 1000 msg/s, on one node of a cluster, split over two, and on a single node (x$REPEAT)"
    L="--conns 100 --size 20 --rate 1000"
    RC=(env ROOMCAST_LOG=warn target/release/roomcast --config benches/roomcast-bench.toml --listen "127.0.0.1:{PORT}" --scripts scripts)
    for _ in $(seq "$REPEAT"); do
        start_cluster roomcast-cluster "${RC[@]}"
        load_on "ws://127.0.0.1:$PORT_A/chat/lat" latency cluster-latency roomcast-cluster-same $L
        load_on "ws://127.0.0.1:$PORT_A/chat/lat2,ws://127.0.0.1:$PORT_B/chat/lat2" latency cluster-latency roomcast-cluster-cross $L
        stop_cluster
        # For scale: one node without Redis.
        roomcast chat; load latency cluster-latency roomcast-single /chat/lat $L; stop_server
    done
fi

if want yardstick; then
    echo "==> yardstick: benches/load beside a plain C epoll client (benches/epoll_echo.c), echo-1, 100 × 20 B (x$REPEAT)"
    cc -O2 -o "$OUT/epoll_echo" benches/epoll_echo.c
    rm -f "$OUT/yardstick.jsonl" "$OUT/yardstick.txt"
    for _ in $(seq "$REPEAT"); do
        for s in bun-echo fws-echo roomcast-shout; do
            case $s in
                bun-echo) bun echo; path=/ ;;
                fws-echo) fws; path=/ ;;
                roomcast-shout) roomcast shout; path=/shout ;;
            esac
            echo "$s $(taskset -c "$CLIENT_CPU" "$OUT/epoll_echo" 127.0.0.1 "$PORT" "$path" 100 20 1 "$WARMUP" "$DURATION")" \
                | tee -a "$OUT/yardstick.txt"
            taskset -c "$CLIENT_CPU" "$LOAD" echo --url "ws://127.0.0.1:$PORT$path" --conns 100 --size 20 --inflight 1 \
                --case yardstick --server "$s" --warmup "$WARMUP" --duration "$DURATION" --json "$OUT/yardstick.jsonl" --quiet \
                || echo "    (run failed)"
            stop_server
        done
    done
fi

if want storm; then
    echo "==> storm: $STORM_CONNS clients connect at once (x$REPEAT)"
    S="--conns $STORM_CONNS"
    for _ in $(seq "$REPEAT"); do
        roomcast echo; load storm storm roomcast-echo /echo $S; stop_server
        fws; load storm storm fws-echo / $S; stop_server
        bun echo; load storm storm bun-echo / $S; stop_server
        nodews echo; load storm storm nodews-echo / $S; stop_server
    done
fi

if want both-cores; then
    # Server and client both on CPUs 0 and 1: roomcast runs two worker
    # threads, the load generator two client threads; Bun serves on one
    # JavaScript thread whatever it is given. On this 2-core machine this
    # measures how much of the whole machine each server turns into work
    # while sharing it with its client, not how it scales (see ANALYSIS).
    echo "==> both-cores: echo-8 and fanout-100 with server and client each on both cores (x$REPEAT)"
    SAVED_CPUS=("$SERVER_CPU" "$CLIENT_CPU")
    SERVER_CPU=0,1
    CLIENT_CPU=0,1
    for _ in $(seq "$REPEAT"); do
        roomcast echo; load echo both-cores-echo-8 roomcast-echo /echo --conns 100 --size 20 --inflight 8 --threads 2; stop_server
        bun echo; load echo both-cores-echo-8 bun-echo / --conns 100 --size 20 --inflight 8 --threads 2; stop_server
        fws; load echo both-cores-echo-8 fws-echo / --conns 100 --size 20 --inflight 8 --threads 2; stop_server
        roomcast chat; load fanout both-cores-fanout-100 roomcast-chat /chat/bench --conns 100 --size 20 --threads 2; stop_server
        bun pubsub; load fanout both-cores-fanout-100 bun-pubsub / --conns 100 --size 20 --threads 2; stop_server
    done
    SERVER_CPU=${SAVED_CPUS[0]}
    CLIENT_CPU=${SAVED_CPUS[1]}
fi

if want fairness; then
    # roomcast as a user runs it, no benches/roomcast-bench.toml: /echo on the
    # default configuration (it has no rate limit), chat rooms with the rate
    # limit off (below).
    echo "==> fairness: 100 clients at 1 in flight, alone and beside one flooding client (x$REPEAT)"
    CHAT_URLS=$(for i in $(seq 0 99); do printf 'ws://127.0.0.1:{PORT}/chat/r%d,' "$i"; done)
    CHAT_URLS=${CHAT_URLS%,}
    for _ in $(seq "$REPEAT"); do
        for flood in 0 1; do
            label=roomcast-alone; [ "$flood" = 1 ] && label=roomcast-flooded
            start_server "roomcast-default" ROOMCAST_LOG=warn -- target/release/roomcast --listen "127.0.0.1:{PORT}" --scripts scripts
            load fair fairness-echo "$label" /echo --conns 100 --size 20 --flood "$flood"
            stop_server
            # Chat rooms with the rate limit off: with it on, every client
            # sits at its own 50/s and fairness holds by construction; off,
            # the server is what the 100 and the flooder share.
            start_server "roomcast-norate" ROOMCAST_LOG=warn ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND=0 -- target/release/roomcast --listen "127.0.0.1:{PORT}" --scripts scripts
            load_on "${CHAT_URLS//\{PORT\}/$PORT}" fair fairness-chat "$label" --conns 100 --size 20 --flood "$flood" \
                --flood-url "ws://127.0.0.1:$PORT/chat/flood"
            stop_server
        done
    done
fi

if want frozen; then
    echo "==> frozen: 990 members alone, then with 10 more that never read (x$REPEAT)"
    for _ in $(seq "$REPEAT"); do
        roomcast chat; load fanout frozen-1000 roomcast-990-alone /chat/bench --conns 990 --size 20; stop_server
        roomcast chat; load fanout frozen-1000 roomcast-10-frozen /chat/bench --conns 990 --size 20 --frozen 10; stop_server
    done
fi

if want churn; then
    echo "==> churn: connect + upgrade + close, 10 at a time"
    C="--concurrency 10"
    roomcast echo; load churn churn roomcast-echo /echo $C; stop_server
    fws; load churn churn fws-echo / $C; stop_server
    bun echo; load churn churn bun-echo / $C; stop_server
    nodews echo; load churn churn nodews-echo / $C; stop_server
fi

echo "==> report"
{
    echo "Measured $(date -u +%Y-%m-%d) with \`benches/compare.sh\` (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo "Each server runs alone, pinned to CPU $SERVER_CPU with \`taskset\`; the load generator"
    echo "(\`cargo bench --bench load\`, one thread) is pinned to CPU $CLIENT_CPU. Every run: ${WARMUP} s warm-up, ${DURATION} s measured;"
    echo "echo-1, echo-8, echo-8-shout and fanout-100 run $REPEAT rounds with the servers interleaved, and each figure is the median."
    echo "roomcast runs with \`benches/roomcast-bench.toml\` (default routes plus a native shout route, no rate limit)."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2 " GiB"}') |"
    echo "| kernel | $(uname -r) |"
    echo "| roomcast | $(target/release/roomcast --version), $(rustc --version) |"
    echo "| fastwebsockets | $(grep -A1 '^name = "fastwebsockets"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p') (examples/raw_echo.rs) |"
    echo "| Node.js | $(node --version); ws $(node -p 'require("./benches/peers/node_modules/ws/package.json").version'), socket.io $(node -p 'require("./benches/peers/node_modules/socket.io/package.json").version'), nodejs-websocket $(node -p 'require("./benches/peers/node_modules/nodejs-websocket/package.json").version') |"
    echo "| Bun | $($BUN --version) |"
    echo "| Redis | $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'); @socket.io/redis-adapter $(node -p 'require("./benches/peers/node_modules/@socket.io/redis-adapter/package.json").version'), node-redis $(node -p 'require("./benches/peers/node_modules/redis/package.json").version') |"
    if [ -f "$OUT/yardstick.txt" ] && [ -f "$OUT/yardstick.jsonl" ]; then
        echo
        echo "**The load generator against a plain C epoll client** (\`benches/epoll_echo.c\`: one thread, level-triggered"
        echo "epoll, one read and one write per ready connection), run one after the other against the same server,"
        echo "echo-1 (100 × 20 B, 1 in flight), medians of $REPEAT; \"client cpu\" is each client's share of its core:"
        echo
        python3 - "$OUT/yardstick.txt" "$OUT/yardstick.jsonl" <<'PY'
import json, re, statistics, sys
c, l = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) .*: (\d+) msgs/s, client cpu (\d+)%", line)
    if m:
        c.setdefault(m[1], []).append((int(m[2]), int(m[3])))
for line in open(sys.argv[2]):
    r = json.loads(line)
    l.setdefault(r["server"], []).append((r["rate"], 100 * (r.get("client_cpu") or 0)))
print("| server | benches/load | client cpu | epoll_echo (C) | client cpu | load ÷ C |")
print("|---|---|---|---|---|---|")
for s in c:
    if s not in l:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    lr, cr = med(l[s], 0), med(c[s], 0)
    print(f"| {s} | {lr:,.0f} msgs/s | {med(l[s], 1):.0f}% | {cr:,.0f} msgs/s | {med(c[s], 1):.0f}% | {lr / cr:.2f}× |")
PY
    fi
} >"$OUT/meta.md"
"$LOAD" report --results "$RESULTS" --meta "$OUT/meta.md" --analysis benches/ANALYSIS.md \
    --out docs/BENCHMARKS.md --chart docs/benchmarks.svg
