"""The bounds every openmdao_like server and connection keeps, in one place (as rpyc keeps its
security defaults in one dict, and OpenSSH has ``LoginGraceTime`` and ``MaxStartups``).

An operator sets them per server (``openmdao-like server start --max-message-size ...`` or the
config file); ObjServers inherit their factory's. A client keeps the same bounds on what it
receives, and learns the server's message limit at login so that it refuses to send a message
the server would refuse, with an error saying so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: 2 GiB: a message (a call's frame plus its out-of-band array buffers) may hold arrays of
#: up to about 250 million float64 values.
DEFAULT_MAX_MESSAGE = 2 << 30


@dataclass(frozen=True)
class Limits:
    """Bounds on messages, logins and connections.

    Attributes
    ----------
    max_message : int
        Bytes one message may hold (frame and array buffers). Buffers grow as bytes arrive,
        so a peer that claims a size it does not send holds little memory.
    message_timeout : float
        Seconds a message in progress may go without a byte arriving (or being accepted by the
        peer) before the connection is closed.
    login_timeout : float
        Seconds the whole login (TLS and the key challenge) may take, however slowly the peer
        trickles its bytes.
    max_startups : int
        Connections that may await login at once; more are refused with a "busy" answer, which
        clients retry until their connect timeout.
    max_connections : int
        Connections (each served by one thread) open at once, logged in or not; more are
        refused the same way.
    """

    max_message: int = DEFAULT_MAX_MESSAGE
    message_timeout: float = 60.0
    login_timeout: float = 15.0
    max_startups: int = 32
    max_connections: int = 200

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f'server limits: {item.name} must be a number > 0, got '
                                 f'{value!r}')
            if item.type == 'int' and value != int(value):
                raise ValueError(f'server limits: {item.name} must be a whole number, got '
                                 f'{value!r}')
        if self.max_startups > self.max_connections:
            raise ValueError(f'server limits: max_startups ({self.max_startups}) cannot exceed '
                             f'max_connections ({self.max_connections})')

    def as_data(self) -> dict[str, Any]:
        """The limits as a plain dict (for an ObjServer's settings)."""
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> 'Limits':
        """Limits from `as_data` output (None: the defaults)."""
        return cls(**(data or {}))


DEFAULT_LIMITS = Limits()
