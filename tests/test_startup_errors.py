"""``authserver serve``'s own start-up mistakes: one line, exit code 2, and a hint only where it
helps (the issuer's, for an issuer problem)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port


@pytest.mark.parametrize(
    ("env", "expected", "unexpected"),
    [
        ({"DATABASE_URL": "mysql://u@h/db"}, "SQLite and PostgreSQL", "AUTHSERVER_ISSUER"),
        ({"AUTHSERVER_INSTANCE_PATH": "/etc/passwd/instance"}, "Not a directory", "Traceback"),
        ({"AUTHSERVER_INSTANCE_PATH": "/proc/no-such/instance"}, "cannot use", "Traceback"),
    ],
    ids=["unsupported scheme", "instance under a file", "instance cannot be made"],
)
def test_serve_says_what_is_wrong_in_one_line(tmp_path, env, expected, unexpected):
    full = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(tmp_path / "instance")}
    for name in ("DATABASE_URL", "REDIS_URL", "AUTHSERVER_ISSUER"):
        full.pop(name, None)
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "authserver.cli", "serve", "--port", str(free_port())],
        env=full, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    message = json.loads(lines[0])["error"]
    assert expected in message and unexpected not in proc.stderr
