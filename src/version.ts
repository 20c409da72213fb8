import { readFileSync } from 'node:fs'

/**
 * The version of this tunnelguard, from its package.json (one level above `dist/` and `src/`):
 * `tunnelguard --version`, the `started` line's `service.version`, `tunnelguard_build_info`.
 * A responder matching a log to a build, or an operator checking what a fleet runs, reads it there.
 * A build copied deeper into the checkout (the bench's `bench/out/dist-NAME`) finds the project's
 * package.json further up; a build with none above it says `unknown` rather than not starting.
 */
export const VERSION: string = findVersion(new URL('../package.json', import.meta.url))

export function findVersion(first: URL, levels = 4): string {
  let url = first
  for (let i = 0; i < levels; i++) {
    try {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'tunnelguard' && typeof pkg.version === 'string') return pkg.version
    } catch { /* not there, or not JSON: look one level up */ }
    const up = new URL('../package.json', url)
    if (up.href === url.href) break
    url = up
  }
  return 'unknown'
}
