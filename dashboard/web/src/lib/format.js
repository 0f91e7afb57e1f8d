// Small formatting helpers: times, sizes, dotted field access and a one-line event summary.
// Times follow the zone chosen in the navigation (local or UTC, see clock.svelte.js).
import { clock } from './clock.js';

/** `get(doc, 'source.ip')` on the nested ECS document (also accepts flat dotted keys). */
export function field(doc, path) {
  if (!doc) return undefined;
  if (path in doc) return doc[path];
  let cur = doc;
  for (const p of path.split('.')) {
    if (cur == null || typeof cur !== 'object') return undefined;
    cur = cur[p];
  }
  return cur;
}

export function eventTime(doc) {
  const ts = doc?.['@timestamp'];
  if (typeof ts === 'number') return ts;
  const t = Date.parse(ts);
  return Number.isNaN(t) ? null : t;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** The calendar fields of `ms` in the chosen zone. */
function parts(ms) {
  const d = new Date(Number(ms));
  return clock.utc
    ? { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds() }
    : { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds() };
}

/**
 * `YYYY-MM-DD HH:MM:SS` in the chosen zone, followed by the zone's name unless
 * `withZone` is false (where a table heading already names it).
 */
export function fmtTime(ms, withDate = true, withZone = true) {
  if (ms == null) return '—';
  const p = parts(ms);
  const time = `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
  const text = withDate ? `${p.y}-${pad(p.mo)}-${pad(p.d)} ${time}` : time;
  return withZone ? `${text} ${clock.utc ? 'UTC' : clock.label.replace(/^local, /, '')}` : text;
}

export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtDuration(s) {
  s = Math.max(0, Math.round(Number(s)));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function fmtNum(n) {
  return n == null ? '—' : Number(n).toLocaleString('en');
}

/** `YYYY-MM-DDTHH:MM` for <input type="datetime-local">, in the chosen zone. */
export function toLocalInput(ms) {
  if (ms == null || ms === '') return '';
  const p = parts(ms);
  return `${p.y}-${pad(p.mo)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}`;
}

/** The time an <input type="datetime-local"> names, read in the chosen zone. */
export function fromLocalInput(s) {
  if (!s) return '';
  const t = clock.utc ? Date.parse(`${s}Z`) : new Date(s).getTime();
  return Number.isNaN(t) ? '' : t;
}

export function srcOf(doc) {
  const ip = field(doc, 'source.ip');
  const port = field(doc, 'source.port');
  if (!ip) return '';
  return port != null ? (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`) : ip;
}

/** What happened, in a few words, for a table row. */
export function summary(doc) {
  const action = field(doc, 'event.action');
  const user = field(doc, 'user.name');
  switch (action) {
    case 'auth_attempt': {
      const pw = field(doc, 'honeybee.password');
      const key = field(doc, 'honeybee.key_fingerprint');
      const ok = field(doc, 'honeybee.success') ? 'accepted' : 'failed';
      const cred = pw != null ? `password ${JSON.stringify(pw)}` : key ? `key ${key}` : '';
      return `login ${JSON.stringify(user ?? '')} ${cred} (${ok})`;
    }
    case 'command':
      return `$ ${field(doc, 'process.command_line') ?? ''}`;
    case 'data':
      return `data ${JSON.stringify(String(field(doc, 'honeybee.data_text') ?? '').slice(0, 80))}`;
    case 'http_request':
      return `${field(doc, 'http.request.method') ?? ''} ${field(doc, 'url.path') ?? ''} → ${field(doc, 'http.response.status_code') ?? ''}`;
    case 'capture':
      return `capture ${field(doc, 'file.name') ?? ''} (${fmtBytes(field(doc, 'file.size'))})`;
    case 'download':
      return `download ${field(doc, 'url.original') ?? ''}`;
    case 'disconnect':
      return `disconnect after ${Math.round((field(doc, 'honeybee.duration_ms') ?? 0) / 1000)} s`;
    case 'scan_detected':
      return `scan of ${field(doc, 'honeybee.scan.distinct_ports') ?? '?'} ports`;
    case 'service_error':
      return `error: ${field(doc, 'honeybee.error') ?? ''}`;
    case 'device_log': {
      const app = field(doc, 'log.syslog.appname');
      return `${field(doc, 'honeybee.device.name') ?? ''}: ${app ? `${app}: ` : ''}${field(doc, 'message') ?? ''}`;
    }
    case 'device_trap':
      return `${field(doc, 'honeybee.device.name') ?? ''}: ${field(doc, 'honeybee.snmp.inform') ? 'inform' : 'trap'} ${field(doc, 'honeybee.snmp.trap_oid') ?? ''}`;
    default:
      return action ?? '';
  }
}

export function eventKey(doc) {
  return `${field(doc, 'observer.name')}/${field(doc, 'event.sequence')}`;
}

export function parseLabels(text) {
  const out = {};
  for (const part of String(text || '').split(',')) {
    const [k, ...rest] = part.split('=');
    if (k.trim()) out[k.trim()] = rest.join('=').trim();
  }
  return out;
}

// Several cores on one PostgreSQL: the core holding a node's live connection (its 32-hex-
// digit id, `node.core`), shortened for a table cell; null on one core or while offline.
// The dashboard's own core answers for its nodes from memory and the others' from the
// store's copy, so the label says where the live connection is.
export function coreOf(node) {
  const id = node?.core;
  if (!node?.online || typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) return null;
  return { short: id.slice(0, 8), full: id };
}
