"""Outages: with Redis or the database gone, requests that need it answer 503 with Retry-After
and nothing is half-written; when it comes back the service resumes without a restart.

These tests start their own Redis / PostgreSQL processes (from the Debian packages .ci/run
installs) so that they can stop them, and skip with a reason where the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, make_env, start_server, stop_server
from tests.dpop_client import DPoPKey

pytestmark = pytest.mark.processes
REDIS = shutil.which("redis-server")
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_BIN = PG_BIN[-1] if PG_BIN else None


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        import redis as redis_lib

        while time.time() < deadline:
            try:
                redis_lib.Redis(port=self.port).ping()
                return
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def dpop_token(url, creds, key=None):
    key = key or DPoPKey()
    return requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=creds,
        headers={"DPoP": key.proof("POST", f"{url}/oauth/token")},
        timeout=15,
    )


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (.ci/run installs it)")
def test_redis_outage_is_503_then_resumes(tmp_path):
    redis_srv = Redis(tmp_path)
    redis_srv.start()
    env = make_env(tmp_path / "inst", REDIS_URL=f"redis://127.0.0.1:{redis_srv.port}/0")
    server = start_server(env, workers=2)
    try:
        c = server.service_client("Out", "devices:read")
        creds = (c["client_id"], c["client_secret"])
        assert dpop_token(server.url, creds).status_code == 200
        plain = requests.post(
            f"{server.url}/oauth/token",
            auth=creds,
            timeout=10,
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]

        redis_srv.stop()
        down = dpop_token(server.url, creds)  # the jti replay check needs Redis
        assert down.status_code == 503
        assert down.json()["error"] == "temporarily_unavailable"
        assert int(down.headers["Retry-After"]) >= 1
        assert "access_token" not in down.json()  # nothing issued
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["store"] == "unreachable"
        # Client authentication fails closed too: whether this client and address are locked
        # out cannot be known, and a 200 for the right secret beside 503s for wrong ones would
        # be an oracle with no limit (review F10).
        token = requests.post(
            f"{server.url}/oauth/token",
            auth=creds,
            timeout=10,
            data={"grant_type": "client_credentials"},
        )
        assert token.status_code == 503
        # What does not need Redis keeps working: reading the registry with a Bearer token.
        listed = requests.get(
            f"{server.url}/api/v1/devices",
            headers={"Authorization": f"Bearer {plain}"},
            timeout=10,
        )
        assert listed.status_code == 200

        redis_srv.start()
        deadline = time.time() + 15
        while (resp := dpop_token(server.url, creds)).status_code != 200:
            assert time.time() < deadline, resp.text
            time.sleep(0.2)
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
    finally:
        stop_server(server)
        redis_srv.stop()


class Postgres:
    def __init__(self) -> None:
        import tempfile

        self.port = free_port()
        # pytest's tmp_path is private to root; PostgreSQL runs as the postgres user.
        self.workdir = Path(tempfile.mkdtemp(prefix="authserver-pg-"))
        os.chmod(self.workdir, 0o755)
        self.data = self.workdir / "pgdata"
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [f"{PG_BIN}/{tool}", *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.data / "log"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL is not installed (.ci/run installs it)")
def test_database_outage_is_503_then_resumes(tmp_path):
    pg = Postgres()
    pg.start()
    env = make_env(tmp_path / "inst", DATABASE_URL=pg.url)
    server = start_server(env, workers=2)
    try:
        c = server.service_client("Db", "devices:read")
        creds = (c["client_id"], c["client_secret"])
        form = {"grant_type": "client_credentials"}
        token = requests.post(f"{server.url}/oauth/token", data=form, auth=creds, timeout=10)
        assert token.status_code == 200
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        devices = f"{server.url}/api/v1/devices"
        assert requests.get(devices, headers=bearer, timeout=10).status_code == 200
        pg.stop()
        # Reading the registry needs the database: every worker answers 503 (with Redis up, a
        # client-credentials token for a client a worker has cached needs no database, so the
        # token endpoint is not what shows the outage there).
        for _ in range(4):  # every worker, whatever its pool holds
            down = requests.get(devices, headers=bearer, timeout=15)
            assert down.status_code == 503, down.text
            assert down.headers["Content-Type"].startswith("application/problem+json")
            assert int(down.headers["Retry-After"]) == down.json()["retryAfter"] >= 1
        assert requests.get(f"{server.url}/readyz", timeout=15).status_code == 503
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        pg.start()
        deadline = time.time() + 20
        while (resp := requests.get(devices, headers=bearer, timeout=15)).status_code != 200:
            assert time.time() < deadline, resp.text
            time.sleep(0.3)
        # Once one request got through, none fails: each worker's connections that the restart
        # closed are replaced before use, writes (never retried) included.
        for _ in range(8):
            assert requests.post(f"{server.url}/oauth/token", data=form, auth=creds,
                                 timeout=15).status_code == 200  # fmt: skip
            assert requests.get(devices, headers=bearer, timeout=15).status_code == 200
    finally:
        stop_server(server)
        try:
            pg.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(pg.workdir, ignore_errors=True)
