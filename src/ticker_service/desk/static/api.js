// The service's own API, with the user's API key. The key lives in sessionStorage (this tab, until it
// closes) and goes out as X-API-Key; only WebSockets, which a browser cannot give headers, take it
// as ?api_key= (as the README documents).

const KEY = 'ticker-desk.api-key';

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

/** An answer of 4xx or 5xx: `field` and `errors` are the service's own validation messages. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.field = this.body.field || null;
    this.errors = Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

/** The service could not be reached at all (down, restarting, offline). */
export class Unreachable extends Error {}

export async function request(method, path, { body, query, headers = {} } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const sent = { Accept: 'application/json', ...headers };
  const key = apiKey.get();
  if (key) sent['X-API-Key'] = key;
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    throw new Unreachable(`the service did not answer (${error.message})`);
  }
  const text = await answer.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 300) };
  }
  if (!answer.ok) throw new ApiError(answer.status, data);
  return { status: answer.status, data };
}

export const get = async (path, query) => (await request('GET', path, { query })).data;

/** Marks an endpoint this service does not have (yet): the desk says "not available". */
export const NOT_AVAILABLE = Symbol('not available');

/** The route itself does not exist here (not: the route says an id does not exist). */
export function missingRoute(error) {
  return error instanceof ApiError && (error.status === 405 || (error.status === 404 && /^not found$/i.test(error.message)));
}

/** GET an endpoint that another release may not have: a missing route answers NOT_AVAILABLE. */
export async function optional(path, query) {
  try {
    return await get(path, query);
  } catch (error) {
    if (missingRoute(error)) return NOT_AVAILABLE;
    throw error;
  }
}

/** ws(s)://this host/path?query, with the key as ?api_key= when there is one. */
export function socketUrl(path, query = {}) {
  const url = new URL(path, location.origin);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  const key = apiKey.get();
  if (key) url.searchParams.set('api_key', key);
  return url.toString();
}

/** A fresh Idempotency-Key (getRandomValues works on plain http too, unlike randomUUID). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'desk-' + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** A short human message for any error the API calls raise. */
export function describe(error) {
  if (error instanceof ApiError) return `${error.status}: ${error.message}`;
  return error && error.message ? error.message : String(error);
}
