/** Which selections a Sigma condition uses as matches (positive) and which only negated (filters). */
export interface Polarity {
  readonly positive: ReadonlySet<string>
  readonly negative: ReadonlySet<string>
}

const QUANTIFIERS = /^(\d+|all|any)$/i

/** Selection names a `1 of x*` / `all of them` pattern stands for. */
function expand(pattern: string, names: readonly string[]): string[] {
  if (pattern.toLowerCase() === 'them') return [...names]
  const re = new RegExp(`^${pattern.split('*').map(p => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)
  return names.filter(n => re.test(n))
}

/**
 * Read the condition(s) of a rule: `and`, `or`, `not`, parentheses, `N of pattern`, `all of them`.
 * Throws an Error saying what it could not read (aggregations `|`, unbalanced parentheses).
 */
export function conditionPolarity(conditions: readonly string[], names: readonly string[]): Polarity {
  const positive = new Set<string>()
  const negative = new Set<string>()
  for (const cond of conditions) {
    const toks = cond.match(/\(|\)|[^\s()]+/g) ?? []
    let pos = 0
    const peek = (): string | undefined => toks[pos]?.toLowerCase()
    const mark = (list: readonly string[], neg: boolean): void => {
      for (const n of list) (neg ? negative : positive).add(n)
    }
    const atom = (neg: boolean): void => {
      const t = toks[pos++]
      if (t === undefined) throw new Error(`condition "${cond}" ends too early`)
      if (t === '(') {
        or(neg)
        if (toks[pos++] !== ')') throw new Error(`condition "${cond}" has an unclosed "("`)
      } else if (QUANTIFIERS.test(t) && peek() === 'of') {
        pos++
        const pat = toks[pos++]
        if (pat === undefined) throw new Error(`condition "${cond}" ends after "of"`)
        mark(expand(pat, names), neg)
      } else if (/^[\w*.-]+$/.test(t) && !['and', 'or', 'not', 'of'].includes(t.toLowerCase())) {
        mark(names.includes(t) ? [t] : [], neg)
      } else throw new Error(`condition "${cond}": unexpected "${t}"`)
    }
    const not = (neg: boolean): void => {
      if (peek() === 'not') { pos++; not(!neg) } else atom(neg)
    }
    const and = (neg: boolean): void => {
      not(neg)
      while (peek() === 'and') { pos++; not(neg) }
    }
    const or = (neg: boolean): void => {
      and(neg)
      while (peek() === 'or') { pos++; and(neg) }
    }
    or(false)
    if (pos < toks.length) throw new Error(`condition "${cond}": unexpected "${toks[pos]}"`)
  }
  return { positive, negative }
}
