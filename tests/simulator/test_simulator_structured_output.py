"""The simulator answers like a model where clients look: `response_format` (json_object, and
json_schema as pydantic emits it for openai's `.parse`), `n` choices, logprobs, and tool arguments
holding every property of the schema — streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import httpx
import jsonschema
import pytest
from openai import OpenAI
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from simulator.schema_values import schema_example
from simulator.server import SimulatorServer


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None = None


class Pet(BaseModel):
    name: str
    kind: Literal["cat", "dog"]
    age: int = Field(ge=1, le=30)


class Person(BaseModel):
    """Nested models ($defs), an enum, optional fields, lists, a dict and constrained values."""

    name: str = Field(min_length=12)
    email: str = Field(json_schema_extra={"format": "email"})
    favourite: Colour
    home: Address
    work: Address | None = None
    pets: list[Pet] = Field(min_length=2)
    scores: dict[str, float] = {}
    nickname: str | None = None
    tags: tuple[str, int] | None = None


class Tree(BaseModel):
    """A recursive schema: generation must stop somewhere."""

    label: str
    children: list[Tree] = []


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[OpenAI]:
    simulator.reset()
    with OpenAI(base_url=simulator.openai_base_url, api_key="sk-sim", max_retries=0) as sdk:
        yield sdk


def person_format(strict: bool) -> Any:
    schema = to_strict_json_schema(Person) if strict else Person.model_json_schema()
    return {"type": "json_schema", "json_schema": {"name": "Person", "schema": schema, "strict": strict}}


@pytest.mark.parametrize("model", [Person, Tree])
def test_schema_example_validates_against_the_pydantic_schema(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    value = schema_example(schema)
    jsonschema.validate(value, schema)
    model.model_validate(value)


def test_schema_example_includes_optional_fields_with_real_values() -> None:
    value = schema_example(Person.model_json_schema())
    assert set(value) == set(Person.model_fields)
    assert value["work"]["city"] and value["nickname"] and value["tags"][1] == 1
    assert len(value["pets"]) == 2 and value["pets"][0]["kind"] == "cat"


def test_json_object_answers_valid_json(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Describe Paris as JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("strict", [True, False])
def test_parse_returns_the_pydantic_model(client: OpenAI, strict: bool) -> None:
    if strict:
        completion = client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Invent a person"}],
            response_format=Person,
        )
        person = completion.choices[0].message.parsed
    else:
        raw = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Invent a person"}],
            response_format=person_format(strict=False),
        )
        person = Person.model_validate_json(raw.choices[0].message.content or "")
    assert isinstance(person, Person)
    assert person.work is not None and person.nickname is not None  # optional fields included


def test_streamed_json_schema_concatenates_to_valid_json(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Invent a person"}],
        response_format=person_format(strict=True),
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    assert len(chunks) > 3  # really streamed, not one blob
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    Person.model_validate_json(text)


def test_n_choices_each_with_its_index_and_usage_for_all(client: OpenAI) -> None:
    one = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    three = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], n=3
    )
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.message.content for c in three.choices)
    assert one.usage and three.usage
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens


def test_n_choices_streamed(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts[0] and texts[0] == texts[1]
    assert finishes == {0: "stop", 1: "stop"}


def test_logprobs_and_top_logprobs(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        logprobs=True,
        top_logprobs=3,
    )
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    for token in choice.logprobs.content:
        assert token.logprob < 0 and token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == 3
        assert token.top_logprobs[0].token == token.token
        assert sorted((t.logprob for t in token.top_logprobs), reverse=True) == [
            t.logprob for t in token.top_logprobs
        ]


def test_logprobs_streamed_one_per_content_chunk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        logprobs=True,
        top_logprobs=2,
        stream=True,
    )
    content_chunks = [c for c in stream if c.choices and c.choices[0].delta.content]
    assert content_chunks
    for chunk in content_chunks:
        logprobs = chunk.choices[0].logprobs
        assert logprobs is not None and logprobs.content is not None
        assert [t.token for t in logprobs.content] == [chunk.choices[0].delta.content]


def test_no_logprobs_unless_asked(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].logprobs is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 0}, "n"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format.json_schema.name"),
    ],
)
def test_invalid_sampling_and_format_are_refused_like_openai(
    simulator: SimulatorServer, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{simulator.openai_base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-sim"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("stream", [False, True])
def test_tool_arguments_fill_every_property(client: OpenAI, stream: bool) -> None:
    parameters = Person.model_json_schema()
    tool = {"type": "function", "function": {"name": "save_person", "parameters": parameters}}
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Save someone"}],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "save_person"}},
    }
    if stream:
        arguments = "".join(
            call.function.arguments or ""
            for chunk in client.chat.completions.create(**kwargs, stream=True)
            if chunk.choices
            for call in chunk.choices[0].delta.tool_calls or []
            if call.function
        )
    else:
        message = client.chat.completions.create(**kwargs).choices[0].message
        assert message.tool_calls
        arguments = message.tool_calls[0].function.arguments
    value = json.loads(arguments)
    assert set(value) == set(Person.model_fields)  # optional properties too
    jsonschema.validate(value, parameters)
