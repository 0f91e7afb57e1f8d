// The Events page under load, in Debian's Chromium: 5,000 rows on one page while live
// events keep arriving (the mock backend, e2e/mock.mjs, started with MOCK_EVENTS=5000 and
// MOCK_RATE, or any dashboard at HB_URL). It measures and prints how the page copes
// (frames a second, long tasks, event-loop lag, how long typed keys take to show, how long
// a filter takes to apply) and asserts only what must be true: all rows are there, few of
// them are in the DOM, live rows arrive, scrolling reaches the last row, the filter works.
// Times are reported, never asserted: the machines running this are shared and noisy.
//
//   node e2e/events-load.mjs [base]    (HB_USER / HB_PASSWORD: default the mock's admin)
import { launch, login, screenshotter, waitFor } from './browser.mjs';
import path from 'node:path';
import os from 'node:os';

const base = (process.argv[2] ?? process.env.HB_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const user = process.env.HB_USER ?? 'admin';
const password = process.env.HB_PASSWORD ?? 'admin-password-123';
const ROWS = Number(process.env.HB_ROWS ?? 5000);
const shot = screenshotter(process.env.HB_SCREENSHOTS ?? path.join(os.tmpdir(), 'hb-events-load'));

const figures = {};
const { context, close } = await launch();
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));

/** In the page: counts frames, long tasks and timer lag from now on. */
function startProbe() {
  const p = { frames: 0, longTasks: 0, longTaskMs: 0, maxLag: 0, lags: [], keys: [] };
  window.__probe = p;
  const t0 = performance.now();
  p.t0 = t0;
  const frame = () => {
    p.frames++;
    if (!p.stopped) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  try {
    p.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        p.longTasks++;
        p.longTaskMs += e.duration;
      }
    });
    p.obs.observe({ type: 'longtask' });
  } catch {
    p.longTasks = null;
  }
  // A 50 ms timer that fires late measures how long the main thread was busy.
  let expected = performance.now() + 50;
  p.lagTimer = setInterval(() => {
    const now = performance.now();
    const lag = Math.max(0, now - expected);
    p.lags.push(lag);
    p.maxLag = Math.max(p.maxLag, lag);
    expected = now + 50;
  }, 50);
  // From each keystroke (the event's own time stamp) to the next painted frame.
  p.onInput = (e) => {
    const stamp = e.timeStamp;
    requestAnimationFrame(() => setTimeout(() => p.keys.push(performance.now() - stamp), 0));
  };
  document.addEventListener('input', p.onInput, true);
}

function stopProbe() {
  const p = window.__probe;
  p.stopped = true;
  clearInterval(p.lagTimer);
  p.obs?.disconnect();
  document.removeEventListener('input', p.onInput, true);
  const secs = (performance.now() - p.t0) / 1000;
  const sorted = [...p.lags].sort((a, b) => a - b);
  const keys = [...p.keys].sort((a, b) => a - b);
  const q = (arr, f) => (arr.length ? Math.round(arr[Math.min(arr.length - 1, Math.floor(arr.length * f))]) : null);
  return {
    seconds: Math.round(secs * 10) / 10,
    fps: Math.round((p.frames / secs) * 10) / 10,
    long_tasks: p.longTasks,
    long_task_ms: Math.round(p.longTaskMs),
    lag_p50_ms: q(sorted, 0.5),
    lag_p99_ms: q(sorted, 0.99),
    lag_max_ms: Math.round(p.maxLag),
    key_to_paint_p50_ms: q(keys, 0.5),
    key_to_paint_max_ms: keys.length ? Math.round(keys[keys.length - 1]) : null,
    keys: keys.length,
  };
}

const rowsSel = '[data-testid=events-table] tbody tr[data-kind]';
const countOf = async () => Number((await page.getByTestId('events-count').innerText()).trim().split(' ')[0].replace(/,/g, ''));

let failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e.message}`);
    await shot(page, `failed-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`).catch(() => {});
  }
}

try {
  await login(page, base, user, password);

  await step(`the Events page holds ${ROWS} rows, rendering only those in view`, async () => {
    const t0 = Date.now();
    await page.goto(`${base}/#/events?limit=${ROWS}`);
    await waitFor(`${ROWS} rows loaded`, 60000, async () => (await countOf()) >= ROWS);
    figures.load_5000_ms = Date.now() - t0;
    const inDom = await page.locator(rowsSel).count();
    figures.rows_in_dom = inDom;
    if (inDom >= 200) throw new Error(`${inDom} rows in the DOM for ${ROWS} events: the table is not windowed`);
    // A histogram of the rows on the page sits above them.
    await page.getByTestId('events-histogram').waitFor({ timeout: 15000 });
    const rowcount = await page.getByTestId('events-table').getAttribute('aria-rowcount');
    if (Number(rowcount) !== ROWS + 1) throw new Error(`aria-rowcount ${rowcount}, want ${ROWS + 1}`);
    await page.locator('[data-testid=tail-state]', { hasText: 'live tail' }).waitFor({ timeout: 15000 });
  });

  await step('live arrivals show while the page stays responsive (measured)', async () => {
    const firstKey = async () => page.locator(rowsSel).first().locator('a').first().getAttribute('href');
    const before = await firstKey();
    await page.evaluate(startProbe);
    await page.waitForTimeout(5000);
    figures.idle_with_live = await page.evaluate(stopProbe);
    const after = await firstKey();
    if (before === after) throw new Error(`no live row arrived in 5 s (top row still ${before})`);
    const count = await countOf();
    if (count !== ROWS) throw new Error(`${count} rows after live arrivals, want the page's ${ROWS}`);
  });

  await step('typing into the filter box (measured), then the filter applies', async () => {
    const box = page.getByRole('searchbox');
    await box.click();
    await page.evaluate(startProbe);
    const t0 = Date.now();
    await box.pressSequentially('wget', { delay: 60 });
    await waitFor('the typed text in the box', 30000, async () => (await box.inputValue()) === 'wget');
    figures.typing_4_keys_ms = Date.now() - t0;
    figures.typing = await page.evaluate(stopProbe);
    const t1 = Date.now();
    await box.press('Enter');
    await waitFor('only rows with wget', 60000, async () => {
      const texts = await page.locator(rowsSel).allInnerTexts();
      return texts.length > 0 && texts.every((t) => t.includes('wget'));
    });
    figures.filter_apply_ms = Date.now() - t1;
    if (!page.url().includes('q=wget')) throw new Error(`the URL does not carry the filter: ${page.url()}`);
    await shot(page, 'events-filtered');
    await box.fill('');
    await box.press('Enter');
    await waitFor(`${ROWS} rows again`, 60000, async () => (await countOf()) >= ROWS);
  });

  await step('scrolling reaches the last row (live arrivals keep the view in place)', async () => {
    const scroller = page.getByTestId('events-scroll');
    await page.evaluate(startProbe);
    // Scroll down in steps, as a reader dragging the bar would, then jump to the end.
    for (let i = 1; i <= 10; i++) {
      await scroller.evaluate((el, f) => (el.scrollTop = el.scrollHeight * f), i / 10);
      await page.waitForTimeout(100);
    }
    await scroller.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await waitFor('the last row rendered', 15000, async () => {
      const idx = await page.locator(rowsSel).last().getAttribute('aria-rowindex');
      return Number(idx) === ROWS + 1;
    });
    figures.scrolling = await page.evaluate(stopProbe);
    // The middle of the list, then live arrivals: the row on top stays the same one.
    await scroller.evaluate((el) => (el.scrollTop = el.scrollHeight / 2));
    await page.waitForTimeout(300);
    const topRow = async () =>
      scroller.evaluate((el) => {
        const box = el.getBoundingClientRect();
        const head = el.querySelector('thead').getBoundingClientRect().height;
        const hit = document.elementFromPoint(box.left + 20, box.top + head + 5)?.closest('tr');
        return hit?.querySelector('a')?.getAttribute('href') ?? null;
      });
    const a = await topRow();
    await page.waitForTimeout(1500);
    const b = await topRow();
    figures.scroll_anchor_kept = a != null && a === b;
    await shot(page, 'events-scrolled');
  });

  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
} catch (e) {
  failed++;
  console.log(`FAIL ${e.message}`);
} finally {
  await close();
  console.log(`figures: ${JSON.stringify(figures)}`);
  console.log(failed ? `${failed} failed` : 'all passed');
}
process.exit(failed ? 1 : 0);
