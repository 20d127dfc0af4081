"""The pure translation between the Responses API and chat completions, both directions, and the
stream translator's event sequence (no gateway, no upstream)."""

from __future__ import annotations

from typing import Any

import pytest

from meshplatform.errors import BadRequest
from responses_api.events import ResponseEvents
from responses_api.native import chat_usage, native_body, native_input, usage_of
from responses_api.schema import ResponsesRequest
from responses_api.services import conversation_bounds_check
from responses_api.translate import (
    chat_messages,
    chat_request_body,
    completion_response,
    output_items,
    request_echo,
    response_usage,
    stored_input_items,
)

LIMITS = {"MESH_MAX_MESSAGES": 10, "MESH_MAX_CONTENT_PARTS": 4, "MESH_MAX_TOOLS": 4}
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}


def request(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "openai/gpt-4o", "input": "hi", **fields})


def chat_of(**fields: Any) -> dict[str, Any]:
    parsed = request(**fields)
    return chat_request_body(parsed, stored_input_items(parsed.items()), first_input=0)


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    body = chat_of(instructions="Be brief.", max_output_tokens=64, temperature=0.2, session_id="s1")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    assert (body["max_completion_tokens"], body["temperature"], body["session_id"]) == (64, 0.2, "s1")
    assert "stream" not in body and "store" not in body


def test_items_become_messages_with_calls_joined_to_the_assistant_turn() -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
        {"role": "user", "content": "weather?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call_output", "call_id": "c1", "output": "4C"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "21C"}]},
    ]
    messages = chat_of(input=items, tools=[TOOL])["messages"]
    assert [m["role"] for m in messages] == ["developer", "user", "assistant", "tool", "tool"]
    assistant = messages[2]
    assert assistant["content"] == "Checking."
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert assistant["tool_calls"][1]["function"] == {"name": "get_weather", "arguments": '{"city":"Rome"}'}
    assert messages[4] == {"role": "tool", "tool_call_id": "c2", "content": "21C"}


def test_parts_images_files_and_refusals() -> None:
    content = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"},
    ]
    [message] = chat_of(input=[{"role": "user", "content": content}])["messages"]
    assert message["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/y.png", "detail": "low"},
    }
    assert message["content"][2] == {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"},
    }


@pytest.mark.parametrize(
    ("fields", "param", "status"),
    [
        ({"tools": [TOOL, {"type": "web_search"}]}, "tools.1.type", 400),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice.type", 400),
        ({"input": [{"type": "computer_call", "id": "cu_1"}]}, "input.0.type", 400),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input.0.content.0.type", 400),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input.0.content.0.type",
            400,
        ),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.name", 422),
    ],
)
def test_what_chat_cannot_carry_is_refused_by_name(fields: dict[str, Any], param: str, status: int) -> None:
    with pytest.raises(BadRequest) as refused:
        chat_of(**fields)
    assert (refused.value.param, refused.value.http_status) == (param, status)
    assert refused.value.details and refused.value.details[0]["loc"] == ["body", *_loc(param)]


def _loc(param: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in param.split(".")]


def test_context_items_come_first_and_are_not_blamed_on_the_input() -> None:
    context: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},  # an earlier native answer's
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "found it"}]},
    ]
    now = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "now"}]}
    messages = chat_messages([*context, now], first_input=3, instructions=None)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]


def test_tools_choice_format_and_reasoning_in_chat_shape() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = chat_of(
        tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        reasoning={"effort": "high", "summary": "auto"},
        stream=True,
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert body["reasoning_effort"] == "high"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_completion_as_the_response_object() -> None:
    completion = {
        "choices": [
            {
                "finish_reason": "length",
                "message": {
                    "content": "partial",
                    "reasoning_content": "thinking",
                    "tool_calls": [{"id": "c9", "function": {"name": "f", "arguments": "{}"}}],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    }
    echo = request_echo(request(max_output_tokens=30))
    response = completion_response(
        response_id="resp_1", created_at=5, model="m/x", echo=echo, completion=completion
    )
    assert (response["status"], response["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "function_call"]
    assert (
        response["output"][2]["call_id"] == "c9" and response["output"][1]["content"][0]["text"] == "partial"
    )
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 40,
    }
    assert (
        response["max_output_tokens"] == 30
        and response["store"] is True
        and response["tool_choice"] == "auto"
    )
    assert output_items({"content": None, "refusal": "no"})[0]["content"] == [
        {"type": "refusal", "refusal": "no"}
    ]


def test_usage_round_trips_between_the_two_shapes() -> None:
    responses_usage = response_usage(
        {"prompt_tokens": 7, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 3}}
    )
    assert response_usage(chat_usage(responses_usage)) == responses_usage
    billed = usage_of(responses_usage)
    assert (billed.prompt_tokens, billed.completion_tokens, billed.cached_tokens) == (7, 9, 0)


def test_the_native_body_is_the_request_as_sent_with_the_whole_conversation() -> None:
    raw = {
        "model": "openai/gpt-4o",
        "input": "x",
        "store": True,
        "previous_response_id": "resp_1",
        "session_id": "s",
        "models": ["a/b"],
        "include": ["reasoning.encrypted_content"],
        "tools": [{"type": "web_search"}],
    }
    items = [
        {"id": "msg_1", "type": "message", "role": "user", "status": "completed", "content": []},
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {"id": "rs_2", "type": "reasoning", "summary": [], "encrypted_content": "e"},
        {"id": "msg_2", "type": "message", "role": "assistant", "status": "completed", "content": []},
    ]
    body = native_body(raw, items)
    assert body["store"] is False and body["include"] == raw["include"] and body["tools"] == raw["tools"]
    assert not {"previous_response_id", "session_id", "models", "model", "stream"} & set(body)
    assert body["input"] == [
        {"type": "message", "role": "user", "content": []},
        items[2],
        items[3],
    ]
    assert native_input([]) == []
    gemini_call = {
        "type": "function_call",
        "call_id": "c",
        "name": "f",
        "arguments": "{}",
        "thought_signature": "s",
    }
    assert native_input([gemini_call]) == [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    ]


def _events(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    builder = ResponseEvents(response_id="resp_1", created_at=1, model="m/x", echo=request_echo(request()))
    events = builder.start()
    for chunk in chunks:
        events += builder.feed(chunk)
    final, closing = builder.finish()
    return events + closing, final


def test_stream_text_then_tool_call_events() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}
    events, final = _events(
        [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
            {
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}}
                ]
            },
            {
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}
                ]
            },
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}},
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello" and events[12]["arguments"] == '{"a":1}'
    assert [e["output_index"] for e in events[2:14] if "output_index" in e] == [0] * 7 + [1] * 5
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 8
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1] == {
        "id": final["output"][1]["id"],
        "type": "function_call",
        "status": "completed",
        "call_id": "c1",
        "name": "f",
        "arguments": '{"a":1}',
    }


def test_stream_failure_and_reasoning_summary() -> None:
    events, final = _events(
        [
            {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
            {"choices": [{"index": 0, "delta": {"content": "ok"}}]},
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                "error": {"code": "upstream_error", "message": "broke"},
            },
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    assert "response.reasoning_summary_text.done" in kinds and kinds[-1] == "response.failed"
    assert final["status"] == "failed" and final["error"] == {"code": "upstream_error", "message": "broke"}
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm"}]


def test_native_events_are_relayed_with_their_own_final_response() -> None:
    item = {"id": "msg_u", "type": "message", "status": "completed", "role": "assistant", "content": []}
    upstream_final = {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [item],
    }
    events, final = _events(
        [
            {
                "native_event": {"type": "response.created", "sequence_number": 0, "response": {}},
                "choices": [],
            },
            {
                "native_event": {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": item,
                }
            },
            {
                "native_event": {
                    "type": "response.web_search_call.searching",
                    "sequence_number": 2,
                    "item_id": "ws",
                }
            },
            {
                "native_event": {
                    "type": "response.incomplete",
                    "sequence_number": 3,
                    "response": upstream_final,
                }
            },
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.web_search_call.searching",
        "response.incomplete",
    ]
    assert [e["sequence_number"] for e in events] == list(range(5))
    assert final["id"] == "resp_1" and final["status"] == "incomplete" and final["output"] == [item]


def test_a_conversation_past_the_message_limit_is_refused_naming_the_chain(settings: Any) -> None:
    settings.MESH_MAX_MESSAGES = 3
    conversation_bounds_check(3)
    with pytest.raises(BadRequest) as refused:
        conversation_bounds_check(4)
    assert refused.value.param == "previous_response_id" and refused.value.http_status == 422
