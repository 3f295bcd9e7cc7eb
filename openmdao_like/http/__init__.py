"""The HTTP component service: its configuration file and JWT secret (`config`), its users with
argon2 password hashes (`users`, written by ``openmdao-like http adduser``), its access and
refresh tokens and the login guard (`tokens`). Importing it imports no web framework.
"""

from .config import Exposed, ServiceConfig, load_config
from .tokens import LoginGuard, TokenError, Tokens
from .users import User, Users

__all__ = ['ServiceConfig', 'Exposed', 'load_config', 'User', 'Users', 'Tokens', 'TokenError',
           'LoginGuard']
