"""Expired state is removed, so abandoned flows and old tokens cannot grow the database forever.

What goes, and when (``now`` in unix seconds):
- device authorizations ``AUTHSERVER_PURGE_GRACE`` seconds after they expired (until then a late
  poll still gets ``expired_token`` and a reused code is still recognised);
- the durable copies of revocation entries once no token they could affect is left;
- refresh tokens once expired, and every refresh token of a family that is gone;
- refresh families once their absolute lifetime, or their revocation, is older than the longest
  access-token lifetime (a token issued from a family never outlives the family by more);
- on PostgreSQL, the device tallies' appended rows are folded into one per combination.

Every statement is idempotent and touches at most ``BATCH`` rows per transaction, so running it
on every worker at once, or while the server serves, is safe; ``maybe_purge`` still lets one
worker in the deployment run it per interval (a claim in the shared store).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from authserver.config import Settings
from authserver.devices import fold_tallies
from authserver.ephemeral import EphemeralStore, StoreUnavailable
from authserver.models import (
    AuthorizationCode,
    DeviceAuthorization,
    RefreshFamily,
    RefreshToken,
    Revocation,
)
from authserver.tokens import BLOCKED

log = logging.getLogger("authserver.retention")
BATCH = 5000


def _delete_batches(engine: Engine, table: Any, key: Any, condition: Any) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(key).where(condition).limit(BATCH).scalar_subquery()
            removed = conn.execute(delete(table).where(key.in_(ids))).rowcount or 0
        total += removed
        if removed < BATCH:
            return total


def purge_expired(engine: Engine, settings: Settings, now: int) -> dict[str, int]:
    """Delete expired state (see the module docstring); returns rows removed per table."""
    family_gone = or_(
        RefreshFamily.expires_at < now - settings.max_token_lifetime,
        # A family only a device block revoked is kept while the device is blocked: unblocking
        # with restored sessions brings it back (until its own expiry).
        and_(
            RefreshFamily.revoked_at < now - settings.max_token_lifetime,
            RefreshFamily.revoked_reason != BLOCKED,
        ),
    )
    counts = {
        "device_authorizations": _delete_batches(
            engine,
            DeviceAuthorization,
            DeviceAuthorization.id,
            # Kept while the access token its redemption issued may live: a module's next
            # enrolment revokes that token by the hash kept here (authserver.device_flow).
            DeviceAuthorization.expires_at
            < now - max(settings.purge_grace, settings.access_token_ttl),
        ),
        # The same for codes: a used code presented again revokes what it gave while that lives.
        "authorization_codes": _delete_batches(
            engine,
            AuthorizationCode,
            AuthorizationCode.id,
            AuthorizationCode.expires_at
            < now - max(settings.purge_grace, settings.access_token_ttl),
        ),
        "revocations": _delete_batches(
            engine, Revocation, Revocation.key, Revocation.expires_at_ms < now * 1000
        ),
        "refresh_tokens": _delete_batches(
            engine,
            RefreshToken,
            RefreshToken.token_hash,
            or_(
                RefreshToken.expires_at < now,
                exists().where(RefreshFamily.id == RefreshToken.family_id, family_gone),
            ),
        ),
    }
    # PostgreSQL's appended device tallies (migration 0022), folded into one row per tenant and
    # combination, so that a tenant that never asks for a count does not grow them forever.
    fold_tallies(engine)
    counts["refresh_families"] = _delete_batches(
        engine,
        RefreshFamily,
        RefreshFamily.id,
        family_gone & ~exists().where(RefreshToken.family_id == RefreshFamily.id),
    )
    return counts


def maybe_purge(engine: Engine, settings: Settings, store: EphemeralStore, now: float) -> None:
    """Purge if no process of the deployment has within ``purge_interval`` seconds."""
    try:
        if not store.claim_once("purge", ttl=settings.purge_interval):
            return
        counts = purge_expired(engine, settings, int(now))
    except (StoreUnavailable, OperationalError):
        log.warning("purge skipped: a store is unreachable")
        return  # a later request tries again
    if any(counts.values()):
        log.info("purged expired state: %s", counts)


def install(
    app: Any, engine: Engine, settings: Settings, store: EphemeralStore, clock: Any
) -> None:
    """Run ``maybe_purge`` after a response has been sent, at most once per interval per
    process (and, through the store, once per interval in the deployment)."""
    if settings.purge_interval <= 0:
        return
    due = [0.0]

    def after(resp: Any) -> Any:
        t = clock()
        if t < due[0]:
            return resp
        due[0] = t + settings.purge_interval

        def run() -> None:
            with app.app_context():
                maybe_purge(engine, settings, store, clock())

        resp.call_on_close(run)
        return resp

    app.after_request(after)
