# Shared by benches/compare.sh and benches/ab.sh (sourced, not run).

# The load generator's executable, built (release) if needed.
load_binary() {
    cargo bench --bench load --no-run --message-format=json 2>/dev/null |
        python3 -c 'import sys, json
for line in sys.stdin:
    j = json.loads(line)
    if j.get("executable") and j.get("target", {}).get("name") == "load":
        print(j["executable"])' | tail -n 1
}

# A free loopback port (bound, then released: the server binds it next).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: up to 10 s for something to accept on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# A cluster: redis-server and two nodes, all pinned to SERVER_CPU, logs in
# $OUT (both set by the caller).
# start_cluster NAME NODE_CMD...: nodes get PORT and REDIS_URL (and
# ROOMCAST_CLUSTER__REDIS_URL); sets PORT_A, PORT_B.
CLUSTER_PIDS=()
start_cluster() {
    local name=$1; shift
    local rport; rport=$(free_port)
    taskset -c "$SERVER_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
        >"$OUT/$name-redis.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    wait_port "$rport" || { echo "bench: redis-server did not start" >&2; cat "$OUT/$name-redis.log" >&2; exit 1; }
    local url="redis://127.0.0.1:$rport"
    start_nodes "$name" REDIS_URL="$url" ROOMCAST_CLUSTER__REDIS_URL="$url" -- "$@"
}

# start_nodes NAME ENV... -- NODE_CMD...: two nodes (a and b) pinned to
# SERVER_CPU, each with PORT (and {PORT} in NODE_CMD) on a free port of its
# own and the environment ENV; sets PORT_A, PORT_B.
start_nodes() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local ports=()
    for n in a b; do
        local port; port=$(free_port)
        env PORT="$port" "${envs[@]}" taskset -c "$SERVER_CPU" "${@//\{PORT\}/$port}" >"$OUT/$name-$n.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        wait_port "$port" || { echo "bench: $name node $n did not start" >&2; cat "$OUT/$name-$n.log" >&2; exit 1; }
        ports+=("$port")
    done
    PORT_A=${ports[0]}
    PORT_B=${ports[1]}
}
# start_shards NAME NODE_CMD...: as start_cluster, over a Redis Cluster of
# three masters (no replicas), all pinned to SERVER_CPU; the nodes get
# REDIS_CLUSTER_URLS and ROOMCAST_CLUSTER__REDIS_MODE=cluster with the seeds.
start_shards() {
    local name=$1; shift
    local seeds=() addrs=()
    for i in 1 2 3; do
        local rport; rport=$(free_port)
        local dir="$OUT/$name-shard$i"; rm -rf "$dir"; mkdir -p "$dir"
        taskset -c "$SERVER_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$(free_port)" --dir "$dir" \
            >"$OUT/$name-redis$i.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        wait_port "$rport" || { echo "bench: redis-server (cluster) did not start" >&2; cat "$OUT/$name-redis$i.log" >&2; exit 1; }
        seeds+=("redis://127.0.0.1:$rport"); addrs+=("127.0.0.1:$rport")
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/$name-create.log" 2>&1 \
        || { echo "bench: redis-cli --cluster create failed" >&2; cat "$OUT/$name-create.log" >&2; exit 1; }
    local first=${addrs[0]##*:}
    for _ in $(seq 100); do
        redis-cli -p "$first" cluster info | grep -q cluster_state:ok && break
        sleep 0.1
    done
    local url; url=$(IFS=,; echo "${seeds[*]}")
    start_nodes "$name" REDIS_CLUSTER_URLS="$url" ROOMCAST_CLUSTER__REDIS_MODE=cluster ROOMCAST_CLUSTER__REDIS_URL="$url" -- "$@"
}
stop_cluster() {
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    CLUSTER_PIDS=()
}
