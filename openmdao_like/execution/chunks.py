"""The one chunk policy of the dispatch loop: how many cases go to a worker at once.

When the number of cases left is known (a `CaseFeed` of a driver whose case count is known, a
list, a sized feed), chunks follow guided self-scheduling: each is the remaining count divided
by the number of workers, so chunks shrink towards the end and the workers finish together.
Otherwise chunks grow from 1 (at most doubling) until one takes about ``chunk_time`` seconds,
so quick cases are batched and slow ones spread one by one. Never more than ``max_chunk``,
never more than a worker's share of what remains.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

__all__ = ['ChunkPolicy', 'take_chunk']


class ChunkPolicy:
    """Chunk sizes for one run.

    Parameters
    ----------
    chunk_time : float
        Wall time (s) a chunk should take once the case duration is known (unknown count).
    max_chunk : int
        Largest chunk.
    """

    __slots__ = ('chunk_time', 'max_chunk', '_size')

    def __init__(self, chunk_time: float, max_chunk: int):
        self.chunk_time = chunk_time
        self.max_chunk = max_chunk
        self._size = 1

    def size(self, remaining: int, workers: int) -> int:
        """Cases for the next chunk, with ``remaining`` cases known to be left (0: unknown)
        shared among ``workers``."""
        if remaining > 0:
            return max(1, min(self.max_chunk, -(-remaining // max(1, workers))))
        return self._size

    def measured(self, elapsed: float, count: int) -> None:
        """A chunk of ``count`` cases took ``elapsed`` seconds: aim at ``chunk_time``."""
        per_case = elapsed / count
        target = int(self.chunk_time / per_case) if per_case > 0 else self.max_chunk
        self._size = max(1, min(self.max_chunk, 2 * self._size, target))


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
