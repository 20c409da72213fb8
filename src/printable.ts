/**
 * Text from outside (a list line, a name given to `check`) made safe to print: the C0 controls
 * but the newline, DEL, C1 controls (ESC starts terminal escape sequences: a pasted name could
 * retitle or recolour the terminal) and the invisible format characters that change how a line
 * reads (bidirectional overrides and isolates, zero-width characters, line separators, the BOM)
 * written as \xNN or \uNNNN. (report's escapeCell escapes the same characters, and the newline
 * and the backslash too: a table cell is one line.)
 */
const UNPRINTABLE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g

export function printable(s: string): string {
  return s.replace(UNPRINTABLE, c => {
    const n = c.charCodeAt(0)
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`
  })
}
