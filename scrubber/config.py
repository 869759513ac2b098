"""Settings: what ``scrubber.toml`` configures, validated into one object.

Locating, creating and opening the workspace that holds the file is
scrubber/workspace.py's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from scrubber.deadlines import LEDGER_DEFAULTS, parse_limit
from scrubber.errors import ConfigError
from scrubber.scheme import Params
from scrubber.transport import DEFAULT_GROUP

CONFIG_NAME = "scrubber.toml"


@dataclass(frozen=True)
class Settings:
    """Everything a workspace configures; one object passed to whoever needs it."""

    database_url: str = "sqlite:///scrubber.db"
    newsgroup: str = DEFAULT_GROUP
    post_server: str = "spool:spool"
    response_domain: str = "dni.example.test"
    response_base_url: str = "http://127.0.0.1:8025"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    http_host: str = "127.0.0.1"
    http_port: int = 8025
    argon2_t: int = 2
    argon2_m: int = 1024
    argon2_p: int = 1
    tag_length: int = 8
    salt_epoch_days: int = 30
    batch_expires_days: int = 30
    rate_limit_per_minute: int = 600
    # Comma-separated addresses or networks of reverse proxies whose
    # X-Forwarded-For names the real client (the listener's HTTP channel).
    trusted_proxies: str = ""
    private_key: str = "keys/operator.key"
    public_key: str = "keys/operator.pub"
    # Who the compliance reports name as the sender (an organisation, and a
    # mailbox or URL an auditor can reach).
    operator_name: str = ""
    operator_contact: str = ""
    # The ledger report's deadline rules: name = "N hours|days|business days".
    deadlines: dict[str, str] = field(default_factory=lambda: dict(LEDGER_DEFAULTS))
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def params(self) -> Params:
        return Params(t=self.argon2_t, m=self.argon2_m, p=self.argon2_p, tag_length=self.tag_length)

    def to_toml(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return tomli_w.dumps({"scrubber": data})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"unknown setting {key!r} in {CONFIG_NAME}")
            expected = type(getattr(cls(), key))
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(f"setting {key!r} must be {expected.__name__}, got {value!r}")
            values[key] = value
        _check_deadlines(values.get("deadlines", {}))
        settings = cls(**values)
        try:
            settings.params  # noqa: B018 - validates the Argon2 values
        except ValueError as exc:
            raise ConfigError(f"{CONFIG_NAME}: {exc}") from None
        return settings


def _check_deadlines(table: dict[str, Any]) -> None:
    for name, limit in table.items():
        if not isinstance(limit, str):
            raise ConfigError(f"deadline {name!r} must be a string like '10 business days'")
        try:
            parse_limit(limit)
        except ValueError as exc:
            raise ConfigError(f"{CONFIG_NAME}: {exc}") from None


# response_domain and response_base_url: every batch advertises them, so
# init checks them (and never takes the defaults, which only tests use).
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")


def check_response_domain(value: str) -> str:
    """The domain of the one-time SMTP addresses (dni-<token>@DOMAIN)."""
    domain = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise ConfigError(f"response domain {value!r} is not a domain name (e.g. dni.shop.example)")
    return domain


def check_base_url(value: str) -> str:
    """The public base URL of the HTTP listener (pings go to BASE/dni/v1/ping/...)."""
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base URL {value!r} is not an http(s) URL (e.g. https://dni.shop.example)"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL {value!r} may not have a query or fragment")
    return url
