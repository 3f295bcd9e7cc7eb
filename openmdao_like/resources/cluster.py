"""`ClusterAllocator`: servers on a set of hosts reached over SSH (one reused `SSHChannel` each).

Each host holds as many servers as its CPUs allow (``min_cpus`` each). A new server goes to the
least loaded host (``method='load-average'``: 1-minute load average per CPU read from
/proc/loadavg, plus the CPUs our own servers hold there, which the load average shows only a
minute later) or to the next host in turn (``'round-robin'``). A host that cannot be reached is
skipped and named in the estimate, never fatal.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import AllocationError, RemoteError
from ..options import REQUIRED, OptionsDictionary
from .allocator import COMMON_KEYS, NEVER, NOT_NOW, NOW, Allocator, Estimate, non_empty
from .ssh import SSHChannel
from .startup import StartedServer, start_on_channel

logger = logging.getLogger(__name__)

__all__ = ['ClusterAllocator', 'METHODS']

#: How a host is picked for a new server.
METHODS = ('load-average', 'round-robin')
#: Seconds a host's load average is reused before it is read again.
LOAD_CACHE = 2.0
#: Seconds before a host that could not be reached is tried again.
RETRY_UNREACHABLE = 30.0

_HOST = re.compile(r'^(?:(?P<user>[^@\s:/\[\]]+)@)?'
                   r'(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))'
                   r'(?::(?P<port>\d{1,5}))?$')


@dataclass(eq=False)
class _Host:
    """One host of the cluster and what is known about it."""

    name: str
    channel: SSHChannel
    cpus: int = 0
    load: float = 0.0
    load_time: float = -math.inf
    failure: str | None = None
    failure_time: float = -math.inf
    used: int = 0

    def fits(self, cpus: int) -> bool:
        return self.used + cpus <= self.cpus


class ClusterAllocator(Allocator):
    """Start servers on hosts reached over SSH.

    Parameters
    ----------
    name : str
        The allocator's name.
    hosts : list of str
        ``'host'``, ``'host:port'`` or ``'user@host:port'`` each (``[addr]`` for IPv6).
    user, key_filename, known_hosts : optional
        How to log in (see `SSHChannel`); a user or port in a host entry wins.
    python : str, optional
        The interpreter on the hosts (default: this one's path).
    method : str
        ``'load-average'`` or ``'round-robin'``.
    port : int
        sshd's port where a host entry names none.
    workdir : str, optional
        Where on the hosts servers get their directories (default: the host's temporary
        directory); a description's ``working_directory`` wins.
    max_load : float, optional
        Highest 1-minute load average per CPU at which a host still gets a server.
    """

    handles = COMMON_KEYS | {'working_directory'}

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        hosts = "a non-empty list of 'host', 'host:port' or 'user@host:port'"
        options.declare('hosts', REQUIRED, types=(list, tuple), accepts=hosts,
                        check=non_empty,
                        desc='the hosts servers run on')
        for what, desc in (('user', 'login name (a user in a host entry wins)'),
                           ('key_filename', 'private key file of the login'),
                           ('known_hosts', 'known_hosts file checking the host keys'),
                           ('workdir', "where on the hosts servers get their directories")):
            options.declare(what, None, types=str, allow_none=True, desc=desc)
        python = 'the path of an interpreter on the hosts or None'
        options.declare('python', None, types=str, allow_none=True, accepts=python,
                        check=non_empty,
                        desc='the interpreter on the hosts (None: this one\'s path)')
        options.declare('method', 'load-average', types=str, values=METHODS,
                        accepts=f'one of {", ".join(METHODS)}',
                        desc='how a host is picked for a new server')
        options.declare('port', 22, types=int, lower=1, upper=65535,
                        desc="sshd's port where a host entry names none")
        options.declare('max_load', None, types=float, lower=0.0, exclude_lower=True,
                        allow_none=True, accepts='a positive number or None',
                        desc='highest load average per CPU at which a host gets a server')

    def __init__(self, name: str, hosts: Sequence[str], user: str | None = None,
                 key_filename: str | None = None, known_hosts: str | None = None,
                 python: str | None = None, method: str = 'load-average', port: int = 22,
                 workdir: str | None = None, max_load: float | None = None, **options: Any):
        super().__init__(name, hosts=hosts, user=user, key_filename=key_filename,
                         known_hosts=known_hosts, python=python, method=method, port=port,
                         workdir=workdir, max_load=max_load, **options)
        self._hosts: list[_Host] = []
        for i, item in enumerate(hosts):
            host, host_user, host_port = _parse_host(item, f'{name}: hosts[{i}]')
            if any(h.name == host for h in self._hosts):
                raise ValueError(f'{name}: hosts[{i}] = {item!r}: {host} is listed twice')
            channel = SSHChannel(host, host_port or self.port, host_user or self.user,
                                 self.key_filename, self.known_hosts)
            self._hosts.append(_Host(host, channel))
        self._next = 0
        self._hosts_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f'ClusterAllocator({self.name!r}, {[h.channel.where for h in self._hosts]}, '
                f'method={self.method!r})')

    def host_names(self) -> list[str]:
        return [h.name for h in self._hosts]

    # -- what the hosts can take ------------------------------------------------------------
    def _probe(self, host: _Host) -> str | None:
        """Refresh ``host``'s CPU count (read once) and load average; why it cannot be
        reached, or None."""
        now = time.monotonic()
        if now - host.load_time < LOAD_CACHE:
            return None
        if host.failure is not None and now - host.failure_time < RETRY_UNREACHABLE:
            return host.failure
        try:
            cpus, load = _cpus_and_load(host.channel)
        except (OSError, TimeoutError, RemoteError, ValueError) as exc:
            host.failure, host.failure_time = str(exc) or type(exc).__name__, now
            logger.warning('%s: %s is unreachable: %s', self.name, host.name, host.failure)
            return host.failure
        host.cpus = host.cpus or cpus
        host.load, host.failure, host.load_time = load, None, now
        return None

    def _reachable(self, res_desc: Mapping[str, Any]) -> tuple[list[_Host], dict[str, str]]:
        """The hosts not excluded that answer, and why the others do not."""
        excluded = set(res_desc.get('exclude') or ())
        reachable, unreachable = [], {}
        for host in self._hosts:
            if host.name in excluded:
                continue
            why = self._probe(host)
            if why is None:
                reachable.append(host)
            else:
                unreachable[host.name] = why
        return reachable, unreachable

    def _choose(self, hosts: list[_Host], cpus: int) -> tuple[_Host | None, list[str]]:
        """The host for a server of ``cpus`` CPUs by `method`, or None and why each is not."""
        eligible, why = [], []
        for host in hosts:
            if cpus > host.cpus:
                why.append(f'{host.name}: has {host.cpus} CPUs')
            elif not host.fits(cpus):
                why.append(f'{host.name}: {host.used} of {host.cpus} CPUs in use')
            elif self.max_load is not None and host.load / host.cpus > self.max_load:
                why.append(f'{host.name}: load {host.load / host.cpus:.2f} per CPU exceeds '
                           f'max_load {self.max_load:g}')
            else:
                eligible.append(host)
        if not eligible:
            return None, why
        if self.method == 'round-robin':
            order = {id(h): (i - self._next) % len(self._hosts)
                     for i, h in enumerate(self._hosts)}
            return min(eligible, key=lambda h: order[id(h)]), why
        return min(eligible, key=lambda h: (h.load + h.used) / h.cpus), why

    def _estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        cpus = res_desc.get('min_cpus', 1)
        with self._hosts_lock:
            reachable, unreachable = self._reachable(res_desc)
            biggest = max((h.cpus for h in reachable), default=0)
            if reachable and not unreachable and biggest < cpus:
                return NEVER, {'refused': {'min_cpus': f'the largest host of {self.name} has '
                                                       f'{biggest} CPUs, {cpus} were asked for'}}
            host, why = self._choose(reachable, cpus)
        extra = {'unreachable': unreachable} if unreachable else {}
        if host is not None:
            return NOW, {'host': host.name, **extra}
        why += [f'{name}: unreachable: {reason}' for name, reason in unreachable.items()]
        return NOT_NOW, {'reason': f'no host of {self.name} can take {cpus} CPUs now ('
                                   f'{"; ".join(why)})', **extra}

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        if self.refusals(res_desc):
            return 0
        cpus = res_desc.get('min_cpus', 1)
        with self._hosts_lock:
            reachable, _ = self._reachable(res_desc)
            return sum(h.cpus // cpus for h in reachable)

    # -- starting and ending -------------------------------------------------------------------
    def _reserve(self, res_desc: Mapping[str, Any], criteria: Mapping[str, Any]) -> _Host:
        """Take ``min_cpus`` on the host the estimate chose, or on another if it filled since."""
        cpus = res_desc.get('min_cpus', 1)
        excluded = set(res_desc.get('exclude') or ())
        with self._hosts_lock:
            host = next((h for h in self._hosts if h.name == criteria.get('host')), None)
            if host is None or host.name in excluded or host.failure or not host.fits(cpus):
                candidates = [h for h in self._hosts if h.name not in excluded and
                              h.cpus and h.failure is None]
                host, why = self._choose(candidates, cpus)
                if host is None:
                    raise AllocationError(f'{self.name}: no host can take {cpus} CPUs now '
                                          f'({"; ".join(why) or "none reachable"})')
            host.used += cpus
            self._next = (self._hosts.index(host) + 1) % len(self._hosts)
            return host

    def _free(self, host: _Host, cpus: int) -> None:
        with self._hosts_lock:
            host.used -= cpus

    def _start(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> StartedServer:
        cpus = res_desc.get('min_cpus', 1)
        host = self._reserve(res_desc, criteria)
        try:
            started = start_on_channel(
                host.channel, name, python=self.python or sys.executable,
                parent=res_desc.get('working_directory') or self.workdir,
                allowed_hosts=self.host_names(), env=res_desc.get('job_environment'),
                info={'host': host.name, 'cpus': cpus})
        except BaseException:
            self._free(host, cpus)
            raise
        cleanup = started.cleanup

        def cleanup_and_free() -> None:
            try:
                cleanup()
            finally:
                self._free(host, cpus)

        started.cleanup = cleanup_and_free
        return started

    def shutdown(self) -> None:
        """Release every server it started, then close the SSH connections."""
        try:
            super().shutdown()
        finally:
            for host in self._hosts:
                host.channel.close()


def _cpus_and_load(channel: SSHChannel) -> tuple[int, float]:
    """The CPU count and 1-minute load average of ``channel``'s host."""
    result = channel.execute(['sh', '-c', 'nproc && cat /proc/loadavg'],
                             timeout=channel.connect_timeout)
    try:
        cpus, load = result.stdout.split('\n', 1)
        return int(cpus), float(load.split()[0])
    except (ValueError, IndexError):
        raise ValueError(f'cannot read its CPU count and load (nproc, /proc/loadavg): exit '
                         f'status {result.returncode}: '
                         f'{result.stderr.strip() or result.stdout.strip()}') from None


def _parse_host(item: Any, where: str) -> tuple[str, str | None, int | None]:
    """``(host, user or None, port or None)`` of a host entry."""
    match = _HOST.match(item) if isinstance(item, str) else None
    port = int(match['port']) if match and match['port'] else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise ValueError(f"{where} = {item!r}: expected 'host', 'host:port' or "
                         f"'user@host:port' (port 1..65535)")
    return match['ipv6'] or match['host'], match['user'], port
