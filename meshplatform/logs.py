"""The JSON log format's pieces (settings.LOGGING): a UTC timestamp and an orjson renderer."""

from __future__ import annotations

from typing import Any

import orjson
import structlog

timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")


def _dumps(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


json_renderer = structlog.processors.JSONRenderer(serializer=_dumps)
