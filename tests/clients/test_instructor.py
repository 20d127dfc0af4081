"""instructor over the openai SDK: its default tool mode and the JSON-schema mode return
validated pydantic models; streaming partials assemble to the same model."""

from __future__ import annotations

import asyncio

import instructor
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.clients.conftest import MODEL, Weather


@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA])
def test_response_model(mesh: tuple[str, str], mode: instructor.Mode) -> None:
    client = instructor.from_openai(OpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0), mode=mode)
    weather = client.chat.completions.create(
        model=MODEL, response_model=Weather, messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    assert isinstance(weather, Weather) and weather.wind is not None


def test_async_and_streamed_partials(mesh: tuple[str, str]) -> None:
    async def run() -> tuple[Weather, Weather | None]:
        client = instructor.from_openai(AsyncOpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0))
        whole = await client.chat.completions.create(
            model=MODEL, response_model=Weather, messages=[{"role": "user", "content": "Weather in Paris?"}]
        )
        last = None
        async for partial in client.chat.completions.create_partial(
            model=MODEL, response_model=Weather, messages=[{"role": "user", "content": "Weather in Paris?"}]
        ):
            last = partial
        return whole, last

    whole, last = asyncio.run(run())
    assert last is not None and last.model_dump() == whole.model_dump()
