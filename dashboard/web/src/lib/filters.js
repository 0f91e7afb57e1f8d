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
];
