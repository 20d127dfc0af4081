"""The served OpenAPI 3.1 document describes the proxy (the seeds' union) and the management APIs."""

from __future__ import annotations

import httpx

# Every request field of both seed specs (000: Mesh API reference, 001: OpenAPI of the service).
SEED_REQUEST_FIELDS = {
    "model",
    "messages",
    "template",
    "variables",
    "session_id",
    "stream",
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "transforms",
    "models",
    "user",
    "modality",
    "image",
    "async_mode",
    "modalities",
    "audio",
    "timeout",
}
SEED_ERROR_CODES = {
    "unauthorized",
    "forbidden",
    "not_found",
    "model_not_found",
    "validation_error",
    "unprocessable_entity",
    "rate_limit_exceeded",
    "spend_limit_exceeded",
    "conflict",
    "upstream_error",
    "provider_not_available",
    "gateway_timeout",
}


def test_openapi_document_is_public_and_31(api_url: str) -> None:
    response = httpx.get(f"{api_url}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "post" in document["paths"]["/v1/chat/completions"]
    assert "get" in document["paths"]["/v1/models"]


def test_request_schema_is_the_union_of_both_seeds(api_url: str) -> None:
    schemas = httpx.get(f"{api_url}/openapi.json").json()["components"]["schemas"]
    assert set(schemas["ChatCompletionRequest"]["properties"]) >= SEED_REQUEST_FIELDS
    code = schemas["ErrorBody"]["properties"]["code"]
    error_codes = set(next(option["enum"] for option in code["anyOf"] if "enum" in option))
    assert error_codes >= SEED_ERROR_CODES | {"internal_error"}  # the seeds' codes, and a 500's own
    assert {"type": "string"} in code["anyOf"]  # an upstream's own code, kept for its 4xx
    assert "rate_limit_error" in schemas["ErrorBody"]["properties"]["type"]["enum"]
    assert {"code", "type"} <= set(schemas["ProviderError"]["properties"])
    responses = httpx.get(f"{api_url}/openapi.json").json()["paths"]["/v1/chat/completions"]["post"][
        "responses"
    ]
    assert {"200", "401", "402", "403", "404", "422", "429", "502", "503", "504"} <= set(responses)


def test_the_models_list_emits_exactly_what_its_schema_declares(
    api_url: str, acme_http: httpx.Client
) -> None:
    document = httpx.get(f"{api_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    declared = set(schemas["ModelInfo"]["properties"])
    pricing = schemas["ModelPricing"]["properties"]
    models = acme_http.get("/models").json()["data"]

    assert models
    for model in models:
        assert set(model) == declared
        assert set(model["pricing"]) == set(pricing)
        assert all(isinstance(price, str) for price in model["pricing"].values())


def test_embeddings_and_images_are_documented_with_their_schemas(api_url: str) -> None:
    document = httpx.get(f"{api_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, request, response in (
        ("/v1/embeddings", "EmbeddingsRequest", "EmbeddingsResponse"),
        ("/v1/images/generations", "ImagesRequest", "ImagesResponse"),
    ):
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request}"}
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            response
        )
        assert {"401", "402", "422", "429", "502"} <= set(operation["responses"])
    assert {"model", "input", "encoding_format", "dimensions", "session_id"} <= set(
        schemas["EmbeddingsRequest"]["properties"]
    )
    images = schemas["ImagesRequest"]["properties"]
    assert {"prompt", "n", "size", "quality", "response_format", "session_id"} <= set(images)
    assert (images["n"]["minimum"], images["n"]["maximum"]) == (1, 10)
