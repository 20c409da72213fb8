import { HEADER, skipName } from './wire.js'

const TYPE_CNAME = 5

/**
 * The label at `at` of a name in `reply`, then each label after it written out in full, put back in
 * the client's letter case where it is byte for byte the label at the same place in the question as
 * it was sent (`sent`, in its 0x20 case), i.e. a copy the server made of the question. Stops at the
 * first pointer (the labels it points to are visited where they are written) or at the question's end.
 */
function restoreLabels(reply: Buffer, at: number, sent: Buffer, client: Buffer): void {
  let p = at
  let q = HEADER
  for (;;) {
    const len = reply[p]
    const qlen = sent[q]!
    if (len === undefined || len === 0 || (len & 0xc0) !== 0 || qlen === 0 || p + 1 + len > reply.length) return
    if (len === qlen) {
      let same = true
      for (let i = 1; i <= len; i++) if (reply[p + i] !== sent[q + i]) { same = false; break }
      if (same) client.copy(reply, p + 1, q + 1, q + 1 + len)
    }
    p += len + 1
    q += qlen + 1
  }
}

/**
 * Put the client's letter case back into the names of `reply` that the server copied from the
 * question sent with 0x20 (`sent`: the query as it went upstream; `client`: as the client asked, the
 * same name but for letter case). The question itself is written over by the caller, and names that
 * point into it follow; but a server writes out in full what it synthesizes from the question: the
 * CNAME a DNAME makes (RFC 6672 §2.2: `AbCd.dn.test CNAME AbCd.target.test`, its first labels the
 * question's own), and the owner names of a server that does not compress. Left so, the client (and,
 * through the cache, every later client) got the random case of another query: harmless to a
 * resolver, which compares names without case, but 0x20's secret bits and a name the client did not
 * write. Owner names of every record and CNAME targets are visited; a label is rewritten only where
 * it is exactly the question's label at the same place, case and all. A malformed reply is left as
 * it is (the scan after this refuses it).
 */
export function restoreCase(reply: Buffer, sent: Buffer, client: Buffer): void {
  if (reply.length < HEADER) return
  let pos = HEADER
  for (let i = reply.readUInt16BE(4); i > 0; i--) {
    pos = skipName(reply, pos)
    if (pos < 0) return
    pos += 4
  }
  for (let i = reply.readUInt16BE(6) + reply.readUInt16BE(8) + reply.readUInt16BE(10); i > 0; i--) {
    const p = skipName(reply, pos)
    if (p < 0 || p + 10 > reply.length) return
    const end = p + 10 + reply.readUInt16BE(p + 8)
    if (end > reply.length) return
    restoreLabels(reply, pos, sent, client)
    if (reply.readUInt16BE(p) === TYPE_CNAME) restoreLabels(reply, p + 10, sent, client)
    pos = end
  }
}
