// What the DNS probes of bench/reload.mjs and bench/admin-clients.mjs share.

export const sleep = ms => new Promise(r => setTimeout(r, ms))

/** The p-th percentile of `xs` (NaN when empty). */
export const pct = (xs, p) => { if (xs.length === 0) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] }

/** A DNS query for `name` (A, IN, RD) with the given ID. */
export function query(id, name) {
  const labels = name.split('.').map(l => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]))
  const head = Buffer.alloc(12)
  head.writeUInt16BE(id, 0); head.writeUInt16BE(0x0100, 2); head.writeUInt16BE(1, 4)
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])])
}
