"""Attempt limits that hold under concurrency and across processes (DESIGN invariant 8).

A ``Limit`` allows ``attempts`` failed attempts per key in a fixed window of ``window`` seconds
that starts at the key's first attempt. An attempt is *charged* to every limit that applies (an
address, its network, an account, a tenant, everyone) before it is evaluated: each charge is one
atomic increment in the shared store, so N concurrent attempts cannot all slip under a limit the
way "check, then count the failure" would let them. A success gives its charges back; a failure
keeps them until the window ends. When one limit is full, the attempt is refused without being
evaluated (no argon2 work, no lookup), every charge it took is given back, and the caller learns
which limit refused it and when that window ends (the true ``Retry-After``).

Because windows are fixed, any span of one window's length overlaps at most two windows: at most
``2 × attempts`` failures fit in it. The guessing bounds in ``authserver.config`` use that factor.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass, field

from authserver.config import Settings
from authserver.ephemeral import EphemeralStore


@dataclass(frozen=True)
class Limit:
    """``attempts`` failures per key per ``window`` seconds; ``scope`` names it in errors."""

    prefix: str
    attempts: int
    window: int
    scope: str


class Throttled(Exception):
    """An attempt refused by ``limit``; retry after ``retry_after`` seconds."""

    def __init__(self, limit: Limit, retry_after: int) -> None:
        super().__init__(f"too many failed attempts ({limit.scope})")
        self.limit = limit
        self.retry_after = retry_after


def _key(limit: Limit, ident: str) -> str:
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"lim:{limit.prefix}:{digest}"


@dataclass
class Attempt:
    """The charges one attempt took; give them back when the attempt succeeds."""

    store: EphemeralStore
    keys: list[str] = field(default_factory=list)

    def succeeded(self) -> None:
        for key in self.keys:
            self.store.give_back(key)
        self.keys.clear()


def charge(store: EphemeralStore, charges: list[tuple[Limit, str]]) -> Attempt:
    """Charge one attempt to each ``(limit, identity)``; raises ``Throttled`` when one is full."""
    attempt = Attempt(store)
    keys = [_key(limit, ident) for limit, ident in charges]
    # Every charge in one round trip (one statement, or one Redis pipeline); each is atomic.
    counts = store.hit_many(
        [(key, limit.window) for key, (limit, _) in zip(keys, charges, strict=True)]
    )
    attempt.keys.extend(keys)
    for (limit, _), (count, left) in zip(charges, counts, strict=True):
        if count > limit.attempts:
            attempt.succeeded()  # nothing was evaluated: the refused attempt costs nothing
            raise Throttled(limit, left)
    return attempt


@dataclass(frozen=True)
class Lockout:
    """A limit counted after the fact, for checks whose successes must stay cheap (client
    authentication: a read per request, no write). Once ``limit.attempts`` failures have been
    counted for a key in a window, every attempt for that key, right or wrong, is refused until
    the window ends: a right secret answered 200 while wrong ones get 429 would be an oracle."""

    limit: Limit

    def key(self, ident: str) -> str:
        """The store key whose value says until when ``ident`` is locked out."""
        return _key(self.limit, ident) + ":locked"

    def check(self, store: EphemeralStore, ident: str, now: float) -> None:
        """Raise ``Throttled`` while ``ident`` is locked out."""
        self.refuse_while_locked(store.get(self.key(ident)), now)

    def refuse_while_locked(self, until: str | None, now: float) -> None:
        """Raise ``Throttled`` if ``until`` (the value at ``key(ident)``) is still ahead."""
        if until is not None and float(until) > now:
            raise Throttled(self.limit, max(1, math.ceil(float(until) - now)))

    def failed(self, store: EphemeralStore, ident: str, now: float) -> None:
        """Count a failure; lock ``ident`` out when it fills the window (raises ``Throttled``
        for failures beyond the limit)."""
        count, left = store.hit(_key(self.limit, ident), self.limit.window)
        if count >= self.limit.attempts:
            store.put(self.key(ident), str(now + left), ttl=left)
        if count > self.limit.attempts:
            raise Throttled(self.limit, left)


def network_of(address: str) -> str:
    """The network an address belongs to for limits: its /24 (IPv4) or /64 (IPv6).

    One person or organisation usually holds a whole /24 or /64, so per-address limits alone
    would let them rotate addresses. Anything that is not an IP address is its own network.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# -- the limits, per kind of attempt -------------------------------------------------------------
# Each kind is charged per address and network (or per authenticated account) and per account or
# tenant: never only globally, so one actor cannot spend a budget that others need alone.

Charges = list[tuple[Limit, str]]


def anonymous_code_entry(s: Settings, ip: str) -> Charges:
    """A user code typed on /device by someone not signed in (RFC 8628 §5.1)."""
    return [
        (Limit("uc-ip", s.user_code_failures_per_ip, s.user_code_ip_window, "address"), ip),
        (
            Limit("uc-net", s.user_code_failures_per_network, s.user_code_ip_window, "network"),
            network_of(ip),
        ),
        (Limit("uc-all", s.user_code_failures_global, s.device_code_ttl, "anonymous"), "*"),
    ]


def account_code_entry(s: Settings, tenant_id: str, account: str) -> Charges:
    """A user code typed by a signed-in user or a back-office client of ``tenant_id``: it can only
    match that tenant's codes, and is charged to the account and the tenant, not to the
    anonymous budget (so an attacker throttling anonymous entry does not lock staff out)."""
    return [
        (
            Limit("uc-acct", s.user_code_failures_per_account, s.user_code_ip_window, "account"),
            f"{tenant_id}|{account}",
        ),
        (
            Limit("uc-tenant", s.user_code_failures_per_tenant, s.device_code_ttl, "tenant"),
            tenant_id,
        ),
    ]


def sign_in(
    s: Settings,
    kind: str,
    tenant_ref: str,
    login: str,
    ip: str,
    per_ip: tuple[int, int] | None = None,
) -> Charges:
    """A password check (``kind``: the channel). Per address (``per_ip``: attempts and window, if
    the channel has its own) and network, charged before any argon2 work; per account (as typed,
    so an unknown login is throttled like a known one) in two tiers, a short one and an hourly
    one, so repeated guessing of one account backs off to 20 an hour from all addresses."""
    account = f"{tenant_ref}|{login}"
    ip_attempts, ip_window = per_ip or (s.sign_in_failures_per_ip, s.sign_in_window)
    return [
        (Limit(f"{kind}-ip", ip_attempts, ip_window, "address"), ip),
        (
            Limit(f"{kind}-net", s.sign_in_failures_per_network, s.sign_in_window, "network"),
            network_of(ip),
        ),
        (
            Limit(
                f"{kind}-acct", s.sign_in_failures_per_account, s.sign_in_account_window, "account"
            ),
            account,
        ),
        (
            Limit(f"{kind}-acct-h", s.sign_in_failures_per_account_hour, 3600, "account"),
            account,
        ),
    ]


def sign_in_page(s: Settings, ip: str) -> Charges:
    """An authorization request that shows a sign-in or consent page keeps its state in the
    store while the person decides: limited per address and network (never per client, which
    would let one actor close an app's sign-in for everyone)."""
    w = s.sign_in_page_window
    return [
        (Limit("azx-ip", s.sign_in_pages_per_ip, w, "address"), ip),
        (Limit("azx-net", s.sign_in_pages_per_network, w, "network"), network_of(ip)),
    ]


def bulk_request(s: Settings, tenant_id: str) -> Charges:
    """A bulk creation or change: up to 10,000 rows written, on SQLite under the database's one
    write lock (about a second for the largest), so each tenant gets a budget of them per
    window and none can keep every other tenant's writes waiting (invariant 8)."""
    return [(Limit("bulk", s.bulk_requests_per_tenant, s.bulk_request_window, "tenant"), tenant_id)]


def device_authorization(s: Settings, client_id: str, ip: str) -> Charges:
    """RFC 8628 §3.1 requests: each creates state, so they are limited per client and address."""
    w = s.device_authorization_window
    return [
        (Limit("dva-ip", s.device_authorizations_per_ip, w, "address"), ip),
        (Limit("dva-client", s.device_authorizations_per_client, w, "client"), client_id),
    ]
