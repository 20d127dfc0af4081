"""Production settings: DEBUG off, secrets required from the environment, HTTPS enforced.

The gateway runs behind TLS (a load balancer or proxy that sets X-Forwarded-Proto): browsers are
sent to HTTPS, told to stay there (HSTS), and session and CSRF cookies are Secure. Each of these
is on by default and can be turned off from the environment for a deployment without TLS in
front (as `make bench` on loopback does).
"""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import DEBUG, SILENCED_SYSTEM_CHECKS, env

if DEBUG:
    raise RuntimeError("DEBUG must be off with meshplatform.settings.production")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

SILENCED_SYSTEM_CHECKS = [
    *SILENCED_SYSTEM_CHECKS,
    # False positives of `check --deploy`: SecurityMiddleware, CsrfViewMiddleware and
    # XFrameOptionsMiddleware are not in MIDDLEWARE because RequestScopeMiddleware runs them (from
    # BROWSER_MIDDLEWARE) around every admin page; API paths carry bearer keys, not cookies.
    # tests/meshplatform/test_production_settings.py proves the headers and redirect over HTTP.
    "security.W001",
    "security.W003",
    "security.W002",
    # HSTS preload is an operator's decision (it cannot be undone quickly): SECURE_HSTS_PRELOAD.
    "security.W021",
]
