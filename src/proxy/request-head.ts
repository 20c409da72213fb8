import { TCHARS, TCHAR_CLASS } from '../http-token.js'
import { FIELD } from './connect-head.js'

/** What the first bytes in a CONNECT tunnel are, when they are not TLS. */
export type RequestHead =
  /** No HTTP/1.x request line: another protocol. */
  | { readonly kind: 'not-http' }
  /** An HTTP/1.x request that cannot be read safely (see RequestHeadParser): fail closed. */
  | { readonly kind: 'invalid'; readonly reason: string }
  /**
   * A complete request head. `host`: the Host field's value (without the whitespace around it;
   * undefined without one); `method` and `target` as sent; `length`: the bytes of the head.
   * `body`: what follows the head before the next request: its Content-Length (0 without one) or
   * chunked. `upgrade`: a CONNECT or a request with an Upgrade field, after which the connection
   * may carry another protocol.
   */
  | {
    readonly kind: 'head'; readonly method: string; readonly target: string; readonly host?: string; readonly length: number
    readonly body: number | 'chunked'; readonly upgrade: boolean
  }

const NOT_HTTP: RequestHead = { kind: 'not-http' }
const invalid = (reason: string): RequestHead => ({ kind: 'invalid', reason })

/** tchar (RFC 9110 5.6.2): the bytes of a method. */
const TCHAR = new Uint8Array(256)
for (const c of TCHARS) TCHAR[c.charCodeAt(0)] = 1
const HTTP_1 = Buffer.from('HTTP/1.')
const SP = 0x20
const CR = 0x0d
const LF = 0x0a

/** Where the parser is: in the method, the target, the version, or the field lines. */
const METHOD = 0
const TARGET = 1
const VERSION = 2
const FIELDS = 3
/** A first line that is no strict request line: read to its end, then told HTTP-like or not (see looksHttp). */
const LINE = 4

/** A token, whitespace, and a target: the start of any request line a lenient server reads. */
const REQUEST_LIKE = new RegExp(`^${TCHAR_CLASS}+[ \\t\\v\\f]+(\\S+)`)

/**
 * Whether a first line that is not a strict `METHOD SP target SP HTTP/1.d` is still one some
 * server reads as a request (nginx and Node take runs of spaces, nginx a trailing space or
 * HTTP/1.10, squid tabs and HTTP/0.9 lines, HTTP/1.1 in lower case): a token, whitespace, then an
 * origin-form or asterisk target, an absolute one of a scheme proxies fetch (http, https, ws, wss,
 * ftp), an inner CONNECT, or `HTTP/` anywhere. Such a line is
 * refused (fail closed), not let through as another protocol.
 */
export function looksHttp(line: string): boolean {
  const m = REQUEST_LIKE.exec(line)
  if (!m) return false
  const target = m[1]!
  return /^[/*]/.test(target) || /^(https?|wss?|ftp):\/\//i.test(target) || /^connect[ \t\v\f]/i.test(line) || /http\//i.test(line)
}

/**
 * An HTTP/1.x request head read as a lenient origin server reads it (Go's net/http, which tunnel
 * edges run): `METHOD SP target SP HTTP/1.d`, lines ended by CRLF or a bare LF, empty lines
 * before the request line passed over, any token as the method, any visible bytes in the target.
 * What is no such request line (a control byte or a space out of place, another version) is
 * `not-http` as soon as it shows. What would be HTTP but cannot be read safely is `invalid`: a
 * head not complete within `maxBytes`, a field line that is not `name: value` (obs-fold, a space
 * before the colon), two Host fields, and HTTP/2 with prior knowledge (`PRI * HTTP/2.0`, whose
 * authority is in compressed frames). So is body framing that two servers could read two ways
 * (request smuggling): two Content-Length fields, one that is not digits, a Transfer-Encoding
 * other than `chunked` alone, both, or chunked in HTTP/1.0.
 *
 * `parse` is given every byte so far (the same bytes and more at each call) and resumes where it
 * stopped, so a head dripped a byte at a time is scanned once.
 */
export class RequestHeadParser {
  private state = METHOD
  private pos = 0
  /** Where the method starts (after empty lines), the two spaces of the request line, the current field line. */
  private start = 0
  private sp1 = 0
  private sp2 = 0
  private line = 0
  private host: string | undefined
  private contentLength: number | undefined
  private chunked = false
  private upgrade = false

  constructor(private readonly maxBytes: number) {}

  /** The head, what it is not, or undefined while more bytes are needed. */
  parse(buf: Buffer): RequestHead | undefined {
    const stop = Math.min(buf.length, this.maxBytes)
    for (; this.pos < stop; this.pos++) {
      const c = buf[this.pos]!
      if (this.state === LINE) {
        if (c === LF) return this.odd(buf)
      } else if (this.state === METHOD) {
        if (TCHAR[c] === 1) continue
        if (c === SP && this.pos > this.start) {
          this.sp1 = this.pos
          this.state = TARGET
        } else if ((c === CR || c === LF) && this.pos === this.start) this.start++
        else if (this.pos > this.start && (c === 0x09 || c === 0x0b || c === 0x0c)) this.state = LINE   // a token, then other whitespace
        else return NOT_HTTP
      } else if (this.state === TARGET) {
        if (c > SP && c !== 0x7f) continue
        if (c !== SP || this.pos === this.sp1 + 1) {
          if (c === LF) return this.odd(buf)
          this.state = LINE
          continue
        }
        this.sp2 = this.pos
        this.state = VERSION
      } else if (this.state === VERSION) {
        const i = this.pos - this.sp2 - 1                       // HTTP/1.d, then CRLF or LF
        const ok = i < HTTP_1.length ? c === HTTP_1[i] : i === HTTP_1.length ? c >= 0x30 && c <= 0x39
          : c === LF || (i === HTTP_1.length + 1 && c === CR)
        if (!ok) {
          if (i === 5 && c === 0x32 && buf.toString('latin1', this.start, this.sp2) === 'PRI *') return invalid('HTTP/2 with prior knowledge')
          if (c === LF) return this.odd(buf)
          this.state = LINE
          continue
        }
        if (c === LF) {
          this.state = FIELDS
          this.line = this.pos + 1
        }
      } else if (c === LF) {
        const end = this.pos > this.line && buf[this.pos - 1] === CR ? this.pos - 1 : this.pos
        if (end === this.line) return this.head(buf)
        const bad = this.field(buf.toString('latin1', this.line, end))
        if (bad !== undefined) return invalid(bad)
        this.line = this.pos + 1
      }
    }
    return this.pos >= this.maxBytes ? invalid(`request head over ${this.maxBytes} bytes`) : undefined
  }

  /** A first line that is no strict request line, ended by the LF at `pos`: refused when a server would read it as a request. */
  private odd(buf: Buffer): RequestHead {
    const end = this.pos > this.start && buf[this.pos - 1] === CR ? this.pos - 1 : this.pos
    return looksHttp(buf.toString('latin1', this.start, end))
      ? invalid('a request line that is not "METHOD target HTTP/1.x" with single spaces (lenient servers read it)')
      : NOT_HTTP
  }

  /** The complete head ending at `pos`, or why its body cannot be framed one way only. */
  private head(buf: Buffer): RequestHead {
    if (this.chunked && this.contentLength !== undefined) return invalid('both Transfer-Encoding and Content-Length')
    if (this.chunked && buf[this.sp2 + 8] === 0x30) return invalid('Transfer-Encoding in an HTTP/1.0 request')
    const method = buf.toString('latin1', this.start, this.sp1)
    return {
      kind: 'head', method, target: buf.toString('latin1', this.sp1 + 1, this.sp2), host: this.host, length: this.pos + 1,
      body: this.chunked ? 'chunked' : this.contentLength ?? 0, upgrade: this.upgrade || method === 'CONNECT',
    }
  }

  /** Why a field line cannot be read, or undefined (Host, the body's framing and Upgrade are kept). */
  private field(text: string): string | undefined {
    const f = FIELD.exec(text)
    if (!f) return 'a header line that is not "name: value"'
    const name = f[1]!.toLowerCase()
    const value = f[2]!
    if (name === 'host') {
      if (this.host !== undefined) return 'more than one Host header'
      this.host = value
    } else if (name === 'content-length') {
      if (this.contentLength !== undefined) return 'more than one Content-Length header'
      if (!/^[0-9]{1,15}$/.test(value)) return 'a Content-Length that is not a number of bytes'
      this.contentLength = Number(value)
    } else if (name === 'transfer-encoding') {
      if (this.chunked) return 'more than one Transfer-Encoding header'
      if (value.toLowerCase() !== 'chunked') return 'a Transfer-Encoding other than chunked'
      this.chunked = true
    } else if (name === 'upgrade') {
      this.upgrade = true
    }
    return undefined
  }
}
