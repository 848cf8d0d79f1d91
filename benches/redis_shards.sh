#!/usr/bin/env bash
# Publish capacity of Redis under roomcast's publish script: one Redis
# against a Redis Cluster of three masters, all on one core (SERVER_CPU),
# redis-benchmark pinned to another (CLIENT_CPU), 16 calls pipelined per
# connection. The script is read from src/broker/redis/scripts.rs: the
# single-Redis one (PUBLISH), and in the cluster the sharded one (SPUBLISH)
# beside the classic one (PUBLISH, which a cluster broadcasts to every
# shard). Prints a table (calls/s, medians of ROUNDS) and the client's CPU.
#
#   benches/redis_shards.sh            # ROUNDS=3 N=300000
#
# Everything on 127.0.0.1, bounded by N calls per run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh
ROUNDS=${ROUNDS:-3}
N=${N:-300000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=target/bench/redis-shards
rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The publish script as roomcast runs it (the `PUBLISH` const).
SCRIPT=$(sed -n '/^pub(super) const PUBLISH: &str = r"$/,/^";$/p' src/broker/redis/scripts.rs | sed '1d;$d')
[ -n "$SCRIPT" ] || { echo "redis_shards: the publish script was not found" >&2; exit 1; }
SHARDED=${SCRIPT//redis.call(\'PUBLISH\'/redis.call(\'SPUBLISH\'}
BODY=$(printf 'x%.0s' $(seq 100))

redis() { # redis PORT DIR [ARGS...]: a redis-server pinned to SERVER_CPU
    local port=$1 dir=$2; shift 2
    mkdir -p "$dir"
    taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" "$@" >"$dir/log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" || { cat "$dir/log" >&2; exit 1; }
}

# bench PORT SHA TAG [--cluster]: calls/s and the client's CPU share.
bench() {
    local port=$1 sha=$2 tag=$3; shift 3
    local out
    out=$( { /usr/bin/time -f '%U %S %e' taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" "$@" -P 16 -c 50 -n "$N" -q \
        EVALSHA "$sha" 2 "roomcast:{$tag}:m" "roomcast:{$tag}:s" "roomcast:{$tag}:c" "$BODY" 100 3600000 E1 ; } 2>&1 )
    local rate cpu
    rate=$(echo "$out" | grep -o '[0-9.]* requests per second' | head -1 | cut -d' ' -f1)
    cpu=$(echo "$out" | tail -1 | awk '{ if ($3 > 0) printf "%.0f", 100 * ($1 + $2) / $3; else print "?" }')
    echo "${rate:-0} ${cpu}"
}

load_script() { # load_script PORT TEXT: its sha, loaded on that node
    redis-cli -p "$1" SCRIPT LOAD "$2"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

single=() sharded=() classic=() cpu_single=() cpu_cluster=()
for round in $(seq "$ROUNDS"); do
    # One Redis.
    p=$(free_port); redis "$p" "$OUT/single-$round"
    sha=$(load_script "$p" "$SCRIPT")
    read -r rate cpu < <(bench "$p" "$sha" r1)
    single+=("$rate"); cpu_single+=("$cpu")
    cleanup; PIDS=()

    # A Redis Cluster of three masters on the same core.
    ports=() addrs=()
    for i in 1 2 3; do
        p=$(free_port)
        redis "$p" "$OUT/cluster-$round-$i" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$(free_port)"
        ports+=("$p"); addrs+=("127.0.0.1:$p")
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/create-$round.log"
    for _ in $(seq 100); do
        redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break
        sleep 0.1
    done
    for p in "${ports[@]}"; do
        sha_s=$(load_script "$p" "$SHARDED"); sha_c=$(load_script "$p" "$SCRIPT")
    done
    # redis-benchmark --cluster spreads its clients over the masters and
    # puts each on a slot of its node ({tag}).
    read -r rate cpu < <(bench "${ports[0]}" "$sha_s" tag --cluster)
    sharded+=("$rate"); cpu_cluster+=("$cpu")
    read -r rate _ < <(bench "${ports[0]}" "$sha_c" tag --cluster)
    classic+=("$rate")
    cleanup; PIDS=()
done

m_single=$(printf '%s\n' "${single[@]}" | median)
m_sharded=$(printf '%s\n' "${sharded[@]}" | median)
m_classic=$(printf '%s\n' "${classic[@]}" | median)
echo "| publish script calls/s, medians of $ROUNDS (server: CPU $SERVER_CPU; redis-benchmark -P 16 -c 50: CPU $CLIENT_CPU) | calls/s | runs | client CPU |"
echo "|---|---|---|---|"
echo "| one Redis | $m_single | ${single[*]} | ${cpu_single[*]} % |"
echo "| Redis Cluster, 3 masters on the same core, sharded (SPUBLISH, roomcast's) | $m_sharded | ${sharded[*]} | ${cpu_cluster[*]} % |"
echo "| the same with classic PUBLISH (broadcast to every shard) | $m_classic | ${classic[*]} | |"
