import { stat } from 'node:fs/promises'
import { readFileAsync } from '../read-file.js'
import { versionOf } from '../file-watch.js'
import { LeaseIndex, isEmptyLeaseFile, parseLeases, type Lease } from './leases.js'

export interface LeaseFilesOptions {
  /** Absolute paths: dnsmasq, ISC dhcpd or Kea CSV, detected per file. */
  readonly files: readonly string[]
  /** How often the files' inode, size and mtime are compared (ms). */
  readonly checkMs: number
  /** Called with the new index after the first check and after every change. */
  readonly onIndex: (index: LeaseIndex) => void
  readonly warn: (msg: string, fields: Record<string, unknown>) => void
  readonly info: (msg: string, fields: Record<string, unknown>) => void
}

interface FileState {
  /** inode, size and mtime when last read ('' before). */
  sig: string
  leases: readonly Lease[]
  /** The last check failed (warned once until it reads again). */
  failed: boolean
  /** The signature of a read that found the file empty (or its header alone), not yet believed. */
  emptySig?: string
}

/**
 * DHCP lease files, re-read when they change: a timer compares each file's inode, size and
 * mtime every `checkMs` (a lease file is often replaced by rename, which a watch on the file
 * misses). A file that cannot be read, or holds text but no lease, is a warning naming it, once
 * until it reads again; its last good leases are kept. One empty (or its header alone) empties
 * its leases when two checks in a row read it so.
 */
export class LeaseFiles {
  readonly #o: LeaseFilesOptions
  readonly #state = new Map<string, FileState>()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false

  constructor(o: LeaseFilesOptions) {
    this.#o = o
    for (const f of o.files) this.#state.set(f, { sig: '', leases: [], failed: false })
  }

  /** The first read (always delivers an index), then a check every `checkMs`. */
  async start(): Promise<void> {
    await this.check(true)
    if (this.#stopped) return
    this.#timer = setInterval(() => { void this.check() }, this.#o.checkMs)
    this.#timer.unref()
  }

  /** Compare every file with what was read; re-read the changed ones and rebuild the index. */
  check(force = false): Promise<void> {
    // one check at a time: a timer tick during a slow read is skipped
    this.#running ??= this.#checkAll(force).finally(() => { this.#running = undefined })
    return this.#running
  }

  async #checkAll(force: boolean): Promise<void> {
    let changed = force
    for (const [file, st] of this.#state) {
      try {
        const s = await stat(file)
        const sig = versionOf(s)
        if (sig === st.sig) continue
        // a device or FIFO is refused (read to its end it would fill the memory, or wait forever)
        const text = (await readFileAsync(file)).toString('utf8')
        st.sig = sig
        if (st.failed) this.#o.info('lease file readable again', { file })
        st.failed = false
        const leases = parseLeases(text)
        if (leases.length === 0 && !isEmptyLeaseFile(text)) {
          this.#o.warn('no lease found in lease file; keeping its last good leases', { file })
          continue
        }
        // a server that holds no lease writes just its header, or nothing: that empties the leases
        // (isEmptyLeaseFile), once a second read finds it so: dnsmasq rewrites its file in place,
        // and a check between its truncate and its write read it empty (every name gone, unsaid)
        if (leases.length === 0 && st.emptySig !== sig) {
          st.emptySig = sig
          st.sig = ''                                  // read again at the next check
          continue
        }
        st.emptySig = undefined
        st.leases = leases
        changed = true
      } catch (e) {
        if (!st.failed) this.#o.warn('cannot read lease file; keeping its last good leases', { file, error: (e as Error).message })
        st.failed = true
        st.sig = ''
      }
    }
    if (changed && !this.#stopped) this.#o.onIndex(new LeaseIndex([...this.#state.values()].flatMap(s => s.leases)))
  }

  stop(): void {
    this.#stopped = true
    clearInterval(this.#timer)
  }
}
