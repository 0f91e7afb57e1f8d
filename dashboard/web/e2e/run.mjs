// The end-to-end browser test of the dashboard against a real, running HoneyBee (started by
// tests/dashboard_browser.rs, or by hand with `honeybee up`): Debian's Chromium, driven by
// playwright-core, logs in, sees the local node online, sees a real SSH login attempt in
// the live events view, creates a token and enrols a second agent with it, pushes a service
// change to a node and sees the agent apply it, loads and unloads a module, checks that a
// viewer cannot revoke, revokes the second node and sees it go offline, and saves a
// screenshot of every page. Also (e2e/console-checks.mjs): the search language (fields,
// NOT, CIDR, an error with its caret), the UTC/local toggle, chart values on hover, the
// warnings before unsaved config edits are lost, the audit log (admins only), every page
// at 390 px, and a session ended by deleting its user while its page is open.
// Exits non-zero on the first failed step.
//
// Environment: HB_URL (dashboard base, default http://127.0.0.1:8080), HB_ADMIN_PASSWORD
// (required), HB_BIN (the honeybee binary), HB_WORK (a scratch directory), HB_SSH_PORT
// (default 2222), HB_REPO (repository root), HB_SCREENSHOTS (default
// <repo>/target/dashboard-screenshots); for the upgrade step HB_UPGRADE_PACKAGE (an agent
// executable reporting HB_NEXT_VERSION), HB_PACKAGES (the core's packages folder) and
// HB_AGENT_VERSION (what the running agents report); without them that step is skipped.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, login, screenshotter, waitFor } from './browser.mjs';
import * as checks from './console-checks.mjs';
import * as inc from './incidents-checks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = process.env.HB_REPO || path.resolve(here, '..', '..', '..');
const base = (process.env.HB_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const adminPassword = process.env.HB_ADMIN_PASSWORD;
const bin = process.env.HB_BIN || path.join(repo, 'target', 'debug', 'honeybee');
const work = process.env.HB_WORK || fs.mkdtempSync(path.join(os.tmpdir(), 'hb-e2e-'));
const sshPort = Number(process.env.HB_SSH_PORT || 2222);
const shot = screenshotter(process.env.HB_SCREENSHOTS || path.join(repo, 'target', 'dashboard-screenshots'));
if (!adminPassword) {
  console.error('HB_ADMIN_PASSWORD is required (the password HoneyBee was started with)');
  process.exit(2);
}

const children = [];
const results = [];
const figures = {};
let failed = 0;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push(`ok   ${name} (${Date.now() - t0} ms)`);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    results.push(`FAIL ${name}: ${e.message}`);
    console.log(`FAIL ${name}: ${e.stack || e.message}`);
    try {
      await shot(page, `failed-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`);
    } catch {
      // The page itself may be gone.
    }
    throw e;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Connects and reads what the service says first (or nothing), to prove it listens. */
function probe(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.on('connect', () => setTimeout(() => done({ open: true, banner: got }), 1500));
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    s.on('error', () => done({ open: false, banner: '' }));
  });
}

/** The session's CSRF token and a fetch from inside the page (same cookies and origin). */
async function pageFetch(p, method, url, body) {
  return p.evaluate(
    async ([method, url, body]) => {
      const me = await (await fetch('/api/me')).json();
      const r = await fetch(url, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, text: await r.text() };
    },
    [method, url, body],
  );
}

/** An admin acting from outside the page under test: its own session, over plain HTTP. */
async function adminCall(method, url, body) {
  const r = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: adminPassword }) });
  if (!r.ok) throw new Error(`admin sign-in: ${r.status} ${await r.text()}`);
  const cookie = r.headers.get('set-cookie').split(';')[0];
  const { csrf } = await r.json();
  try {
    const res = await fetch(`${base}${url}`, { method, headers: { cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  } finally {
    await fetch(`${base}/api/logout`, { method: 'POST', headers: { cookie, 'X-CSRF-Token': csrf } }).catch(() => {});
  }
}

const { context, close } = await launch();
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
const user = `e2e${Math.random().toString(36).slice(2, 8)}`;
const secondName = `e2e-second-${Math.random().toString(36).slice(2, 6)}`;
const viewerPassword = `viewer-${Math.random().toString(36).slice(2)}-pw`;

try {
  await step('login page, wrong password refused', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('Username').waitFor();
    await shot(page, '01-login');
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor({ timeout: 10000 });
  });

  await step('log in as admin', async () => {
    await login(page, base, 'admin', adminPassword);
  });

  await step('keyboard: skip link first, then the navigation, with visible focus', async () => {
    await page.goto(`${base}/#/overview`);
    await page.reload();
    await page.getByTestId('nodes-online').waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement?.textContent?.trim());
    if (first !== 'Skip to content') throw new Error(`the first Tab stop is ${JSON.stringify(first)}, not the skip link`);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const nav = await page.evaluate(() => {
      const el = document.activeElement;
      return { text: el?.textContent?.trim(), outline: getComputedStyle(el).outlineStyle };
    });
    if (nav.text !== 'Overview' || nav.outline === 'none') throw new Error(`the navigation is not reached with a visible focus: ${JSON.stringify(nav)}`);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => location.hash === '#/nodes');
  });

  await step('the local node is online (overview and nodes page)', async () => {
    await page.goto(`${base}/#/overview`);
    await page.getByTestId('nodes-online').waitFor();
    await waitFor('nodes online ≥ 1 on the overview', 30000, async () => {
      const t = await page.getByTestId('nodes-online').innerText();
      return Number(t.trim().split(/\s+/)[0]) >= 1;
    });
    await page.getByTestId('live-status').filter({ hasText: /^\s*live\s*$/ }).waitFor({ timeout: 15000 });
    await page.goto(`${base}/#/nodes`);
    await page.locator('tr[data-node="local"][data-status="online"]').waitFor({ timeout: 30000 });
    await shot(page, '03-nodes');
  });

  await step('a real SSH login attempt appears in the live events view', async () => {
    await page.goto(`${base}/#/events`);
    await page.locator('[data-testid=tail-state]', { hasText: 'live tail' }).waitFor({ timeout: 15000 });
    await page.waitForTimeout(500);
    // Record, in the page, the moment the row shows up (same clock as the event's stamp).
    // OpenSSH first asks with method "none", which is recorded too; the row to wait for is
    // the password attempt, the one that carries the password.
    await page.evaluate(([user, password]) => {
      window.__seen = null;
      const obs = new MutationObserver(() => {
        const row = [...document.querySelectorAll('[data-testid=events-table] tbody tr[data-kind=auth_attempt]')].find(
          (r) => r.textContent.includes(user) && r.textContent.includes(password),
        );
        if (row && !window.__seen) {
          window.__seen = Date.now();
          obs.disconnect();
        }
      });
      obs.observe(document.body, { childList: true, subtree: true });
    }, [user, 'hunter2-e2e']);
    const started = Date.now();
    const ssh = spawn(
      'sshpass',
      ['-p', 'hunter2-e2e', 'ssh', '-p', String(sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=10', `${user}@127.0.0.1`, 'true'],
      { stdio: 'ignore' },
    );
    children.push(ssh);
    const sshDone = new Promise((r) => ssh.on('exit', () => r(Date.now())));
    await waitFor(`a row for user ${user}`, 30000, () => page.evaluate(() => window.__seen));
    const seen = await page.evaluate(() => window.__seen);
    // When was the attempt recorded? The event's own timestamp, from its detail.
    const ev = await page.evaluate(async (user) => {
      const r = await (await fetch(`/api/events?kind=auth_attempt&q=${encodeURIComponent(user)}&limit=5`)).json();
      return r.events.find((e) => JSON.stringify(e).includes('hunter2-e2e'));
    }, user);
    if (!ev) throw new Error('the attempt is on screen but not in /api/events');
    const recorded = Date.parse(ev['@timestamp']);
    const latency = seen - recorded;
    figures.ssh_row_latency_ms = latency;
    figures.ssh_attempt_to_row_ms = seen - started;
    figures.ssh_ingested_to_row_ms = seen - Date.parse(ev.event?.ingested);
    console.log(`     SSH attempt recorded at ${ev['@timestamp']}; row on screen ${latency} ms later (${seen - started} ms after ssh started)`);
    await Promise.race([sshDone, new Promise((r) => setTimeout(r, 15000))]);
    await shot(page, '04-events-live');
    // The latency is a figure, not an assertion: the machines are shared and noisy.
    // The detail view of that event.
    await page
      .locator('[data-testid=events-table] tbody tr[data-kind=auth_attempt]', { hasText: user })
      .filter({ hasText: 'hunter2-e2e' })
      .first()
      .getByRole('link')
      .first()
      .click();
    await page.getByTestId('event-detail').waitFor();
    const text = await page.getByTestId('event-detail').innerText();
    if (!text.includes(user) || !text.includes('hunter2-e2e')) throw new Error(`event detail lacks the user or password: ${text}`);
    await shot(page, '05-event-detail');
  });

  let enrolCommand = '';
  // A filter link followed while already on the Events page changes only the URL (hash
  // routing): the form and the table must follow it without a reload.
  await step('events page follows URL changes made while on it', async () => {
    await page.goto(`${base}/#/events`);
    const rows = page.locator('[data-testid=events-table] tbody tr[data-kind]');
    await rows.first().waitFor({ timeout: 15000 });
    await page.evaluate(() => { location.hash = '#/events?service=no-such-service'; });
    await page.locator('[data-testid=events-table] tbody', { hasText: 'No events.' }).waitFor({ timeout: 15000 });
    const v = await page.locator('input[name=service]').inputValue();
    if (v !== 'no-such-service') throw new Error(`the service filter shows ${JSON.stringify(v)}`);
    await page.evaluate(() => { location.hash = '#/events?service=ssh'; });
    await rows.first().waitFor({ timeout: 15000 });
    const services = await rows.evaluateAll((rs) => [...new Set(rs.map((r) => r.children[2].textContent.trim()))]);
    if (services.join() !== 'ssh') throw new Error(`rows for service=ssh show services ${JSON.stringify(services)}`);
  });

  await step('a query with fields, NOT and CIDR returns the right rows; a broken one says where', async () => {
    const rows = page.locator('[data-testid=events-table] tbody tr[data-kind]');
    const run = async (query) => {
      await page.goto(`${base}/#/events?query=${encodeURIComponent(query)}`);
      await page.locator('[data-testid=events-table] tbody tr').first().waitFor({ timeout: 15000 });
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.waitForTimeout(300);
    };
    // The SSH attempt of the live step is findable by its fields, and excluded by NOT.
    await run(`service:ssh AND kind:auth_attempt AND user:${user}`);
    await rows.first().waitFor({ timeout: 15000 });
    const mine = await rows.allInnerTexts();
    if (!mine.length || !mine.every((t) => t.includes(user) && t.includes('auth_attempt'))) throw new Error(`rows for the query: ${JSON.stringify(mine.slice(0, 5))}`);
    await run(`kind:auth_attempt AND NOT user:${user}`);
    const others = await rows.allInnerTexts();
    if (others.some((t) => t.includes(`"${user}"`))) throw new Error(`NOT user:${user} still shows that user: ${JSON.stringify(others.slice(0, 5))}`);
    await run('service:ssh AND NOT source.ip:127.0.0.0/8');
    await page.locator('[data-testid=events-table] tbody', { hasText: 'No events.' }).waitFor({ timeout: 15000 });
    await run('service:ssh AND source.ip:127.0.0.0/8 AND (kind:connect OR kind:auth_attempt)');
    const local = await rows.evaluateAll((rs) => rs.map((r) => [r.dataset.kind, r.children[4].textContent.trim()]));
    if (!local.length || !local.every(([k, src]) => (k === 'connect' || k === 'auth_attempt') && src.startsWith('127.'))) throw new Error(`CIDR and OR rows: ${JSON.stringify(local.slice(0, 5))}`);
    figures.query_rows = { mine: mine.length, local: local.length };
    await shot(page, '04b-events-query');
    // Typed into the box: a broken query shows the backend's sentence and a caret.
    const box = page.locator('input[name=query]');
    await box.fill('service:ssh AND (kind:command');
    await box.press('Enter');
    const err = page.getByTestId('query-error');
    await err.waitFor({ timeout: 15000 });
    const text = await err.innerText();
    if (!/never closed/.test(text) || !/\n {16}\^/.test(text)) throw new Error(`the query error says ${JSON.stringify(text)}`);
  });

  await step('times: one zone, labelled, with a UTC toggle that is remembered', async () => {
    figures.zone = await checks.zoneToggle(page, base);
  });

  await step('charts show the time and value under the cursor', async () => {
    figures.chart_tip = await checks.chartHover(page, base);
  });

  await step('create an enrolment token', async () => {
    await page.goto(`${base}/#/enrol`);
    await page.getByLabel('Node name').fill(secondName);
    await page.getByLabel('Labels').fill('site=e2e');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByTestId('enrol-command').waitFor({ timeout: 15000 });
    enrolCommand = await page.getByTestId('enrol-command').innerText();
    if (!/hbt1\.[A-Za-z0-9_-]+/.test(enrolCommand)) throw new Error(`no token in the command: ${enrolCommand}`);
    await shot(page, '06-enrol');
  });

  await step('a second agent enrols with that token and comes online', async () => {
    const token = enrolCommand.match(/hbt1\.[A-Za-z0-9_-]+/)[0];
    const dir = path.join(work, secondName);
    const r = spawnSync(bin, ['agent', 'enroll', '--token', token, '--data-dir', dir], { encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) throw new Error(`agent enroll failed: ${r.stderr}${r.stdout}`);
    const log = fs.openSync(path.join(work, `${secondName}.log`), 'w');
    const agent = spawn(bin, ['agent', 'run', '--data-dir', dir], { stdio: ['ignore', log, log] });
    children.push(agent);
    await page.goto(`${base}/#/nodes`);
    await page.locator(`tr[data-node="${secondName}"][data-status="online"]`).waitFor({ timeout: 60000 });
  });

  // The second agent runs on this host with the default services, whose ports the local
  // node already holds: every bind fails ("Address already in use"), so it is degraded.
  await step('a node whose services cannot bind shows as degraded', async () => {
    await page.goto(`${base}/#/nodes`);
    const badge = page.locator(`tr[data-node="${secondName}"] [data-testid=node-health][data-state="degraded"]`);
    await badge.waitFor({ timeout: 60000 });
    const text = await badge.innerText();
    if (!/^degraded 0\/\d+$/.test(text.trim())) throw new Error(`health badge says ${JSON.stringify(text)}`);
    figures.degraded_node = text.trim();
  });

  await step('change a service in the node editor; the agent applies it', async () => {
    await page.goto(`${base}/#/nodes/local`);
    await page.getByTestId('services-table').waitFor();
    await page.locator('[data-testid=services-table] tr[data-running="true"]').first().waitFor({ timeout: 30000 });
    await shot(page, '07-node-before');
    const services = await page.locator('[data-testid=services-table] tbody tr[data-service]').evaluateAll((rows) => rows.map((r) => ({ name: r.dataset.service, listen: r.dataset.listen, running: r.dataset.running })));
    // Move a running service other than SSH (which the earlier step used) to a new port.
    const target = services.find((s) => s.name !== 'ssh' && s.running === 'true' && /:\d+$/.test(s.listen)) ?? services.find((s) => s.running === 'true');
    if (!target) throw new Error(`no running service to change: ${JSON.stringify(services)}`);
    const newPort = await freePort();
    const newListen = target.listen.replace(/:\d+$/, `:${newPort}`);
    const editor = page.getByLabel(/service configuration/);
    const toml = await editor.inputValue();
    if (!toml.includes(target.listen)) throw new Error(`the editor does not show ${target.listen}:\n${toml}`);
    // A broken edit first: the backend's validation message is shown, nothing is pushed.
    await editor.fill(`${toml}\n[[[ not toml`);
    await page.getByRole('button', { name: 'Save and push to node' }).click();
    await page.getByTestId('config-error').waitFor({ timeout: 15000 });
    await editor.fill(toml.split(target.listen).join(newListen));
    await page.getByRole('button', { name: 'Save and push to node' }).click();
    await page.getByRole('status').filter({ hasText: 'Pushed to local' }).waitFor({ timeout: 15000 });
    await page.locator(`[data-testid=services-table] tr[data-service="${target.name}"][data-listen="${newListen}"][data-running="true"]`).waitFor({ timeout: 45000 });
    const p = await waitFor(`${target.name} listening on ${newListen}`, 30000, async () => {
      const r = await probe(newPort);
      return r.open ? r : null;
    });
    figures.moved_service = `${target.name} ${target.listen} -> ${newListen} (first bytes: ${JSON.stringify(p.banner.slice(0, 40))})`;
    await shot(page, '08-node-after-config');
  });

  await step('unsaved config edits: a link and leaving the page both ask first', async () => {
    figures.unsaved_warnings = await checks.unsavedConfig(page, base, 'local');
  });

  await step('audit log page (admins), filtered', async () => {
    figures.audit = await checks.auditPage(page, base);
    await shot(page, '21-audit');
  });

  const exportFile = path.join(work, 'export-e2e.jsonl');
  await step('load a module from the modules page', async () => {
    await page.goto(`${base}/#/modules`);
    await page.getByLabel('Name').fill('export-e2e');
    await page.getByLabel('Command').fill('python3');
    await page.getByLabel('Arguments').fill(`${path.join(repo, 'modules', 'examples', 'export', 'export.py')} --name export-e2e --file ${exportFile}`);
    await page.getByLabel('Permissions').fill('events:read');
    await page.getByRole('button', { name: 'Load module' }).click();
    await page.locator('tr[data-module="export-e2e"]').waitFor({ timeout: 30000 });
    await waitFor('the module connected', 30000, async () => {
      const st = await page.locator('tr[data-module="export-e2e"]').getAttribute('data-state');
      return /connected|running|ready/.test(st ?? '');
    });
    // It is real: login attempts reach the module's file. "connected" can show a moment
    // before the module has subscribed, so attempts repeat (at most 10) until one arrives.
    const arrived = () => fs.existsSync(exportFile) && fs.readFileSync(exportFile, 'utf8').includes(`${user}-mod`);
    for (let i = 0; i < 10 && !arrived(); i++) {
      spawnSync('sshpass', ['-p', 'x', 'ssh', '-p', String(sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1', `${user}-mod${i}@127.0.0.1`, 'true'], { timeout: 30000 });
      await waitFor('an event in the module’s export file', 3000, arrived).catch(() => {});
    }
    if (!arrived()) throw new Error(`no login attempt reached the module's file ${exportFile}`);
    await shot(page, '09-modules-loaded');
  });

  await step('unload the module', async () => {
    await page.locator('tr[data-module="export-e2e"]').getByRole('button', { name: 'Unload' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Unload' }).click();
    await page.locator('tr[data-module="export-e2e"]').waitFor({ state: 'detached', timeout: 30000 });
  });

  await step('incidents: the alerts module’s alerts group by source/service, sort, and are acknowledged in bulk', async () => {
    const ftpPort = await inc.servicePort(page, 'local', 'ftp');
    figures.incidents = await inc.incidents(page, base, { repo, work, sshPort, ftpPort });
    await shot(page, '23-incidents');
  });

  await step('events: the total of every match above the rows', async () => {
    figures.events_total = await inc.totalCount(page, base);
  });

  await step('modules: the built-in dashboard module cannot be unloaded; a crash loop shows its exit and last lines; the table sorts', async () => {
    figures.builtin_module = await inc.builtinModule(page, base);
  });

  await step('analytics: top commands from shells only (no FTP verbs or HTTP requests); drill-down', async () => {
    const httpPort = await inc.servicePort(page, 'local', 'http');
    figures.analytics = await inc.shellCommandsOnly(page, base, httpPort);
    await shot(page, '24-analytics-drilldown');
  });

  await step('alert rules: problems named beside their fields; saved and read back', async () => {
    figures.alert_rules = await inc.alertRules(page, base);
    await shot(page, '25-alert-rules');
  });

  await step('create a viewer', async () => {
    await page.goto(`${base}/#/users`);
    await page.getByLabel('Username').fill('e2e-viewer');
    await page.getByLabel('Password').fill(viewerPassword);
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('cell', { name: 'e2e-viewer' }).waitFor({ timeout: 15000 });
    await shot(page, '10-users');
  });

  await step('a viewer cannot revoke', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await login(page, base, 'e2e-viewer', viewerPassword);
    await page.goto(`${base}/#/nodes/${secondName}`);
    await page.getByTestId('node-status').waitFor();
    if (await page.getByRole('button', { name: 'Revoke node' }).count()) throw new Error('a viewer sees the revoke button');
    if (await page.getByRole('button', { name: /Save and push/ }).count()) throw new Error('a viewer sees the config save button');
    if (await page.getByRole('link', { name: 'Users' }).count()) throw new Error('a viewer sees the Users page');
    const r = await pageFetch(page, 'POST', `/api/nodes/${encodeURIComponent(secondName)}/revoke`);
    if (r.status !== 403) throw new Error(`the backend answered a viewer's revoke with ${r.status}: ${r.text}`);
    if (await page.getByRole('link', { name: 'Audit log' }).count()) throw new Error('a viewer sees the Audit log page');
    const audit = await pageFetch(page, 'GET', '/api/audit');
    if (audit.status !== 403) throw new Error(`the backend answered a viewer's audit read with ${audit.status}: ${audit.text}`);
    await shot(page, '11-viewer-node');
    await page.goto(`${base}/#/nodes`);
    await page.locator(`tr[data-node="${secondName}"][data-status="online"]`).waitFor({ timeout: 15000 });
    await page.getByRole('button', { name: 'Log out' }).click();
    await login(page, base, 'admin', adminPassword);
  });

  await step('versions: both nodes marked outdated; an admin upgrades the second, which comes back on the new version; the embedded local node fails with its reason', async () => {
    const pkg = process.env.HB_UPGRADE_PACKAGE;
    const next = process.env.HB_NEXT_VERSION;
    const packages = process.env.HB_PACKAGES;
    if (!pkg || !next || !packages) {
      console.log('skip: HB_UPGRADE_PACKAGE, HB_NEXT_VERSION or HB_PACKAGES not set');
      return;
    }
    await page.goto(`${base}/#/nodes`);
    const row = page.locator(`tr[data-node="${secondName}"]`);
    const local = page.locator('tr[data-node="local"]');
    const before = (await row.getByTestId('node-version').innerText()).trim();
    if (process.env.HB_AGENT_VERSION && before !== process.env.HB_AGENT_VERSION) throw new Error(`the version column says ${JSON.stringify(before)}`);
    if (await row.getByTestId('node-outdated').count()) throw new Error('outdated before the core has a newer package');
    fs.mkdirSync(packages, { recursive: true });
    fs.copyFileSync(pkg, path.join(packages, `honeybee-agent-${next}`));
    await row.getByTestId('node-outdated').waitFor({ timeout: 15000 });
    await local.getByTestId('node-outdated').waitFor({ timeout: 15000 });
    await page.getByTestId('upgrade-offer').filter({ hasText: next }).waitFor();
    await shot(page, '12a-nodes-outdated');
    await row.getByRole('button', { name: `Upgrade to ${next}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Upgrade' }).click();
    await row.locator('[data-testid=upgrade-outcome][data-state="done"]').waitFor({ timeout: 90000 });
    await row.getByTestId('node-version').filter({ hasText: next }).waitFor({ timeout: 30000 });
    if (await row.getByTestId('node-outdated').count()) throw new Error('still outdated after the upgrade');
    await shot(page, '12b-nodes-upgraded');
    // Every outdated node: only the local node is left, and it runs inside `honeybee up`.
    await page.getByRole('button', { name: `Upgrade 1 outdated to ${next}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Upgrade' }).click();
    await local.locator('[data-testid=upgrade-outcome][data-state="failed"]').waitFor({ timeout: 60000 });
    const reason = await local.getByTestId('upgrade-reason').innerText();
    if (!/not upgraded in place/.test(reason)) throw new Error(`the local node's outcome says ${JSON.stringify(reason)}`);
    figures.upgraded_to = next;
  });

  await step('revoke the second node; it goes offline', async () => {
    await page.goto(`${base}/#/nodes/${secondName}`);
    await page.getByRole('button', { name: 'Revoke node' }).click();
    await shot(page, '12-revoke-confirm');
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.getByTestId('node-status').filter({ hasText: 'revoked' }).waitFor({ timeout: 30000 });
    await page.goto(`${base}/#/nodes`);
    await page.locator(`tr[data-node="${secondName}"][data-status="revoked"]`).waitFor({ timeout: 30000 });
    await page.locator('tr[data-node="local"][data-status="online"]').waitFor({ timeout: 30000 });
    await shot(page, '13-nodes-after-revoke');
  });

  await step('phone width (390 px): no page wider than the screen, the navigation folds', async () => {
    const ev = await page.evaluate(async () => (await (await fetch('/api/events?limit=1')).json()).events[0]);
    const detail = ev ? [`events/${encodeURIComponent(ev.observer.name)}/${ev.event.sequence}`] : [];
    const widths = await checks.phoneWidth(page, base, ['nodes/local', ...detail]);
    figures.phone_pages = Object.keys(widths).length;
  });

  const who = {
    createUser: (u, p, role = 'viewer') => adminCall('POST', '/api/users', { username: u, password: p, role }),
    deleteUser: (u) => adminCall('DELETE', `/api/users/${encodeURIComponent(u)}`),
    relogin: () => login(page, base, 'admin', adminPassword),
  };
  await step('a session that ends under an open page returns to sign-in and says so', async () => {
    figures.session_end_to_signin_ms = await checks.sessionEnds(page, base, who);
    await shot(page, '22-after-session-end');
  });

  await step('config edits unsaved when the session ended are offered again after sign-in', async () => {
    figures.draft = await checks.draftSurvivesSessionEnd(page, base, 'local', who);
  });

  await step('relative time ranges and saved searches on the Events page', async () => {
    figures.ranges = await checks.rangesAndSavedSearches(page, base, 'service:ssh AND NOT kind:connect');
  });

  await step('every other page renders', async () => {
    const pages = [
      ['overview', '02-overview', 'Overview'],
      ['sessions', '14-sessions', 'Sessions'],
      ['captures', '15-captures', 'Captures'],
      ['incidents', '16b-incidents', 'Incidents'],
      ['alerts', '16-alerts', 'Alerts'],
      ['analytics', '17-analytics', 'Analytics'],
      ['modules', '18-modules', 'Modules'],
      ['reports', '19-reports', 'Reports'],
      ['audit', '21-audit', 'Audit log'],
    ];
    for (const [route, name, heading] of pages) {
      await page.goto(`${base}/#/${route}`);
      await page.getByRole('heading', { name: heading, exact: true }).first().waitFor({ timeout: 15000 });
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.waitForTimeout(700);
      if (await page.locator('.error').count()) throw new Error(`${route}: ${await page.locator('.error').first().innerText()}`);
      await shot(page, name);
    }
    await page.goto(`${base}/#/reports`);
    await page.getByTestId('report-summary').waitFor({ timeout: 15000 });
    const summary = await page.getByTestId('report-summary').innerText();
    if (!summary.includes('ssh')) throw new Error(`today's report does not mention ssh: ${summary.slice(0, 400)}`);
    await page.emulateMedia({ media: 'print' });
    await shot(page, '20-reports-print');
    await page.emulateMedia({ media: 'screen' });
  });

  await step('reports: export today as CSV and JSON', async () => {
    await page.goto(`${base}/#/reports`);
    await page.getByTestId('report-summary').waitFor({ timeout: 15000 });
    for (const [name, check] of [
      ['Export CSV', (t) => t.split('\n')[0].includes('time') && t.includes(user)],
      ['Export JSON', (t) => Array.isArray(JSON.parse(t)) && JSON.parse(t).some((e) => e.user?.name === user)],
    ]) {
      const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.getByRole('link', { name }).click()]);
      const file = await dl.path();
      const text = fs.readFileSync(file, 'utf8');
      if (!check(text)) throw new Error(`${name}: the download lacks the SSH attempt of ${user}: ${text.slice(0, 300)}`);
    }
  });

  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
} catch {
  // Reported below.
} finally {
  for (const c of children) {
    if (c.exitCode === null) c.kill('SIGTERM');
  }
  await close();
  console.log('');
  for (const r of results) console.log(r);
  if (pageErrors.length) console.log(`page errors: ${pageErrors.join('; ')}`);
  console.log(`figures: ${JSON.stringify(figures)}`);
  const passed = results.filter((r) => r.startsWith('ok')).length;
  console.log(`${passed} passed, ${failed + (pageErrors.length ? 1 : 0)} failed`);
}
process.exit(failed || pageErrors.length ? 1 : 0);
