"""Prometheus metrics. Under gunicorn they are aggregated across workers (multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``, set by ``authserver serve``)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "authserver_http_requests_total",
    "HTTP requests by endpoint and status",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "authserver_http_request_duration_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TOKENS = Counter("authserver_tokens_issued_total", "Access tokens issued by grant", ["grant"])
DEVICE_FLOW = Counter(
    "authserver_device_flow_total",
    "Device-flow outcomes (pending, slow_down, approved, denied, expired, redeemed)",
    ["outcome"],
)
DPOP_REJECTIONS = Counter(
    "authserver_dpop_rejections_total", "Refused DPoP proofs by failed check", ["reason"]
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
