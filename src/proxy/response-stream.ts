import { FIELD } from './connect-head.js'
import { RequestFraming } from './request-framing.js'

/** What the tracker is doing. */
const HEAD = 0
const BODY = 1
/** The server switched protocols (101 to an Upgrade request, 2xx to a CONNECT): its side is no more HTTP. */
const SWITCHED = 2
/** Nothing more can be told: a response read until the close, a server that closed, bytes that are no response. */
const STOPPED = 3

const STATUS_LINE = /^HTTP\/1\.\d (\d{3})(?: .*)?$/
/** The largest response head followed (a larger one stops the tracker). */
const MAX_RESPONSE_HEAD = 65_536
const CRLFCRLF = Buffer.from('\r\n\r\n')

interface Sent { readonly method: string; readonly upgrade: boolean }

/**
 * The server's side of a plain-HTTP tunnel, followed response by response (RFC 9112: 1xx interim,
 * no body after HEAD, 204 and 304, Content-Length, chunked, or until the close), only to tell
 * whether the server switched protocols: a 101 with an Upgrade field to a request with one, or a
 * 2xx without a body's length or chunks to a CONNECT.
 * Until it has, bytes from the client that are no request are refused: a server that did not
 * honour an upgrade (Go's does not, unless its handler takes the connection) goes on reading
 * requests. Anything the tracker cannot follow stops it, and no switch is ever seen after that
 * (fail closed: the tunnel then carries HTTP only).
 */
export class ResponseTracker {
  private state = HEAD
  private readonly queue: Sent[] = []
  /** Requests sent so far, and those whose final answer was read. */
  private sentCount = 0
  private doneCount = 0
  private waiters: ((ok: boolean) => void)[] = []
  private framing: RequestFraming | undefined
  /**
   * Bytes of a response head not complete yet, at the front of `store` (copied: the reads they came
   * in are reused), and how far they were searched for the head's end.
   */
  private store = Buffer.alloc(0)
  private keptLen = 0
  private scanned = 0

  /** A request sent to the server, in order: its response comes next after those before it. */
  sent(method: string, upgrade: boolean): void {
    this.sentCount++
    this.queue.push({ method, upgrade })
  }

  /**
   * Whether the server switched protocols in answer to the last request sent: resolves once its
   * final response is read (false unless it switched), or once nothing more can be told (false).
   */
  switched(): Promise<boolean> {
    if (this.state >= SWITCHED || this.doneCount >= this.sentCount) return Promise.resolve(this.state === SWITCHED)
    return new Promise(resolve => this.waiters.push(resolve))
  }

  /** Whether the tracker has nothing more to read: the server switched, or it stopped. */
  get done(): boolean {
    return this.state >= SWITCHED
  }

  /** The server closed its side. */
  end(): void {
    this.stop()
  }

  /** The server's bytes as they go to the client (a view that the next read reuses). */
  feed(chunk: Buffer): void {
    if (this.state >= SWITCHED) return
    let buf = chunk
    if (this.keptLen > 0) {
      const need = this.keptLen + chunk.length
      if (need > this.store.length) {
        const grown = Buffer.allocUnsafe(2 * need)
        this.store.copy(grown, 0, 0, this.keptLen)
        this.store = grown
      }
      chunk.copy(this.store, this.keptLen)
      buf = this.store.subarray(0, need)
    }
    while (buf.length > 0 && this.state < SWITCHED) {
      if (this.state === BODY) {
        const step = this.framing!.next(buf)
        if (step === undefined) break
        if (step.kind !== 'forward') return this.stop()
        buf = buf.subarray(step.n)
        if (this.framing!.atHead) this.state = HEAD
        continue
      }
      const end = buf.indexOf(CRLFCRLF, Math.max(0, this.scanned - 3))
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD) return this.stop()
        this.scanned = buf.length
        break
      }
      const head = buf.toString('latin1', 0, end)
      buf = buf.subarray(end + 4)
      this.scanned = 0
      this.response(head)
    }
    if (this.state >= SWITCHED || buf.length === 0) {
      this.keptLen = 0
      return
    }
    // what is left goes to the front of the store (copy handles the overlap; none when it is there)
    if (buf.buffer !== this.store.buffer || buf.byteOffset !== this.store.byteOffset) {
      if (buf.length > this.store.length) this.store = Buffer.allocUnsafe(Math.max(2 * buf.length, 1024))
      buf.copy(this.store, 0)
    }
    this.keptLen = buf.length
  }

  /** One response head: interim, a switch, or the final response to the oldest request waiting. */
  private response(text: string): void {
    const lines = text.split('\r\n')
    const status = STATUS_LINE.exec(lines[0]!)
    const req = this.queue[0]
    if (!status || req === undefined) return this.stop()      // no response, or one to nothing sent
    const code = Number(status[1])
    let length: number | undefined
    let chunked = false
    let close = false
    let upgrade = false
    for (const line of lines.slice(1)) {
      const f = FIELD.exec(line)
      if (!f) return this.stop()
      const name = f[1]!.toLowerCase()
      if (name === 'upgrade') upgrade = true
      else if (name === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(f[2]!) || (length !== undefined && length !== Number(f[2]))) return this.stop()
        length = Number(f[2])
      } else if (name === 'transfer-encoding') {
        // chunked last: chunked; any other coding last: the body runs to the close
        if (/(^|,)\s*chunked$/i.test(f[2]!)) chunked = true
        else close = true
      }
    }
    // a switch says which protocol it switches to; a 101 that does not (a handler's WriteHeader(101)) cannot be told
    if (code === 101) return req.upgrade && req.method !== 'CONNECT' && upgrade ? this.switch() : this.stop()
    if (code < 200) return                               // 100, 103: the final answer follows
    // a tunnel begins right after a 2xx to a CONNECT; one with a length or chunks is a handler's answer with a body
    if (req.method === 'CONNECT' && code < 300 && length === undefined && !chunked && !close) return this.switch()
    this.queue.shift()
    this.doneCount++
    this.settle()
    if (req.method === 'HEAD' || code === 204 || code === 304) return
    if (close || (!chunked && length === undefined)) return this.stop()   // read until the close: no response after it
    if (chunked || length! > 0) {
      this.framing = RequestFraming.body(chunked ? 'chunked' : length!)
      this.state = BODY
    }
  }

  private switch(): void {
    this.state = SWITCHED
    this.queue.length = 0
    this.settle()
  }

  private stop(): void {
    if (this.state >= SWITCHED) return
    this.state = STOPPED
    this.keptLen = 0
    this.settle()
  }

  /**
   * Tell the waiters once the last request sent has its final answer, or the server switched
   * (whatever the client sends next is the new protocol), or nothing more can be told.
   */
  private settle(): void {
    if (this.state < SWITCHED && this.doneCount < this.sentCount) return
    const ok = this.state === SWITCHED
    for (const w of this.waiters.splice(0)) w(ok)
  }
}
