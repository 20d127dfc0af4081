"""Test settings: real PostgreSQL and Redis (provisioned by tests/conftest.py when unset)."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-secret")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mesh")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

# Test webhook receivers listen on loopback over http; files go to a per-run directory.
os.environ.setdefault("MESH_WEBHOOK_ALLOW_LOOPBACK", "true")
os.environ.setdefault(
    "MESH_FILES_ROOT", f"/tmp/mesh-test-files-{os.environ.get('MESH_TEST_DB_NAME', 'test_mesh')}"
)

from .base import *  # noqa: F403
from .base import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Each test run can use its own database name (parallel developer runs share one server).
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("MESH_TEST_DB_NAME", "test_mesh")}
