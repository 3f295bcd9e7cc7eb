"""The registrar a client runs for allocated servers to register back to: reachable by the
cluster's nodes, so bounded like a server's login: a registration line must arrive whole within
its deadline, and only so many are read at once."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from openmdao_like.resources import registration
from openmdao_like.resources.registration import Registrar


@pytest.fixture
def registrar(monkeypatch):
    monkeypatch.setattr(registration, 'REGISTER_TIMEOUT', 2.0)
    monkeypatch.setattr(registration, 'MAX_PENDING', 3)
    reg = Registrar('127.0.0.1')
    yield reg
    reg._sock.close()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b''
    except ConnectionError:
        return True
    except socket.timeout:
        return False


def test_a_trickling_registration_ends_at_its_deadline(registrar):
    with socket.create_connection(registrar.address) as sock:
        start = time.monotonic()
        while time.monotonic() - start < 8:
            try:
                sock.sendall(b'{')                   # one byte every 0.3 s, never a full line
            except OSError:
                break
            if closed_within(sock, 0.3):
                break
        assert time.monotonic() - start < 2 + 3      # REGISTER_TIMEOUT 2, with a margin


def test_registrations_read_at_once_are_capped(registrar):
    socks = [socket.create_connection(registrar.address) for _ in range(10)]
    try:
        refused = sum(closed_within(sock, 0.5) for sock in socks)
        assert refused == 7                          # MAX_PENDING 3 are read, the rest closed
        exp = registrar.expect()                     # ... and a real registration still works
        settings = {'registrar': registrar.address, 'token_id': exp.id,
                    'token_secret': base64.b64encode(exp.secret).decode()}
        for sock in socks:                           # free the places
            sock.close()
        time.sleep(0.2)
        sock = registration.register_back(settings, {'host': '127.0.0.1', 'port': 1, 'pid': 1})
        got = exp.wait(5.0, what='test server')
        assert got.port == 1
        got.close()
        sock.close()
    finally:
        for sock in socks:
            sock.close()
