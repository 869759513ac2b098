#!/usr/bin/env bash
# Install microsocks (Debian's microsocks: the binary only, no system service)
# for the responder's SOCKS tests, which start their own instance on a free
# loopback port. Writes its path to .services.env as SCRUBBER_TEST_MICROSOCKS.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
BIN=/usr/bin/microsocks

log() { echo "provision-socks: $*" >&2; }

if [ ! -x "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install microsocks; SOCKS tests will not run"
        exit 0
    fi
    log "installing microsocks from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        microsocks >/dev/null
fi
touch "$ENV_FILE"
grep -v '^SCRUBBER_TEST_MICROSOCKS=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
echo "SCRUBBER_TEST_MICROSOCKS=$BIN" >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "microsocks ready: $(dpkg-query -W -f='${Version}' microsocks 2>/dev/null || echo "$BIN")"
