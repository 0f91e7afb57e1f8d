// Browser checks of the operator's console shared by the real browser test (e2e/run.mjs,
// against `honeybee up`) and the mock runner (e2e/console-mock.mjs): phone width, the
// session that ends under an open page, unsaved config edits, the time zone toggle, chart
// values on hover, and the admins' audit log page. Each throws with a sentence on failure
// and returns figures worth printing.
import { login, waitFor } from './browser.mjs';

/** Every page the navigation offers (admin), as routes. */
export const PAGES = ['overview', 'nodes', 'events', 'sessions', 'captures', 'incidents', 'alerts', 'alert-rules', 'analytics', 'modules', 'reports', 'enrol', 'users', 'audit'];

/**
 * At 390 px (a phone) no page is wider than the screen and the navigation is folded into a
 * menu that opens and closes. `extra` adds routes (a node page, an event detail).
 */
export async function phoneWidth(page, base, extra = []) {
  const old = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = {};
  try {
    for (const r of [...PAGES, ...extra]) {
      await page.goto(`${base}/#/${r}`);
      await page.locator('main h1').first().waitFor({ timeout: 15000 });
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.waitForTimeout(400);
      const m = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth, inner: window.innerWidth }));
      widths[r] = m.scroll;
      if (m.scroll > m.inner || m.body > m.inner) {
        // Name the widest culprit so the failure says what to fix.
        const culprit = await page.evaluate(() => {
          let worst = null;
          for (const el of document.querySelectorAll('main *')) {
            const r = el.getBoundingClientRect();
            if (r.right > window.innerWidth + 0.5 && (!worst || r.right > worst.right)) worst = { right: Math.round(r.right), tag: el.tagName, cls: el.className?.baseVal ?? el.className, text: el.textContent.slice(0, 40) };
          }
          return worst;
        });
        throw new Error(`#/${r} is ${m.scroll} px wide at a ${m.inner} px screen; widest: ${JSON.stringify(culprit)}`);
      }
    }
    // The navigation: folded, opened by the menu button, closed again by following a link.
    await page.goto(`${base}/#/overview`);
    const menu = page.getByTestId('menu-button');
    await menu.waitFor({ timeout: 10000 });
    const eventsLink = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events', exact: true });
    if (await eventsLink.isVisible()) throw new Error('at 390 px the navigation links show without opening the menu');
    if ((await menu.getAttribute('aria-expanded')) !== 'false') throw new Error('the menu button does not say it is closed');
    await menu.click();
    await eventsLink.waitFor({ state: 'visible', timeout: 5000 });
    if ((await menu.getAttribute('aria-expanded')) !== 'true') throw new Error('the open menu button does not say it is open');
    await eventsLink.click();
    await page.waitForFunction(() => location.hash.startsWith('#/events'));
    await eventsLink.waitFor({ state: 'hidden', timeout: 5000 });
  } finally {
    await page.setViewportSize(old ?? { width: 1440, height: 900 });
  }
  return widths;
}

/**
 * Unsaved config edits on a node page: following a link asks first (dismissed: the page
 * and the edits stay), so does leaving the document (beforeunload); discarding clears it.
 */
export async function unsavedConfig(page, base, nodeId) {
  await page.goto(`${base}/#/nodes/${encodeURIComponent(nodeId)}`);
  const editor = page.getByLabel(/service configuration/);
  await editor.waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#config-editor')?.value.length > 0, null, { timeout: 15000 });
  const original = await editor.inputValue();
  await editor.fill(`${original}\n# an edit not saved yet\n`);
  const dialogs = [];
  const onDialog = async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    await d.dismiss();
  };
  page.on('dialog', onDialog);
  try {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events', exact: true }).click();
    await waitFor('the warning before leaving', 5000, () => dialogs.length > 0);
    if (dialogs[0].type !== 'confirm' || !/not saved/.test(dialogs[0].message)) throw new Error(`unexpected dialog: ${JSON.stringify(dialogs[0])}`);
    await page.waitForTimeout(300);
    if (!(await page.evaluate(() => location.hash)).startsWith('#/nodes/')) throw new Error(`left the page after "stay": ${await page.evaluate(() => location.hash)}`);
    if (!(await editor.inputValue()).includes('an edit not saved yet')) throw new Error('the edit is gone after choosing to stay');
    // Leaving the document (reload, closing the tab): the browser's own warning.
    await page.reload({ timeout: 5000 }).catch(() => {});
    await waitFor('the beforeunload warning', 5000, () => dialogs.some((d) => d.type === 'beforeunload'));
    if (!(await editor.inputValue()).includes('an edit not saved yet')) throw new Error('the edit is gone after the beforeunload warning was dismissed');
  } finally {
    page.off('dialog', onDialog);
  }
  await page.getByRole('button', { name: 'Discard changes' }).click();
  return dialogs.map((d) => d.type).join(',');
}

/**
 * A session that ends under an open page (its user deleted by an admin elsewhere): the
 * page returns to sign-in and says why, without any click. `createUser(name, password)`
 * and `deleteUser(name)` act as an admin from outside this page.
 */
export async function sessionEnds(page, base, { createUser, deleteUser, relogin }) {
  const name = `e2e-gone-${Math.random().toString(36).slice(2, 7)}`;
  const password = `gone-${Math.random().toString(36).slice(2)}-pw`;
  await createUser(name, password);
  await page.getByRole('button', { name: 'Log out' }).click();
  await login(page, base, name, password);
  await page.goto(`${base}/#/overview`);
  await page.getByTestId('live-status').filter({ hasText: /^\s*live\s*$/ }).waitFor({ timeout: 15000 });
  const t0 = Date.now();
  await deleteUser(name);
  // No action on the page: the live socket's close (4401) brings it back to sign-in.
  await page.getByTestId('session-ended').waitFor({ timeout: 30000 });
  const ms = Date.now() - t0;
  const text = await page.getByTestId('session-ended').innerText();
  if (!/session ended/i.test(text)) throw new Error(`the sign-in page says ${JSON.stringify(text)}`);
  await page.getByLabel('Username').waitFor();
  await relogin();
  return ms;
}

/** The zone toggle: times say their zone, switch to UTC and back, and the choice is kept. */
export async function zoneToggle(page, base) {
  await page.goto(`${base}/#/events`);
  const zone = page.getByTestId('time-zone').first();
  await zone.waitFor({ timeout: 15000 });
  const toggle = page.getByTestId('zone-toggle');
  if ((await toggle.getAttribute('aria-pressed')) === 'true') await toggle.click();
  const localLabel = await zone.innerText();
  if (!/local/.test(localLabel)) throw new Error(`the time column says ${localLabel}`);
  const firstRow = page.locator('[data-testid=events-table] tbody tr[data-kind]').first();
  await firstRow.waitFor({ timeout: 15000 });
  const localText = (await firstRow.locator('td').first().innerText()).trim();
  const offset = await page.evaluate(() => new Date().getTimezoneOffset());
  if (offset !== 0 && !/UTC[+-]\d\d:\d\d/.test(localLabel)) throw new Error(`the local zone label ${localLabel} lacks its offset`);
  await toggle.click();
  await page.getByTestId('time-zone').first().filter({ hasText: 'UTC' }).waitFor({ timeout: 5000 });
  // The first row's time is the event's @timestamp in UTC.
  const row = page.locator('[data-testid=events-table] tbody tr[data-kind]').first();
  await row.waitFor({ timeout: 15000 });
  const shown = (await row.locator('td').first().innerText()).trim();
  const href = await row.locator('a').first().getAttribute('href');
  const [, node, seq] = href.match(/^#\/events\/([^/]+)\/(\d+)$/);
  const doc = await page.evaluate(async ([n, s]) => (await fetch(`/api/events/${n}/${s}`)).json(), [node, seq]);
  const want = new Date(doc['@timestamp']).toISOString().replace('T', ' ').slice(0, 19);
  if (shown !== want) throw new Error(`in UTC the row shows ${shown}, the event's @timestamp is ${want}`);
  if (offset !== 0 && localText === shown) throw new Error(`the row shows ${shown} in both zones`);
  await page.reload();
  await page.getByTestId('time-zone').first().filter({ hasText: 'UTC' }).waitFor({ timeout: 15000 });
  if ((await page.getByTestId('zone-toggle').getAttribute('aria-pressed')) !== 'true') throw new Error('the UTC choice was not kept across a reload');
  await page.getByTestId('zone-toggle').click();
  await page.getByTestId('time-zone').first().filter({ hasText: 'local' }).waitFor({ timeout: 5000 });
  return { local: localLabel, local_row: localText, utc_row: shown };
}

/** Hovering a chart shows the time and the value under the cursor. */
export async function chartHover(page, base) {
  await page.goto(`${base}/#/overview`);
  const over = page.locator('.u-over').first();
  await over.waitFor({ timeout: 15000 });
  await page.waitForTimeout(500);
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  const tip = page.getByTestId('chart-tip');
  await tip.waitFor({ timeout: 5000 });
  const text = await tip.innerText();
  if (!/\d{2}:\d{2}:\d{2}/.test(text) || !/:\s*[\d,]+/.test(text)) throw new Error(`the chart tip says ${JSON.stringify(text)}`);
  await page.mouse.move(0, 0);
  return text.replace(/\s+/g, ' ');
}

/** Admins read the audit log a page at a time; the text filter narrows it. */
export async function auditPage(page, base) {
  await page.goto(`${base}/#/audit`);
  const rows = page.locator('[data-testid=audit-table] tbody tr[data-action]');
  await rows.first().waitFor({ timeout: 15000 });
  const n = await rows.count();
  const actions = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.action));
  const pick = actions.find((a) => a !== 'events.search') ?? actions[0];
  await page.getByRole('searchbox').fill(pick);
  await page.getByRole('button', { name: 'Search' }).click();
  await waitFor(`only rows mentioning ${pick}`, 15000, async () => {
    const texts = await rows.allInnerTexts();
    return texts.length > 0 && texts.every((t) => t.includes(pick));
  });
  return { first_page_rows: n, filtered_on: pick };
}

/**
 * Relative time ranges and saved searches on the Events page: "last 15 min" stays relative
 * in the URL and shows only events from then; a search saved under a name comes back
 * from the list (this browser's localStorage) with all its filters.
 */
export async function rangesAndSavedSearches(page, base, query) {
  await page.goto(`${base}/#/events`);
  await page.locator('select[name=range]').selectOption('15m');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => location.hash.includes('range=15m'));
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(400);
  const hrefs = await page.locator('[data-testid=events-table] tbody tr[data-kind] a[href^="#/events/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  const stamps = await page.evaluate(async (hs) => {
    const out = [];
    for (const h of hs.slice(0, 20)) out.push((await (await fetch(`/api/${h.slice(2)}`)).json())['@timestamp']);
    return out;
  }, hrefs);
  const old = stamps.filter((t) => Date.parse(t) < Date.now() - 16 * 60e3);
  if (old.length) throw new Error(`"last 15 min" shows older events: ${old.join(', ')}`);
  // Save a search, leave it, open it again from the list.
  await page.goto(`${base}/#/events?query=${encodeURIComponent(query)}&range=24h`);
  await page.locator('input[name=query]').waitFor();
  const name = `e2e saved ${Math.random().toString(36).slice(2, 6)}`;
  const onDialog = (d) => d.accept(name);
  page.once('dialog', onDialog);
  await page.getByTestId('save-search').click();
  await page.getByTestId('saved-searches').waitFor({ timeout: 5000 });
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.waitForFunction(() => !location.hash.includes('query='));
  await page.getByTestId('saved-searches').selectOption(name);
  await page.waitForFunction((q) => new URLSearchParams(location.hash.split('?')[1] ?? '').get('query') === q, query);
  if ((await page.locator('input[name=query]').inputValue()) !== query) throw new Error('the saved search did not fill the query box');
  if ((await page.locator('select[name=range]').inputValue()) !== '24h') throw new Error('the saved search lost its range');
  return { rows_last_15_min: hrefs.length, saved: name };
}

/**
 * Config edits not saved when the session ended are kept in the tab and offered again on
 * the node page after signing in (as an admin whose session is ended by deleting them).
 */
export async function draftSurvivesSessionEnd(page, base, nodeId, { createUser, deleteUser, relogin }) {
  const name = `e2e-admin-${Math.random().toString(36).slice(2, 7)}`;
  const password = `admin-${Math.random().toString(36).slice(2)}-pw`;
  await createUser(name, password, 'admin');
  await page.getByRole('button', { name: 'Log out' }).click();
  await login(page, base, name, password);
  await page.goto(`${base}/#/nodes/${encodeURIComponent(nodeId)}`);
  const editor = page.getByLabel(/service configuration/);
  await editor.waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#config-editor')?.value.length > 0, null, { timeout: 15000 });
  const marker = `# kept across the session end ${Math.random().toString(36).slice(2, 6)}`;
  await editor.fill(`${await editor.inputValue()}\n${marker}\n`);
  await deleteUser(name);
  await page.getByTestId('session-ended').waitFor({ timeout: 30000 });
  await relogin();
  await page.goto(`${base}/#/nodes/${encodeURIComponent(nodeId)}`);
  await page.getByTestId('config-draft').waitFor({ timeout: 15000 });
  await page.getByTestId('config-draft').getByRole('button', { name: 'Restore them' }).click();
  if (!(await editor.inputValue()).includes(marker)) throw new Error('the restored edits lack the line typed before the session ended');
  await page.getByRole('button', { name: 'Discard changes' }).click();
  return 'restored';
}
