// farm web console: polls this node's API (same origin) and draws the farm as this node sees
// it. No framework, no build step, nothing fetched from elsewhere.
//   GET /api/v1/status           every second: members, this node, checkers, counters
//   GET /api/v1/buckets          when the table's generation changes: the bucket map
//   GET /api/v1/logs/<log>       every 3 s: module and application logs (with the token only)
//   POST /api/v1/<action>        start, stop, restart, drain, undrain, reload, weight, with
//                                Authorization: Bearer <token from sessionStorage>
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'farm.console.token';
  const HISTORY = 61; // status samples kept for the charts (one a second)
  // Owner colours (none is a state colour: green, orange, red, grey are taken).
  const PALETTE = ['#2f6fdf', '#8e44ad', '#16a3a3', '#b5651d', '#d63384', '#34495e',
    '#7a8b00', '#00a0e0', '#a52a6a', '#5b6bd6', '#0e7c61', '#c17f00'];
  const UNOWNED = '#ffffff';

  let status = null;
  let samples = [];
  let bucketGen = -1;
  let bucketTable = null;
  let seen = new Map(); // member id -> state shown last, for the transitions this page saw
  let observed = [];    // {at: Date, text}
  let moduleLines = [];
  let pending = null;   // the action waiting for confirmation

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  function memberColour(id) {
    const i = status ? status.members.findIndex((m) => m.id === id) : -1;
    return i < 0 ? '#000000' : PALETTE[i % PALETTE.length];
  }

  function stateClass(s) {
    return { UP: 'up', WAIT: 'wait', STOP: 'stop', STARTING: 'trans', STOPPING: 'trans' }[s] || 'none';
  }

  function badge(text, cls, title) {
    return el('span', { class: 'state ' + cls, text, title: title || '', 'data-state': text });
  }

  function ago(ms) {
    if (ms === null || ms === undefined) return 'never';
    if (ms < 1000) return ms + ' ms ago';
    if (ms < 120000) return (ms / 1000).toFixed(1) + ' s ago';
    return Math.round(ms / 60000) + ' min ago';
  }

  function since(unixMs) {
    return unixMs ? ago(Math.max(0, Date.now() - unixMs)) + ' (' + new Date(unixMs).toLocaleTimeString() + ')' : '—';
  }

  async function getJson(path, headers) {
    // A request that hangs must not stop the polling: give up after 5 s.
    const r = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(5000), headers: headers || {} });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  function banner(text) {
    const b = $('banner');
    b.hidden = !text;
    b.textContent = text || '';
  }

  // ---- the farm table ----

  function memberView(m) {
    if (m.is_self) return { text: status.state, cls: stateClass(status.state) };
    if (!m.live) return { text: m.state ? 'UNREACHABLE' : 'NOT HEARD', cls: 'down', title: 'no heartbeat ' + ago(m.last_heard_ms_ago) };
    return { text: m.state || '?', cls: stateClass(m.state) };
  }

  function drawMembers() {
    const body = $('members').tBodies[0];
    const rows = status.members.map((m) => {
      const v = memberView(m);
      const prev = seen.get(m.id);
      if (!m.is_self && prev !== undefined && prev !== v.text) observed.unshift({ at: new Date(), text: m.name + ': ' + prev + ' → ' + v.text });
      seen.set(m.id, v.text);
      const conns = m.is_self && status.dataplane ? String(status.dataplane.flows || 0) : '—';
      const link = m.console_url
        ? el('a', { href: m.console_url, text: m.is_self ? 'this page' : m.console_url.replace(/\/$/, '') })
        : el('span', { class: 'muted', text: '—' });
      const name = el('td', {}, el('span', { class: 'swatch', title: 'colour in the bucket map' }), m.name + (m.is_self ? ' (this node)' : ''));
      name.firstChild.style.background = memberColour(m.id);
      return el('tr', { class: m.is_self ? 'self' : '', 'data-node': m.name },
        name,
        el('td', {}, badge(v.text, v.cls, v.title)),
        el('td', { text: status.view.includes(m.id) ? 'yes' : 'no' }),
        el('td', { class: 'num', text: String(m.is_self && status.live ? status.live.weight : m.weight) }),
        el('td', { class: 'num', text: String(m.buckets) }),
        el('td', { class: 'num', text: conns }),
        el('td', { text: m.is_self ? 'this node' : ago(m.last_heard_ms_ago) }),
        el('td', {}, link));
    });
    body.replaceChildren(...rows);
  }

  function drawFacts() {
    const st = status;
    const dp = st.dataplane;
    const live = st.live;
    const rejected = Object.values(st.heartbeat.rejected || {}).reduce((a, b) => a + b, 0);
    const facts = [
      ['state', st.state + ' since ' + since(st.state_since_unix_ms)],
      ['pending command', st.pending_command || '—'],
      ['waiting on', st.waiting_on.length ? st.waiting_on.join(', ') : '—'],
      ['weight', live ? live.weight + (live.weight === 0 ? ' (drained)' : '') + ', file ' + live.config_weight : '—'],
      ['buckets', st.buckets_owned + ' of ' + st.buckets_total + (st.buckets_draining ? ', ' + st.buckets_draining + ' draining' : '')],
      ['table generation', String(st.table_generation)],
      ['heartbeats', st.heartbeat.rx + ' received, ' + st.heartbeat.tx + ' sent, ' + rejected + ' rejected'],
      ['restarts', st.restarts.count + ' of ' + st.restarts.maxloop + ' in ' + st.restarts.loop_interval_secs + ' s'],
      ['data plane', dp ? 'pid ' + dp.pid + ', link ' + (dp.link_up ? 'up' : 'DOWN') + ', ' + dp.lcores_online + '/' + dp.lcores +
        ' lcores awake, lease ' + dp.lease_left_ms + ' ms' : 'none (control only, or not attached)'],
      ['connections held', dp ? String(dp.flows || 0) : '—'],
      ['last reload', live && live.last_reload ? live.last_reload.outcome + ' ' + since(live.last_reload.unix_ms) : '—'],
    ];
    $('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  }

  function drawCheckers() {
    // A stopped module runs no checker: its verdicts are the last ones, not current.
    const running = status.state !== 'STOP';
    const rows = status.checkers.map((c) => el('tr', { 'data-checker': c.name },
      el('td', {}, c.name + ' ', el('span', { class: 'muted', text: c.kind })),
      el('td', { text: c.action }),
      running
        ? el('td', { class: c.healthy ? 'verdict-ok' : 'verdict-bad', text: c.healthy ? 'ok' : 'FAILED' })
        : el('td', { class: 'muted', text: 'not running' }),
      el('td', { class: 'detail', text: c.last_ok === null ? 'not run yet'
        : (c.last_ok ? 'ok' : 'failed') + (c.last_detail ? ': ' + c.last_detail : '') }),
      el('td', { text: c.last_run_unix_ms ? ago(Math.max(0, Date.now() - c.last_run_unix_ms)) : '—' }),
      el('td', { class: 'num', text: c.runs + ' / ' + c.failures })));
    if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'muted', text: 'no checker configured', colSpan: 6 })));
    $('checkers').tBodies[0].replaceChildren(...rows);
  }

  function drawTransitions() {
    // This node's own transitions come from its module log; the page adds what it saw of
    // the peers (they are in their own consoles' logs).
    const fromLog = [];
    for (const line of moduleLines) {
      const m = /^(\S+) \S (state \S+ -> \S+.*)$/.exec(line);
      if (m) fromLog.push({ at: new Date(m[1]), text: status ? status.node + ': ' + m[2] : m[2] });
    }
    const all = fromLog.concat(observed.map((o) => ({ at: o.at, text: o.text + ' (seen by this page)' })))
      .sort((a, b) => b.at - a.at).slice(0, 15);
    observed = observed.slice(0, 30);
    const items = all.map((t) => el('li', {}, el('time', { text: t.at.toLocaleTimeString() }), t.text));
    if (!items.length) items.push(el('li', { class: 'muted', text: 'none yet' }));
    $('transitions').replaceChildren(...items);
  }

  // ---- the bucket map ----

  function drawBuckets() {
    const t = bucketTable;
    const c = $('bucket-map');
    if (!t) return;
    const n = t.owners.length;
    const cols = Math.ceil(Math.sqrt(n));
    const rows = Math.ceil(n / cols);
    const cell = Math.max(2, Math.floor(512 / cols));
    c.width = cols * cell;
    c.height = rows * cell;
    c.dataset.cols = cols;
    c.dataset.cell = cell;
    c.dataset.generation = t.table_generation;
    c.dataset.buckets = n;
    const g = c.getContext('2d');
    g.fillStyle = '#e3e6ea';
    g.fillRect(0, 0, c.width, c.height);
    const gap = cell >= 6 ? 1 : 0;
    const counts = new Map();
    let handovers = 0;
    let unowned = 0;
    for (let b = 0; b < n; b++) {
      const x = (b % cols) * cell;
      const y = Math.floor(b / cols) * cell;
      const o = t.owners[b];
      const p = t.prev_owners[b];
      const s = cell - gap;
      if (o === null) unowned++;
      else counts.set(o, (counts.get(o) || 0) + 1);
      g.fillStyle = o === null ? UNOWNED : memberColour(o);
      g.fillRect(x, y, s, s);
      if (p !== null) {
        // Handover: stripes of the previous owner (still draining its flows), dark outline.
        handovers++;
        g.save();
        g.beginPath();
        g.rect(x, y, s, s);
        g.clip();
        g.strokeStyle = memberColour(p);
        g.lineWidth = Math.max(1, cell / 6);
        for (let k = -s; k < s; k += Math.max(3, cell / 3)) {
          g.beginPath();
          g.moveTo(x + k, y + s);
          g.lineTo(x + k + s, y);
          g.stroke();
        }
        g.restore();
        if (cell >= 6) {
          g.strokeStyle = '#10151b';
          g.lineWidth = 1;
          g.strokeRect(x + 0.5, y + 0.5, s - 1, s - 1);
        }
      }
    }
    c.dataset.handovers = handovers;
    $('bucket-gen').textContent = n + ' buckets, generation ' + t.table_generation;
    const items = status.members.map((m) => {
      const sw = el('span', { class: 'swatch' });
      sw.style.background = memberColour(m.id);
      return el('li', { 'data-node-id': String(m.id), 'data-node': m.name, 'data-colour': memberColour(m.id) },
        sw, m.name + ': ' + (counts.get(m.id) || 0));
    });
    const hs = el('span', { class: 'swatch hatched' });
    hs.style.background = '#7f8a96';
    items.push(el('li', {}, hs, 'handover, previous owner draining: ' + handovers));
    const us = el('span', { class: 'swatch' });
    us.style.background = UNOWNED;
    items.push(el('li', {}, us, 'unowned: ' + unowned));
    $('bucket-legend').replaceChildren(...items);
  }

  async function pollBuckets() {
    if (!status || status.table_generation === bucketGen) return;
    try {
      bucketTable = await getJson('/api/v1/buckets');
      bucketGen = bucketTable.table_generation;
      drawBuckets();
    } catch (e) {
      $('bucket-gen').textContent = '(no table yet)';
    }
  }

  // ---- the charts ----

  function dropped(c) {
    let d = (c.no_rule || 0) + (c.no_owner || 0);
    for (const [k, v] of Object.entries(c)) if (k.startsWith('drop_')) d += v;
    return d;
  }

  function rates(pick) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      const dt = (b.t - a.t) / 1000;
      out.push(dt > 0 ? Math.max(0, (pick(b.c) - pick(a.c)) / dt) : 0);
    }
    return out;
  }

  function chart(canvas, series) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 480;
    const h = canvas.clientHeight || 130;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const max = Math.max(1, ...series.flatMap((s) => s.data));
    const left = 54;
    const top = 8;
    const bottom = h - 16;
    g.strokeStyle = '#d8dce1';
    g.fillStyle = '#69717c';
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (const f of [0, 0.5, 1]) {
      const y = Math.round(bottom - f * (bottom - top)) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(w - 4, y);
      g.stroke();
      g.fillText(fmt(max * f), 2, y + 4);
    }
    g.fillText('-60 s', left, h - 3);
    g.fillText('now', w - 26, h - 3);
    const step = (w - 4 - left) / (HISTORY - 2);
    for (const s of series) {
      g.strokeStyle = s.colour;
      g.lineWidth = 1.5;
      g.beginPath();
      const off = HISTORY - 1 - s.data.length;
      s.data.forEach((v, i) => {
        const x = left + (off + i) * step;
        const y = bottom - (v / max) * (bottom - top);
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  function fmt(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    if (v === 0) return '0';
    return v >= 10 ? Math.round(v).toString() : v.toFixed(1);
  }

  function drawCharts() {
    const dp = status.dataplane;
    if (dp) samples.push({ t: Date.now(), c: dp.counters });
    else samples = [];
    samples = samples.slice(-HISTORY);
    $('dp-note').textContent = dp ? '' : 'No data plane attached: nothing to count.';
    chart($('chart-packets'), [
      { colour: '#2f6fdf', data: rates((c) => c.rx || 0) },
      { colour: '#2e9d3e', data: rates((c) => c.to_tap || 0) },
    ]);
    chart($('chart-drops'), [
      { colour: '#8e44ad', data: rates((c) => c.not_mine || 0) },
      { colour: '#c0392b', data: rates(dropped) },
    ]);
  }

  // ---- polling ----

  async function pollStatus() {
    try {
      status = await getJson('/api/v1/status');
    } catch (e) {
      banner('farmd does not answer (' + e.message + '); trying again every second.');
      $('updated').textContent = '';
      return;
    }
    banner('');
    document.title = status.node + ' · ' + status.module + ' · farm console';
    $('module').textContent = status.module;
    $('node').textContent = status.node;
    $('self-state').replaceWith(Object.assign(badge(status.state, stateClass(status.state)), { id: 'self-state' }));
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    const w = $('weight');
    if (document.activeElement !== w && status.live) w.value = status.live.weight;
    drawMembers();
    drawFacts();
    drawCheckers();
    drawCharts();
    drawTransitions();
    await pollBuckets();
  }

  async function pollLogs() {
    for (const log of ['module', 'application']) {
      const pre = $('log-' + log);
      // The logs (script output, commands and their reasons) need the API token.
      if (!token()) {
        pre.textContent = '(the logs need the API token: enter it above)';
        if (log === 'module') moduleLines = [];
        continue;
      }
      try {
        const t = await getJson('/api/v1/logs/' + log, { 'Authorization': 'Bearer ' + token() });
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent = t.lines.length ? t.lines.join('\n') : '(empty)';
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        if (log === 'module') moduleLines = t.lines;
      } catch (e) {
        pre.textContent = '(' + e.message + ')';
      }
    }
    if (status) drawTransitions();
  }

  function every(ms, f) {
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try { await f(); } finally { busy = false; }
    };
    tick();
    setInterval(tick, ms);
  }

  // ---- token and actions ----

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  function showToken() {
    $('token-status').textContent = token() ? 'token set for this tab' : 'no token: read only';
  }

  const DESCRIBE = {
    start: 'Start the module on {node}: it joins the farm once its checkers pass.',
    stop: 'Stop the module on {node}: new connections go to the other nodes at once, held ones drain, then stop_both runs.',
    restart: 'Restart the module on {node} (stop, then start).',
    drain: 'Drain {node} (weight 0): new connections go to the other nodes, held ones finish here; the node stays UP.',
    undrain: 'Give {node} its configured weight back.',
    reload: 'Reload the configuration file on {node} (checked first: a broken file changes nothing).',
    weight: 'Set the weight of {node} to {w} (until undrain or a reload that changes the file\'s weight).',
  };

  function ask(action) {
    const result = $('action-result');
    if (!token()) {
      result.className = 'err';
      result.textContent = 'Enter the API token first (top right).';
      return;
    }
    const w = $('weight').value;
    if (action === 'weight' && !/^\d+$/.test(w)) {
      result.className = 'err';
      result.textContent = 'A weight is a whole number from 0 to 1000.';
      return;
    }
    pending = { action, weight: Number(w) };
    const node = status ? status.node : 'this node';
    $('confirm-text').textContent = DESCRIBE[action].replace('{node}', node).replace('{w}', w);
    $('confirm-ok').textContent = action.charAt(0).toUpperCase() + action.slice(1);
    $('confirm').showModal();
  }

  async function run() {
    const p = pending;
    pending = null;
    $('confirm').close();
    if (!p) return;
    const result = $('action-result');
    const body = p.action === 'weight' ? { weight: p.weight, reason: 'web console' } : { reason: 'web console' };
    result.className = 'muted';
    result.textContent = p.action + ': sending…';
    try {
      const r = await fetch('/api/v1/' + p.action, {
        method: 'POST',
        cache: 'no-store',
        headers: { 'Authorization': 'Bearer ' + token(), 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (r.ok) {
        result.className = 'ok';
        result.textContent = p.action + ': accepted at ' + new Date().toLocaleTimeString();
      } else {
        result.className = 'err';
        result.textContent = p.action + ': HTTP ' + r.status + ' ' + (answer.error || '') + (r.status === 401 ? ' (check the token)' : '');
      }
    } catch (e) {
      result.className = 'err';
      result.textContent = p.action + ': ' + e.message;
    }
    pollStatus();
  }

  function setup() {
    const input = $('token');
    const use = () => {
      const v = input.value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      input.value = '';
      showToken();
      pollLogs();
    };
    $('token-use').addEventListener('click', use);
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') use(); });
    $('token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showToken(); });
    for (const b of document.querySelectorAll('#actions button[data-action]')) {
      b.addEventListener('click', () => ask(b.dataset.action));
    }
    $('confirm-ok').addEventListener('click', run);
    $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
    showToken();
    every(1000, pollStatus);
    every(3000, pollLogs);
  }

  document.addEventListener('DOMContentLoaded', setup);
})();
