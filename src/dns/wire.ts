/**
 * A small DNS wire reader for the hot path: the header, the one question, the query's OPT record,
 * and names (with compression). Nothing here throws on hostile input: bad input gives -1/undefined.
 */

export const HEADER = 12
export const MAX_NAME_OCTETS = 255
const MAX_JUMPS = 64

export const QR = 0x8000
export const AA = 0x0400
export const TC = 0x0200
export const RD = 0x0100
export const RA = 0x0080
export const AD = 0x0020
export const CD = 0x0010
export const TYPE_OPT = 41

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const

/** The rcodes that say a server could not answer (FORMERR, SERVFAIL, NOTIMP, REFUSED), not what the name holds. */
export function isErrorRcode(rcode: number): boolean {
  return rcode === 1 || rcode === 2 || rcode === 4 || rcode === 5
}

/** A parsed query: what the pipeline needs, read once. */
export interface Query {
  readonly id: number
  readonly flags: number
  /** Lowercase, no trailing dot; '' for the root. Bytes outside ASCII come through as latin1 characters. */
  readonly name: string
  readonly qtype: number
  readonly qclass: number
  /** Offset just past the question section (the question is bytes 12..qEnd). */
  readonly qEnd: number
  /** EDNS: present when the query had an OPT record. */
  readonly edns: boolean
  readonly udpSize: number
  readonly dnssecOk: boolean
  /** The EDNS version asked for (0 without EDNS); only 0 is spoken (RFC 6891 §6.1.3: BADVERS). */
  readonly ednsVersion: number
  /** The OPT record's RDATA: where it starts and ends (both -1 without one). */
  readonly optRdata: number
  readonly optEnd: number
}

/** Why a query could not be parsed: drop it silently, or answer FORMERR / NOTIMP. */
export type QueryError = 'drop' | 'formerr' | 'notimp'

/** Result of reading a name: its text and the offset just past it where it starts. */
export interface NameRead { readonly name: string; readonly end: number }

/** Where readName assembles a name's text: 253 characters fit in 255 octets, four times that with every one `\DDD`. */
const TEXT = Buffer.allocUnsafe(4 * MAX_NAME_OCTETS)

/**
 * How readName writes each octet of a label, as dig writes it (BIND's presentation form, RFC 1035
 * §5.1): 0 as it is, 1 after a backslash (`.`, `\`, `"`, `(`, `)`, `;`, `@`, `$`), 2 as `\DDD`
 * (a space, a control, and every octet over 0x7e, none of which a host name holds).
 */
const ESCAPE = new Uint8Array(256)
for (let c = 0; c < 256; c++) ESCAPE[c] = c <= 0x20 || c >= 0x7f ? 2 : 0
for (const c of '."\\();@$') ESCAPE[c.charCodeAt(0)] = 1

/**
 * Read a (possibly compressed) name at `off`. Pointers must point strictly backwards (which rules
 * out loops), at most 64 jumps, at most 255 octets in all. `lower` folds A-Z to a-z (DNS names
 * are case-insensitive in ASCII only, RFC 4343). The text is assembled byte by byte and becomes
 * one string in one call (a string per label cost more than the rest of reading the query).
 * An octet no host name holds is written escaped, as dig writes it (ESCAPE): `x\.www.example` is
 * two labels under `example` (flattened, it read as a name under `www.example`, which it is not, and
 * an allow entry for that name let it through); `a\032b`, `\010`, `\226\128\174` for a space, a line
 * feed and UTF-8 (ECS dns.question.name: no raw control reaches a log line, a CSV or a terminal).
 * Such a name is decided as a name under its longest suffix that is a host name (policy).
 */
export function readName(buf: Buffer, off: number, lower = true): NameRead | undefined {
  let pos = off
  let end = -1
  let octets = 0
  let jumps = 0
  let n = 0
  let limit = off                        // a pointer must land before where the current run of labels began
  for (;;) {
    if (pos >= buf.length) return undefined
    const len = buf[pos]!
    if (len === 0) {
      if (end < 0) end = pos + 1
      break
    }
    const kind = len & 0xc0
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) return undefined
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!
      if (end < 0) end = pos + 2
      if (target >= limit || target < HEADER || ++jumps > MAX_JUMPS) return undefined
      limit = target
      pos = target
      continue
    }
    if (kind !== 0) return undefined     // 0x40 / 0x80 label types are not in use
    octets += len + 1
    if (octets > MAX_NAME_OCTETS - 1 || pos + 1 + len > buf.length) return undefined
    if (n > 0) TEXT[n++] = 46
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = buf[i]!
      const e = ESCAPE[c]!
      if (e === 0) {
        TEXT[n++] = lower && c >= 65 && c <= 90 ? c | 0x20 : c
        continue
      }
      TEXT[n++] = 92
      if (e === 1) TEXT[n++] = c
      else {
        TEXT[n++] = 48 + ((c / 100) | 0)
        TEXT[n++] = 48 + (((c / 10) | 0) % 10)
        TEXT[n++] = 48 + (c % 10)
      }
    }
    pos += len + 1
  }
  return { name: TEXT.toString('latin1', 0, n), end }
}

/** Offset just past a name at `off` without decoding it, or -1. */
export function skipName(buf: Buffer, off: number): number {
  let pos = off
  let octets = 0
  for (;;) {
    if (pos >= buf.length) return -1
    const len = buf[pos]!
    if (len === 0) return pos + 1
    if ((len & 0xc0) === 0xc0) return pos + 2 <= buf.length ? pos + 2 : -1
    if ((len & 0xc0) !== 0) return -1
    octets += len + 1
    if (octets > MAX_NAME_OCTETS - 1) return -1
    pos += len + 1
  }
}

/** Offset just past one resource record at `off` (10 fixed octets + rdata), or -1. */
export function skipRecord(buf: Buffer, off: number): number {
  const p = skipName(buf, off)
  if (p < 0 || p + 10 > buf.length) return -1
  const end = p + 10 + buf.readUInt16BE(p + 8)
  return end <= buf.length ? end : -1
}

/**
 * Parse a query: the header, exactly one question, no answer or authority record, and at most
 * one additional record (its OPT, if any). A query with TC set (a query is never truncated),
 * ANCOUNT or NSCOUNT not 0 (but the one SOA of an IXFR, which is parsed so that the handler
 * refuses it as the zone transfer it is, and logs it), or ARCOUNT over 1, is FORMERR, as unbound's worker_check_request has it: it asks nothing a resolver answers,
 * and its records would go upstream with it. This takes OPT+TSIG (or SIG(0)) too: tunnelguard
 * holds no key to check or sign with, and an answer to a signed query must not be cached and
 * served unsigned to others. The counts are read from the header alone, before anything else of
 * the query; then the one additional record allowed must be the OPT: a TSIG or SIG(0) alone (a
 * query signed without EDNS, `dig +noedns -y …`), or any other record, is FORMERR too.
 */
export function parseQuery(buf: Buffer): Query | QueryError {
  if (buf.length < HEADER) return 'drop'
  const flags = buf.readUInt16BE(2)
  if ((flags & QR) !== 0) return 'drop'                          // a response sent to us
  if (((flags >> 11) & 0xf) !== 0) return 'notimp'               // only QUERY
  if ((flags & TC) !== 0 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(10) > 1) return 'formerr'
  const ns = buf.readUInt16BE(8)
  // an IXFR carries the SOA of the version it has (RFC 1995 §3): read, to be refused and logged as a zone transfer asked
  const q = ns === 0 || ns === 1 ? readQuestion(buf, flags) : 'formerr'
  if (typeof q === 'string') return q
  if (ns === 1 && q.qtype !== TYPE_IXFR) return 'formerr'
  return q.edns || buf.readUInt16BE(10) === 0 ? q : 'formerr'
}

/** AXFR and IXFR: zone transfers, which a forwarder does not relay (one message of many would reach the client). */
export const TYPE_AXFR = 252
/** IXFR is also the one query that carries a record (the SOA it has, in the authority section). */
export const TYPE_IXFR = 251

/**
 * The question and records of a message of at least a header's length, the header's counts
 * unchecked (the NOTIMP answer to another opcode echoes what it can read, whatever its sections
 * hold: an UPDATE's are full).
 */
export function readQuestion(buf: Buffer, flags: number): Query | QueryError {
  if (buf.readUInt16BE(4) !== 1) return 'formerr'
  const q = readName(buf, HEADER)
  if (!q || q.end + 4 > buf.length) return 'formerr'
  const qtype = buf.readUInt16BE(q.end)
  const qclass = buf.readUInt16BE(q.end + 2)
  const qEnd = q.end + 4
  let edns = false
  let udpSize = 512
  let dnssecOk = false
  let ednsVersion = 0
  let optRdata = -1
  let optEnd = -1
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8)
  const additional = buf.readUInt16BE(10)
  let pos = qEnd
  for (let i = 0; i < records + additional; i++) {
    const p = skipName(buf, pos)
    const end = skipRecord(buf, pos)
    if (end < 0) return 'formerr'
    if (i >= records && buf.readUInt16BE(p) === TYPE_OPT) {
      if (edns || buf[pos] !== 0) return 'formerr'               // one OPT, owned by the root
      edns = true
      udpSize = Math.max(512, buf.readUInt16BE(p + 2))
      dnssecOk = (buf.readUInt16BE(p + 6) & 0x8000) !== 0
      ednsVersion = buf[p + 5]!
      optRdata = p + 10
      optEnd = end
      // options that do not fill the RDATA exactly (RFC 6891 §7: FORMERR)
      let o = optRdata
      while (o + 4 <= optEnd) o += 4 + buf.readUInt16BE(o + 2)
      if (o !== optEnd) return 'formerr'
    }
    pos = end
  }
  return { id: buf.readUInt16BE(0), flags, name: q.name, qtype, qclass, qEnd, edns, udpSize, dnssecOk, ednsVersion, optRdata, optEnd }
}

/** The reply's question is the query's, byte for byte. */
export const Q_SAME = 1
/** The reply's question is the query's but for the letter case of the name (A-Z / a-z). */
export const Q_CASE = 2
/** Another question, or none. */
export const Q_OTHER = 0

/**
 * How the reply's question compares with the query's (bytes 12..qEnd): the name may differ in
 * ASCII letter case only (Q_CASE; names are case-insensitive, RFC 4343); type and class must be
 * the same octets (folding them would take type 0x0061 for HTTPS, 0x0041).
 */
export function matchQuestion(query: Buffer, qEnd: number, reply: Buffer): number {
  if (reply.length < qEnd || reply.readUInt16BE(4) !== 1) return Q_OTHER
  const nameEnd = qEnd - 4
  let m = Q_SAME
  for (let i = HEADER; i < nameEnd; i++) {
    let a = query[i]!
    let b = reply[i]!
    if (a !== b) {
      if (a >= 65 && a <= 90) a += 32
      if (b >= 65 && b <= 90) b += 32
      if (a !== b) return Q_OTHER
      m = Q_CASE
    }
  }
  for (let i = nameEnd; i < qEnd; i++) if (query[i] !== reply[i]) return Q_OTHER
  return m
}

/** Does the reply carry the same question as the query (the name compared without case, type and class exactly)? */
export function sameQuestion(query: Buffer, qEnd: number, reply: Buffer): boolean {
  return matchQuestion(query, qEnd, reply) !== Q_OTHER
}
