"""Job store benchmark (issue 14): store throughput, and the cost of a durable run.

- ``throughput``: 10,000 jobs of one run added (one batch), then moved READY -> SUBMITTED ->
  RUNNING -> COMPLETED in batches of 1,000 (`JobStore.move`, `JobStore.finish`, every move
  checked against the transition table); jobs per second over the whole, SQLite file and a
  private PostgreSQL server (started as the tests start it: tests/pg_server.py). Baseline: the
  issue's goal, 20,000 jobs/s.
- ``latency``: how long after a case ends its job is COMPLETED in the store (the write's end,
  on whichever connection of the job recorder wrote it, minus the case's ``t_end``), over a
  durable DOE of 200 cases of 10 ms each, median and p99, beside jobflow-remote's default
  polling period (30 s; the issue's goal: median <= 0.1 s).
- ``durable_run``: bench/cases.py's serial paraboloid DOE (5,000 cases, CaseIteratorDriver)
  with the SQLite recorder, run durably (`jobs.durable.start_run`: the model saved with a run
  of a SQLite store, each case recorded as a job) against the same run with the recorder only;
  cases per second, interleaved rounds, median. The issue's goal: ours >= baseline / 1.5
  (ratio >= 0.67).
"""

import os
import sys
import time
from pathlib import Path

import harness

BENCH = "jobs"
JOBS = 10_000
BATCH = 1_000
CASES = 5_000


def throughput(url):
    """Jobs per second of one run's 10,000 jobs through their states in the store at ``url``."""
    from openmdao_like.jobs import JobStore, Result, State

    with JobStore(url) as store:
        start = time.perf_counter()
        run_id = store.create_run("bench", driver="driver", total=JOBS)
        store.add_jobs(run_id, [(i, {"p.x": float(i)}) for i in range(JOBS)])
        for first in range(0, JOBS, BATCH):
            ids = range(first, first + BATCH)
            store.move(run_id, ids, State.SUBMITTED)
            store.move(run_id, ids, State.RUNNING, count_attempt=True, host="bench")
            store.finish(run_id, [Result(i, State.COMPLETED, {"p.f": float(i)}) for i in ids])
        elapsed = time.perf_counter() - start
        assert store.counts(run_id)["COMPLETED"] == JOBS
    return JOBS / elapsed


def durable_rate(points, durable, n):
    """Cases per second of one run of bench/cases.py's model, durable or recorder only."""
    fw = harness.framework("fw_ours")
    top = fw.build_cases(points, os.path.abspath(f"cases-{n}.sqlite"))
    if durable:
        from openmdao_like.jobs import JobStore
        from openmdao_like.jobs.durable import start_run
        store = JobStore(f"sqlite:///{os.path.abspath(f'runs-{n}.db')}")
        start_run(top, store, "cases")
    start = time.perf_counter()
    top.run()
    return len(points) / (time.perf_counter() - start)


def latencies(cases=200, seconds=0.01):
    """Seconds from each case's end to its job's write, over one durable run."""
    import numpy as np

    from openmdao_like import Assembly, Component, Float, set_as_top
    from openmdao_like.drivers import CaseIteratorDriver
    from openmdao_like.jobs import JobStore
    from openmdao_like.jobs.durable import start_run

    class Slow(Component):
        x = Float(0.0, iotype="in")
        f = Float(0.0, iotype="out")

        def execute(self):
            time.sleep(seconds)
            self.f = self.x

    top = set_as_top(Assembly())
    top.add("p", Slow())
    top.add("driver", CaseIteratorDriver(cases=[{"p.x": float(i)} for i in range(cases)]))
    top.driver.workflow.add("p")
    top.driver.add_response("p.f")
    store = JobStore(f"sqlite:///{os.path.abspath('latency.db')}")
    seen = []
    write = JobStore.record_cases

    def timed(self, run_id, rows):  # on whichever connection writes (the recorder's thread)
        write(self, run_id, rows)
        now = time.time()
        seen.extend(now - case.t_end for case in rows)

    JobStore.record_cases = timed
    try:
        start_run(top, store, "latency")
        top.run()
    finally:
        JobStore.record_cases = write
    assert len(seen) == cases
    return float(np.median(seen)), float(np.percentile(seen, 99))


def postgres():
    """A private PostgreSQL server (tests/pg_server.py), or None if it cannot start here."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from pg_server import PostgresServer
        return PostgresServer()
    except Exception as exc:  # noqa: BLE001 - reported, the figure is then null
        print(f"no PostgreSQL for the benchmark: {exc!r}", file=sys.stderr)
        return None


def body(rounds):
    harness.emit_machine(BENCH, rounds=rounds)
    sqlite = [throughput(f"sqlite:///{os.path.abspath(f'tp-{i}.db')}") for i in range(rounds)]
    harness.emit_result(BENCH, {"metric": "throughput", "store": "sqlite", "jobs": JOBS},
                        ours=harness.median(sqlite), baseline=20_000.0,
                        baseline_name="goal (issue 14)", unit="jobs/s", lower_is_better=False)
    server = postgres()
    pg = []
    if server is not None:
        with server:
            pg = [throughput(server.create_database(f"bench_{i}")) for i in range(rounds)]
    harness.emit_result(BENCH, {"metric": "throughput", "store": "postgresql", "jobs": JOBS},
                        ours=harness.median(pg), baseline=20_000.0,
                        baseline_name="goal (issue 14)", unit="jobs/s", lower_is_better=False)

    median, p99 = latencies()
    harness.emit_result(BENCH, {"metric": "latency_median", "store": "sqlite", "case_ms": 10},
                        ours=median, baseline=30.0, baseline_name="jobflow-remote polling period",
                        unit="s", lower_is_better=True)
    harness.emit_result(BENCH, {"metric": "latency_p99", "store": "sqlite", "case_ms": 10},
                        ours=p99, baseline=30.0, baseline_name="jobflow-remote polling period",
                        unit="s", lower_is_better=True)

    import cases
    points = cases.make_points(CASES)
    counter = iter(range(10 ** 6))
    ours, base = harness.interleave(lambda: durable_rate(points, True, next(counter)),
                                    lambda: durable_rate(points, False, next(counter)), rounds)
    harness.emit_result(BENCH, {"metric": "durable_run", "cases": CASES, "store": "sqlite"},
                        ours=harness.median(ours), baseline=harness.median(base),
                        baseline_name="SQLite recorder only", unit="cases/s",
                        lower_is_better=False)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body, default=3)
