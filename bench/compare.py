"""authserver against node-oidc-provider, side by side, on this machine: one command, one table.

    .venv/bin/python bench/compare.py                 # embedded default (SQLite), 3 x 10 s
    .venv/bin/python bench/compare.py --quick         # 1 x 3 s: a smoke run
    DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/compare.py
    .venv/bin/python bench/compare.py --only cc,me    # some scenarios

Needs wrk (Debian package ``wrk``) and Node.js; installs the peer (``bench/peer``, oidc-provider
at the version pinned in its package-lock.json) with ``npm ci`` on first use.

For every scenario both servers get the same requests from wrk (2 threads, 32 keep-alive
connections): a warm-up, then rounds that alternate which server goes first. Each DPoP request
carries its own proof, each refresh its own refresh token (the rotated one goes back into the
pool), all made before the clock starts. Printed: requests per second, p50 and p99 latency,
answers with an unexpected status or socket errors, server CPU per request (from /proc, the
server's whole process tree), the ratio authserver / oidc-provider, and authserver's throughput
as a fraction of the floor: a Flask hello served by the same WSGI server and workers. Then the
in-process microbenchmarks (bench/inprocess.py).

The peer stands in for our two resource reads with what it has: its userinfo endpoint with the
same DPoP-bound token and proof for ``GET /api/v1/devices/me``, and a route that verifies the
JWT access token (jose) and answers 50 devices from memory for ``GET /api/v1/devices?limit=50``:
the same items as ours (every key, values of the same shape), so both send the same page.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from authserver.config import default_processes  # noqa: E402
from bench.proofs import ProofKey  # noqa: E402

PEER = ROOT / "bench" / "peer"
LUA = ROOT / "bench" / "wrk" / "request.lua"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LINK_GRANT = "urn:authserver:params:oauth:grant-type:link-code"
# Each run ends with up to 32 rotated tokens in flight (lost to the pools): 256 leave at least
# three per connection after five runs.
REFRESH_TOKENS = 256
SCENARIOS = {
    "cc": "client credentials, JWT access token",
    "cc_dpop": "client credentials + DPoP proof",
    "device_authz": "device authorization request",
    "poll": "device_code poll while pending (400)",
    "introspect": "introspection of an active token",
    "refresh": "refresh with rotation",
    "me": "GET /devices/me, DPoP token + proof",
    "list": "GET /devices?limit=50, service token",
}
# Raised so that the benchmark counts the limits' cost without hitting them: thousands of device
# authorizations a second from one client and one address are a flood by RFC 8628 §5.2.
BENCH_ENV = {
    "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_CLIENT": "1000000000",
    "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_IP": "1000000000",
    "AUTHSERVER_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def call(base: str, method: str, path: str, body: Any = None, headers: dict | None = None,
         form: bool = True) -> tuple[int, Any]:  # fmt: skip
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = dict(headers or {})
    data = None
    if body is not None and form:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def wait_until_up(base: str, path: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server at {base} exited ({proc.returncode})")
        with contextlib.suppress(OSError):
            if call(base, "GET", path)[0] < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{base} did not answer within {seconds} s")


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and all its descendants (live ones), from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        stats[int(entry)] = (ppid, (utime + stime) / tick)
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(children.get(pid, []))
    return total


@dataclass
class Target:
    name: str
    base: str
    proc: subprocess.Popen
    paths: dict[str, str]
    m: dict[str, Any] = field(default_factory=dict)  # what the scenarios need

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own commands
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log.open("w"),
        start_new_session=True, text=True,
    )  # fmt: skip


def shared_keys(env: dict[str, str], work: Path) -> dict[str, str]:
    """Outside the embedded default every node shares these: unless the caller set them, the
    bench's are made on first use (mode 0600) in its work directory, and the in-process run,
    on the same database, reads the same ones."""
    for name in ("AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SECRET_KEY"):
        if not env.get(name) and not env.get(f"{name}_FILE"):
            env[f"{name}_FILE"] = str(work / name.lower())
    return env


def _cli_json(cmd: list[str], env: dict[str, str]) -> Any:
    """A set-up command's JSON output; when it fails, what it said (a database that does not
    exist, a key that is missing) instead of a traceback of the bench."""
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        raise SystemExit(f"bench: `authserver {' '.join(cmd[3:])}` failed:\n{said}")
    return json.loads(done.stdout)


def start_authserver(work: Path, pos_key: ProofKey) -> Target:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **BENCH_ENV, "AUTHSERVER_INSTANCE_PATH": str(work / "instance"),
           "AUTHSERVER_ISSUER": base, "PYTHONPATH": str(ROOT)}  # fmt: skip
    shared_keys(env, work)
    cli = [sys.executable, "-m", "authserver.cli"]
    demo = _cli_json([*cli, "demo"], env)
    # The demo kiosk is DPoP-bound; the scenarios are the peer's plain device flow, so the bench
    # has a kiosk client of its own that asks for no proof (the same work on both sides).
    kiosk = _cli_json(
        [*cli, "clients", "create", "--tenant", "ten_demo", "--name", "Bench kiosk", "--public",
         "--grant-type", DEVICE_GRANT, "--grant-type", "refresh_token", "--scope", "devices:read"],
        env)["client_id"]  # fmt: skip
    proc = _spawn([*cli, "serve", "--port", str(port)], env, work / "authserver.log")
    target = Target("authserver", base, proc, {
        "token": "/oauth/token", "device": "/oauth/device_authorization",
        "introspect": "/oauth/introspect", "me": "/api/v1/devices/me",
        "list": "/api/v1/devices?limit=50",
    })  # fmt: skip
    wait_until_up(base, "/healthz", proc)
    svc = next(c for c in demo["clients"] if c["client_id"] == "cli_demo_service")
    auth = basic(svc["client_id"], svc["client_secret"])
    status, body = call(base, "POST", "/oauth/token", {"grant_type": "client_credentials"},
                        {"Authorization": auth})  # fmt: skip
    assert status == 200, body
    token = body["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for i in range(60):
        status, body = call(base, "POST", "/api/v1/devices", {"name": f"Till {i}"}, bearer, False)
        assert status == 201, body
    refresh = []
    for _ in range(REFRESH_TOKENS):
        status, flow = call(base, "POST", "/oauth/device_authorization",
                            {"client_id": kiosk})  # fmt: skip
        assert status == 200, flow
        status, body = call(base, "POST", f"/api/v1/device-authorizations/{flow['user_code']}",
                            {"decision": "approve"}, bearer, False)  # fmt: skip
        assert status == 200, body
        status, body = call(base, "POST", "/oauth/token", {
            "grant_type": DEVICE_GRANT, "device_code": flow["device_code"],
            "client_id": kiosk})  # fmt: skip
        assert status == 200, body
        refresh.append(body["refresh_token"])
    status, flow = call(base, "POST", "/oauth/device_authorization",
                        {"client_id": kiosk})  # fmt: skip
    status, device = call(base, "POST", "/api/v1/devices",
                          {"name": "POS", "status": "READY_TO_LINK", "appCode": "CLIENT"},
                          bearer, False)  # fmt: skip
    assert status == 201, device
    admin = demo["admin"]
    status, pos = call(base, "POST", "/oauth/token", {
        "grant_type": LINK_GRANT, "link_code": device["data"]["linkCode"],
        "staff_code": admin["staff_code"], "password": admin["password"],
        "client_id": "cli_demo_pos"},
        {"DPoP": pos_key.proof("POST", base + "/oauth/token")})  # fmt: skip
    assert status == 200, pos
    target.m = {
        "auth": auth,
        "access_token": token,
        "device_code": flow["device_code"],
        "kiosk": kiosk,
        "refresh": refresh,
        "pos": pos["access_token"],
    }
    return target


def start_peer(work: Path, pos_key: ProofKey) -> Target:
    if not (PEER / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PEER, check=True)
    port = free_port()
    proc = _spawn(["node", str(PEER / "server.mjs"), "--port", str(port),
                   "--dpop-jwk", json.dumps(pos_key.jwk),
                   "--refresh-tokens", str(REFRESH_TOKENS)], dict(os.environ),
                  work / "peer.log")  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the peer did not start; see {work / 'peer.log'}")
    ready = json.loads(line)
    base = ready["issuer"]
    svc = ready["service"]
    target = Target("oidc-provider", base, proc, {
        "token": "/token", "device": "/device/auth", "introspect": "/token/introspection",
        "me": "/me", "list": "/api/v1/devices?limit=50",
    })  # fmt: skip
    target.m = {"auth": basic(svc["client_id"], svc["client_secret"]),
                "access_token": ready["access_token"], "device_code": ready["device_code"],
                # oidc-provider cannot introspect its JWT access tokens (400
                # unsupported_token_type): it introspects an opaque one from its store.
                "introspection_token": ready["introspection_token"],
                "kiosk": ready["kiosk_client_id"], "refresh": ready["refresh_tokens"],
                "pos": ready["pos_access_token"]}  # fmt: skip
    return target


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
VERBOSE = False


def spec(t: Target, scenario: str) -> dict[str, Any]:
    """What wrk sends for one scenario: method, path, headers, body, expected statuses."""
    m, p = t.m, t.paths
    cc = {"method": "POST", "path": p["token"], "headers": {**FORM, "Authorization": m["auth"]},
          "body": "grant_type=client_credentials", "ok": [200]}  # fmt: skip
    if scenario == "cc":
        return cc
    if scenario == "cc_dpop":
        return {**cc, "proof": ("POST", p["token"], None)}
    if scenario == "device_authz":
        return {"method": "POST", "path": p["device"], "headers": FORM,
                "body": f"client_id={m['kiosk']}", "ok": [200]}  # fmt: skip
    if scenario == "poll":
        return {"method": "POST", "path": p["token"], "headers": FORM, "ok": [400],
                "body": urlencode({"grant_type": DEVICE_GRANT, "device_code": m["device_code"],
                                   "client_id": m["kiosk"]})}  # fmt: skip
    if scenario == "introspect":
        return {"method": "POST", "path": p["introspect"],
                "headers": {**FORM, "Authorization": m["auth"]},
                "body": urlencode({"token": m.get("introspection_token", m["access_token"])}),
                "ok": [200]}  # fmt: skip
    if scenario == "refresh":
        return {"method": "POST", "path": p["token"], "headers": FORM, "ok": [200],
                "body": f"grant_type=refresh_token&refresh_token={{RT}}&client_id={m['kiosk']}",
                "refresh": m["refresh"]}  # fmt: skip
    if scenario == "me":
        return {"method": "GET", "path": p["me"], "headers": {"Authorization": f"DPoP {m['pos']}"},
                "body": "", "ok": [200], "proof": ("GET", p["me"], m["pos"])}  # fmt: skip
    if scenario == "list":
        return {"method": "GET", "path": p["list"],
                "headers": {"Authorization": f"Bearer {m['access_token']}"}, "body": "",
                "ok": [200]}  # fmt: skip
    raise ValueError(scenario)


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for our ASCII values


def wrk_duration(seconds: float) -> str:
    """wrk's -d takes whole seconds ("1.5s" is a usage error)."""
    return f"-d{max(1, round(seconds))}s"


def run_wrk(t: Target, scenario: str, seconds: float, work: Path, pos_key: ProofKey,
            svc_key: ProofKey, expect_rate: float) -> dict[str, Any]:  # fmt: skip
    s = spec(t, scenario)
    files: dict[str, str] = {}
    if "proof" in s:
        method, path, token = s["proof"]
        key = pos_key if token else svc_key
        n = int(expect_rate * seconds * 1.6) + 2000
        url = t.base + path.split("?")[0]
        proofs = work / f"proofs-{t.name}-{scenario}.txt"
        proofs.write_text("\n".join(key.proofs(n, method, url, token)) + "\n")
        files["proofs"] = str(proofs)
    if "refresh" in s:
        pool = work / f"refresh-{t.name}.txt"
        pool.write_text("\n".join(t.m["refresh"]) + "\n")
        files["refresh"] = str(pool)
        files["refresh_out"] = str(work / f"refresh-{t.name}-left.txt")
    config = work / f"wrk-{t.name}-{scenario}.lua"
    headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in s["headers"].items())
    ok = ", ".join(f"[{code}] = true" for code in s["ok"])
    extra = "".join(f"  {k} = {lua_string(v)},\n" for k, v in files.items())
    config.write_text(
        f"return {{\n  method = {lua_string(s['method'])},\n  path = {lua_string(s['path'])},\n"
        f"  headers = {{{headers}}},\n  body = {lua_string(s['body'])},\n  ok = {{{ok}}},\n"
        f"{extra}}}\n"
    )
    before = cpu_seconds(t.proc.pid)
    out = subprocess.run(  # noqa: S603
        ["wrk", "-t2", "-c32", wrk_duration(seconds), "--timeout", "5s", "-s", str(LUA),
         t.base + s["path"], "--", str(config), "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(
            f"wrk failed on {t.name} {scenario}:\n{out.stdout[-1000:]}{out.stderr[-1000:]}"
        )
    cpu = cpu_seconds(t.proc.pid) - before
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if VERBOSE and out.stderr.strip():
        print(out.stderr.strip()[:2000], file=sys.stderr)
    if "refresh" in s:  # the rotated tokens wrk held are the next run's
        t.m["refresh"] = Path(files["refresh_out"]).read_text().split()
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu_ms"] = 1000 * cpu / max(1, result["requests"])
    result["errors"] = (
        result["bad_status"]
        + result["missing_input"]
        + sum(result[k] for k in ("connect", "read", "write", "timeout"))
    )
    if VERBOSE:
        print(f"  {t.name} {scenario} {seconds}s: {json.dumps(result)}", file=sys.stderr)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s, 1 s warm-up")
    ap.add_argument("--only", help="comma-separated scenario keys: " + ",".join(SCENARIOS))
    ap.add_argument("--no-inprocess", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="each run's figures on stderr")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 3, 1
    for tool in ("wrk", "node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt install wrk nodejs npm)")
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    work = Path(tempfile.mkdtemp(prefix="authserver-compare-"))
    pos_key, svc_key = ProofKey(), ProofKey()
    targets: list[Target] = []
    try:
        targets.append(start_authserver(work, pos_key))
        targets.append(start_peer(work, pos_key))
        print(header(targets[0]), flush=True)
        rows = []
        for scenario in chosen:
            runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
            for t in targets:
                run_wrk(t, scenario, args.warmup, work, pos_key, svc_key, 3000)
            for r in range(args.rounds):
                for t in targets if r % 2 == 0 else list(reversed(targets)):
                    rate = max([x["rps"] for x in runs[t.name]], default=3000)
                    runs[t.name].append(run_wrk(t, scenario, args.seconds, work, pos_key,
                                                svc_key, rate))  # fmt: skip
            rows.append((scenario, runs))
            print(row(scenario, runs), flush=True)
        floor = hello_floor(work, args.seconds)
        print(f"\nFloor: a Flask hello under the same server and workers: {floor:.0f} req/s.")
        print("| scenario | authserver × floor |\n| --- | ---: |")
        for scenario, runs in rows:
            ours = statistics.median(x["rps"] for x in runs["authserver"])
            print(f"| {SCENARIOS[scenario]} | {ours / floor:.2f} |")
        if not args.no_inprocess:
            print()
            subprocess.run([sys.executable, str(ROOT / "bench" / "inprocess.py")],
                           env=shared_keys({**os.environ}, work), check=True)  # fmt: skip
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(work, ignore_errors=True)


def header(ours: Target) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lock = json.loads((PEER / "package-lock.json").read_text())
    peer_version = lock["packages"]["node_modules/oidc-provider"]["version"]
    backend = ("PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite") + (
        " + Redis" if os.environ.get("REDIS_URL") else ""
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"{wrk.strip()}; Python {platform.python_version()}; Node {node}; "
        f"oidc-provider {peer_version}\nauthserver on {backend}, `authserver serve` defaults; "
        "wrk -t2 -c32; req/s and latency are medians of the rounds\n\n"
        "| scenario | oidc-provider req/s | authserver req/s | ratio | p50 ms (op / as) "
        "| p99 ms (op / as) | errors (op / as) | CPU ms/req (op / as) |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )


def row(scenario: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[name])

    op, ours = "oidc-provider", "authserver"
    errors = {n: sum(x["errors"] for x in runs[n]) for n in runs}
    return (
        f"| {SCENARIOS[scenario]} | {med(op, 'rps'):.0f} | {med(ours, 'rps'):.0f} | "
        f"{med(ours, 'rps') / med(op, 'rps'):.2f} | "
        f"{med(op, 'p50_us') / 1000:.1f} / {med(ours, 'p50_us') / 1000:.1f} | "
        f"{med(op, 'p99_us') / 1000:.1f} / {med(ours, 'p99_us') / 1000:.1f} | "
        f"{errors[op]} / {errors[ours]} | "
        f"{med(op, 'cpu_ms'):.2f} / {med(ours, 'cpu_ms'):.2f} |"
    )


def hello_floor(work: Path, seconds: float) -> float:
    port = free_port()
    env = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(work / "hello"), "PYTHONPATH": str(ROOT)}
    if env.get("DATABASE_URL"):
        # The target's processes and threads, though a hello reads no database and needs no
        # shared keys: it starts without them.
        workers, threads = default_processes(embedded=False)
        env.setdefault("AUTHSERVER_WORKERS", str(workers))
        env.setdefault("AUTHSERVER_THREADS", str(threads))
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    proc = _spawn([sys.executable, "-m", "authserver.serve", "--hello", "--port", str(port)],
                  env, work / "hello.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, "/", proc)
        out = subprocess.run(["wrk", "-t2", "-c32", wrk_duration(seconds), base + "/"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        line = next(x for x in out.splitlines() if x.startswith("Requests/sec"))
        return float(line.split()[1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


if __name__ == "__main__":
    main()
