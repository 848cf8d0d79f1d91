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
