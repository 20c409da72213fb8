import type { Socket } from 'node:net'
import type { HelloRead } from './hello-reader.js'
import { MAX_HELLO_BYTES, parseClientHello } from './sni.js'

/** Decides a second ClientHello: true lets it through. `early`: it came before the server answered the first. */
export type Retry = (again: HelloRead, early: boolean) => boolean

/** Where the bytes start past change_cipher_spec records, or -1 while such a record is incomplete. */
function pastCcs(buf: Buffer): number {
  let off = 0
  while (off < buf.length && buf[off] === 0x14) {
    if (off + 5 > buf.length || off + 5 + buf.readUInt16BE(off + 3) > buf.length) return -1
    off += 5 + buf.readUInt16BE(off + 3)
  }
  return off
}

/**
 * The client's bytes after its first ClientHello, read record by record until the server's first
 * flight has told whether it asks for another hello (a HelloRetryRequest: `server`). A client may
 * send its second hello at once, before the request comes, and a server that then asks reads it
 * from its buffer (OpenSSL's does, and takes its name): piped on, it would reach the server
 * undecided. So every handshake record the client sends before the server has answered is a
 * second ClientHello (TLS 1.2 and 1.3 clients send no other handshake message first) and is
 * `check`ed as one sent after the request is; change_cipher_spec and early data (application
 * data) records, and any other, go on as they come. After a request with no second hello yet,
 * only change_cipher_spec may come before it (held with it until it is decided), within
 * `timeout`. Once the server's answer is no request, or the second hello passed, the client is
 * piped.
 */
export class HelloGate {
  /** Bytes not yet sent on or decided, and how many must have come before the next look. */
  private chunks: Buffer[] = []
  private have = 0
  private want = 1
  /** Body bytes of a passing record still to come: sent on as they arrive. */
  private skip = 0
  private state: 'watch' | 'need' | 'open' | 'closed' = 'watch'
  /** A second hello passed before the server answered. */
  private again = false
  /** Waiting for the server to drain. */
  private full = false
  private timer: NodeJS.Timeout | undefined
  private readonly onData = (b: Buffer): void => this.take(b)
  private readonly onEnd = (): void => {
    if (this.state === 'need') return this.fail({ kind: 'eof' })
    this.up.end()                                       // half-close kept; a cut hello is dropped
  }
  private readonly onClose = (): void => { if (this.state === 'need') this.fail({ kind: 'eof' }) }

  constructor(private readonly client: Socket, private readonly up: Socket, rest: Buffer,
    private readonly check: Retry, private readonly timeout: number) {
    client.on('data', this.onData)
    client.once('end', this.onEnd)
    client.once('close', this.onClose)
    this.take(rest)
    if (this.state !== 'watch') return
    if (client.readableEnded) this.up.end()             // it ended while the server was dialled
    else client.resume()
  }

  /** The server's first flight is classified: `retry`, it is a HelloRetryRequest. */
  server(retry: boolean): void {
    if (this.state !== 'watch') return
    if (!retry || this.again) return this.open()
    this.state = 'need'
    if (this.client.readableEnded || this.client.destroyed) return this.fail({ kind: 'eof' })
    this.timer = setTimeout(() => this.fail({ kind: 'timeout' }), this.timeout)
    this.take(Buffer.alloc(0))
  }

  private take(b: Buffer): void {
    if (this.skip > 0 && b.length > 0) {
      const n = Math.min(this.skip, b.length)
      this.send(b.subarray(0, n))
      this.skip -= n
      b = b.subarray(n)
    }
    if (b.length > 0) {
      this.chunks.push(b)
      this.have += b.length
    }
    // bounded: each pass takes a whole record (or hello) off the front, or waits for more bytes
    // (joined only once enough have come: a hello dripped a byte at a time is not copied per byte)
    while (this.skip === 0 && this.have >= this.want && (this.state === 'watch' || this.state === 'need')) {
      const pend = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
      this.chunks = [pend]
      if (this.state === 'need') return this.second(pend)
      const type = pend[0]!
      if (type === 0x16) {
        const r = parseClientHello(pend, MAX_HELLO_BYTES)
        if (r.kind === 'partial') {
          this.want = r.need
          return
        }
        if (!this.check(r, true)) return this.refuse()
        this.consume(pend, (r as { length: number }).length)
        this.again = true
        continue
      }
      if (pend.length < 5) {
        this.want = 5
        return
      }
      const len = 5 + pend.readUInt16BE(3)
      const n = Math.min(len, pend.length)
      this.skip = len - n
      this.consume(pend, n)
    }
  }

  /**
   * After a retry request: change_cipher_spec records (TLS 1.3's middlebox compatibility mode),
   * then the second hello; held until it is decided, and sent on with it if it passes.
   */
  private second(pend: Buffer): void {
    const off = pastCcs(pend)
    if (off > MAX_HELLO_BYTES || (off < 0 && pend.length > MAX_HELLO_BYTES)) return this.fail({ kind: 'invalid', reason: 'change_cipher_spec records over the cap' })
    if (off < 0 || off === pend.length) {
      this.want = pend.length + 1
      return
    }
    const r = parseClientHello(pend.subarray(off), MAX_HELLO_BYTES)
    if (r.kind === 'partial') {
      this.want = off + r.need
      return
    }
    if (!this.check(r, false)) return this.refuse()
    this.consume(pend, off + (r as { length: number }).length)
    this.open()
  }

  /** Send the first `n` bytes of `pend` on; the rest waits. */
  private consume(pend: Buffer, n: number): void {
    this.send(pend.subarray(0, n))
    const rest = pend.subarray(n)
    this.chunks = rest.length > 0 ? [rest] : []
    this.have = rest.length
    this.want = 1
  }

  private send(b: Buffer): void {
    if (this.up.write(b) || this.full) return
    // the server does not read: neither does this, until it drains
    this.full = true
    this.client.pause()
    this.up.once('drain', () => {
      this.full = false
      if (this.state === 'watch' || this.state === 'need') this.client.resume()
    })
  }

  private open(): void {
    this.stop('open')
    if (this.client.readableEnded) return               // the server was told (what was cut short is dropped)
    if (this.have > 0) this.up.write(Buffer.concat(this.chunks))
    this.client.pipe(this.up)
  }

  private fail(r: HelloRead): void {
    this.check(r, false)
    this.refuse()
  }

  private refuse(): void {
    this.stop('closed')
    this.client.destroy()
    this.up.destroy()
  }

  private stop(state: 'open' | 'closed'): void {
    this.state = state
    clearTimeout(this.timer)
    this.client.off('data', this.onData)
    this.client.off('end', this.onEnd)
    this.client.off('close', this.onClose)
  }
}
