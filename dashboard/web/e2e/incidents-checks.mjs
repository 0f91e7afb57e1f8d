// Browser checks of the console's incidents, totals, sorting, module status and analytics
// (issue 14, second part), against a real `honeybee up` (e2e/run.mjs): the real alerts
// module raises alerts for a watched user over SSH and FTP; the Incidents page groups them
// by source/node/service, sorts by a column on the server, and acknowledges them in bulk.
// Each function throws with a sentence on failure and returns figures worth printing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { waitFor } from './browser.mjs';

/** A fetch from inside the page (its session and CSRF token). */
async function pageFetch(page, method, url, body) {
  return page.evaluate(
    async ([method, url, body]) => {
      const me = await (await fetch('/api/me')).json();
      const r = await fetch(url, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // Not JSON.
      }
      return { status: r.status, text, json };
    },
    [method, url, body],
  );
}

/** The port a service of node `node` listens on, from the dashboard's node page API. */
export async function servicePort(page, node, kind) {
  const r = await pageFetch(page, 'GET', `/api/nodes/${encodeURIComponent(node)}`);
  const s = r.json?.services?.find((x) => x.kind === kind && x.running);
  if (!s) throw new Error(`node ${node} runs no ${kind} service: ${r.text.slice(0, 300)}`);
  return Number(s.listen.split(':').pop());
}

/** One FTP login attempt (USER/PASS), bounded; resolves with what the server said. */
export function ftpLogin(port, user, password) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    let sent = 0;
    const done = () => {
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 15000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      const lines = got.split('\r\n').filter(Boolean);
      const last = lines[lines.length - 1] ?? '';
      if (sent === 0 && /^220 /.test(last)) {
        s.write(`USER ${user}\r\n`);
        sent = 1;
      } else if (sent === 1 && /^331 /.test(last)) {
        s.write(`PASS ${password}\r\n`);
        sent = 2;
      } else if (sent === 2 && /^(230|530) /.test(last)) {
        s.write('QUIT\r\n');
        sent = 3;
      } else if (sent === 3 && /^221 /.test(last)) {
        clearTimeout(timer);
        done();
      }
    });
    s.on('error', () => {
      clearTimeout(timer);
      done();
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function sshAttempt(port, user) {
  spawnSync('sshpass', ['-p', 'incident-pw', 'ssh', '-p', String(port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=10', `${user}@127.0.0.1`, 'true'], { timeout: 30000 });
}

/**
 * Loads the real alerts module watching one user, attacks as that user over SSH (three
 * times) and FTP (twice), and checks the Incidents page: one incident per service with
 * its count, critical styling, server-side sorting by a column header, the detail's
 * session link, and acknowledging both at once.
 */
export async function incidents(page, base, { repo, work, sshPort, ftpPort }) {
  const watched = `watch${Math.random().toString(36).slice(2, 7)}`;
  const cfg = path.join(work, 'alerts-e2e.json');
  fs.writeFileSync(cfg, JSON.stringify({ rules: [{ name: 'watched', type: 'auth_username', usernames: [watched], severity: 'critical', cooldown_seconds: 0 }] }));
  const load = await pageFetch(page, 'POST', '/api/modules', {
    name: 'alerts-e2e',
    command: 'python3',
    args: [path.join(repo, 'modules', 'examples', 'alerts', 'alerts.py'), '--config', cfg],
    permissions: ['events:read', 'alerts:write'],
  });
  if (load.status !== 200) throw new Error(`loading the alerts module: ${load.status} ${load.text}`);
  const mine = async () => {
    const r = await pageFetch(page, 'GET', `/api/incidents?state=all&q=${watched}&limit=500`);
    // q searches source/node/service/title; the title names the watched user.
    return r.json?.incidents ?? [];
  };
  // "connected" can show before the module subscribes: attempt until alerts arrive.
  for (let i = 0; i < 10; i++) {
    sshAttempt(sshPort, watched);
    const ok = await waitFor('an SSH incident', 4000, async () => (await mine()).some((x) => x.service === 'ssh')).then(() => true, () => false);
    if (ok) break;
  }
  sshAttempt(sshPort, watched);
  sshAttempt(sshPort, watched);
  await ftpLogin(ftpPort, watched, 'incident-pw');
  await ftpLogin(ftpPort, watched, 'incident-pw');
  const both = await waitFor('an SSH incident of ≥ 3 alerts and an FTP incident of 2', 30000, async () => {
    const l = await mine();
    const ssh = l.find((x) => x.service === 'ssh');
    const ftp = l.find((x) => x.service === 'ftp');
    return ssh && ftp && ssh.count >= 3 && ftp.count >= 2 ? { ssh, ftp } : null;
  });
  if (both.ssh.id === both.ftp.id) throw new Error('SSH and FTP attempts fell into one incident');
  if ((await mine()).filter((x) => x.service === 'ssh').length !== 1) throw new Error('the SSH attempts of one source made more than one incident');

  await page.goto(`${base}/#/incidents?q=${watched}`);
  const rows = page.locator('[data-testid=incident-row]');
  await waitFor('two incident rows', 15000, async () => (await rows.count()) === 2);
  // Critical looks different: a filled badge and a marked row.
  const look = await page.locator(`[data-testid=incident-row][data-incident="${both.ssh.id}"]`).evaluate((tr) => ({
    cls: tr.className,
    badge: getComputedStyle(tr.querySelector('.sevbadge')).backgroundColor,
    bar: getComputedStyle(tr.querySelector('td')).boxShadow,
  }));
  if (!/inc-critical/.test(look.cls) || /rgba\(0, 0, 0, 0\)|transparent/.test(look.badge) || look.bar === 'none') throw new Error(`a critical incident does not stand out: ${JSON.stringify(look)}`);
  // Server-side sorting by the Alerts column: descending, then ascending.
  const counts = () => page.locator('[data-testid=incident-count]').allInnerTexts().then((t) => t.map(Number));
  const header = page.locator('th[data-sort-key=count]');
  await header.getByRole('button').click();
  await waitFor('sorted by alerts, most first', 10000, async () => (await header.getAttribute('aria-sort')) === 'descending' && (await counts()).join() === [both.ssh.count, both.ftp.count].sort((a, b) => b - a).join());
  await header.getByRole('button').click();
  await waitFor('sorted by alerts, fewest first', 10000, async () => (await header.getAttribute('aria-sort')) === 'ascending' && (await counts()).join() === [both.ssh.count, both.ftp.count].sort((a, b) => a - b).join());
  if (!/sort=count/.test(await page.evaluate(() => location.hash)) || !/order=asc/.test(await page.evaluate(() => location.hash))) throw new Error('the sort is not kept in the address');
  // The detail links each alert to its session and event.
  await page.locator(`[data-testid=incident-row][data-incident="${both.ssh.id}"] button.linklike`).click();
  await page.getByTestId('incident-detail').waitFor({ timeout: 10000 });
  const sessionLinks = await page.getByTestId('alert-session').count();
  if (sessionLinks < 3) throw new Error(`the SSH incident's detail links ${sessionLinks} sessions`);
  // Acknowledge both at once.
  await page.getByTestId('select-all').check();
  const ackButton = page.getByTestId('ack-selected');
  if (!/2 selected/.test(await ackButton.innerText())) throw new Error(`the button says ${await ackButton.innerText()}`);
  await ackButton.click();
  await page.getByRole('status').filter({ hasText: '2 incidents acknowledged' }).waitFor({ timeout: 15000 });
  await waitFor('no open incident rows', 10000, async () => (await rows.count()) === 0);
  const after = await mine();
  if (!after.every((x) => x.state === 'acknowledged' && x.acked_by === 'admin')) throw new Error(`after the bulk acknowledgement: ${JSON.stringify(after)}`);
  await page.getByTestId('incident-state').selectOption('acknowledged');
  await waitFor('the acknowledged incidents listed', 10000, async () => (await rows.count()) === 2);
  await pageFetch(page, 'DELETE', '/api/modules/alerts-e2e');
  return { ssh_alerts: both.ssh.count, ftp_alerts: both.ftp.count, sessions_linked: sessionLinks };
}

/** The Events page shows how many events match over every page, as the API counts them. */
export async function totalCount(page, base) {
  const r = await pageFetch(page, 'GET', '/api/events?service=ssh&kind=auth_attempt&limit=500');
  const n = r.json.events.length;
  if (n >= 500 || r.json.total !== n) throw new Error(`the API's total ${r.json.total} for ${n} events`);
  await page.goto(`${base}/#/events?service=ssh&kind=auth_attempt&limit=50`);
  const total = page.getByTestId('events-total');
  await total.waitFor({ timeout: 15000 });
  const shown = Number(await total.getAttribute('data-total'));
  const text = await total.innerText();
  if (shown !== n || !text.includes(n.toLocaleString('en'))) throw new Error(`the page says ${JSON.stringify(text)} for ${n} matching events`);
  const rows = await page.locator('[data-testid=events-table] tbody tr[data-kind]').count();
  return { total: n, rows_on_page: rows };
}

/** The built-in dashboard module offers no Unload, and the API refuses with a sentence. */
export async function builtinModule(page, base) {
  await page.goto(`${base}/#/modules`);
  const row = page.locator('tr[data-module="dashboard"]');
  await row.waitFor({ timeout: 15000 });
  if (await row.getByRole('button', { name: 'Unload' }).count()) throw new Error('the dashboard module has an Unload button');
  const note = await row.getByTestId('builtin-note').innerText();
  const r = await pageFetch(page, 'DELETE', '/api/modules/dashboard');
  if (r.status !== 409 || !/built in/.test(r.json?.error ?? '')) throw new Error(`unloading the dashboard module answered ${r.status} ${r.text}`);
  // The modules table sorts by a column header too (in the page: it holds every module).
  const names = () => page.locator('[data-testid=modules-table] tbody tr[data-module]').evaluateAll((rs) => rs.map((r) => r.dataset.module));
  const byName = page.locator('th[data-sort-key=name]');
  const inOrder = (list, dir) => list.every((n, i) => i === 0 || dir * new Intl.Collator('en', { numeric: true, sensitivity: 'base' }).compare(list[i - 1], n) <= 0);
  if (!inOrder(await names(), 1)) throw new Error(`modules are not in name order: ${await names()}`);
  await byName.getByRole('button').click();
  await waitFor('modules sorted by name, descending', 5000, async () => (await byName.getAttribute('aria-sort')) === 'descending' && inOrder(await names(), -1));
  // A crash-looping module shows how it last exited and its last lines.
  const load = await pageFetch(page, 'POST', '/api/modules', {
    name: 'crasher-e2e',
    command: 'python3',
    args: ['-c', "import sys; print('cannot open /nonexistent/GeoLite2.mmdb', file=sys.stderr); sys.exit(3)"],
    permissions: ['events:read'],
  });
  if (load.status !== 200) throw new Error(`loading the crashing module: ${load.status} ${load.text}`);
  const crasher = page.locator('tr[data-module="crasher-e2e"]');
  await crasher.getByTestId('module-exit').filter({ hasText: 'exit code 3' }).waitFor({ timeout: 30000 });
  await crasher.getByTestId('module-log').filter({ hasText: 'cannot open /nonexistent/GeoLite2.mmdb' }).waitFor({ timeout: 30000 });
  const badge = await crasher.locator('.badge.bad').first().innerText();
  if (!/crash-looping/.test(badge)) throw new Error(`the crashing module's badge says ${JSON.stringify(badge)}`);
  await pageFetch(page, 'DELETE', '/api/modules/crasher-e2e');
  return { note, refused: r.json.error, crash_badge: badge };
}

/**
 * Analytics counts commands typed into shells only: the FTP session's verbs and HTTP
 * requests are stored (as events of their services) but are not in Top commands.
 */
export async function shellCommandsOnly(page, base, httpPort) {
  await fetch(`http://127.0.0.1:${httpPort}/e2e-analytics-probe`).catch(() => {});
  const ftp = await pageFetch(page, 'GET', '/api/events?service=ftp&kind=command&limit=20');
  const verbs = (ftp.json?.events ?? []).map((e) => e.process?.command_line ?? '').filter(Boolean);
  if (!verbs.length) throw new Error(`no FTP command events stored: ${ftp.text.slice(0, 300)}`);
  await page.goto(`${base}/#/analytics?range=1h`);
  const list = page.getByRole('list', { name: 'Top commands' });
  await page.getByRole('heading', { name: 'Top commands' }).waitFor({ timeout: 15000 });
  await page.waitForLoadState('networkidle').catch(() => {});
  const items = (await list.count()) ? await list.locator('li .mono').allInnerTexts() : [];
  const leaked = items.filter((t) => /^(USER|PASS|QUIT|SYST|FEAT|PWD|LIST|TYPE|GET |POST |HEAD )/i.test(t.trim()) || verbs.includes(t.trim()));
  if (leaked.length) throw new Error(`Top commands shows FTP verbs or HTTP requests: ${JSON.stringify(leaked)}`);
  const api = await pageFetch(page, 'GET', `/api/analytics?since_ms=${Date.now() - 3600e3}`);
  if (!api.json.shell_services.includes('ssh') || api.json.shell_services.includes('ftp')) throw new Error(`shell services: ${JSON.stringify(api.json.shell_services)}`);
  // The log scale and per-service panels render; a chart click drills into Events.
  await page.getByTestId('split-services').check();
  await page.getByTestId('service-panels').waitFor({ timeout: 10000 });
  await page.getByTestId('log-scale').check();
  const chart = page.locator('[data-testid=service-panels] .chart').first();
  const box = await chart.boundingBox();
  await page.mouse.move(box.x + box.width - 30, box.y + box.height / 2);
  await page.mouse.click(box.x + box.width - 30, box.y + box.height / 2);
  await page.waitForFunction(() => location.hash.startsWith('#/events') && location.hash.includes('since_ms') && location.hash.includes('service='), null, { timeout: 10000 });
  return { ftp_verbs_stored: verbs.length, top_commands: items.slice(0, 5) };
}

/**
 * The alert rules editor: a rule without users and a Slack output with a bad URL are each
 * named beside their field; fixed, the configuration is saved and reads back.
 */
export async function alertRules(page, base) {
  await page.goto(`${base}/#/alert-rules`);
  await page.getByRole('heading', { name: 'Alert rules' }).waitFor({ timeout: 15000 });
  await page.getByTestId('add-rule').waitFor({ timeout: 15000 });
  const before = await page.getByTestId('rule').count();
  await page.getByTestId('add-rule').click();
  const rule = page.getByTestId('rule').nth(before);
  await rule.getByTestId('rule-type').selectOption('auth_username');
  await rule.getByTestId('rule-usernames').fill('');
  await page.getByRole('button', { name: 'Add Slack' }).click();
  const out = page.getByTestId('output').last();
  await out.getByTestId('output-url').fill('ftp://not-a-webhook');
  await page.getByTestId('check-rules').click();
  const userErr = rule.getByTestId('usernames-error');
  await userErr.waitFor({ timeout: 10000 });
  await out.getByTestId('url-error').waitFor({ timeout: 10000 });
  const top = await page.getByTestId('alert-rules-error').innerText();
  if (!/2 problems/.test(top)) throw new Error(`the summary says ${JSON.stringify(top)}`);
  const said = [await userErr.innerText(), await out.getByTestId('url-error').innerText()];
  await rule.getByTestId('rule-usernames').fill('root, e2e-watched');
  await out.getByTestId('output-url').fill('https://hooks.slack.com/services/T000/B000/E2E');
  await page.getByTestId('save-rules').click();
  await page.getByRole('status').filter({ hasText: 'Saved to' }).waitFor({ timeout: 10000 });
  await page.reload();
  await page.getByTestId('rules-preview').waitFor({ state: 'attached', timeout: 15000 });
  const file = await page.getByTestId('rules-preview').textContent();
  if (!file.includes('e2e-watched') || !file.includes('format = "slack"')) throw new Error(`the saved file: ${file}`);
  return { errors_shown: said };
}
