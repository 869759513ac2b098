#!/usr/bin/env bash
# Install and start a local INN2 news server for the tests (idempotent).
#
# - port 119: innd with nnrpd for readers; localhost may read and post.
# - port 1119: a second nnrpd whose readers.conf demands AUTHINFO USER/PASS.
# - port 1563: nnrpd with implicit TLS; port 119 offers STARTTLS. The
#   self-signed certificate for 127.0.0.1 goes into the system trust store.
# Writes SCRUBBER_TEST_NNTP, _NNTP_AUTH and _NNTPS to .services.env.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
NEWSBIN=/usr/lib/news/bin
AUTH_PORT=1119
AUTH_USER=scrubber
AUTH_PASS=scrubber-test
AUTH_CONF=/etc/news/readers-scrubber-auth.conf
AUTH_PASSWD=/etc/news/scrubber-auth.passwd
NEWSGROUPS=(alt.dni.batches alt.dni.test)
TLS_PORT=1563
TLS_DIR=/etc/news/scrubber-tls
TLS_CA=/usr/local/share/ca-certificates/scrubber-test-inn.crt

log() { echo "provision-inn: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 60); do
        port_open "$1" && return 0
        sleep 0.5
    done
    log "nothing listens on port $1"; return 1
}

# inn.conf must name the host before the package's configure step succeeds.
set_conf() {
    local key=$1 value=$2 conf=/etc/news/inn.conf
    if grep -q "^$key:" "$conf"; then
        sed -i "s|^$key:.*|$key: $value|" "$conf"
    else
        echo "$key: $value" >> "$conf"
    fi
}

install_inn() {
    if dpkg-query -W -f='${Status}' inn2 2>/dev/null | grep -q "install ok installed"; then
        return
    fi
    log "installing inn2 from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show inn2 >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
    fi
    # The configure step fails on a fresh machine until inn.conf names the host.
    apt-get install -y -qq inn2 >/dev/null 2>&1 || true
    [ -f /etc/news/inn.conf ] || { log "inn2 did not unpack"; exit 1; }
    set_conf domain example.test
    set_conf pathhost news.example.test
    dpkg --configure -a >/dev/null
}

start_innd() {
    if port_open 119; then
        return
    fi
    log "starting innd"
    # rc.news keeps its children on its stdout: detach it fully.
    su news -s /bin/sh -c "$NEWSBIN/rc.news start" >/dev/null 2>&1 </dev/null &
    wait_port 119
    for _ in $(seq 1 60); do
        "$NEWSBIN/ctlinnd" -t 5 mode >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    log "innd does not answer ctlinnd"; exit 1
}

create_groups() {
    local group
    for group in "${NEWSGROUPS[@]}"; do
        if ! grep -q "^$group " /var/lib/news/active; then
            "$NEWSBIN/ctlinnd" -t 10 newgroup "$group" y scrubber >/dev/null
        fi
    done
}

start_auth_nnrpd() {
    if [ ! -f "$AUTH_PASSWD" ]; then
        echo "$AUTH_USER:$(openssl passwd -5 "$AUTH_PASS")" > "$AUTH_PASSWD"
        chown news:news "$AUTH_PASSWD"
        chmod 0640 "$AUTH_PASSWD"
    fi
    cat > "$AUTH_CONF" <<EOF
# Readers on port $AUTH_PORT must authenticate (scrubber's AUTHINFO tests).
auth "password" {
    auth: "ckpasswd -f $AUTH_PASSWD"
}
access "authenticated" {
    users: "$AUTH_USER"
    newsgroups: "*"
    access: RPA
}
EOF
    if port_open "$AUTH_PORT"; then
        return
    fi
    log "starting the AUTHINFO nnrpd on port $AUTH_PORT"
    su news -s /bin/sh -c "$NEWSBIN/nnrpd -D -p $AUTH_PORT -c $AUTH_CONF" \
        >/dev/null 2>&1 </dev/null &
    wait_port "$AUTH_PORT"
}

# A self-signed certificate for 127.0.0.1, trusted system-wide, so STARTTLS on
# port 119 and implicit TLS (nntps) on $TLS_PORT verify like a real server.
setup_tls() {
    if [ ! -f "$TLS_DIR/cert.pem" ]; then
        mkdir -p "$TLS_DIR"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -days 3650 -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
        chown -R news:news "$TLS_DIR"
        chmod 0600 "$TLS_DIR/key.pem"
    fi
    set_conf tlscertfile "$TLS_DIR/cert.pem"
    set_conf tlskeyfile "$TLS_DIR/key.pem"
    if ! cmp -s "$TLS_DIR/cert.pem" "$TLS_CA"; then
        cp "$TLS_DIR/cert.pem" "$TLS_CA"
        update-ca-certificates >/dev/null 2>&1
    fi
}

start_tls_nnrpd() {
    if port_open "$TLS_PORT"; then
        return
    fi
    log "starting the implicit-TLS nnrpd on port $TLS_PORT"
    su news -s /bin/sh -c "$NEWSBIN/nnrpd -D -S -p $TLS_PORT" >/dev/null 2>&1 </dev/null &
    wait_port "$TLS_PORT"
}

write_env() {
    touch "$ENV_FILE"
    grep -v '^SCRUBBER_TEST_NNTP' "$ENV_FILE" > "$ENV_FILE.tmp" || true
    {
        echo "SCRUBBER_TEST_NNTP=nntp://127.0.0.1:119"
        echo "SCRUBBER_TEST_NNTP_AUTH=nntp://$AUTH_USER:$AUTH_PASS@127.0.0.1:$AUTH_PORT"
        echo "SCRUBBER_TEST_NNTPS=nntps://127.0.0.1:$TLS_PORT"
    } >> "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

if [ "$(id -u)" != 0 ]; then
    log "not root: cannot install or start INN2; news server tests will not run"
    exit 0
fi
install_inn
setup_tls
start_innd
create_groups
start_auth_nnrpd
start_tls_nnrpd
write_env
log "INN2 ready: nntp://127.0.0.1:119, AUTHINFO on port $AUTH_PORT"
