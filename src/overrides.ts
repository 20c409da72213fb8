/** The command line's listeners and upstreams (serve's --dns, --proxy, --admin, --upstream) put over the config's, at the start and at each reload. */
import { NO_LISTENERS } from './config/warnings.js'
import type { Config } from './snapshot-types.js'

/** What the command line overrides in the config. */
export interface Overrides {
  readonly dns?: readonly string[]
  readonly proxy?: readonly string[]
  readonly admin?: string
  readonly upstreams?: readonly string[]
}

export function applyOverrides(c: Config, o: Overrides): Config {
  // listeners given on the command line: the file's "listens on nothing" no longer holds
  const listens = (o.dns?.length ?? 0) + (o.proxy?.length ?? 0) > 0
  // --dns replaces the file's dns.listen: what was said about its entries no longer holds either
  const gone = (w: Config['warnings'][number]) => (listens && w.message.endsWith(NO_LISTENERS)) || (o.dns !== undefined && w.message.startsWith('dns.listen['))
  return Object.freeze({
    ...c,
    warnings: c.warnings.some(gone) ? Object.freeze(c.warnings.filter(w => !gone(w))) : c.warnings,
    dns: Object.freeze({ ...c.dns, listen: o.dns ? [...o.dns] : c.dns.listen, upstreams: o.upstreams ?? c.dns.upstreams }),
    proxy: Object.freeze({ ...c.proxy, listen: o.proxy ? [...o.proxy] : c.proxy.listen }),
    admin: Object.freeze({ ...c.admin, listen: o.admin ?? c.admin.listen }),
  })
}
