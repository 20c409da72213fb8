/**
 * A direct-mapped table of the objects of queries in flight, by a number key (a query ID, a
 * question's hash): each key has one slot, `key & (capacity - 1)`, which holds at most one
 * object; a caller that finds its slot taken by another key picks another key (an ID) or does
 * without (a question asked on its own). The table doubles, up to `maxCapacity`, when it is
 * filled past `maxLoad`; keys in different slots stay in different slots.
 *
 * Why not a Map: every query in flight passes through these tables, and a Map that is written and
 * deleted from all the time is rebuilt every few dozen entries. V8 leaves the table it replaces
 * linked to the new one, still holding the entries it had. Once such a table has reached the old
 * generation (the tables live for seconds), the young collector takes what it points at for live
 * until the next full collection: the query's record, callback, datagram, name and decision were
 * copied twice and then promoted, about 1 KB per forwarded query (bench/README.md, stop 32).
 * Here a slot is cleared when its entry goes, and the arrays are replaced only when they grow
 * (the old one emptied first), so nothing outlives its query.
 */
export class SlotTable<T> {
  private keys: Int32Array
  private values: (T | undefined)[]
  private mask: number
  private count = 0

  /** `capacity` and `maxCapacity`: powers of two. */
  constructor(capacity: number, private readonly maxCapacity: number, private readonly maxLoad = 0.5) {
    this.keys = new Int32Array(capacity)
    this.values = new Array<T | undefined>(capacity).fill(undefined)
    this.mask = capacity - 1
  }

  get size(): number {
    return this.count
  }

  get capacity(): number {
    return this.values.length
  }

  /** The object stored under `key`, or undefined. */
  get(key: number): T | undefined {
    const i = key & this.mask
    return this.keys[i] === key ? this.values[i] : undefined
  }

  /** Is the slot of `key` empty? */
  isFree(key: number): boolean {
    return this.values[key & this.mask] === undefined
  }

  /** Store `value` under `key`, whose slot must be empty (isFree); call `reserve` first. */
  set(key: number, value: T): void {
    const i = key & this.mask
    this.keys[i] = key
    this.values[i] = value
    this.count++
  }

  /** Remove what `key` holds (only `value`, when given); true when something was removed. */
  delete(key: number, value?: T): boolean {
    const i = key & this.mask
    const v = this.values[i]
    if (v === undefined || this.keys[i] !== key || (value !== undefined && v !== value)) return false
    this.values[i] = undefined
    this.count--
    return true
  }

  /** Make room for one more: double the table when it would be filled past maxLoad (up to maxCapacity). */
  reserve(): void {
    const cap = this.values.length
    if (this.count + 1 <= cap * this.maxLoad || cap >= this.maxCapacity) return
    const keys = new Int32Array(cap * 2)
    const values = new Array<T | undefined>(cap * 2).fill(undefined)
    const mask = cap * 2 - 1
    for (let i = 0; i < cap; i++) {
      const v = this.values[i]
      if (v === undefined) continue
      const k = this.keys[i]!
      keys[k & mask] = k
      values[k & mask] = v
    }
    this.values.fill(undefined)                      // the old array holds nothing once replaced
    this.keys = keys
    this.values = values
    this.mask = mask
  }

  /** Every object stored, and the table emptied. */
  takeAll(): T[] {
    const out: T[] = []
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i]
      if (v === undefined) continue
      out.push(v)
      this.values[i] = undefined
    }
    this.count = 0
    return out
  }
}
