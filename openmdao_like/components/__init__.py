"""Ready-made components: `ExternalCode` runs a program (a solver binary) on files, here or
wherever its resource description fits, moving its files both ways."""

from .external_code import DEV_NULL, STDOUT, ExternalCode, FileMetadata

__all__ = ['ExternalCode', 'FileMetadata', 'DEV_NULL', 'STDOUT']
