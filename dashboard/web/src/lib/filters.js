// The event filters the backend applies (node, service, kind, source, time range, text),
// applied again in the browser to decide whether a live event belongs on the page.
import { field, eventTime } from './format.js';

export function matches(doc, f) {
  if (f.node && field(doc, 'observer.name') !== f.node) return false;
  if (f.service && field(doc, 'service.name') !== f.service) return false;
  if (f.kind && field(doc, 'event.action') !== f.kind) return false;
  if (f.src && !String(field(doc, 'source.ip') ?? '').startsWith(f.src)) return false;
  const t = eventTime(doc);
  if (f.since_ms && t != null && t < Number(f.since_ms)) return false;
  if (f.until_ms && t != null && t > Number(f.until_ms)) return false;
  if (f.q && !JSON.stringify(doc).toLowerCase().includes(String(f.q).toLowerCase())) return false;
  return true;
}

export const KINDS = [
  'connect',
  'auth_attempt',
  'command',
  'data',
  'disconnect',
  'http_request',
  'download',
  'capture',
  'scan_detected',
  'limit_reached',
  'service_error',
  'device_log',
  'device_trap',
];

// ---- the search language's parsed tree (from /api/events?query=…, see
// dashboard/src/query.rs), applied to live events with the backend's semantics.

/** `*`-glob of a lower-case pattern over a lower-case string, linear with one backtrack. */
export function glob(pat, s) {
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < s.length) {
    if (pi < pat.length && pat[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (pi < pat.length && pat[pi] === s[ti]) {
      pi++;
      ti++;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < pat.length && pat[pi] === '*') pi++;
  return pi === pat.length;
}

/** An address as [bits, BigInt], or null; IPv4-mapped IPv6 addresses count as IPv4. */
export function parseIp(s) {
  s = String(s).trim();
  const v4 = (t) => {
    const p = t.split('.');
    if (p.length !== 4 || !p.every((x) => /^\d{1,3}$/.test(x) && Number(x) < 256)) return null;
    return p.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
  };
  if (!s.includes(':')) {
    const n = v4(s);
    return n == null ? null : [32, n];
  }
  let head = s;
  let tail4 = null;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tail4 = v4(s.slice(lastColon + 1));
    if (tail4 == null) return null;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const grab = (h) => (h ? h.split(':') : []);
  const left = grab(halves[0]);
  const right = halves.length === 2 ? grab(halves[1]) : [];
  const fill = 8 - left.length - right.length;
  if (halves.length === 1 ? left.length !== 8 : fill < 0) return null;
  const groups = [...left, ...Array(halves.length === 2 ? fill : 0).fill('0'), ...right];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return null;
  let n = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tail4 != null) n = (n & ~0xffffffffn) | tail4;
  if (n >> 32n === 0xffffn) return [32, n & 0xffffffffn];
  return [128, n];
}

export function inCidr(ip, net, bits) {
  const a = parseIp(ip);
  const b = parseIp(net);
  if (!a || !b || a[0] !== b[0]) return false;
  const shift = BigInt(a[0] - Number(bits));
  return a[1] >> shift === b[1] >> shift;
}

export function evalQuery(node, doc, text) {
  switch (node?.op) {
    case 'and':
      return node.args.every((n) => evalQuery(n, doc, text));
    case 'or':
      return node.args.some((n) => evalQuery(n, doc, text));
    case 'not':
      return !evalQuery(node.arg, doc, text);
    case 'term': {
      if (node.field == null) return text.includes(node.value);
      const v = field(doc, node.field);
      if (v == null || typeof v === 'object') return false;
      const s = String(v).toLowerCase();
      if (node.match === 'glob') return glob(node.value, s);
      if (node.match === 'prefix') return s.startsWith(node.value);
      if (node.match === 'text') return s.includes(node.value);
      if (node.match === 'cidr') return inCidr(s, node.value, node.bits);
      return false;
    }
    default:
      return false;
  }
}

/** Whether a live event belongs under a parsed query (null: no query, it does). */
export function matchesQuery(doc, tree) {
  if (!tree) return true;
  return evalQuery(tree, doc, JSON.stringify(doc).toLowerCase());
}
