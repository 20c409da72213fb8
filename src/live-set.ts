/**
 * The objects of connections open now (sockets, tunnels), to be counted, and reached all at once
 * at a stop or a reload: a slot each in an array, given back when the object goes (`add` returns
 * the slot to `remove` it by).
 *
 * Why not a Set: a Set that is added to and deleted from for every connection is rebuilt every
 * few dozen of them, and V8 leaves the table it replaces linked to the new one, still holding the
 * entries it had. Once such a table is in the old generation (a proxy's sets live as long as the
 * process), the young collector takes every socket the dead tables point at for live until the next
 * full collection: each connection's objects are copied and promoted (see dns/slot-table.ts, where
 * this was measured). A slot here is cleared when its object goes.
 */
export class LiveSet<T> {
  private readonly items: (T | undefined)[] = []
  private readonly free: number[] = []
  private count = 0

  get size(): number {
    return this.count
  }

  /** Keep `x`; its slot, for `remove`. */
  add(x: T): number {
    const i = this.free.length > 0 ? this.free.pop()! : this.items.length
    this.items[i] = x
    this.count++
    return i
  }

  /**
   * Give back the slot `add` returned for `x`. Nothing when `x` is not in it: removed already,
   * and the slot perhaps taken since by another (a second call must not remove that one).
   */
  remove(slot: number, x: T): void {
    if (this.items[slot] !== x) return
    this.items[slot] = undefined
    this.free.push(slot)
    this.count--
  }

  /** Is `x` kept in `slot`? */
  holds(slot: number, x: T): boolean {
    return this.items[slot] === x
  }

  /** The objects kept now, in a new array (what is done to them may remove them). */
  values(): T[] {
    const out: T[] = []
    for (const x of this.items) if (x !== undefined) out.push(x)
    return out
  }
}
