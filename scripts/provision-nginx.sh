#!/usr/bin/env bash
# Install Debian's nginx for the reverse-proxy tests (trusted proxies, a
# fleet of listeners behind one proxy). Only the binary is used: tests start
# their own nginx with their own config file; no system nginx is started.
# Writes the binary's path to .services.env as SCRUBBER_TEST_NGINX.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
BIN=/usr/sbin/nginx
POLICY=/usr/sbin/policy-rc.d

log() { echo "provision-nginx: $*" >&2; }

# install_debian WHAT PACKAGE...: from Debian, with a policy-rc.d (removed on exit)
# that keeps the packages' postinst from starting a system nginx on port 80.
install_debian() {
    local what=$1
    shift
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$POLICY"
        chmod 0755 "$POLICY"
        trap 'rm -f "$POLICY"' EXIT
    fi
    log "installing $what from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ! -x "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot install nginx; proxy tests will not run"
        exit 0
    fi
    install_debian nginx nginx
fi
STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
if [ ! -e "$STREAM" ] && [ "$(id -u)" = 0 ]; then
    # The stream module: SMTP behind nginx with proxy_protocol (tests/test_listener_proxy.py).
    install_debian "nginx's stream module" libnginx-mod-stream
fi
if ! "$BIN" -v >/dev/null 2>&1; then
    log "$BIN does not run; proxy tests will not run"
    exit 0
fi
touch "$ENV_FILE"
grep -v -e '^SCRUBBER_TEST_NGINX=' -e '^SCRUBBER_TEST_NGINX_STREAM=' "$ENV_FILE" \
    > "$ENV_FILE.tmp" || true
echo "SCRUBBER_TEST_NGINX=$BIN" >> "$ENV_FILE.tmp"
if [ -e "$STREAM" ]; then
    echo "SCRUBBER_TEST_NGINX_STREAM=$STREAM" >> "$ENV_FILE.tmp"
fi
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "nginx ready: $("$BIN" -v 2>&1)"
