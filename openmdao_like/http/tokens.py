"""The HTTP service's tokens: short-lived access tokens and longer refresh tokens, JWTs signed
with the service's secret (HS256, `pyjwt`), and the login guard that slows password guessing.

An access token carries the user's name (``sub``) and roles, its kind, when it was made and
when it ends; a refresh token gets a new access token without the password. Checking a token
refuses an expired, forged (bad signature), malformed or wrong-kind one with `TokenError`,
whose message says which, never echoing the token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Any

from ..errors import OpenMDAOLikeError
from ..extras import require
from .users import User

__all__ = ['TokenError', 'Tokens', 'LoginGuard', 'ACCESS_TTL', 'REFRESH_TTL']

#: Seconds an access token lasts.
ACCESS_TTL = 15 * 60
#: Seconds a refresh token lasts.
REFRESH_TTL = 8 * 3600
#: Names or addresses `LoginGuard` keeps before it forgets the quiet ones.
MAX_TRACKED = 10_000
#: Valid tokens remembered at most (forgotten all at once when full).
MAX_REMEMBERED = 4096
_ALGORITHM = 'HS256'


def _jwt() -> Any:
    """pyjwt; `ImportError` saying how to install it."""
    return require('jwt', 'the HTTP service', 'http')


class TokenError(OpenMDAOLikeError):
    """A token that cannot be accepted (expired, forged, malformed, of the wrong kind)."""


class Tokens:
    """Makes and checks the service's tokens.

    Parameters
    ----------
    secret : bytes
        The signing key (`ServiceConfig.secret`).
    issuer : str
        Who makes the tokens (checked on the way back), e.g. the service's URL.
    access_ttl, refresh_ttl : float
        Lifetimes in seconds.
    """

    def __init__(self, secret: bytes, issuer: str = 'openmdao_like.http',
                 access_ttl: float = ACCESS_TTL, refresh_ttl: float = REFRESH_TTL):
        self._jwt = _jwt()
        self._secret = secret
        self.issuer = issuer
        self.ttl = {'access': access_ttl, 'refresh': refresh_ttl}
        self._valid: dict[tuple[str, str], tuple[User, float]] = {}  # checked, until expiry

    def __repr__(self) -> str:  # (never the secret)
        return f'<Tokens issuer={self.issuer!r}>'

    def make(self, user: User, kind: str = 'access') -> str:
        """A signed token of ``kind`` ('access' or 'refresh') for ``user``."""
        now = int(time.time())
        claims = {'sub': user.name, 'roles': list(user.roles), 'kind': kind, 'iss': self.issuer,
                  'iat': now, 'exp': now + int(self.ttl[kind]), 'jti': secrets.token_hex(8)}
        return self._jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def check(self, token: str, kind: str = 'access') -> User:
        """The user of a valid ``token`` of ``kind``; `TokenError` saying what is wrong. A
        token found valid is remembered until it expires (checking its signature again each
        request would cost more than the rest of a small request)."""
        known = self._valid.get((token, kind))
        if known is not None and known[1] > time.time():
            return known[0]
        user, expires = self._check(token, kind)
        if len(self._valid) >= MAX_REMEMBERED:
            self._valid.clear()
        self._valid[(token, kind)] = (user, expires)
        return user

    def _check(self, token: str, kind: str) -> tuple[User, float]:
        jwt = self._jwt
        try:
            claims = jwt.decode(token, self._secret, algorithms=[_ALGORITHM],
                                issuer=self.issuer,
                                options={'require': ['sub', 'exp', 'iat', 'iss', 'kind']})
        except jwt.ExpiredSignatureError as exc:
            raise TokenError('the token has expired: log in again (or refresh it)') from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError('the token was not signed by this service') from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f'not a token of this service: {exc}') from exc
        if claims['kind'] != kind:
            raise TokenError(f'expected an {kind} token, got a {claims["kind"]} token')
        roles = claims.get('roles', [])
        if not isinstance(claims['sub'], str) or not isinstance(roles, list):
            raise TokenError('not a token of this service: malformed claims')
        return User(claims['sub'], tuple(str(role) for role in roles)), float(claims['exp'])


class LoginGuard:
    """Slows password guessing: after `max_failures` failed logins of a name within `window`
    seconds the name is locked for `lockout` seconds; one client address may try `per_address`
    logins per `window` in all. Thread-safe; kept in memory (a restart forgets it).

    Parameters
    ----------
    max_failures, window, lockout, per_address
        See above.
    """

    def __init__(self, max_failures: int = 5, window: float = 900.0, lockout: float = 900.0,
                 per_address: int = 30):
        self.max_failures, self.window = max_failures, window
        self.lockout, self.per_address = lockout, per_address
        self._failures: dict[str, deque[float]] = {}
        self._attempts: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    def refusal(self, name: str, address: str) -> str | None:
        """Why a login of ``name`` from ``address`` is refused now (None: it may try); counts
        the attempt."""
        now = time.monotonic()
        with self._lock:
            until = self._locked.get(name, 0.0)
            if until > now:
                return (f'too many failed logins for {name!r}: locked for another '
                        f'{until - now:.0f} s')
            attempts = self._recent(self._attempts, address, now)
            if len(attempts) >= self.per_address:
                return (f'too many logins from {address}: at most {self.per_address} per '
                        f'{self.window:g} s')
            attempts.append(now)
        return None

    def failed(self, name: str) -> None:
        """A login of ``name`` failed (a wrong password, or no such user)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(self._failures, name, now)
            failures.append(now)
            if len(failures) >= self.max_failures:
                self._locked[name] = now + self.lockout
                failures.clear()

    def succeeded(self, name: str) -> None:
        """A login of ``name`` succeeded: its failures are forgotten."""
        with self._lock:
            self._failures.pop(name, None)

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        """``table[key]`` without the times older than `window` (made if missing); a table
        that grew past `MAX_TRACKED` names or addresses forgets those quiet for a window."""
        if len(table) > MAX_TRACKED:
            for stale in [k for k, times in table.items() if not times or
                          now - times[-1] > self.window]:
                del table[stale]
            for name in [n for n, until in self._locked.items() if until <= now]:
                del self._locked[name]
        times = table.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times
