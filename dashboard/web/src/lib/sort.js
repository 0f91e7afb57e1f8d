// Client-side sorting of tables that hold all their rows (nodes, captures, modules): a
// column key, a direction, and a comparison that puts numbers in numeric order, text in
// natural order, and empty values last either way.

/** The next sort state after clicking `key`: same column flips, a new one starts `first`. */
export function nextSort(sort, key, first = 'desc') {
  if (sort.key === key) return { key, dir: sort.dir === 'asc' ? 'desc' : 'asc' };
  return { key, dir: first };
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

function empty(v) {
  return v === null || v === undefined || v === '';
}

/** `rows` sorted (a copy) by `get(row)` for the column. */
export function sortRows(rows, sort, get = (r, k) => r[k]) {
  const dir = sort.dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = get(a, sort.key);
    const y = get(b, sort.key);
    if (empty(x) || empty(y)) return empty(x) - empty(y);
    if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
    if (typeof x === 'boolean' && typeof y === 'boolean') return (Number(x) - Number(y)) * dir;
    return collator.compare(String(x), String(y)) * dir;
  });
}
