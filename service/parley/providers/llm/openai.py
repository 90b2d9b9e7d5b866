"""An OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, llama.cpp's server, Ollama.

Built on the official `openai` SDK (AsyncOpenAI with `base_url`), which does
the HTTP and the server-sent events; the SDK's own retries are off and
Parley's retry policy (`parley.providers.retry`) decides instead: connection
failures, timeouts, 429 (after its Retry-After) and 5xx answers are tried
again with jittered backoff, but only before the first token (a half-spoken
answer is never restarted). Options fall back to OPENAI_BASE_URL,
OPENAI_API_KEY and OPENAI_MODEL. Failures raise ProviderError: "failed"
(HTTP error, refused, cut off), "timeout", "malformed" (a chunk or tool call
that does not parse). A broken stream fails at once; closing the stream
closes the connection, which stops the remote generation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx2
import openai

from parley.chat import ChatMessage, ToolSpec
from parley.errors import InvalidArgument
from parley.providers.base import LLM, ErrorKind, LLMChunk, ProviderError, TextDelta, Usage
from parley.providers.llm.openai_wire import TOOL_CHOICES, Malformed, StreamState, request_body
from parley.providers.options import Opt
from parley.providers.retry import RETRY_STATUS, Retryable, RetryPolicy, retry_after_seconds, stream_with_retries
from parley.providers.workers import Workers

OPTIONS = {
    "base_url": Opt(str, "", help="e.g. http://127.0.0.1:8000/v1; default $OPENAI_BASE_URL or OpenAI's"),
    "api_key": Opt(str, "", help="default $OPENAI_API_KEY; may be empty for local servers", secret=True),
    "model": Opt(str, "", help="default $OPENAI_MODEL or gpt-4o-mini"),
    "temperature": Opt(float, None, min=0.0, max=2.0),
    "max_tokens": Opt(int, None, min=1, max=32_768),
    "tool_choice": Opt(str, "", help='"auto", "none", "required" or a tool\'s name ("required" and a name force a '
                                     'call in a reply\'s first round only); "" leaves it to the endpoint'),
    "timeout_s": Opt(float, 30.0, min=0.01, max=600.0, help="longest wait for a connection or the next chunk"),
    "max_retries": Opt(int, 2, min=0, max=10),
    "retry_backoff_s": Opt(float, 0.5, min=0.0, max=30.0, help="first retry's longest delay, doubled each time"),
    "max_retry_wait_s": Opt(float, 10.0, min=0.0, max=60.0,
                            help="longest wait before a retry; a longer Retry-After fails at once"),
    "include_usage": Opt(bool, True, help="ask for token usage in the stream (stream_options)"),
}

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
KEYLESS = "no-key"  # the SDK insists on a key; local servers ignore this one
_FIELD = "config.providers.llm.options"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def effective_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with the model the endpoint will be asked for (the environment's default filled in)."""
    return options | {"model": options["model"] or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL}


class OpenAILLM(LLM):
    name = "openai"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        options = effective_options(options)
        self._options = options
        self.base_url = (options["base_url"] or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidArgument(f"{_FIELD}.base_url", "must be an http:// or https:// URL")
        self.model = options["model"]
        choice = options["tool_choice"]
        if choice and choice not in TOOL_CHOICES and not _TOOL_NAME.match(choice):
            raise InvalidArgument(f"{_FIELD}.tool_choice", f"must be one of {', '.join(TOOL_CHOICES)} or a tool name")
        self._api_key = options["api_key"] or os.environ.get("OPENAI_API_KEY", "")
        if not self._api_key and self.base_url == DEFAULT_BASE_URL:
            raise InvalidArgument(f"{_FIELD}.api_key", "OpenAI needs an API key (option api_key or OPENAI_API_KEY)")
        self._retry = RetryPolicy(options["max_retries"], options["retry_backoff_s"], options["max_retry_wait_s"])
        self._client: openai.AsyncOpenAI | None = None

    def _sdk(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key or KEYLESS, max_retries=0,
                timeout=httpx2.Timeout(self._options["timeout_s"]))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _error(self, kind: ErrorKind, message: str) -> ProviderError:
        return ProviderError(kind, "llm", self.name, message)

    async def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        body = request_body(self.model, messages, tools, self._options)
        async with aclosing(stream_with_retries(self._retry, lambda: self._attempt(body))) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[LLMChunk, None]:
        url = f"{self.base_url}/chat/completions"
        try:
            stream = await self._sdk().chat.completions.create(**body)
        except openai.APIStatusError as exc:
            error = self._error("failed", f"HTTP {exc.status_code} from {url}: {_said(exc)}")
            if exc.status_code in RETRY_STATUS:
                raise Retryable(error, retry_after_seconds(exc.response.headers)) from None
            raise error from None
        except openai.APITimeoutError:
            raise Retryable(self._error("timeout", f"no answer from {url} within {self._options['timeout_s']} s")) \
                from None
        except openai.APIConnectionError as exc:
            raise Retryable(self._error("failed", f"cannot reach {url}: {_cause(exc)}")) from None
        state = StreamState()
        try:
            async with stream:
                async for chunk in stream:
                    text = state.feed(chunk.model_dump(warnings=False, exclude_unset=True))
                    if text:
                        yield TextDelta(text)
                    if state.finish_reason and state.calls:
                        for call in state.take_tool_calls():
                            yield call
            if state.finish_reason is None:
                raise Retryable(self._error("failed", "the stream ended before the answer was finished"))
            for call in state.take_tool_calls():
                yield call
        except (Malformed, json.JSONDecodeError) as exc:
            raise self._error("malformed", str(exc)) from None
        except (openai.APITimeoutError, httpx2.TimeoutException):
            raise Retryable(self._error("timeout", f"{url} went silent for {self._options['timeout_s']} s")) \
                from None
        except (openai.APIConnectionError, httpx2.TransportError) as exc:
            raise Retryable(self._error("failed", f"the stream from {url} broke: {_cause(exc)}")) from None
        except openai.APIError as exc:  # an error object in the stream
            raise self._error("malformed", f"endpoint error: {exc.message}") from None
        input_tokens, output_tokens = state.usage or (0, 0)
        yield Usage(input_tokens, output_tokens)


def _said(exc: openai.APIStatusError) -> str:
    """What the endpoint said, briefly."""
    return str(exc.message)[:300]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}"[:300]
