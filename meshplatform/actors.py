"""Who is acting: set once by the entry point (admin request, API key, management command), read by
the audit log. A context variable, so every service call below an entry point sees it without each
signature carrying it, and it follows asgiref's thread hops (they copy the context)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

ActorSource = Literal["admin", "api", "command", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    """`name` is resolved when an audit entry is written (an admin's user loads lazily)."""

    source: ActorSource
    resolve_name: Callable[[], str]

    @property
    def name(self) -> str:
        return self.resolve_name()


SYSTEM = Actor(source="system", resolve_name=lambda: "system")
_current: ContextVar[Actor] = ContextVar("mesh_actor", default=SYSTEM)


def actor_current() -> Actor:
    return _current.get()


def actor_set(actor: Actor) -> None:
    """For entry points whose scope is the rest of the context (a DRF view's thread)."""
    _current.set(actor)


@contextmanager
def acting_as(source: ActorSource, name: str | Callable[[], str]) -> Iterator[Actor]:
    actor = Actor(source=source, resolve_name=name if callable(name) else (lambda: name))
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)
