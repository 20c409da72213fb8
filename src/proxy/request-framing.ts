import { FIELD } from './connect-head.js'
import { RequestHeadParser, type RequestHead } from './request-head.js'

type Head = Extract<RequestHead, { kind: 'head' }>

/** What the next bytes of a plain-HTTP tunnel's client side are. */
export type Step =
  /** `n` bytes of body or chunk framing: they go on as they are. */
  | { readonly kind: 'forward'; readonly n: number }
  /** A complete request head (`head.length` bytes): decided before any of it goes on. */
  | { readonly kind: 'head'; readonly head: Head }
  /** After an Upgrade or CONNECT request, bytes that are no HTTP request: another protocol, if the server switched. */
  | { readonly kind: 'opaque' }
  /** Bytes that cannot be framed one way only: the tunnel is closed (fail closed). */
  | { readonly kind: 'invalid'; readonly reason: string }

/** Where the framing is. */
const HEAD = 0
const BODY = 1
const CHUNK_SIZE = 2
const CHUNK_DATA = 3
const CHUNK_END = 4
const TRAILER = 5
const OPAQUE = 6

/** The largest trailer section of a response body followed by `RequestFraming.body`. */
const MAX_TRAILER_SECTION = 65_536
/** The longest chunk-size line (size, extensions, CRLF). */
const MAX_CHUNK_LINE = 1024
/** A chunk size: hex digits (13 at most: below 2^53), then extensions without control bytes. */
const CHUNK_LINE = /^([0-9A-Fa-f]{1,13})(?:;[\t\x20-\x7e\x80-\xff]*)?$/
const CR = 0x0d
const LF = 0x0a

/**
 * The requests a client sends one after another on a kept-alive plain-HTTP tunnel, framed as
 * RFC 9112 frames them (Content-Length, chunked with its trailer section), so that every request
 * head is found and decided, not only the first. It is stricter than the servers behind it:
 * whatever is not the plain form (a bare LF in chunk framing, whitespace after a chunk size, a
 * size too large, no CRLF after a chunk's data) is `invalid`, as is anything after a request that
 * is no request head, so that no server can read a request where this reads a body. After a
 * CONNECT or an Upgrade request, bytes that are no request may be another protocol (WebSocket
 * frames, TLS to a proxy behind): `opaque`, and followRequests asks the server's answers whether
 * it switched.
 *
 * `next` is given the bytes not yet consumed, from the start of the current step, and says what
 * the first of them are, or undefined while more are needed; the caller then consumes `n`
 * (forward) or `head.length` (head) bytes and asks again.
 */
export class RequestFraming {
  private state = HEAD
  private left = 0
  /** After an upgrade: bytes that are no request are another protocol, not an error. */
  private upgraded = false
  private parser: RequestHeadParser
  private trailerBytes = 0

  constructor(private readonly maxHeaderBytes: number, first: Head) {
    this.parser = new RequestHeadParser(maxHeaderBytes)
    this.after(first)
  }

  /** The framing of one message body alone (a response's): `atHead` once it is over. */
  static body(body: number | 'chunked'): RequestFraming {
    return new RequestFraming(MAX_TRAILER_SECTION, { kind: 'head', method: '', target: '', length: 0, body, upgrade: false })
  }

  /** Whether the next bytes are to be a request head (not body or chunk framing). */
  get atHead(): boolean {
    return this.state === HEAD
  }

  next(buf: Buffer): Step | undefined {
    switch (this.state) {
      case HEAD: return this.nextHead(buf)
      case BODY: case CHUNK_DATA: {
        if (buf.length === 0) return undefined
        const n = Math.min(this.left, buf.length)
        this.left -= n
        if (this.left === 0) this.state = this.state === BODY ? HEAD : CHUNK_END
        return { kind: 'forward', n }
      }
      case CHUNK_END:
        if (buf.length < 2) return buf.length === 1 && buf[0] !== CR ? invalid('no CRLF after a chunk') : undefined
        if (buf[0] !== CR || buf[1] !== LF) return invalid('no CRLF after a chunk')
        this.state = CHUNK_SIZE
        return { kind: 'forward', n: 2 }
      case CHUNK_SIZE: case TRAILER: return this.nextLine(buf)
      default: return { kind: 'opaque' }
    }
  }

  private nextHead(buf: Buffer): Step | undefined {
    const r = this.parser.parse(buf)
    if (r === undefined) return undefined
    this.parser = new RequestHeadParser(this.maxHeaderBytes)
    if (r.kind === 'head') {
      this.after(r)
      return { kind: 'head', head: r }
    }
    if (r.kind === 'invalid') return r
    if (!this.upgraded) return invalid('bytes after a request that are no HTTP request')
    this.state = OPAQUE
    return { kind: 'opaque' }
  }

  /** A chunk-size line, or a trailer line: whole lines ended by CRLF. */
  private nextLine(buf: Buffer): Step | undefined {
    const limit = this.state === CHUNK_SIZE ? MAX_CHUNK_LINE : this.maxHeaderBytes - this.trailerBytes
    const lf = buf.indexOf(LF)
    if (lf < 0 || lf >= limit) {
      if (buf.length < limit) return undefined
      return invalid(this.state === CHUNK_SIZE ? `a chunk-size line over ${MAX_CHUNK_LINE} bytes` : `a trailer section over ${this.maxHeaderBytes} bytes`)
    }
    if (lf === 0 || buf[lf - 1] !== CR) return invalid('a line in chunked framing not ended by CRLF')
    const text = buf.toString('latin1', 0, lf - 1)
    if (this.state === CHUNK_SIZE) {
      const m = CHUNK_LINE.exec(text)
      if (!m) return invalid('a chunk-size line that is not "hex-size[;extensions]"')
      this.left = parseInt(m[1]!, 16)
      this.state = this.left === 0 ? TRAILER : CHUNK_DATA
      this.trailerBytes = 0
    } else if (text === '') {
      this.state = HEAD
    } else {
      if (!FIELD.test(text)) return invalid('a trailer line that is not "name: value"')
      this.trailerBytes += lf + 1
    }
    return { kind: 'forward', n: lf + 1 }
  }

  /** The framing that follows a request head. */
  private after(head: Head): void {
    this.upgraded = head.upgrade
    if (head.body === 'chunked') this.state = CHUNK_SIZE
    else if (head.body > 0) {
      this.state = BODY
      this.left = head.body
    } else this.state = HEAD
  }
}

function invalid(reason: string): Step {
  return { kind: 'invalid', reason }
}
