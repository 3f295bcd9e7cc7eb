"""Chunking shared by executors: how many cases go to a worker at once, and taking them."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

__all__ = ['take_chunk', 'next_chunk_size']


def take_chunk(backlog: deque, pull: Callable[[], Any], size: int,
               feed_error: list[BaseException]) -> list:
    """Up to ``size`` cases: the backlog first, then the feed (its error kept for later)."""
    chunk = []
    while backlog and len(chunk) < size:
        chunk.append(backlog.popleft())
    while len(chunk) < size and not feed_error:
        try:
            chunk.append(pull())
        except StopIteration:
            break
        except Exception as exc:  # raised once the cases in flight are done
            feed_error.append(exc)
            break
    return chunk


def next_chunk_size(size: int, elapsed: float, count: int, chunk_time: float,
                    max_chunk: int) -> int:
    """Chunk size for about ``chunk_time`` per chunk: at most doubling, at least 1."""
    per_case = elapsed / count
    target = int(chunk_time / per_case) if per_case > 0 else max_chunk
    return max(1, min(max_chunk, 2 * size, target))
