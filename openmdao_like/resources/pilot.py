"""The server an allocation runs: ``python -m openmdao_like.resources.pilot SETTINGS``.

It starts an `ObjServerFactory` on a free port, registers back to the client (see
`openmdao_like.resources.registration`) and serves until the registration connection closes,
the client calls ``stop``, or SIGTERM (e.g. ``scancel``). The settings file is JSON, private
(mode 0600) and removed once read: it holds the allocation's key and one-time secret.

Settings: ``key`` (base64), ``host`` (an address or ``'auto'``: the address the registrar sees),
``allowed_hosts``, ``root``, ``launcher`` (command prefix for object servers, e.g.
``['mpiexec', '-n', '4']``), ``registrar``, ``token_id``, ``token_secret``, ``log_level``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sys
import threading

from .registration import local_address_towards, register_back

logger = logging.getLogger(__name__)


def _watch(sock, stop) -> None:
    """Stop the factory when the registration connection closes (the client let go)."""
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    logger.info('registration connection closed: stopping')
    stop()


def main(argv: list[str] | None = None) -> int:
    """Read the settings, serve, register back, serve until let go."""
    from ..remote.factory import ObjServerFactory

    path = (argv if argv is not None else sys.argv[1:])[0]
    with open(path) as src:
        settings = json.load(src)
    os.remove(path)
    root = settings['root']
    os.makedirs(root, exist_ok=True)
    # at least INFO: the tail of this log is what a user sees when the server is lost
    logging.basicConfig(level=min(settings.get('log_level', logging.INFO), logging.INFO),
                        format='%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s')
    host = settings.get('host') or 'auto'
    if host == 'auto':
        host = local_address_towards(*settings['registrar'])
    allowed = settings.get('allowed_hosts')
    factory = ObjServerFactory(host, 0, key=base64.b64decode(settings['key']),
                               allowed_hosts=allowed, allow_shell=True,
                               root=os.path.join(root, 'objects'),
                               launcher=settings.get('launcher'))
    factory.start()
    try:
        sock = register_back(settings, factory.info())
    except BaseException:
        # the client gave up on this server (and may have removed its directory already,
        # before this process made it again): leave nothing behind
        factory.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    threading.Thread(target=_watch, args=(sock, factory._stopped.set), daemon=True).start()
    logger.info('allocated server on %s:%d registered', host, factory.port)
    factory.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
