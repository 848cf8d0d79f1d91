#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (Debian's prometheus for prometheus and promtool, chromium for the browser
# tests, systemd for systemd-analyze, redis-server for the cluster tests,
# iproute2's ss for the listen backlog, podman, buildah, runc and debootstrap
# for the container image; playwright-core and socket.io-client 2.0.3 and
# 4.x into tests/browser/node_modules, TypeScript and ws into
# clients/js/node_modules (the SDK's dev tooling), kosoku for the Autobahn conformance
# run into tests/autobahn/.venv, kubernetes-validate into tests/deploy/.venv;
# local stand-ins for the Dockerfile's base images), then checks formatting
# and lints and runs every test. kubectl (with kustomize) comes with the
# machine image.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v kubectl >/dev/null 2>&1; then
    echo "kubectl (with kustomize) is needed for tests/deploy.rs and is not on this machine" >&2
    exit 1
fi

missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # tests/redis_tls.rs makes its certificates
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
# The container tools with what Debian recommends (netavark, conmon's
# helpers), as a new user's `apt-get install podman` gets them.
containers=()
for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || containers+=("$tool")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#containers[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} ${containers[*]}"
    as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
if [ ${#containers[@]} -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${containers[@]}" >/dev/null
fi

echo "==> kosoku (tests/autobahn/.venv)"
if [ ! -x tests/autobahn/.venv/bin/kosoku ]; then
    python3 -m venv tests/autobahn/.venv
fi
tests/autobahn/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/autobahn/requirements.txt

echo "==> kubernetes-validate (tests/deploy/.venv)"
if [ ! -x tests/deploy/.venv/bin/python ]; then
    python3 -m venv tests/deploy/.venv
fi
tests/deploy/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt

echo "==> npm ci (tests/browser)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

echo "==> the SDK: npm ci, unit tests (clients/js; tests/sdk.rs runs it against the server)"
npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
npm test --prefix clients/js --silent

echo "==> base images for tests/container.rs (local stand-ins; no registry is reachable)"
as_root tests/container/stand-in-images.sh
export REQUIRE_CONTAINER_TEST=1

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # tests/shutdown_load.rs holds 10,000 connections, tests/admin_scale.rs 15,000
echo "==> cargo test"
# Benches are compiled by clippy above and smoke-run by tests/loadgen.rs; the
# load generator is a CLI, not a test harness, so it is not run here.
cargo test --lib --bins --tests --examples --locked --no-fail-fast
cargo test --doc --locked
