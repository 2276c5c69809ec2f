"""DPoP proof verifications per second (RFC 9449 §4.3, replay-store write included) against raw
ES256 signature verifications per second on the same machine, and their ratio.

    python bench/dpop_proofs.py              # SQL store on a temporary SQLite database
    REDIS_URL=redis://127.0.0.1:6379/0 python bench/dpop_proofs.py   # the Redis store

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey

from authserver.ephemeral import RedisStore, SqlStore
from grants.dpop import verify_proof

URL = "https://as.example.com/oauth/token"


def make_store():
    if os.environ.get("REDIS_URL"):
        return RedisStore(os.environ["REDIS_URL"], f"bench-{secrets.token_hex(4)}:"), "redis"
    from sqlalchemy import create_engine

    from authserver.models import EphemeralEntry

    path = os.path.join(tempfile.mkdtemp(), "bench.db")
    engine = create_engine(f"sqlite:///{path}")
    EphemeralEntry.__table__.create(engine)
    return SqlStore(engine), "sqlite"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3000)
    args = ap.parse_args()
    key = ECKey.generate_key("P-256", private=True)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    now = int(time.time())
    proofs = [
        jws.serialize_compact(
            header,
            json.dumps(
                {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": URL, "iat": now}
            ).encode(),
            key,
            algorithms=["ES256"],
        )
        for _ in range(args.n)
    ]
    store, store_name = make_store()

    t0 = time.perf_counter()
    for p in proofs:
        verify_proof([p], method="POST", url=URL, now=now, max_age=60, max_future=10, store=store)
    proof_rate = args.n / (time.perf_counter() - t0)

    raw_key = ec.generate_private_key(ec.SECP256R1())
    pub = raw_key.public_key()
    msg = b"x" * 300
    sig = raw_key.sign(msg, ec.ECDSA(hashes.SHA256()))
    t0 = time.perf_counter()
    for _ in range(args.n):
        pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    raw_rate = args.n / (time.perf_counter() - t0)

    print(
        json.dumps(
            {
                "benchmark": "dpop_proof_verification",
                "store": store_name,
                "proofs_per_second": round(proof_rate, 1),
                "raw_es256_verifies_per_second": round(raw_rate, 1),
                "ratio": round(proof_rate / raw_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
