"""Remote array benchmark: moving an 8 MB float64 array (1,000,000 elements) into and between
remote components, beside a raw TCP transfer of the same bytes over loopback.

Models (assemblies with RunOnce; ``src.b`` -> ``sink.a``), each on its own ObjServers from one
in-process ``ObjServerFactory`` on 127.0.0.1 (bench/ is on the ObjServers' PYTHONPATH, so they
import this module's components):
- ``local->remote``: a local `Source` feeding a remote `Sink` (link ``push``: the proxy sends
  the changed input with the sink's run);
- ``remote->remote push``: a remote `Source` and a remote `Sink` on two ObjServers; the array
  comes back to this process with the source's run and goes out with the sink's;
- ``remote->remote rpush``: the same, but the source's server sends the array to the sink's
  server inside the source's run (it never passes through this process).
`Source.b` has ``n`` elements, the first being the input ``k`` (a buffer reused between runs:
making the array is not what is measured); `Sink.first` is ``a[0]``, checked after each
evaluation (``src.k = v; top.run()``, v new at every evaluation, so every transfer is real).

Transfer time = time per evaluation with n = N minus time per evaluation with n = 1 (a tiny
array: the round trips and framework work that do not depend on the size), so MB/s = 8 MB /
transfer time. Baseline (``raw-loopback``): a raw TCP socket on 127.0.0.1 to another process
(``python -c``), which receives into a preallocated buffer (``recv_into``) and acknowledges
with one byte; the client sends with ``sendmsg``/``send`` from a memoryview; its transfer time
is likewise an 8 MB round minus a 1-byte round.

Contenders are sampled alternately in this process (every configuration's 8 MB and 1-element
runs, then the raw transfers, per round); each sample is the mean over evaluations spanning at
least MIN_TIME seconds. Lines (MB = 10^6 bytes):
- ``MB_per_s``: ours and raw in MB/s; ratio = ours / raw, the fraction of raw loopback speed;
  ``detail`` gives the medians in ms per evaluation (8 MB, tiny) and per raw transfer;
- ``target-50pct-raw``: the baseline is half the raw speed, so ratio >= 1 means the target
  (at least 50 % of raw loopback speed) is met.
About 30 s on a 2-core machine.
"""

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import harness
from openmdao_like import Array, Component, Float, Int

BENCH = "remote_array"
BENCH_DIR = Path(__file__).resolve().parent
KEY = "bench-key-" + "k" * 40
#: Elements of the big array (float64: 8 MB).
N = 1_000_000
#: Minimum seconds of evaluations per sample.
MIN_TIME = 0.3
#: Ours must reach at least this fraction of raw loopback speed.
TARGET_FRACTION = 0.5

#: The raw baseline's receiver (``python -c``): prints its port, then per message reads an
#: 8-byte length and that many bytes into a preallocated buffer, and answers one byte.
RAW_SERVER = """
import socket, struct, sys
listener = socket.socket()
listener.bind(('127.0.0.1', 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
buf = bytearray(int(sys.argv[1]) + 8)
view = memoryview(buf)

def fill(count):
    got = 0
    while got < count:
        n = conn.recv_into(view[got:count], count - got)
        if not n:
            return False
        got += n
    return True

while fill(8):
    size = struct.unpack('!Q', view[:8])[0]
    if not fill(size):
        break
    conn.sendall(b'k')
"""


class Source(Component):
    """b: ``n`` elements, the first being k (the same buffer at every run of a given n)."""

    k = Float(0.0, iotype="in")
    n = Int(N, iotype="in")
    b = Array(np.zeros(1), iotype="out")

    def execute(self):
        buf = self.__dict__.get("_buf")
        if buf is None or buf.shape != (self.n,):
            buf = self.__dict__["_buf"] = np.ones(self.n)
        buf[0] = self.k
        self.b = buf


class Sink(Component):
    """first = a[0]."""

    a = Array(np.zeros(1), iotype="in")
    first = Float(0.0, iotype="out")

    def execute(self):
        self.first = float(self.a[0])


def bench_path():
    """os.environ's PYTHONPATH with bench/ first, so ObjServers import this module."""
    parts = [str(BENCH_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts)


def build(src, sink, link):
    """An assembly running ``src`` then ``sink``, ``src.b`` -> ``sink.a`` with ``link``."""
    from openmdao_like import Assembly, set_as_top
    from openmdao_like.drivers import RunOnce

    top = set_as_top(Assembly())
    top.add("driver", RunOnce())
    top.add("src", src)
    top.add("sink", sink)
    top.connect("src.b", "sink.a", link=link)
    top.driver.workflow.add(["src", "sink"])
    return top


def evaluator(top):
    """``evaluate(v)``: one evaluation with ``src.k = v``, checked at the sink."""
    def evaluate(value):
        top.src.k = value
        top.run()
        if top.sink.first != value:
            raise AssertionError(f"sink.first = {top.sink.first}, expected {value}")
    return evaluate


class RawLink:
    """The baseline: a TCP connection to a receiver process on 127.0.0.1."""

    def __init__(self, size):
        self.proc = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(size)],
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline())
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.big = np.ones(size // 8).view(np.uint8)
        self.tiny = np.ones(1, dtype=np.uint8)

    def send(self, data):
        """One message and its acknowledgement."""
        view = memoryview(data)
        sent = self.sock.sendmsg([struct.pack("!Q", len(view)), view]) - 8
        while sent < len(view):
            sent += self.sock.send(view[sent:])
        if self.sock.recv(1) != b"k":
            raise AssertionError("raw receiver: no acknowledgement")

    def close(self):
        self.sock.close()
        self.proc.wait(10)


def body(rounds):
    """Start the servers, build the three models, sample everything, stop the servers."""
    from openmdao_like.remote import ObjServerFactory, connect_to_server

    harness.emit_machine(BENCH, rounds=rounds, elements=N, bytes=8 * N)
    os.environ["PYTHONPATH"] = bench_path()
    factory = ObjServerFactory("127.0.0.1", 0, key=KEY)
    raw = None
    try:
        host, port = factory.start()
        server = connect_to_server(host, port, key=KEY)
        models = {
            "local->remote": build(Source(), server.create("remote_array.Sink"), "push"),
            "remote->remote push": build(server.create("remote_array.Source"),
                                         server.create("remote_array.Sink"), "push"),
            "remote->remote rpush": build(server.create("remote_array.Source"),
                                          server.create("remote_array.Sink"), "rpush"),
        }
        raw = RawLink(8 * N)

        def sampler(top, n):
            evaluate = evaluator(top)

            def sample():
                top.src.n = n
                evaluate(-1.0)  # the size change, untimed
                return harness.time_per_call(evaluate, MIN_TIME)
            return sample

        samplers = {}
        for name, top in models.items():
            samplers[(name, "big")] = sampler(top, N)
            samplers[(name, "tiny")] = sampler(top, 1)
        samplers[("raw", "big")] = lambda: harness.time_per_call(lambda _: raw.send(raw.big),
                                                                 MIN_TIME)
        samplers[("raw", "tiny")] = lambda: harness.time_per_call(lambda _: raw.send(raw.tiny),
                                                                  MIN_TIME)
        for sample in samplers.values():  # warm-up
            sample()
        samples = {key: [] for key in samplers}
        for _ in range(rounds):
            for key, sample in samplers.items():
                samples[key].append(sample())
    finally:
        factory.stop()
        if raw is not None:
            raw.close()

    def transfer(name):
        """(median seconds per transfer, ms per 8 MB evaluation, ms per tiny evaluation)."""
        big, tiny = harness.median(samples[(name, "big")]), harness.median(samples[(name, "tiny")])
        return big - tiny, big * 1e3, tiny * 1e3

    megabytes = 8 * N / 1e6
    raw_s, raw_big_ms, raw_tiny_ms = transfer("raw")
    raw_rate = megabytes / raw_s
    for name in models:
        ours_s, big_ms, tiny_ms = transfer(name)
        rate = megabytes / ours_s
        config = {"model": name, "bytes": 8 * N}
        harness.emit({
            "bench": BENCH, "config": dict(config, metric="MB_per_s"), "ours": harness._round(rate),
            "baseline": harness._round(raw_rate), "baseline_name": "raw-loopback",
            "ratio": harness._round(rate / raw_rate), "unit": "MB/s",
            "detail": {"ours_ms_per_eval_8MB": harness._round(big_ms),
                       "ours_ms_per_eval_tiny": harness._round(tiny_ms),
                       "ours_transfer_ms": harness._round(ours_s * 1e3),
                       "raw_ms_8MB": harness._round(raw_big_ms),
                       "raw_ms_tiny": harness._round(raw_tiny_ms),
                       "raw_transfer_ms": harness._round(raw_s * 1e3)}})
        harness.emit_result(BENCH, dict(config, metric=f"target-{TARGET_FRACTION * 100:g}pct-raw"),
                            ours=rate, baseline=TARGET_FRACTION * raw_rate,
                            baseline_name=f"{TARGET_FRACTION:.0%} raw-loopback", unit="MB/s",
                            lower_is_better=False)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
