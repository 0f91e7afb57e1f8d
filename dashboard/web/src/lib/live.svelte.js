// The live feed: one WebSocket to /api/ws for the whole app, reconnected with backoff.
// Pages subscribe to `event`, `node` and `alert` messages; the connection state is shown
// in the header so nobody trusts a stale screen. Event messages carry the store's id; on a
// reconnect the socket sends the last one (`?last_id=`) and the backend replays what this
// page missed, or says how many it could not (`missed`, shown with a reload offer).
// A session that ends (close code 4401, or a refused reconnect whose /api/me says 401)
// returns the app to sign-in with a message instead of reconnecting forever.
import { endSession } from './session.svelte.js';

// The backend's close code for "this session is no longer valid" (dashboard/src/live.rs).
const CLOSE_UNAUTHENTICATED = 4401;

export const live = $state({ connected: false, since: null, received: 0, missed: 0, unknownMissed: false });

// The newest event id this page has shown; null until the first event.
let lastId = null;

const handlers = { event: new Set(), node: new Set(), alert: new Set(), incidents: new Set() };
let ws = null;
let wanted = false;
let backoff = 500;
let timer = null;

export function subscribe(type, fn) {
  handlers[type]?.add(fn);
  return () => handlers[type]?.delete(fn);
}

function dispatch(msg) {
  const payload = msg[msg.type];
  if (payload === undefined) return;
  for (const fn of handlers[msg.type] ?? []) {
    try {
      fn(payload);
    } catch (e) {
      console.error('live handler failed', e);
    }
  }
}

function open() {
  clearTimeout(timer);
  if (!wanted) return;
  const resume = lastId == null ? '' : `?last_id=${lastId}`;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws${resume}`;
  const sock = new WebSocket(url);
  ws = sock;
  sock.onopen = () => {
    live.connected = true;
    live.since = Date.now();
    backoff = 500;
  };
  sock.onmessage = (m) => {
    let msg;
    try {
      msg = JSON.parse(m.data);
    } catch {
      return;
    }
    live.received++;
    if (msg?.type === 'lagged') {
      // The backend dropped messages for this slow client: pages offer a reload.
      live.missed += Number(msg.missed) || 1;
    } else if (msg?.type === 'missed') {
      // Events the live feed could not replay after a reconnect (count null: unknown).
      if (msg.count == null) live.unknownMissed = true;
      else live.missed += Number(msg.count) || 0;
    } else if (msg && typeof msg === 'object') {
      if (msg.type === 'event' && Number.isInteger(msg.id)) {
        // The backend sends each id once; remember the newest for the next reconnect.
        lastId = lastId == null ? msg.id : Math.max(lastId, msg.id);
      }
      dispatch(msg);
    }
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    live.connected = false;
    ws = null;
    if (!wanted) return;
    if (ev.code === CLOSE_UNAUTHENTICATED) {
      endSession();
      return;
    }
    timer = setTimeout(retry, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
  sock.onerror = () => sock.close();
}

// A refused upgrade (401) reaches the page only as a close without a code: before
// reconnecting, ask whether the session still stands.
async function retry() {
  if (!wanted) return;
  try {
    const r = await fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (r.status === 401) {
      if (wanted) endSession();
      return;
    }
  } catch {
    // The backend is unreachable: keep trying the socket, the header says offline.
  }
  open();
}

export function connect() {
  if (wanted) return;
  wanted = true;
  open();
}

export function disconnect() {
  wanted = false;
  clearTimeout(timer);
  const s = ws;
  ws = null;
  live.connected = false;
  s?.close();
}
