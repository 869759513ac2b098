#!/usr/bin/env bash
# Install Debian's Chromium for the headless HTML-report test.
# Writes its path to .services.env as SCRUBBER_TEST_CHROMIUM.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
BIN=/usr/bin/chromium

log() { echo "provision-chromium: $*" >&2; }

if [ ! -x "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install Chromium; browser tests will not run"
        exit 0
    fi
    log "installing chromium from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi
if ! "$BIN" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; then
    log "$BIN does not run; browser tests will not run"
    exit 0
fi
touch "$ENV_FILE"
grep -v '^SCRUBBER_TEST_CHROMIUM=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
echo "SCRUBBER_TEST_CHROMIUM=$BIN" >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "Chromium ready: $("$BIN" --version 2>/dev/null)"
