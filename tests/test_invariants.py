"""DESIGN's invariants each have at least one test named for them (``test_invariant_<n>_...``),
so "every invariant has a test" can be checked, here, rather than believed."""

from __future__ import annotations

import re
from pathlib import Path

INVARIANTS = {
    1: "a code or refresh token is redeemed at most once, across processes",
    2: "a DPoP proof is accepted at most once, for its method and URL, in its window",
    3: "a token of a blocked, unlinked or deleted device, or revoked, is refused at once",
    4: "no request reaches another tenant's data",
    5: "bad input gets a clear 4xx and changes nothing",
    6: "no secret stored or logged in clear; nothing readable makes a token",
    7: "every JWT is checked against an asymmetric allow-list first",
    8: "one actor cannot deny service to others",
}


def test_every_design_invariant_has_a_named_test():
    names = set()
    for path in Path(__file__).parent.rglob("test_*.py"):
        names.update(re.findall(r"^def (test_invariant_(\d)_\w+)\(", path.read_text(), re.M))
    covered = {int(n) for _, n in names}
    assert covered == set(INVARIANTS), (
        f"invariants without a named test: {set(INVARIANTS) - covered}"
    )
