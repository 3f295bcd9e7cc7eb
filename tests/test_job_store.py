"""The job store (`openmdao_like.jobs.JobStore`) against both of its databases: a SQLite file and
a real PostgreSQL server the test session starts (tests/pg_server.py). Every test runs on both."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from openmdao_like.errors import IllegalTransitionError, StoreError
from openmdao_like.jobs import SCHEMA_VERSION, TRANSITIONS, JobStore, Result, State
from openmdao_like.jobs.states import SOURCES, check_transition


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


@pytest.fixture
def store(url: str):
    with JobStore(url) as opened:
        yield opened


def _run(store: JobStore, n: int = 4) -> str:
    run_id = store.create_run('model.py', driver='driver', total=n)
    store.add_jobs(run_id, [(i, {'p.x': float(i)}) for i in range(n)])
    return run_id


# -- the transition table -----------------------------------------------------------------------

def test_every_state_is_in_the_table_and_ended_states_lead_nowhere_but_retry():
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.COMPLETED] == TRANSITIONS[State.CANCELLED] == frozenset()
    assert TRANSITIONS[State.FAILED] == {State.READY, State.CANCELLED}
    for new, sources in SOURCES.items():
        assert all(new in TRANSITIONS[old] for old in sources)


@pytest.mark.parametrize(('old', 'new'), [(State.COMPLETED, State.RUNNING),
                                          (State.CANCELLED, State.READY),
                                          (State.WAITING, State.COMPLETED),
                                          (State.READY, State.COMPLETED)])
def test_an_illegal_transition_is_an_error_naming_the_job_and_the_states(old, new):
    with pytest.raises(IllegalTransitionError, match=rf'^run7:3: cannot go from {old.name} to '
                                                     rf'{new.name} \('):
        check_transition('run7:3', old, new)


# -- runs and jobs --------------------------------------------------------------------------------

def test_a_run_and_its_jobs_round_trip(store):
    run_id = store.create_run('doe.py', model=b'\x00saved\xff', model_format='pickle',
                              driver='driver', resources={'allocator': 'SLURM'}, total=3)
    inputs = {'p.x': 1.5, 'p.v': np.array([1.0, np.nan]), 'p.name': 'a'}
    assert store.add_jobs(run_id, [(0, inputs), (1, {'p.x': 2.0}), (2, {'p.x': 3.0})]) == 3
    run = store.run(run_id[:6])
    assert (run.id, run.name, run.state, run.driver, run.total) == \
        (run_id, 'doe.py', 'WAITING', 'driver', 3)
    assert run.resources == {'allocator': 'SLURM'}
    assert store.model(run_id) == (b'\x00saved\xff', 'pickle')
    job = store.job(run_id, 0)
    assert job.state is State.READY and job.attempts == 0 and job.outputs is None
    assert job.inputs['p.x'] == 1.5 and job.inputs['p.name'] == 'a'
    np.testing.assert_array_equal(job.inputs['p.v'], [1.0, np.nan])
    assert [r.id for r in store.runs()] == [run_id]
    assert store.schema_version() == SCHEMA_VERSION


def test_jobs_move_through_their_states_and_results_are_kept(store):
    run_id = _run(store)
    store.move(run_id, [0, 1, 2], State.SUBMITTED, scheduler_id='4711')
    store.move(run_id, [0, 1, 2], State.RUNNING, count_attempt=True, host='node1')
    store.finish(run_id, [
        Result(0, State.COMPLETED, {'p.f': 2.5}, started=10.0, finished=11.0,
               stdout_tail='x' * 5000),
        Result(1, State.FAILED, {'p.f': float('nan')}, 'ValueError: boom', finished=12.0),
        Result(2, State.READY, error='WorkerLostError: node1 died')])
    assert store.counts(run_id) == {'WAITING': 0, 'READY': 2, 'SUBMITTED': 0, 'RUNNING': 0,
                                    'COMPLETED': 1, 'FAILED': 1, 'CANCELLED': 0, 'PAUSED': 0}
    done, failed, lost, untouched = store.jobs(run_id)
    assert (done.state, done.outputs, done.host, done.scheduler_id, done.attempts) == \
        (State.COMPLETED, {'p.f': 2.5}, 'node1', '4711', 1)
    assert (done.started, done.finished) == (10.0, 11.0)
    assert len(done.stdout_tail) == 4000  # tails are kept short
    assert failed.error == 'ValueError: boom' and np.isnan(failed.outputs['p.f'])
    assert (failed.model_retries, failed.infra_retries) == (1, 0)
    assert (lost.state, lost.model_retries, lost.infra_retries) == (State.READY, 0, 1)
    assert untouched.state is State.READY and untouched.attempts == 0
    assert [j.case_id for j in store.jobs(run_id, 'ready')] == [2, 3]
    assert not store.ended(run_id)


def test_a_batch_with_one_illegal_move_changes_nothing(store):
    run_id = _run(store)
    store.move(run_id, [1], State.RUNNING)
    store.finish(run_id, [Result(1, State.COMPLETED, {})])
    with pytest.raises(IllegalTransitionError,
                       match=rf"job {run_id[:8]}:1: cannot go from COMPLETED to RUNNING \(a "
                             rf"COMPLETED job has ended for good\)"):
        store.move(run_id, [0, 1, 2], State.RUNNING)
    assert [j.state for j in store.jobs(run_id)] == \
        [State.READY, State.COMPLETED, State.READY, State.READY]


def test_retry_puts_failed_jobs_back_and_refuses_a_completed_one(store):
    run_id = _run(store)
    store.move(run_id, [0, 1], State.RUNNING, count_attempt=True)
    store.finish(run_id, [Result(0, State.COMPLETED, {'p.f': 1.0}),
                          Result(1, State.FAILED, None, 'boom')])
    with pytest.raises(IllegalTransitionError, match=rf'job {run_id[:8]}:0: only a FAILED job '
                                                     rf'can go to READY, and this one is '
                                                     rf'COMPLETED'):
        store.retry(run_id, [0])
    assert store.retry(run_id) == 1
    again = store.job(run_id, 1)
    assert (again.state, again.error, again.attempts) == (State.READY, None, 1)
    store.move(run_id, [1], State.RUNNING, count_attempt=True)
    assert store.job(run_id, 1).attempts == 2


def test_cancel_pause_and_resume(store):
    run_id = _run(store)
    store.move(run_id, [0, 1], State.PAUSED)
    store.move(run_id, [0], State.READY)
    store.move(run_id, [1, 2, 3], State.CANCELLED)
    assert [j.state.name for j in store.jobs(run_id)] == ['READY', 'CANCELLED', 'CANCELLED',
                                                           'CANCELLED']
    with pytest.raises(IllegalTransitionError, match='cannot go from CANCELLED to READY'):
        store.move(run_id, [1], State.READY)
    store.update_run(run_id, state='CANCELLED', finished=5.0, error='cancelled by the user')
    assert store.run(run_id).state == 'CANCELLED'


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(('bad', 'message'), [
    ('mysql://db/runs', "unknown job store scheme 'mysql'; expected one of sqlite, postgresql"),
    ('runs.db', 'expected a job store URL such as "sqlite:///runs.db"'),
    ('sqlite://runs.db', 'expected "sqlite:///" and a path'),
    ('sqlite:////no/such/dir/runs.db', "the directory '/no/such/dir' does not exist")])
def test_a_bad_url_is_a_clear_error(bad, message):
    with pytest.raises(StoreError, match=message):
        JobStore(bad)


def test_unknown_runs_and_jobs_are_clear_errors(store):
    run_id = _run(store, 2)
    with pytest.raises(StoreError, match=r"no run 'beefbeef'$"):
        store.run('beefbeef')
    with pytest.raises(StoreError, match=r"expected a run id \(at least 4 of its hex digits\), "
                                         r"got 'ab'"):
        store.run('ab')
    with pytest.raises(StoreError, match=rf'run {run_id[:6]} has no job 7$'):
        store.job(run_id[:6], 7)
    with pytest.raises(StoreError, match=rf'job {run_id[:8]}:7: no such job in run {run_id}'):
        store.move(run_id, [0, 7], State.RUNNING)
    assert store.job(run_id, 0).state is State.READY  # the batch changed nothing
    with pytest.raises(StoreError, match=r'a case id is repeated in \[0, 1, 0\]'):
        store.move(run_id, [0, 1, 0], State.RUNNING)
    with pytest.raises(StoreError, match=rf'run {run_id}: a case id is there already'):
        store.add_jobs(run_id, [(5, {}), (1, {})])
    assert [j.case_id for j in store.jobs(run_id)] == [0, 1]
    with pytest.raises(StoreError, match=r"no run 'f{32}'"):
        store.add_jobs('f' * 32, [(0, {})])
    with pytest.raises(StoreError, match=r'cannot update run field\(s\) colour'):
        store.update_run(run_id, colour='red')


def test_a_store_of_a_newer_schema_is_refused_and_left_alone(url):
    with JobStore(url) as store:
        run_id = _run(store, 1)
        with store._writing() as cur:
            cur.execute(store._db.sql('UPDATE meta SET schema_version = ?'),
                        (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=rf'schema version {SCHEMA_VERSION + 1} is newer than '
                                         rf'this openmdao_like reads \({SCHEMA_VERSION}\): '
                                         rf'upgrade openmdao_like'):
        JobStore(url)
    with JobStore.__new__(JobStore) as raw:  # the data is still there
        raw.url = url
        from openmdao_like.jobs.backends import connect
        raw._db = connect(url)
        assert [j.case_id for j in raw.jobs(run_id)] == [0]


def test_a_sqlite_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / 'other.db'
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE meta (schema_version TEXT)')
    conn.execute("INSERT INTO meta VALUES ('one')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"not a job store \(its meta table holds \('one',\), "
                                         r"not a schema version\)"):
        JobStore(f'sqlite:///{path}')


def test_postgresql_refusing_the_password_is_a_clear_error_without_the_password(postgres_url):
    wrong = postgres_url.replace('oml:', 'oml:', 1).split('@')
    user, password = wrong[0].rsplit(':', 1)
    bad = f'{user}:not-{password[-4:]}@{wrong[1]}'
    with pytest.raises(StoreError) as info:
        JobStore(bad)
    message = str(info.value)
    assert 'cannot connect to PostgreSQL' in message and 'password' in message
    assert f'not-{password[-4:]}' not in message and ':***@' in message


def test_postgresql_refusing_the_connection_is_a_clear_error():
    with pytest.raises(StoreError, match=r"postgresql://oml:\*\*\*@127\.0\.0\.1:9/db: cannot "
                                         r"connect to PostgreSQL: "):
        JobStore('postgresql://oml:secret@127.0.0.1:9/db')


# -- many writers ----------------------------------------------------------------------------------

def test_two_store_objects_share_one_store_and_threads_share_one_object(url):
    with JobStore(url) as first, JobStore(url) as second:
        run_id = _run(first, 200)
        errors = []

        def finish(store: JobStore, ids: range) -> None:
            try:
                for i in ids:
                    store.move(run_id, [i], State.RUNNING, count_attempt=True)
                    store.finish(run_id, [Result(i, State.COMPLETED, {'p.f': float(i)})])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=finish, args=(s, range(k, 200, 4)))
                   for k, s in enumerate([first, second, first, second])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert second.counts(run_id)['COMPLETED'] == 200 and second.ended(run_id)
        assert [j.outputs['p.f'] for j in first.jobs(run_id)] == [float(i) for i in range(200)]


def test_a_store_of_schema_1_is_upgraded_in_place(tmp_path):
    """A store written by the first release of the job store (schema 1: no runs.lease_expires,
    runs.kind nor pilots) opens, is upgraded to the current schema, and keeps its runs and jobs:
    a run that waited for a runner is a submitted one."""
    path = tmp_path / 'old.db'
    conn = sqlite3.connect(path)
    for statement in (
            'CREATE TABLE meta (schema_version INTEGER NOT NULL)',
            'CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, '
            'driver TEXT, model BLOB, model_format TEXT, resources TEXT, created DOUBLE '
            'PRECISION, started DOUBLE PRECISION, finished DOUBLE PRECISION, total BIGINT, '
            'runner TEXT, error TEXT)',
            'CREATE TABLE jobs (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, '
            'case_id BIGINT NOT NULL, state TEXT NOT NULL, inputs TEXT, outputs TEXT, error TEXT, '
            'attempts INTEGER NOT NULL DEFAULT 0, model_retries INTEGER NOT NULL DEFAULT 0, '
            'infra_retries INTEGER NOT NULL DEFAULT 0, host TEXT, scheduler_id TEXT, created '
            'DOUBLE PRECISION, started DOUBLE PRECISION, finished DOUBLE PRECISION, stdout_tail '
            'TEXT, stderr_tail TEXT, lease_owner TEXT, lease_expires DOUBLE PRECISION, '
            'PRIMARY KEY (run_id, case_id))',
            'INSERT INTO meta VALUES (1)',
            "INSERT INTO runs (id, name, state, created) VALUES ('" + 'a' * 32 + "', 'old', "
            "'COMPLETED', 1.0)",
            "INSERT INTO runs (id, name, state, created) VALUES ('" + 'b' * 32 + "', 'sent', "
            "'WAITING', 2.0)",
            "INSERT INTO jobs (run_id, case_id, state, inputs, outputs) VALUES ('" + 'a' * 32 +
            """', 0, 'COMPLETED', '{"p.x":1.0}', '{"p.f":2.0}')"""):
        conn.execute(statement)
    conn.commit()
    conn.close()
    with JobStore(f'sqlite:///{path}') as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        run = store.run('aaaa')
        assert (run.name, run.state, run.lease_expires, run.kind) == \
            ('old', 'COMPLETED', None, 'in-process')
        assert store.job('aaaa', 0).outputs == {'p.f': 2.0}
        assert store.pilots('aaaa') == []
        # the COMPLETED run is nobody's work; the WAITING one (not planned yet) is
        assert store.claim_run('r1', 10.0) == 'b' * 32
        assert store.run('bbbb').kind == 'submitted'


def test_runners_share_a_run_by_claiming_its_jobs_and_take_over_expired_leases(store):
    """Runners claim submitted runs with work, and their jobs a batch at a time, lowest case
    ids first, never one job twice; a job whose runner's lease expired goes to the next runner
    (an infrastructure retry); a runner that stops hands its jobs back."""
    run_id = store.create_run('doe')
    in_process = store.create_run('here', state=State.RUNNING)  # run in-process: no runner
    assert store.plan_run(run_id, [(i, {'p.x': float(i)}) for i in range(6)]) == 6
    assert store.plan_run(run_id, [(0, {'p.x': 9.0})]) == 6  # planned once
    assert store.run(run_id).state == 'WAITING'
    assert store.claim_run('r1', 60.0) == run_id
    assert (store.run(run_id).state, store.run(run_id).runner) == ('RUNNING', 'r1')
    assert store.claim_jobs(run_id, 'r1', 60.0, 2) == [(0, {'p.x': 0.0}), (1, {'p.x': 1.0})]
    assert store.claim_run('r2', 0.01) == run_id  # READY jobs left: r2 joins
    assert [c for c, _ in store.claim_jobs(run_id, 'r2', 0.01, 3)] == [2, 3, 4]
    assert store.heartbeat(run_id, 'r1', 60.0) == 'RUNNING'
    time.sleep(0.05)  # r2's lease expires (it died); r1's was renewed
    assert [c for c, _ in store.claim_jobs(run_id, 'r3', 60.0, 10)] == [2, 3, 4, 5]
    assert [store.job(run_id, c).infra_retries for c in range(6)] == [0, 0, 1, 1, 1, 0]
    assert store.claim_jobs(run_id, 'r1', 60.0, 10) == []
    assert store.claim_run('r4', 60.0) is None  # every job is held
    store.release_run(run_id, 'r3', hand_back=True)  # r3 stops: 2..5 go back
    assert store.counts(run_id)['READY'] == 4 and store.run(run_id).state == 'RUNNING'
    assert store.run(in_process).runner is None
    store.release_run(run_id, 'r1', hand_back=True)
    assert (store.run(run_id).state, store.counts(run_id)['READY']) == ('WAITING', 6)
    assert all(job.state is State.READY for job in store.jobs(run_id))
    store.cancel(run_id)
    assert store.claim_run('r1', 60.0) is None  # a cancelled run is nobody's work
