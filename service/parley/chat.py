"""Chat context types shared by the session engine and the language models."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the model APIs accept as a tool name


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolSource(StrEnum):
    CLIENT = "client"
    MCP = "mcp"


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the language model; `parameters` is a JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    source: ToolSource = ToolSource.CLIENT
    mcp_server: str = ""


@dataclass(frozen=True)
class ToolCall:
    """A call the language model made; `arguments_json` is a JSON object text."""

    id: str
    name: str
    arguments_json: str
    source: ToolSource = ToolSource.CLIENT


@dataclass
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    interrupted: bool = False
