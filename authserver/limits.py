"""Attempt limits that hold under concurrency and across processes.

A ``SlotLimiter`` allows at most ``slots`` failed attempts per identity in any ``ttl``-second
period. Every attempt first takes a slot (an atomic claim in the shared store) and only then is
evaluated; a success gives its slot back, a failure keeps it for ``ttl``. Checking a counter and
incrementing it afterwards would let N concurrent attempts all pass a limit of 1; taking the slot
first cannot.
"""

from __future__ import annotations

import hashlib

from authserver.ephemeral import EphemeralStore


class SlotLimiter:
    def __init__(self, store: EphemeralStore, prefix: str, slots: int, ttl: int) -> None:
        self.store = store
        self.prefix = prefix
        self.slots = slots
        self.ttl = ttl

    def _key(self, ident: str | None, i: int) -> str:
        if ident is None:
            return f"{self.prefix}:{i}"
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self.prefix}:{digest}:{i}"

    def acquire(self, ident: str | None = None) -> str | None:
        """A slot for one attempt, or None when ``slots`` recent attempts have failed."""
        for i in range(self.slots):
            key = self._key(ident, i)
            if self.store.claim_once(key, ttl=self.ttl):
                return key
        return None

    def release(self, slot: str | None) -> None:
        """Give a slot back after a successful attempt."""
        if slot is not None:
            self.store.delete(slot)
