"""What `meshplatform.framework` relies on in Django is still what it was written against: a Django
upgrade that changes any of it fails here, naming what to re-check."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import subprocess
import sys

import django
import django.db
import orjson
from django.core import signals

from meshplatform.framework import PINNED_SOURCES, REQUEST_SIGNAL_RECEIVERS
from tests.support.gateway import REPO_ROOT


def _resolve(qualified: str) -> object:
    """`package.module.Class.attribute` → the object (the longest importable prefix is the module)."""
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ImportError(qualified)


def test_the_django_code_the_asgi_request_cycle_copies_is_unchanged() -> None:
    for qualified, digest in PINNED_SOURCES.items():
        source = inspect.getsource(_resolve(qualified))  # type: ignore[arg-type]
        assert hashlib.sha256(source.encode()).hexdigest() == digest, (
            f"{qualified} changed in Django {django.get_version()}: compare it with "
            "meshplatform.framework.ThreadFreeASGIHandler.handle, adapt that, then update PINNED_SOURCES"
        )


def test_django_still_connects_the_request_signal_receivers_mesh_disconnects() -> None:
    source = inspect.getsource(django.db)
    for signal, receiver in REQUEST_SIGNAL_RECEIVERS:
        name = "request_started" if signal is signals.request_started else "request_finished"
        assert f"signals.{name}.connect({receiver.__name__})" in source, (
            f"Django no longer connects {receiver.__name__} to {name}: revisit meshplatform.framework (1.)"
        )


def test_the_gateway_process_keeps_no_request_signal_receiver_that_costs_a_thread_hop() -> None:
    # A fresh process as the gateway starts (this one's Django test client reconnects receivers).
    probe = (
        "import orjson, meshplatform.asgi\n"
        "from django.core import signals\n"
        "names = lambda s: sorted(r().__qualname__ for _, r, _ in s.receivers if r() is not None)\n"
        "print(orjson.dumps([names(signals.request_started), names(signals.request_finished)]).decode())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    started, finished = orjson.loads(result.stdout.splitlines()[-1])
    # request_started is sent with asend on every request: any sync receiver is a thread hop.
    assert started == []
    # request_finished is sent by response.close(), in the event loop: only receivers known to do
    # no blocking I/O may stay.
    assert set(finished) <= {"close_caches", "reset_urlconf"}, finished
