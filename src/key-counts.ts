/**
 * Things open (connections) counted per key: a client's address, or its prefix (limits). A key
 * whose count drops to nought is forgotten, so the map holds only keys with something open.
 */
export class KeyCounts {
  readonly #open = new Map<string, number>()

  /** Count one more under `key`, unless it has `max` open already (then false). */
  add(key: string, max: number): boolean {
    const n = this.#open.get(key) ?? 0
    if (n >= max) return false
    this.#open.set(key, n + 1)
    return true
  }

  /** One that `add` counted has closed: `key` is the one it was counted under, whatever a reload changed since. */
  remove(key: string): void {
    const n = this.#open.get(key)! - 1
    if (n === 0) this.#open.delete(key)
    else this.#open.set(key, n)
  }
}
