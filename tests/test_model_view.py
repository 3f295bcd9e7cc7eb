"""The model view (``write_model_view``, ``openmdao-like view``) opened in a real headless
chromium: no console errors, every component and connection in the page, a matrix cell shows
its connections' units, search narrows the tree, sub-assemblies collapse, remote components
show their host, a 1,000-component chain is drawn; screenshots under each test's temp dir."""

from __future__ import annotations

import json
import re

import pytest

from selenium.webdriver.support.wait import WebDriverWait

from browser import console_errors, open_page, save_screenshot
from openmdao_like import Assembly, Component, Str, set_as_top, tree
from openmdao_like.view import describe_model, model_view_html, write_model_view
from view_models import Aircraft, chain


@pytest.fixture(scope='module')
def aircraft():
    return set_as_top(Aircraft())


@pytest.fixture
def aircraft_page(browser, aircraft, tmp_path):
    """The aircraft's view, open in the browser."""
    path = write_model_view(aircraft, tmp_path / 'aircraft.html')
    open_page(browser, path)
    return path


def find(browser, css):
    return browser.find_elements('css selector', css)


def visible_tree_paths(browser):
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#tree li'))"
        ".filter(li => li.offsetParent !== null).map(li => li.dataset.path)")


def test_the_description_holds_units_conversions_and_drivers(aircraft):
    model = describe_model(aircraft)
    paths = [node['path'] for node in model['nodes']]
    assert paths == ['', 'wing', 'body', 'trim', 'engine', 'engine.driver', 'engine.core',
                     'solver', 'driver']
    conns = {c['dest']: c for c in model['connections']}
    assert len(conns) == 8
    length = conns['body.length_ft']
    assert (length['src'], length['src_units'], length['dest_units']) == ('wing.length', 'm',
                                                                          'ft')
    assert length['scale'] == pytest.approx(3.28084, rel=1e-5) and length['offset'] == 0
    temp = conns['body.temp_f']
    assert temp['link'] == 'pull'
    assert (temp['scale'], temp['offset']) == (pytest.approx(1.8), pytest.approx(32.0))
    assert conns['engine.core.lift']['src'] == 'engine.thrust_in'       # inside the engine
    assert conns['engine.core.lift']['src_node'] == 'engine'
    driver = next(d for d in model['drivers'] if d['path'] == 'driver')
    assert driver['workflow'] == ['solver', 'engine']
    assert driver['parameters'] == [{'name': 'wing.temp', 'targets': ['wing.temp'],
                                     'low': -40.0, 'high': 40.0}]
    assert driver['objectives'][0]['refs'] == ['body.drag', 'engine.thrust_out']
    span = next(v for v in model['nodes'][1]['vars'] if v['name'] == 'span')
    assert span == {'name': 'span', 'iotype': 'in', 'type': 'Float', 'units': 'm',
                    'desc': 'wing span', 'value': '10', 'data': 10.0, 'low': 1.0,
                    'high': 60.0}
    json.dumps(model, allow_nan=False)  # JSON as it is


def test_the_page_is_self_contained(aircraft):
    page = model_view_html(aircraft)
    assert '<script src' not in page and '<link rel="stylesheet"' not in page
    assert not re.search(r'''(?:src|href)=["']?(?:https?:)?//''', page), 'fetches from a host'
    assert 'fetch(' not in page and 'XMLHttpRequest' not in page


def test_every_component_and_connection_is_in_the_page(browser, aircraft, aircraft_page,
                                                       tmp_path):
    assert console_errors(browser) == []
    save_screenshot(browser, tmp_path, 'aircraft')
    in_tree = {li.get_attribute('data-path') for li in find(browser, '#tree li')}
    all_nodes = {tree.path(aircraft)}
    stack = [aircraft]
    while stack:
        node = stack.pop()
        for child in tree.children(node).values():
            all_nodes.add(tree.path(child))
            stack.append(child)
    assert in_tree == all_nodes
    rows = {(tr.get_attribute('data-src'), tr.get_attribute('data-dest'))
            for tr in find(browser, '#connection-table tr[data-src]')}
    assert rows == {(c['src'], c['dest']) for c in describe_model(aircraft)['connections']}
    # the N2 matrix: one diagonal cell per component row, off-diagonal cells per pair
    assert browser.execute_script('return window.modelView.rows()') == [
        'wing', 'body', 'trim', 'engine', 'engine.core']
    cells = {(c.get_attribute('data-src'), c.get_attribute('data-dest'))
             for c in find(browser, '#n2svg rect.cell')}
    assert cells == {('wing', 'body'), ('wing', 'engine'), ('body', 'trim'), ('trim', 'wing'),
                     ('engine', 'engine.core'), ('engine.core', 'engine')}
    kinds = {(c.get_attribute('data-src'), c.get_attribute('data-dest')):
             c.get_attribute('class').split()[1] for c in find(browser, '#n2svg rect.cell')}
    assert kinds == {('wing', 'body'): 'ff', ('wing', 'engine'): 'ff', ('body', 'trim'): 'ff',
                     ('trim', 'wing'): 'fb',                      # the loop the solver closes
                     ('engine', 'engine.core'): 'bd', ('engine.core', 'engine'): 'bd'}


def test_clicking_a_cell_shows_units_and_conversions(browser, aircraft_page, tmp_path):
    cell = find(browser, '#n2svg rect.cell[data-src="wing"][data-dest="body"]')[0]
    assert 'conv' in cell.get_attribute('class')
    cell.click()
    details = browser.find_element('id', 'details')
    rows = [[td.text for td in tr.find_elements('css selector', 'td')]
            for tr in details.find_elements('css selector', 'tr[data-src]')]
    assert ['wing.length', 'body.length_ft', 'm', 'ft', '× 3.28084', 'push', 'here'] in rows
    assert ['wing.t_out', 'body.temp_f', 'degC', 'degF', '× 1.8 + 32', 'pull', 'here'] in rows
    assert ['wing.lift', 'body.lift', 'N', 'N', 'none', 'push', 'here'] in rows
    converted = details.find_elements('css selector', 'tr.conv')
    assert {tr.get_attribute('data-dest') for tr in converted} == {'body.length_ft',
                                                                   'body.temp_f'}
    save_screenshot(browser, tmp_path, 'cell')
    assert console_errors(browser) == []


def test_clicking_a_component_shows_its_variables(browser, aircraft_page):
    label = [e for e in find(browser, '#tree li[data-path="body"] > .label')][0]
    label.click()
    text = browser.find_element('id', 'details').text
    assert 'body' in text and 'Fuselage' in text
    rows = {tr.find_elements('css selector', 'td')[0].text:
            [td.text for td in tr.find_elements('css selector', 'td')]
            for tr in browser.find_elements('css selector', '#details table:first-of-type tr')
            if tr.find_elements('css selector', 'td')}
    assert rows['length_ft'][:7] == ['length_ft', 'in', '1', 'ft', '-', '-', 'wing.length']
    assert rows['drag'][1] == 'out' and rows['drag'][3] == 'N'


def test_search_narrows_the_tree(browser, aircraft_page, tmp_path):
    everything = visible_tree_paths(browser)
    assert len(everything) == 9
    count = browser.execute_script("return window.modelView.search('core')")
    assert count == 1
    assert visible_tree_paths(browser) == ['', 'engine', 'engine.core']
    search_box = browser.find_element('id', 'search')
    browser.execute_script("window.modelView.search('')")
    search_box.send_keys('length')                  # by a variable's name, typed
    WebDriverWait(browser, 10).until(lambda b: visible_tree_paths(b) != everything)
    assert visible_tree_paths(browser) == ['', 'wing', 'body', 'engine', 'engine.core']
    assert browser.find_element('id', 'matches').text == '3 of 9 match'
    rows = find(browser, '#connection-table tr[data-src]')
    shown = [r.get_attribute('data-dest') for r in rows
             if 'hidden' not in r.get_attribute('class')]
    assert shown == ['body.length_ft']
    save_screenshot(browser, tmp_path, 'search')
    search_box.clear()
    browser.execute_script("window.modelView.search('')")
    assert visible_tree_paths(browser) == everything


def test_a_sub_assembly_collapses_into_one_row(browser, aircraft_page):
    find(browser, '#tree li[data-path="engine"] > .toggle')[0].click()
    assert browser.execute_script('return window.modelView.rows()') == [
        'wing', 'body', 'trim', 'engine']
    cells = {(c.get_attribute('data-src'), c.get_attribute('data-dest'))
             for c in find(browser, '#n2svg rect.cell')}
    assert ('engine', 'engine.core') not in cells and ('wing', 'engine') in cells
    assert 'core' not in visible_tree_paths(browser)
    find(browser, '#tree li[data-path="engine"] > .toggle')[0].click()
    assert 'engine.core' in browser.execute_script('return window.modelView.rows()')


def test_drivers_show_workflows_and_what_they_set_and_read(browser, aircraft_page, tmp_path):
    find(browser, '#tabs button[data-tab="drivers"]')[0].click()
    section = find(browser, 'section.driver[data-driver="driver"]')[0]
    text = section.text
    assert 'driver (ScipyOptimizer)' in text and 'workflow: solver, engine' in text
    assert 'body.drag + engine.thrust_out' in text and 'body.weight < 100' in text
    boxes = [b.text for b in section.find_elements('css selector', '.xdsm .box')]
    assert boxes == ['driver', 'solver', 'engine']
    data = [d.text for d in section.find_elements('css selector', '.xdsm .data')]
    assert 'wing.temp' in data                         # driver -> solver: its parameter
    assert any('body.drag' in d for d in data)         # solver -> driver: what it reads
    assert 'engine.thrust_in' in data                  # solver -> engine: a connection
    save_screenshot(browser, tmp_path, 'drivers')
    assert console_errors(browser) == []


HOSTILE = '</script><script>document.title="owned"</script><img src=x onerror=alert(1)>'


class Hostile(Component):
    """Markup in a description and in a value."""

    note = Str(HOSTILE, iotype='in', desc=HOSTILE)


def test_text_from_the_model_cannot_inject_markup(browser, tmp_path):
    class Model(Assembly):
        def configure(self):
            self.add('w', Hostile())
            self.driver.workflow.add('w')
    path = write_model_view(set_as_top(Model()), tmp_path / 'hostile.html',
                            title='<b>title</b>')
    open_page(browser, path)
    assert browser.title == '<b>title</b>'
    assert console_errors(browser) == []
    browser.execute_script("window.modelView.select('w')")
    cells = [td.text for td in find(browser, '#details tr td')]
    assert cells[2] == HOSTILE and cells[-1] == HOSTILE     # the value and the description
    assert find(browser, '#details img') == [] and find(browser, 'img') == []


def test_remote_components_show_their_host_and_link(browser, factory_a, factory_b, tmp_path):
    class Pair(Assembly):
        def configure(self):
            self.add('a', factory_a.create('remote_models.Scale', k=2.0))
            self.add('b', factory_b.create('remote_models.Scale', k=3.0))
            self.connect('a.y', 'b.x', link='rpush')
            self.driver.workflow.add(['a', 'b'])
    top = set_as_top(Pair())
    hosts = {name: '%s:%d' % tree.children(top)[name].address for name in ('a', 'b')}
    path = write_model_view(top, tmp_path / 'pair.html')
    open_page(browser, path)
    assert console_errors(browser) == []
    for name, host in hosts.items():
        badge = find(browser, f'#tree li[data-path="{name}"] > .host')[0]
        assert badge.text == host
        assert 'remote' in find(browser, f'#n2svg rect.diag[data-path="{name}"]')[0] \
            .get_attribute('class')
    cell = find(browser, '#n2svg rect.cell')[0]
    assert 'remote' in cell.get_attribute('class') and 'link-rpush' in cell.get_attribute(
        'class')
    cell.click()
    row = [td.text for td in find(browser, '#details tr[data-src] td')]
    assert row == ['a.y', 'b.x', '(none)', '(none)', 'none', 'rpush',
                   f'{hosts["a"]} → {hosts["b"]}']
    save_screenshot(browser, tmp_path, 'remote')


@pytest.mark.slow
def test_a_thousand_component_chain_is_drawn(browser, tmp_path):
    top = chain(1000)
    path = write_model_view(top, tmp_path / 'chain.html')
    seconds = open_page(browser, path)     # fails after READY_TIMEOUT: never asserts a time
    print(f'1,000-component chain drawn in {seconds:.2f} s ({path.stat().st_size:,} bytes)')
    assert console_errors(browser) == []
    assert len(find(browser, '#tree li')) == 1002          # the top, 1,000 stages, its driver
    assert len(find(browser, '#n2svg rect.diag')) == 1000
    assert len(find(browser, '#n2svg rect.cell.ff')) == 999
    assert len(find(browser, '#connection-table tr[data-src]')) == 999
    assert browser.execute_script("return window.modelView.search('c99')") == 11  # c99, c990..
    save_screenshot(browser, tmp_path, 'chain')
