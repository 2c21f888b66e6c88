// The operations console: live tail of the event log, stream browser,
// sagas and their timelines (with Retry), processing (projections,
// relays, consumers, dead letters), traces as waterfalls, services,
// charts, the audit log; merchants see the catalog and stock.
import { h, mount, money, minor, when, badge, json, table } from './dom.js';
import { get, post, query, newKey, hasRole, Problem } from './api.js';
import { go, form, input, every, onLeave } from './app.js';
import uPlot from '../vendor/uplot/uPlot.esm.js';

function tabs(active) {
  const all = hasRole('admin')
    ? [['/ops', 'Overview'], ['/ops/log', 'Live log'], ['/ops/sagas', 'Sagas'], ['/ops/processing', 'Processing'], ['/ops/traces', 'Traces'], ['/ops/services', 'Services'], ['/ops/audit', 'Audit log'], ['/ops/catalog', 'Catalog & stock']]
    : [['/ops/catalog', 'Catalog & stock']];
  return h('nav', { class: 'tabs', 'aria-label': 'Console' }, all.map(([p, t]) => h('a', { href: '#' + p, 'aria-current': p === active ? 'page' : null }, t)));
}

function page(main, active, title, ...body) {
  mount(main, tabs(active), h('h1', {}, title), body);
}

function admin() {
  if (!hasRole('admin')) throw new Problem(hasRole('merchant') ? 403 : 401, { detail: 'The operations console is for admins.' });
}

const streamLink = (id) => h('a', { href: '#/ops/streams/' + encodeURIComponent(id) }, id);
const traceLink = (id) => (id ? h('a', { href: '#/ops/traces/' + encodeURIComponent(id), class: 'trace' }, id.slice(0, 8) + '…') : '');

// ---- overview and charts

function chart(el, title, points, key, unit) {
  const data = [points.map((p) => Date.parse(p.at) / 1000), points.map((p) => p[key] ?? null)];
  const width = Math.max(280, Math.min(560, el.clientWidth || 560));
  const opts = { title, width, height: 180, scales: { x: { time: true } },
    series: [{}, { label: unit, stroke: '#2563eb', fill: 'rgba(37,99,235,0.12)', width: 2 }], legend: { show: false } };
  return new uPlot(opts, data, el);
}

async function overview(main) {
  admin();
  const o = await get('/api/v1/ops/overview').catch(() => ({}));
  const charts = h('div', { class: 'charts', id: 'charts' });
  page(main, '/ops', 'Operations',
    h('p', { class: 'muted' }, 'Tenant ', h('code', {}, o.tenant || '—'), ' · mode ', o.mode || '—', ' · events in every log ', String(o.head ?? '—')),
    h('h2', {}, 'Last 15 minutes'), charts,
    h('p', {}, h('a', { href: '#/ops/log' }, 'Watch the live log »')));
  let plots = [];
  const draw = async () => {
    let s;
    try { s = await get('/api/v1/ops/metrics/series'); } catch (e) { mount(charts, h('p', { class: 'muted' }, 'Charts unavailable: ' + e.message)); return; }
    const pts = s.points || [];
    plots.forEach((p) => p.destroy());
    charts.replaceChildren();
    const boxes = ['orders_per_sec', 'p99_ms', 'lag', 'errors_per_sec'].map(() => h('div', { class: 'chart' }));
    charts.append(...boxes);
    plots = [chart(boxes[0], 'Orders / s', pts, 'orders_per_sec', 'orders/s'), chart(boxes[1], 'Checkout p99 (ms)', pts, 'p99_ms', 'ms'),
      chart(boxes[2], 'Max lag (events)', pts, 'lag', 'events'), chart(boxes[3], '5xx / s', pts, 'errors_per_sec', '5xx/s')];
  };
  setTimeout(draw, 0); // once the page is shown: the charts fit its width
  every(5000, draw);
  onLeave(() => plots.forEach((p) => p.destroy()));
}

// ---- the event log

function eventRow(e, highlight) {
  return h('tr', { 'data-type': e.type, 'data-stream': e.stream_id, 'data-id': e.id, class: e.id && e.id === highlight ? 'highlight' : null },
    h('td', {}, (e.context ? e.context + '.' : '') + e.position), h('td', {}, when(e.recorded_at)), h('td', {}, h('code', {}, e.type)),
    h('td', {}, streamLink(e.stream_id)), h('td', {}, e.metadata?.tenant || ''), h('td', {}, traceLink(e.trace_id)));
}

// EventSource delivers named events only to listeners of that name; the
// log's frames are named by event type, so the tail reads the raw
// stream through fetch instead.
async function tail(url, onEvent, signal) {
  const res = await fetch(url, { headers: { Accept: 'text/event-stream' }, credentials: 'same-origin', signal });
  if (!res.ok) throw new Problem(res.status, await res.json().catch(() => ({})));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) onEvent(JSON.parse(data));
    }
  }
}

async function logView(main, _args, params) {
  admin();
  const filters = { type: params.get('type') || '', stream: params.get('stream') || '', tenant: params.get('tenant') || '', correlation_id: params.get('correlation_id') || '' };
  const highlight = params.get('highlight') || '';
  const tbody = h('tbody', { id: 'log' });
  const state = h('span', { role: 'status', class: 'muted', id: 'log-state' });
  let paused = false;
  const held = [];
  const keep = (e) => !filters.tenant || (e.metadata?.tenant || '') === filters.tenant;
  const show = (e) => {
    if (!keep(e)) return;
    tbody.prepend(eventRow(e, highlight));
    while (tbody.children.length > 300) tbody.lastChild.remove();
  };
  const pause = h('button', { type: 'button', id: 'pause', 'aria-pressed': 'false', onclick: () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) held.splice(0).forEach(show);
    state.textContent = paused ? 'Paused (' + held.length + ' held)' : 'Live';
  } }, 'Pause');
  const f = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go('/ops/log' + query(Object.fromEntries(new FormData(ev.target)))); } },
    input('Type', 'type', { value: filters.type, placeholder: 'ordering. or a type' }),
    input('Stream', 'stream', { value: filters.stream, placeholder: 'order-* or a stream ID' }),
    input('Tenant', 'tenant', { value: filters.tenant }),
    input('Correlation', 'correlation_id', { value: filters.correlation_id }),
    h('button', { type: 'submit' }, 'Filter'));
  page(main, '/ops/log', 'Live event log', f, h('p', {}, pause, ' ', state),
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Log.position', 'Recorded', 'Type', 'Stream', 'Tenant', 'Trace'].map((x) => h('th', { scope: 'col' }, x)))), tbody)));
  const first = await get('/api/v1/ops/log' + query({ type: filters.type, stream: filters.stream, correlation_id: filters.correlation_id, limit: 50 }));
  (first.items || []).forEach(show);
  if (filters.correlation_id) {
    state.textContent = 'The events of correlation ' + filters.correlation_id + (highlight ? '; the cause is highlighted' : '');
    setTimeout(() => tbody.querySelector('tr.highlight')?.scrollIntoView({ block: 'center' }), 0);
    return;
  }
  const after = first.cursor; // every context's log, where this page's read ended
  const ctl = new AbortController();
  onLeave(() => ctl.abort());
  state.textContent = 'Live';
  tail('/api/v1/ops/log/stream' + query({ type: filters.type, stream: filters.stream, after }), (e) => {
    if (paused) { held.push(e); state.textContent = 'Paused (' + held.length + ' held)'; } else show(e);
  }, ctl.signal).catch((e) => { if (!ctl.signal.aborted) state.textContent = 'Disconnected: ' + e.message; });
}

async function streamView(main, { id }, params) {
  admin();
  const from = params.get('from') || '';
  const s = await get('/api/v1/ops/streams/' + encodeURIComponent(id) + query({ from, limit: 100 }));
  page(main, '/ops/log', 'Stream ' + id,
    h('div', { class: 'events' }, (s.items || []).map((e) => h('details', { class: 'event', open: (s.items.length <= 12) || null },
      h('summary', {}, h('span', { class: 'muted' }, '#' + e.version + ' · ' + when(e.recorded_at) + ' · '), h('code', {}, e.type)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Position'), h('dd', {}, (e.context ? e.context + '.' : '') + e.position),
        h('dt', {}, 'Event ID'), h('dd', {}, h('code', {}, e.id)),
        h('dt', {}, 'Correlation'), h('dd', {}, e.metadata?.correlation_id ? h('a', { href: '#/ops/log' + query({ correlation_id: e.metadata.correlation_id }) }, e.metadata.correlation_id) : '—'),
        h('dt', {}, 'Causation'), h('dd', {}, e.metadata?.causation_id && e.metadata?.correlation_id
          ? h('a', { href: '#/ops/log' + query({ correlation_id: e.metadata.correlation_id, highlight: e.metadata.causation_id }), title: 'The message that caused this event, among its correlation' }, e.metadata.causation_id)
          : (e.metadata?.causation_id || '—')),
        h('dt', {}, 'User'), h('dd', {}, e.metadata?.user || '—'),
        h('dt', {}, 'Trace'), h('dd', {}, traceLink(e.trace_id) || '—')),
      h('h3', {}, 'Data'), json(e.data), h('h3', {}, 'Metadata'), json(e.metadata || {})))),
    s.next_from ? h('p', {}, h('a', { href: '#/ops/streams/' + encodeURIComponent(id) + query({ from: s.next_from }) }, 'Later events »')) : null);
}

// ---- sagas

async function sagas(main, _args, params) {
  admin();
  const status = params.get('status') || '';
  const type = params.get('type') || '';
  const cursor = params.get('cursor') || '';
  const list = await get('/api/v1/ops/sagas' + query({ status, type, cursor, limit: 50 }));
  const f = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go('/ops/sagas' + query(Object.fromEntries(new FormData(ev.target)))); } },
    h('label', {}, h('span', {}, 'Status'), h('select', { name: 'status' }, ['', 'Running', 'Compensating', 'Completed', 'Compensated', 'Failed'].map((s) => h('option', { value: s, selected: s === status || null }, s || 'any')))),
    input('Type', 'type', { value: type }), h('button', { type: 'submit' }, 'Filter'));
  page(main, '/ops/sagas', 'Sagas', f,
    table(['Saga', 'Type', 'Status', 'Updated'], (list.items || []).map((s) => [
      h('a', { href: '#/ops/sagas/' + encodeURIComponent(s.id) }, s.id), s.type, badge(s.status), when(s.updated_at)]), { id: 'sagas' }),
    list.next_cursor ? h('p', {}, h('a', { href: '#/ops/sagas' + query({ status, type, cursor: list.next_cursor }) }, 'More »')) : null);
}

async function sagaView(main, { id }) {
  admin();
  const s = await get('/api/v1/sagas/' + encodeURIComponent(id));
  const ev = await get('/api/v1/ops/streams/' + encodeURIComponent('saga-' + id) + '?limit=500').catch(() => ({ items: [] }));
  const items = ev.items || [];
  const t0 = items.length ? Date.parse(items[0].recorded_at) : 0;
  const traceID = items.find((e) => e.trace_id)?.trace_id;
  const msg = h('p', { role: 'status', id: 'retry-status' });
  const retry = s.status === 'Failed' ? h('button', { type: 'button', id: 'retry', onclick: async () => {
    retry.disabled = true;
    try {
      await post('/api/v1/sagas/' + encodeURIComponent(id) + '/retry', undefined, { 'Idempotency-Key': newKey() });
      msg.textContent = 'Retried; following it…';
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await get('/api/v1/sagas/' + encodeURIComponent(id));
        if (now.status !== 'Failed' && now.status !== 'Running' && now.status !== 'Compensating') break;
      }
      sagaView(main, { id });
    } catch (e) { msg.textContent = 'Retry refused: ' + e.message; retry.disabled = false; }
  } }, 'Retry') : null;
  page(main, '/ops/sagas', 'Saga ' + id,
    h('p', {}, badge(s.status), ' ', h('code', {}, s.type), s.error ? h('span', {}, ' — ', h('code', { id: 'saga-error' }, s.error)) : null,
      traceID ? h('span', {}, ' · trace ', traceLink(traceID)) : null),
    retry, msg,
    h('h2', {}, 'Steps'),
    table(['Step', 'Status', 'Attempts', 'At'], (s.steps || []).map((st) => [st.name, badge(st.status), String(st.attempts), when(st.at)]), { id: 'saga-steps' }),
    h('h2', {}, 'Timeline'),
    h('ol', { class: 'timeline', id: 'timeline' }, items.map((e, i) => {
      const at = Date.parse(e.recorded_at);
      const prev = i ? Date.parse(items[i - 1].recorded_at) : at;
      const d = e.data || {};
      return h('li', { class: /Compensat|Failed/.test(e.type) ? 'bad' : '' },
        h('span', { class: 'muted' }, '+' + (at - t0) + ' ms'), ' ', h('code', {}, e.type.replace(/^saga\./, '')),
        d.step != null ? ' step ' + d.step : '', d.attempt ? ' attempt ' + d.attempt : '', d.reason ? ' — ' + d.reason : '', d.error ? ' — ' + d.error : '',
        h('span', { class: 'muted' }, ' (' + (at - prev) + ' ms after the previous)'));
    })));
}

// ---- processing

async function processing(main) {
  admin();
  const p = await get('/api/v1/ops/processing');
  const dead = await get('/api/v1/ops/dead-letters?limit=50').catch(() => ({ items: [] }));
  const msg = h('p', { role: 'status', id: 'processing-status' });
  page(main, '/ops/processing', 'Processing', h('p', { class: 'muted' }, 'Events in every log ', String(p.head)), msg,
    h('h2', {}, 'Projections'),
    table(['Projection', 'Checkpoint', 'Lag', ''], (p.projections || []).map((x) => [x.name, String(x.checkpoint), String(x.lag),
      x.rebuilding ? rebuildProgress(x.rebuild) : h('span', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm('Rebuild projection ' + x.name + ' from the start of the log? Its read model is replaced when it catches up.')) return;
        try { await post('/api/v1/ops/projections/' + encodeURIComponent(x.name) + '/rebuild', undefined, { 'Idempotency-Key': newKey() }); msg.textContent = 'Rebuilding ' + x.name; setTimeout(() => processing(main), 500); } catch (e) { msg.textContent = e.message; }
      } }, 'Rebuild'), x.rebuild && x.rebuild.state === 'failed' ? h('span', { class: 'bad' }, ' last rebuild failed: ' + x.rebuild.error) : '')]), { id: 'projections' }),
    h('h2', {}, 'Relays'),
    table(['Relay', 'Checkpoint', 'Head', 'Lag'], (p.relays || []).map((x) => [x.name, String(x.checkpoint), String(x.head), String(x.lag)]), { id: 'relays' }),
    h('h2', {}, 'Consumers'),
    table(['Consumer', 'Stream', 'Pending', 'Ack pending', 'Redelivered', 'Dead'], (p.consumers || []).map((x) => [x.name, x.stream, String(x.pending), String(x.ack_pending), String(x.redelivered), String(x.dead ?? 0)]), { id: 'consumers' }),
    h('h2', {}, 'Dead letters'),
    table(['Consumer', 'Type', 'Error', 'Attempts', 'At', ''], (dead.items || []).map((d) => [d.consumer, d.type, d.error, String(d.attempts), when(d.at),
      h('button', { type: 'button', onclick: async () => {
        try { await post('/api/v1/ops/dead-letters/' + encodeURIComponent(d.id) + '/redeliver', undefined, { 'Idempotency-Key': newKey() }); processing(main); } catch (e) { msg.textContent = 'Redelivery failed: ' + e.message; }
      } }, 'Redeliver')]), { id: 'dead-letters' }));
  // Follow a running rebuild while this page shows.
  if ((p.projections || []).some((x) => x.rebuilding)) {
    setTimeout(() => { if (location.hash === '#/ops/processing') processing(main); }, 1000);
  }
}

// rebuildProgress shows how far a running rebuild has replayed the log.
function rebuildProgress(rb) {
  if (!rb || !rb.target) return 'rebuilding…';
  const pct = Math.min(100, Math.floor(100 * rb.position / rb.target));
  return h('span', {}, h('progress', { max: String(rb.target), value: String(Math.min(rb.position, rb.target)), 'aria-label': 'rebuild progress' }),
    ' rebuilding… ' + pct + ' % (' + rb.position + ' of ' + rb.target + ' events)');
}

// ---- traces

async function traces(main, _args, params) {
  admin();
  const f = { order_id: params.get('order_id') || '', min_duration_ms: params.get('min_duration_ms') || '', error: params.get('error') || '' };
  const sort = params.get('sort') || '';
  const list = await get('/api/v1/ops/traces' + query({ ...f, limit: sort === 'slowest' ? 500 : 50 }));
  let items = list.items || [];
  if (sort === 'slowest') items = items.slice().sort((a, b) => b.duration_ms - a.duration_ms).slice(0, 50);
  const form_ = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go('/ops/traces' + query({ ...Object.fromEntries(new FormData(ev.target)), sort })); } },
    input('Order', 'order_id', { value: f.order_id }), input('Min duration (ms)', 'min_duration_ms', { value: f.min_duration_ms, inputmode: 'numeric' }),
    h('label', {}, h('span', {}, 'Outcome'), h('select', { name: 'error' }, [['', 'any'], ['true', 'failed'], ['false', 'succeeded']].map(([v, t]) => h('option', { value: v, selected: v === f.error || null }, t)))),
    h('button', { type: 'submit' }, 'Filter'));
  page(main, '/ops/traces', 'Traces', form_,
    h('p', {}, h('a', { href: '#/ops/traces' }, 'Newest'), ' · ', h('a', { href: '#/ops/traces?sort=slowest' }, 'Slowest'), ' · ', h('a', { href: '#/ops/traces?error=true' }, 'Failed'),
      list.partial?.length ? h('span', { class: 'warn' }, ' · partial: no answer from ' + list.partial.join(', ')) : null),
    table(['Trace', 'Root', 'Start', 'Duration', 'Spans', 'Services', ''], items.map((t) => [
      h('a', { href: '#/ops/traces/' + encodeURIComponent(t.trace_id) }, t.trace_id.slice(0, 12) + '…'), t.root || t.name || '', when(t.start),
      (t.duration_ms ?? '') + ' ms', String(t.spans ?? t.span_count ?? ''), (t.services || []).join(', '), t.error ? badge('error') : '']), { id: 'traces' }));
}

const palette = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563', '#db2777'];

async function traceView(main, { id }) {
  admin();
  const t = await get('/api/v1/ops/traces/' + encodeURIComponent(id));
  const spans = (t.spans || []).map((s) => ({ ...s, s: Date.parse(s.start), e: Date.parse(s.end) }));
  spans.sort((a, b) => a.s - b.s);
  const byID = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => { let d = 0; let p = s; while (p && p.parent_span_id && byID.has(p.parent_span_id) && d < 40) { p = byID.get(p.parent_span_id); d++; } return d; };
  const t0 = Math.min(...spans.map((s) => s.s));
  const t1 = Math.max(...spans.map((s) => s.e));
  const total = Math.max(1, t1 - t0);
  const services = [...new Set(spans.map((s) => s.service || '?'))];
  const color = (svc) => palette[services.indexOf(svc) % palette.length];
  const detail = h('div', { class: 'span-detail', id: 'span-detail' }, h('p', { class: 'muted' }, 'Select a span to see its attributes, events and log lines.'));
  const showSpan = (s) => mount(detail, h('h3', {}, s.name), h('p', {}, badge(s.status?.code || s.status || ''), ' ', s.service, ' · ', (s.e - s.s) + ' ms'),
    h('h4', {}, 'Attributes'), json(s.attributes || {}),
    (s.events || []).length ? [h('h4', {}, 'Events and log lines'), h('ul', { class: 'logs' }, s.events.map((e) => h('li', {}, h('span', { class: 'muted' }, when(e.time) + ' '), e.name, ' ', e.attributes ? JSON.stringify(e.attributes) : '')))] : null,
    (s.links || []).length ? [h('h4', {}, 'Links'), h('ul', {}, s.links.map((l) => h('li', {}, traceLink(l.trace_id), ' span ', h('code', {}, l.span_id || ''))))] : null);
  page(main, '/ops/traces', 'Trace ' + id,
    h('p', { class: 'muted' }, spans.length + ' spans · ' + total + ' ms · ', services.map((s) => h('span', { class: 'legend' }, h('span', { class: 'swatch', 'data-color': color(s) }), s + ' '))),
    h('div', { class: 'waterfall', id: 'waterfall', role: 'list' }, spans.map((s) => {
      const bar = h('span', { class: 'bar' + ((s.status?.code || s.status) === 'Error' || (s.status?.code || s.status) === 'error' ? ' failed' : '') });
      // Geometry through the CSSOM (allowed by the CSP), not style attributes.
      bar.style.marginLeft = ((s.s - t0) / total) * 100 + '%';
      bar.style.width = Math.max(0.3, ((s.e - s.s) / total) * 100) + '%';
      bar.style.background = color(s.service || '?');
      const row = h('button', { type: 'button', class: 'span-row', role: 'listitem', 'data-service': s.service || '', onclick: () => showSpan(s) },
        h('span', { class: 'label' }, h('span', { class: 'indent' }), h('strong', {}, s.service || '?'), ' ', s.name),
        h('span', { class: 'track' }, bar), h('span', { class: 'dur' }, (s.e - s.s) + ' ms'));
      row.querySelector('.indent').style.paddingLeft = depth(s) * 0.75 + 'em';
      return row;
    })), detail);
  for (const sw of main.querySelectorAll('.swatch')) sw.style.background = sw.dataset.color;
}

// ---- services

async function servicesView(main) {
  admin();
  const body = h('div', { id: 'services' });
  const draw = async () => {
    const s = await get('/api/v1/ops/services');
    mount(body, (s.clusters || []).map((c) => h('section', { class: 'cluster' },
      h('h2', {}, c.name, ' ', badge(c.breaker)),
      h('p', { class: 'muted' }, 'In flight ', String(c.in_flight ?? 0), ' of ', String(c.max_concurrent ?? '—')),
      table(['Instance', 'URL', 'Weight', 'Health', 'Ejected'], (c.instances || []).map((i) => [i.id, i.url, String(i.weight),
        badge(i.healthy ? 'healthy' : 'unhealthy'), i.ejected ? 'until ' + when(i.ejected_until) : 'no'])))));
  };
  await draw();
  page(main, '/ops/services', 'Services', body);
  every(5000, () => draw().catch(() => {}));
}

async function auditView(main, _args, params) {
  admin();
  const o = await get('/api/v1/ops/overview');
  const from = params.get('from') || '';
  const s = await get('/api/v1/ops/streams/' + encodeURIComponent(o.audit_stream) + query({ from, limit: 100 })).catch((e) => { if (e.status === 404) return { items: [] }; throw e; });
  page(main, '/ops/audit', 'Audit log',
    table(['#', 'When', 'Event', 'User', 'Details'], (s.items || []).map((e) => [String(e.version), when(e.recorded_at), h('code', {}, e.type), e.metadata?.user || '', JSON.stringify(e.data)]), { id: 'audit' }),
    s.next_from ? h('p', {}, h('a', { href: '#/ops/audit' + query({ from: s.next_from }) }, 'Later »')) : null);
}

// ---- catalog and stock (merchants and admins)

async function catalogView(main, _args, params) {
  if (!hasRole('admin', 'merchant')) throw new Problem(401, {});
  const cursor = params.get('cursor') || '';
  const list = await get('/api/v1/products' + query({ cursor, limit: 50 }));
  const stock = await Promise.all(list.items.map((p) => get('/api/v1/inventory/' + encodeURIComponent(p.id)).catch(() => null)));
  const msg = h('p', { role: 'status' });
  page(main, '/ops/catalog', 'Catalog & stock', msg,
    table(['Product', 'SKU', 'Price', 'On hand', 'Reserved', 'Available', 'Restock'], list.items.map((p, i) => {
      const q = h('input', { type: 'number', min: 1, value: 10, 'aria-label': 'Quantity to restock ' + p.name, class: 'narrow' });
      return [h('a', { href: '#/product/' + encodeURIComponent(p.id) }, p.name), p.sku, money(p.price),
        String(stock[i]?.on_hand ?? 0), String(stock[i]?.reserved ?? 0), String(stock[i]?.available ?? 0),
        h('span', { class: 'row' }, q, h('button', { type: 'button', onclick: async () => {
          try { await post('/api/v1/inventory/' + encodeURIComponent(p.id) + '/restock', { quantity: parseInt(q.value, 10) }, { 'Idempotency-Key': newKey() }); catalogView(main, _args, params); } catch (e) { msg.textContent = e.message; }
        } }, 'Restock'))];
    }), { id: 'stock' }),
    list.next_cursor ? h('p', {}, h('a', { href: '#/ops/catalog' + query({ cursor: list.next_cursor }) }, 'More »')) : null,
    h('h2', {}, 'New product'),
    form([input('SKU', 'sku', { required: true }), input('Name', 'name', { required: true }), input('Description', 'description'),
      input('Price', 'price', { inputmode: 'decimal', required: true, placeholder: '19.99' }), input('Currency', 'currency', { value: 'USD', maxlength: 3 })],
    'Create product', async (v) => {
      const amount = minor(v.price, v.currency || 'USD');
      if (!(amount >= 0)) throw new Problem(400, { title: 'Invalid price', errors: [{ field: 'price', message: 'must be an amount like 19.99' }] });
      await post('/api/v1/products', { sku: v.sku, name: v.name, description: v.description, price: { amount, currency: v.currency || 'USD' } }, { 'Idempotency-Key': newKey() });
      catalogView(main, _args, params);
    }, { id: 'new-product' }));
}

/** register adds the console's pages. */
export function register(route) {
  route('/ops', overview);
  route('/ops/log', logView);
  route('/ops/streams/:id', streamView);
  route('/ops/sagas', sagas);
  route('/ops/sagas/:id', sagaView);
  route('/ops/processing', processing);
  route('/ops/traces', traces);
  route('/ops/traces/:id', traceView);
  route('/ops/services', servicesView);
  route('/ops/audit', auditView);
  route('/ops/catalog', catalogView);
}

