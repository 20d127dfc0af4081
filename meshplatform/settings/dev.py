"""`make run` settings: DEBUG on, embedded defaults (SQLite, in-process Redis) unless env says otherwise."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: F403
