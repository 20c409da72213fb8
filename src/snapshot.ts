import { loadLists } from './match/load-lists.js'
import { createPolicy } from './policy/decide.js'
import type { Config, ConfigWarning, Snapshot } from './snapshot-types.js'

/** Remote list contents fetched by the list refresher: list name → texts with their source. */
export type ExtraTexts = Readonly<Record<string, readonly { source: string; text: string }[]>>

/** Build the immutable snapshot every listener reads: config, lists, policy. Throws AppError on an unreadable list. */
export function buildSnapshot(config: Config, opts: { extraTexts?: ExtraTexts; now?: () => number } = {}): Snapshot {
  const { matcher, infos, warnings } = loadLists(config.lists, { extraTexts: opts.extraTexts })
  const policy = createPolicy({
    matcher,
    listActions: Object.fromEntries(Object.entries(config.lists).map(([k, v]) => [k, v.action])),
    groups: config.groups,
  })
  return Object.freeze({ config, policy, lists: infos, warnings, loadedAt: (opts.now ?? Date.now)() })
}

/** The config's warnings, then the lists' (what validate and lists show; each is FILE:LINE and a message). */
export function allWarnings(s: Snapshot): readonly ConfigWarning[] {
  return [...s.config.warnings, ...s.warnings]
}
