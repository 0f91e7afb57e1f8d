// The one place that talks HTTP to the backend: JSON in and out, the CSRF header on every
// state-changing request, and the backend's `{"error": ...}` sentences turned into errors.
import { session, endSession } from './session.svelte.js';

export class ApiError extends Error {
  constructor(status, message, data = null) {
    super(message);
    this.status = status;
    // Where a search query went wrong (a byte offset), when the backend says.
    this.position = data && typeof data === 'object' && Number.isInteger(data.position) ? data.position : null;
    // Every problem of a configuration the backend refused, each with its place.
    this.problems = data && typeof data === 'object' && Array.isArray(data.problems) ? data.problems : [];
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method) && session.me?.csrf) headers['X-CSRF-Token'] = session.me.csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The dashboard backend cannot be reached (${e.message}). Is HoneyBee running?`);
  }
  if (res.status === 401 && path !== '/api/login' && path !== '/api/logout') {
    // The session expired, was ended elsewhere, or its user was deleted: back to the
    // sign-in page, which says so.
    endSession();
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const msg =
      (data && typeof data === 'object' && data.error) ||
      (typeof data === 'string' && data) ||
      `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg, data);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}
