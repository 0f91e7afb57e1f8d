// Screenshots of every page against the mock backend (node e2e/mock.mjs), for working on
// the frontend without a HoneyBee: node e2e/mock-screens.mjs [base] [outdir]
import { launch, login, screenshotter } from './browser.mjs';

const base = process.argv[2] ?? 'http://127.0.0.1:8080';
const shot = screenshotter(process.argv[3] ?? '/tmp/hb-mock-screens');
const { context, close } = await launch();
const page = context.pages()[0] ?? (await context.newPage());
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
try {
  await login(page, base, 'admin', 'admin-password-123');
  for (const route of ['overview', 'nodes', 'nodes/local', 'enrol', 'events', 'sessions', 'captures', 'incidents', 'alerts', 'analytics', 'modules', 'reports', 'users']) {
    await page.goto(`${base}/#/${route}`);
    await page.waitForTimeout(1500);
    console.log(await shot(page, route.replace('/', '-')));
  }
  const row = page.locator('[data-testid=events-table] tbody tr a').first();
  await page.goto(`${base}/#/events`);
  await row.click();
  await page.waitForTimeout(800);
  console.log(await shot(page, 'event-detail'));
  await page.goto(`${base}/#/captures`);
  await page.getByRole('link', { name: /^[0-9a-f]{16}$/ }).first().click();
  await page.waitForTimeout(5000);
  console.log(await shot(page, 'session-replay'));
} finally {
  console.log('page errors:', errors);
  await close();
}
