"""Workflows: which components (and nested drivers) a driver runs, and in what order.

`Dataflow` (the default) derives a deterministic order from the connections; `SequentialWorkflow`
runs names exactly as given, repeats allowed. Both compile to a tuple of bound ``run`` methods.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterable, Iterator

from .errors import ConfigError, ModelError
from .options import suggest


class Workflow:
    """Names of the objects a driver iterates over.

    Parameters
    ----------
    members : iterable of str, optional
        Initial names.
    """

    allow_repeats = False

    def __init__(self, members: Iterable[str] | None = None):
        self._names: list[str] = []
        self._driver: Any = None
        self._runs: tuple = ()
        self._order: list[str] | None = None
        if members:
            self.add(list(members))

    # -- editing --------------------------------------------------------------------------------
    def add(self, names: str | Iterable[str], index: int | None = None,
            check: bool = False) -> None:
        """Add a name or a list of names (each a child of the driver's assembly)."""
        items = [names] if isinstance(names, str) else list(names)
        for name in items:
            if not isinstance(name, str) or not name.isidentifier():
                raise ModelError(f'{self._where()}: expected a component name, got {name!r}')
            if check and self._driver is not None:
                self._resolve(name)
        present = set(self._names)
        for name in items:
            if name in present and not self.allow_repeats:
                continue
            present.add(name)
            if index is None:
                self._names.append(name)
            else:
                self._names.insert(index, name)
                index += 1
        self._changed()

    def remove(self, name: str) -> None:
        """Remove every occurrence of ``name``."""
        if name not in self._names:
            raise ModelError(f'{self._where()}: {name!r} is not in the workflow '
                             f'(workflow: {self._names})')
        self._names = [n for n in self._names if n != name]
        self._changed()

    def clear(self) -> None:
        """Remove every name."""
        self._names = []
        self._changed()

    def get_names(self, full: bool = False) -> list[str]:
        """Names in run order (as added, before the first run)."""
        return list(self._order if self._order is not None else self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.get_names())

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def _changed(self) -> None:
        self._order = None
        self._runs = ()
        drv = self._driver
        if drv is not None and drv.parent is not None:
            drv.parent._config_changed()

    def _where(self) -> str:
        return f'{self._driver._where()}.workflow' if self._driver is not None else 'workflow'

    # -- compiling and running ------------------------------------------------------------------
    def _resolve(self, name: str) -> Any:
        asm = self._driver.parent
        obj = asm._children.get(name) if asm is not None else None
        if obj is None or not hasattr(obj, 'run'):
            known = [] if asm is None else [n for n, c in asm._children.items()
                                            if hasattr(c, 'run') and c is not self._driver]
            raise ConfigError(f'{self._where()}: {name!r} is not a component of '
                              f'{asm._where() if asm is not None else "any assembly"!r}'
                              f'{suggest(name, known)}')
        if obj is self._driver:
            raise ConfigError(f'{self._where()}: a driver cannot be in its own workflow')
        return obj

    def order(self, graph: dict[str, set[str]]) -> tuple[list[str], list[list[str]]]:
        """(run order, cycles): the names in the order they run, and groups that form cycles."""
        return list(self._names), []

    def compile(self, graph: dict[str, set[str]]) -> list[list[str]]:
        """Fix the run order from the component graph; return the cycles found."""
        order, cycles = self.order(graph)
        self._order = order
        self._runs = tuple(self._resolve(name).run for name in order)
        return cycles

    def run(self) -> None:
        """Run every member once, in order."""
        for run in self._runs:
            run()

    def members(self) -> set[str]:
        """Names of every component this workflow runs, nested drivers' workflows included."""
        found: set[str] = set()
        asm = self._driver.parent if self._driver is not None else None
        for name in self._names:
            found.add(name)
            obj = asm._children.get(name) if asm is not None else None
            sub = getattr(obj, 'workflow', None)
            if isinstance(sub, Workflow) and obj is not self._driver:
                found |= sub.members()
        return found

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_runs'] = ()
        return state


class SequentialWorkflow(Workflow):
    """Runs names exactly in the order given; a name listed three times runs three times."""

    allow_repeats = True


class Dataflow(Workflow):
    """Runs each name once, in an order derived from the connections (ties: order added)."""

    def order(self, graph: dict[str, set[str]]) -> tuple[list[str], list[list[str]]]:
        names = self._names
        asm = self._driver.parent
        members = {}
        for name in names:
            obj = asm._children.get(name)
            sub = getattr(obj, 'workflow', None)
            members[name] = {name} | (sub.members() if isinstance(sub, Workflow) else set())
        owner = {m: name for name in names for m in members[name]}
        succ: dict[str, set[str]] = {name: set() for name in names}
        for name in names:
            for m in members[name]:
                for target in graph.get(m, ()):
                    other = owner.get(target)
                    if other is not None and other != name:
                        succ[name].add(other)
        sccs = _strongly_connected(names, succ)
        return _topological(names, succ, sccs), [_along_edges(c, succ) for c in sccs
                                                 if len(c) > 1]


def _along_edges(group: list[str], succ: dict[str, set[str]]) -> list[str]:
    """The members of a cycle group in data order: a closed path from the first member back to
    it, followed by any members that path did not pass through."""
    start, members = group[0], set(group)
    stack = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in sorted(succ[node] & members, key=group.index, reverse=True):
            if nxt == start:
                return path + [m for m in group if m not in path]
            if nxt not in path:
                stack.append((nxt, path + [nxt]))
    return group


def _strongly_connected(names: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; each group lists its names in the order added."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    position = {n: i for i, n in enumerate(names)}
    for root in names:
        if root in index:
            continue
        work = [(root, iter(sorted(succ[root], key=position.get)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(succ[nxt], key=position.get))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group, key=position.get))
    return groups


def _topological(names: list[str], succ: dict[str, set[str]],
                 sccs: list[list[str]]) -> list[str]:
    """Kahn's algorithm over the strongly connected groups, ties broken by order added."""
    position = {n: i for i, n in enumerate(names)}
    group_of = {n: gi for gi, group in enumerate(sccs) for n in group}
    indegree = [0] * len(sccs)
    edges: list[set[int]] = [set() for _ in sccs]
    for node, targets in succ.items():
        for target in targets:
            a, b = group_of[node], group_of[target]
            if a != b and b not in edges[a]:
                edges[a].add(b)
                indegree[b] += 1
    heap = [(position[g[0]], gi) for gi, g in enumerate(sccs) if indegree[gi] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, gi = heapq.heappop(heap)
        order.extend(sccs[gi])
        for b in edges[gi]:
            indegree[b] -= 1
            if indegree[b] == 0:
                heapq.heappush(heap, (position[sccs[b][0]], b))
    return order
