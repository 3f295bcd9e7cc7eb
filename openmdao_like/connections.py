"""Connections between variables: every check at ``connect`` time, then compilation into
transfer closures (getter, setter, scale, offset) that a run calls with no lookups by string."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Callable

from .container import set_connected, unguarded_trait
from .errors import ConnectError
from .options import suggest
from .variables.array import Array
from .variables.file import File
from .variables.simple import Enum

LINKS = ('push', 'pull', 'rpush', 'rpull')

#: Compiles transfers that involve a remote component (set by ``openmdao_like.wiring``):
#: ``hook(conn, src, dst, svar, dvar)`` returns a transfer closure, or None for the local one.
remote_transfer: Callable[..., Callable[[], None] | None] | None = None


@dataclass
class Connection:
    """One source -> destination link inside an assembly.

    ``src_comp``/``dest_comp`` are child names, or None for the assembly's own (boundary)
    variables; ``scale``/``offset`` convert the source's units into the destination's.
    """

    src: str
    dest: str
    link: str
    src_comp: str | None
    src_var: str
    dest_comp: str | None
    dest_var: str
    scale: float = 1.0
    offset: float = 0.0


def check_connection(asm: Any, src: str, dest: str, link: str) -> Connection:
    """Validate a connection in assembly ``asm``; raise `ConnectError` naming both ends."""
    where = f'{asm._where()}: cannot connect {src!r} to {dest!r}'
    if link not in LINKS:
        raise ConnectError(f'{where}: link must be one of {LINKS}, got {link!r}')
    scomp, sname, sowner, svar = endpoint(asm, src, where)
    dcomp, dname, downer, dvar = endpoint(asm, dest, where)
    if scomp is None and svar.iotype != 'in':
        raise ConnectError(f"{where}: the assembly's own {sname!r} is an output; a source "
                           f"on the assembly must be one of its inputs")
    if scomp is not None and svar.iotype != 'out':
        raise ConnectError(f'{where}: source {src!r} is an input; expected an output')
    if dcomp is not None and dvar.iotype != 'in':
        raise ConnectError(f'{where}: destination {dest!r} is an output; expected an input')
    if dcomp is None and dvar.iotype != 'out':
        raise ConnectError(f"{where}: the assembly's own {dname!r} is an input; a destination "
                           f"on the assembly must be one of its outputs")
    if scomp is not None and scomp == dcomp:
        raise ConnectError(f'{where}: both ends belong to the same component {scomp!r}')
    existing = asm._connections.get(dest)
    if existing is not None:
        raise ConnectError(f'{where}: {dest!r} is already connected to {existing.src!r}; '
                           f'disconnect it first')
    driver = asm._driver_of_parameter(dest)
    if driver is not None:
        raise ConnectError(f'{where}: {dest!r} is a parameter of driver {driver!r}')
    if not dvar.type_compatible(svar):
        raise ConnectError(f'{where}: type mismatch: {dest!r} expects {dvar.expectation()}, '
                           f'{src!r} is a {type(svar).__name__}')
    scale, offset = _units(svar, dvar, where)
    _check_ranges(svar, dvar, scale, offset, where)
    if isinstance(dvar, Array) and isinstance(svar, Array) and not dvar.shapes_match(svar):
        raise ConnectError(f'{where}: array shape mismatch: {dest!r} expects shape {dvar.shape}, '
                           f'{src!r} has shape {svar.shape}')
    if isinstance(dvar, File):
        _check_files(svar, dvar, where)
    return Connection(src, dest, link, scomp, sname, dcomp, dname, scale, offset)


def endpoint(asm: Any, path: str, where: str) -> tuple[str | None, str, Any, Any]:
    """``(child name or None, variable name, owner, Variable)`` of ``path`` in ``asm``; a
    `ConnectError` starting with ``where`` when it names no variable."""
    if not isinstance(path, str) or not path:
        raise ConnectError(f'{where}: expected a variable path such as "comp.x", got {path!r}')
    parts = path.split('.')
    if len(parts) == 1:
        comp, name, owner = None, parts[0], asm
    elif len(parts) == 2:
        comp, name = parts
        owner = asm._children.get(comp)
        if owner is None:
            raise ConnectError(f'{where}: {asm._where()!r} has no component {comp!r}'
                               f'{suggest(comp, asm._children)}')
    else:
        raise ConnectError(f'{where}: {path!r} is nested; connect the direct children\'s '
                           f'variables and use create_passthrough() inside {parts[0]!r}')
    var = owner._vars().get(name)
    if var is None:
        raise ConnectError(f'{where}: {owner._where()!r} has no variable {name!r}'
                           f'{suggest(name, owner._vars())}')
    return comp, name, owner, var


def _units(svar: Any, dvar: Any, where: str) -> tuple[float, float]:
    sunits, dunits = svar._metadata.get('units'), dvar._metadata.get('units')
    if not sunits or not dunits or sunits == dunits:
        return 1.0, 0.0
    from .variables.units import conversion
    try:
        return conversion(sunits, dunits)
    except ValueError as exc:
        raise ConnectError(f'{where}: incompatible units: {exc}') from None


def _check_ranges(svar: Any, dvar: Any, scale: float, offset: float, where: str) -> None:
    """Reject a connection when no value the source may hold is accepted by the destination."""
    if isinstance(dvar, Enum):
        if isinstance(svar, Enum) and not set(svar.values) & set(dvar.values):
            raise ConnectError(f'{where}: none of the source values {svar.values!r} is allowed '
                               f'by the destination (expected one of {dvar.values!r})')
        return
    slo, shi = getattr(svar, 'low', None), getattr(svar, 'high', None)
    dlo, dhi = getattr(dvar, 'low', None), getattr(dvar, 'high', None)
    slo = None if slo is None else slo * scale + offset
    shi = None if shi is None else shi * scale + offset
    if (slo is not None and dhi is not None and slo > dhi) or \
            (shi is not None and dlo is not None and shi < dlo):
        raise ConnectError(f'{where}: range mismatch: the source range [{slo}, {shi}] lies '
                           f'outside the destination range [{dlo}, {dhi}]')


def _check_files(svar: Any, dvar: Any, where: str) -> None:
    if svar.binary != dvar.binary:
        raise ConnectError(f'{where}: binary flag mismatch: destination expects '
                           f'binary={dvar.binary}, source has binary={svar.binary}')
    if dvar.legal_types is not None and svar.content_type is not None \
            and svar.content_type not in dvar.legal_types:
        raise ConnectError(f'{where}: content type {svar.content_type!r} is not among the '
                           f'legal types {dvar.legal_types!r}')


def _has_notifiers(obj: Any, name: str) -> bool:
    ctrait = obj._trait(name, 0)
    return bool((ctrait is not None and ctrait._notifiers(False)) or obj._notifiers(False))


class _Setter:
    """Stands for an object's ``__dict__`` where listeners must hear of each transfer: storing
    a value sets it (checked, around a connected input's guard) so that they are notified."""

    __slots__ = ('obj',)

    def __init__(self, obj: Any):
        self.obj = obj

    def __setitem__(self, name: str, value: Any) -> None:
        set_connected(self.obj, name, value)


def _as_is(obj: Any, name: str, value: Any) -> Any:
    """The check of a transfer through `_Setter`, which checks when it sets."""
    return value


def compile_transfer(asm: Any, conn: Connection) -> Callable[[], None]:
    """A closure that moves the source value to the destination, converted and checked only
    where the connect-time checks could not prove it valid.

    It stores the value in the destination's ``__dict__`` after the destination variable's
    own check: a connected input refuses every other set (`Container._guard_input`), and
    going around that guard here costs a transfer nothing."""
    src = asm if conn.src_comp is None else asm._children[conn.src_comp]
    dst = asm if conn.dest_comp is None else asm._children[conn.dest_comp]
    sname, dname = conn.src_var, conn.dest_var
    svar, dvar = src._vars()[sname], dst._vars()[dname]
    if (src.is_remote or dst.is_remote) and remote_transfer is not None:
        xfer = remote_transfer(conn, src, dst, svar, dvar)
        if xfer is not None:
            return xfer
    if _has_notifiers(dst, dname):
        store, check = _Setter(dst), _as_is
    else:
        store, check = dst.__dict__, unguarded_trait(dst, dname, dvar).validate
    if isinstance(dvar, File):
        local = dvar.local_path

        def xfer_file() -> None:
            ref = getattr(src, sname)
            store[dname] = check(dst, dname, None if ref is None
                                 else ref.copy_to(dst, local or os.path.basename(ref.path)))
        return xfer_file
    scale, offset = conn.scale, conn.offset
    if scale != 1.0 or offset != 0.0:
        def xfer_scaled() -> None:
            store[dname] = check(dst, dname, getattr(src, sname) * scale + offset)
        return xfer_scaled
    # a remote destination sends the value away at once: nothing to keep from sharing
    shares = not dst.is_remote
    if isinstance(dvar, Array) and shares:
        def xfer_copy() -> None:
            store[dname] = check(dst, dname, getattr(src, sname).copy())
        return xfer_copy
    if dvar.copy_on_transfer() and shares:
        # lists and dicts: nested items must not be shared between components either
        def xfer_deepcopy() -> None:
            store[dname] = check(dst, dname, copy.deepcopy(getattr(src, sname)))
        return xfer_deepcopy
    if dvar.proves(svar):
        def xfer_direct() -> None:
            store[dname] = getattr(src, sname)
        return xfer_direct

    def xfer_checked() -> None:
        store[dname] = check(dst, dname, getattr(src, sname))
    return xfer_checked
