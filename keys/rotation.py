"""The key lifecycle: next -> current -> retired -> removed.

- ``next`` is published in the JWKS from the moment it is created, and only becomes ``current``
  (the key that signs) after ``AUTHSERVER_KEY_PREPUBLISH_SECONDS``, longer than the JWKS
  ``Cache-Control`` max-age, so every relying party has seen it before it meets a token signed by it.
- ``retired`` keys sign nothing and stay published until every token they signed has expired:
  the longest token lifetime, plus the time a worker may keep signing with a cached key, plus skew.
- ``removed`` keys are no longer published; their private material is wiped.

Each algorithm the server signs with (``Settings.signing_algs``: the access tokens' and RS256 for
ID tokens) has its own lifecycle. The database enforces one current and one next key per algorithm
(partial unique indexes), so processes that start or rotate at the same moment cannot create two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from authserver.config import Settings
from authserver.models import KeyState, SigningKey
from keys import algorithms
from keys.encryption import KeyEncryptor

# A plain session (tests, scripts) or Flask-SQLAlchemy's scoped one (the app, the CLI).
SessionLike = Session | scoped_session[Any]

CLOCK_SKEW = 60


class RotationTooEarly(Exception):
    """The next key has not been published long enough to start signing."""

    def __init__(self, kid: str, seconds_left: int) -> None:
        super().__init__(
            f"next key {kid} has been published for less than the pre-publication time; "
            f"rotate again in {seconds_left} s or pass --force"
        )
        self.seconds_left = seconds_left


class NoKeysForAlgorithm(ValueError):
    """Rotation asked for an algorithm the server does not sign with."""


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    alg: str
    state: str
    created_at: int
    activated_at: int | None
    retired_at: int | None
    remove_after: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _new_key(alg: str, encryptor: KeyEncryptor, state: str, now: int) -> SigningKey:
    key = algorithms.generate(alg)
    kid = key.thumbprint()  # RFC 7638 thumbprint: stable, unique, derived from the public key
    pem = key.as_pem(private=True)
    return SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=algorithms.public_jwk(key, kid, alg),
        private_key_enc=encryptor.encrypt(kid, pem),
        created_at=now,
        activated_at=now if state == KeyState.CURRENT else None,
    )


def retention_seconds(settings: Settings) -> int:
    """How long a retired key stays published after it stopped signing."""
    return settings.max_token_lifetime + settings.key_cache_seconds + CLOCK_SKEW


def _key(session: SessionLike, alg: str, state: str, lock: bool = False) -> SigningKey | None:
    query = select(SigningKey).where(SigningKey.alg == alg, SigningKey.state == state)
    return session.scalars(query.with_for_update() if lock else query).one_or_none()


def ensure_keys(
    session: SessionLike, settings: Settings, encryptor: KeyEncryptor, now: int
) -> bool:
    """Create each algorithm's current and next keys when missing. True when it created one."""
    created = False
    for alg in settings.signing_algs:
        for state in (KeyState.CURRENT, KeyState.NEXT):
            if _key(session, alg, state) is not None:
                continue
            session.add(_new_key(alg, encryptor, state, now))
            try:
                session.commit()
                created = True
            except IntegrityError:
                # Another process created it first; theirs stands.
                session.rollback()
    return created


def rotate(
    session: SessionLike,
    settings: Settings,
    encryptor: KeyEncryptor,
    now: int,
    force: bool = False,
    alg: str | None = None,
) -> list[dict[str, str]]:
    """For ``alg`` (or every signing algorithm): promote next to current, retire current and
    create a new next key, all in one transaction. Nothing rotates when one algorithm's next
    key has not been published long enough (unless ``force``)."""
    ensure_keys(session, settings, encryptor, now)
    algs = (alg,) if alg is not None else settings.signing_algs
    pairs = []
    for name in algs:
        nxt, current = (
            _key(session, name, KeyState.NEXT, True),
            _key(session, name, KeyState.CURRENT),
        )
        if nxt is None or current is None:
            session.rollback()
            raise NoKeysForAlgorithm(
                f"no {name} keys: the server signs with {', '.join(settings.signing_algs)}"
            )
        age = now - nxt.created_at
        if age < settings.key_prepublish_seconds and not force:
            session.rollback()
            raise RotationTooEarly(nxt.kid, settings.key_prepublish_seconds - age)
        pairs.append((name, nxt, current))
    rotated = []
    for name, nxt, current in pairs:
        current.state = KeyState.RETIRED
        current.retired_at = now
        current.remove_after = now + retention_seconds(settings)
        session.flush()
        nxt.state = KeyState.CURRENT
        nxt.activated_at = now
        session.flush()
        session.add(_new_key(name, encryptor, KeyState.NEXT, now))
        rotated.append({"alg": name, "retired": current.kid, "current": nxt.kid})
    purge_removed(session, now)
    session.commit()
    return rotated


def purge_removed(session: SessionLike, now: int) -> None:
    """Retired keys past their retention are removed: unpublished, private part wiped."""
    session.execute(
        update(SigningKey)
        .where(SigningKey.state == KeyState.RETIRED, SigningKey.remove_after <= now)
        .values(state=KeyState.REMOVED, private_key_enc=None)
    )


def list_keys(session: SessionLike, now: int) -> list[KeyInfo]:
    order: dict[str, int] = {
        KeyState.NEXT: 0,
        KeyState.CURRENT: 1,
        KeyState.RETIRED: 2,
        KeyState.REMOVED: 3,
    }
    rows = session.scalars(select(SigningKey)).all()
    infos = []
    for row in rows:
        state = row.state
        if state == KeyState.RETIRED and row.remove_after is not None and row.remove_after <= now:
            state = KeyState.REMOVED
        infos.append(
            KeyInfo(
                kid=row.kid,
                alg=row.alg,
                state=state,
                created_at=row.created_at,
                activated_at=row.activated_at,
                retired_at=row.retired_at,
                remove_after=row.remove_after,
            )
        )
    return sorted(infos, key=lambda k: (order[k.state], k.alg, -k.created_at))
