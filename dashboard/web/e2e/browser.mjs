// Starts Debian's Chromium through playwright-core the way this machine allows (no browser
// download, no background networking) with a fresh profile, and small helpers the browser
// tests share: logging in, waiting with a deadline, saving page screenshots.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hb-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    // A zone other than the machine's (often UTC), so local and UTC times differ and the
    // zone labels and toggle are really tested.
    timezoneId: process.env.HB_BROWSER_TZ || 'Europe/Paris',
    acceptDownloads: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

export async function login(page, base, username, password) {
  await page.goto(`${base}/#/overview`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor({ timeout: 15000 });
}

export function screenshotter(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return async (page, name) => {
    const file = path.join(dir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };
}

/** Polls `fn` until it returns a truthy value or `ms` pass; throws with `what` on timeout. */
export async function waitFor(what, ms, fn, every = 200) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
