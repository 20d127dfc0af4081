"""Every Python example of the SDK seed page (002) runs as written against the live gateway and the
simulator; only the base URL and the token are substituted. The page is read at run time."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.seeds import CodeBlock, numbered_blocks, python_blocks, seed_page, seeds_dir

SEED_BASE_URL = "https://api.meshapi.ai"
SEED_TOKEN = re.compile(r"""(["'])rsk_[^"']*\1""")


def _page_blocks(prefix: str) -> list[CodeBlock]:
    page = seed_page(prefix)
    if page is None:
        where = seeds_dir()
        pytest.skip(
            f"seed page {prefix}*.txt not found in {where}"
            if where
            else "no seed pages: neither ../shared/seeds/ beside the checkout nor $MESH_SEEDS_DIR exists"
        )
    return python_blocks(page)


def _sdk_page_block(kind: str) -> str:
    """One of the five examples of seed 002, picked by what it does (not by its position)."""
    blocks = [b.code for b in _page_blocks("002_")]
    assert len(blocks) == 5, f"seed 002 should hold five Python examples, found {len(blocks)}"
    pick: Callable[[str], bool] = {
        "sync": lambda c: "MeshAPI(" in c and "AsyncMeshAPI" not in c,
        "async": lambda c: "AsyncMeshAPI(" in c,
        "streaming": lambda c: c.lstrip().startswith("for chunk in"),
        "async_streaming": lambda c: c.lstrip().startswith("async for chunk"),
        "tool_calling": lambda c: "ToolFunction(" in c,
    }[kind]
    matches = [c for c in blocks if pick(c)]
    assert len(matches) == 1, f"expected one {kind} example in seed 002, found {len(matches)}"
    return matches[0]


def substituted(code: str, base_url: str, token: str, *, must_substitute: bool) -> str:
    """The example with the gateway's URL and a real key in place of the page's placeholders."""
    replaced = SEED_TOKEN.sub(lambda m: repr(token), code.replace(SEED_BASE_URL, base_url))
    if must_substitute:
        assert SEED_BASE_URL in code and SEED_TOKEN.search(code), "the example no longer builds a client"
    return replaced


def run_sync(code: str, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<seed 002>", "exec"), namespace)
    return out.getvalue()


def run_top_level_await(code: str, namespace: dict[str, Any]) -> str:
    """A fragment with a top-level `async for`, run as written (as in an asyncio REPL)."""
    compiled = compile(code, "<seed 002>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()

    async def main() -> None:
        from meshapi import AsyncMeshAPI

        async with AsyncMeshAPI(base_url=namespace["base_url"], token=namespace["token"]) as client:
            namespace["client"] = client
            result = eval(compiled, namespace)
            if result is not None:
                await result

    with contextlib.redirect_stdout(out):
        asyncio.run(main())
    return out.getvalue()


def chat_requests(simulator: SimulatorServer) -> list[dict[str, Any]]:
    return [r for r in simulator.requests() if r["path"].endswith("/chat/completions")]


def test_sync_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    code = substituted(_sdk_page_block("sync"), mesh_url, acme_key.plaintext, must_substitute=True)
    output = run_sync(code, {})
    lines = output.splitlines()
    assert lines[0].startswith("Simulated reply: What is the capital of France?")
    tokens = re.fullmatch(r"Tokens: (\d+)", lines[1])
    assert tokens and int(tokens[1]) > 0
    [sent] = chat_requests(simulator)
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert (sent["body"]["temperature"], sent["body"]["max_tokens"]) == (0.7, 256)
    assert [m["role"] for m in sent["body"]["messages"]] == ["system", "user"]
    assert sent["body"].get("stream") is not True


def test_async_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    code = substituted(_sdk_page_block("async"), mesh_url, acme_key.plaintext, must_substitute=True)
    output = run_sync(code, {"__name__": "__main__"})
    assert output.startswith("Simulated reply: Hello!")
    assert len(chat_requests(simulator)) == 1


def _sync_client_namespace(base_url: str, token: str) -> dict[str, Any]:
    """What the page's fragments rely on: `client`, built as the first example builds it."""
    from meshapi import MeshAPI

    return {"client": MeshAPI(base_url=base_url, token=token), "base_url": base_url, "token": token}


def test_streaming_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    namespace = _sync_client_namespace(mesh_url, acme_key.plaintext)
    code = substituted(_sdk_page_block("streaming"), mesh_url, acme_key.plaintext, must_substitute=False)
    exec("from meshapi import ChatCompletionParams, ChatMessage", namespace)
    output = run_sync(code, namespace)
    namespace["client"].close()
    assert output.startswith("Simulated reply: Write a haiku about Python.")
    [sent] = chat_requests(simulator)
    assert sent["body"]["stream"] is True
    assert sent["outcome"] == "completed"


def streaming_params_expression() -> str:
    """The async fragment streams `params`: the streaming example's ChatCompletionParams(...)."""
    tree = ast.parse(_sdk_page_block("streaming"))
    call = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "ChatCompletionParams"
    )
    return ast.unparse(call)


def test_async_streaming_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    namespace: dict[str, Any] = {"base_url": mesh_url, "token": acme_key.plaintext}
    exec("from meshapi import ChatCompletionParams, ChatMessage", namespace)
    namespace["params"] = eval(streaming_params_expression(), namespace)
    code = substituted(
        _sdk_page_block("async_streaming"), mesh_url, acme_key.plaintext, must_substitute=False
    )
    output = run_top_level_await(code, namespace)
    assert output.startswith("Simulated reply: Write a haiku about Python.")
    [sent] = chat_requests(simulator)
    assert sent["body"]["stream"] is True


def test_tool_calling_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    namespace = _sync_client_namespace(mesh_url, acme_key.plaintext)
    code = substituted(_sdk_page_block("tool_calling"), mesh_url, acme_key.plaintext, must_substitute=False)
    output = run_sync(code, namespace)
    namespace["client"].close()
    assert output.startswith("tool call: ")
    assert "get_weather" in output
    assert "Paris" in "".join(re.findall(r"arguments='([^']*)'", output))
    [sent] = chat_requests(simulator)
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["body"]["tool_choice"] == "auto"
    assert sent["body"]["tools"][0]["function"]["name"] == "get_weather"


def test_api_reference_sdk_example(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    """The chat endpoint's reference page (seed 000) shows a `Python (SDK)` example too."""
    blocks = {b.code for b in _page_blocks("000_") if b.label == "Python (SDK)"}
    assert blocks, "seed 000 has no Python (SDK) example"
    for block in blocks:
        output = run_sync(substituted(block, mesh_url, acme_key.plaintext, must_substitute=True), {})
        assert output.startswith("Simulated reply: Summarize why async IO matters.")
    assert chat_requests(simulator)[-1]["body"]["temperature"] == 0.2


def test_the_rendered_sdk_page_holds_the_same_examples() -> None:
    """Seed 004 is the same SDK page as a browser shows it (numbered lines, indentation lost): its
    examples are those of 002 line for line, so the runs above cover both renderings."""
    rendered = seed_page("004_")
    if rendered is None:
        pytest.skip(f"seed page 004_*.txt not found in {seeds_dir()}")
    fenced = [[line.strip() for line in block.code.splitlines()] for block in _page_blocks("002_")]
    numbered = numbered_blocks(rendered)
    assert len(numbered) == len(fenced) == 5
    for shown, written in zip(numbered, fenced, strict=True):
        assert [line for line in shown if line] == [line for line in written if line]
