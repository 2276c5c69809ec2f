"""Configuration: safe embedded defaults, generated secrets with mode 0600, refusals that explain."""

from __future__ import annotations

import os
import stat

import pytest

from authserver.config import ConfigError, load_settings


def test_embedded_defaults_generate_secrets_with_mode_0600(tmp_path):
    inst = tmp_path / "instance"
    s = load_settings({"AUTHSERVER_INSTANCE_PATH": str(inst)})
    assert s.embedded and s.redis_url is None
    assert s.database_url == f"sqlite:///{inst / 'authserver.db'}"
    for name in ("key-encryption-key", "secret-key"):
        assert stat.S_IMODE(os.stat(inst / name).st_mode) == 0o600
    again = load_settings({"AUTHSERVER_INSTANCE_PATH": str(inst)})
    assert again.key_encryption_key == s.key_encryption_key
    assert again.secret_key == s.secret_key
    assert s.key_encryption_key != s.secret_key


def test_distributed_mode_requires_shared_secrets(tmp_path):
    with pytest.raises(ConfigError, match="AUTHSERVER_KEY_ENCRYPTION_KEY is required"):
        load_settings(
            {
                "AUTHSERVER_INSTANCE_PATH": str(tmp_path),
                "DATABASE_URL": "postgresql://x@127.0.0.1/db",
            }
        )


@pytest.mark.parametrize(
    "issuer", ["http://auth.example.com", "ftp://x", "https://x/?q=1", "https://x/#f", "not a url"]
)
def test_bad_issuers_are_refused(tmp_path, issuer):
    with pytest.raises(ConfigError):
        load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path), "AUTHSERVER_ISSUER": issuer})


def test_jwks_cache_must_be_shorter_than_prepublication(tmp_path):
    with pytest.raises(ConfigError, match="JWKS_MAX_AGE"):
        load_settings(
            {
                "AUTHSERVER_INSTANCE_PATH": str(tmp_path),
                "AUTHSERVER_JWKS_MAX_AGE": "600",
                "AUTHSERVER_KEY_PREPUBLISH_SECONDS": "600",
            }
        )


@pytest.mark.parametrize(
    "name,value",
    [
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "ten"),
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "5"),
        ("AUTHSERVER_SIGNING_ALG", "HS256"),
        ("AUTHSERVER_KEY_ENCRYPTION_KEY", "c2hvcnQ"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path), name: value})


def test_https_issuer_and_trailing_slash(tmp_path):
    s = load_settings(
        {
            "AUTHSERVER_INSTANCE_PATH": str(tmp_path),
            "AUTHSERVER_ISSUER": "https://auth.example.com/",
        }
    )
    assert s.issuer == "https://auth.example.com"
    assert s.audience == "https://auth.example.com/api"


def test_server_processes_and_threads_suit_the_backend(tmp_path, monkeypatch):
    """Embedded SQLite: two single-threaded processes per core (a writer holding the file's write
    gate never waits for its own process's GIL); PostgreSQL: one process per core, 4 threads."""
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    embedded = load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "a")})
    assert (embedded.workers, embedded.threads) == (6, 1)
    shared = {"AUTHSERVER_KEY_ENCRYPTION_KEY": "A" * 43, "AUTHSERVER_SECRET_KEY": "B" * 43,
              "DATABASE_URL": "postgresql://x@127.0.0.1/db"}  # fmt: skip
    distributed = load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "b"), **shared})
    assert (distributed.workers, distributed.threads) == (3, 4)
    chosen = load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "c"),
                            "AUTHSERVER_WORKERS": "5", "AUTHSERVER_THREADS": "2"})  # fmt: skip
    assert (chosen.workers, chosen.threads) == (5, 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)  # a big machine: at most 8 on one SQLite file
    assert load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "d")}).workers == 8
