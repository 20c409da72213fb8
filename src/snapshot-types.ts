import type { ParsedConfig } from './config/schema.js'
import type { Entry, ListWarning } from './match/types.js'
import type { Action, Decision, Where } from './policy/types.js'

/** A list as configured: its action and (resolved, absolute) sources. */
export interface ListConfig {
  readonly files: readonly string[]
  readonly urls: readonly string[]
  readonly refresh: number
  readonly maxBytes: number
  readonly action: Action
}

/** Something in a valid config that runs but should be changed: `source` is FILE:LINE, `message` the path, what and how to fix. */
export interface ConfigWarning {
  readonly source: string
  readonly message: string
}

/** The config after defaults: upstreams and lists always present, paths absolute, frozen. */
export type Config = Readonly<Omit<ParsedConfig, 'lists' | 'dns'>> & {
  readonly dns: Readonly<Omit<ParsedConfig['dns'], 'upstreams'>> & {
    readonly upstreams: readonly string[]
    /** The PEM certificates read from dns.tlsCaFile (its path made absolute) when the config was loaded. */
    readonly tlsCa?: string
  }
  readonly lists: Readonly<Record<string, ListConfig>>
  /** Where the config came from ('built-in' or a file path). */
  readonly source: string
  /** What validate, lists and serve warn about in this config (a sinkhole capture nothing reaches). */
  readonly warnings: readonly ConfigWarning[]
}

export interface ListInfo {
  readonly name: string
  readonly action: Action
  readonly sources: readonly string[]
  readonly entries: number
  readonly allows: number
}

export interface Policy {
  /** Pure and synchronous: the decision for `name` (raw or normalized) seen at `where` from `client`. */
  decide(client: string, name: string, where: Where): Decision
  /** The group a client belongs to ('default' when none). */
  groupOf(client: string): string
  readonly entries: number
}

/** Everything a listener needs, immutable; reload builds a new one and swaps it. */
export interface Snapshot {
  readonly config: Config
  readonly policy: Policy
  readonly lists: readonly ListInfo[]
  readonly warnings: readonly ListWarning[]
  readonly loadedAt: number
}
export type { Entry }
