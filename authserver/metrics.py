"""Prometheus metrics. Under ``authserver serve`` they are aggregated across worker processes (multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``, set by ``authserver serve`` before any worker starts).

prometheus_client decides between in-memory and multiprocess values when it is first imported,
so it is imported lazily, on the first use of a metric, never at import time of this module.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] = {}
NAMES = ("REQUESTS", "LATENCY", "TOKENS", "DEVICE_FLOW", "DPOP_REJECTIONS")


def _create() -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    return {
        "REQUESTS": Counter(
            "authserver_http_requests_total",
            "HTTP requests by endpoint and status",
            ["endpoint", "method", "status"],
        ),
        "LATENCY": Histogram(
            "authserver_http_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        ),
        "TOKENS": Counter(
            "authserver_tokens_issued_total", "Access tokens issued by grant", ["grant"]
        ),
        "DEVICE_FLOW": Counter(
            "authserver_device_flow_total",
            "Device-flow outcomes (pending, slow_down, approved, denied, expired)",
            ["outcome"],
        ),
        "DPOP_REJECTIONS": Counter(
            "authserver_dpop_rejections_total", "Refused DPoP proofs by failed check", ["reason"]
        ),
    }


def __getattr__(name: str) -> Any:
    if name not in NAMES:
        raise AttributeError(name)
    if not _metrics:
        with _lock:
            if not _metrics:
                _metrics.update(_create())
    return _metrics[name]


def render() -> tuple[bytes, str]:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
