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
 * several messages per read). Holds at most one partial frame (≤ 65,537 octets).
 */
export class FrameReader {
  private pending: Buffer | undefined

  /** Feed a chunk; `onFrame` is called for each complete message, in order. */
  push(chunk: Buffer, onFrame: (msg: Buffer) => void): void {
    let buf = chunk
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    let pos = 0
    while (buf.length - pos >= 2) {
      const len = buf.readUInt16BE(pos)
      if (buf.length - pos - 2 < len) break
      onFrame(buf.subarray(pos + 2, pos + 2 + len))
      pos += 2 + len
    }
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos))
  }

  /** Bytes of an incomplete frame held (0 when between frames). */
  get buffered(): number {
    return this.pending?.length ?? 0
  }
}
