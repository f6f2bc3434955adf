"""Which environment variables an endpoint's ``api_key_env`` may name. The key is read in the
worker and sent to the endpoint's URL, so an endpoint naming DATABASE_URL or SECRET_KEY would
send them to any server: only names on the allow-list (``ENDPOINT_API_KEY_ENVS``, comma-separated;
by default OPENAI_API_KEY, CALM_ENDPOINT_API_KEY and CALM_DEFAULT_ENDPOINT_API_KEY_ENV's value)
are read, and the app's own secrets never, even when listed."""

from __future__ import annotations

import os

NEVER = frozenset({
    "DATABASE_URL", "SECRET_KEY", "REDIS_URL", "TEST_REDIS_URL", "CELERY_BROKER_URL",
    "CALM_VAR_DIR", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "PGPASSWORD",
})  # fmt: skip
DEFAULT = ("OPENAI_API_KEY", "CALM_ENDPOINT_API_KEY")


def allowed_api_key_envs() -> frozenset[str]:
    raw = os.environ.get("ENDPOINT_API_KEY_ENVS")
    names = set(DEFAULT) if raw is None else {n.strip() for n in raw.split(",") if n.strip()}
    default_env = os.environ.get("CALM_DEFAULT_ENDPOINT_API_KEY_ENV", "").strip()
    if default_env:
        names.add(default_env)
    return frozenset(names - NEVER)


def api_key_env_error(name: str) -> str | None:
    """Why ``name`` may not be read as an API key, or None when it may (or is empty)."""
    if not name or name in allowed_api_key_envs():
        return None
    allowed = ", ".join(sorted(allowed_api_key_envs())) or "none"
    return f"api_key_env {name!r} is not on the allow-list (ENDPOINT_API_KEY_ENVS: {allowed})"
