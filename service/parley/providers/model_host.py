"""The child side of `model_process.py`: load one model, then run jobs on it until stdin closes.

Messages are pickles: first the load function, then (function, arguments) per
job, each answered with (True, result) or (False, "Type: message"). The
answers use a private copy of stdout; the process's own stdout goes to
stderr, so nothing a library prints can corrupt them. Ctrl-C and SIGTERM
sent to the server's process group are the server's to handle: the child
ignores them and ends when the server closes its stdin (or dies).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    model = pickle.load(requests)()
    while True:
        try:
            fn, args = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = (True, fn(model, *args))
        except Exception as exc:  # noqa: BLE001 - a failed job is answered, the model stays
            answer = (False, f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    main()
