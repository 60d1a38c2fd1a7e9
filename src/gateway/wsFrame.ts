/**
 * A payload framed as one final, unmasked, binary WebSocket frame (RFC 6455 §5.2), header
 * and payload in one buffer. A push fanned out to many sockets is framed once and each
 * socket gets the same bytes in a single write; `ws` would frame it anew per socket (a
 * header buffer, a cork and a writev of two buffers each). The payload is given in parts,
 * copied in one after another.
 */
export function binaryFrame(parts: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x82; // FIN, opcode 2 (binary)
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  let offset = headerLength;
  for (const part of parts) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}
