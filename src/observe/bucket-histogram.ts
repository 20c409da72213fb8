/** A histogram kept as plain counts per bucket, registered as a custom prom-client metric (the upstreams' response times). */

/**
 * A Prometheus histogram with one label, kept as plain counts per bucket: prom-client's
 * Histogram hashes its label object on every observation, once per forwarded query here. It
 * is registered as a custom metric (prom-client reads `get()`), and prints as prom-client's does.
 */
export class BucketHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, Float64Array>()   // per label value: a count per bucket (+Inf last), then the sum

  constructor(readonly name: string, readonly help: string, private readonly label: string, private readonly bounds: readonly number[]) {}

  observe(value: string, x: number): void {
    let cells = this.series.get(value)
    if (!cells) { cells = new Float64Array(this.bounds.length + 2); this.series.set(value, cells) }
    let i = 0
    while (i < this.bounds.length && x > this.bounds[i]!) i++
    cells[i]! += 1
    cells[this.bounds.length + 1]! += x
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { metricName: string; labels: Record<string, string | number>; value: number }[] }> {
    const values = []
    const n = this.bounds.length
    for (const [v, cells] of this.series) {
      let cum = 0
      for (let i = 0; i <= n; i++) {
        cum += cells[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { le: i < n ? this.bounds[i]! : '+Inf', [this.label]: v }, value: cum })
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: v }, value: cells[n + 1]! })
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: v }, value: cum })
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values })
  }

  reset(): void {
    this.series.clear()
  }
}
