"""The JSON log format (settings.LOGGING, MESH_LOG_FORMAT=json): one object a line with `ts`,
`level`, `logger`, `event` (the message) and, for an error, its formatted `exception`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import structlog

timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")


def _dumps(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


json_renderer = structlog.processors.JSONRenderer(serializer=_dumps)


def json_formatter() -> logging.Formatter:
    """The stdlib formatter rendering every log record (Django's, uvicorn's, ours) as JSON."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamp],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            json_renderer,
        ],
    )
