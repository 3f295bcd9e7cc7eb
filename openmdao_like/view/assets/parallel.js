// Interactive parallel coordinates of recorded cases (openmdao_like.view.plots), drawn from
// the JSON in #parallel-data: drag along an axis to brush, click it to clear. No library.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('parallel-data').textContent);
  var NS = 'http://www.w3.org/2000/svg', n = data.axes.length;
  var M = {top: 50, bottom: 30, left: 70, right: 90}, H = 460;
  var W = Math.max(640, 160 * n), plotH = H - M.top - M.bottom;
  var plotW = W - M.left - M.right, brushes = {};
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmt(v) { return String(Number(v.toPrecision(4))); }
  var scales = data.axes.map(function (axis, k) {
    var vals = data.cases.map(function (c) { return c.values[k]; })
      .filter(function (v) { return v !== null; });
    var lo = vals.length ? Math.min.apply(null, vals) : 0;
    var hi = vals.length ? Math.max.apply(null, vals) : 1;
    if (lo === hi) { var pad = Math.abs(lo) * 0.1 || 0.5; lo -= pad; hi += pad; }
    return {lo: lo, hi: hi};
  });
  function xOf(k) { return M.left + (n === 1 ? plotW / 2 : k * plotW / (n - 1)); }
  function yOf(k, v) {
    var s = scales[k]; return M.top + (1 - (v - s.lo) / (s.hi - s.lo)) * plotH;
  }
  function valueAt(k, y) {
    var s = scales[k]; return s.lo + (1 - (y - M.top) / plotH) * (s.hi - s.lo);
  }
  var svg = el('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H},
               document.getElementById('chart'));
  var lineGroup = el('g', {'class': 'lines'}, svg);
  var order = data.cases.map(function (c, i) { return i; });
  order.sort(function (a, b) {  // failed cases drawn last, over the others
    return (data.cases[a].status === 'failed') - (data.cases[b].status === 'failed');
  });
  var lines = [];
  order.forEach(function (i) {
    var c = data.cases[i], points = [], tip = [];
    c.values.forEach(function (v, k) {
      if (v !== null) { points.push(xOf(k) + ',' + yOf(k, v)); }
      tip.push(data.axes[k].label + ' = ' + (v === null ? 'none' : fmt(v)));
    });
    var line = el('polyline', {points: points.join(' '), 'class': 'case ' + c.status,
                               'data-id': c.id}, lineGroup);
    el('title', {}, line).textContent = 'case ' + c.id + ' (' + c.iteration + ', ' +
      c.status + ')\n' + tip.join('\n');
    lines[i] = line;
  });
  var rects = data.axes.map(function (axis, k) {
    var g = el('g', {'class': 'axis', 'data-name': axis.name}, svg), x = xOf(k);
    el('line', {x1: x, x2: x, y1: M.top, y2: M.top + plotH}, g);
    var name = el('text', {x: x, y: M.top - 22, 'text-anchor': 'middle', 'class': 'name'}, g);
    name.textContent = axis.label;
    for (var t = 0; t <= 4; t++) {
      var v = scales[k].lo + t * (scales[k].hi - scales[k].lo) / 4, y = yOf(k, v);
      el('line', {x1: x - 4, x2: x, y1: y, y2: y}, g);
      el('text', {x: x - 7, y: y + 4, 'text-anchor': 'end'}, g).textContent = fmt(v);
    }
    var rect = el('rect', {'class': 'brush', x: x - 9, width: 18, y: M.top, height: 0,
                           visibility: 'hidden'}, g);
    var overlay = el('rect', {'class': 'overlay', x: x - 14, width: 28, y: M.top - 10,
                              height: plotH + 20}, g);  // a drag may start past the ends
    overlay.addEventListener('mousedown', function (ev) { startDrag(k, ev); });
    return rect;
  });
  var count = document.getElementById('count');
  function shown(c) {
    return Object.keys(brushes).every(function (k) {
      var v = c.values[k], b = brushes[k];
      return v !== null && v >= b[0] && v <= b[1];
    });
  }
  function update() {
    var visible = 0, failed = 0;
    data.cases.forEach(function (c, i) {
      var keep = shown(c);
      lines[i].classList.toggle('hidden', !keep);
      if (keep) { visible += 1; failed += c.status === 'failed'; }
    });
    rects.forEach(function (rect, k) {
      var b = brushes[k];
      rect.setAttribute('visibility', b ? 'visible' : 'hidden');
      if (b) {
        var top = yOf(k, b[1]), bottom = yOf(k, b[0]);
        rect.setAttribute('y', Math.max(M.top, top));
        rect.setAttribute('height', Math.max(0, Math.min(M.top + plotH, bottom) -
                                                Math.max(M.top, top)));
      }
    });
    count.textContent = visible + ' of ' + data.cases.length + ' cases shown (' + failed +
      ' failed)';
  }
  function svgY(ev) { return ev.clientY - svg.getBoundingClientRect().top; }
  function startDrag(k, ev) {
    ev.preventDefault();
    var y0 = svgY(ev), moved = false;
    function move(e) {
      var y1 = svgY(e);
      if (Math.abs(y1 - y0) < 3) { return; }
      moved = true;
      var a = valueAt(k, y0), b = valueAt(k, y1);
      brushes[k] = [Math.min(a, b), Math.max(a, b)];
      update();
    }
    function up(e) {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      if (moved) { move(e); } else { delete brushes[k]; update(); }
    }
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }
  function axisIndex(name) {
    for (var k = 0; k < n; k++) { if (data.axes[k].name === name) { return k; } }
    throw new Error('no axis ' + JSON.stringify(name) + '; the axes are ' +
                    data.axes.map(function (a) { return a.name; }).join(', '));
  }
  window.parallelView = {
    axes: data.axes.map(function (a) { return a.name; }),
    brush: function (name, lo, hi) {
      brushes[axisIndex(name)] = [Math.min(lo, hi), Math.max(lo, hi)];
      update();
      return this.visible();
    },
    clear: function (name) {
      if (name === undefined) { brushes = {}; } else { delete brushes[axisIndex(name)]; }
      update();
      return this.visible();
    },
    visible: function () {
      return data.cases.filter(shown).map(function (c) { return c.id; });
    }
  };
  update();
  document.body.dataset.ready = 'true';
}());
