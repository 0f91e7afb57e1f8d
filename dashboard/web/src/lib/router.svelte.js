// Hash routing (`#/nodes/local`, `#/events?node=x`): works from the embedded index.html with
// no server-side routes, and the back button does what people expect. A page with unsaved
// work registers a guard (`guardLeaving`): leaving it, by a link, the back button or
// closing the tab, asks first.

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { path, parts, query: Object.fromEntries(new URLSearchParams(query)) };
}

export const route = $state(parse());

// Each guard returns a sentence when leaving now would lose something, else nothing.
const guards = new Set();
let shownHash = location.hash;

/** The first guard's warning, if any. */
export function leavingWarning() {
  for (const g of guards) {
    const w = g();
    if (w) return w;
  }
  return '';
}

// When someone last chose to leave unsaved work behind (pages then keep no draft of it).
let confirmedAt = 0;

/** Asks before losing unsaved work; true when it is fine to go on. */
export function confirmLeaving() {
  const w = leavingWarning();
  if (!w) return true;
  const ok = window.confirm(`${w}\n\nLeave anyway?`);
  if (ok) confirmedAt = Date.now();
  return ok;
}

/** Whether the page is going away because someone just chose to drop its unsaved work. */
export function leftDeliberately() {
  return Date.now() - confirmedAt < 3000;
}

/** Registers a guard for as long as the calling page lives; returns its removal. */
export function guardLeaving(fn) {
  guards.add(fn);
  return () => guards.delete(fn);
}

window.addEventListener('hashchange', () => {
  const parsed = parse();
  // Only a change of page can lose work; a new query on the same page cannot.
  if (parsed.path !== route.path && !confirmLeaving()) {
    // Stay: put the address back without a new history entry or a reload.
    history.replaceState(null, '', shownHash || '#/');
    return;
  }
  shownHash = location.hash;
  Object.assign(route, parsed);
});

window.addEventListener('beforeunload', (e) => {
  if (leavingWarning()) {
    e.preventDefault();
    // Older browsers show the dialog only when this is set.
    e.returnValue = '';
  }
});

export function go(path, query) {
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString() : '';
  location.hash = `#${path}${q ? `?${q}` : ''}`;
}

/** Replaces the query of the current route without adding a history entry. */
export function setQuery(query) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString();
  const url = `#${route.path}${q ? `?${q}` : ''}`;
  history.replaceState(null, '', url);
  shownHash = url;
  route.query = Object.fromEntries(new URLSearchParams(q));
}
