"""A plain-text dialogue prompt for a base (non-chat) language model.

Small base models follow "User: ...\\nAssistant:" far better than a chat
template they were not tuned on. System messages become a preamble; tool
results are shown as notes; the newest turns are kept when the context is
too small for all of them. The answer is one line: first_line() cuts the
token stream at the first newline after some text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from parley.chat import ChatMessage, Role

STOP = ["User:", "Assistant:"]


def render(messages: list[ChatMessage], count_tokens: Callable[[str], int], budget: int) -> str:
    """The prompt, ending with "Assistant:", within `budget` tokens when possible."""
    preamble = "\n".join(m.content.strip() for m in messages if m.role is Role.SYSTEM and m.content.strip())
    turns = [_line(m) for m in messages if m.role is not Role.SYSTEM]
    turns = [t for t in turns if t]
    head = f"{preamble}\n" if preamble else ""
    while True:
        prompt = head + "".join(turns) + "Assistant:"
        if len(turns) <= 1 or count_tokens(prompt) <= budget:
            return prompt
        turns.pop(0)


def _line(message: ChatMessage) -> str:
    text = " ".join(message.content.split())
    if message.role is Role.USER:
        return f"User: {text}\n"
    if message.role is Role.ASSISTANT:
        return f"Assistant: {text}\n" if text else ""
    if message.role is Role.TOOL:
        return f"(Tool result: {text})\n"
    return ""


def first_line(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces up to the first newline that follows some text; leading blank lines dropped."""
    started = False
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        head, newline, _ = piece.partition("\n")
        if head:
            yield head
        if newline and started:
            return
