"""Generate the Python stubs of the parley.v1 contract into service/parley/v1.

Run by `make proto` and by the wheel build (setup.py), so both produce the same
files. The generated package is `parley.v1`; it is never edited by hand.

Besides the stubs it writes `contract.binpb`, the contract's descriptors with
their comments (source info), which server reflection serves so that
`grpcurl describe` shows the documentation.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "service"
DESCRIPTOR_SET = OUT_DIR / "parley" / "v1" / "contract.binpb"


def generate() -> None:
    from grpc_tools import protoc  # build-time dependency
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "parley").rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    DESCRIPTOR_SET.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={OUT_DIR}",
        f"--pyi_out={OUT_DIR}",
        f"--grpc_python_out={OUT_DIR}",
        f"--descriptor_set_out={DESCRIPTOR_SET}",
        "--include_source_info",
        "--include_imports",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (OUT_DIR / "parley" / "v1" / "__init__.py").write_text('"""Generated parley.v1 stubs."""\n')


if __name__ == "__main__":
    generate()
    sys.exit(0)
