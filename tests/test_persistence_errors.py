"""Bad model files and models that a format cannot hold: each a clear error naming the file,
the place in it, what was expected and what was found. Loading never runs code from YAML."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

import persist_models as pm
from openmdao_like import Assembly, Component, Float, load, set_as_top
from openmdao_like.errors import (PathError, PersistenceError, VersionMismatchError,
                                  VersionMismatchWarning)
from openmdao_like.persistence import register_version_policy


def saved_yaml(tmp_path: Path, obj=None) -> Path:
    if obj is None:
        obj = set_as_top(Assembly())
        obj.add('p', pm.Paraboloid())
        obj.driver.workflow.add('p')
    path = tmp_path / 'model.yaml'
    obj.save(path)
    return path


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f'{old!r} not in the saved model'
    path.write_text(text.replace(old, new, 1))
    return path


# -- formats and files ---------------------------------------------------------------------------
def test_unknown_format(tmp_path):
    with pytest.raises(PersistenceError, match=r"unknown format 'json'; expected one of "
                                               r"'pickle', 'yaml'"):
        set_as_top(Assembly()).save(tmp_path / 'm.json', fmt='json')


def test_missing_file(tmp_path):
    with pytest.raises(PersistenceError, match=r'nope\.yaml: no such model file'):
        load(tmp_path / 'nope.yaml')


def test_empty_file(tmp_path):
    (tmp_path / 'empty.yaml').write_text('')
    with pytest.raises(PersistenceError, match='empty file'):
        load(tmp_path / 'empty.yaml')


def test_not_a_model_file(tmp_path):
    (tmp_path / 'other.yaml').write_text('name: something else\n')
    with pytest.raises(PersistenceError, match='not an openmdao_like model file .*'
                                               'openmdao_like_model: 1'):
        load(tmp_path / 'other.yaml')
    (tmp_path / 'binary.bin').write_bytes(b'\xff\xfe\x00binary')
    with pytest.raises(PersistenceError, match='not an openmdao_like model file'):
        load(tmp_path / 'binary.bin')


def test_a_newer_format_asks_for_an_upgrade(tmp_path):
    path = edit(saved_yaml(tmp_path), 'openmdao_like_model: 1', 'openmdao_like_model: 7')
    with pytest.raises(PersistenceError, match='model format 7 .* reads formats up to 1: '
                                               'upgrade it'):
        load(path)


@pytest.mark.parametrize('keep', [0.3, 0.9, 0.999])
def test_truncated_pickle(tmp_path, keep):
    path = tmp_path / 'm.pkl'
    set_as_top(pm.Chain(n=4)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(PersistenceError, match='truncated'):
        load(path)


def test_corrupted_pickle(tmp_path):
    path = tmp_path / 'm.pkl'
    set_as_top(pm.Chain(n=4)).save(path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PersistenceError, match='corrupted'):
        load(path)


def test_truncated_yaml(tmp_path):
    path = saved_yaml(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(''.join(lines[:-3]))  # still valid YAML, but cut short
    with pytest.raises(PersistenceError, match=r'truncated: the model document does not end '
                                               r'with the "\.\.\." line'):
        load(path)
    header_only = ''.join(lines[:lines.index('---\n', 3)])
    path.write_text(header_only)
    with pytest.raises(PersistenceError, match='truncated: no model document'):
        load(path)


def test_malformed_yaml_names_the_line(tmp_path):
    path = saved_yaml(tmp_path)
    text = path.read_text().splitlines()
    bad = next(i for i, line in enumerate(text) if line.strip().startswith('x:'))
    text[bad] = text[bad].replace('x:', 'x: [unclosed')
    path.write_text('\n'.join(text) + '\n')
    with pytest.raises(PersistenceError, match=rf'malformed YAML at line {bad + 2}, column'):
        load(path)


def test_damaged_zip(tmp_path):
    top = set_as_top(Assembly())
    top.save(tmp_path / 'm.zip', include_files=True)
    data = (tmp_path / 'm.zip').read_bytes()
    (tmp_path / 'm.zip').write_bytes(data[:len(data) // 2])
    with pytest.raises(PersistenceError, match='damaged or truncated zip'):
        load(tmp_path / 'm.zip')


def test_archive_without_a_model(tmp_path):
    (tmp_path / 'dir').mkdir()
    with pytest.raises(PersistenceError, match='no model in it'):
        load(tmp_path / 'dir')


# -- what YAML refuses to create -----------------------------------------------------------------
def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / 'pwned'
    path = edit(saved_yaml(tmp_path), 'x: 0.0',
                f'x: !!python/object/apply:os.system ["touch {marker}"]')
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if 'python/' in text)
    with pytest.raises(PersistenceError, match=rf'model.yaml: line {line}: the tag '
                                               r'!!python/object/apply:os.system is refused: '
                                               r'model files never run code'):
        load(path)
    assert not marker.exists()


def _add_header_row(path: Path, name: str) -> Path:
    return edit(path, 'classes:\n', f'classes:\n- class: {name}\n  distribution: null\n'
                                     f'  version: null\n')


def test_object_of_a_non_model_type_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = edit(saved_yaml(tmp_path), 'x: 0.0', 'x: !object '
                f'{{class: subprocess.Popen, args: {{args: [touch, "{marker}"]}}}}')
    with pytest.raises(PersistenceError, match=r"p.x: object class 'subprocess.Popen' is not "
                                               r"listed in the header"):
        load(path)
    _add_header_row(path, 'subprocess.Popen')
    with pytest.raises(PersistenceError, match=r"p.x: object class 'subprocess.Popen' is a "
                                               r"subprocess.Popen, not a model type"):
        load(path)
    assert not marker.exists()


def test_node_class_must_be_a_model_object(tmp_path):
    path = saved_yaml(tmp_path)
    path.write_text(path.read_text().replace('persist_models.Paraboloid',
                                             'collections.OrderedDict'))
    with pytest.raises(PersistenceError, match=r"p: class 'collections.OrderedDict' is a "
                                               r"collections.OrderedDict, not a Container"):
        load(path)


def test_a_file_may_not_import_standard_library_modules(tmp_path):
    path = saved_yaml(tmp_path)
    path.write_text(path.read_text().replace('persist_models.Paraboloid', 'this.Nothing'))
    with pytest.raises(PersistenceError, match=r"class 'this.Nothing' .*would import the "
                                               r"standard-library module 'this'"):
        load(path)
    assert 'this' not in __import__('sys').modules


def test_a_class_no_factory_can_create_names_the_distribution(tmp_path):
    path = saved_yaml(tmp_path)
    text = path.read_text().replace('persist_models.Paraboloid', 'gone_plugin.Paraboloid')
    text = text.replace('- class: gone_plugin.Paraboloid\n  distribution: null\n  version: null',
                        '- class: gone_plugin.Paraboloid\n  distribution: openmdao_like\n'
                        '  version: 0.1.0')
    path.write_text(text)
    with pytest.raises(PersistenceError, match=r"model.yaml: line \d+: header: class "
                                               r"'gone_plugin.Paraboloid' cannot be found here; "
                                               r"install distribution openmdao_like 0.1.0"):
        load(path)


def test_a_class_from_no_distribution_says_to_make_it_importable(tmp_path):
    path = saved_yaml(tmp_path)
    path.write_text(path.read_text().replace('persist_models.Paraboloid', 'gone.Paraboloid'))
    with pytest.raises(PersistenceError, match=r"'gone.Paraboloid' cannot be found here; it was "
                                               r"saved from a module that no distribution "
                                               r"provides: ImportError: no module named 'gone'; "
                                               r"is its module importable\?"):
        load(path)


def test_a_file_reference_escaping_the_model_directory_is_refused(tmp_path):
    top = set_as_top(Assembly(), str(tmp_path))
    top.add('e', pm.Everything())
    path = saved_yaml(tmp_path, top)
    for bad in ('../../etc/passwd', '/etc/passwd', 'a/../../b'):
        edit(path, 'report: !file {path: report.txt}', f'report: !file {{path: "{bad}"}}')
        with pytest.raises(PathError, match=rf"e.report: file reference '{bad}' escapes the "
                                            rf"model directory"):
            load(path, directory=tmp_path / 'new')
        path = saved_yaml(tmp_path, top)


def test_a_zip_entry_escaping_the_model_directory_is_refused(tmp_path):
    set_as_top(Assembly()).save(tmp_path / 'm.zip', include_files=True)
    with zipfile.ZipFile(tmp_path / 'm.zip', 'a') as zf:
        zf.writestr('files/../../evil.txt', 'x')
    with pytest.raises(PathError, match=r"file entry '../../evil.txt' escapes the model "
                                        r"directory"):
        load(tmp_path / 'm.zip', directory=tmp_path / 'new')
    assert not (tmp_path / 'evil.txt').exists() and not (tmp_path.parent / 'evil.txt').exists()


def test_saving_a_file_outside_the_model_directory_is_refused(tmp_path):
    top = set_as_top(Assembly(), str(tmp_path / 'model'))
    comp = top.add('e', pm.Everything())
    (tmp_path / 'outside.txt').write_text('x')
    from openmdao_like import FileRef
    comp.report = FileRef(str(tmp_path / 'outside.txt'))
    with pytest.raises(PathError, match=r"e.report: file .*outside.txt' is outside the model "
                                        r"directory"):
        top.save(tmp_path / 'saved', include_files=True)


@pytest.mark.parametrize('old, new, message', [
    ('    class: persist_models.Paraboloid\n', '    class: persist_models.Paraboloid\n'
     '    colour: blue\n', r"p: unknown key 'colour'"),
    ('x: 0.0', 'z: 0.0', r"p.z: Paraboloid has no variable 'z' \(variables: f_xy, x, y\)"),
    ('x: 0.0', 'x: 99.0', r'p.x: p.x: expected a float in \[-50.0, 50.0\], got 99.0'),
    ('x: 0.0', 'x: hello', r"p.x: .*got 'hello'"),
    ('members: [p]', 'members: [q]', r"driver: .*'q'"),
])
def test_bad_content_names_the_place(tmp_path, old, new, message):
    path = edit(saved_yaml(tmp_path), old, new)
    with pytest.raises(PersistenceError, match=message) as info:
        load(path).run()
    assert str(path) in str(info.value)


# -- what YAML cannot write ----------------------------------------------------------------------
def test_classes_that_cannot_be_imported_by_name_need_pickle(tmp_path):
    class Local(Component):
        x = Float(0.0, iotype='in')

        def execute(self):
            pass

    top = set_as_top(Assembly())
    top.add('c', Local())
    with pytest.raises(PersistenceError, match=r'c: class .*Local .*cannot be imported by name'
                                               r'.*save with fmt="pickle"'):
        top.save(tmp_path / 'm.yaml')
    top.save(tmp_path / 'm.pkl')
    assert type(load(tmp_path / 'm.pkl').c).__name__ == 'Local'


def test_functions_in_settings_need_pickle(tmp_path):
    from openmdao_like.drivers import DOEDriver
    top = set_as_top(Assembly())
    top.add('p', pm.Paraboloid())
    top.add('driver', DOEDriver(generator=lambda params: iter([{'p.x': 1.0}])))
    top.driver.workflow.add('p')
    with pytest.raises(PersistenceError, match=r'driver.generator: cannot write .*function.* in '
                                               r'YAML.*save with fmt="pickle"'):
        top.save(tmp_path / 'm.yaml')
    assert not (tmp_path / 'm.yaml').exists()


# -- versions ------------------------------------------------------------------------------------
def _fake_versions(path: Path, dist: str, version: str) -> Path:
    """Pretend persist_models.Paraboloid came from ``dist`` at ``version``."""
    return edit(path, '- class: persist_models.Paraboloid\n  distribution: null\n  version: null',
                f'- class: persist_models.Paraboloid\n  distribution: {dist}\n'
                f"  version: '{version}'")


def test_version_mismatch_lists_class_distribution_saved_and_installed(tmp_path):
    import numpy
    path = _fake_versions(saved_yaml(tmp_path), 'numpy', '0.0.1')
    with pytest.raises(VersionMismatchError) as info:
        load(path)
    message = str(info.value)
    assert f'persist_models.Paraboloid: distribution numpy saved at version 0.0.1, installed ' \
           f'here: {numpy.__version__}' in message
    assert 'on_version_mismatch="warn"' in message
    (mismatch,) = info.value.mismatches
    assert (mismatch.class_name, mismatch.distribution, mismatch.saved, mismatch.installed) == \
        ('persist_models.Paraboloid', 'numpy', '0.0.1', numpy.__version__)


def test_a_missing_distribution_is_a_mismatch(tmp_path):
    path = _fake_versions(saved_yaml(tmp_path), 'no-such-distribution', '1.0')
    with pytest.raises(VersionMismatchError, match=r'distribution no-such-distribution saved at '
                                                   r'version 1.0, installed here: not installed'):
        load(path)


def test_warn_loads_anyway(tmp_path):
    path = _fake_versions(saved_yaml(tmp_path), 'numpy', '0.0.1')
    with pytest.warns(VersionMismatchWarning, match='numpy saved at version 0.0.1'):
        top = load(path, on_version_mismatch='warn')
    top.run()
    assert top.p.f_xy == 22.0


def test_pickle_checks_versions_too(tmp_path):
    top = set_as_top(Assembly())
    top.add('p', pm.Paraboloid())
    top.save(tmp_path / 'm.pkl')
    data = (tmp_path / 'm.pkl').read_bytes()
    first, header, payload = data.split(b'\n', 2)
    meta = json.loads(header)
    for row in meta['classes']:
        if row['class'] == 'persist_models.Paraboloid':
            row.update(distribution='numpy', version='0.0.1')
    (tmp_path / 'm.pkl').write_bytes(first + b'\n' + json.dumps(meta).encode() + b'\n' + payload)
    with pytest.raises(VersionMismatchError, match='numpy saved at version 0.0.1'):
        load(tmp_path / 'm.pkl')
    with pytest.warns(VersionMismatchWarning):
        assert type(load(tmp_path / 'm.pkl', on_version_mismatch='warn').p) is pm.Paraboloid


def test_unknown_policy(tmp_path):
    with pytest.raises(ValueError, match=r"on_version_mismatch must be one of 'error', "
                                         r"(.*, )?'warn' \(or a callable\), got 'bogus'"):
        load(saved_yaml(tmp_path), on_version_mismatch='bogus')


def test_a_registered_policy_creates_the_mismatched_classes(tmp_path):
    """The hook the remote layer uses: a policy returns creators for the classes it serves."""
    calls = []

    def elsewhere(mismatches, source):
        calls.append([m.class_name for m in mismatches])

        def creator(typname, version, ctor_args):
            calls.append((typname, version, ctor_args))
            return pm.Paraboloid(**ctor_args)
        return {m.class_name: creator for m in mismatches}

    register_version_policy('test-elsewhere', elsewhere)
    path = _fake_versions(saved_yaml(tmp_path), 'numpy', '0.0.1')
    top = load(path, on_version_mismatch='test-elsewhere')
    assert calls == [['persist_models.Paraboloid'], ('persist_models.Paraboloid', '0.0.1', {})]
    assert type(top.p) is pm.Paraboloid
    with pytest.raises(TypeError, match='policy must be callable'):
        register_version_policy('bad', 'not callable')


def test_bad_arguments():
    with pytest.raises(TypeError, match='save: expected a Component'):
        from openmdao_like.persistence import save
        save(object(), io.BytesIO())
    with pytest.raises(TypeError, match='load: expected a path or a readable stream'):
        load(42)
    with pytest.raises(TypeError, match=r"fmt='pickle' writes bytes; give a binary stream"):
        set_as_top(Assembly()).save(io.StringIO(), fmt='pickle')


def test_an_unpicklable_value_is_named(tmp_path):
    import threading
    top = set_as_top(Assembly())
    comp = top.add('e', pm.Everything())
    comp.klass = {'lock': threading.Lock()}
    with pytest.raises(PersistenceError, match=r"e.klass: cannot be pickled: TypeError: "
                                               r"cannot pickle '_thread.lock' object"):
        top.save(tmp_path / 'm.pkl')
    assert not (tmp_path / 'm.pkl').exists()
