// Hash routing (`#/nodes/local`, `#/events?node=x`): works from the embedded index.html with
// no server-side routes, and the back button does what people expect.

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { path, parts, query: Object.fromEntries(new URLSearchParams(query)) };
}

export const route = $state(parse());

window.addEventListener('hashchange', () => {
  Object.assign(route, parse());
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
  route.query = Object.fromEntries(new URLSearchParams(q));
}
