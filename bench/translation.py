"""`python -m bench.translation`: CPU of the provider translation functions alone, per request and per
chunk, Anthropic's and Gemini's beside OpenAI's pass-through (no network, no gateway; one core).

The end-to-end anthropic/* cell of `make bench` includes this cost; this isolates it so a change to
a translation can be judged in seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.dev")
django.setup()

import orjson  # noqa: E402

from routing.providers.anthropic import AnthropicAdapter  # noqa: E402
from routing.providers.anthropic_stream import AnthropicStream  # noqa: E402
from routing.providers.base import UpstreamCall  # noqa: E402
from routing.providers.gemini import GeminiAdapter  # noqa: E402
from routing.providers.gemini_translate import GeminiStream  # noqa: E402
from routing.providers.openai_compat import OpenAICompatibleAdapter  # noqa: E402

BODY = {"model": "x", "messages": [{"role": "user", "content": "Say hello to the benchmark"}]}
WORD = "lorem"


def per_call_us(function: Callable[[], Any], seconds: float = 0.5) -> float:
    calls, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        for _ in range(200):
            function()
        calls += 200
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    openai = OpenAICompatibleAdapter(name="openai", api_key="k", base_url="http://sim/v1")
    anthropic = AnthropicAdapter(name="anthropic", api_key="k", base_url="http://sim/v1")
    gemini = GeminiAdapter(name="gemini", api_key="k", base_url="http://sim/v1beta")
    call = UpstreamCall(
        upstream_model="m", body=BODY, stream=True, context_window=200_000, max_output_tokens=8192
    )
    openai_chunk = orjson.dumps(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": " " + WORD}, "logprobs": None, "finish_reason": None}]}
    ).decode()  # fmt: skip
    anthropic_event = orjson.dumps(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " " + WORD}}
    ).decode()
    gemini_event = orjson.dumps(
        {"candidates": [{"content": {"parts": [{"text": " " + WORD}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
         "modelVersion": "m", "responseId": "r"}
    ).decode()  # fmt: skip
    anthropic_stream = AnthropicStream(anthropic, "m")
    gemini_stream = GeminiStream(gemini, "m")
    list(gemini_stream.feed(gemini_event))  # past the first event (role chunk)
    anthropic_message = orjson.dumps(
        {"id": "msg", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
         "content": [{"type": "text", "text": "Simulated reply: Say hello to the benchmark lorem"}],
         "usage": {"input_tokens": 9, "output_tokens": 8}}
    )  # fmt: skip
    openai_message = orjson.dumps(
        {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Simulated reply"},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17}}
    )  # fmt: skip
    rows = [
        ("request build", lambda: openai.build_request(call), lambda: anthropic.build_request(call),
         lambda: gemini.build_request(call)),
        ("answer parse (JSON)", lambda: openai.parse_completion(openai_message, call),
         lambda: anthropic.parse_completion(anthropic_message, call), None),
        ("stream event → chunk", lambda: orjson.loads(openai_chunk),
         lambda: list(anthropic_stream.feed(anthropic_event)),
         lambda: list(gemini_stream.feed(gemini_event))),
    ]  # fmt: skip
    print("| step | openai µs | anthropic µs | gemini µs |\n|---|---:|---:|---:|")
    for name, *functions in rows:
        cells = [f"{per_call_us(f):.2f}" if f is not None else "-" for f in functions]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
