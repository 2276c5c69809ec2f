"""The benchmarks still run: each in-process scenario gets the answers it expects (a change of the
demo or of a grant's rules broke them once without any test noticing). Nothing here is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_every_in_process_scenario_runs_and_gets_its_answers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["AUTHSERVER_INSTANCE_PATH"] = str(tmp_path / "instance")
    done = subprocess.run(
        [sys.executable, "bench/inprocess.py", "-n", "3", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    assert {r["scenario"] for r in results} >= {
        "client credentials token", "client credentials + DPoP", "device authorization",
        "device_code poll (pending)", "introspection (active)", "refresh with rotation",
        "GET /devices/me (DPoP)", "GET /devices?limit=50",
    }  # fmt: skip
    assert all(r["ms"] > 0 and r["calls"] > 0 for r in results)


def test_the_scale_bench_runs_and_every_read_gets_its_page(tmp_path):
    """bench/scale.py at its smallest size: each read answers (a whole page where it must)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["AUTHSERVER_INSTANCE_PATH"] = str(tmp_path / "instance")
    done = subprocess.run(
        [sys.executable, "bench/scale.py", "--max", "1000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1,000 |")]
    # 9 reads of the list, the list with its count, a count by status and appCode, a location's
    # devices with their count, a broad search with its count, the second tenant's list, the
    # bulk block.
    assert len(rows) == 1 and len(rows[0].split("|")) == 18, done.stdout


def test_the_people_scale_bench_runs_and_every_read_answers(tmp_path):
    """bench/scale.py --people at its smallest size: each read of the people list answers (a
    whole page where it must), and the bulk disable changes its people."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["AUTHSERVER_INSTANCE_PATH"] = str(tmp_path / "instance")
    done = subprocess.run(
        [sys.executable, "bench/scale.py", "--people", "--max", "1000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1,000 |")]
    # 7 reads of the people list and the bulk disable.
    assert len(rows) == 1 and len(rows[0].split("|")) == 11, done.stdout
