"""Serving with granian: the production server of both deployments.

Granian (a Rust HTTP server with Python WSGI workers) keeps every core busy with keep-alive
clients: its workers share the listening socket and each runs its own Python interpreter, so a
busy connection on one worker does not leave the other idle (gunicorn's threaded workers did;
bench/compare.py measured both). ``authserver serve`` prepares the database and keys in the
parent, then starts ``AUTHSERVER_WORKERS`` processes of ``AUTHSERVER_THREADS`` threads each.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any


def worker_app() -> Any:
    """Each worker builds its own app: no connection or lock is shared between processes."""
    from authserver import create_app

    return settle(create_app())


def settle(app: Any) -> Any:
    """What a serving process does once its app is built (here and in ``wsgi.py``).

    - On the embedded database, start the thread that copies the write-ahead log back into the
      file (``authserver.checkpointer``): one in the deployment works, the others stand by.
    - Move everything built so far out of the garbage collector's reach (``gc.freeze``): it
      lives as long as the process. A full collection walked it all, about 150,000 objects,
      80-100 ms measured on a 2-core VM under load, once in each worker soon after start; a
      worker holding the SQLite write gate meanwhile stalled every writer of the deployment.
      Cyclic garbage made by requests is still collected.
    """
    from authserver.checkpointer import Checkpointer
    from authserver.models import db

    with app.app_context():
        checkpointer = Checkpointer.for_engine(db.engine)
    if checkpointer is not None:
        app.extensions["authserver.checkpointer"] = checkpointer.start()
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
    return app


def hello_app() -> Any:
    """The floor the benchmarks compare with: Flask's hello world under the same server."""
    from flask import Flask

    app = Flask("hello")
    app.add_url_rule("/", "hello", lambda: "Hello, World!")
    return app


def prepare_metrics_dir(instance: Path) -> None:
    """Multiprocess metrics need a directory shared by the workers, empty at start."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = str(instance / "prometheus")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def run(host: str, port: int, workers: int, threads: int, hello: bool = False) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    server = Granian(
        "authserver.serve:hello_app" if hello else "authserver.serve:worker_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        workers=workers,
        blocking_threads=threads,
        backlog=2048,
        # Slow or stalled clients cannot hold a worker: headers must arrive within 10 s.
        http1_settings=HTTP1Settings(header_read_timeout=10_000, keep_alive=True),
        respawn_failed_workers=True,
        workers_kill_timeout=10,
        log_level=LogLevels.warning,  # the app writes its own JSON request log
        log_access=False,
    )
    # Granian warns when there are more workers than cores; on SQLite that is our measured
    # default (authserver.config), so an operator should not read it as a mistake on every start.
    logging.getLogger("_granian").addFilter(_NotMoreWorkersThanCores())
    server.serve()


class _NotMoreWorkersThanCores(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configured number of workers appears")


if __name__ == "__main__":  # python -m authserver.serve --hello --port N (bench/compare.py)
    import argparse

    from authserver.config import load_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", action="store_true", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    settings = load_settings()
    run("127.0.0.1", args.port, settings.workers, settings.threads, hello=True)
