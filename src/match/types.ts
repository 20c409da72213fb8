/** How a list entry matches a normalized name (whole labels only). */
export type MatchKind = 'exact' | 'domain' | 'subdomains'

/** Attribution carried from a Sigma rule into every decision it causes (DRL 1.1 asks for it). */
export interface SigmaRef {
  readonly id: string
  readonly title: string
  readonly author: string
}

/** One list entry, as loaded. `name` is normalized; `pattern` is how the entry reads in logs. */
export interface Entry {
  readonly list: string
  readonly name: string
  readonly kind: MatchKind
  readonly allow: boolean
  readonly pattern: string
  readonly source: string          // file:line (or url:line)
  readonly sigma?: SigmaRef
}

/** A problem found while loading a list: an entry not loaded, or loaded narrower than written. */
export interface ListWarning {
  readonly source: string          // file:line
  readonly message: string
}

/** Looks up every entry that matches a normalized name. */
export interface Matcher {
  readonly size: number
  /**
   * Entries matching `name` (already normalized). The returned array is owned by the matcher
   * and reused: it is valid only until the next call. Empty (shared) on a miss.
   */
  lookup(name: string): readonly Entry[]
}
