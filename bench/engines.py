"""Engines benchmark: our `DaskExecutor` and `ParslExecutor` beside raw futures of the same
function on the same cluster, interleaved in one run.

- **efficiency**: CASES cases sleeping d seconds, d in {0.001, 0.01, 0.1} (320, 320 and 160
  cases), on 16 workers; efficiency = (CASES * d / 16) / wall time of the run (1.0 is perfect;
  16 sleeping workers on 2 cores leave the CPUs to the dispatch overhead, which is what is
  measured).
- **empty cases**: cases/s of EMPTY (20,000) cases that do nothing (d = 0: no ``time.sleep``
  call, which costs ~70 us here), beside the raw engine's futures over chunks of BATCH (1,000)
  cases, each task looping over its chunk (the batching a user would write by hand).

Contenders, on one cluster per engine shared by both, started and warmed up before timing:
- Dask: a ``LocalCluster(n_workers=16, threads_per_worker=1, processes=True)`` and one
  ``Client``. Ours: a CaseIteratorDriver (``sequential=False``,
  ``executor=DaskExecutor(client)``) over CASES cases of `Napper` (a component sleeping d);
  the timed sample is ``top.run()`` on the warm executor (its runner is pickled and broadcast
  again at every run, as in any driver run). Raw: ``client.gather(client.map(nap, [d] *
  CASES, pure=False))`` of a plain function sleeping d; for the empty cases,
  ``client.map(nap_chunk, chunks, pure=False)``.
- Parsl: one ``HighThroughputExecutor`` (a ``LocalProvider`` block of 16 workers,
  ``cores_per_worker=1/16``) loaded with ``parsl.load``. Ours: the same driver with
  ``executor=ParslExecutor(config)`` (which uses the loaded kernel). Raw: ``python_app(nap)``
  called CASES times, then every future's ``result()``; for the empty cases,
  ``python_app(nap_chunk)`` over the chunks. Skipped (noted on stderr) when Parsl or
  `ParslExecutor` cannot be imported.

The workers import `Napper`, `nap` and `nap_chunk` from this file by name (``engines``, with
bench/ on their PYTHONPATH). The Dask cluster is closed before the Parsl one starts (32 worker
processes on 2 cores would tax both). Lines: one per (engine, metric, configuration), ``ours``
and ``baseline`` the medians of ROUNDS interleaved samples (ours, raw, ours, raw, ...),
``ratio`` = ours / raw (higher: ours better). Goal (issue 17): ratio >= 1 at every d. About
1.5-2 minutes with 3 rounds.
"""

import os
import sys
import time
from pathlib import Path

import harness
from openmdao_like import Component, Float

BENCH = 'engines'
WORKERS = 16
DELAYS = ((0.001, 320), (0.01, 320), (0.1, 160))
EMPTY = 20_000
BATCH = 1000
BENCH_DIR = Path(__file__).resolve().parent


class Napper(Component):
    """Our case: sleeps ``d`` seconds, and does nothing when ``d`` is 0 (``time.sleep(0)``
    costs some 70 us here: Linux's timer slack)."""

    d = Float(0.0, iotype='in')

    def execute(self):
        if self.d:
            time.sleep(self.d)


def nap(d):
    """The raw case: the same."""
    if d:
        time.sleep(d)
    return d


def nap_chunk(ds):
    """The raw batched task: the cases of a chunk, one after the other."""
    return [nap(d) for d in ds]


def shipped():
    """This file imported as the module ``engines``: what the workers import by name (bench/ is
    on their PYTHONPATH), where ``__main__``'s objects would be pickled by value."""
    import engines
    return engines


def efficiency(count, delay, wall):
    return count * delay / WORKERS / wall


class Ours:
    """A CaseIteratorDriver over `Napper` cases through a warm executor: a sample is one
    ``top.run()``."""

    def __init__(self, executor):
        from openmdao_like import Assembly, set_as_top
        from openmdao_like.drivers import CaseIteratorDriver
        self.executor = executor
        self.top = set_as_top(Assembly())
        self.top.add('s', shipped().Napper())
        self.top.add('driver', CaseIteratorDriver(sequential=False, executor=executor))
        self.top.driver.workflow.add('s')
        for _ in range(3):
            self.run(0.0, 50 * WORKERS)
        slots = executor._pool.size  # (n_workers stays None: the engine's slots at start)
        assert slots == WORKERS, f'{executor!r} has {slots} task slots, not {WORKERS}'

    def run(self, delay, count):
        """Wall time (s) of ``count`` cases of ``delay`` seconds."""
        self.top.driver.cases = [{'s.d': delay}] * count
        start = time.perf_counter()
        self.top.run()
        wall = time.perf_counter() - start
        results = self.top.driver.results
        assert len(results) == count and all(c.ok for c in results), \
            [c.msg for c in results if not c.ok][:3]
        return wall

    def close(self):
        self.executor.shutdown()


class RawDask:
    """``client.map`` of `nap` (or `nap_chunk` over chunks) on the same client."""

    def __init__(self, client):
        self.client = client
        self.nap, self.nap_chunk = shipped().nap, shipped().nap_chunk
        self.run(0.0, 50 * WORKERS)
        self.run_batched(0.0, 50 * WORKERS)

    def run(self, delay, count):
        start = time.perf_counter()
        out = self.client.gather(self.client.map(self.nap, [delay] * count, pure=False))
        wall = time.perf_counter() - start
        assert len(out) == count
        return wall

    def run_batched(self, delay, count):
        chunks = [[delay] * min(BATCH, count - i) for i in range(0, count, BATCH)]
        start = time.perf_counter()
        out = self.client.gather(self.client.map(self.nap_chunk, chunks, pure=False))
        wall = time.perf_counter() - start
        assert sum(map(len, out)) == count
        return wall


class RawParsl:
    """``python_app(nap)`` futures (or ``python_app(nap_chunk)`` over chunks) on the loaded
    kernel."""

    def __init__(self, dfk, label):
        import parsl
        module = shipped()
        self.app = parsl.python_app(module.nap, data_flow_kernel=dfk, executors=[label])
        self.batched = parsl.python_app(module.nap_chunk, data_flow_kernel=dfk,
                                        executors=[label])
        self.run(0.0, 50 * WORKERS)
        self.run_batched(0.0, 50 * WORKERS)

    def run(self, delay, count):
        start = time.perf_counter()
        futures = [self.app(delay) for _ in range(count)]
        out = [f.result() for f in futures]
        wall = time.perf_counter() - start
        assert len(out) == count
        return wall

    def run_batched(self, delay, count):
        start = time.perf_counter()
        futures = [self.batched([delay] * min(BATCH, count - i)) for i in range(0, count, BATCH)]
        done = sum(len(f.result()) for f in futures)
        wall = time.perf_counter() - start
        assert done == count
        return wall


def compare(engine, mine, raw, rounds):
    """The efficiency lines and the empty-case line of one engine."""
    name = f'raw {engine}'
    for delay, count in DELAYS:
        ours, base = harness.interleave(lambda: efficiency(count, delay, mine.run(delay, count)),
                                        lambda: efficiency(count, delay, raw.run(delay, count)),
                                        rounds)
        harness.emit_result(BENCH, {'engine': engine, 'cases': count, 'd': delay,
                                    'workers': WORKERS, 'metric': 'efficiency'},
                            harness.median(ours), harness.median(base), name, 'fraction',
                            lower_is_better=False)
    ours, base = harness.interleave(lambda: EMPTY / mine.run(0.0, EMPTY),
                                    lambda: EMPTY / raw.run_batched(0.0, EMPTY), rounds)
    harness.emit_result(BENCH, {'engine': engine, 'cases': EMPTY, 'd': 0.0, 'workers': WORKERS,
                                'metric': 'cases/s', 'raw_batch': BATCH},
                        harness.median(ours), harness.median(base), f'{name} batched',
                        'cases/s', lower_is_better=False)


def dask_part(rounds):
    import distributed
    from openmdao_like.distributed.engines import DaskExecutor
    cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                       dashboard_address=':0')
    client = distributed.Client(cluster, set_as_default=False)
    mine = None
    try:
        client.wait_for_workers(WORKERS, timeout=120)
        mine = Ours(DaskExecutor(client))
        compare('dask', mine, RawDask(client), rounds)
    finally:
        if mine is not None:
            mine.close()
        client.close()
        cluster.close()


def parsl_part(rounds):
    try:
        import parsl
        from parsl.providers import LocalProvider

        from openmdao_like.distributed.engines import ParslExecutor
    except ImportError as exc:
        print(f'Parsl part skipped: {exc!r}', file=sys.stderr)
        return
    label = 'htex'
    config = parsl.Config(
        executors=[parsl.HighThroughputExecutor(
            label=label, max_workers_per_node=WORKERS, cores_per_worker=1.0 / WORKERS,
            address='127.0.0.1', loopback_address='127.0.0.1',
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))],
        run_dir=os.path.abspath('runinfo'), strategy='none')
    dfk = parsl.load(config)
    mine = None
    try:
        raw = RawParsl(dfk, label)  # (waits for the block's workers)
        mine = Ours(ParslExecutor(config, workers_timeout=120.0))
        compare('parsl', mine, raw, rounds)
    finally:
        if mine is not None:
            mine.close()
        dfk.cleanup()
        parsl.clear()


def body(rounds):
    import importlib.metadata
    versions = {}
    for dist in ('dask', 'distributed', 'parsl'):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    harness.emit_machine(BENCH, rounds=rounds, workers=WORKERS, delays=DELAYS, empty=EMPTY,
                         batch=BATCH, engines=versions)
    # the workers import this file by name (as engines); Parsl's scripts are beside this interpreter
    os.environ['PYTHONPATH'] = os.pathsep.join(filter(None, [str(BENCH_DIR),
                                                             os.environ.get('PYTHONPATH')]))
    os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']
    dask_part(rounds)
    parsl_part(rounds)


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=3)
