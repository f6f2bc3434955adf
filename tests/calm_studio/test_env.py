from __future__ import annotations

from pathlib import Path

import pytest

from calm_studio.env import database_from_url, secret_key
from curation.engine.env import EnvError, env_bool, env_int, env_list


def test_it_reads_booleans_strictly(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(EnvError, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG")


def test_it_names_the_variable_when_an_integer_is_malformed(monkeypatch):
    monkeypatch.setenv("WORKERS", "two")
    with pytest.raises(EnvError, match="WORKERS"):
        env_int("WORKERS", 1)


def test_it_splits_lists_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_it_parses_a_postgresql_url():
    db = database_from_url("postgresql://calm:s%40cret@db.internal:6543/studio?sslmode=require",
                           base_dir=Path("/srv"))  # fmt: skip
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("studio", "calm", "s@cret")
    assert (db["HOST"], db["PORT"]) == ("db.internal", "6543")
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_it_resolves_relative_and_absolute_sqlite_paths():
    assert database_from_url("sqlite:///var/x.sqlite3", base_dir=Path("/srv"))["NAME"] == (
        "/srv/var/x.sqlite3"
    )
    assert database_from_url("sqlite:////tmp/y.sqlite3", base_dir=Path("/srv"))["NAME"] == (
        "/tmp/y.sqlite3"
    )


def test_it_rejects_an_unknown_database_scheme():
    with pytest.raises(EnvError, match="mysql"):
        database_from_url("mysql://root@localhost/db", base_dir=Path("/srv"))


def test_it_generates_the_secret_key_once_and_keeps_it_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = secret_key(tmp_path)
    assert len(first) >= 50
    assert secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_it_prefers_the_secret_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert secret_key(tmp_path) == "from-env"
    assert not (tmp_path / "secret_key").exists()
