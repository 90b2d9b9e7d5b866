"""Server reflection that serves the contract with its comments.

The descriptors compiled into the generated stubs carry no source info, so
`grpcurl describe` would show the contract without a word of documentation.
`proto/generate.py` also writes `parley/v1/contract.binpb`, the same files
compiled with their source info; reflection answers with those for the
contract's files and with the process's own descriptors for everything else
(health, reflection itself).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor


@cache
def documented_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The contract's files, with comments, by file name."""
    data = resources.files("parley.v1").joinpath("contract.binpb").read_bytes()
    return {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}


class _DocumentedFile:
    """A file descriptor whose CopyToProto adds the source info (name, dependencies, CopyToProto: all that
    reflection reads of it)."""

    def __init__(self, pool: DocumentedPool, descriptor: FileDescriptor) -> None:
        self._pool = pool
        self._descriptor = descriptor
        self.name = descriptor.name

    @property
    def dependencies(self) -> list[Any]:
        return [self._pool.wrap(d) for d in self._descriptor.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:  # noqa: N802 (the descriptor API)
        """The file as the stubs know it, plus its comments: nothing else differs from what clients compiled."""
        self._descriptor.CopyToProto(proto)
        documented = documented_files().get(self.name)
        if documented is not None:
            proto.source_code_info.CopyFrom(documented.source_code_info)


class DocumentedPool:
    """The process's descriptor pool, as reflection uses it, answering with documented files."""

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool or descriptor_pool.Default()

    def wrap(self, descriptor: FileDescriptor) -> _DocumentedFile:
        return _DocumentedFile(self, descriptor)

    def FindFileByName(self, name: str) -> _DocumentedFile:  # noqa: N802
        return self.wrap(self._pool.FindFileByName(name))

    def FindFileContainingSymbol(self, symbol: str) -> _DocumentedFile:  # noqa: N802
        return self.wrap(self._pool.FindFileContainingSymbol(symbol))

    def __getattr__(self, name: str) -> Any:  # message and extension look-ups: the pool's own
        return getattr(self._pool, name)
