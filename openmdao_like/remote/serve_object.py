"""``python -m openmdao_like.remote.serve_object``: how a factory starts an ObjServer (a module
of its own, so that running it does not re-import the package's `objserver` module)."""

from openmdao_like.remote.objserver import main

if __name__ == '__main__':
    main()
