// The ledger's dashboard: plain JavaScript, no framework, nothing loaded
// from elsewhere. Every piece of data reaches the page through textContent
// or an attribute, never as HTML.
'use strict';

(function () {
  // What the browser test reads: when this page was loaded (a reload makes
  // a new value), how many live updates it has drawn and how many points
  // its charts have taken.
  const probe = { loadedAt: Date.now(), updates: 0, samples: 0 };
  window.ledgerDashboard = probe;

  const $ = (id) => document.getElementById(id);

  // el builds an element: props sets className ("class"), text, title,
  // href, data-* and other attributes; children are nodes or strings.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k === 'width') e.style.width = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function replace(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  // ---- formatting ----

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => nf.format(n || 0);

  function fmtCompact(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(0) + 'k';
    if (a >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    if (a > 0 && a < 10 && n % 1 !== 0) return String(parseFloat(n.toFixed(2)));
    return String(Math.round(n));
  }

  function fmtDur(sec) {
    sec = Math.max(0, Math.round(sec));
    const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600);
    const m = Math.floor((sec % 3600) / 60), s = sec % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + String(s).padStart(2, '0') + 's';
    return s + 's';
  }

  const unitSeconds = { hour: 3600, day: 86400, week: 604800, month: 2592000 };

  function fmtLen(sec) {
    if (sec % 86400 === 0) return sec / 86400 + 'd';
    if (sec % 3600 === 0) return sec / 3600 + 'h';
    if (sec % 60 === 0) return sec / 60 + 'm';
    return sec + 's';
  }

  function fmtWindow(w, metric) {
    if (metric === 'concurrent') return 'while held';
    if (!w) return '';
    if (w.kind === 'calendar') return 'calendar ' + w.unit + (w.tz ? ' · ' + w.tz : '');
    const len = w.seconds || unitSeconds[w.unit] || 0;
    return w.kind + ' ' + fmtLen(len);
  }

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    const now = new Date();
    const hms = d.toLocaleTimeString('en-GB', { hour12: false });
    if (d.toDateString() === now.toDateString()) return hms;
    return d.toLocaleDateString('en-CA') + ' ' + hms;
  }

  function fmtDims(dims) {
    if (!dims) return '';
    return Object.keys(dims).sort().map((k) => k + '=' + dims[k]).join(' ');
  }

  function fmtAmounts(a) {
    if (!a) return '';
    const parts = [];
    for (const k of ['tokens', 'input_tokens', 'output_tokens', 'requests', 'cost']) {
      if (a[k]) parts.push(k + ' ' + fmtInt(a[k]));
    }
    if (a.actions) for (const k of Object.keys(a.actions).sort()) parts.push(k + ' ' + fmtInt(a.actions[k]));
    return parts.join(', ');
  }

  // level is a status colour for a percentage of a limit.
  function level(pct, warning, exceeded) {
    if (exceeded || pct >= 100) return 'hot';
    if (pct >= 90) return 'hot';
    if (warning || pct >= 75) return 'warn';
    return 'ok';
  }

  // ---- server time and countdowns ----

  let clockOffset = 0; // server time minus browser time, ms

  function noteServerTime(iso) {
    if (iso) clockOffset = new Date(iso).getTime() - Date.now();
  }

  function countdown(iso) {
    const left = (new Date(iso).getTime() - (Date.now() + clockOffset)) / 1000;
    return left <= 0 ? 'now' : 'in ' + fmtDur(left);
  }

  function tickCountdowns() {
    for (const e of document.querySelectorAll('[data-until]')) {
      e.textContent = countdown(e.getAttribute('data-until'));
    }
  }

  // ---- fetching ----

  async function getJSON(url) {
    const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = { error: r.statusText };
    }
    return { status: r.status, body };
  }

  // ---- the live indicator, header and footer ----

  function setLive(state, text) {
    const l = $('live');
    l.setAttribute('data-state', state);
    $('live-text').textContent = text;
  }

  let session = null;

  function renderWho() {
    const who = $('who');
    if (!session || !session.auth_required || !session.signed_in) {
      replace(who);
      return;
    }
    const what = session.role + (session.tenant ? ' of ' + session.tenant : '');
    replace(who,
      el('span', { class: 'user', title: 'token valid until ' + (session.expires || '') }, session.name),
      el('span', { class: 'muted' }, ' ' + what + ' '),
      el('button', { class: 'link', type: 'button', onclick: logout }, 'Sign out'));
  }

  let member = '';

  function renderFoot() {
    const parts = [];
    if (member) parts.push(el('span', null, 'served by member ', el('b', null, member)));
    if (session && !session.auth_required) {
      parts.push(el('span', { class: 'note-open' }, session.note || 'Authentication is off.'));
    } else if (session && session.signed_in) {
      parts.push(el('span', null, 'Signed in with a token; revoking the user ends the session at once.'));
    }
    parts.push(el('span', { class: 'muted' }, 'Denials are kept in memory and start again empty when the ledger restarts.'));
    replace($('foot'), parts);
  }

  function renderCrumbs() {
    const c = $('crumbs');
    if (page.kind === 'tenant') {
      replace(c, el('a', { href: '/' }, 'Tenants'), el('span', { class: 'sep' }, '/'), el('span', { class: 'cur' }, page.tenant));
    } else {
      replace(c, el('span', { class: 'cur' }, 'Tenants & partitions'));
    }
  }

  // ---- the page ----

  function parseLocation() {
    const p = location.pathname;
    const m = p.match(/^\/tenants\/([^/]+)\/?$/);
    if (m) {
      let t = m[1];
      try {
        t = decodeURIComponent(t);
      } catch (e) {
        /* keep it as it is */
      }
      return { kind: 'tenant', tenant: t };
    }
    const q = new URLSearchParams(location.search);
    return { kind: 'overview', prefix: q.get('prefix') || '', after: q.get('after') || '' };
  }

  const page = parseLocation();
  let source = null; // the EventSource
  let lastParts = null;

  function stopStream() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function openStream(url, handlers) {
    stopStream();
    const es = new EventSource(url);
    source = es;
    es.addEventListener('open', () => setLive('live', 'live'));
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => {
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        probe.updates++;
        setLive('live', 'live');
        fn(data);
      });
    }
    es.addEventListener('signedout', (ev) => {
      stopStream();
      let msg = '';
      try {
        msg = JSON.parse(ev.data).error;
      } catch (e) {
        /* no message */
      }
      showLogin(msg || 'Your session ended.');
    });
    es.addEventListener('error', () => {
      if (es !== source) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (signed out, forbidden, overloaded): ask why, then retry.
        setLive('down', 'disconnected');
        stopStream();
        setTimeout(async () => {
          const s = await getJSON('/api/session').catch(() => null);
          if (s && s.body && s.body.auth_required && !s.body.signed_in) {
            showLogin(s.body.error || 'Your session ended.');
          } else {
            openStream(url, handlers);
          }
        }, 2000);
      } else {
        setLive('connecting', 'reconnecting');
      }
    });
  }

  // ---- sign in ----

  function showLogin(message) {
    stopStream();
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setLive('down', 'signed out');
    session = { auth_required: true, signed_in: false };
    renderWho();
    renderFoot();
    $('token').focus();
  }

  async function login(ev) {
    ev.preventDefault();
    const token = $('token').value.trim();
    $('login-error').textContent = '';
    const r = await fetch('/login', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
    });
    let body = {};
    try {
      body = await r.json();
    } catch (e) {
      body = { error: r.statusText };
    }
    if (!r.ok || !body.signed_in) {
      $('login-error').textContent = 'Refused: ' + (body.error || r.statusText);
      return;
    }
    $('token').value = '';
    session = body;
    showApp();
  }

  async function logout() {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
    showLogin('Signed out.');
  }

  // ---- the chart ----

  // niceStep rounds a grid step up to 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times
  // a power of ten, so that the axis reads in round numbers.
  function niceStep(x) {
    const e = Math.pow(10, Math.floor(Math.log10(x)));
    return ([1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((m) => m * e >= x * 0.999) || 10) * e;
  }

  // Chart draws series of (time, value) over the last span seconds on a
  // canvas, with an optional dashed limit line.
  // Chart draws series of (time, value) on a canvas, from its first point
  // (at least minSpan, at most maxSpan seconds back) to now, with an
  // optional dashed limit line.
  class Chart {
    constructor(canvas, minSpan, maxSpan) {
      this.canvas = canvas;
      this.minSpan = minSpan;
      this.maxSpan = maxSpan;
      this.series = [];
      this.limit = null;
    }

    setSeries(defs) {
      this.series = defs.map((d) => ({ name: d.name, color: d.color, points: [] }));
    }

    push(i, t, v) {
      const s = this.series[i];
      if (!s) return;
      s.points.push([t, v]);
      probe.samples++;
      const cut = t - this.maxSpan * 1000 - 5000;
      while (s.points.length > 2 && s.points[0][0] < cut) s.points.shift();
    }

    draw() {
      const c = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth, h = c.clientHeight;
      if (!w || !h) return;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const g = c.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      const padL = 56, padR = 16, padT = 12, padB = 22;
      const pw = w - padL - padR, ph = h - padT - padB;
      const now = Date.now() + clockOffset;
      let first = now;
      for (const s of this.series) if (s.points.length) first = Math.min(first, s.points[0][0]);
      const span = Math.min(this.maxSpan, Math.max(this.minSpan, (now - first) / 1000 * 1.05));
      const t0 = now - span * 1000;
      let max = this.limit || 0;
      for (const s of this.series) for (const p of s.points) if (p[0] >= t0 && p[1] > max) max = p[1];
      max = niceStep(max > 0 ? (max * 1.08) / 4 : 0.25) * 4;
      const x = (t) => padL + ((t - t0) / (span * 1000)) * pw;
      const y = (v) => padT + ph - (v / max) * ph;
      g.font = '11px system-ui, sans-serif';
      g.lineWidth = 1;
      g.strokeStyle = '#263041';
      g.fillStyle = '#8b97a8';
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      for (let i = 0; i <= 4; i++) {
        const v = (max / 4) * i;
        const yy = Math.round(y(v)) + 0.5;
        g.beginPath();
        g.moveTo(padL, yy);
        g.lineTo(w - padR, yy);
        g.stroke();
        g.fillText(fmtCompact(v), padL - 8, yy);
      }
      // Time ticks at a round step back from now.
      const step = [5, 10, 15, 30, 60, 120, 300, 600].find((st) => span / st <= 6) || 600;
      g.textAlign = 'center';
      g.textBaseline = 'top';
      for (let back = 0; back <= span; back += step) {
        const xx = x(now - back * 1000);
        g.fillText(back === 0 ? 'now' : '-' + fmtLen(back), Math.min(xx, w - padR - 8), padT + ph + 6);
      }
      if (this.limit) {
        g.save();
        g.setLineDash([5, 4]);
        g.strokeStyle = '#f85149';
        g.beginPath();
        const yy = Math.round(y(this.limit)) + 0.5;
        g.moveTo(padL, yy);
        g.lineTo(w - padR, yy);
        g.stroke();
        g.restore();
        g.fillStyle = '#f85149';
        g.textAlign = 'left';
        g.textBaseline = 'bottom';
        g.fillText('limit ' + fmtInt(this.limit), padL + 6, yy - 3);
      }
      for (const s of this.series.slice().reverse()) { // the first series on top
        const pts = s.points.filter((p) => p[0] >= t0 - 5000);
        if (!pts.length) continue;
        g.save();
        g.beginPath();
        g.rect(padL, padT, pw, ph);
        g.clip();
        g.strokeStyle = s.color;
        g.lineWidth = 2;
        g.lineJoin = 'round';
        g.beginPath();
        pts.forEach((p, i) => (i ? g.lineTo(x(p[0]), y(p[1])) : g.moveTo(x(p[0]), y(p[1]))));
        g.stroke();
        g.globalAlpha = 0.1;
        g.fillStyle = s.color;
        g.lineTo(x(pts[pts.length - 1][0]), y(0));
        g.lineTo(x(pts[0][0]), y(0));
        g.closePath();
        g.fill();
        g.restore();
        const last = pts[pts.length - 1];
        g.fillStyle = s.color;
        g.beginPath();
        g.arc(x(last[0]), y(last[1]), 3, 0, Math.PI * 2);
        g.fill();
      }
    }
  }

  function legend(defs) {
    return el('div', { class: 'legend' }, defs.map((d) => el('span', { class: 'key' }, el('i', { class: 'swatch ' + d.cls }), d.name)));
  }

  // ---- shared pieces ----

  function card(label, value, cls, sub) {
    return el('div', { class: 'card ' + (cls || '') }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value), sub ? el('div', { class: 'sub' }, sub) : null);
  }

  function table(head, rows, empty, cls) {
    return el('table', { class: 'grid ' + (cls || '') },
      el('thead', null, el('tr', null, head.map((h) => el('th', { class: h.startsWith('#') ? 'num' : '' }, h.replace(/^#/, ''))))),
      el('tbody', null, rows.length ? rows : el('tr', { class: 'empty' }, el('td', { colspan: head.length }, empty))));
  }

  function section(title, id, extra) {
    return el('section', { class: 'panel', id }, el('div', { class: 'panel-head' }, el('h2', null, title), extra || null), el('div', { class: 'panel-body', id: id + '-body' }));
  }

  function bar(pct, reservedPct, lvl) {
    const used = Math.max(0, Math.min(100, pct - reservedPct));
    const resv = Math.max(0, Math.min(100 - used, reservedPct));
    return el('div', { class: 'bar' },
      el('div', { class: 'fill ' + lvl, width: used + '%' }),
      resv > 0 ? el('div', { class: 'resv', width: resv + '%' }) : null);
  }

  function denialRows(list, withTenant) {
    return list.map((d) => el('tr', null,
      el('td', { class: 'nowrap', title: d.time }, fmtTime(d.time)),
      withTenant ? el('td', null, el('a', { href: '/tenants/' + encodeURIComponent(d.tenant) }, d.tenant)) : null,
      el('td', null, d.op),
      el('td', null, el('span', { class: 'badge code' }, d.code), d.reason ? el('span', { class: 'muted small' }, ' ' + d.reason) : null),
      el('td', { class: 'msg' }, d.message)));
  }

  // renderPartitionTiles draws one tile per partition: its owner and
  // epoch, coloured by its state (no owner, lagging, fine).
  function renderPartitionTiles(pv) {
    if (!pv.partitions.length) return el('div', { class: 'muted pad' }, 'no partition is folded here');
    return el('div', { class: 'ptiles' }, pv.partitions.map((p) => {
      const lvl = !p.owner ? 'hot' : p.lag === 0 ? 'ok' : p.lag < 1000 ? 'warn' : 'hot';
      const detail = [
        'partition ' + p.partition,
        'owner ' + (p.owner || 'none') + (p.epoch ? ' (epoch ' + p.epoch + ')' : ''),
        'standby ' + ((p.standby || []).join(', ') || 'none'),
        'followers ' + ((p.followers || []).join(', ') || 'none'),
        'last seq ' + p.last_seq + ', applied ' + p.applied_seq + ', lag ' + p.lag + ' messages',
      ].join('\n');
      return el('div', { class: 'ptile ' + lvl, 'data-partition': p.partition, title: detail },
        el('div', { class: 'ptop' }, el('span', { class: 'pnum' }, 'P' + p.partition), el('span', { class: 'plag ' + lvl }, p.owner ? 'lag ' + fmtCompact(p.lag) : 'no owner')),
        el('div', { class: 'powner' }, p.owner || '—'),
        el('div', { class: 'pmeta' }, (p.epoch ? 'epoch ' + fmtInt(p.epoch) + ' · ' : '') + 'seq ' + fmtInt(p.applied_seq)),
        (p.standby || []).length ? el('div', { class: 'pmeta' }, 'standby ' + p.standby.join(', ')) : null);
    }));
  }

  function renderMembersTable(pv) {
    const rows = (pv.members || []).map((m) => {
      const owns = m.partitions.filter((p) => p.state === 'owner').map((p) => p.partition);
      const standby = m.partitions.filter((p) => p.state === 'standby').map((p) => p.partition);
      const follows = m.partitions.filter((p) => p.state === 'follower').map((p) => p.partition);
      return el('tr', null,
        el('td', null, m.member, m.member === pv.member ? el('span', { class: 'muted small' }, ' (this one)') : null),
        el('td', null, m.role),
        el('td', null, el('span', { class: 'badge ' + (m.ready ? 'ok' : 'warn') }, m.ready ? 'ready' : 'catching up')),
        el('td', { class: 'num' }, fmtInt(m.applied_seq)),
        el('td', { class: 'num' }, el('span', { class: 'lag ' + (m.lag === 0 ? 'ok' : 'warn') }, fmtInt(m.lag))),
        el('td', null, ranges(owns)), el('td', null, ranges(standby)), el('td', null, ranges(follows)));
    });
    return table(['member', 'role', 'state', '#applied seq', '#lag', 'owns', 'standby', 'follows'], rows, 'no member answered', 'compact');
  }

  function ranges(ps) {
    if (!ps.length) return '–';
    ps = ps.slice().sort((a, b) => a - b);
    const out = [];
    let start = ps[0], prev = ps[0];
    for (const p of ps.slice(1).concat([null])) {
      if (p === prev + 1) {
        prev = p;
        continue;
      }
      out.push(start === prev ? String(start) : start + '-' + prev);
      start = prev = p;
    }
    return out.join(',');
  }

  // ---- the overview: tenants and partitions ----

  const rateChart = { chart: null, last: null, prev: null };

  function showOverview() {
    const filter = el('input', { id: 'filter', type: 'search', placeholder: 'tenant name starts with…', value: page.prefix, 'aria-label': 'filter tenants' });
    let timer = null;
    filter.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        page.prefix = filter.value.trim();
        page.after = '';
        page.history = [];
        updateQuery();
        streamOverview();
      }, 300);
    });
    const pager = el('span', { class: 'pager', id: 'pager' });
    const canvas = el('canvas', { id: 'rate-chart', class: 'chart' });
    const defs = [{ name: 'requests/s (this member)', color: '#5aa9ff', cls: 'blue' }, { name: 'stream messages/s', color: '#a371f7', cls: 'purple' }];
    replace($('app'),
      el('div', { class: 'cards', id: 'ov-cards' }),
      el('section', { class: 'panel' }, el('div', { class: 'panel-head' }, el('h2', null, 'Throughput'), legend(defs)), el('div', { class: 'panel-body' }, canvas)),
      section('Tenants', 'tenants', el('div', { class: 'tools' }, filter, pager)),
      section('Latest denials', 'denials'),
      section('Partitions', 'partitions'),
      section('Members', 'members'));
    rateChart.chart = new Chart(canvas, 60, 900);
    rateChart.chart.setSeries(defs);
    page.history = page.history || [];
    streamOverview();
  }

  function updateQuery() {
    const q = new URLSearchParams();
    if (page.prefix) q.set('prefix', page.prefix);
    if (page.after) q.set('after', page.after);
    const s = q.toString();
    history.replaceState(null, '', '/' + (s ? '?' + s : ''));
  }

  function streamOverview() {
    const q = new URLSearchParams();
    if (page.prefix) q.set('prefix', page.prefix);
    if (page.after) q.set('after', page.after);
    openStream('/api/events?' + q.toString(), { tenants: renderTenantList, partitions: renderOverviewPartitions });
  }

  function renderTenantList(list) {
    const rows = list.tenants.map((t) => {
      const lvl = level(t.peak_percent, false, t.exceeded > 0);
      return el('tr', { 'data-tenant': t.name },
        el('td', null, el('a', { class: 'tenant', href: '/tenants/' + encodeURIComponent(t.name) }, t.name)),
        el('td', { class: 'num' }, t.partition),
        el('td', { class: 'num' }, t.quotas),
        el('td', { class: 'peak' }, t.quotas ? el('div', { class: 'peakcell' }, bar(t.peak_percent, 0, lvl), el('span', { class: 'pct ' + lvl }, t.peak_percent.toFixed(0) + '%')) : el('span', { class: 'muted' }, 'no quota'),
          t.peak_limit ? el('div', { class: 'muted small' }, t.peak_limit + (t.sampled ? ' (sampled)' : '')) : null),
        el('td', { class: 'num' }, t.warnings ? el('span', { class: 'badge warn' }, t.warnings) : '0'),
        el('td', { class: 'num' }, t.exceeded ? el('span', { class: 'badge hot' }, t.exceeded) : '0'),
        el('td', { class: 'num' }, fmtInt(t.reservations)),
        el('td', { class: 'num' }, fmtInt(t.workflows)),
        el('td', { class: 'num' }, t.retries ? el('span', { class: 'badge warn' }, t.retries) : '0'),
        el('td', { class: 'num' }, t.denials ? el('span', { class: 'badge hot', title: t.last_denial ? 'last ' + t.last_denial : '' }, fmtInt(t.denials)) : '0'));
    });
    replace($('tenants-body'), table(['tenant', '#partition', '#quotas', 'hottest limit', '#warnings', '#exceeded', '#reservations', '#workflows', '#retry signals', '#denials'], rows,
      page.prefix ? 'no tenant starts with “' + page.prefix + '”' : 'no tenant has any event yet', 'tenants'));
    const pager = $('pager');
    const prev = el('button', { type: 'button', class: 'link', disabled: !page.after, onclick: () => {
      page.after = page.history.pop() || '';
      updateQuery();
      streamOverview();
    } }, '‹ previous');
    const next = el('button', { type: 'button', class: 'link', disabled: !list.more, onclick: () => {
      page.history.push(page.after);
      page.after = list.tenants[list.tenants.length - 1].name;
      updateQuery();
      streamOverview();
    } }, 'next ›');
    replace(pager, prev, next);
    replace($('denials-body'), table(['time', 'tenant', 'op', 'code', 'message'], denialRows(list.denials.slice(0, 20), true), 'no denial since the ledger started', 'denials'));
    renderOverviewCards(list);
  }

  let lastList = null;

  function renderOverviewCards(list) {
    if (list) lastList = list;
    const pv = lastParts;
    const l = lastList;
    const owned = pv ? pv.partitions.filter((p) => p.owner).length : 0;
    const lag = pv ? pv.partitions.reduce((a, p) => Math.max(a, p.lag), 0) : 0;
    replace($('ov-cards'),
      card('Tenants shown', l ? fmtInt(l.tenants.length) + (l.more ? '+' : '') : '…', '', page.prefix ? 'starting with “' + page.prefix + '”' : 'in name order'),
      card('Exceeded now', l ? fmtInt(l.tenants.filter((t) => t.exceeded > 0).length) : '…', l && l.tenants.some((t) => t.exceeded) ? 'hot' : '', 'tenants with a full limit'),
      card('Denials', l ? fmtInt(l.tenants.reduce((a, t) => a + t.denials, 0)) : '…', '', 'since start, tenants shown'),
      card('Stream', pv ? fmtInt(pv.stream_seq) : '…', '', 'last sequence'),
      card('Partitions owned', pv ? owned + ' / ' + pv.partitions.length : '…', pv && owned < pv.partitions.length ? 'hot' : '', 'by a live owner'),
      card('Max lag', pv ? fmtInt(lag) : '…', lag > 0 ? 'warn' : '', 'messages not folded yet'));
  }

  function renderOverviewPartitions(pv) {
    notePartitions(pv);
    replace($('partitions-body'), renderPartitionTiles(pv));
    replace($('members-body'), renderMembersTable(pv));
    renderOverviewCards(null);
  }

  function notePartitions(pv) {
    lastParts = pv;
    if (pv.member !== member) {
      member = pv.member;
      renderFoot();
    }
    rateChart.last = { t: Date.now(), requests: pv.requests, seq: pv.stream_seq };
    if (!rateChart.prev) rateChart.prev = rateChart.last;
  }

  function sampleRates() {
    if (!rateChart.chart || !rateChart.last) return;
    const now = Date.now();
    const p = rateChart.prev, l = rateChart.last;
    const dt = (now - (p.sampledAt || p.t)) / 1000;
    if (dt <= 0) return;
    const req = Math.max(0, l.requests - p.requests) / dt;
    const msgs = Math.max(0, l.seq - p.seq) / dt;
    const t = now + clockOffset;
    rateChart.chart.push(0, t, req);
    rateChart.chart.push(1, t, msgs);
    rateChart.prev = { t: l.t, requests: l.requests, seq: l.seq, sampledAt: now };
    rateChart.chart.draw();
  }

  // ---- one tenant ----

  const usage = { chart: null, key: null, limit: null, view: null };

  function showTenant() {
    const select = el('select', { id: 'limit-select', 'aria-label': 'limit to chart' });
    select.addEventListener('change', () => {
      usage.key = select.value;
      usage.chart.setSeries(usageDefs);
      drawUsage();
    });
    const canvas = el('canvas', { id: 'usage-chart', class: 'chart' });
    replace($('app'),
      el('div', { class: 'title', id: 'tenant-title' }),
      el('div', { class: 'cards', id: 'tenant-cards' }),
      el('div', { id: 'tenant-notice' }),
      section('Quotas', 'quotas'),
      el('section', { class: 'panel' }, el('div', { class: 'panel-head' }, el('h2', null, 'Usage over time'), el('div', { class: 'tools' }, legend(usageDefs), select)), el('div', { class: 'panel-body' }, canvas)),
      section('Last denials', 'tdenials'),
      el('div', { class: 'two' }, section('Open reservations', 'reservations'), section('Retry signals in force', 'retries')),
      section('Active workflows', 'workflows'));
    usage.chart = new Chart(canvas, 60, 900);
    usage.chart.setSeries(usageDefs);
    getJSON('/api/tenants/' + encodeURIComponent(page.tenant)).then((r) => {
      if (r.status === 401) return showLogin(r.body.error);
      if (r.status === 403 || r.status === 400) return forbidden(r.status, r.body.error);
      if (r.status === 200) renderTenant(r.body);
      openStream('/api/events?tenant=' + encodeURIComponent(page.tenant), { tenant: renderTenant, partitions: renderTenantPartition });
    }).catch(() => setLive('down', 'unreachable'));
  }

  const usageDefs = [{ name: 'used', color: '#3fb950', cls: 'green' }, { name: 'used + reserved', color: '#d29922', cls: 'amber' }];

  function forbidden(status, msg) {
    stopStream();
    setLive('down', status === 403 ? 'forbidden' : 'bad address');
    replace($('app'), el('section', { class: 'panel notice-panel', id: 'forbidden' },
      el('h1', null, status === 403 ? 'Not yours to see' : 'No such tenant'),
      el('p', null, msg || ''),
      el('p', null, el('a', { href: '/' }, '‹ back to the tenants you may see'))));
  }

  function splitLabel(q, split) {
    if (!q.split || !q.split.length) return 'all';
    if (split === '') return '(no usage yet)';
    const vals = split.split('/');
    return q.split.map((d, i) => d + '=' + (vals[i] || '')).join(' ');
  }

  function limitKey(q, s, l) {
    return [q.id, s.split, l.metric, JSON.stringify(l.window)].join('\u0000');
  }

  function renderTenant(v) {
    usage.view = v;
    noteServerTime(v.time);
    let warnings = 0, exceeded = 0;
    const options = [];
    const cards = v.quotas.map((q) => {
      const rows = [];
      for (const s of q.splits) {
        for (const l of s.limits) {
          if (l.warning) warnings++;
          if (l.exceeded) exceeded++;
          const lvl = level(l.percent_used, l.warning, l.exceeded);
          const resvPct = l.limit > 0 ? (l.reserved * 100) / l.limit : 0;
          const key = limitKey(q, s, l);
          options.push({ key, text: q.id + ' · ' + l.metric + (s.split ? ' · ' + splitLabel(q, s.split) : '') });
          rows.push(el('tr', { class: 'limit', 'data-quota': q.id, 'data-split': s.split, 'data-metric': l.metric, 'data-used': l.used, 'data-limit': l.limit },
            el('td', { class: 'split' }, splitLabel(q, s.split)),
            el('td', null, l.metric),
            el('td', { class: 'muted' }, fmtWindow(l.window, l.metric)),
            el('td', { class: 'barcol' },
              bar(l.percent_used, resvPct, lvl),
              el('div', { class: 'nums' },
                el('span', { class: 'usage' }, fmtInt(l.used) + ' / ' + fmtInt(l.limit)),
                l.reserved ? el('span', { class: 'muted' }, ' +' + fmtInt(l.reserved) + ' reserved') : null,
                el('span', { class: 'pct ' + lvl }, l.percent_used.toFixed(l.percent_used < 10 ? 1 : 0) + '%'),
                l.exceeded && l.enforcement === 'hard' ? el('span', { class: 'badge hot' }, 'full') : l.exceeded ? el('span', { class: 'badge warn' }, 'over (soft)') : l.warning ? el('span', { class: 'badge warn' }, 'warning') : null)),
            el('td', { class: 'num' }, fmtInt(l.remaining)),
            el('td', { class: 'nowrap' }, el('span', { 'data-until': l.resets_at }, countdown(l.resets_at)), el('div', { class: 'muted small', title: l.resets_at }, fmtTime(l.resets_at)))));
        }
      }
      const meta = [];
      if (q.scope && Object.keys(q.scope).length) meta.push(el('span', { class: 'chip' }, fmtDims(q.scope)));
      if (q.split && q.split.length) meta.push(el('span', { class: 'muted' }, 'split by ' + q.split.join(', ')));
      meta.push(el('span', { class: 'muted' }, 'warns at ' + (q.warn_percent || 80) + '%'));
      if (q.max_steps) meta.push(el('span', { class: 'muted' }, 'at most ' + fmtInt(q.max_steps) + ' steps per workflow'));
      meta.push(el('span', { class: 'muted', title: q.since }, 'since ' + fmtTime(q.since)));
      const more = q.splits_more || q.splits.length < q.splits_seen ? el('div', { class: 'muted small more' },
        'showing the ' + q.splits.length + ' hottest of ' + q.splits_seen + (q.splits_more ? '+' : '') + ' splits') : null;
      return el('div', { class: 'quota', 'data-quota': q.id },
        el('div', { class: 'qhead' }, el('h3', null, q.id), el('span', { class: 'badge ' + (q.enforcement === 'soft' ? 'soft' : 'hard') }, q.enforcement), meta),
        rows.length ? el('table', { class: 'grid limits' },
          el('colgroup', null, ['c-split', 'c-metric', 'c-window', 'c-bar', 'c-rem', 'c-reset'].map((c) => el('col', { class: c }))),
          el('thead', null, el('tr', null, ['split', 'metric', 'window', 'used / limit', 'remaining', 'resets'].map((h, i) => el('th', { class: i === 4 ? 'num' : i === 3 ? 'barcol' : '' }, h)))),
          el('tbody', null, rows)) : el('div', { class: 'muted pad' }, 'no windowed limit'),
        more);
    });
    replace($('quotas-body'), cards.length ? cards : el('div', { class: 'muted pad' }, 'no quota in force'));

    const title = $('tenant-title');
    replace(title, el('h1', null, v.tenant),
      el('span', { class: 'chip' }, 'partition ' + v.partition),
      el('span', { class: 'chip', id: 'tenant-owner' }, ownerText(v.partition)),
      el('span', { class: 'muted' }, 'applied seq ' + fmtInt(v.applied_seq)));
    replace($('tenant-notice'), v.known ? null : el('div', { class: 'notice' }, 'The ledger holds no event of tenant “' + v.tenant + '” yet. This page shows it as soon as one arrives.'));
    replace($('tenant-cards'),
      card('Quotas', fmtInt(v.quotas.length)),
      card('Warnings', fmtInt(warnings), warnings ? 'warn' : '', 'limits at their warning level'),
      card('Exceeded', fmtInt(exceeded), exceeded ? 'hot' : '', 'limits with no room'),
      card('Open reservations', fmtInt(v.reservations_total)),
      card('Active workflows', fmtInt(v.workflows_total)),
      card('Retry signals', fmtInt(v.retries.length), v.retries.length ? 'warn' : '', 'in force'),
      card('Denials', fmtInt(v.denials_total), v.denials_total ? 'hot' : '', 'since the ledger started'));

    replace($('tdenials-body'), table(['time', 'op', 'code', 'message'], denialRows(v.denials, false), 'no denial since the ledger started', 'denials'));
    replace($('reservations-body'), table(['reservation', 'dims', 'estimate', 'expires'],
      v.reservations.map((r) => el('tr', null, el('td', { class: 'mono' }, r.id), el('td', null, fmtDims(r.dims)), el('td', null, fmtAmounts(r.estimate) || '–'),
        el('td', { class: 'nowrap' }, el('span', { 'data-until': r.expires_at }, countdown(r.expires_at))))),
      'none open', 'compact'));
    if (v.reservations_total > v.reservations.length) $('reservations-body').append(el('div', { class: 'muted small more' }, 'showing ' + v.reservations.length + ' of ' + fmtInt(v.reservations_total)));
    replace($('retries-body'), table(['key', 'until', 'quota'],
      v.retries.map((r) => el('tr', null, el('td', null, fmtDims(r.key)), el('td', { class: 'nowrap' }, el('span', { 'data-until': r.retry_until }, countdown(r.retry_until))),
        el('td', null, [r.quota_id, r.quota_metric].filter(Boolean).join(' · ')))),
      'none', 'compact'));
    replace($('workflows-body'), table(['workflow', 'dims', '#steps', 'begun'],
      v.workflows.map((w) => el('tr', null, el('td', { class: 'mono' }, w.workflow), el('td', null, fmtDims(w.dims)), el('td', { class: 'num' }, fmtInt(w.steps)), el('td', null, fmtTime(w.begun)))),
      'none active', 'compact'));
    if (v.workflows_total > v.workflows.length) $('workflows-body').append(el('div', { class: 'muted small more' }, 'showing ' + v.workflows.length + ' of ' + fmtInt(v.workflows_total)));

    const select = $('limit-select');
    const keys = options.map((o) => o.key);
    if (!usage.key || !keys.includes(usage.key)) usage.key = keys[0] || null;
    if (select.options.length !== options.length || options.some((o, i) => select.options[i].value !== o.key)) {
      replace(select, options.map((o) => el('option', { value: o.key }, o.text)));
    }
    if (usage.key) select.value = usage.key;
    select.hidden = options.length === 0;
    sampleUsage();
  }

  function selectedLimit() {
    const v = usage.view;
    if (!v || !usage.key) return null;
    for (const q of v.quotas) for (const s of q.splits) for (const l of s.limits) if (limitKey(q, s, l) === usage.key) return l;
    return null;
  }

  function sampleUsage() {
    const l = selectedLimit();
    if (!usage.chart || !l) return;
    const t = Date.now() + clockOffset;
    usage.chart.push(0, t, l.used);
    usage.chart.push(1, t, l.used + l.reserved);
    usage.chart.limit = l.limit;
    drawUsage();
  }

  function drawUsage() {
    if (usage.chart) usage.chart.draw();
  }

  function ownerText(p) {
    if (!lastParts) return 'owner …';
    const pp = lastParts.partitions.find((x) => x.partition === p);
    if (!pp) return 'not folded here';
    return pp.owner ? 'owner ' + pp.owner + ' · epoch ' + pp.epoch + ' · lag ' + fmtInt(pp.lag) : 'no owner';
  }

  function renderTenantPartition(pv) {
    notePartitions(pv);
    const o = $('tenant-owner');
    if (o && usage.view) o.textContent = ownerText(usage.view.partition);
  }

  // ---- start ----

  function showApp() {
    $('login').hidden = true;
    $('app').hidden = false;
    renderWho();
    renderFoot();
    setLive('connecting', 'connecting');
    if (page.kind === 'tenant') showTenant();
    else showOverview();
  }

  async function start() {
    renderCrumbs();
    $('login-form').addEventListener('submit', login);
    setInterval(() => {
      tickCountdowns();
      sampleRates();
      if (page.kind === 'tenant') sampleUsage();
    }, 1000);
    window.addEventListener('resize', () => {
      if (rateChart.chart) rateChart.chart.draw();
      drawUsage();
    });
    const r = await getJSON('/api/session').catch(() => null);
    if (!r || r.status !== 200) {
      setLive('down', 'unreachable');
      return;
    }
    session = r.body;
    if (session.auth_required && !session.signed_in) showLogin(session.error);
    else showApp();
  }

  start();
})();
