"""The HTTP component service and its client.

`HTTPComponent` (`client`) is a component served by a service, used like a local one. The
service (``openmdao-like http serve``: `app`, over `service`) is configured by a file and its JWT
secret (`config`); its users have argon2 password hashes (`users`, written by ``openmdao-like
http adduser``), access and refresh tokens and a login guard (`tokens`); executions run in
worker processes (`executions`), asynchronous ones as jobs of the job store (`jobs`); files
travel in chunks (`transfers`). Importing this package imports no web framework.
"""

from .client import HTTPComponent
from .config import Exposed, ServiceConfig, load_config
from .tokens import LoginGuard, TokenError, Tokens
from .users import User, Users

__all__ = ['HTTPComponent', 'ServiceConfig', 'Exposed', 'load_config', 'User', 'Users', 'Tokens',
           'TokenError', 'LoginGuard']
