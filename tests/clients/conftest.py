"""The clients people already use, unchanged, against the one live gateway of the test session
(and the simulator behind it): only their base URL and API key point at Mesh."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import BaseModel, Field

# litellm fetches a price map from the internet on import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# openai-agents would export traces to OpenAI.
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

MODEL = "openai/gpt-4o-mini"


class Weather(BaseModel):
    """What the structured-output tests ask for: nested model, enum-like literal, optional fields."""

    city: str
    temperature_c: float
    conditions: list[str] = Field(min_length=1)
    wind: Wind | None = None


class Wind(BaseModel):
    speed_kmh: int = Field(ge=0)
    direction: str


Weather.model_rebuild()


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C and sunny in {city}"


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def mesh(api_url: str, acme_key: Any) -> tuple[str, str]:
    """(base URL, API key) as a user would paste them into any client."""
    return api_url, acme_key.plaintext
