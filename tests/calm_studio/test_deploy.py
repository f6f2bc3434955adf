"""The production recipe: `check --deploy` is clean under the production settings, and the
systemd units in deploy/ start what the README says, as the service user."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PRODUCTION_ENV = {
    "CALM_HTTPS": "1",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "calm.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://calm.example.org",
    "DATABASE_URL": "",
}


def check_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        # A host's environment, not the test process's (which allows async-unsafe ORM calls).
        env={"PATH": os.environ["PATH"], "CALM_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_under_the_production_settings(tmp_path):
    proc = check_deploy(tmp_path, **PRODUCTION_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_check_deploy_flags_the_development_settings(tmp_path):
    proc = check_deploy(tmp_path, DATABASE_URL="")  # the laptop defaults: no HTTPS settings
    assert proc.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in proc.stdout + proc.stderr


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted(DEPLOY.glob("systemd/*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(path)
        found[path.name] = parser
    return found


def test_the_systemd_units_run_web_workers_per_queue_and_beat_as_the_service_user():
    found = units()
    assert {"calm-web.service", "calm-worker@.service", "calm-beat.service"} <= set(found)
    web = found["calm-web.service"]["Service"]
    assert "gunicorn" in web["ExecStart"] and "calm_studio.wsgi" in web["ExecStart"]
    worker = found["calm-worker@.service"]["Service"]
    assert "-Q %i" in worker["ExecStart"]
    beat = found["calm-beat.service"]["Service"]
    assert " beat " in beat["ExecStart"]
    for name, unit in found.items():
        service = unit["Service"]
        assert service.get("EnvironmentFile") == "/etc/calm-studio/env", name
        if name == "calm-worker-sandbox.service":
            # The sandbox needs root to give each job its own uid; bwrap leaves it six caps.
            assert service["User"] == "root" and service["Delegate"] == "memory pids"
        else:
            assert service["User"] == "calm", name
            assert service.get("NoNewPrivileges") == "true", name


def test_the_env_example_turns_on_the_production_settings():
    text = (DEPLOY / "env.example").read_text()
    for line in ("CALM_HTTPS=1", "DEBUG=0", "DATABASE_URL=postgresql://", "REDIS_URL=redis://"):
        assert line in text
