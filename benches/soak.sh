#!/usr/bin/env bash
# Soak: tests/soak.rs's driver for 10 minutes against a release build.
# Clients of every kind (raw, roomcast.v1, socket.io 4.x and 2.0.3) connect,
# join rooms, talk, leave with or without a goodbye, and come back, at a
# steady churn; then it checks server RSS at the end against minute 1
# (±10 %), open files and every connection/room gauge back where they
# started. Bounded: SOAK_SECS (default 600), then it stops by itself.
#
#   benches/soak.sh               # 10 minutes
#   SOAK_SECS=120 benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
SOAK_SECS=${SOAK_SECS:-600} cargo test --release --test soak -- --nocapture 2>&1 | tee target/soak.log
grep '^soak ' target/soak.log
