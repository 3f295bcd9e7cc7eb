// The model view of openmdao_like: the component tree, the N2 matrix, the connection table and
// the drivers (XDSM-like), drawn from the JSON in #model-data. No library, no network.
'use strict';
(function () {
  const t0 = performance.now();
  const data = JSON.parse(document.getElementById('model-data').textContent);
  const nodes = data.nodes;
  const conns = data.connections;
  const SVG = 'http://www.w3.org/2000/svg';
  const XDSM_MAX = 60;  // largest workflow drawn as an XDSM diagram

  nodes.forEach(function (n, i) { n.index = i; n.children = []; n.matched = false; });
  nodes.forEach(function (n) { if (n.parent !== null) nodes[n.parent].children.push(n.index); });
  const byPath = new Map(nodes.map(function (n) { return [n.path, n]; }));
  const collapsed = new Set();   // assemblies shown as one row of the matrix
  const boundary = new Set();    // assemblies whose own variables are connected: a row each
  conns.forEach(function (c) {
    [c.src_node, c.dest_node].forEach(function (p) {
      const n = byPath.get(p);
      if (n.kind === 'assembly') boundary.add(n.index);
    });
  });

  // -- small DOM helpers ----------------------------------------------------------------------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function table(headers, rows, rowAttrs) {
    const body = rows.map(function (cells, i) {
      return el('tr', rowAttrs ? rowAttrs(i) : null, cells.map(function (c) {
        return c instanceof Node ? el('td', null, [c]) : el('td', { text: fmt(c) });
      }));
    });
    return el('table', null, [el('tr', null, headers.map(function (h) {
      return el('th', { text: h });
    }))].concat(body));
  }
  function fmt(v) { return v === null || v === undefined ? '-' : String(v); }
  function label(n) { return n.path || n.name || data.top; }
  function depth(n) { let d = 0; for (let p = n.parent; p !== null; p = nodes[p].parent) d++; return d; }
  function within(path, prefix) { return path === prefix || path.startsWith(prefix + '.'); }
  function unitsText(u) { return u || '(none)'; }
  function conversion(c) {
    if (c.scale === 1 && c.offset === 0) return '';
    let text = '× ' + Number(c.scale.toPrecision(6));
    if (c.offset) text += (c.offset > 0 ? ' + ' : ' − ') + Number(Math.abs(c.offset).toPrecision(6));
    return text;
  }
  function connClass(c) {
    if (conversion(c)) return 'conv';
    return (!c.src_units) !== (!c.dest_units) ? 'unitless' : '';
  }
  function hostOf(path) { const n = byPath.get(path); return n ? n.host : null; }

  // -- the tree --------------------------------------------------------------------------------
  const liOf = [];
  function buildTree() {
    function item(n) {
      const li = el('li', { 'class': 'kind-' + n.kind, 'data-path': n.path, 'data-kind': n.kind });
      const toggle = el('span', { 'class': 'toggle', text: n.children.length ? '▾' : '' });
      const name = el('span', { 'class': 'label', text: n.name || data.top });
      li.append(toggle, name, el('span', { 'class': 'type', text: n.type }));
      if (n.host) li.appendChild(el('span', { 'class': 'host', text: n.host, title: 'runs on ' + n.host }));
      if (n.children.length) li.appendChild(el('ul', null, n.children.map(function (i) { return item(nodes[i]); })));
      liOf[n.index] = li;
      return li;
    }
    const root = el('ul', { 'class': 'tree' }, [item(nodes[0])]);
    root.addEventListener('click', function (ev) {
      const li = ev.target.closest('li');
      if (!li) return;
      const n = byPath.get(li.dataset.path);
      if (ev.target.classList.contains('toggle')) toggle(n);
      else if (ev.target.classList.contains('label')) select(n);
    });
    document.getElementById('tree').appendChild(root);
  }

  function toggle(n) {
    if (!n.children.length) return;
    const li = liOf[n.index];
    const closing = !li.classList.contains('closed');
    li.classList.toggle('closed', closing);
    li.firstChild.textContent = closing ? '▸' : '▾';
    if (n.kind === 'assembly' && n.index !== 0) {
      if (closing) collapsed.add(n.index); else collapsed.delete(n.index);
      drawMatrix();
    }
  }

  // -- the N2 matrix ---------------------------------------------------------------------------
  let rows = [], rowIndex = new Map(), cells = [];
  function visibleRows() {
    const out = [];
    (function walk(i) {
      const n = nodes[i];
      if (n.kind === 'driver') return;
      if (n.kind === 'assembly') {
        if (i !== 0 && collapsed.has(i)) { out.push(i); return; }
        if (boundary.has(i)) out.push(i);
        n.children.forEach(walk);
        return;
      }
      out.push(i);
    })(0);
    return out;
  }
  function rowNode(i) {
    let found = i;
    for (let p = nodes[i].parent; p !== null; p = nodes[p].parent) if (collapsed.has(p) && p !== 0) found = p;
    return found;
  }
  function drawMatrix() {
    rows = visibleRows();
    rowIndex = new Map(rows.map(function (i, r) { return [i, r]; }));
    const grouped = new Map();
    conns.forEach(function (c) {
      const r = rowIndex.get(rowNode(byPath.get(c.src_node).index));
      const k = rowIndex.get(rowNode(byPath.get(c.dest_node).index));
      if (r === undefined || k === undefined || r === k) return;
      const key = r + ',' + k;
      if (!grouped.has(key)) grouped.set(key, { row: r, col: k, conns: [] });
      grouped.get(key).conns.push(c);
    });
    cells = Array.from(grouped.values());
    const n = rows.length;
    const s = n <= 40 ? 26 : n <= 200 ? 16 : 11;
    const font = Math.min(12, s - 1);
    const labelWidth = Math.min(320, 24 + Math.max.apply(null, rows.map(function (i) {
      return depth(nodes[i]) * 10 + (nodes[i].name || data.top).length * font * 0.62;
    }).concat([40])));
    const size = n * s;
    const svg = svgEl('svg', { width: labelWidth + size + 2, height: size + 2, id: 'n2svg' });
    const defs = svgEl('defs', {});
    const pattern = svgEl('pattern', { id: 'grid', width: s, height: s, patternUnits: 'userSpaceOnUse' });
    pattern.appendChild(svgEl('path', { d: 'M ' + s + ' 0 L 0 0 0 ' + s, fill: 'none', stroke: '#e6e9ed' }));
    defs.appendChild(pattern);
    svg.appendChild(defs);
    svg.appendChild(svgEl('rect', { x: labelWidth, y: 0, width: size, height: size, fill: 'url(#grid)' }));
    const frag = document.createDocumentFragment();
    rows.forEach(function (i, r) {
      const node = nodes[i];
      const closed = node.kind === 'assembly' && collapsed.has(i);
      const text = svgEl('text', { x: 4 + depth(node) * 10, y: r * s + s * 0.7, 'class': 'rowlabel' + (node.matched ? ' match' : ''),
                                   'font-size': font, 'data-row': r });
      text.textContent = (node.name || data.top) + (closed ? ' ▸' : node.kind === 'assembly' ? ' (boundary)' : '');
      frag.appendChild(text);
      const rect = svgEl('rect', { x: labelWidth + r * s, y: r * s, width: s, height: s, 'data-row': r, 'data-path': node.path,
                                   'class': 'diag kind-' + node.kind + (node.host ? ' remote' : '') + (node.matched ? ' match' : '') });
      const title = svgEl('title', {});
      title.textContent = label(node) + ' (' + node.type + (node.host ? ', on ' + node.host : '') + ')';
      rect.appendChild(title);
      frag.appendChild(rect);
    });
    cells.forEach(function (cell, k) {
      const remote = cell.conns.some(function (c) { return hostOf(c.src_node) || hostOf(c.dest_node); });
      const conv = cell.conns.some(function (c) { return conversion(c); });
      const links = Array.from(new Set(cell.conns.map(function (c) { return c.link; })));
      const rect = svgEl('rect', {
        x: labelWidth + cell.col * s + 1, y: cell.row * s + 1, width: s - 2, height: s - 2, 'data-cell': k,
        'data-src': nodes[rows[cell.row]].path, 'data-dest': nodes[rows[cell.col]].path,
        'class': 'cell ' + direction(cell) + (conv ? ' conv' : '') + (remote ? ' remote' : '') +
                 ' link-' + (links.length === 1 ? links[0] : 'mixed') });
      const title = svgEl('title', {});
      title.textContent = cell.conns.length + ' connection(s): ' + cell.conns.slice(0, 4).map(function (c) {
        return c.src + ' → ' + c.dest;
      }).join(', ') + (cell.conns.length > 4 ? ', …' : '');
      rect.appendChild(title);
      frag.appendChild(rect);
    });
    const rowBand = svgEl('rect', { 'class': 'band', id: 'rowband', x: 0, y: 0, width: 0, height: 0 });
    const colBand = svgEl('rect', { 'class': 'band', id: 'colband', x: 0, y: 0, width: 0, height: 0 });
    svg.append(rowBand, colBand, frag);  // the bands under the cells
    svg.addEventListener('click', function (ev) {
      const t = ev.target.closest('[data-cell],[data-row]');
      if (!t) return;
      if (t.dataset.cell !== undefined) showCell(Number(t.dataset.cell), t);
      else select(nodes[rows[Number(t.dataset.row)]]);
    });
    matrix.s = s; matrix.labelWidth = labelWidth; matrix.size = size;
    const box = document.getElementById('n2');
    box.replaceChildren(svg, legend());
  }
  const matrix = {};
  // 'ff' data flowing down the order, 'fb' feedback, 'bd' between a sub-assembly's own
  // (boundary) variables and its children, whose rows follow it: neither order nor a loop.
  function direction(cell) {
    const a = nodes[rows[cell.row]], b = nodes[rows[cell.col]];
    const inside = function (outer, inner) {
      return outer.kind === 'assembly' && !collapsed.has(outer.index) && within(inner.path, outer.path);
    };
    if (inside(a, b) || inside(b, a)) return 'bd';
    return cell.row < cell.col ? 'ff' : 'fb';
  }
  function legend() {
    const items = [['#7fa7cf', 'component'], ['#9c8ec4', 'assembly'], ['#2f7dbd', 'remote'],
                   ['#6b7884', 'connection'], ['#c0392b', 'feedback'], ['#e08a16', 'unit conversion']];
    return el('p', { 'class': 'legend' }, items.map(function (it) {
      return el('span', null, [el('span', { 'class': 'swatch', style: 'background:' + it[0] }), document.createTextNode(it[1])]);
    }));
  }
  function highlight(r, c) {
    const s = matrix.s, lw = matrix.labelWidth;
    const rb = document.getElementById('rowband'), cb = document.getElementById('colband');
    rb.setAttribute('x', 0); rb.setAttribute('y', r * s); rb.setAttribute('width', lw + matrix.size); rb.setAttribute('height', s);
    cb.setAttribute('x', lw + c * s); cb.setAttribute('y', 0); cb.setAttribute('width', s); cb.setAttribute('height', matrix.size);
  }

  // -- details ---------------------------------------------------------------------------------
  const details = document.getElementById('details');
  function connTable(list) {
    return table(['source', 'target', 'source units', 'target units', 'conversion', 'link', 'runs on'],
      list.map(function (c) {
        const hosts = [hostOf(c.src_node), hostOf(c.dest_node)].filter(Boolean);
        return [c.src, c.dest, unitsText(c.src_units), unitsText(c.dest_units), conversion(c) || 'none',
                c.link, hosts.length ? hosts.join(' → ') : 'here'];
      }),
      function (i) { return { 'class': connClass(list[i]), 'data-src': list[i].src, 'data-dest': list[i].dest }; });
  }
  function markUnits(tableEl) {
    tableEl.querySelectorAll('tr').forEach(function (tr, i) {
      if (i) [2, 3, 4].forEach(function (k) { tr.children[k].classList.add('units'); });
    });
    return tableEl;
  }
  function showCell(k, rect) {
    const cell = cells[k];
    document.querySelectorAll('svg .cell.selected').forEach(function (e) { e.classList.remove('selected'); });
    rect.classList.add('selected');
    highlight(cell.row, cell.col);
    const src = nodes[rows[cell.row]], dest = nodes[rows[cell.col]];
    details.replaceChildren(
      el('h2', { text: label(src) + ' → ' + label(dest) }),
      el('p', { text: cell.conns.length + ' connection(s)' + (direction(cell) === 'fb' ? ', feeding back' : '') }),
      markUnits(connTable(cell.conns)));
    details.dataset.showing = 'cell';
  }
  function select(n) {
    document.querySelectorAll('.label.selected').forEach(function (e) { e.classList.remove('selected'); });
    liOf[n.index].querySelector('.label').classList.add('selected');
    const r = rowIndex.get(rowNode(n.index));
    if (r !== undefined) highlight(r, r);
    const sources = new Map(conns.map(function (c) { return [c.dest, c.src]; }));
    const parameters = new Map();
    data.drivers.forEach(function (d) {
      d.parameters.forEach(function (p) { p.targets.forEach(function (t) { parameters.set(t, d.path); }); });
    });
    const prefix = n.path ? n.path + '.' : '';
    const varRows = n.vars.map(function (v) {
      const path = prefix + v.name;
      const src = sources.get(path) || (parameters.has(path) ? 'parameter of ' + parameters.get(path) : '');
      return [v.name, v.iotype || '', v.value, v.units || '', fmt(v.low === undefined ? null : v.low),
              fmt(v.high === undefined ? null : v.high), src, v.desc];
    });
    const parts = [el('h2', { text: label(n) }),
                   el('p', { text: n.type + ' (' + n.kind + ')' + (n.host ? ', runs on ' + n.host : '') })];
    if (varRows.length) parts.push(table(['variable', 'io', 'value', 'units', 'low', 'high', 'source', 'description'], varRows));
    else parts.push(el('p', { 'class': 'hint', text: 'no variables' }));
    const related = conns.filter(function (c) { return within(c.src_node, n.path) || within(c.dest_node, n.path); });
    if (related.length && n.index !== 0) parts.push(el('h3', { text: 'connections' }), markUnits(connTable(related)));
    details.replaceChildren.apply(details, parts);
    details.dataset.showing = n.path;
  }

  // -- connections tab -------------------------------------------------------------------------
  function buildConnections() {
    const tab = document.getElementById('tab-connections');
    const converted = conns.filter(function (c) { return conversion(c); }).length;
    const unitless = conns.filter(function (c) { return connClass(c) === 'unitless'; }).length;
    tab.append(el('h2', { text: conns.length + ' connections' }),
               el('p', { text: converted + ' with a unit conversion (orange), ' + unitless +
                               ' between a variable with units and one without (yellow)' }),
               markUnits(connTable(conns)));
    tab.querySelector('table').id = 'connection-table';
  }

  // -- drivers tab -----------------------------------------------------------------------------
  function buildDrivers() {
    const tab = document.getElementById('tab-drivers');
    const driverOf = new Map(data.drivers.map(function (d) { return [d.path, d]; }));
    function covers(path, seen) {
      const d = driverOf.get(path);
      if (!d) return [path];
      if (seen.has(path)) return [];
      seen.add(path);
      return [].concat.apply([], d.workflow.map(function (w) { return covers(w, seen); }));
    }
    function inside(path, prefixes) { return prefixes.some(function (p) { return within(path, p); }); }
    if (!data.drivers.length) tab.appendChild(el('p', { text: 'no drivers' }));
    data.drivers.forEach(function (d) {
      const sec = el('section', { 'class': 'driver', 'data-driver': d.path });
      sec.appendChild(el('h2', { text: d.path + ' (' + d.type + ')' }));
      sec.appendChild(el('p', { text: 'workflow: ' + (d.workflow.join(', ') || '(empty)') }));
      const items = [d.path].concat(d.workflow);
      if (items.length > XDSM_MAX + 1) {
        sec.appendChild(el('p', { 'class': 'hint', text: 'a workflow of ' + d.workflow.length +
          ' items: the diagram is drawn for up to ' + XDSM_MAX + '; the N2 matrix shows its connections' }));
      } else {
        const areas = items.map(function (p, i) { return i ? covers(p, new Set()) : []; });
        const grid = el('div', { 'class': 'xdsm', style: 'grid-template-columns: repeat(' + items.length + ', minmax(90px, 260px))' });
        function put(r, c, cls, text) {
          grid.appendChild(el('div', { 'class': cls, style: 'grid-row:' + (r + 1) + ';grid-column:' + (c + 1), text: text }));
        }
        items.forEach(function (p, i) {
          put(i, i, 'box' + (i === 0 || driverOf.has(p) ? ' driver' : ''), i ? p.split('.').pop() : d.path.split('.').pop());
          if (!i) return;
          const params = d.parameters.filter(function (q) { return q.targets.some(function (t) { return inside(t, areas[i]); }); });
          if (params.length) put(0, i, 'data', params.map(function (q) { return q.name; }).join(', '));
          const outs = new Set();
          d.objectives.concat(d.constraints, d.responses).forEach(function (e) {
            e.refs.forEach(function (ref) { if (inside(ref, areas[i])) outs.add(ref); });
          });
          if (outs.size) put(i, 0, 'data up', Array.from(outs).join(', '));
          items.forEach(function (q, j) {
            if (!j || j === i) return;
            const flow = conns.filter(function (c) { return inside(c.src_node, areas[i]) && inside(c.dest_node, areas[j]); });
            if (flow.length) put(i, j, 'data' + (i > j ? ' up' : ''), flow.map(function (c) { return c.dest; }).join(', '));
          });
        });
        sec.appendChild(grid);
      }
      if (d.parameters.length) sec.append(el('h3', { text: 'parameters' }), table(['name', 'targets', 'low', 'high'],
        d.parameters.map(function (p) { return [p.name, p.targets.join(', '), p.low, p.high]; })));
      [['objectives', d.objectives], ['constraints', d.constraints], ['responses', d.responses]].forEach(function (g) {
        if (g[1].length) sec.append(el('h3', { text: g[0] }), table(['name', 'expression', 'reads'],
          g[1].map(function (e) { return [e.name, e.text, e.refs.join(', ')]; })));
      });
      tab.appendChild(sec);
    });
  }

  // -- search ----------------------------------------------------------------------------------
  function search(query) {
    const q = query.trim().toLowerCase();
    nodes.forEach(function (n) {
      n.matched = !!q && (label(n).toLowerCase().includes(q) ||
                          n.vars.some(function (v) { return v.name.toLowerCase().includes(q); }));
    });
    const visible = new Set();
    nodes.forEach(function (n) {
      if (!n.matched) return;
      for (let i = n.index; i !== null && !visible.has(i); i = nodes[i].parent) visible.add(i);
    });
    nodes.forEach(function (n) {
      const li = liOf[n.index];
      li.classList.toggle('hidden', !!q && !visible.has(n.index));
      li.classList.toggle('match', n.matched);
      if (q && visible.has(n.index) && li.classList.contains('closed') && !n.matched) toggle(n);
    });
    document.querySelectorAll('#connection-table tr[data-src]').forEach(function (tr) {
      const hit = !q || tr.dataset.src.toLowerCase().includes(q) || tr.dataset.dest.toLowerCase().includes(q);
      tr.classList.toggle('hidden', !hit);
    });
    document.querySelectorAll('#n2svg [data-row]').forEach(function (e) {
      e.classList.toggle('match', nodes[rows[Number(e.dataset.row)]].matched);
    });
    const count = nodes.filter(function (n) { return n.matched; }).length;
    document.getElementById('matches').textContent = q ? count + ' of ' + nodes.length + ' match' : '';
    return count;
  }

  // -- tabs and start --------------------------------------------------------------------------
  document.getElementById('tabs').addEventListener('click', function (ev) {
    const name = ev.target.dataset.tab;
    if (!name) return;
    document.querySelectorAll('#tabs button').forEach(function (b) { b.classList.toggle('active', b === ev.target); });
    document.querySelectorAll('.tab').forEach(function (s) { s.classList.toggle('active', s.id === 'tab-' + name); });
  });
  let pending = null;
  document.getElementById('search').addEventListener('input', function (ev) {
    clearTimeout(pending);
    pending = setTimeout(function () { search(ev.target.value); }, nodes.length > 300 ? 120 : 0);
  });
  const components = nodes.filter(function (n) { return n.kind !== 'driver'; }).length - 1;
  document.getElementById('counts').textContent = components + ' components, ' + conns.length +
    ' connections, ' + data.drivers.length + ' drivers';
  buildTree();
  drawMatrix();
  buildConnections();
  buildDrivers();
  window.modelView = {
    data: data, search: search,
    select: function (path) { select(byPath.get(path)); },
    toggle: function (path) { toggle(byPath.get(path)); },
    rows: function () { return rows.map(function (i) { return nodes[i].path; }); },
    renderMs: performance.now() - t0
  };
  document.body.dataset.ready = 'true';
})();
