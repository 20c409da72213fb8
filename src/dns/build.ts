import { parseAddr } from '../policy/cidr.js'
import { HEADER, QR, RA, RD, CD, RCODE, TC, TYPE_OPT, readName, readQuestion, skipName, skipRecord, type Query } from './wire.js'

const NAME_PTR = 0xc00c                   // the question name, always at offset 12
const UDP_SIZE = 1232
const EDE = 15                            // EDNS option code: Extended DNS Error (RFC 8914)
export const EDE_BLOCKED = 15

/** A name in wire form: each label after its length, then the root's zero (uncompressed, as written). */
export function wireName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean)
  const out: number[] = []
  for (const p of parts) out.push(p.length, ...Buffer.from(p, 'ascii'))
  out.push(0)
  return Buffer.from(out)
}

/** The SOA rdata of every synthetic negative answer (a name under .invalid, serial 1). */
const SOA_NAMES = Buffer.concat([wireName('tunnelguard.invalid'), wireName('hostmaster.tunnelguard.invalid')])

/** Address text → wire bytes (4 or 16); IPv4 written as IPv4-mapped when 16 are wanted. */
export function addressBytes(ip: string, size: 4 | 16): Buffer {
  const a = parseAddr(ip)
  if (!a) throw new TypeError(`not an address: ${ip}`)
  const out = Buffer.alloc(size)
  if (size === 4) {
    if (a.family !== 4) throw new TypeError(`not an IPv4 address: ${ip}`)
    out.writeUInt32BE(a.words[0]!, 0)
  } else if (a.family === 4) {
    out.writeUInt16BE(0xffff, 10)
    out.writeUInt32BE(a.words[0]!, 12)
  } else {
    for (let i = 0; i < 4; i++) out.writeUInt32BE(a.words[i]!, i * 4)
  }
  return out
}

/** One answer record owned by the question name: type, TTL (s), rdata. */
export function record(type: number, ttl: number, rdata: Buffer): Buffer {
  const b = Buffer.allocUnsafe(12 + rdata.length)
  b.writeUInt16BE(NAME_PTR, 0)
  b.writeUInt16BE(type, 2)
  b.writeUInt16BE(1, 4)
  b.writeUInt32BE(ttl, 6)
  b.writeUInt16BE(rdata.length, 10)
  rdata.copy(b, 12)
  return b
}

/** The SOA record of synthetic negative answers (owned by the question name unless buildReply is given its zone; MINIMUM = TTL). */
export function soaRecord(ttl: number): Buffer {
  const rdata = Buffer.alloc(SOA_NAMES.length + 20)
  SOA_NAMES.copy(rdata, 0)
  const p = SOA_NAMES.length
  rdata.writeUInt32BE(1, p)               // serial
  rdata.writeUInt32BE(3600, p + 4)        // refresh
  rdata.writeUInt32BE(600, p + 8)         // retry
  rdata.writeUInt32BE(86_400, p + 12)     // expire
  rdata.writeUInt32BE(ttl, p + 16)        // minimum: the negative-caching TTL
  return record(6, ttl, rdata)
}

/** Write the OPT record at `p` (with EDE 15 and the `ede` text when given); its length is 11, plus 6 and the text's. */
function writeOpt(b: Buffer, p: number, dnssecOk: boolean, ede: Buffer | undefined, extendedRcode = 0): void {
  const optLen = ede === undefined ? 0 : 6 + ede.length
  b[p] = 0                                 // owner: the root
  b.writeUInt16BE(41, p + 1)
  b.writeUInt16BE(UDP_SIZE, p + 3)
  b.writeUInt32BE((extendedRcode << 24) | (dnssecOk ? 0x8000 : 0), p + 5)   // extended rcode, version 0, DO
  b.writeUInt16BE(optLen, p + 9)
  if (ede !== undefined) {
    b.writeUInt16BE(EDE, p + 11)
    b.writeUInt16BE(2 + ede.length, p + 13)
    b.writeUInt16BE(EDE_BLOCKED, p + 15)
    b.set(ede, p + 17)
  }
}

export interface ReplyParts {
  readonly answer?: Buffer
  /** One record for the authority section (the SOA of negative answers, from `soaRecord`). */
  readonly authority?: Buffer
  /** Where in the question its owner starts (zoneOffset: the listed zone's apex); the whole question name without it. */
  readonly authorityOwner?: number
  /** Extended DNS Error 15 "Blocked" text as UTF-8 bytes (`actionReply` encodes it once per entry); sent only when the query had EDNS. */
  readonly ede?: Buffer
  /** The OPT record's extended rcode (the rcode's bits above the header's 4; BADVERS: 1). */
  readonly extendedRcode?: number
}

/** A synthetic reply to a parsed query: its header and question, then the parts given. */
export function buildReply(query: Buffer, q: Query, rcode: number, parts: ReplyParts = {}): Buffer {
  const answer = parts.answer
  const soa = parts.authority
  // the OPT record is written in place: no buffer of its own
  const ede = parts.ede
  const optSize = q.edns ? 11 + (ede === undefined ? 0 : 6 + ede.length) : 0
  const size = q.qEnd + (answer?.length ?? 0) + (soa?.length ?? 0) + optSize
  const b = Buffer.allocUnsafe(size)
  for (let i = 0; i < q.qEnd; i++) b[i] = query[i]!   // header and question (Buffer#copy of a part makes a view per call)
  b.writeUInt16BE(QR | (q.flags & (RD | CD)) | RA | rcode, 2)
  b.writeUInt16BE(answer ? 1 : 0, 6)
  b.writeUInt16BE(soa ? 1 : 0, 8)
  b.writeUInt16BE(q.edns ? 1 : 0, 10)
  let p = q.qEnd
  if (answer) p += answer.copy(b, p)
  if (soa) {
    soa.copy(b, p)
    if (parts.authorityOwner !== undefined) b.writeUInt16BE(0xc000 | parts.authorityOwner, p)
    p += soa.length
  }
  if (q.edns) writeOpt(b, p, q.dnssecOk, ede, parts.extendedRcode)
  return b
}

/**
 * Where the zone `apex` (a normalized name: lowercase, no trailing dot) starts in the question
 * name of a parsed query (at HEADER: plain labels, no pointer), when the question name ends with
 * it; else the question name's own start. A synthetic negative answer's SOA is owned there
 * (RFC 2308 §3: the zone's SOA), as unbound's local zones answer: an NXDOMAIN whose SOA is at the
 * very name it says does not exist contradicts itself.
 */
export function zoneOffset(query: Buffer, apex: string): number {
  const starts: number[] = []
  for (let p = HEADER; query[p] !== 0; p += query[p]! + 1) {
    /* c8 ignore next - parseQuery takes no pointer in a question (readName would follow one; the handler sees none) */
    if (query[p]! > 63) return HEADER
    starts.push(p)
  }
  let labels = 1
  for (let i = 0; i < apex.length; i++) if (apex.charCodeAt(i) === 46) labels++
  if (labels > starts.length) return HEADER
  const at = starts[starts.length - labels]!
  let i = 0
  for (let p = at; query[p] !== 0; p += query[p]! + 1) {
    if (p !== at && apex.charCodeAt(i++) !== 46) return HEADER
    for (let j = 1; j <= query[p]!; j++) {
      const c = query[p + j]!
      if ((c >= 65 && c <= 90 ? c | 0x20 : c) !== apex.charCodeAt(i++)) return HEADER
    }
  }
  return i === apex.length ? at : HEADER
}

/** The opcode's bits in the header's third octet. */
const OPCODE_BITS = 0x78

/**
 * The answer to a query of an opcode other than QUERY (NOTIFY, UPDATE, 15): NOTIMP with the
 * query's opcode and question, and an OPT record when it had one (RFC 6891 §7). A header alone
 * reads as a server that does not speak EDNS: ISC's EDNS compliance test (`opcode`) fails it, and
 * a client could stop sending EDNS. Header only when the rest of the query does not read.
 */
export function notImpReply(query: Buffer): Buffer {
  const q = readQuestion(query, query.readUInt16BE(2))
  if (typeof q === 'string') return headerReply(query, RCODE.NOTIMP)
  const b = buildReply(query, q, RCODE.NOTIMP)
  b[2] = b[2]! | (query[2]! & OPCODE_BITS)
  return b
}

/** A header-only error reply (FORMERR, NOTIMP) to a query whose question could not be used. */
export function headerReply(query: Buffer, rcode: number): Buffer {
  const b = Buffer.alloc(HEADER)
  b.writeUInt16BE(query.readUInt16BE(0), 0)
  b.writeUInt16BE(QR | (query.readUInt16BE(2) & (0x7800 | RD)) | RA | rcode, 2)
  return b
}

/**
 * When every section of the query reads and its additional section holds exactly one OPT record
 * of EDNS version 0, owned by the root, whose options fill its RDATA (an OPT that is not what was
 * wrong with the query: a TC bit, no question, a record where none belongs): whether it sets DO.
 * Undefined otherwise.
 */
function wellFormedOpt(query: Buffer): { dnssecOk: boolean } | undefined {
  let pos = HEADER
  for (let i = query.readUInt16BE(4); i > 0; i--) {
    pos = skipName(query, pos)
    if (pos < 0 || pos + 4 > query.length) return undefined
    pos += 4
  }
  const records = query.readUInt16BE(6) + query.readUInt16BE(8)
  let opt: { dnssecOk: boolean } | undefined
  for (let i = 0, n = records + query.readUInt16BE(10); i < n; i++) {
    const p = skipName(query, pos)
    const end = skipRecord(query, pos)
    if (end < 0) return undefined
    if (query.readUInt16BE(p) === TYPE_OPT) {
      if (opt !== undefined || i < records || query[pos] !== 0 || query[p + 5] !== 0) return undefined
      let o = p + 10
      while (o + 4 <= end) o += 4 + query.readUInt16BE(o + 2)
      if (o !== end) return undefined
      opt = { dnssecOk: (query[p + 6]! & 0x80) !== 0 }
    }
    pos = end
  }
  return opt
}

/**
 * FORMERR to a query parseQuery refused (at least a header long): its header and its one
 * question when that reads (a name, type and class), so that the client can match the answer
 * to what it asked, as unbound answers with the query echoed; else the header alone. An OPT
 * record of our own (no options, the query's DO) when the query had a well-formed one (RFC 6891 §6.1.1: a
 * response to a request with an OPT has one; a FORMERR without it reads as a server that does
 * not speak EDNS, and an empty query with an OPT is how RFC 7873 §5.4 asks for a cookie); none
 * when its OPT may be what was wrong.
 */
export function formErrReply(query: Buffer): Buffer {
  const name = query.readUInt16BE(4) === 1 ? readName(query, HEADER) : undefined
  const qEnd = name === undefined || name.end + 4 > query.length ? HEADER : name.end + 4
  const opt = wellFormedOpt(query)
  const b = Buffer.alloc(qEnd + (opt !== undefined ? OPT_FIXED : 0))
  query.copy(b, 0, 0, qEnd)
  b.writeUInt16BE(QR | (query.readUInt16BE(2) & (0x7800 | RD | (qEnd > HEADER ? CD : 0))) | RA | RCODE.FORMERR, 2)
  b.writeUInt16BE(qEnd > HEADER ? 1 : 0, 4)
  b.writeUInt16BE(0, 6)
  b.writeUInt16BE(0, 8)
  b.writeUInt16BE(opt !== undefined ? 1 : 0, 10)
  // DO copied from the query (RFC 3225 §3)
  if (opt !== undefined) writeOpt(b, qEnd, opt.dnssecOk, undefined)
  return b
}

/**
 * The answer to a query for an EDNS version other than 0: BADVERS (16: extended rcode 1 in the
 * OPT record, 0 in the header), with the question and an OPT record of version 0 (RFC 6891 §6.1.3).
 */
export function badversReply(query: Buffer, q: Query): Buffer {
  return buildReply(query, q, 0, { extendedRcode: 1 })
}

/** An OPT record's octets before its RDATA: the root name, type, class (UDP size), TTL (extended rcode, version, DO), RDLENGTH. */
const OPT_FIXED = 11

/**
 * A reply that does not fit the client's UDP size, made to fit. Without its additional section
 * (but its OPT record) when that fits: the additional records are extra, and leaving them out
 * sets no TC (RFC 2181 §9). Else cut to its header and question with TC set ("ask over TCP").
 * The OPT record stays in both (RFC 6891 §7: a reply to an EDNS query has one; it also carries
 * the extended rcode and DO); cut to the question, it keeps its options only when they fit too
 * (an upstream's padding, a long EDE text: the client asks again over TCP and gets them there),
 * so that no datagram is ever over the limit.
 */
export function fitUdp(reply: Buffer, qEnd: number, limit: number): Buffer {
  const records = reply.readUInt16BE(6) + reply.readUInt16BE(8)
  let end = qEnd
  for (let i = 0; i < records && end >= 0; i++) end = skipRecord(reply, end)
  let opt = -1
  let optEnd = -1
  for (let i = 0, r = end, n = reply.readUInt16BE(10); i < n && r >= 0; i++) {
    const next = skipRecord(reply, r)
    if (next >= 0 && reply[r] === 0 && reply.readUInt16BE(r + 1) === TYPE_OPT) { opt = r; optEnd = next; break }
    r = next
  }
  let optLen = opt < 0 ? 0 : optEnd - opt
  const keep = end >= 0 && end + optLen <= limit ? end : qEnd
  if (keep === qEnd && qEnd + optLen > limit) optLen = OPT_FIXED     // the OPT without its options
  const b = Buffer.allocUnsafe(keep + optLen)
  reply.copy(b, 0, 0, keep)
  if (opt >= 0) {
    reply.copy(b, keep, opt, opt + optLen)
    b.writeUInt16BE(optLen - OPT_FIXED, keep + OPT_FIXED - 2)         // its RDLENGTH (unchanged when whole)
  }
  if (keep === qEnd) {
    b.writeUInt16BE(b.readUInt16BE(2) | TC, 2)
    b.writeUInt16BE(0, 6)
    b.writeUInt16BE(0, 8)
  }
  b.writeUInt16BE(opt < 0 ? 0 : 1, 10)
  return b
}
