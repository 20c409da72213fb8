/** RFC 1035/7766 TCP framing: a 2-octet length before each message. */

/** Prefix a message with its length. */
export function frame(msg: Buffer): Buffer {
  const b = Buffer.allocUnsafe(msg.length + 2)
  b.writeUInt16BE(msg.length, 0)
  msg.copy(b, 2)
  return b
}

/**
 * Reassembles frames from a byte stream that arrives in pieces (a length split over two reads,
 * several messages per read). A frame whole within one read is handed out as a view of it; one
 * split across reads gets a buffer of its announced length, allocated once, that each read is
 * appended to (no copy of what came before: a message dripped one octet at a time costs the
 * same per octet whatever its size). Holds at most one partial frame (≤ 65,537 octets) and the
 * rest of the last read.
 *
 * Pull-style: `feed` a read, then take frames with `next` as many as wanted; what is not taken
 * stays for later calls (a reader may stop mid-read and go on once it can take more).
 */
export class FrameReader {
  /** The read being consumed, and how far (undefined once all of it is taken). */
  private chunk: Buffer | undefined
  private pos = 0
  /** The first octet of a length split over two reads (-1: none). */
  private lenHi = -1
  /** The frame being filled, and how much of it has come. */
  private msg: Buffer | undefined
  private filled = 0
  private count = 0

  /** Add a read. Octets of an earlier read not yet taken stay in front of it. */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunk = this.chunk ? Buffer.concat([this.chunk.subarray(this.pos), chunk]) : chunk
    this.pos = 0
  }

  /** The next complete frame, or undefined when the reads fed so far hold no more. */
  next(): Buffer | undefined {
    const c = this.chunk
    if (!c) return undefined
    for (;;) {
      if (this.msg) {
        const m = this.msg
        const take = Math.min(m.length - this.filled, c.length - this.pos)
        c.copy(m, this.filled, this.pos, this.pos + take)
        this.filled += take
        this.pos += take
        this.release()
        if (this.filled < m.length) return undefined
        this.msg = undefined
        this.count++
        return m
      }
      const avail = c.length - this.pos               // ≥ 1: a read is dropped once all of it is taken
      let len: number
      if (this.lenHi >= 0) {
        len = (this.lenHi << 8) | c[this.pos]!
        this.lenHi = -1
        this.pos += 1
      } else if (avail >= 2) {
        len = c.readUInt16BE(this.pos)
        if (avail - 2 >= len) {                      // whole in this read: a view of it, no copy
          const m = c.subarray(this.pos + 2, this.pos + 2 + len)
          this.pos += 2 + len
          this.release()
          this.count++
          return m
        }
        this.pos += 2
      } else {
        this.lenHi = c[this.pos]!
        this.pos += 1
        this.release()
        return undefined
      }
      this.msg = Buffer.allocUnsafe(len)
      this.filled = 0
    }
  }

  /** Drop the read once all of it is taken (a frame handed out as a view keeps its own reference). */
  private release(): void {
    if (this.pos === this.chunk!.length) {
      this.chunk = undefined
      this.pos = 0
    }
  }

  /** Feed a chunk; `onFrame` is called for each complete message, in order. */
  push(chunk: Buffer, onFrame: (msg: Buffer) => void): void {
    this.feed(chunk)
    for (let m = this.next(); m !== undefined; m = this.next()) onFrame(m)
  }

  /** Octets fed and not yet looked at (left by a caller that stopped taking frames). */
  get unread(): number {
    return this.chunk ? this.chunk.length - this.pos : 0
  }

  /** Octets of an incomplete frame held, its length included (0 when between frames). */
  get buffered(): number {
    return this.lenHi >= 0 ? 1 : this.msg ? 2 + this.filled : 0
  }

  /** Frames completed so far: a new value means that the incomplete frame, if any, is a new one. */
  get frames(): number {
    return this.count
  }
}
