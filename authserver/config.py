"""Every setting, read from the environment once.

The defaults make the embedded deployment work with no configuration at all: SQLite and the
SQL-backed ephemeral store under ``instance/``, a key-encryption key and a hashing secret generated
there with file mode 0600. The distributed deployment sets ``DATABASE_URL``, ``REDIS_URL`` and the
two secrets explicitly, because several machines must share them.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from authserver.credentials import CODE_ALPHABET, USER_CODE_LENGTH

SIGNING_ALGS = ("ES256", "RS256", "Ed25519")
# OIDC Core §15.1: RS256 MUST be supported for ID tokens; OIDC Registration §2: it is the
# default when a client names no id_token_signed_response_alg.
ID_TOKEN_DEFAULT_ALG = "RS256"
DEFAULT_SCOPES = (
    "openid profile email phone offline_access devices:read devices:write users:read users:write tenant:read "
    "tenant:write modules:read modules:write customer-devices:read customer-devices:write "
    "clients:read clients:write"
)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    issuer: str
    instance_path: Path
    database_url: str
    redis_url: str | None
    key_encryption_key: bytes = field(repr=False)
    secret_key: bytes = field(repr=False)
    signing_alg: str = "ES256"
    audience: str = ""
    scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES.split())
    access_token_ttl: int = 900
    jwks_max_age: int = 300
    key_prepublish_seconds: int = 3600
    key_cache_seconds: int = 30
    max_request_bytes: int = 16384
    max_bulk_request_bytes: int = 8 * 1024 * 1024
    max_param_chars: int = 4096
    client_auth_failure_limit: int = 20
    client_auth_failure_window: int = 60
    retry_after_seconds: int = 5
    workers: int = 1
    threads: int = 8
    redis_prefix: str = "authserver:"
    dpop_max_age: int = 60
    dpop_max_future: int = 10
    dpop_nonce: frozenset[str] = frozenset()
    dpop_nonce_lifetime: int = 60
    id_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 86400
    refresh_token_idle_ttl: int = 7 * 86400
    device_code_ttl: int = 600
    device_poll_interval: int = 5
    user_code_failures_per_ip: int = 10
    user_code_failures_per_network: int = 50
    user_code_failures_per_account: int = 10
    user_code_ip_window: int = 600
    user_code_failures_global: int = 1000
    user_code_failures_per_tenant: int = 100
    sign_in_failures_per_ip: int = 20
    sign_in_failures_per_network: int = 100
    sign_in_window: int = 900
    sign_in_failures_per_account: int = 5
    sign_in_account_window: int = 300
    sign_in_failures_per_account_hour: int = 20
    device_authorizations_per_client: int = 300
    bulk_requests_per_tenant: int = 20
    bulk_request_window: int = 60
    device_authorizations_per_ip: int = 30
    device_authorization_window: int = 60
    sign_in_pages_per_ip: int = 60
    sign_in_pages_per_network: int = 300
    sign_in_page_window: int = 60
    link_code_ttl: int = 7 * 86400
    link_failures_per_code: int = 5
    link_failures_per_ip: int = 10
    link_failure_window: int = 900
    trusted_proxies: int = 0
    purge_interval: int = 300
    purge_grace: int = 3600
    metrics_token: str | None = field(default=None, repr=False)
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def max_token_lifetime(self) -> int:
        """The longest lifetime of anything signed by a key; a retired key stays published this long."""
        return max(self.access_token_ttl, self.id_token_ttl)

    @property
    def user_code_guess_probability(self) -> float:
        """Upper bound on the chance that guessing finds a given live user code in its lifetime.

        RFC 8628 §5.1. Every typed user code is charged before it is compared (``limits``):
        anonymous entries on ``/device`` to a budget shared by everyone (G wrong codes per
        ``device_code_ttl`` window), entries by a signed-in user or a back-office client to their
        tenant's budget (T per window) and can only ever match that tenant's codes. Per-address,
        per-network, per-account and per-client limits only share these budgets out. A code lives
        ``device_code_ttl`` seconds, so its life overlaps at most two windows of each budget: at
        most 2 (G + T) wrong codes can be compared while it lives. Each hits it with probability
        1 / 20^10 (10 characters from a 20-letter alphabet), hence

            P <= 2 (G + T) / 20^10;  defaults: 2 × 1100 / 1.024e13 = 2.15e-10 < 2^-32 = 2.33e-10.

        ``validate`` refuses a configuration where this bound reaches 2^-32.
        """
        budget = 2 * (self.user_code_failures_global + self.user_code_failures_per_tenant)
        return budget / len(CODE_ALPHABET) ** USER_CODE_LENGTH

    @property
    def signing_algs(self) -> tuple[str, ...]:
        """Every algorithm the server keeps keys for: the access tokens' (``signing_alg``)
        first, and RS256 for ID tokens."""
        return tuple(dict.fromkeys((self.signing_alg, ID_TOKEN_DEFAULT_ALG)))

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _secret(env: Mapping[str, str], name: str, path: Path, create: bool) -> bytes:
    """A 32-byte secret: ``name`` (base64url), else the file ``name_FILE`` names (created with
    mode 0600 when missing: Docker secrets style), else a 0600 file generated under instance/
    (embedded mode only)."""
    raw = env.get(name)
    file_path = env.get(f"{name}_FILE")
    if not raw and file_path:
        return _secret({}, name, Path(file_path), create=True)
    if raw:
        try:
            value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{name} must be base64url") from exc
        if len(value) != 32:
            raise ConfigError(f"{name} must decode to exactly 32 bytes, got {len(value)}")
        return value
    if path.exists():
        value = base64.urlsafe_b64decode(path.read_text().strip() + "==")
        if len(value) != 32:
            raise ConfigError(f"{path} must hold 32 bytes in base64url")
        return value
    if not create:
        raise ConfigError(
            f"{name} is required when DATABASE_URL is not SQLite: every app node must share it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once must not both write different secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _secret(env, name, path, create=False)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(value).decode().rstrip("="))
    return value


def _nonce_modes(raw: str) -> frozenset[str]:
    """``off``, or a comma-separated subset of ``token`` and ``resource``."""
    modes = {m.strip() for m in raw.split(",") if m.strip()}
    if modes == {"off"}:
        return frozenset()
    if not modes or not modes <= {"token", "resource"}:
        raise ConfigError("AUTHSERVER_DPOP_NONCE must be off, token, resource or token,resource")
    return frozenset(modes)


def _check_issuer(issuer: str) -> str:
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("AUTHSERVER_ISSUER must be an absolute http(s) URL")
    if parts.query or parts.fragment:
        # RFC 8414 §2: the issuer has no query or fragment components.
        raise ConfigError("AUTHSERVER_ISSUER must have no query or fragment")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback:
        # RFC 6749 §3.1/§3.2 and RFC 9700 §2: TLS is required off the loopback interface.
        raise ConfigError("AUTHSERVER_ISSUER must use https unless it is a loopback address")
    return issuer.rstrip("/")


def default_processes(embedded: bool) -> tuple[int, int]:
    """The server's worker processes and threads per process when not configured."""
    # PostgreSQL + Redis: one process per core (granian workers share the socket), a few
    # threads each for the time spent waiting on the database or Redis. Embedded SQLite: two
    # single-threaded processes per core. A hot-path write holds the file's write gate while
    # SQLite commits; with threads, the holder then waits for its process's GIL before it
    # can let go, and every writer queues behind it (bench/compare.py, 2 x 4 -> 4 x 1 on two
    # cores: device authorizations 1,668 -> 2,226 req/s; README "Performance"). Two per core
    # keep a core busy while the other process on it waits for the gate or a password hash;
    # at most 8 (each is a whole interpreter, and one SQLite file takes one writer at a time).
    cores = os.cpu_count() or 1
    return (min(8, cores * 2), 1) if embedded else (cores, 4)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    instance = Path(env.get("AUTHSERVER_INSTANCE_PATH") or Path.cwd() / "instance").resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'authserver.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://") :]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    if not database_url.startswith(("sqlite:///", "postgresql+psycopg://")):
        raise ConfigError(
            "DATABASE_URL must be sqlite:///PATH or postgresql://USER@HOST/DATABASE "
            f"(SQLite and PostgreSQL are supported), got {database_url.split(':', 1)[0]!r}"
        )
    embedded = database_url.startswith("sqlite")
    workers, threads = default_processes(embedded)
    issuer = _check_issuer(env.get("AUTHSERVER_ISSUER") or "http://127.0.0.1:8000")
    alg = env.get("AUTHSERVER_SIGNING_ALG") or "ES256"
    if alg not in SIGNING_ALGS:
        raise ConfigError(f"AUTHSERVER_SIGNING_ALG must be one of {', '.join(SIGNING_ALGS)}")
    scopes = tuple((env.get("AUTHSERVER_SCOPES") or DEFAULT_SCOPES).split())
    settings = Settings(
        issuer=issuer,
        instance_path=instance,
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        key_encryption_key=_secret(
            env, "AUTHSERVER_KEY_ENCRYPTION_KEY", instance / "key-encryption-key", embedded
        ),
        secret_key=_secret(env, "AUTHSERVER_SECRET_KEY", instance / "secret-key", embedded),
        signing_alg=alg,
        audience=env.get("AUTHSERVER_AUDIENCE") or f"{issuer}/api",
        scopes=scopes,
        access_token_ttl=_int(env, "AUTHSERVER_ACCESS_TOKEN_TTL", 900, 30),
        jwks_max_age=_int(env, "AUTHSERVER_JWKS_MAX_AGE", 300, 0),
        key_prepublish_seconds=_int(env, "AUTHSERVER_KEY_PREPUBLISH_SECONDS", 3600, 1),
        key_cache_seconds=_int(env, "AUTHSERVER_KEY_CACHE_SECONDS", 30, 1),
        max_request_bytes=_int(env, "AUTHSERVER_MAX_REQUEST_BYTES", 16384, 1024),
        max_bulk_request_bytes=_int(
            env, "AUTHSERVER_MAX_BULK_REQUEST_BYTES", 8 * 1024 * 1024, 16384
        ),
        client_auth_failure_limit=_int(env, "AUTHSERVER_CLIENT_AUTH_FAILURE_LIMIT", 20),
        client_auth_failure_window=_int(env, "AUTHSERVER_CLIENT_AUTH_FAILURE_WINDOW", 60),
        workers=_int(env, "AUTHSERVER_WORKERS", workers),
        threads=_int(env, "AUTHSERVER_THREADS", threads),
        redis_prefix=env.get("AUTHSERVER_REDIS_PREFIX") or "authserver:",
        dpop_max_age=_int(env, "AUTHSERVER_DPOP_MAX_AGE", 60, 10),
        dpop_max_future=_int(env, "AUTHSERVER_DPOP_MAX_FUTURE", 10, 0),
        dpop_nonce=_nonce_modes(env.get("AUTHSERVER_DPOP_NONCE") or "off"),
        dpop_nonce_lifetime=_int(env, "AUTHSERVER_DPOP_NONCE_LIFETIME", 60, 10),
        id_token_ttl=_int(env, "AUTHSERVER_ID_TOKEN_TTL", 600, 30),
        refresh_token_ttl=_int(env, "AUTHSERVER_REFRESH_TOKEN_TTL", 30 * 86400, 60),
        refresh_token_idle_ttl=_int(env, "AUTHSERVER_REFRESH_TOKEN_IDLE_TTL", 7 * 86400, 60),
        device_code_ttl=_int(env, "AUTHSERVER_DEVICE_CODE_TTL", 600, 60),
        device_poll_interval=_int(env, "AUTHSERVER_DEVICE_POLL_INTERVAL", 5, 1),
        user_code_failures_per_ip=_int(env, "AUTHSERVER_USER_CODE_FAILURES_PER_IP", 10),
        user_code_failures_per_network=_int(env, "AUTHSERVER_USER_CODE_FAILURES_PER_NETWORK", 50),
        user_code_failures_per_account=_int(env, "AUTHSERVER_USER_CODE_FAILURES_PER_ACCOUNT", 10),
        user_code_ip_window=_int(env, "AUTHSERVER_USER_CODE_IP_WINDOW", 600),
        user_code_failures_global=_int(env, "AUTHSERVER_USER_CODE_FAILURES_GLOBAL", 1000),
        user_code_failures_per_tenant=_int(env, "AUTHSERVER_USER_CODE_FAILURES_PER_TENANT", 100),
        sign_in_failures_per_ip=_int(env, "AUTHSERVER_SIGN_IN_FAILURES_PER_IP", 20),
        sign_in_failures_per_network=_int(env, "AUTHSERVER_SIGN_IN_FAILURES_PER_NETWORK", 100),
        sign_in_window=_int(env, "AUTHSERVER_SIGN_IN_WINDOW", 900),
        sign_in_failures_per_account=_int(env, "AUTHSERVER_SIGN_IN_FAILURES_PER_ACCOUNT", 5),
        sign_in_account_window=_int(env, "AUTHSERVER_SIGN_IN_ACCOUNT_WINDOW", 300),
        sign_in_failures_per_account_hour=_int(
            env, "AUTHSERVER_SIGN_IN_FAILURES_PER_ACCOUNT_HOUR", 20
        ),
        device_authorizations_per_client=_int(
            env, "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_CLIENT", 300
        ),
        device_authorizations_per_ip=_int(env, "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_IP", 30),
        device_authorization_window=_int(env, "AUTHSERVER_DEVICE_AUTHORIZATION_WINDOW", 60),
        bulk_requests_per_tenant=_int(env, "AUTHSERVER_BULK_REQUESTS_PER_TENANT", 20),
        bulk_request_window=_int(env, "AUTHSERVER_BULK_REQUEST_WINDOW", 60),
        sign_in_pages_per_ip=_int(env, "AUTHSERVER_SIGN_IN_PAGES_PER_IP", 60),
        sign_in_pages_per_network=_int(env, "AUTHSERVER_SIGN_IN_PAGES_PER_NETWORK", 300),
        sign_in_page_window=_int(env, "AUTHSERVER_SIGN_IN_PAGE_WINDOW", 60),
        link_code_ttl=_int(env, "AUTHSERVER_LINK_CODE_TTL", 7 * 86400, 60),
        link_failures_per_code=_int(env, "AUTHSERVER_LINK_FAILURES_PER_CODE", 5),
        link_failures_per_ip=_int(env, "AUTHSERVER_LINK_FAILURES_PER_IP", 10),
        link_failure_window=_int(env, "AUTHSERVER_LINK_FAILURE_WINDOW", 900),
        trusted_proxies=_int(env, "AUTHSERVER_TRUSTED_PROXIES", 0, 0),
        purge_interval=_int(env, "AUTHSERVER_PURGE_INTERVAL", 300, 0),
        purge_grace=_int(env, "AUTHSERVER_PURGE_GRACE", 3600, 0),
        metrics_token=env.get("AUTHSERVER_METRICS_TOKEN") or None,
        log_level=(env.get("AUTHSERVER_LOG_LEVEL") or "INFO").upper(),
    )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.jwks_max_age >= settings.key_prepublish_seconds:
        # A cached JWKS must expire before a pre-published key can start signing, or a relying
        # party could meet a kid it has never seen.
        raise ConfigError(
            "AUTHSERVER_JWKS_MAX_AGE must be shorter than AUTHSERVER_KEY_PREPUBLISH_SECONDS"
        )
    if not settings.scopes:
        raise ConfigError("AUTHSERVER_SCOPES must name at least one scope")
    if settings.user_code_guess_probability >= 2.0**-32:
        raise ConfigError(
            "AUTHSERVER_USER_CODE_FAILURES_GLOBAL plus AUTHSERVER_USER_CODE_FAILURES_PER_TENANT is "
            "too high: the chance of guessing a live user code would be "
            f"{settings.user_code_guess_probability:.3g}, not below 2^-32"
        )
    if settings.refresh_token_idle_ttl > settings.refresh_token_ttl:
        raise ConfigError(
            "AUTHSERVER_REFRESH_TOKEN_IDLE_TTL must not exceed AUTHSERVER_REFRESH_TOKEN_TTL"
        )
