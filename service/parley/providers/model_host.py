"""The child side of `model_process.py`: load one model, then run jobs on it until stdin closes.

Messages are length-prefixed pickles: first the load function, then jobs,
("call", function, arguments) answered with ("value", result), or
("stream", generator function, arguments) answered with ("item", x) per
item and ("end", None); a job that raises is answered ("error", "Type:
message"). A "stop" that arrives during a stream closes its generator after
the item in flight. Requests are read unbuffered, so a waiting "stop" shows
on the pipe. The answers use a private copy of stdout; the process's own
stdout goes to stderr, so nothing a library prints can corrupt them. Ctrl-C
and SIGTERM sent to the server's process group are the server's to handle:
the child ignores them and ends when the server closes its stdin (or dies).
"""

from __future__ import annotations

import functools
import os
import select
import signal
from collections.abc import Iterator
from typing import IO, Any

from parley.providers.model_process import STOP, receive_message, send_message

_REQUESTS = 0  # stdin's descriptor


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    model = _read_request()()
    while True:
        try:
            request = _read_request()
        except EOFError:
            return
        if request == STOP:
            continue  # it crossed the end of the stream it was for
        kind, fn, args = request
        try:
            if kind == "call":
                send_message(answers, ("value", fn(model, *args)))
            else:
                _stream(answers, fn(model, *args))
        except EOFError:
            return  # the server went away in the middle of a stream
        except Exception as exc:  # noqa: BLE001 - a failed job is answered, the model stays
            send_message(answers, ("error", f"{type(exc).__name__}: {exc}"))


def _stream(answers: IO[bytes], items: Iterator[Any]) -> None:
    try:
        for item in items:
            send_message(answers, ("item", item))
            if _stop_waiting():
                break
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    send_message(answers, ("end", None))


def _stop_waiting() -> bool:
    if not select.select([_REQUESTS], [], [], 0)[0]:
        return False
    request = _read_request()
    if request != STOP:
        raise RuntimeError(f"a job arrived while a stream ran: {request!r}")
    return True


def _read_request() -> Any:
    return receive_message(functools.partial(os.read, _REQUESTS))


if __name__ == "__main__":
    main()
