"""HTTP call benchmark: one component execution through HTTPComponent, beside a bare FastAPI echo.

Model: the paraboloid ``f_xy = (x-3)^2 + x*y + (y+4)^2 - 3`` (``fw_ours.Paraboloid``), served
on 127.0.0.1 by ``openmdao-like http serve`` (run as ``python -m openmdao_like.cli.main``): the
script writes a configuration offering ``fw_ours.Paraboloid`` with ``workers: 1``, a 0600 secret
file, and adds a user with ``http adduser NAME --config F --password-stdin``; bench/ is put on
the service's PYTHONPATH (its worker imports ``fw_ours``). One worker: the calls come one at a
time, so a second worker would only sit idle (the service hands calls to its idle workers in
turn, so two would alternate, each with its own copy of the component), and the machine has 2
cores for the client, the web server and the worker.

Contenders, sampled in turn in this process (a round samples each once, in the order below),
each sample the mean over at least SAMPLE_TIME seconds of calls (whole batches of BATCH calls):
- ours (``HTTPComponent``, ``execution='sync'``): ``p.x = x; p.y = y; p.run(); p.f_xy`` on an
  ``HTTPComponent`` of the service (both inputs change at every call, so both travel; one
  ``POST /instances/{id}/execute``, the execution in the service's worker process);
- ``fastapi-echo``: a bare FastAPI app in another uvicorn process (the same uvicorn, run as the
  service runs it: ``uvicorn.run(app, host='127.0.0.1', port, log_level='info',
  timeout_graceful_shutdown=10)``) with one endpoint, ``POST /run``, taking ``{"inputs": {"x",
  "y"}}`` (a pydantic model) and returning ``{"outputs": {"f_xy": ...}}`` computed in the
  endpoint; called as ``c.post('/run', json=...).json()`` on one ``httpx.Client`` (one kept-alive
  connection). The floor of an HTTP round trip through this web stack on this machine (.venv
  has neither uvloop nor httptools: uvicorn runs asyncio's loop and the pure-Python h11 parser,
  for the service as for the echo);
- ``rpyc-proxy``: our issue-4 proxy, a ``RemoteComponent`` of ``fw_ours.Paraboloid`` on an
  ObjServer (an in-process ``ObjServerFactory`` on 127.0.0.1, as bench/remote_call.py makes
  one), doing the same ``p.x = x; p.y = y; p.run(); p.f_xy``;
- ``ours-async``: an ``HTTPComponent`` with ``execution='async'`` (a job submitted, then
  long-polled: two requests and the job store); an extra row, no goal;
- ``httpx-to-service``: a plain ``httpx.Client`` posting ``{"inputs": {"x", "y"}}`` to an
  instance of the same service (``POST /instances/{id}/execute``, its own login and instance):
  the service without the proxy, so ours minus this is what ``HTTPComponent`` costs in the
  client, and this minus ``fastapi-echo`` what the service adds (authentication, the checks of
  the inputs, the hand-over to the worker process and back);
- ``gemseo-http`` (only when GEMSEO_HTTP_PYTHON, by default ``.venv-bench/bin/python``, is an
  interpreter with ``gemseo-http[server]``; else skipped, noted on stderr): the same paraboloid
  as a GEMSEO ``Discipline`` (written by the script into a directory on ``GEMSEO_PATH``) served
  by gemseo-http's FastAPI app (``gemseo_http_server.app``, its SQLite user database made and a
  user added with its own ``create_user``) in uvicorn run as above, and used through its
  ``HTTPDiscipline`` proxy (GEMSEO's defaults: grammar validation, a cache never hit),
  ``d.execute({"x": array([x]), "y": array([y])})["f_xy"][0]``, synchronous. Its client runs in
  a helper process of that interpreter (gemseo pins numpy and scipy, so it is not in .venv),
  which takes its samples when told, in turn with the others. Each of its executions makes a
  job row and a directory on the server and builds the discipline anew: milliseconds a call.
  gemseo-http 3.0.0 installs from PyPI (``pip install 'gemseo-http[server]'``, which brings its
  own fastapi 0.115 and uvicorn 0.34): there is no .venv-bench on the machine where this script
  was written, so it was measured with ``GEMSEO_HTTP_PYTHON`` naming a scratch virtualenv made
  for it. Its client is given ``httpx_client_options={'base_url': ...}``: without it, its
  constructor fails (it asks for the default inputs at a relative URL: "Request URL is missing
  an 'http://' or 'https://' protocol"). Its asynchronous mode needs a Huey consumer process
  and is not measured.

Metrics (µs per call; ratio = baseline / ours, so ratio > 1 means ours is faster):
- ``us_per_call``: medians of the samples, ours against each of the others (the ``ours-async``
  line has the async proxy as ours, against ``fastapi-echo``);
- ``us_per_call_best``: the best sample of each, against ``fastapi-echo``, ``rpyc-proxy`` and
  ``gemseo-http``;
- ``target-1.3x-fastapi-echo``: the baseline is 1.3 x the echo median, so ratio >= 1 means the
  target (an execution through ``HTTPComponent`` costs at most 1.3 bare FastAPI calls) is met.
Every sample checks the last value returned. Servers' output goes to log files in the scratch
directory (shown on stderr if one does not start). About a minute on a 2-core machine.
"""

import gc
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness
from remote_call import bench_path, paraboloid, points  # the same model and points

BENCH = "http_call"
BENCH_DIR = Path(__file__).resolve().parent
COMPONENT = "fw_ours.Paraboloid"
USER, PASSWORD = "bench", "bench-password-" + "p" * 20
SECRET = "bench-secret-" + "s" * 50
KEY = "bench-key-" + "k" * 40
#: Worker processes of the service (see the docstring).
WORKERS = 1
#: Shortest sample, seconds; calls are made in whole batches of BATCH.
SAMPLE_TIME = 0.4
BATCH = 50
#: Untimed calls of each contender before the first sample (gemseo-http: fewer, it is slow).
WARM_UP, WARM_UP_GEMSEO = 200, 20
#: Ours may cost at most this many bare FastAPI calls.
TARGET_FACTOR = 1.3
#: Seconds a server has to start.
START_TIMEOUT = 60.0
#: The interpreter of the gemseo-http contender (server and client).
GEMSEO_HTTP_PYTHON = os.environ.get("GEMSEO_HTTP_PYTHON",
                                    str(BENCH_DIR.parent / ".venv-bench" / "bin" / "python"))

#: How uvicorn runs, as ``openmdao-like http serve`` runs it (``port`` from the command line).
UVICORN_RUN = """
uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='info',
            timeout_graceful_shutdown=10)
"""

#: The baseline web server: a bare FastAPI app.
ECHO_SERVER = """
import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Inputs(BaseModel):
    inputs: dict[str, float]


app = FastAPI()


@app.post('/run')
async def run(body: Inputs):
    x, y = body.inputs['x'], body.inputs['y']
    return {'outputs': {'f_xy': (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0}}
""" + UVICORN_RUN

#: The paraboloid as a GEMSEO discipline, for gemseo-http (a module on GEMSEO_PATH).
GEMSEO_DISCIPLINE = """
from gemseo.core.discipline import Discipline
from numpy import array


class BenchParaboloid(Discipline):
    \"\"\"f_xy = (x-3)^2 + x*y + (y+4)^2 - 3.\"\"\"

    def __init__(self):
        super().__init__()
        self.io.input_grammar.update_from_names(['x', 'y'])
        self.io.output_grammar.update_from_names(['f_xy'])
        self.io.input_grammar.defaults = {'x': array([0.0]), 'y': array([0.0])}

    def _run(self, input_data):
        x, y = input_data['x'][0], input_data['y'][0]
        return {'f_xy': array([(x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0])}
"""

#: gemseo-http's server: its database and a user (``argv[2]``, password on stdin), its app.
GEMSEO_SERVER = """
import sys

import uvicorn
from gemseo_http_server.cli import create_user
from gemseo_http_server.database import create_db_and_tables, create_engine

engine = create_engine()
create_db_and_tables(engine)
create_user(sys.argv[2], sys.stdin.readline().rstrip('\\n'), engine)

from gemseo_http_server.app import app
""" + UVICORN_RUN

#: gemseo-http's client, a helper process: ``argv``: bench/, port, user; password on stdin.
#: Answers "ready", then a sample (seconds per call) to each "sample" line, until "quit".
GEMSEO_CLIENT = """
import os
import sys

out = os.fdopen(os.dup(1), 'w')
os.dup2(2, 1)  # (whatever the libraries print goes to stderr)
sys.path.insert(0, sys.argv[1])
from numpy import array
from gemseo_http.http_discipline import HTTPDiscipline
import http_call

port = int(sys.argv[2])
d = HTTPDiscipline('p', 'BenchParaboloid', url='http://127.0.0.1', port=port, user=sys.argv[3],
                   password=sys.stdin.readline().rstrip('\\n'),
                   httpx_client_options={'base_url': f'http://127.0.0.1:{port}'})


def call(x, y):
    return float(d.execute({'x': array([x]), 'y': array([y])})['f_xy'][0])


for x, y in http_call.points(http_call.WARM_UP_GEMSEO):
    call(x, y)
out.write('ready\\n')
out.flush()
pts = http_call.points(http_call.BATCH)
for line in sys.stdin:
    if line.strip() != 'sample':
        break
    out.write(f'{http_call.timed_sample(call, pts)!r}\\n')
    out.flush()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, stdin=""):
    """``openmdao-like http ARGS``, checked."""
    return subprocess.run([sys.executable, "-m", "openmdao_like.cli.main", "http", *args],
                          input=stdin, text=True, capture_output=True, check=True)


def write_service(workdir):
    """The service's configuration (its secret file, its user) in ``workdir``: its path, URL."""
    import yaml

    workdir.mkdir()
    secret = workdir / "jwt.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    port = free_port()
    config = workdir / "http.yaml"
    config.write_text(yaml.safe_dump({"host": "127.0.0.1", "port": port,
                                      "secret_file": "jwt.secret", "workers": WORKERS,
                                      "components": [COMPONENT]}))
    cli("adduser", USER, "--config", str(config), "--password-stdin", stdin=PASSWORD + "\n")
    return config, f"http://127.0.0.1:{port}"


def start_server(command, log_path, ready, cwd, env=None, stdin=None):
    """A server process (its own session, output to ``log_path``, ``stdin`` written to it),
    once ``ready()`` is true."""
    import httpx

    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                start_new_session=True)
    if stdin:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if ready():
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    sys.stderr.write(Path(log_path).read_text(errors="replace"))
    raise RuntimeError(f"{command[:4]} did not start (log above)")


def stop_server(proc):
    """Stop a server started by `start_server` and its process group (workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def timed_sample(call, pts):
    """Seconds per call of ``call(x, y)``: whole batches of ``pts`` until SAMPLE_TIME has
    passed; checks the last result."""
    calls = 0
    start = time.perf_counter()
    while True:
        for x, y in pts:
            f = call(x, y)
        calls += len(pts)
        elapsed = time.perf_counter() - start
        if elapsed >= SAMPLE_TIME:
            break
    x, y = pts[-1]
    if abs(f - paraboloid(x, y)) > 1e-9:
        raise AssertionError(f"got f({x}, {y}) = {f}, expected {paraboloid(x, y)}")
    return elapsed / calls


def round_robin(samplers, rounds):
    """Take a sample of every contender once per round, in order; name -> samples."""
    samples = {name: [] for name in samplers}
    for _ in range(rounds):
        for name, sample in samplers.items():
            gc.collect()
            samples[name].append(sample())
    return samples


def proxy_call(p):
    """``call(x, y)`` running component ``p`` (an HTTPComponent or a RemoteComponent)."""
    def call(x, y):
        p.x = x
        p.y = y
        p.run()
        return p.f_xy
    return call


def gemseo_http_available():
    """Whether GEMSEO_HTTP_PYTHON has gemseo-http's client and server (else noted on
    stderr)."""
    if not os.path.exists(GEMSEO_HTTP_PYTHON):
        print(f"gemseo-http not measured: no interpreter {GEMSEO_HTTP_PYTHON} (set "
              f"GEMSEO_HTTP_PYTHON)", file=sys.stderr)
        return False
    found = subprocess.run([GEMSEO_HTTP_PYTHON, "-c", "import gemseo_http.http_discipline, "
                            "gemseo_http_server.app"], capture_output=True, text=True)
    if found.returncode:
        why = (found.stderr.strip().splitlines() or ["?"])[-1]
        print(f"gemseo-http not measured: {GEMSEO_HTTP_PYTHON} cannot import it: {why}",
              file=sys.stderr)
        return False
    return True


def start_gemseo_http(workdir):
    """gemseo-http's server and the client helper: (server process, helper process)."""
    import httpx

    (workdir / "disciplines").mkdir(parents=True)
    (workdir / "disciplines" / "bench_gemseo_paraboloid.py").write_text(GEMSEO_DISCIPLINE)
    env = dict(os.environ, GEMSEO_PATH=str(workdir / "disciplines"))
    for key, name in (("USER_DATABASE_PATH", "users.db"), ("USER_FILE_DIRECTORY", "files"),
                      ("USER_WORKSPACE_EXECUTION", "workdir"),
                      ("HUEY_DATABASE_PATH", "huey.db")):
        env[f"GEMSEO_HTTP_{key}"] = str(workdir / name)
    env["GEMSEO_HTTP_SECRET_KEY"] = secrets.token_hex(32)
    port = free_port()
    server = start_server(
        [GEMSEO_HTTP_PYTHON, "-c", GEMSEO_SERVER, str(port), USER], workdir / "serve.log",
        lambda: httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2.0).status_code == 200,
        cwd=workdir, env=env, stdin=PASSWORD + "\n")
    helper = subprocess.Popen([GEMSEO_HTTP_PYTHON, "-c", GEMSEO_CLIENT, str(BENCH_DIR),
                               str(port), USER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=workdir, env=env)
    helper.stdin.write(PASSWORD + "\n")
    helper.stdin.flush()
    if helper.stdout.readline().strip() != "ready":
        helper.kill()
        helper.wait()
        stop_server(server)
        raise RuntimeError("the gemseo-http client did not start (its traceback above)")
    return server, helper


def helper_sampler(helper):
    """A sampler asking the gemseo-http client helper for one sample."""
    def sample():
        helper.stdin.write("sample\n")
        helper.stdin.flush()
        answer = helper.stdout.readline()
        if not answer.strip():
            raise RuntimeError("the gemseo-http client ended (its traceback above)")
        return float(answer)
    return sample


def body(rounds):
    """Start the servers, sample the contenders, stop the servers, print the lines."""
    import httpx

    from openmdao_like.http import HTTPComponent
    from openmdao_like.remote import ObjServerFactory, connect_to_server

    harness.emit_machine(BENCH, rounds=rounds, sample_time=SAMPLE_TIME, workers=WORKERS)
    os.environ["PYTHONPATH"] = bench_path()
    scratch = Path.cwd()
    with_gemseo = gemseo_http_available()
    config, url = write_service(scratch / "service")
    echo_port = free_port()
    echo_url = f"http://127.0.0.1:{echo_port}"
    procs, clients, proxies = [], [], []
    factory = helper = None
    try:
        procs.append(start_server(
            [sys.executable, "-m", "openmdao_like.cli.main", "http", "serve", "--config",
             str(config)], scratch / "serve.log",
            lambda: httpx.get(f"{url}/health", timeout=2.0).status_code == 200,
            cwd=config.parent))
        procs.append(start_server(
            [sys.executable, "-c", ECHO_SERVER, str(echo_port)], scratch / "echo.log",
            lambda: httpx.post(f"{echo_url}/run", json={"inputs": {"x": 0.0, "y": 0.0}},
                               timeout=2.0).status_code == 200, cwd=scratch))
        factory = ObjServerFactory("127.0.0.1", 0, key=KEY)
        host, port = factory.start()

        ours = HTTPComponent(url, COMPONENT, username=USER, password=PASSWORD)
        ours_async = HTTPComponent(url, COMPONENT, username=USER, password=PASSWORD,
                                   execution="async")
        remote = connect_to_server(host, port, key=KEY).create(COMPONENT)
        proxies += [ours, ours_async, remote]

        echo = httpx.Client(base_url=echo_url)
        clients.append(echo)

        def echo_call(x, y):
            return echo.post("/run", json={"inputs": {"x": x, "y": y}}).json()["outputs"]["f_xy"]

        raw = httpx.Client(base_url=url)
        clients.append(raw)
        token = raw.post("/token", data={"username": USER, "password": PASSWORD})
        raw.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        instance = raw.post(f"/components/{COMPONENT}/instances").json()["id"]

        def raw_call(x, y):
            answer = raw.post(f"/instances/{instance}/execute",
                              json={"inputs": {"x": x, "y": y}}).json()
            return answer["outputs"]["f_xy"]

        calls = {"ours": proxy_call(ours), "fastapi-echo": echo_call,
                 "rpyc-proxy": proxy_call(remote), "ours-async": proxy_call(ours_async),
                 "httpx-to-service": raw_call}
        for call in calls.values():
            for x, y in points(WARM_UP):
                call(x, y)
        pts = points(BATCH)
        samplers = {name: (lambda call=call: timed_sample(call, pts))
                    for name, call in calls.items()}
        if with_gemseo:
            server, helper = start_gemseo_http(scratch / "gemseo-http")
            procs.append(server)
            samplers["gemseo-http"] = helper_sampler(helper)
        samples = round_robin(samplers, rounds)
    finally:
        for p in proxies:
            p.release()
        for c in clients:
            c.close()
        if helper is not None:
            helper.stdin.close()
            helper.wait(30)
        if factory is not None:
            factory.stop()
        for proc in procs:
            stop_server(proc)

    config = {"server": "127.0.0.1", "workers": WORKERS, "execution": "sync"}
    med = {name: harness.median(s) * 1e6 for name, s in samples.items()}
    best = {name: min(s) * 1e6 for name, s in samples.items()}

    def line(metric, baseline, values=med, ours="ours", **extra):
        harness.emit_result(BENCH, dict(config, metric=metric, **extra), ours=values[ours],
                            baseline=values[baseline], baseline_name=baseline, unit="us",
                            lower_is_better=True)

    line("us_per_call", "fastapi-echo")
    line("us_per_call_best", "fastapi-echo", best)
    harness.emit_result(BENCH, dict(config, metric=f"target-{TARGET_FACTOR:g}x-fastapi-echo"),
                        ours=med["ours"], baseline=TARGET_FACTOR * med["fastapi-echo"],
                        baseline_name=f"{TARGET_FACTOR:g}x fastapi-echo", unit="us",
                        lower_is_better=True)
    line("us_per_call", "rpyc-proxy")
    line("us_per_call_best", "rpyc-proxy", best)
    if with_gemseo:
        line("us_per_call", "gemseo-http")
        line("us_per_call_best", "gemseo-http", best)
    line("us_per_call", "httpx-to-service")
    line("us_per_call", "fastapi-echo", ours="ours-async", execution="async")


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
