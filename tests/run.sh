#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (Debian's prometheus for promtool, chromium for the browser tests,
# playwright-core into tests/browser/node_modules, kosoku for the Autobahn
# conformance run into tests/autobahn/.venv), then checks formatting and lints
# and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

echo "==> kosoku (tests/autobahn/.venv)"
if [ ! -x tests/autobahn/.venv/bin/kosoku ]; then
    python3 -m venv tests/autobahn/.venv
fi
tests/autobahn/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/autobahn/requirements.txt

echo "==> npm ci (tests/browser)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
# Benches are compiled by clippy above and smoke-run by tests/loadgen.rs; the
# load generator is a CLI, not a test harness, so it is not run here.
cargo test --lib --bins --tests --examples --locked --no-fail-fast
cargo test --doc --locked
