// Parses asciicast v2 (a JSON header line, then `[seconds, "o"|"i", data]` lines) with caps,
// since transcripts are recorded from attacker sessions.

const MAX_EVENTS = 200000;

export function parseAsciicast(text) {
  const lines = text.split('\n');
  let header;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    throw new Error('This capture is not an asciicast v2 transcript (its first line is not JSON).');
  }
  if (!header || header.version !== 2) throw new Error('Only asciicast version 2 transcripts can be replayed.');
  const frames = [];
  for (let i = 1; i < lines.length && frames.length < MAX_EVENTS; i++) {
    const l = lines[i].trim();
    if (!l) continue;
    try {
      const [t, kind, data] = JSON.parse(l);
      if (typeof t === 'number' && typeof data === 'string' && (kind === 'o' || kind === 'i')) {
        frames.push({ t, kind, data });
      }
    } catch {
      // A torn last line (session cut off) is skipped, not fatal.
    }
  }
  return {
    width: Math.min(Math.max(Number(header.width) || 80, 20), 300),
    height: Math.min(Math.max(Number(header.height) || 24, 5), 100),
    frames,
    duration: frames.length ? frames[frames.length - 1].t : 0,
    title: header.title,
    timestamp: header.timestamp,
  };
}
