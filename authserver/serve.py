"""Serving with gunicorn (threaded workers), the production WSGI server for both deployments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], hello: bool = False) -> None:
        self.options = options
        self.hello = hello
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.hello:
            return hello_app()
        # Each worker builds its own app after the fork: no connection or lock is shared.
        from authserver import create_app

        return create_app()


def hello_app() -> Any:
    """The floor the benchmarks compare with: Flask's hello world under the same server."""
    from flask import Flask

    app = Flask("hello")
    app.add_url_rule("/", "hello", lambda: "Hello, World!")
    return app


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir(instance: Path) -> None:
    """Multiprocess metrics need a directory shared by the workers, empty at start."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = str(instance / "prometheus")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def run_gunicorn(host: str, port: int, workers: int, threads: int, hello: bool = False) -> None:
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 30,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "control_socket_disable": True,
            "child_exit": _child_exit,
        },
        hello,
    ).run()


if __name__ == "__main__":  # python -m authserver.serve --hello --port N (bench/compare.py)
    import argparse

    from authserver.config import load_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", action="store_true", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    settings = load_settings()
    run_gunicorn("127.0.0.1", args.port, settings.workers, settings.threads, hello=True)
