#!/usr/bin/env bash
# Install wrk (Debian's package), the HTTP load generator bench/listen_http.py
# drives both of its servers with (idempotent). Writes SCRUBBER_BENCH_WRK
# (its path) to .services.env.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env

log() { echo "provision-wrk: $*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install wrk; run as root or apt-get install wrk"; exit 1
    fi
    log "installing wrk from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show wrk >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
    fi
    apt-get install -y -qq wrk >/dev/null
fi
touch "$ENV_FILE"
grep -v '^SCRUBBER_BENCH_WRK=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
echo "SCRUBBER_BENCH_WRK=$(command -v wrk)" >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
