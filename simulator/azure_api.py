"""Azure OpenAI chat completions: `/openai/deployments/{deployment}/chat/completions?api-version=…`,
the `api-key` header, content-filter results on answers, and Azure's error shapes."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

import orjson

from simulator.asgi import Exchange, StreamScript, send_json
from simulator.engine import serve
from simulator.faults import Fault
from simulator.openai_api import RequestError, parse_prompt
from simulator.openai_dialect import OpenAIDialect
from simulator.reply import Reply, plan_reply

PATH_PREFIX = "/openai/deployments/"
PATH_SUFFIX = "/chat/completions"
_CODES = {401: "401", 404: "DeploymentNotFound", 429: "429", 500: "InternalServerError"}
FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def deployment_of(path: str) -> str | None:
    if not (path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX)):
        return None
    deployment = path[len(PATH_PREFIX) : -len(PATH_SUFFIX)]
    return deployment if deployment and "/" not in deployment else None


def filter_results(*, filtered: bool) -> dict[str, Any]:
    results = {name: {"filtered": False, "severity": "safe"} for name in FILTER_CATEGORIES}
    if filtered:
        results["violence"] = {"filtered": True, "severity": "high"}
    return results


def error_payload(status: int, message: str) -> dict[str, Any]:
    if status == 400:
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return {"error": {"code": _CODES.get(status, str(status)), "message": message}}


def content_filter_error() -> dict[str, Any]:
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy. Please modify your prompt and retry.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": filter_results(filtered=True),
            },
        }
    }


def _request_id() -> list[tuple[bytes, bytes]]:
    return [(b"apim-request-id", secrets.token_hex(16).encode()), (b"x-ms-region", b"Sweden Central")]


async def send_error(exchange: Exchange, status: int, message: str) -> None:
    exchange.log_entry["outcome"] = "error"
    await send_json(exchange.send, status, error_payload(status, message), _request_id())


def auth_problem(exchange: Exchange) -> tuple[int, str] | None:
    if not exchange.headers.get("api-key"):
        return 401, "Access denied due to invalid subscription key or wrong API endpoint."
    if not parse_qs(exchange.query).get("api-version"):
        return 404, "Resource not found"
    return None


def model_of(exchange: Exchange, body: Any) -> str | None:
    return deployment_of(exchange.path)


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    deployment = deployment_of(exchange.path)
    if deployment is None:
        await send_error(exchange, 404, "Resource not found")
        return
    body = {**body, "model": deployment} if isinstance(body, dict) else body
    try:
        prompt = parse_prompt(body)
    except RequestError as error:
        await send_error(exchange, 400, str(error))
        return
    if fault.content_filter == "prompt":
        exchange.log_entry["outcome"] = "error"
        await send_json(exchange.send, 400, content_filter_error(), _request_id())
        return
    options = body.get("stream_options") or {}
    dialect = AzureDialect(
        model=deployment,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        filtered=fault.content_filter == "completion",
    )
    call_id = "call_" + secrets.token_hex(12)
    await serve(
        exchange,
        dialect,
        fault,
        lambda: plan_reply(prompt, fault, call_id),
        stream=body.get("stream") is True,
    )


class AzureDialect(OpenAIDialect):
    """OpenAI's wire format plus Azure's content-filter annotations."""

    def __init__(self, *, model: str, include_usage: bool, filtered: bool) -> None:
        super().__init__(model=model, include_usage=include_usage)
        self.headers = _request_id()
        self.filtered = filtered

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def completion(self, reply: Reply) -> bytes:
        payload = orjson.loads(super().completion(reply))
        payload["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": filter_results(filtered=False)}
        ]
        choice = payload["choices"][0]
        choice["content_filter_results"] = filter_results(filtered=self.filtered)
        if self.filtered:
            choice["finish_reason"] = "content_filter"
            choice["message"]["content"] = None
        return orjson.dumps(payload)

    def stream(self, reply: Reply) -> StreamScript:
        script = super().stream(reply)
        # Azure's first chunk carries the prompt's filter results and no choices.
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": filter_results(filtered=False)}
            ],
        }
        head = [b"data: " + orjson.dumps(first) + b"\n\n", *script.head]
        if not self.filtered:
            return StreamScript(head=head, content=script.content, tail=script.tail)
        finish = self._delta({}, "content_filter")
        tail = [finish, *script.tail[1:]]
        return StreamScript(head=head, content=script.content[:1], tail=tail)
