import { Gauge, type Registry } from 'prom-client'

/** The event-loop delay histogram's sampling interval (ms): an idle process wakes ten times a second for it, not prom-client's hundred. */
export const LOOP_DELAY_RESOLUTION_MS = 100

/** prom-client's gauges of the delay histogram, and whether the sampling interval is in their value. */
const FIGURES: readonly (readonly [string, boolean])[] = [
  ['nodejs_eventloop_lag_min_seconds', true], ['nodejs_eventloop_lag_max_seconds', true],
  ['nodejs_eventloop_lag_mean_seconds', true], ['nodejs_eventloop_lag_stddev_seconds', false],
  ['nodejs_eventloop_lag_p50_seconds', true], ['nodejs_eventloop_lag_p90_seconds', true],
  ['nodejs_eventloop_lag_p99_seconds', true],
]

/**
 * Node's delay histogram (monitorEventLoopDelay) records the time between two of its timer's
 * runs, the sampling interval included: an idle process read 0.1 s of "lag" at every percentile.
 * prom-client's gauges of it are replaced by the same names with the interval taken off (never
 * below 0; the standard deviation as it is). They read prom-client's own, which its
 * `nodejs_eventloop_lag_seconds` sets earlier in the same scrape (it was registered first).
 */
export function loopDelayWithoutInterval(registry: Registry, resolutionMs = LOOP_DELAY_RESOLUTION_MS): void {
  const interval = resolutionMs / 1000
  for (const [name, offset] of FIGURES) {
    const raw = registry.getSingleMetric(name) as Gauge | undefined
    /* c8 ignore next - every Node this runs on (≥ 20) has monitorEventLoopDelay, so prom-client registers them all */
    if (raw === undefined) continue
    registry.removeSingleMetric(name)
    new Gauge({
      name, help: `${(raw as unknown as { help: string }).help} (the sampling interval taken off)`, registers: [registry],
      async collect() {
        const v = (await raw.get()).values[0]!.value            // a gauge without labels always has its one value
        this.set(offset ? Math.max(0, v - interval) : v)
      },
    })
  }
}
