from collections.abc import Callable, Sequence

def fill(
    fmt: bytes,
    slots: int,
    stamps: bytes,
    reads: Sequence[int],
    serial: bytes,
    delta_ms: int,
    read: bytes,
    iso: Callable[[int], bytes],
) -> bytes: ...
def configure(filled: Callable[..., bytes], iso: Callable[..., bytes]) -> None: ...
