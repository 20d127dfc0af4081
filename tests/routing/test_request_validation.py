"""What the chat endpoint validates: strictly the fields Mesh reads or prices (no coercion), no NUL
in what it stores, and nothing else: every valid OpenAI shape reaches the upstream unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.routing.test_error_envelopes import assert_envelope


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", "2"),
        ("max_tokens", True),
        ("max_tokens", 1.5),
        ("max_completion_tokens", "50"),
        ("temperature", "0.5"),
        ("temperature", True),
        ("top_p", "1"),
        ("stream", "yes"),
        ("stream", 1),
        ("seed", "7"),
        ("timeout", "10"),
        ("async_mode", "false"),
        ("stream_options", {"include_usage": "yes"}),
        ("model", 5),
        ("session_id", 12),
    ],
)
def test_fields_mesh_reads_or_prices_are_never_coerced(
    acme_http: httpx.Client, simulator: SimulatorServer, field: str, value: Any
) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(**{field: value}))
    error = assert_envelope(response, 422, "validation_error")
    assert error["param"].split(".")[0] == field, error
    assert error["details"][0]["loc"][:2] == ["body", field]
    assert simulator.requests() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"session_id": "checkout\u0000flow"},
        {"model": "openai/\u0000"},
        {"models": ["openai/gpt-4o", "openai/gpt\u0000-4o-mini"]},
        {"template": "t\u0000x", "messages": []},
        {"user": "end-user\u0000"},
    ],
    ids=["session_id", "model", "models", "template", "user"],
)
def test_nul_in_a_stored_string_is_422_naming_the_field(
    acme_http: httpx.Client, simulator: SimulatorServer, overrides: dict[str, Any]
) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(**overrides))
    error = assert_envelope(response, 422, "validation_error")
    field = next(iter(overrides))
    assert error["param"].split(".")[0] == field
    assert error["details"][0]["type"] == "string_nul"
    assert simulator.requests() == []


VALID_OPENAI_SHAPES: dict[str, dict[str, Any]] = {
    "file part": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarise this"},
                    {
                        "type": "file",
                        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"},
                    },
                    {"type": "file", "file": {"file_id": "file-abc123"}},
                ],
            }
        ]
    },
    "refusal in history": {
        "messages": [
            {"role": "user", "content": "Do something bad"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
            {"role": "user", "content": "OK, something good then"},
        ]
    },
    "custom tool and allowed_tools": {
        "tools": [
            {"type": "custom", "custom": {"name": "code_exec", "description": "Runs code"}},
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
        ],
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "auto",
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            },
        },
    },
    "custom tool call in history": {
        "messages": [
            {"role": "user", "content": "Run it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_9", "type": "custom", "custom": {"name": "code_exec", "input": "1+1"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "2"},
        ]
    },
    "a part type from the future": {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "hologram", "hologram": {"uri": "holo://x", "depth": [1, 2]}}],
            }
        ]
    },
    "a tool type from the future": {"tools": [{"type": "web_search_preview", "search_context_size": "low"}]},
    "a tool choice type from the future": {
        "tool_choice": {"type": "custom", "custom": {"name": "code_exec"}}
    },
}


@pytest.mark.parametrize("shape", VALID_OPENAI_SHAPES.values(), ids=VALID_OPENAI_SHAPES.keys())
def test_valid_openai_shapes_reach_the_upstream_unchanged(
    acme_http: httpx.Client, simulator: SimulatorServer, shape: dict[str, Any]
) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(**shape))
    assert response.status_code == 200, response.text
    received = simulator.requests()[-1]["body"]
    for name, value in shape.items():
        assert received[name] == value, name


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "image_url", "image_url": {"detail": "low"}}, "content part 1 of type 'image_url'"),
        ({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav8"}}, "of type 'input_audio'"),
        ({"type": "text", "text": 5}, "content part 1 of type 'text'"),
        ({"text": "no type"}, "content part 1"),
        ("just a string", "content part 1"),
    ],
)
def test_a_bad_part_is_named_with_its_type(
    acme_http: httpx.Client, simulator: SimulatorServer, part: Any, expected: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Look"}, part]}]
    error = assert_envelope(
        acme_http.post("/chat/completions", json=chat_body(messages=messages)), 422, "validation_error"
    )
    assert error["details"][0]["loc"][:5] == ["body", "messages", 0, "content", 1]
    assert expected in error["details"][0]["msg"]
    assert expected in error["message"]
    assert "content.str" not in error["message"]
    assert all(not {"str", "function-after"} & set(map(str, d["loc"])) for d in error["details"])
    assert not any(str(part).startswith(("list[", "⟨")) for d in error["details"] for part in d["loc"])
    assert simulator.requests() == []


def test_content_that_is_neither_text_nor_parts_is_one_clear_error(acme_http: httpx.Client) -> None:
    messages = [{"role": "user", "content": {"text": "an object"}}]
    error = assert_envelope(
        acme_http.post("/chat/completions", json=chat_body(messages=messages)), 422, "validation_error"
    )
    assert error["details"] == [
        {
            "loc": ["body", "messages", 0, "content"],
            "msg": "content is a string or a list of content parts",
            "type": "content_type",
        }
    ]
