"""Cases sent more than once: the resend-on-timeout bookkeeping of the dispatch loop.

A case not back within ``case_timeout`` is sent again to another worker (Kepler's master
"resends a token if waiting too long"), up to ``max_resubmits`` times, while the first copy
keeps running: whichever copy ends first gives the case's outcome, the others are dropped (or
their workers stopped), so the case is recorded once. Only cases sent again are tracked here;
every other case passes through untouched.
"""

from __future__ import annotations

from typing import Any

from .base import CaseOutcome

__all__ = ['Copies']


class Copies:
    """The copies out (queued or running) of each case that was sent again, in one run.

    Parameters
    ----------
    max_resubmits : int
        How many times a case may be sent again.
    """

    __slots__ = ('max_resubmits', 'out', '_resends', '_settled')

    def __init__(self, max_resubmits: int):
        self.max_resubmits = max_resubmits
        #: case id -> copies not back yet (only for cases sent again)
        self.out: dict[int, int] = {}
        self._resends: dict[int, int] = {}
        self._settled: set[int] = set()  # cases sent again whose outcome was given

    def copies(self, case_id: int) -> int:
        """Copies of ``case_id`` out (1 for a case never sent again)."""
        return self.out.get(case_id, 1)

    def settled(self, case_id: int) -> bool:
        """Whether a case sent again already gave its outcome (its other copies are late)."""
        return case_id in self._settled

    def can_resend(self, case_id: int) -> bool:
        """Whether ``case_id`` may be sent again."""
        return self._resends.get(case_id, 0) < self.max_resubmits

    def resend(self, case_id: int) -> None:
        """Count one more copy of ``case_id`` out."""
        self._resends[case_id] = self._resends.get(case_id, 0) + 1
        self.out[case_id] = self.out.get(case_id, 1) + 1

    def keep(self, outcome: CaseOutcome) -> bool:
        """Whether ``outcome`` is the one to give for its case (counting its copy back): the
        first result wins; a lost copy gives way while another copy may still end."""
        case_id = outcome.id
        left = self.out.get(case_id)
        if left is None:
            return True
        late = case_id in self._settled
        self._back(case_id, left)
        if late or (outcome.lost and left > 1):
            return False
        if left > 1:
            self._settled.add(case_id)
        return True

    def dispatchable(self, chunk: list[tuple[int, Any]], queued: int) -> list[tuple[int, Any]]:
        """``chunk`` without the copies no longer needed. Its first ``queued`` entries were
        queued here (copies: one whose case gave its outcome is dropped); the rest are new
        from the feed (a case the driver runs again: one more copy, wanted)."""
        kept = []
        for k, entry in enumerate(chunk):
            case_id = entry[0]
            left = self.out.get(case_id)
            if left is not None:
                if k >= queued:
                    self.out[case_id] = left + 1
                    self._settled.discard(case_id)
                elif case_id in self._settled:
                    self._back(case_id, left)
                    continue
            kept.append(entry)
        return kept

    def _back(self, case_id: int, left: int) -> None:
        """One copy of ``case_id`` is back (or dropped); forget the case with its last copy."""
        if left > 1:
            self.out[case_id] = left - 1
        else:
            del self.out[case_id]
            self._resends.pop(case_id, None)
            self._settled.discard(case_id)
