"""A private nginx for a test: Debian's binary (scripts/provision-nginx.sh),
its own prefix, config, pid and logs; never the system's nginx."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support import end_process, require_service

DEPLOYMENT = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def nginx_binary() -> str:
    return require_service("SCRUBBER_TEST_NGINX", "nginx")


def documented_proxy_config(marker: str = "nginx for example") -> str:
    """The nginx snippet docs/deployment.md shows (its indented block after ``marker``)."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    start = text.index(marker)
    lines = text[start:].splitlines()[1:]
    block: list[str] = []
    for line in lines:
        if line.startswith("    ") or (not line.strip() and block):
            block.append(line[4:])
        elif block:
            break
    return "\n".join(block).strip() + "\n"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dni.shop.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def documented_tls_proxy(directory: Path, port: int, upstreams: tuple[int, int]) -> str:
    """The documented config on 127.0.0.1:``port`` with a throw-away certificate
    (written in ``directory``) and the fleet's two ``upstreams``."""
    cert, key = self_signed(directory)
    return documented_with(
        documented_proxy_config(),
        ("listen 443 ssl", f"listen 127.0.0.1:{port} ssl"),
        ("/etc/letsencrypt/live/dni.shop.example/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/dni.shop.example/privkey.pem", str(key)),
        ("server 127.0.0.1:8025", f"server 127.0.0.1:{upstreams[0]}"),
        ("server 127.0.0.1:8026", f"server 127.0.0.1:{upstreams[1]}"),
    )


def documented_with(config: str, *changes: tuple[str, str]) -> str:
    """``config`` with each (old, new) replaced; fails if the docs no longer show an old."""
    for old, new in changes:
        assert old in config, f"docs/deployment.md no longer shows {old!r}"
        config = config.replace(old, new)
    return config


@contextmanager
def run_nginx(directory: Path, http_block: str, *, top: str = "") -> Iterator[Path]:
    """Run nginx in the foreground with ``http_block`` inside ``http {}``
    and ``top`` at the top level (load_module, a stream block) until the
    context ends; yields its error log."""
    binary = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    error_log = directory / "error.log"
    config = directory / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers write the temp dirs
    temps = "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
    temps = temps.replace("body_temp_path", "client_body_temp_path")
    config.write_text(
        f"{top}{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {error_log} warn;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n    access_log off;\n{temps}{http_block}}}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [binary, "-p", str(directory), "-e", str(error_log), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listens = r"listen\s+(?:127\.0\.0\.1:)?(\d+)"
        ports = [int(p) for p in re.findall(listens, http_block + top)]
        _wait_listening(proc, ports, error_log)
        yield error_log
    finally:
        end_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_listening(proc: subprocess.Popen[str], ports: list[int], error_log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            log = error_log.read_text() if error_log.exists() else ""
            raise AssertionError(f"nginx exited {proc.returncode}: {stderr}{log}")
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not start listening")
