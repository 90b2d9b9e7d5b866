"""Span and attribute names, OpenTelemetry GenAI semantic conventions where they exist."""

from __future__ import annotations

import time

SESSION = "agent_session"
USER_TURN = "user_turn"
AGENT_TURN = "agent_turn"
STT = "stt"
END_OF_TURN = "end_of_turn"
TTS = "tts"
AGENT_SPEECH = "agent_speech"
INTERRUPTION = "interruption"

# OpenTelemetry semantic conventions (general, RPC, GenAI)
SESSION_ID = "session.id"
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"


def llm_span_name(model: str) -> str:
    return f"chat {model}" if model else "chat"


def tool_span_name(tool: str) -> str:
    return f"execute_tool {tool}"


def wall_ns(monotonic: float) -> int:
    """A time.monotonic() instant as epoch nanoseconds (what spans carry)."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)
