"""Client-credentials tokens per second against a running authserver.

    python bench/client_credentials.py                    # starts its own server (embedded mode)
    python bench/client_credentials.py --workers 2        # ... with two worker processes
    python bench/client_credentials.py --dpop             # a fresh DPoP proof on every request
    python bench/client_credentials.py --url http://127.0.0.1:8000 \
        --client-id cli_demo_service --client-secret ...  # against a server you started

Load comes from several processes with keep-alive connections (http.client), so the load
generator itself is not the bottleneck on one core. Prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def _dpop_proofs(url: str, n: int) -> list[str]:
    """Proofs made before the clock starts, so the load measures the server, not the client."""
    import secrets as _secrets

    from joserfc import jws
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    htu = url + "/oauth/token"
    now = int(time.time()) + 5
    return [
        jws.serialize_compact(
            header,
            json.dumps(
                {"jti": _secrets.token_urlsafe(16), "htm": "POST", "htu": htu, "iat": now}
            ).encode(),
            key,
            algorithms=["ES256"],
        )
        for _ in range(n)
    ]


def _worker(url: str, auth: str, n: int, start: float, q: mp.Queue, dpop: bool) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = "grant_type=client_credentials"
    headers = {
        "Authorization": auth,
        "Content-Type": "application/x-www-form-urlencoded",
        "Connection": "keep-alive",
    }
    proofs = _dpop_proofs(url, n) if dpop else []
    while time.time() < start:
        time.sleep(0.001)
    lat, errors = [], 0
    for i in range(n):
        if dpop:
            headers["DPoP"] = proofs[i]
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/oauth/token", body, headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or b"access_token" not in data:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        lat.append(time.perf_counter() - t0)
    q.put((lat, errors))


def run_load(
    url: str, client_id: str, secret: str, total: int, concurrency: int, dpop: bool = False
) -> dict:
    auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    q: mp.Queue = mp.Queue()
    per = total // concurrency
    start = time.time() + 1.0 + (per / 4000 if dpop else 0)  # time to pre-build proofs
    procs = [
        mp.Process(target=_worker, args=(url, auth, per, start, q, dpop))
        for _ in range(concurrency)
    ]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    elapsed = time.time() - start
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    done = len(lat)
    return {
        "requests": done,
        "errors": errors,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "tokens_per_second": round((done - errors) / elapsed, 1),
        "p50_ms": round(lat[done // 2] * 1000, 2),
        "p99_ms": round(lat[int(done * 0.99) - 1] * 1000, 2),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_own_server(workers: int, threads: int) -> tuple[subprocess.Popen, str, str, str, dict]:
    inst = tempfile.mkdtemp(prefix="authserver-bench-")
    env = {
        **os.environ,
        "AUTHSERVER_INSTANCE_PATH": inst,
        "AUTHSERVER_WORKERS": str(workers),
        "AUTHSERVER_THREADS": str(threads),
    }
    env.pop("AUTHSERVER_ISSUER", None)
    cli = [sys.executable, "-m", "authserver.cli"]
    demo = json.loads(
        subprocess.run([*cli, "demo"], env=env, check=True, capture_output=True, cwd=ROOT).stdout
    )
    svc = next(c for c in demo["clients"] if c["client_id"] == "cli_demo_service")
    port = _free_port()
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/oauth/jwks")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit("server did not start")
    return proc, url, svc["client_id"], svc["client_secret"], env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--client-id")
    ap.add_argument("--client-secret")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="worker processes of our own server")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument(
        "--dpop", action="store_true", help="send a fresh DPoP proof with every request"
    )
    args = ap.parse_args()
    proc = None
    if args.url:
        url, cid, secret = args.url, args.client_id, args.client_secret
        setup = "external"
    else:
        proc, url, cid, secret, env = start_own_server(args.workers, args.threads)
        backend = "postgresql" if env.get("DATABASE_URL") else "sqlite"
        store = "redis" if env.get("REDIS_URL") else "sql"
        setup = f"{backend}+{store}, {args.workers} worker(s) x {args.threads} threads"
    try:
        run_load(url, cid, secret, min(200, args.requests), args.concurrency, args.dpop)  # warm-up
        result = run_load(url, cid, secret, args.requests, args.concurrency, args.dpop)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=15)
    name = "client_credentials_dpop" if args.dpop else "client_credentials"
    print(json.dumps({"benchmark": name, "server": setup, "cpus": os.cpu_count(), **result}))


if __name__ == "__main__":
    main()
