"""`MeshAPI` and `AsyncMeshAPI`: the clients, one attribute per API area."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Self

import httpx

from meshapi._base import DEFAULT_TIMEOUT, ClientConfig, Timeout, client_config
from meshapi._retry import DEFAULT_MAX_RETRIES
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.resources.chat import AsyncChat, Chat
from meshapi.resources.compare import AsyncCompare, Compare
from meshapi.resources.embeddings import AsyncEmbeddings, AsyncImages, Embeddings, Images
from meshapi.resources.files import AsyncBatches, AsyncFiles, Batches, Files
from meshapi.resources.jobs import AsyncJobs, Jobs
from meshapi.resources.models import AsyncModels, Models
from meshapi.resources.responses import AsyncResponses, Responses
from meshapi.resources.templates import AsyncTemplates, Templates
from meshapi.resources.usage import AsyncUsageReports, UsageReports


class MeshAPI:
    """The synchronous client. `token` defaults to `MESHAPI_TOKEN`, `base_url` to `MESHAPI_BASE_URL`
    (then https://api.meshapi.ai); `timeout` (seconds) and `max_retries` apply to every call unless
    a call passes its own. Close it (or use `with`) to release its connections."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._config = client_config(
            base_url=base_url, token=token, timeout=timeout, max_retries=max_retries,
            default_headers=default_headers,
        )  # fmt: skip
        self._transport = SyncTransport(self._config, http_client)
        self.chat = Chat(self._transport)
        self.compare = Compare(self._transport)
        self.models = Models(self._transport)
        self.templates = Templates(self._transport)
        self.usage = UsageReports(self._transport)
        self.jobs = Jobs(self._transport)
        self.files = Files(self._transport)
        self.batches = Batches(self._transport)
        self.responses = Responses(self._transport)
        self.embeddings = Embeddings(self._transport)
        self.images = Images(self._transport)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def config(self) -> ClientConfig:
        return self._config

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncMeshAPI:
    """The asyncio client; same arguments as `MeshAPI`. Use `async with` (or `await close()`)."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = client_config(
            base_url=base_url, token=token, timeout=timeout, max_retries=max_retries,
            default_headers=default_headers,
        )  # fmt: skip
        self._transport = AsyncTransport(self._config, http_client)
        self.chat = AsyncChat(self._transport)
        self.compare = AsyncCompare(self._transport)
        self.models = AsyncModels(self._transport)
        self.templates = AsyncTemplates(self._transport)
        self.usage = AsyncUsageReports(self._transport)
        self.jobs = AsyncJobs(self._transport)
        self.files = AsyncFiles(self._transport)
        self.batches = AsyncBatches(self._transport)
        self.responses = AsyncResponses(self._transport)
        self.embeddings = AsyncEmbeddings(self._transport)
        self.images = AsyncImages(self._transport)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def config(self) -> ClientConfig:
        return self._config

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
