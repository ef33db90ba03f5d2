from collections.abc import Callable, Sequence
from typing import Any

from replay.template import Part, Template

class InPlaceTemplate:
    endpoint: str
    offset_ns: int
    recorded_ms: int
    fmt: bytes
    slots: int
    stamps: bytes
    reads: Sequence[int]
    body: Part | None
    ack_prefix: bytes
    ack_suffix: bytes
    read_fallback: bytes
    has_read: bool
    head: bool
    defines_trace: bool
    def render(
        self, serial: bytes, delta_ms: int, read: bytes, iso: Callable[[int], bytes]
    ) -> bytes: ...
    def trace_id(self, serial: bytes) -> bytes: ...
    def template(self) -> Template: ...

def unpack(frame: bytes, entries: bool, in_place: bool = ...) -> list[Any]: ...
def pack(entries: Sequence[tuple[int, ...]], templates: Sequence[tuple[Any, ...]]) -> bytes: ...
def configure(template: type, part: type, entry: type, iso: Callable[..., bytes]) -> None: ...
