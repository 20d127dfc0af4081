"""Base class for management commands that change things: the audit log names the command and the
operating-system user who ran it."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand

from meshplatform.actors import acting_as


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown user"


class AuditedCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        command = type(self).__module__.rsplit(".", 1)[-1]
        with acting_as("command", f"manage.py {command} ({_os_user()})"):
            return super().execute(*args, **options)
