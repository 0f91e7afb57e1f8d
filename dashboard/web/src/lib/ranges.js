// Relative time ranges ("last hour"), kept relative in the address and resolved when a
// page loads or filters, shared by the pages that list time-bound rows.

export const RANGES = [
  ['', 'any time', null],
  ['15m', 'last 15 min', 15 * 60e3],
  ['1h', 'last hour', 3600e3],
  ['24h', 'last 24 hours', 86400e3],
  ['7d', 'last 7 days', 7 * 86400e3],
  ['30d', 'last 30 days', 30 * 86400e3],
];

/** The span of a range id in ms, or null (any time / unknown). */
export function rangeMs(id) {
  return RANGES.find((r) => r[0] === id)?.[2] ?? null;
}

/** A known range id from the address, else ''. */
export function rangeFrom(query) {
  return RANGES.some((r) => r[0] === query?.range) ? query.range : '';
}
