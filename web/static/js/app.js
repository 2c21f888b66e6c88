// The app: a router over the URL's fragment (#/path?query), the
// navigation, and the helpers views share (forms that show a problem's
// field errors next to their fields, live streams that end with the
// view).
import { h, mount } from './dom.js';
import { session, loadMe, logout, hasRole, Problem } from './api.js';
import * as shop from './shop.js';
import * as ops from './console.js';

const routes = [];

/** route registers a view for a path pattern like '/orders/:id'. */
export function route(pattern, view) {
  const names = [];
  const re = new RegExp('^' + pattern.replace(/:([a-z_]+)/g, (_, n) => { names.push(n); return '([^/]+)'; }) + '$');
  routes.push({ re, names, view });
}

let cleanups = [];

/** onLeave runs f when the view is left (closes streams, timers). */
export function onLeave(f) { cleanups.push(f); }

/** go navigates to a fragment path. */
export function go(path) { location.hash = '#' + path; }

/** current is the fragment's path and query. */
export function current() {
  const frag = location.hash.slice(1) || '/';
  const [path, q] = frag.split('?');
  return { path, params: new URLSearchParams(q || '') };
}

let generation = 0;

async function render() {
  for (const f of cleanups) { try { f(); } catch (e) { /* gone anyway */ } }
  cleanups = [];
  const gen = ++generation;
  const { path, params } = current();
  const main = document.getElementById('main');
  delete main.dataset.view;
  nav();
  // The view renders into a container of its own, shown once it is
  // ready, and only if no later navigation has overtaken it.
  const view = h('div', { class: 'view' });
  const r = routes.find((x) => x.re.test(path));
  if (r) {
    const m = r.re.exec(path);
    const args = {};
    r.names.forEach((n, i) => { args[n] = decodeURIComponent(m[i + 1]); });
    try {
      await r.view(view, args, params);
    } catch (e) {
      mount(view, failure(e));
    }
  } else {
    mount(view, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ', h('a', { href: '#/' }, 'Back to the shop')));
  }
  if (gen !== generation) return;
  main.replaceChildren(view);
  document.title = (view.querySelector('h1')?.textContent || 'Agora') + ' · Agora';
  main.dataset.view = location.hash;
}

/** failure shows an error; a 401 leads to the login page. */
export function failure(e) {
  if (e instanceof Problem && e.status === 401) {
    return h('div', { class: 'notice' }, h('h1', {}, 'Please log in'), h('p', {}, 'This page is for logged-in users. ', h('a', { href: '#/login?next=' + encodeURIComponent(current().path) }, 'Log in')));
  }
  if (e instanceof Problem && e.status === 403) {
    return h('div', { class: 'notice' }, h('h1', {}, 'Not allowed'), h('p', {}, e.message));
  }
  return h('div', { class: 'notice error', role: 'alert' }, h('h1', {}, 'Something went wrong'), h('p', {}, e.message || String(e)));
}

/** cartCount is the number of items in the cart. */
export function cartCount() {
  return shop.cart().reduce((n, l) => n + l.quantity, 0);
}

export function nav() {
  const el = document.getElementById('nav');
  const me = session.me;
  const link = (href, text, extra) => h('a', { href, ...(extra || {}) }, text);
  const items = [link('#/', 'Shop'), link('#/cart', 'Cart (' + cartCount() + ')', { id: 'nav-cart' })];
  if (me) {
    items.push(link('#/orders', 'Orders'), link('#/account', 'Account'));
    if (hasRole('admin', 'merchant')) items.push(link(hasRole('admin') ? '#/ops' : '#/ops/catalog', 'Console', { id: 'nav-console' }));
    items.push(h('span', { class: 'who' }, me.name || me.email),
      h('button', { type: 'button', class: 'link', onclick: async () => { await logout(); go('/'); render(); } }, 'Log out'));
  } else {
    items.push(link('#/login', 'Log in'), link('#/register', 'Register'));
  }
  mount(el, items);
}

/**
 * form builds a form whose submit runs act(values); a Problem answer
 * shows its field errors next to the fields named like the problem's
 * fields (a field "shipping_address.city" goes next to the input named
 * so) and its detail above the button.
 */
export function form(fields, submitText, act, attrs) {
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, submitText);
  const f = h('form', { novalidate: true, ...(attrs || {}) }, fields, status, button);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of f.querySelectorAll('.field-error')) e.remove();
    for (const e of f.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
    status.textContent = '';
    status.className = 'form-status';
    const values = Object.fromEntries(new FormData(f).entries());
    button.disabled = true;
    try {
      await act(values, f);
    } catch (e) {
      status.className = 'form-status error';
      if (e instanceof Problem) {
        let placed = 0;
        for (const fe of e.errors) {
          const input = f.querySelector(`[name="${CSS.escape(fe.field)}"]`);
          const msg = h('span', { class: 'field-error', id: 'err-' + fe.field.replace(/[^a-z0-9_-]/gi, '-') }, fe.field + ' ' + fe.message);
          if (input) {
            input.setAttribute('aria-invalid', 'true');
            input.setAttribute('aria-describedby', msg.id);
            input.closest('label')?.append(msg);
            placed++;
          } else {
            status.append(msg, ' ');
          }
        }
        if (!placed || e.errors.length === 0) status.prepend((e.body.title ? e.body.title + ': ' : '') + e.message + (e.reason ? ' (' + e.reason + ')' : '') + ' ');
        const first = f.querySelector('[aria-invalid]');
        if (first) first.focus();
      } else {
        status.textContent = e.message || String(e);
      }
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

/** input is a labelled input. */
export function input(label, name, attrs) {
  return h('label', {}, h('span', {}, label), h('input', { name, ...(attrs || {}) }));
}

/** live opens a Server-Sent Events stream that closes with the view. */
export function live(url, handlers) {
  const es = new EventSource(url);
  for (const [ev, f] of Object.entries(handlers)) es.addEventListener(ev, f);
  onLeave(() => es.close());
  return es;
}

/** every runs f every ms while the view lasts. */
export function every(ms, f) {
  const t = setInterval(f, ms);
  onLeave(() => clearInterval(t));
}

addEventListener('hashchange', render);
addEventListener('agora:cart', nav);
shop.register(route);
ops.register(route);
loadMe().then(render);
