"""The computation: sha256(data ‖ n as 8-byte big-endian) with ≥ D leading zero bits."""

import hashlib
import os
import time
from collections.abc import Callable, Iterable

NONCE_BYTES = 8
MAX_NONCE = 1 << (8 * NONCE_BYTES)
# How often the search loop reports progress and checks for a stop.
CHUNK = 4096


def threshold(difficulty: int) -> bytes:
    """Digests below this (as 32 big-endian bytes) have ≥ `difficulty` zero bits."""
    if not 0 <= difficulty <= 256:
        raise ValueError(f"difficulty must be 0-256, got {difficulty}")
    if difficulty == 0:
        return b"\xff" * 32 + b"\x00"  # longer than any digest: everything passes
    return (1 << (256 - difficulty)).to_bytes(32, "big")


def is_solution(data: bytes, nonce: int, difficulty: int) -> bool:
    digest = hashlib.sha256(data + nonce.to_bytes(NONCE_BYTES, "big")).digest()
    return digest < threshold(difficulty)


def search(
    data: bytes,
    start: int,
    end: int,
    difficulty: int,
    *,
    on_chunk: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[int]:
    """Every solution in [start, end), ascending.

    `on_chunk(hashes_done)` is called every CHUNK hashes (for progress);
    `should_stop()` is checked as often and ends the search early.
    """
    prefix = hashlib.sha256(data)
    limit = threshold(difficulty)
    found = []
    for chunk_start in range(start, end, CHUNK):
        if should_stop is not None and should_stop():
            raise InterruptedError("the search was stopped")
        for nonce in range(chunk_start, min(chunk_start + CHUNK, end)):
            h = prefix.copy()
            h.update(nonce.to_bytes(NONCE_BYTES, "big"))
            if h.digest() < limit:
                found.append(nonce)
        if on_chunk is not None:
            on_chunk(min(chunk_start + CHUNK, end) - start)
    return found


def solutions_among(data: bytes, nonces: Iterable[int], difficulty: int) -> list[int]:
    """The nonces of `nonces` that are solutions (for spot checks)."""
    prefix = hashlib.sha256(data)
    limit = threshold(difficulty)
    result = []
    for nonce in nonces:
        h = prefix.copy()
        h.update(nonce.to_bytes(NONCE_BYTES, "big"))
        if h.digest() < limit:
            result.append(nonce)
    return result


def hash_rate(seconds: float) -> float:
    """Hashes per second of `search`, measured for about `seconds`."""
    data = os.urandom(64)
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        search(data, done, done + CHUNK, 256)
        done += CHUNK
    return done / elapsed
