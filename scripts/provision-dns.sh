#!/usr/bin/env bash
# Install dnsmasq (Debian's dnsmasq-base: the binary only, no system service)
# for the responder's DNS tests, which start their own instance on a free
# loopback port. Writes its path to .services.env as SCRUBBER_TEST_DNSMASQ.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
BIN=/usr/sbin/dnsmasq

log() { echo "provision-dns: $*" >&2; }

if [ ! -x "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install dnsmasq; DNS tests will not run"
        exit 0
    fi
    log "installing dnsmasq-base from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dnsmasq-base >/dev/null
fi
touch "$ENV_FILE"
grep -v '^SCRUBBER_TEST_DNSMASQ=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
echo "SCRUBBER_TEST_DNSMASQ=$BIN" >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "dnsmasq ready: $("$BIN" --version | head -1)"
