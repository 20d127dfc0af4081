"""Production settings: DEBUG off, secrets required from the environment."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import DEBUG, env

if DEBUG:
    raise RuntimeError("DEBUG must be off with meshplatform.settings.production")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
