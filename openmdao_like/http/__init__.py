"""The HTTP component service (in progress, issue 16): its configuration file and JWT secret
(`config`) and its users with argon2 password hashes (`users`, written by ``openmdao-like http
adduser``). Nothing here imports a web framework.
"""

from .config import Exposed, ServiceConfig, load_config
from .users import User, Users

__all__ = ['ServiceConfig', 'Exposed', 'load_config', 'User', 'Users']
