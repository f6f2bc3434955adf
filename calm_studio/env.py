"""The database and secret key of the project's settings, read from the environment.

The typed readers (``env_str``, ``env_int``...) are plain Python in ``curation.engine.env``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from curation.engine.env import EnvError


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """Django ``DATABASES`` entry for ``sqlite:///path`` or ``postgresql://user:pw@host:port/db``.

    A relative SQLite path is taken relative to ``base_dir``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        raw_path = unquote(url[len("sqlite://") :])
        # sqlite:///var/db.sqlite3 -> "/var/db.sqlite3" is relative to the project (three
        # slashes); sqlite:////abs/path is absolute (four slashes), as in dj-database-url.
        path = Path(raw_path[1:]) if raw_path.startswith("/") else Path(raw_path)
        if not path.is_absolute():
            path = base_dir / path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": {
                # WAL lets the web server read while a worker writes; the busy timeout turns
                # short write contention into waiting instead of "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
            "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
        }
    if scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "calm_studio",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise EnvError(
        f"DATABASE_URL scheme {scheme!r} is not supported (use sqlite:// or postgresql://)"
    )


def secret_key(var_dir: Path) -> str:
    """``SECRET_KEY`` from the environment, else one generated once into ``var/secret_key``."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    key_file = var_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # Create with 0600 from the start: the key must never be readable by other local users.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process (web server and worker start together) wrote it first.
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
