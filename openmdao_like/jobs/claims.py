"""`ClaimFeed`: the cases of a submitted run that one runner claims from the job store.

Several runners may work on one run: each pulls its cases from the store a batch at a time
(`JobStore.claim_jobs`: the lowest READY case ids, or those of a runner whose lease expired),
so that no case is handed to two runners. The driver sees a `CaseFeed` like any other; the
case ids another runner took are passed over (marked in the driver's ``pending`` so that this
runner's own cases are still recorded in case order, and as soon as they end).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Mapping

from ..drivers.caserun import CaseFeed
from .store import JobStore

#: Jobs one claim takes at most (one transaction each).
CLAIM_BATCH = 32


class ClaimFeed(CaseFeed):
    """The cases runner ``runner`` claims from run ``run_id`` of ``store``, under a lease of
    ``lease`` seconds, ``batch`` at a time, to run on ``host`` (if known); for ``driver``
    (``pending``: see the module)."""

    __slots__ = ('_pending', '_claim', '_claimed', '_last')

    def __init__(self, driver: Any, pending: dict[int, tuple[Any, Any]], store: JobStore,
                 run_id: str, runner: str, lease: float, batch: int = CLAIM_BATCH,
                 host: str | None = None):
        super().__init__(iter(()), driver)
        self._pending = pending
        self._claim = lambda: store.through_outages(
            lambda: store.claim_jobs(run_id, runner, lease, batch, host), 'claiming cases')
        self._claimed: deque[tuple[int, Mapping[str, Any]]] = deque()
        self._last = -1  # the highest case id handed out

    def __next__(self) -> tuple[int, Mapping[str, Any]]:
        if self._retry:
            case_id = self._retry.popleft()
            return case_id, self.inputs[case_id]
        if self._done:
            raise StopIteration
        if not self._claimed:
            self._claimed.extend(self._claim())
            if not self._claimed:
                self._done = True
                raise StopIteration
        case_id, inputs = self._claimed.popleft()
        if case_id > self._last + 1:  # other runners' cases: not recorded here
            for other in range(self._last + 1, case_id):
                self._pending.setdefault(other, (None, ()))
        self._last = max(self._last, case_id)
        if inputs.keys() != self._keys:
            self._driver._use_plan(inputs, case_id)
            self._keys = frozenset(inputs)
        self.next_id = max(self.next_id, case_id + 1)
        self.inputs[case_id] = inputs
        return case_id, inputs
