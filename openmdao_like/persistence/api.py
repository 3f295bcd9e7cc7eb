"""`save` and `load`: a model (any component, assembly or whole model) to a file or stream in
the ``pickle`` or ``yaml`` format, optionally with the files its File variables refer to, and
back — the header checked before anything is built."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from typing import Any, Iterable

from .. import tree
from ..container import Container, set_as_top
from ..errors import PersistenceError, describe as describe_value
from ..factories import TypeInfo, factory_manager
from .archive import Archive, model_files, write_atomic, write_directory, write_zip
from .build import Builder
from .describe import Describer
from .extensions import saving
from .header import (FORMAT, check_structure, find_mismatches, make_header, resolve_policy)
from .paths import PathRules
from .safety import find_class_for_file
from .settings import read_settings
from .yaml_io import line_of

logger = logging.getLogger(__name__)

FORMATS = ('pickle', 'yaml')
#: First line of the pickle format (then one line of JSON header, then the cloudpickle data).
PICKLE_MAGIC = b'OPENMDAO_LIKE_MODEL pickle\n'
_ZIP_MAGIC = b'PK\x03\x04'
_YAML_COMMENT = ('# openmdao_like model. First document: the header (format, Python and the '
                 'version of every\n# class used); second: the model. Read it with '
                 'openmdao_like.load(path).\n')


# -- saving ----------------------------------------------------------------------------------------
def save(obj: Container, path_or_stream: Any, fmt: str | None = None,
         include_files: bool = False) -> None:
    """Save ``obj`` and everything below it.

    ``fmt`` is ``'pickle'`` (exact, fast; cloudpickle) or ``'yaml'`` (readable and diffable;
    loaded without running code from the file); by default ``'yaml'`` for a path ending in
    ``.yaml``/``.yml``, else ``'pickle'``. With ``include_files`` the files that File variables
    refer to are saved too: ``path`` becomes a directory (or a zip when it ends in ``.zip`` or
    is a stream) holding the model and ``files/``.
    """
    if not isinstance(obj, Container):
        raise TypeError(f'save: expected a Component, Assembly or Driver, got '
                        f'{describe_value(obj)}')
    fmt = _format_for(path_or_stream, fmt)
    files = list(model_files(obj)) if include_files else []
    data = dump_yaml(obj) if fmt == 'yaml' else dump_pickle(obj)
    if isinstance(path_or_stream, (str, os.PathLike)):
        path = os.fspath(path_or_stream)
        if include_files:
            if path.endswith('.zip'):
                write_zip(path, fmt, data, files)
            else:
                write_directory(path, fmt, data, files)
        else:
            write_atomic(path, data)
        logger.info('saved %s as %s to %s (%d bytes, %d files)', tree.where(obj), fmt, path,
                    len(data), len(files))
        return
    if not hasattr(path_or_stream, 'write'):
        raise TypeError(f'save: expected a path or a writable stream, got '
                        f'{describe_value(path_or_stream)}')
    if include_files:
        buffer = io.BytesIO()
        write_zip(buffer, fmt, data, files)
        data = buffer.getvalue()
    if isinstance(path_or_stream, io.TextIOBase):
        if fmt != 'yaml' or include_files:
            raise TypeError(f'save: fmt={fmt!r}{" with files" if include_files else ""} '
                            f'writes bytes; give a binary stream (open(path, "wb"))')
        path_or_stream.write(data.decode('utf-8'))
    else:
        path_or_stream.write(data)


def _format_for(target: Any, fmt: str | None) -> str:
    if fmt is None:
        name = os.fspath(target) if isinstance(target, (str, os.PathLike)) else ''
        return 'yaml' if name.endswith(('.yaml', '.yml')) else 'pickle'
    if fmt not in FORMATS:
        raise PersistenceError(f'save: unknown format {fmt!r}; expected one of '
                               f'{", ".join(map(repr, FORMATS))}')
    return fmt


def dump_yaml(obj: Container) -> bytes:
    """The YAML format: header document, then the model document."""
    from .yaml_io import dump_documents
    describer = Describer()
    with saving():
        model = describer.node(obj)
    header = make_header(describer.classes.values(), 'yaml')
    return dump_documents([header, model], _YAML_COMMENT).encode('utf-8')


def dump_pickle(obj: Container) -> bytes:
    """The pickle format: magic line, JSON header line, cloudpickle data."""
    import cloudpickle
    header = make_header(_classes(obj), 'pickle')
    parent = obj.parent
    obj.parent = None  # a saved component leaves its assembly behind
    try:
        with saving():
            payload = cloudpickle.dumps(obj, protocol=5)
    except PersistenceError:
        raise
    except Exception as exc:
        where = _unpicklable_part(obj) or tree.where(obj)
        raise PersistenceError(f'{where}: cannot be pickled: {type(exc).__name__}: {exc}') \
            from exc
    finally:
        obj.parent = parent
    header['payload'] = {'bytes': len(payload), 'sha256': hashlib.sha256(payload).hexdigest()}
    return PICKLE_MAGIC + json.dumps(header).encode('utf-8') + b'\n' + payload


def _unpicklable_part(obj: Container) -> str | None:
    """The path of the first variable, setting or recorder below ``obj`` that cannot be pickled
    (looked for only after pickling failed)."""
    import cloudpickle
    stack = [obj]
    while stack:
        node = stack.pop()
        parts = {f'{tree.where(node)}.{name}': getattr(node, name, None)
                 for name in tree.variables(node)}
        try:
            parts.update({f'{tree.where(node)}.{k}': v for k, v in
                          read_settings(node, tree.where(node)).items()})
        except PersistenceError:
            pass
        parts.update({f'{tree.where(node)}.recorders[{i}]': r
                      for i, r in enumerate(getattr(node, 'recorders', None) or ())})
        for path, value in parts.items():
            try:
                cloudpickle.dumps(value)
            except Exception:
                return path
        stack.extend(tree.children(node).values())
    return None


def _classes(obj: Container) -> Iterable[TypeInfo]:
    """Every class in the model, for the pickle header: containers, variables, recorders and
    the objects in drivers' settings."""
    seen: set[type] = set()
    stack = [obj]
    while stack:
        node = stack.pop()
        seen.add(type(node))
        seen.update(type(var) for var in tree.variables(node).values())
        for rec in getattr(node, 'recorders', None) or ():
            seen.add(type(rec))
        if hasattr(node, 'workflow'):
            seen.add(type(node.workflow))
            try:
                settings = read_settings(node, tree.where(node))
            except PersistenceError:
                settings = {}
            seen.update(type(v) for v in settings.values()
                        if v is not None and not isinstance(v, (bool, int, float, str, list,
                                                                tuple, dict)))
        stack.extend(tree.children(node).values())
    return [factory_manager.type_info(cls) for cls in seen]


# -- loading ---------------------------------------------------------------------------------------
def load(path_or_stream: Any, on_version_mismatch: Any = 'error',
         directory: str | os.PathLike | None = None, trust_paths: bool = False,
         trust_commands: bool = False) -> Container:
    """Load a model saved by `save` (either format, with or without files).

    The header is checked first: a class whose distribution is missing or at another version
    raises `VersionMismatchError` listing each (``on_version_mismatch='warn'`` loads anyway,
    warning). The model becomes a top rooted at ``directory`` (default: the current directory),
    where saved files are restored.

    The paths a YAML file names (recorders', `CSVFile`'s) must be relative without ``..`` or
    lie inside the model file's directory (from a stream: inside ``directory``, if given), else
    `PathError`; ``trust_paths=True`` allows any, for files you trust (see
    `openmdao_like.persistence.paths`). A YAML file may hold a component that runs commands
    (``ExternalCode``) only when loaded with ``trust_commands=True``: its commands would run
    with the model. A pickle runs whatever it holds when loaded: load only pickles you trust.
    """
    policy = resolve_policy(on_version_mismatch)
    source, data, archive = _read_source(path_or_stream)
    top_dir = os.path.abspath(os.fspath(directory) if directory is not None else os.getcwd())
    if data.startswith(PICKLE_MAGIC):
        header, payload = _split_pickle(data, source)
        _checked_rows(header, source, policy, on_version_mismatch)
        if archive is not None:
            archive.restore(top_dir)
        obj = _unpickle(payload, source)
    else:
        docs, header = _yaml_header(data, source)
        rows, creators = _checked_rows(header, source, policy)
        _check_creatable(rows, creators, source)
        model = _yaml_model(docs, data, source)
        if archive is not None:
            archive.restore(top_dir)
        versions = {row['class']: row.get('version') for row in rows}
        paths = PathRules(_model_directory(path_or_stream, directory), trust_paths)
        obj = Builder(source, versions, creators, paths, trust_commands).build(model)
    if not isinstance(obj, Container):
        raise PersistenceError(f'{source}: holds {describe_value(obj)}, not a model object')
    return set_as_top(obj, top_dir)


def _model_directory(target: Any, directory: str | os.PathLike | None) -> str | None:
    """The directory whose files a model file may name: the one holding the file (a saved
    directory: itself); for a stream, ``directory`` if given."""
    if isinstance(target, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(target))
        return path if os.path.isdir(path) else os.path.dirname(path)
    return None if directory is None else os.path.abspath(os.fspath(directory))


def _checked_rows(header: Any, source: str, policy: Any,
                  pickled_as: Any = None) -> tuple[list[dict[str, Any]], dict]:
    """The header's class rows, and the creators the version policy gives for the classes
    whose saved version is not installed (the policy raises to refuse).

    For a pickle (``pickled_as``: the policy as the caller named it) a policy that creates
    objects elsewhere is refused: unpickling rebuilds every object from the class installed
    here, so it cannot hand one to a creator."""
    rows = check_structure(header, source)
    mismatches = find_mismatches(rows)
    if not mismatches:
        return rows, {}
    if pickled_as is not None and getattr(policy, 'creates_elsewhere', False):
        _refuse_pickle(mismatches, source, pickled_as)
    creators = policy(mismatches, source)
    if pickled_as is not None and creators:
        _refuse_pickle([m for m in mismatches if m.class_name in creators], source, pickled_as)
    return rows, creators


def _policy_name(policy: Any) -> str:
    return repr(policy) if isinstance(policy, str) else getattr(policy, '__name__', repr(policy))


def _refuse_pickle(mismatches: list, source: str, policy: Any) -> None:
    lines = '\n'.join(f'  {m}' for m in mismatches)
    raise PersistenceError(
        f'{source}: on_version_mismatch={_policy_name(policy)} creates the classes saved at '
        f'versions not installed here in another process, which the pickle format cannot do '
        f'(unpickling rebuilds every object from the class installed here):\n{lines}\n'
        f'Save the model in YAML (fmt="yaml") where the saved versions are installed, and load '
        f'that file; or install the saved versions here')


def read_header(path_or_stream: Any) -> dict[str, Any]:
    """The header of a saved model (format, Python, classes with distributions and versions)."""
    source, data, _ = _read_source(path_or_stream)
    if data.startswith(PICKLE_MAGIC):
        header, _ = _split_pickle(data, source)
    else:
        _, header = _yaml_header(data, source)
    check_structure(header, source)
    return header


def _read_source(target: Any) -> tuple[str, bytes, Archive | None]:
    """(name for messages, the model bytes, the archive holding files if any)."""
    if isinstance(target, (str, os.PathLike)):
        path = os.fspath(target)
        if os.path.isdir(path):
            archive = Archive(path, root=path)
            return path, archive.model_bytes(), archive
        try:
            with open(path, 'rb') as fh:
                data = fh.read()
        except FileNotFoundError:
            raise PersistenceError(f'{path}: no such model file') from None
        except OSError as exc:
            raise PersistenceError(f'{path}: cannot read it: {exc}') from None
        source = path
    elif hasattr(target, 'read'):
        data = target.read()
        if isinstance(data, str):
            data = data.encode('utf-8')
        source = getattr(target, 'name', None) or '<stream>'
        source = str(source)
    else:
        raise TypeError(f'load: expected a path or a readable stream, got '
                        f'{describe_value(target)}')
    if not data:
        raise PersistenceError(f'{source}: empty file (expected an openmdao_like model)')
    if data.startswith(_ZIP_MAGIC):
        try:
            archive = Archive(source, zf=zipfile.ZipFile(io.BytesIO(data)))
        except zipfile.BadZipFile as exc:
            raise PersistenceError(f'{source}: damaged or truncated zip archive: {exc}') \
                from None
        return source, archive.model_bytes(), archive
    return source, data, None


def _split_pickle(data: bytes, source: str) -> tuple[Any, bytes]:
    end = data.find(b'\n', len(PICKLE_MAGIC))
    if end < 0:
        raise PersistenceError(f'{source}: truncated: the header line is incomplete')
    try:
        header = json.loads(data[len(PICKLE_MAGIC):end])
    except ValueError as exc:
        raise PersistenceError(f'{source}: the header line is not valid JSON: {exc}') from None
    payload = data[end + 1:]
    info = header.get('payload') if isinstance(header, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get('bytes'), int):
        raise PersistenceError(f'{source}: header: expected payload {{bytes, sha256}}')
    if len(payload) != info['bytes']:
        raise PersistenceError(f'{source}: truncated: the header announces {info["bytes"]} '
                               f'bytes of model data, the file holds {len(payload)}')
    if hashlib.sha256(payload).hexdigest() != info.get('sha256'):
        raise PersistenceError(f'{source}: the model data is corrupted (its sha256 does not '
                               f'match the header)')
    return header, payload


def _unpickle(payload: bytes, source: str) -> Any:
    import pickle
    try:
        return pickle.loads(payload)
    except PersistenceError as exc:  # raised by an object's own unpickling, naming it
        raise PersistenceError(f'{source}: {exc}') from exc
    except Exception as exc:
        raise PersistenceError(f'{source}: cannot unpickle the model: {type(exc).__name__}: '
                               f'{exc}') from exc


def _yaml_header(data: bytes, source: str) -> tuple[Any, Any]:
    from .yaml_io import load_documents
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise PersistenceError(f'{source}: not an openmdao_like model file (neither the pickle '
                               f'format, a zip archive nor UTF-8 YAML)') from None
    docs = load_documents(text, source)
    return docs, _next_document(docs, source, 'header')


def _yaml_model(docs: Any, data: bytes, source: str) -> Any:
    model = _next_document(docs, source, 'model')
    if not data.rstrip().endswith(b'\n...'):
        raise PersistenceError(f'{source}: truncated: the model document does not end with '
                               f'the "..." line that closes every saved model')
    return model


def _next_document(docs: Any, source: str, what: str) -> Any:
    import yaml
    try:
        return next(docs)
    except StopIteration:
        raise PersistenceError(f'{source}: truncated: no {what} document') from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f'line {mark.line + 1}, column {mark.column + 1}' if mark else 'unknown place'
        raise PersistenceError(f'{source}: malformed YAML at {where}: '
                               f'{exc.problem or exc.context}') from None
    except yaml.YAMLError as exc:
        raise PersistenceError(f'{source}: malformed YAML: {exc}') from None


def _check_creatable(rows: list[dict[str, Any]], creators: dict, source: str) -> None:
    """Every class of the header can be found here (before anything is built); else an error
    naming the first that cannot, the line of the header that lists it, and the others."""
    missing = []
    for row in rows:
        if row['class'] in creators:
            continue
        try:
            find_class_for_file(row['class'])
        except NameError as exc:
            missing.append((row, exc))
    if not missing:
        return
    row, exc = missing[0]
    line = line_of(row)
    dist = row.get('distribution')
    where = f'{source}: line {line}' if line else source
    need = (f'install distribution {dist} {row.get("version")} ({exc})' if dist else
            f'it was saved from a module that no distribution provides: {exc}')
    others = ''
    if len(missing) > 1:
        others = f' (nor can {", ".join(r["class"] for r, _ in missing[1:])})'
    raise PersistenceError(f'{where}: header: class {row["class"]!r} cannot be found here{others}'
                           f'; {need}') from exc


__all__ = ['save', 'load', 'read_header', 'FORMATS', 'FORMAT']
