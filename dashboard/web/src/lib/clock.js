// Which zone every time on the dashboard is shown in: the browser's local zone or UTC,
// switched in the navigation and remembered in localStorage. `label` names the zone next
// to the times shown (in table headings, or after a lone time), so nobody has to guess.
// A plain module (no runes) so the formatting helpers stay testable under plain Node; the
// app re-renders the page when the choice changes (see `onZoneChange`).

const KEY = 'honeybee.times';

export function offsetLabel(date = new Date()) {
  const m = -date.getTimezoneOffset();
  if (m === 0) return 'UTC';
  const sign = m > 0 ? '+' : '-';
  const a = Math.abs(m);
  return `UTC${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function localName() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
  } catch {
    return 'local';
  }
}

function stored() {
  try {
    return globalThis.localStorage?.getItem(KEY) === 'utc';
  } catch {
    return false;
  }
}

function labelFor(utc) {
  return utc ? 'UTC' : `local, ${offsetLabel()}`;
}

export const clock = { utc: stored(), label: labelFor(stored()), zone: localName() };

const listeners = new Set();

/** Calls `fn` after every change of zone; returns the function that stops it. */
export function onZoneChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setUtc(utc, remember = true) {
  clock.utc = !!utc;
  clock.label = labelFor(clock.utc);
  if (remember) {
    try {
      globalThis.localStorage?.setItem(KEY, clock.utc ? 'utc' : 'local');
    } catch {
      // Private mode: the choice lasts for this page only.
    }
  }
  for (const fn of listeners) fn(clock);
}

// Another tab changed the choice: follow it.
globalThis.window?.addEventListener('storage', (e) => {
  if (e.key === KEY) setUtc(e.newValue === 'utc', false);
});
