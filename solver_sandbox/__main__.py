"""``python -m solver_sandbox run FILE`` / ``python -m solver_sandbox bench``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
