// The API client: JSON over fetch with the browser session (the HttpOnly
// cookie rides along by itself; unsafe requests add the CSRF token), and
// problem+json answers turned into Problem errors.

/** Problem is an RFC 9457 problem answer. */
export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || 'HTTP ' + status);
    this.status = status;
    this.body = body || {};
    this.reason = this.body.reason;
    this.errors = this.body.errors || [];
  }
}

function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return '';
}

/** call sends one request and answers {status, data, headers}. */
export async function call(method, path, body, headers = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const t = cookie('agora_csrf');
    if (t) h['X-CSRF-Token'] = t;
  }
  const res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new Problem(res.status, typeof data === 'object' ? data : { detail: String(data).slice(0, 200) });
  return { status: res.status, data, headers: res.headers };
}

export const get = (path) => call('GET', path).then((r) => r.data);
/** getAfter reads path once its read model holds position (a write's Agora-Position). */
export const getAfter = (path, position) => call('GET', path, undefined, position ? { 'Agora-Min-Position': position } : {}).then((r) => r.data);
/** write sends an unsafe request and answers the data and the position it wrote. */
export const write = (method, path, body, headers) => call(method, path, body, headers).then((r) => ({ data: r.data, position: r.headers.get('Agora-Position') }));
export const post = (path, body, headers) => call('POST', path, body, headers).then((r) => r.data);

/** query builds ?a=b&… from the non-empty entries of o. */
export function query(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== '' && v != null) p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}

/** newKey is a fresh Idempotency-Key. */
export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}

/** The session: who is logged in (null when nobody). */
export const session = { me: null };

export async function loadMe() {
  try {
    session.me = await get('/api/v1/me');
  } catch (e) {
    session.me = null;
  }
  return session.me;
}

export async function login(email, password) {
  await post('/api/v1/auth/session', { email, password });
  return loadMe();
}

export async function logout() {
  await call('DELETE', '/api/v1/auth/session');
  session.me = null;
}

export const hasRole = (...roles) => !!session.me && (session.me.roles || []).some((r) => roles.includes(r));
