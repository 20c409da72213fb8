import type { Socket } from 'node:net'
import type { RequestHead } from './request-head.js'
import type { RequestFraming } from './request-framing.js'
import { parseClientHello, type HelloResult } from './sni.js'

type Head = Extract<RequestHead, { kind: 'head' }>

/**
 * The client's bytes not yet consumed. A read with nothing waiting is used as it is; bytes left
 * over gather in a buffer that grows by doubling, so a head dripped a byte at a time is copied
 * linearly. Bytes handed on (views into the buffer, possibly still queued in a socket's write)
 * are never overwritten: appends go past them, and a buffer consumed to its end is let go.
 */
class Pending {
  private store: Buffer
  private start = 0
  private end: number

  constructor(first: Buffer) {
    this.store = first
    this.end = first.length
  }

  get bytes(): Buffer {
    return this.store.subarray(this.start, this.end)
  }

  append(b: Buffer): void {
    const length = this.end - this.start
    if (length === 0) {
      this.store = b
      this.start = 0
      this.end = b.length
      return
    }
    if (this.end + b.length > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * (length + b.length), 4096))
      this.store.copy(grown, 0, this.start, this.end)
      this.store = grown
      this.start = 0
      this.end = length
    }
    this.end += b.copy(this.store, this.end)
  }

  /** The first `n` bytes, consumed. */
  take(n: number): Buffer {
    const out = this.store.subarray(this.start, this.start + n)
    this.start += n
    if (this.start === this.end) {
      this.store = EMPTY
      this.start = this.end = 0
    }
    return out
  }
}

const EMPTY = Buffer.alloc(0)

/**
 * Relay a plain-HTTP tunnel's client side to `up` request by request: body and framing bytes go
 * on as they come; each request head waits, with the client paused, until `judge` lets it
 * through (it is then written) or refuses it: nothing of it reaches `up`, which is ended, and
 * the client is read no more (the tunnel closes once the server has answered what it had).
 * `invalidBytes` is told why bytes could not be framed (and whether they were to be a request
 * head), and the tunnel ends the same way. `rest`: the bytes read after the first request's
 * head, which was decided and written already. A later head must be complete within
 * `headTimeoutMs` of its first byte, as the first had to be (proxy.helloTimeout), or it is
 * refused as bytes that cannot be framed.
 *
 * `server` follows the responses: each head written is `sent` to it. Bytes that are no request
 * after an Upgrade or CONNECT request wait for the server's answer to it (`switched`): if it
 * switched protocols they go on, and the rest of the tunnel with them, unread; if not, they are
 * refused. Bytes that are a request are decided as requests, switch or not: a server's "switch"
 * that is none (a handler answering a CONNECT with 200 and reading on) hides nothing.
 */
export function followRequests(client: Socket, up: Socket, framing: RequestFraming, rest: Buffer,
  judge: (head: Head) => Promise<boolean>, invalidBytes: (reason: string, atHead: boolean) => void, headTimeoutMs: number,
  server: { sent(method: string, upgrade: boolean): void; switched(): Promise<boolean> },
  judgeHello: (hello: Extract<HelloResult, { kind: 'hello' }>) => Promise<boolean>, connectFirst: boolean): void {
  const pending = new Pending(rest)
  /** Whether the last request sent on was a CONNECT (to a proxy behind): TLS after its 200 has its ClientHello read. */
  let lastConnect = connectFirst
  /** Runs from a later head's first byte until it is complete: a head held back longer is refused. */
  let headTimer: NodeJS.Timeout | undefined
  let judging = false
  let draining = false
  let ended = client.readableEnded                        // the client's FIN may have come with its first bytes
  let done = false
  const resume = (): void => {
    if (!judging && !draining && !done) client.resume()
  }
  const onDrain = (): void => {
    draining = false
    resume()
  }
  const write = (bytes: Buffer): void => {
    if (bytes.length === 0 || up.write(bytes)) return
    draining = true
    client.pause()
    up.once('drain', onDrain)
  }
  const stop = (): void => {
    done = true
    clearTimeout(headTimer)
    clearTimeout(helloTimer)
    client.off('data', onData)
    client.off('end', onEnd)
  }
  // nothing more of the client's goes on: the server gets what went before and a FIN, and its
  // answers to the requests it has still reach the client; once the server has closed, so does
  // the client's side (it is read no more, so its own FIN would never be seen)
  const refuse = (): void => {
    stop()
    client.pause()
    up.once('close', () => client.destroySoon())
    up.end()
  }
  // the server speaks another protocol now, and so does the client, from the bytes not yet sent on
  const pipeRest = (): void => {
    stop()
    write(pending.take(pending.bytes.length))
    if (ended) up.end()
    else client.pipe(up)                                 // pipe resumes the client
  }
  const pump = (): void => {
    while (!judging && !done) {
      const bytes = pending.bytes
      const step = bytes.length === 0 && !ended ? undefined : framing.next(bytes)
      if (step === undefined) {
        if (ended) {
          stop()                                         // an incomplete head at the end goes nowhere
          up.end()
        } else if (headTimer === undefined && bytes.length > 0 && framing.atHead) {
          headTimer = setTimeout(() => {
            invalidBytes('a request head not complete within proxy.helloTimeout', true)
            refuse()
          }, headTimeoutMs)
        }
        return
      }
      clearTimeout(headTimer)                            // whatever the bytes turned out to be, they are not waited for
      headTimer = undefined
      if (step.kind === 'forward') {
        write(pending.take(step.n))
      } else if (step.kind === 'head') {
        judging = true
        client.pause()
        const head = step.head
        judge(head).then(ok => {
          judging = false
          if (!ok || client.destroyed || up.destroyed) return refuse()
          write(pending.take(head.length))
          server.sent(head.method, head.upgrade)
          lastConnect = head.method === 'CONNECT'
          resume()
          pump()
        }, () => refuse())                               // a judge that fails lets nothing through
      } else if (step.kind === 'opaque') {
        // bytes that are no request after an upgrade request: on only if the server switched
        judging = true
        client.pause()
        void server.switched().then(ok => {
          judging = false
          if (!ok) {
            invalidBytes('bytes after a request that are no HTTP request (the server did not switch protocols)', true)
            return refuse()
          }
          if (!lastConnect) return pipeRest()
          // TLS through a proxy behind: its ClientHello is read and decided, as a CONNECT's own is
          hello = true
          helloTimer = setTimeout(() => {
            invalidBytes('a ClientHello after a CONNECT to a proxy behind not complete within proxy.helloTimeout', false)
            refuse()
          }, headTimeoutMs)
          readHello()
          resume()
        })
      } else {
        invalidBytes(step.reason, framing.atHead)
        refuse()
      }
    }
  }
  const onData = (b: Buffer): void => {
    pending.append(b)
    if (hello) readHello()
    else pump()
  }
  // the ClientHello after an inner CONNECT's 200: gathered within headTimeoutMs, then decided
  let hello = false
  let helloTimer: NodeJS.Timeout | undefined
  const readHello = (): void => {
    const r = parseClientHello(pending.bytes)
    if (r.kind === 'partial' && !ended) return           // more comes
    hello = false
    clearTimeout(helloTimer)
    if (r.kind === 'partial' || r.kind === 'invalid') {
      invalidBytes(r.kind === 'invalid' ? `a malformed ClientHello after a CONNECT to a proxy behind (${r.reason})`
        : 'the client ended before its ClientHello after a CONNECT to a proxy behind was complete', false)   // (no request of its own)
      return refuse()
    }
    if (r.kind === 'not-tls') return pipeRest()          // another protocol: decided on the inner CONNECT's authority
    judging = true
    client.pause()
    judgeHello(r).then(ok => {
      judging = false
      if (ok && !client.destroyed && !up.destroyed) pipeRest()
      else refuse()
    }, () => refuse())
  }
  const onEnd = (): void => {
    ended = true
    if (hello) readHello()
    else pump()
  }
  client.on('data', onData)
  client.on('end', onEnd)
  pump()
  resume()                                               // the head's reader left the client paused
}
