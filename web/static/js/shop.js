// The storefront: catalog, product, cart, register and log in, checkout,
// an order's page following it live, order history, balance and
// transfers.
import { h, mount, money, minor, when, badge, table } from './dom.js';
import { get, getAfter, post, write, query, newKey, session, login, Problem } from './api.js';
import { go, form, input, live } from './app.js';

const CART = 'agora.cart';

/** cart is the cart's lines: [{product_id, name, price, quantity}]. */
export function cart() {
  try {
    const c = JSON.parse(localStorage.getItem(CART) || '[]');
    return Array.isArray(c) ? c : [];
  } catch (e) {
    return [];
  }
}

function saveCart(lines) {
  localStorage.setItem(CART, JSON.stringify(lines));
  dispatchEvent(new Event('agora:cart'));
}

function addToCart(p, quantity) {
  const lines = cart();
  const l = lines.find((x) => x.product_id === p.id);
  if (l) l.quantity += quantity;
  else lines.push({ product_id: p.id, name: p.name, price: p.price, quantity });
  saveCart(lines);
}

function totals(lines) {
  const by = {};
  for (const l of lines) {
    if (!l.price) continue;
    by[l.price.currency] = (by[l.price.currency] || 0) + l.price.amount * l.quantity;
  }
  return Object.entries(by).map(([currency, amount]) => ({ amount, currency }));
}

function productCard(p) {
  const add = h('button', { type: 'button', class: 'add', 'data-product': p.id, onclick: () => { addToCart(p, 1); add.textContent = 'Added ✓'; } }, 'Add to cart');
  return h('li', { class: 'card' },
    h('a', { href: '#/product/' + encodeURIComponent(p.id), class: 'name' }, p.name),
    h('p', { class: 'desc' }, p.description || ''),
    h('p', { class: 'price' }, money(p.price)),
    add);
}

async function catalog(main, _args, params) {
  const q = params.get('q') || '';
  const cursor = params.get('cursor') || '';
  const page = await get('/api/v1/products' + query({ q, cursor, limit: 12 }));
  const search = h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); go('/' + query({ q: e.target.q.value.trim() })); } },
    h('label', {}, h('span', { class: 'sr' }, 'Search products'), h('input', { name: 'q', type: 'search', value: q, placeholder: 'Search products' })),
    h('button', { type: 'submit' }, 'Search'));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
    cursor ? h('a', { href: '#/' + query({ q }) }, '« First page') : null,
    page.next_cursor ? h('a', { href: '#/' + query({ q, cursor: page.next_cursor }), id: 'next-page' }, 'Next page »') : null);
  mount(main,
    h('h1', {}, q ? 'Products matching “' + q + '”' : 'Products'),
    search,
    page.items.length ? h('ul', { class: 'grid', id: 'products' }, page.items.map(productCard)) : h('p', { class: 'muted' }, 'No products found.'),
    pager);
}

async function product(main, { id }) {
  const p = await get('/api/v1/products/' + encodeURIComponent(id));
  const avail = h('p', { id: 'availability', class: 'muted' }, 'Checking stock…');
  const show = (s) => {
    avail.textContent = s.available > 0 ? s.available + ' in stock' : 'Out of stock';
    avail.className = s.available > 0 ? 'ok' : 'warn';
  };
  try {
    show(await get('/api/v1/inventory/' + encodeURIComponent(id)));
    // Live: the stock as server-sent events, as others buy and restock.
    live('/api/v1/inventory/' + encodeURIComponent(id) + '/updates', { stock: (ev) => show(JSON.parse(ev.data)) });
  } catch (e) {
    avail.textContent = e.status === 404 ? 'Not stocked yet' : 'Stock unknown';
    avail.className = 'warn';
  }
  const qty = h('input', { name: 'quantity', type: 'number', min: 1, max: 100, value: 1, inputmode: 'numeric' });
  const done = h('span', { role: 'status', 'aria-live': 'polite' });
  mount(main,
    h('p', {}, h('a', { href: '#/' }, '« All products')),
    h('article', { class: 'product' },
      h('h1', {}, p.name),
      h('p', { class: 'sku muted' }, 'SKU ', p.sku),
      h('p', { class: 'desc' }, p.description || ''),
      h('p', { class: 'price big' }, money(p.price)),
      avail,
      h('div', { class: 'row' }, h('label', {}, h('span', {}, 'Quantity'), qty),
        h('button', { type: 'button', id: 'add-to-cart', onclick: () => {
          const n = Math.max(1, Math.min(100, parseInt(qty.value, 10) || 1));
          addToCart(p, n);
          done.textContent = ' Added ' + n + ' to the cart.';
        } }, 'Add to cart'), done)));
}

function cartView(main) {
  const lines = cart();
  const rows = lines.map((l, i) => [
    h('a', { href: '#/product/' + encodeURIComponent(l.product_id) }, l.name),
    money(l.price),
    h('input', { type: 'number', min: 1, max: 100, value: l.quantity, 'aria-label': 'Quantity of ' + l.name, onchange: (e) => {
      const n = parseInt(e.target.value, 10);
      const all = cart();
      if (n > 0) all[i].quantity = Math.min(100, n); else all.splice(i, 1);
      saveCart(all);
      cartView(main);
    } }),
    h('button', { type: 'button', class: 'link', onclick: () => { const all = cart(); all.splice(i, 1); saveCart(all); cartView(main); } }, 'Remove'),
  ]);
  mount(main, h('h1', {}, 'Cart'),
    table(['Product', 'Price', 'Quantity', ''], rows, { id: 'cart' }),
    lines.length ? h('p', { class: 'total' }, 'Total: ', totals(lines).map(money).join(' + ')) : null,
    lines.length ? h('p', {}, h('a', { class: 'button', href: session.me ? '#/checkout' : '#/login?next=/checkout', id: 'to-checkout' }, 'Check out')) : h('p', {}, h('a', { href: '#/' }, 'Browse products')));
}

function loginView(main, _args, params) {
  const next = params.get('next') || '/';
  mount(main, h('h1', {}, 'Log in'),
    form([input('Email', 'email', { type: 'email', autocomplete: 'username', required: true }),
      input('Password', 'password', { type: 'password', autocomplete: 'current-password', required: true })],
    'Log in', async (v) => {
      await login(v.email, v.password);
      go(next.startsWith('/') ? next : '/');
    }, { id: 'login' }),
    h('p', {}, 'New here? ', h('a', { href: '#/register' + query({ next }) }, 'Register')));
}

function registerView(main, _args, params) {
  const next = params.get('next') || '/';
  mount(main, h('h1', {}, 'Register'),
    form([input('Name', 'name', { autocomplete: 'name', required: true }),
      input('Email', 'email', { type: 'email', autocomplete: 'email', required: true }),
      input('Password', 'password', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 })],
    'Create my account', async (v) => {
      await post('/api/v1/customers', { name: v.name, email: v.email, password: v.password }, { 'Idempotency-Key': newKey() });
      await login(v.email, v.password);
      go(next.startsWith('/') ? next : '/');
    }, { id: 'register' }));
}

async function checkout(main) {
  if (!session.me) return go('/login?next=/checkout');
  const lines = cart();
  if (!lines.length) return go('/cart');
  const key = newKey(); // one order, however often the button is pressed
  let balance = null;
  if (session.me.account_id) {
    try { balance = (await get('/api/v1/accounts/' + encodeURIComponent(session.me.account_id))).balance; } catch (e) { /* shown as unknown */ }
  }
  mount(main, h('h1', {}, 'Check out'),
    table(['Product', 'Quantity', 'Price'], lines.map((l) => [l.name, String(l.quantity), money(l.price)])),
    h('p', { class: 'total' }, 'Total before promotions: ', totals(lines).map(money).join(' + ')),
    form([
      h('fieldset', {}, h('legend', {}, 'Shipping address'),
        input('Street', 'shipping_address.street', { autocomplete: 'street-address', required: true }),
        input('City', 'shipping_address.city', { autocomplete: 'address-level2', required: true }),
        input('State', 'shipping_address.state', { autocomplete: 'address-level1' }),
        input('ZIP code', 'shipping_address.zip_code', { autocomplete: 'postal-code', required: true }),
        input('Country (ISO code)', 'shipping_address.country', { autocomplete: 'country', required: true, value: 'US', maxlength: 2 })),
      h('fieldset', {}, h('legend', {}, 'Payment'),
        h('p', {}, 'Paid from your account ', h('code', {}, session.me.account_id || '—'), balance ? ' (balance ' + money(balance) + ')' : ''),
        input('Promotion code', 'promotion_code', { autocomplete: 'off', placeholder: 'e.g. WELCOME10' })),
    ], 'Place order', async (v) => {
      const body = {
        items: lines.map((l) => ({ product_id: l.product_id, quantity: l.quantity })),
        shipping_address: { street: v['shipping_address.street'], city: v['shipping_address.city'], state: v['shipping_address.state'], zip_code: v['shipping_address.zip_code'], country: v['shipping_address.country'] },
        payment_account_id: session.me.account_id,
      };
      if (v.promotion_code) body.promotion_code = v.promotion_code.trim();
      const o = await post('/api/v1/orders', body, { 'Idempotency-Key': key });
      saveCart([]);
      go('/orders/' + encodeURIComponent(o.id));
    }, { id: 'checkout' }));
}

function orderBody(o) {
  return [
    h('p', {}, 'Status: ', h('strong', { id: 'order-status', 'data-status': o.status }, o.status),
      o.reason ? h('span', {}, ' — reason: ', h('code', { id: 'order-reason' }, o.reason)) : null),
    table(['Product', 'Quantity', 'Unit price'], (o.items || []).map((i) => [i.product_id, String(i.quantity), money(i.unit_price)])),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Subtotal'), h('dd', {}, money(o.subtotal)),
      h('dt', {}, 'Discount'), h('dd', {}, money(o.discount)),
      h('dt', {}, 'Total'), h('dd', {}, money(o.total)),
      h('dt', {}, 'Ship to'), h('dd', {}, [o.shipping_address?.street, o.shipping_address?.city, o.shipping_address?.zip_code, o.shipping_address?.country].filter(Boolean).join(', ')),
      h('dt', {}, 'Placed'), h('dd', {}, when(o.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, when(o.updated_at))),
  ];
}

async function order(main, { id }) {
  const o = await get('/api/v1/orders/' + encodeURIComponent(id));
  const body = h('div', { id: 'order' }, orderBody(o));
  const ship = h('div', { id: 'shipment' });
  const showShipment = async () => {
    try {
      const s = await get('/api/v1/shipments/' + encodeURIComponent(id));
      mount(ship, h('h2', {}, 'Shipment'), h('p', {}, badge(s.status), s.carrier ? ' with ' + s.carrier : '', s.tracking ? ' · tracking ' : '', s.tracking ? h('code', {}, s.tracking) : ''));
    } catch (e) { /* not shipped (yet) */ }
  };
  mount(main, h('p', {}, h('a', { href: '#/orders' }, '« Your orders')), h('h1', {}, 'Order ', h('code', {}, o.id)), body, ship,
    session.me && (session.me.roles || []).includes('admin') && o.saga_id ? h('p', {}, h('a', { href: '#/ops/sagas/' + encodeURIComponent(o.saga_id) }, 'Saga timeline')) : null);
  if (o.status !== 'Pending') { showShipment(); return; }
  // Live: the order's updates as server-sent events, until it is final.
  const es = live('/api/v1/orders/' + encodeURIComponent(id) + '/updates', {
    order: (ev) => {
      const next = JSON.parse(ev.data);
      mount(body, orderBody(next));
      if (next.status !== 'Pending') { es.close(); showShipment(); }
    },
  });
}

async function orders(main, _args, params) {
  const cursor = params.get('cursor') || '';
  const page = await get('/api/v1/orders' + query({ cursor, limit: 20 }));
  mount(main, h('h1', {}, 'Your orders'),
    table(['Order', 'Status', 'Total', 'Placed'], page.items.map((o) => [
      h('a', { href: '#/orders/' + encodeURIComponent(o.id) }, o.id), badge(o.status), money(o.total), when(o.created_at)])),
    page.next_cursor ? h('p', {}, h('a', { href: '#/orders' + query({ cursor: page.next_cursor }) }, 'Older orders »')) : null);
}

async function account(main, _args, _params, position) {
  if (!session.me) throw new Problem(401, {});
  const id = session.me.account_id;
  if (!id) {
    mount(main, h('h1', {}, 'Account'), h('p', {}, 'You have no payments account.'));
    return;
  }
  const a = await getAfter('/api/v1/accounts/' + encodeURIComponent(id), position);
  const events = await get('/api/v1/accounts/' + encodeURIComponent(id) + '/events?limit=20');
  const cur = a.balance.currency;
  const transfer = h('div', { id: 'transfer-status', role: 'status', 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Account'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Account'), h('dd', {}, h('code', {}, a.id)),
      h('dt', {}, 'Balance'), h('dd', { id: 'balance' }, money(a.balance)),
      h('dt', {}, 'Status'), h('dd', {}, badge(a.status)),
      h('dt', {}, 'Transactions'), h('dd', {}, String(a.transaction_count))),
    h('div', { class: 'columns' },
      h('section', {}, h('h2', {}, 'Deposit'),
        form([input('Amount (' + cur + ')', 'amount', { inputmode: 'decimal', required: true, placeholder: '100.00' })], 'Deposit', async (v) => {
          const amount = minor(v.amount, cur);
          if (!(amount > 0)) throw new Problem(400, { title: 'Invalid amount', errors: [{ field: 'amount', message: 'must be a positive amount like 12.50' }] });
          const w = await write('POST', '/api/v1/accounts/' + encodeURIComponent(id) + '/deposits', { amount: { amount, currency: cur } }, { 'Idempotency-Key': newKey() });
          await account(main, {}, null, w.position); // read your write
        }, { id: 'deposit' })),
      h('section', {}, h('h2', {}, 'Transfer'),
        form([input('To account', 'to_account_id', { required: true, autocomplete: 'off' }),
          input('Amount (' + cur + ')', 'amount', { inputmode: 'decimal', required: true })], 'Send', async (v) => {
          const amount = minor(v.amount, cur);
          if (!(amount > 0)) throw new Problem(400, { title: 'Invalid amount', errors: [{ field: 'amount', message: 'must be a positive amount like 12.50' }] });
          let t = await post('/api/v1/transfers', { from_account_id: id, to_account_id: v.to_account_id.trim(), amount: { amount, currency: cur } }, { 'Idempotency-Key': newKey() });
          const show = (t) => mount(transfer, 'Transfer ', h('code', {}, t.id), ': ', badge(t.status), t.reason ? ' (' + t.reason + ')' : '');
          show(t);
          for (let i = 0; i < 40 && t.status === 'Pending'; i++) {
            await new Promise((r) => setTimeout(r, 250));
            t = await get('/api/v1/transfers/' + encodeURIComponent(t.id));
            show(t);
          }
        }, { id: 'transfer' }), transfer)),
    h('h2', {}, 'Recent activity'),
    table(['#', 'Event', 'When'], (events.items || []).map((e) => [String(e.version ?? ''), e.type, when(e.recorded_at || e.at)])));
}

/** register adds the storefront's pages. */
export function register(route) {
  route('/', catalog);
  route('/product/:id', product);
  route('/cart', cartView);
  route('/login', loginView);
  route('/register', registerView);
  route('/checkout', checkout);
  route('/orders', orders);
  route('/orders/:id', order);
  route('/account', account);
}

