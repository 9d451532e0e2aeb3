(function () {
  'use strict';
  // The endpoint table: every endpoint's row comes from the JSON block #endpoint-data and is
  // drawn a page at a time with createElement/textContent (never innerHTML), so a string from
  // a scanned server can only ever be text. Columns of a row (report/html.py _row):
  var HOST = 0, PORT = 1, KEY = 2, PROD = 3, REL = 4, TR = 5, CALLED = 6, CALLING = 7, UI = 8,
    SVC = 9, PAT = 10, PATT = 11, ST = 12, STT = 13, DATES = 14, WORST = 15, FIND = 16, CLS = 17,
    CC = 18, ASN = 19, ASORG = 20, DET = 21;
  var INTERNED = [PROD, REL, TR, CALLED, CALLING, UI, SVC, CLS, CC, ASORG];
  var SEV = ['info', 'low', 'medium', 'high', 'critical'];
  var D = JSON.parse(document.getElementById('endpoint-data').textContent);
  var S = D.strings, F = D.findings, ROWS = D.rows, PAGE = D.page_size;
  var state = {q: '', finding: -1, sev: -1, cls: '', sort: KEY, asc: true, page: 0};
  var view = ROWS.map(function (_, i) { return i; });
  var hostIndex = null;

  function str(row, col) {
    var v = row[col];
    if (INTERNED.indexOf(col) >= 0) { return v < 0 ? '' : S[v]; }
    return v === null || v === undefined ? '' : String(v);
  }
  function endpoint(row) {
    return row[HOST].indexOf(':') >= 0 ? '[' + row[HOST] + ']:' + row[PORT] : row[HOST] + ':' + row[PORT];
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function sevBadge(rank) {
    if (rank < 0) { return el('span', '-', 'muted'); }
    return el('span', SEV[rank], 'sev sev-' + SEV[rank]);
  }
  function findingLink(fi) {
    var f = F[fi], a = el('a', f[0], 'fid s-' + f[1]);
    a.href = '#fix-' + f[0];
    a.title = f[2];
    a.addEventListener('click', function (ev) { ev.stopPropagation(); });
    return a;
  }
  function sortKey(row, col) {
    if (col === KEY) { return row[KEY] !== null ? row[KEY] : row[HOST]; }
    if (col === PAT || col === ST || col === WORST || col === ASN || col === PORT) {
      return row[col] === null ? -1 : row[col];
    }
    return str(row, col).toLowerCase();
  }
  function apply() {
    var q = state.q.toLowerCase();
    view = [];
    for (var i = 0; i < ROWS.length; i++) {
      var r = ROWS[i];
      if (state.finding >= 0 && r[FIND].indexOf(state.finding) < 0) { continue; }
      if (state.sev >= 0 && r[WORST] < state.sev) { continue; }
      if (state.cls && str(r, CLS) !== state.cls) { continue; }
      if (q && (endpoint(r) + ' ' + str(r, PROD) + ' ' + str(r, CC) + ' ' + str(r, ASORG) +
          ' AS' + str(r, ASN)).toLowerCase().indexOf(q) < 0) { continue; }
      view.push(i);
    }
    var col = state.sort, dir = state.asc ? 1 : -1;
    view.sort(function (a, b) {
      var x = sortKey(ROWS[a], col), y = sortKey(ROWS[b], col);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : a - b) * dir;
    });
    state.page = 0;
    draw();
  }
  // a cell shows at most CLIP characters of a server's string (a 500-character banner must not
  // stretch the table); the whole value is in the cell's tooltip and in the row's detail
  var CLIP = 48;
  function cell(tr, text, cls, clip) {
    var full = text === null || text === undefined ? '' : String(text), n = clip || CLIP;
    var td = el('td', full.length > n ? full.slice(0, n - 1) + '\u2026' : full, cls);
    if (full.length > n) { td.title = full; }
    tr.appendChild(td);
    return td;
  }
  function draw() {
    var body = document.querySelector('#ep-table tbody');
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * PAGE;
    view.slice(start, start + PAGE).forEach(function (i) {
      var r = ROWS[i], tr = el('tr', null, 'row');
      tr.dataset.i = i;
      var td = cell(tr, '');
      var ep = endpoint(r);
      td.appendChild(el('span', ep.length > CLIP ? ep.slice(0, CLIP - 1) + '\u2026' : ep, 'ep'));
      if (ep.length > CLIP) { td.title = ep; }
      var c = str(r, CLS);
      if (c !== 'real') { td.appendChild(document.createTextNode(' ')); td.appendChild(el('span', c, 'cls cls-' + c)); }
      cell(tr, str(r, PROD));
      cell(tr, str(r, REL) || '-', 'nw', 12);
      cell(tr, str(r, TR));
      cell(tr, str(r, CALLED));
      cell(tr, str(r, CALLING));
      cell(tr, str(r, UI));
      cell(tr, str(r, SVC));
      cell(tr, r[PATT], 'n');
      cell(tr, r[STT], 'n');
      cell(tr, str(r, DATES) || '-', 'nw', 21);
      cell(tr, '').appendChild(sevBadge(r[WORST]));
      var fcell = cell(tr, '', 'fids');
      r[FIND].forEach(function (fi) { fcell.appendChild(findingLink(fi)); fcell.appendChild(document.createTextNode(' ')); });
      if (D.geo) { cell(tr, [str(r, CC), r[ASN] !== null ? 'AS' + r[ASN] : '', str(r, ASORG)].filter(Boolean).join(' ')); }
      tr.addEventListener('click', function () { toggleDetail(tr, i); });
      body.appendChild(tr);
    });
    document.getElementById('ep-count').textContent = view.length.toLocaleString('en') +
      ' of ' + ROWS.length.toLocaleString('en') + ' endpoints';
    document.getElementById('ep-page').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
    document.getElementById('ep-prev').disabled = state.page === 0;
    document.getElementById('ep-next').disabled = state.page >= pages - 1;
  }
  function toggleDetail(tr, i) {
    var next = tr.nextSibling;
    if (next && next.classList.contains('detail')) { next.parentNode.removeChild(next); return; }
    if (hostIndex === null) {
      hostIndex = {};
      ROWS.forEach(function (r, k) { (hostIndex[r[HOST]] = hostIndex[r[HOST]] || []).push(k); });
    }
    var r = ROWS[i], d = el('tr', null, 'detail'), td = el('td');
    td.colSpan = tr.cells.length;
    var dl = el('dl', null, 'kv'), det = r[DET];
    [['endpoint', endpoint(r)], ['product', str(r, PROD)], ['services', str(r, SVC)],
     ['study dates', str(r, DATES)]].forEach(function (kv) {
      if (kv[1]) { dl.appendChild(el('dt', kv[0])); dl.appendChild(el('dd', kv[1])); }
    });
    for (var k = 0; k < det.length; k += 2) { dl.appendChild(el('dt', S[det[k]])); dl.appendChild(el('dd', det[k + 1])); }
    td.appendChild(el('strong', endpoint(r)));
    td.appendChild(dl);
    var others = hostIndex[r[HOST]].filter(function (k) { return k !== i; });
    if (others.length) {
      td.appendChild(el('div', 'Other ports of ' + r[HOST] + ':', 'muted'));
      var ul = el('ul');
      others.forEach(function (k) {
        var o = ROWS[k], li = el('li', o[PORT] + ': ' + str(o, PROD) + ', ' + str(o, SVC) + ' ');
        li.appendChild(sevBadge(o[WORST]));
        ul.appendChild(li);
      });
      td.appendChild(ul);
    }
    d.appendChild(td);
    tr.parentNode.insertBefore(d, tr.nextSibling);
  }
  function showFinding(fid) {
    var sel = document.getElementById('ep-finding');
    sel.value = String(F.findIndex(function (f) { return f[0] === fid; }));
    state.finding = parseInt(sel.value, 10);
    apply();
    document.getElementById('endpoints').scrollIntoView();
  }
  // controls
  var fsel = document.getElementById('ep-finding');
  F.forEach(function (f, k) { var o = el('option', f[0] + ' ' + f[2]); o.value = String(k); fsel.appendChild(o); });
  fsel.addEventListener('change', function () { state.finding = parseInt(fsel.value, 10); apply(); });
  var ssel = document.getElementById('ep-sev');
  ssel.addEventListener('change', function () { state.sev = parseInt(ssel.value, 10); apply(); });
  var csel = document.getElementById('ep-cls');
  csel.addEventListener('change', function () { state.cls = csel.value; apply(); });
  var qin = document.getElementById('ep-q'), timer = null;
  qin.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = qin.value.trim(); apply(); }, 200);
  });
  document.getElementById('ep-prev').addEventListener('click', function () { state.page--; draw(); });
  document.getElementById('ep-next').addEventListener('click', function () { state.page++; draw(); });
  document.querySelectorAll('#ep-table th[data-sort]').forEach(function (th) {
    th.addEventListener('click', function () {
      var col = parseInt(th.dataset.sort, 10);
      state.asc = state.sort === col ? !state.asc : col === KEY || col === PROD;
      state.sort = col;
      th.setAttribute('data-dir', state.asc ? 'asc' : 'desc');
      apply();
    });
  });
  document.querySelectorAll('[data-show-finding]').forEach(function (a) {
    a.addEventListener('click', function (ev) { ev.preventDefault(); showFinding(a.dataset.showFinding); });
  });
  window.dicomguardReport = {apply: apply, state: state, view: function () { return view; }, showFinding: showFinding};
  apply();
}());
