import type { AlertOutput } from './alerts.js'

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
  /** Alerts dropped because the queue was full or retries ran out. */
  readonly dropped: number
  /** Resolves when the queue is empty and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void>
}

/** POSTs alerts one at a time from a bounded queue; `send` only enqueues. */
export function createWebhook(
  opts: WebhookOptions,
  onError: (msg: string, fields: Record<string, unknown>) => void,
  clock: () => number = Date.now,
): Webhook {
  const maxQueue = opts.maxQueue ?? 1000
  const retries = opts.retries ?? 3
  const backoff = opts.backoff ?? 1000
  const timeout = opts.timeout ?? 5000
  const headers = { 'content-type': 'application/json', ...opts.headers }
  const queue: string[] = []
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

  async function post(body: string): Promise<'ok' | 'retry' | 'fail'> {
    try {
      const res = await fetch(opts.url, {
        method: 'POST', headers, body,
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeout)]),
      })
      await res.arrayBuffer()
      if (res.ok) return 'ok'
      onError('alert webhook refused', { url: opts.url, status: res.status })
      return res.status === 429 || res.status >= 500 ? 'retry' : 'fail'
    } catch (e) {
      if (!closed) onError('alert webhook failed', { url: opts.url, error: (e as Error).message })
      return 'retry'
    }
  }

  async function pump(): Promise<void> {
    running = true
    while (queue.length > 0 && !closed) {
      const body = queue.shift()!
      let outcome = await post(body)
      for (let i = 0; outcome === 'retry' && i < retries && !closed; i++) {
        await sleep(backoff * 2 ** i)
        if (!closed) outcome = await post(body)
      }
      if (outcome !== 'ok') dropped++
    }
    running = false
    const waiters = idleWaiters
    idleWaiters = []
    for (const w of waiters) w()
  }

  return {
    send(_ev, record) {
      if (closed) return
      if (queue.length >= maxQueue) {
        dropped++
        return
      }
      queue.push(JSON.stringify({ '@timestamp': new Date(clock()).toISOString(), ...record }))
      if (!running) void pump()
    },
    get dropped() { return dropped },
    idle: () => running ? new Promise<void>(resolve => { idleWaiters.push(resolve) }) : Promise.resolve(),
    async close() {
      closed = true
      queue.length = 0
      abort.abort()
      clearTimeout(timer)
      wake?.()
      await (running ? new Promise<void>(resolve => { idleWaiters.push(resolve) }) : undefined)
    },
  }
}
