"""``authserver serve``'s granian set-up: what it leaves out of the operator's log."""

from __future__ import annotations

import logging

from authserver.serve import _NotMoreWorkersThanCores


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("_granian", logging.WARNING, __file__, 1, message, None, None)


def test_the_more_workers_than_cores_warning_is_dropped_and_nothing_else():
    """Two processes per core is the embedded default, chosen by measurement (authserver.config):
    granian's warning about it would read as a mistake on every start."""
    keep = _NotMoreWorkersThanCores()
    assert not keep.filter(record(
        "Configured number of workers appears to be higher than the amount of CPU cores "
        "available. Consider using 2 workers and tune threads configuration instead"))  # fmt: skip
    assert keep.filter(record("Configured number of Rust threads appears to be too high"))
    assert keep.filter(record("Workers respawn is configured, but the sysctl is not enabled"))
