// Unit tests of the app's plain-JavaScript helpers (no browser): the asciicast parser on
// hostile transcripts, the live-tail filter, and the event summaries. `npm test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAsciicast } from '../src/lib/asciicast.js';
import { matches } from '../src/lib/filters.js';
import { field, summary, parseLabels, srcOf, fmtBytes, eventTime, coreOf } from '../src/lib/format.js';

const doc = {
  '@timestamp': '2026-11-26T14:38:41.839Z',
  event: { action: 'auth_attempt', sequence: 7 },
  observer: { name: 'local' },
  service: { name: 'ssh' },
  source: { ip: '203.0.113.7', port: 40000 },
  user: { name: 'root' },
  honeybee: { method: 'password', password: '123456', success: false },
};

test('asciicast: header, output and input frames, torn last line', () => {
  const text = [
    JSON.stringify({ version: 2, width: 100, height: 30 }),
    JSON.stringify([0.5, 'o', 'login: ']),
    JSON.stringify([1.0, 'i', 'root\r']),
    JSON.stringify([1.5, 'x', 'ignored kind']),
    '[2.0, "o", "torn',
  ].join('\n');
  const c = parseAsciicast(text);
  assert.equal(c.width, 100);
  assert.equal(c.height, 30);
  assert.deepEqual(
    c.frames.map((f) => f.kind),
    ['o', 'i'],
  );
  assert.equal(c.duration, 1.0);
});

test('asciicast: refuses what is not a v2 transcript; clamps absurd sizes', () => {
  assert.throws(() => parseAsciicast('not json\n[1,"o","x"]'), /not an asciicast/);
  assert.throws(() => parseAsciicast(JSON.stringify({ version: 1 })), /version 2/);
  const c = parseAsciicast(JSON.stringify({ version: 2, width: 1e9, height: -5 }));
  assert.equal(c.width, 300);
  assert.equal(c.height, 5);
  assert.equal(c.frames.length, 0);
});

test('asciicast: frames with wrong types are skipped, not trusted', () => {
  const text = [JSON.stringify({ version: 2 }), '[ "1", "o", "x"]', '[1, "o", 5]', '{"a":1}', '[1, "o", "ok"]'].join('\n');
  const c = parseAsciicast(text);
  assert.deepEqual(c.frames, [{ t: 1, kind: 'o', data: 'ok' }]);
  assert.equal(c.width, 80);
});

test('live filter: every field narrows, empty filters match all', () => {
  assert.ok(matches(doc, {}));
  assert.ok(matches(doc, { node: 'local', service: 'ssh', kind: 'auth_attempt', src: '203.0.113.' }));
  assert.ok(!matches(doc, { node: 'other' }));
  assert.ok(!matches(doc, { kind: 'command' }));
  assert.ok(!matches(doc, { src: '198.51.' }));
  assert.ok(matches(doc, { q: '12345' }), 'free text looks inside the document');
  assert.ok(matches(doc, { q: 'ROOT' }), 'free text ignores case');
  const t = eventTime(doc);
  assert.ok(matches(doc, { since_ms: t, until_ms: t }));
  assert.ok(!matches(doc, { since_ms: t + 1 }));
  assert.ok(!matches(doc, { until_ms: t - 1 }));
});

test('format: dotted fields, summaries, labels, addresses, sizes', () => {
  assert.equal(field(doc, 'source.ip'), '203.0.113.7');
  assert.equal(field(doc, 'no.such.path'), undefined);
  assert.equal(summary(doc), 'login "root" password "123456" (failed)');
  assert.equal(summary({ event: { action: 'command' }, process: { command_line: 'uname -a' } }), '$ uname -a');
  const log = { event: { action: 'device_log' }, honeybee: { device: { name: 'printer-3f' } }, log: { syslog: { appname: 'lpd' } }, message: 'paper jam' };
  assert.equal(summary(log), 'printer-3f: lpd: paper jam');
  const trap = { event: { action: 'device_trap' }, honeybee: { device: { name: 'ups' }, snmp: { trap_oid: '1.3.6.1.6.3.1.1.5.3', inform: false } } };
  assert.equal(summary(trap), 'ups: trap 1.3.6.1.6.3.1.1.5.3');
  assert.deepEqual(parseLabels('site=paris, zone = dmz,,x=a=b'), { site: 'paris', zone: 'dmz', x: 'a=b' });
  assert.equal(srcOf(doc), '203.0.113.7:40000');
  assert.equal(srcOf({ source: { ip: '::1', port: 22 } }), '[::1]:22');
  assert.equal(fmtBytes(1536), '1.5 KiB');
});

test('search language: the tree from the backend applied to live events', async () => {
  const { evalQuery, matchesQuery, inCidr, glob } = await import('../src/lib/filters.js');
  // service:ssh AND NOT source.ip:10.0.0.0/8, as dashboard/src/query.rs sends it.
  const tree = {
    op: 'and',
    args: [
      { op: 'term', field: 'service.name', match: 'glob', value: 'ssh' },
      { op: 'not', arg: { op: 'term', field: 'source.ip', match: 'cidr', value: '10.0.0.0', bits: 8 } },
    ],
  };
  assert.equal(matchesQuery(doc, tree), true);
  assert.equal(matchesQuery({ ...doc, source: { ip: '10.2.3.4' } }, tree), false);
  assert.equal(matchesQuery({ ...doc, service: { name: 'telnet' } }, tree), false);
  assert.equal(matchesQuery(doc, null), true);
  assert.equal(evalQuery({ op: 'term', field: null, match: 'text', value: '123456' }, doc, JSON.stringify(doc).toLowerCase()), true);
  assert.equal(inCidr('2001:db8::1', '2001:db8::', 32), true);
  assert.equal(inCidr('2001:db9::1', '2001:db8::', 32), false);
  assert.equal(inCidr('::ffff:10.9.9.9', '10.0.0.0', 8), true);
  assert.equal(inCidr('192.0.2.1', '0.0.0.0', 0), true);
  assert.equal(inCidr('banana', '10.0.0.0', 8), false);
  assert.equal(glob('wget*', 'wget http://x'), true);
  assert.equal(glob('*a*a*a*a*b', 'a'.repeat(3000)), false);
});

import { nextSort, sortRows } from '../src/lib/sort.js';
import { rangeMs, rangeFrom } from '../src/lib/ranges.js';

test('sortable tables: numbers numerically, text naturally, empty values last', () => {
  const rows = [
    { n: 10, s: 'node-10' },
    { n: 9, s: 'node-9' },
    { n: null, s: '' },
    { n: 100, s: 'Node-100' },
  ];
  assert.deepEqual(sortRows(rows, { key: 'n', dir: 'asc' }).map((r) => r.n), [9, 10, 100, null]);
  assert.deepEqual(sortRows(rows, { key: 'n', dir: 'desc' }).map((r) => r.n), [100, 10, 9, null]);
  assert.deepEqual(sortRows(rows, { key: 's', dir: 'asc' }).map((r) => r.s), ['node-9', 'node-10', 'Node-100', '']);
  assert.deepEqual(nextSort({ key: 'n', dir: 'desc' }, 'n'), { key: 'n', dir: 'asc' });
  assert.deepEqual(nextSort({ key: 'n', dir: 'asc' }, 's', 'asc'), { key: 's', dir: 'asc' });
  assert.equal(rows[0].n, 10, 'the input is not reordered');
});

test('relative ranges', () => {
  assert.equal(rangeMs('1h'), 3600e3);
  assert.equal(rangeMs(''), null);
  assert.equal(rangeMs('1y'), null);
  assert.equal(rangeFrom({ range: '7d' }), '7d');
  assert.equal(rangeFrom({ range: 'x' }), '');
});

test('coreOf: the holding core of an online node in a cluster, nothing otherwise', () => {
  const id = '0123456789abcdef0123456789abcdef';
  assert.deepEqual(coreOf({ online: true, core: id }), { short: '01234567', full: id });
  // One core (no field), offline (a stale lease is not a connection), or not a core id
  // (the API sends 32 hex digits; anything else is not shown as markup or text).
  assert.equal(coreOf({ online: true }), null);
  assert.equal(coreOf({ online: true, core: null }), null);
  assert.equal(coreOf({ online: false, core: id }), null);
  assert.equal(coreOf({ online: true, core: '<img src=x onerror=alert(1)>' }), null);
  assert.equal(coreOf({ online: true, core: id.toUpperCase() }), null);
  assert.equal(coreOf(null), null);
});
