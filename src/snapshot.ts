import { loadLists, loadListsAsync, type LoadedLists } from './match/load-lists.js'
import { createPolicy } from './policy/decide.js'
import type { Config, ConfigWarning, Snapshot } from './snapshot-types.js'

/** Remote list contents fetched by the list refresher: list name → texts with their source. */
export type ExtraTexts = Readonly<Record<string, readonly { source: string; text: string }[]>>

/**
 * Build the immutable snapshot every listener reads: config, lists, policy. Throws AppError on an
 * unreadable list. `pipes`: a list file may be a FIFO or pipe (the one-shot commands; see readTextFile).
 */
export function buildSnapshot(config: Config, opts: { extraTexts?: ExtraTexts; now?: () => number; pipes?: boolean } = {}): Snapshot {
  return assemble(config, loadLists(config.lists, { extraTexts: opts.extraTexts, pipes: opts.pipes }), opts.now)
}

/**
 * buildSnapshot in a running process (a reload): the lists are read and parsed a slice at a time
 * (loadListsAsync), so the listeners keep answering while it runs. Rejects with the same AppError.
 */
export async function buildSnapshotAsync(config: Config, opts: { extraTexts?: ExtraTexts; now?: () => number; sliceMs?: number; signal?: AbortSignal } = {}): Promise<Snapshot> {
  return assemble(config, await loadListsAsync(config.lists, { extraTexts: opts.extraTexts, sliceMs: opts.sliceMs, signal: opts.signal }), opts.now)
}

function assemble(config: Config, { matcher, infos, warnings }: LoadedLists, now: (() => number) | undefined): Snapshot {
  const policy = createPolicy({
    matcher,
    listActions: Object.fromEntries(Object.entries(config.lists).map(([k, v]) => [k, v.action])),
    groups: config.groups,
  })
  return Object.freeze({ config, policy, lists: infos, warnings, loadedAt: (now ?? Date.now)() })
}

/** The config's warnings, then the lists' (what validate and lists show; each is FILE:LINE and a message). */
export function allWarnings(s: Snapshot): readonly ConfigWarning[] {
  return [...s.config.warnings, ...s.warnings]
}
