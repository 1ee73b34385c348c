"""``python -m fastapi_secure``: see :mod:`fastapi_secure.cli`."""

from __future__ import annotations

from fastapi_secure.cli import main

raise SystemExit(main())
