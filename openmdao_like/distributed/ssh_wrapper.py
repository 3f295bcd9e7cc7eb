"""`SSHWrapper`: a component whose every execution runs another component (or assembly) on a
host over SSH, as a job.

The wrapper has the wrapped object's variables (same types and metadata), so it connects in an
assembly like the object itself. Each run ships the object with its current inputs (and input
files) to a fresh private directory on the host (`openmdao_like.distributed.jobfiles`), runs it
there in the background (a dropped SSH connection is reopened; the job goes on), and brings
back its outputs and output files, or raises its exception here: the same type when it can be
rebuilt, with the remote traceback attached. The job travels the path every wrapper shares
(`openmdao_like.distributed.jobfiles.ShippedJob`) over an `SSHChannel`.
"""

from __future__ import annotations

import copy
import logging
import os
import posixpath
import sys
from collections.abc import Mapping
from typing import Any

from .. import tree
from ..component import Component
from ..errors import JobError, describe
from ..options import REQUIRED, HasOptions, OptionsDictionary
from ..resources.allocator import non_empty
from ..resources.ssh import SSHChannel
from ..variables.file import FileRef
from .jobfiles import JOB_RAN, ShippedJob

logger = logging.getLogger(__name__)

__all__ = ['SSHWrapper']


class SSHWrapper(HasOptions, Component):
    """Run ``comp`` on ``host`` over SSH each time this component executes.

    Parameters
    ----------
    comp : Component
        The component or assembly to run there (not part of another assembly: add the wrapper
        instead). Its class must be importable by ``python`` on the host.
    host, port, user, key_filename, known_hosts
        How to reach the host (see `openmdao_like.resources.ssh.SSHChannel`).
    python : str, optional
        The interpreter on the host (default: this one's path).
    workdir : str, optional
        Where on the host each execution gets its directory (default: its temporary directory).
    env : mapping, optional
        Environment variables of the job on the host (e.g. ``PYTHONPATH``).
    timeout : float, optional
        Seconds one execution may take before it is killed (`JobError`); None: no limit.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('host', REQUIRED, types=str, accepts='a host name or address',
                        check=non_empty, desc='the host the wrapped object runs on')
        options.declare('port', 22, types=int, lower=1, upper=65535, desc="sshd's port")
        for what, desc in (('user', 'login name (None: this user)'),
                           ('key_filename', 'private key file of the login'),
                           ('known_hosts', 'known_hosts file checking the host key'),
                           ('python', 'the interpreter on the host (None: this one)'),
                           ('workdir', 'where on the host each execution gets its '
                                       'directory')):
            options.declare(what, None, types=str, allow_none=True, desc=desc)
        options.declare('env', None, types=Mapping, allow_none=True, check=dict,
                        accepts='a mapping of names to values or None',
                        desc='environment variables of the job on the host')
        options.declare('timeout', None, types=float, lower=0.0, exclude_lower=True,
                        allow_none=True, accepts='a positive number of seconds or None',
                        desc='seconds one execution may take before it is killed')

    def __init__(self, comp: Component, host: str, port: int = 22, user: str | None = None,
                 key_filename: str | None = None, known_hosts: str | None = None,
                 python: str | None = None, workdir: str | None = None,
                 env: Mapping[str, str] | None = None, timeout: float | None = None,
                 **options: Any):
        if not isinstance(comp, Component) or comp.is_remote:
            raise ValueError(f'SSHWrapper: comp must be a local Component or Assembly, got '
                             f'{describe(comp)}')
        if comp.parent is not None:
            raise ValueError(f'SSHWrapper: {comp.get_pathname()!r} belongs to an assembly; '
                             f'wrap a component of its own and add the wrapper instead')
        super().__init__(host=host, port=port, user=user, key_filename=key_filename,
                         known_hosts=known_hosts, python=python, workdir=workdir, env=env,
                         timeout=timeout, **options)
        self._comp = comp
        self._channel = SSHChannel(self.host, self.port, self.user, self.key_filename,
                                   self.known_hosts)
        for name, var in tree.variables(comp).items():
            self.add(name, copy.deepcopy(var))
            value = getattr(comp, name)
            setattr(self, name, self._own_ref(value) if isinstance(value, FileRef) else value)

    @property
    def wrapped(self) -> Component:
        """The wrapped component (holding the inputs and outputs of the last execution)."""
        return self._comp

    def __repr__(self) -> str:
        return f'<SSHWrapper {tree.where(self)} ({type(self._comp).__name__}) on ' \
               f'{self._channel.where}>'

    def close(self) -> None:
        """Close the SSH connection (the next execution opens a new one)."""
        self._channel.close()

    def pre_delete(self) -> None:
        """Close the connection when the model is discarded (classic API)."""
        self.close()

    # -- one execution ---------------------------------------------------------------------------
    def execute(self) -> None:
        """Ship the wrapped object with this component's inputs, run it on the host, take its
        outputs (or raise its exception)."""
        comp, channel = self._comp, self._channel
        for name in comp.list_inputs():
            value = getattr(self, name)
            if not isinstance(value, FileRef):
                setattr(comp, name, value)
        where = f'{tree.where(self)} on {channel.where}'
        with ShippedJob(channel, where, parent=self.workdir) as job:
            self._send_files(job.remote)
            job.ship(comp)
            status, tail = job.run(self.python or sys.executable, self.timeout, self.env)
            if status is None:
                raise JobError(f'{where}: did not finish within {self.timeout:g} s (killed); '
                               f'its output ends with:\n{tail}')
            if status not in JOB_RAN:
                raise JobError(f'{where}: the job exited with status {status}; its output '
                               f'ends with:\n{tail}')
            if not job.fetch():
                raise JobError(f'{where}: the job left no result ({job.remote})')
            job.result(comp)
            self._take_outputs(job.remote)

    def _send_files(self, remote: str) -> None:
        """Copy the input files into the wrapped object's directory on the host."""
        comp = self._comp
        for name in comp.list_inputs():
            ref = getattr(self, name)
            if not isinstance(ref, FileRef):
                continue
            var = comp._var(name)
            target = getattr(var, 'local_path', None) or os.path.basename(ref.path)
            path = posixpath.join(remote, comp.directory, target)
            self._channel.makedirs(posixpath.dirname(path))
            self._channel.push_file(ref.abspath(), path)
            setattr(comp, name, FileRef(target, comp, ref.binary, ref.content_type))

    def _take_outputs(self, remote: str) -> None:
        """Set this component's outputs from the wrapped object's, fetching output files."""
        comp = self._comp
        for name in comp.list_outputs():
            value = getattr(comp, name)
            if isinstance(value, FileRef):
                value = self._fetch(value, remote)
            setattr(self, name, value)

    def _fetch(self, ref: FileRef, remote: str) -> FileRef:
        """Copy an output file of the job here (into this component's directory)."""
        if ref.owner is None:
            source, target = ref.path, os.path.basename(ref.path)
        else:
            source = posixpath.join(remote, _relative_directory(ref.owner), ref.path)
            target = ref.path
        mine = FileRef(target, self, ref.binary, ref.content_type)
        path = mine.abspath()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._channel.pull_file(posixpath.normpath(source), path)
        return mine

    def _own_ref(self, ref: FileRef) -> FileRef:
        """``ref`` as a file of this component's directory."""
        return FileRef(ref.path, self, ref.binary, ref.content_type)


def _relative_directory(owner: Any) -> str:
    """The directory of ``owner`` (in the job's copy of the tree) relative to the job's."""
    parts = []
    while owner is not None:
        parts.append(owner.directory)
        owner = owner.parent
    return posixpath.join('', *reversed(parts))
