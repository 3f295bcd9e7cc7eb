"""Remote chain benchmark: time per evaluation of a chain of remote components alternating
between two servers, beside the same chain all local.

Model: N = 20 components ``y = x + 1`` (``fw_ours.Plus1``), c{i}.y -> c{i+1}.x, in an Assembly
with RunOnce; ``top.c0.x = v; top.run()`` per evaluation (v new each time), checked by
``top.c{N-1}.y == v + N``. Remote: c{i} lives on the ObjServerFactory at 127.0.0.2 for even i
and at 127.0.0.3 for odd i (two in-process factories; one ObjServer process per component;
bench/ is on the ObjServers' PYTHONPATH so they import ``fw_ours``).

Contenders, sampled alternately in this process (push, rpush, local, push, ...), each sample the
mean over evaluations spanning at least MIN_TIME seconds:
- ours ``push``: every link ``push`` (each run's answer brings y back here; the next run sends
  it on: N round trips client <-> server per evaluation);
- ours ``rpush``: every link ``rpush`` (c{i}'s server sends y to c{i+1}'s server inside c{i}'s
  run: still N client round trips, plus one server-to-server call per link);
- ``local``: the same chain of local components (``fw_ours.build_chain``).
The same 20 remote components serve both link styles: before each sample the assembly's
connections are remade with that sample's link (untimed, with one untimed evaluation).

Lines: ``ms_per_eval`` (ratio = local / ours: the share of a remote evaluation that the local one
costs) and ``ms_per_component`` (per component of the chain, same ratio). About 30 s (starting
20 ObjServers takes about 10 s of it).
"""

import os
import time
from pathlib import Path

import harness

BENCH = "remote_chain"
BENCH_DIR = Path(__file__).resolve().parent
KEY = "bench-key-" + "k" * 40
#: Components in the chain.
N = 20
HOSTS = ("127.0.0.2", "127.0.0.3")
#: Minimum seconds of evaluations per sample.
MIN_TIME = 0.5
LINKS = ("push", "rpush")


def bench_path():
    """os.environ's PYTHONPATH with bench/ first, so ObjServers import ``fw_ours``."""
    parts = [str(BENCH_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts)


def build_remote(servers):
    """The remote chain (links made by `relink`) and its component names."""
    from openmdao_like import Assembly, set_as_top
    from openmdao_like.drivers import RunOnce

    top = set_as_top(Assembly())
    top.add("driver", RunOnce())
    names = [f"c{i}" for i in range(N)]
    for i, name in enumerate(names):
        top.add(name, servers[i % len(servers)].create("fw_ours.Plus1"))
    top.driver.workflow.add(names)
    return top, names


def relink(top, names, link):
    """Connect c{i}.y -> c{i+1}.x with ``link`` (replacing any previous connections)."""
    for src, dest in zip(names, names[1:]):
        if top.is_connected(f"{dest}.x"):
            top.disconnect(f"{src}.y", f"{dest}.x")
        top.connect(f"{src}.y", f"{dest}.x", link=link)


def evaluator(top, names):
    """``evaluate(v)``: one checked evaluation of the remote chain."""
    first, last = getattr(top, names[0]), getattr(top, names[-1])

    def evaluate(value):
        first.x = value
        top.run()
        if last.y != value + N:
            raise AssertionError(f"{names[-1]}.y = {last.y}, expected {value + N}")
    return evaluate


def local_evaluator():
    """``evaluate(v)`` of the all-local chain (fw_ours.build_chain), checked."""
    import fw_ours

    run, last = fw_ours.build_chain(N)

    def evaluate(value):
        run(value)
        if last() != value + N:
            raise AssertionError(f"local chain: got {last()}, expected {value + N}")
    return evaluate


def body(rounds):
    """Start two factories, build the chain, sample each link style and the local chain."""
    from openmdao_like.remote import ObjServerFactory, connect_to_server

    harness.emit_machine(BENCH, rounds=rounds, components=N, hosts=list(HOSTS))
    os.environ["PYTHONPATH"] = bench_path()
    factories = [ObjServerFactory(host, 0, key=KEY) for host in HOSTS]
    samples = {link: [] for link in LINKS + ("local",)}
    try:
        servers = [connect_to_server(*factory.start(), key=KEY) for factory in factories]
        start = time.perf_counter()
        top, names = build_remote(servers)
        print(f"remote_chain: {N} ObjServers started in {time.perf_counter() - start:.1f} s",
              flush=True)
        evaluate = evaluator(top, names)
        local = local_evaluator()

        def remote_sample(link):
            relink(top, names, link)
            evaluate(-1.0)  # untimed: compiles the new links
            return harness.time_per_call(evaluate, MIN_TIME)

        for link in LINKS:  # warm-up
            remote_sample(link)
        harness.time_per_call(local, MIN_TIME / 4)
        for _ in range(rounds):
            for link in LINKS:
                samples[link].append(remote_sample(link))
            samples["local"].append(harness.time_per_call(local, MIN_TIME))
    finally:
        for factory in factories:
            factory.stop()
    local_ms = harness.median(samples["local"]) * 1e3
    for link in LINKS:
        ours_ms = harness.median(samples[link]) * 1e3
        config = {"components": N, "servers": len(HOSTS), "link": link}
        harness.emit_result(BENCH, dict(config, metric="ms_per_eval"), ours=ours_ms,
                            baseline=local_ms, baseline_name="local", unit="ms",
                            lower_is_better=True)
        harness.emit_result(BENCH, dict(config, metric="ms_per_component"), ours=ours_ms / N,
                            baseline=local_ms / N, baseline_name="local", unit="ms",
                            lower_is_better=True)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
