// The console checks (e2e/console-checks.mjs) against the mock backend, for working on
// the frontend without a HoneyBee: node e2e/console-mock.mjs [base]
import { launch, login, screenshotter } from './browser.mjs';
import * as checks from './console-checks.mjs';
import os from 'node:os';
import path from 'node:path';

const base = (process.argv[2] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const shot = screenshotter(process.env.HB_SCREENSHOTS ?? path.join(os.tmpdir(), 'hb-console-mock'));
const admin = ['admin', 'admin-password-123'];

/** An admin acting from outside the page under test: its own session over plain HTTP. */
async function adminCall(method, url, body) {
  const r = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: admin[0], password: admin[1] }) });
  const cookie = r.headers.get('set-cookie').split(';')[0];
  const { csrf } = await r.json();
  const res = await fetch(`${base}${url}`, { method, headers: { cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
}

const { context, close } = await launch();
const page = context.pages()[0] ?? (await context.newPage());
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
let failed = 0;
const figures = {};
async function step(name, fn) {
  try {
    figures[name] = await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e.message}`);
    await shot(page, `failed-${name}`).catch(() => {});
  }
}
try {
  await login(page, base, ...admin);
  await step('phone', () => checks.phoneWidth(page, base, ['nodes/local']));
  await step('unsaved', () => checks.unsavedConfig(page, base, 'local'));
  await step('zone', () => checks.zoneToggle(page, base));
  await step('chart', () => checks.chartHover(page, base));
  await step('audit', () => checks.auditPage(page, base));
  await step('ranges', () => checks.rangesAndSavedSearches(page, base, 'service:ssh AND NOT kind:connect'));
  const who = {
    createUser: (u, p, role = 'viewer') => adminCall('POST', '/api/users', { username: u, password: p, role }),
    deleteUser: (u) => adminCall('DELETE', `/api/users/${u}`),
    relogin: () => login(page, base, ...admin),
  };
  await step('session', () => checks.sessionEnds(page, base, who));
  await step('draft', () => checks.draftSurvivesSessionEnd(page, base, 'local', who));
} finally {
  console.log('figures:', JSON.stringify(figures));
  console.log('page errors:', errors);
  await close();
}
process.exit(failed || errors.length ? 1 : 0);
