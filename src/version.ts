import { readFileSync } from 'node:fs'

/**
 * The version of this tunnelguard, from its package.json (one level above `dist/` and `src/`):
 * `tunnelguard --version`, the `started` line's `service.version`, `tunnelguard_build_info`.
 * A responder matching a log to a build, or an operator checking what a fleet runs, reads it there.
 */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
