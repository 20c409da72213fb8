import { alertFields, errorText, type AlertOutput, type AlertResult } from './alert-output.js'
import type { DecisionEvent } from './types.js'
import { redactUrl, withoutCredentials } from '../url-secrets.js'
import { MAX_TIMER_MS } from '../config/duration.js'
import { ECS_VERSION } from './logger.js'

export interface WebhookOptions {
  /** http(s) URL that receives one JSON POST per alert (the ECS fields of the log line). */
  readonly url: string
  /** Alerts waiting to be sent; when full, new alerts are dropped (and counted). Default 1000. */
  readonly maxQueue?: number
  /** Retries after a failed POST (network error, 429 or 5xx). Default 3. */
  readonly retries?: number
  /** First retry delay in ms, doubled each retry. Default 1000. */
  readonly backoff?: number
  /** Per-request timeout in ms. Default 5000. */
  readonly timeout?: number
  readonly headers?: Readonly<Record<string, string>>
}

export interface Webhook extends AlertOutput {
  /** Alerts given up: the queue was full, the receiver refused it (4xx), retries ran out, or closed. */
  readonly dropped: number
  /** Resolves when the queue is empty and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void>
}

interface Item {
  readonly body: string
  readonly ev: DecisionEvent
  readonly report: (result: AlertResult) => void
}

/**
 * POSTs alerts one at a time from a bounded queue; `send` only enqueues. Each failed attempt is
 * a line (`alert webhook failed`: the cause, attempt k of n), each alert given up is one more
 * (`alert webhook gave up`: why, and how many this webhook has dropped).
 */
export function createWebhook(
  opts: WebhookOptions,
  onError: (msg: string, fields: Record<string, unknown>) => void,
  clock: () => number = Date.now,
): Webhook {
  const maxQueue = opts.maxQueue ?? 1000
  const retries = opts.retries ?? 3
  const attempts = retries + 1
  const backoff = opts.backoff ?? 1000
  const timeout = opts.timeout ?? 5000
  // user:password@ in the URL is sent as Basic authorization (fetch refuses such a URL), unless
  // the configured headers have an Authorization of their own; lines show the URL redacted
  const target = withoutCredentials(opts.url)
  // a Content-Type of the config's own replaces application/json (in any case: fetch would join the two)
  const own = new Set(Object.keys(opts.headers ?? {}).map(k => k.toLowerCase()))
  const headers = {
    ...(own.has('content-type') ? {} : { 'content-type': 'application/json' }),
    ...(target.authorization && !own.has('authorization') ? { authorization: target.authorization } : {}),
    ...opts.headers,
  }
  const shown = redactUrl(opts.url)
  const queue: Item[] = []
  let dropped = 0
  let running = false
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let wake: (() => void) | undefined
  let idleWaiters: (() => void)[] = []
  const abort = new AbortController()

  const sleep = (ms: number) => new Promise<void>(resolve => {
    wake = resolve
    timer = setTimeout(resolve, ms)
  })

  function giveUp(item: Item, reason: string, tried: number, error?: string): void {
    dropped++
    item.report('dropped')
    onError('alert webhook gave up', { url: shown, ...alertFields(item.ev), reason, error, attempts: tried, dropped })
  }

  /** One attempt: `retry` after a network error, a timeout, 429 or 5xx; `refused` after another status. */
  async function post(item: Item, attempt: number): Promise<{ outcome: 'ok' | 'retry' | 'refused' | 'closed'; error?: string }> {
    let error: string
    let status: number | undefined
    try {
      const res = await fetch(target.url, {
        method: 'POST', headers, body: item.body,
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeout)]),
      })
      await res.arrayBuffer()
      if (res.ok) return { outcome: 'ok' }
      status = res.status
      error = `HTTP ${res.status}`
    } catch (e) {
      if (closed) return { outcome: 'closed' }   // aborted by close: not the receiver's failure
      error = errorText(e)
    }
    item.report('failed')
    onError('alert webhook failed', { url: shown, ...alertFields(item.ev), attempt, attempts, error, status })
    return { outcome: status === undefined || status === 429 || status >= 500 ? 'retry' : 'refused', error }
  }

  async function pump(): Promise<void> {
    running = true
    while (queue.length > 0 && !closed) {
      const item = queue.shift()!
      let attempt = 1
      let r = await post(item, attempt)
      while (r.outcome === 'retry' && attempt < attempts && !closed) {
        // (doubled past what a timer can wait, it would end at once)
        await sleep(Math.min(backoff * 2 ** (attempt - 1), MAX_TIMER_MS))
        if (!closed) r = await post(item, ++attempt)
      }
      if (r.outcome === 'ok') item.report('sent')
      else if (closed) giveUp(item, 'closed', attempt, r.error)
      else giveUp(item, r.outcome === 'refused' ? 'refused' : 'retries exhausted', attempt, r.error)
    }
    running = false
    const waiters = idleWaiters
    idleWaiters = []
    for (const w of waiters) w()
  }

  return {
    name: 'webhook',
    send(ev, record, report) {
      const item = { body: '', ev, report }
      if (closed) return giveUp(item, 'closed', 0)
      if (queue.length >= maxQueue) return giveUp(item, `queue full (${maxQueue})`, 0)
      // the alert's line as stdout has it, with its ECS version (an index of the webhook's bodies reads them by it)
      queue.push({ ...item, body: JSON.stringify({ '@timestamp': new Date(clock()).toISOString(), 'ecs.version': ECS_VERSION, ...record }) })
      if (!running) void pump()
    },
    get dropped() { return dropped },
    idle: () => running ? new Promise<void>(resolve => { idleWaiters.push(resolve) }) : Promise.resolve(),
    async close() {
      closed = true
      for (const item of queue.splice(0)) giveUp(item, 'closed', 0)
      abort.abort()
      clearTimeout(timer)
      wake?.()
      await (running ? new Promise<void>(resolve => { idleWaiters.push(resolve) }) : undefined)
    },
  }
}
