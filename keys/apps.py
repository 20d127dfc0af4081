"""App config for tenants and API keys (and the audit log's login receivers)."""

from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Tenants and API keys"

    def ready(self) -> None:
        # Auth signals fire in the admin login view's thread, never on the API path.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        from keys.login_audit import on_locked_out, on_login_failed

        user_login_failed.connect(on_login_failed, dispatch_uid="keys.audit.login_failed")
        user_locked_out.connect(on_locked_out, dispatch_uid="keys.audit.locked_out")
