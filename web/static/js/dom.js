// DOM building that never parses markup: every string becomes a text
// node or an attribute value, so stored strings (product names, reasons,
// event data) always show as text.

/** h builds an element: h('a', {href: '#/'}, 'Home', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** mount replaces el's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

/** money formats {amount, currency} (integer minor units) without floats. */
export function money(m) {
  if (!m || m.currency == null) return '—';
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency: m.currency }).resolvedOptions().maximumFractionDigits;
  const neg = m.amount < 0;
  let s = String(Math.abs(m.amount)).padStart(digits + 1, '0');
  const whole = digits ? s.slice(0, -digits) : s;
  const frac = digits ? '.' + s.slice(-digits) : '';
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (neg ? '-' : '') + grouped + frac + ' ' + m.currency;
}

/** minor parses "12.34" in currency's minor units (an integer), or NaN. */
export function minor(text, currency) {
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  const m = /^\s*(\d+)(?:\.(\d*))?\s*$/.exec(text);
  if (!m || (m[2] || '').length > digits) return NaN;
  return Number(m[1] + (m[2] || '').padEnd(digits, '0'));
}

/** when formats a time for people. */
export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

/** badge is a status pill whose class follows the status. */
export function badge(status) {
  return h('span', { class: 'badge badge-' + String(status || '').toLowerCase().replace(/[^a-z]/g, '') }, status || '—');
}

/** json shows a value as indented JSON text. */
export function json(v) {
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

/** table builds a table from headers and rows of cells. */
export function table(headers, rows, attrs) {
  return h('div', { class: 'scroll' }, h('table', attrs || {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))
      : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'Nothing here yet.')))));
}
