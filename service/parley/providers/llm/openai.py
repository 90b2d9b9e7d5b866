"""An OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, llama.cpp server, Ollama.

Streams tokens and tool calls over server-sent events. Options fall back to
OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL. Every read has a timeout;
connection failures, timeouts, 429 and 5xx answers are retried with backoff
until `max_retries`, but only before the first token (a half-spoken answer is
never restarted). Failures raise ProviderError: "failed" (HTTP error, refused,
cut off), "timeout", "malformed" (a chunk or tool call that does not parse).
Closing the stream closes the connection, which stops the remote generation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from parley.chat import ChatMessage, ToolSpec
from parley.errors import InvalidArgument
from parley.providers.base import LLM, LLMChunk, ProviderError, TextDelta, Usage
from parley.providers.llm.openai_wire import Malformed, StreamState, request_body
from parley.providers.options import Opt
from parley.providers.workers import Workers

OPTIONS = {
    "base_url": Opt(str, "", help="e.g. http://127.0.0.1:8000/v1; default $OPENAI_BASE_URL or OpenAI's"),
    "api_key": Opt(str, "", help="default $OPENAI_API_KEY; may be empty for local servers"),
    "model": Opt(str, "", help="default $OPENAI_MODEL or gpt-4o-mini"),
    "temperature": Opt(float, None, min=0.0, max=2.0),
    "max_tokens": Opt(int, None, min=1, max=32_768),
    "timeout_s": Opt(float, 30.0, min=0.01, max=600.0, help="longest wait for a connection or the next chunk"),
    "max_retries": Opt(int, 2, min=0, max=10),
    "retry_backoff_s": Opt(float, 0.5, min=0.0, max=30.0, help="first retry delay, doubled each time"),
    "include_usage": Opt(bool, True, help="ask for token usage in the stream (stream_options)"),
}

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_FIELD = "config.providers.llm.options"


class _Retry(Exception):
    def __init__(self, error: ProviderError) -> None:
        self.error = error


class OpenAILLM(LLM):
    name = "openai"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._options = options
        self.base_url = (options["base_url"] or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidArgument(f"{_FIELD}.base_url", "must be an http:// or https:// URL")
        self.model = options["model"] or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        api_key = options["api_key"] or os.environ.get("OPENAI_API_KEY", "")
        if not api_key and self.base_url == DEFAULT_BASE_URL:
            raise InvalidArgument(f"{_FIELD}.api_key", "OpenAI needs an API key (option api_key or OPENAI_API_KEY)")
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._options["timeout_s"]), headers=self._headers)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _error(self, kind: str, message: str) -> ProviderError:
        return ProviderError(kind, "llm", self.name, message)  # type: ignore[arg-type]

    async def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        body = request_body(self.model, messages, tools, self._options)
        retries = self._options["max_retries"]
        for attempt in range(retries + 1):
            emitted = False
            try:
                async with aclosing(self._attempt(body)) as chunks:
                    async for chunk in chunks:
                        emitted = True
                        yield chunk
                return
            except _Retry as retry:
                if emitted or attempt == retries:
                    raise retry.error from None
            await asyncio.sleep(self._options["retry_backoff_s"] * 2**attempt)

    async def _attempt(self, body: dict[str, Any]) -> AsyncIterator[LLMChunk]:
        url = f"{self.base_url}/chat/completions"
        try:
            async with self._http().stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread())[:300].decode(errors="replace")
                    error = self._error("failed", f"HTTP {response.status_code} from {url}: {detail}")
                    if response.status_code in _RETRY_STATUS:
                        raise _Retry(error)
                    raise error
                async with aclosing(self._chunks(response)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except httpx.TimeoutException as exc:
            raise _Retry(self._error("timeout", f"no answer from {url} within {self._options['timeout_s']} s")) from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Retry(self._error("failed", f"{type(exc).__name__} talking to {url}: {exc}")) from exc
        except httpx.HTTPError as exc:
            raise self._error("failed", f"{type(exc).__name__} talking to {url}: {exc}") from exc

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[LLMChunk]:
        state = StreamState()
        done = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                text = state.feed(data)
                if text:
                    yield TextDelta(text)
                if state.finish_reason and state.calls:
                    for call in state.take_tool_calls():
                        yield call
            if not done and state.finish_reason is None:
                raise self._error("failed", "the stream ended before the answer was finished")
            for call in state.take_tool_calls():
                yield call
        except Malformed as exc:
            raise self._error("malformed", str(exc)) from exc
        input_tokens, output_tokens = state.usage or (0, 0)
        yield Usage(input_tokens, output_tokens)
