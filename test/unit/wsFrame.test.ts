import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { binaryFrame } from '../../src/gateway/wsFrame.js';

// ws's frame parser; the package exports it, its type declarations do not.
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (options: { isServer: boolean; allowSynchronousEvents: boolean }) => Writable;
};

/** What `ws`'s own parser, as a client reads a server's frames, makes of `bytes`. */
function parse(bytes: Uint8Array): { messages: Buffer[]; error?: Error } {
  const receiver = new Receiver({ isServer: false, allowSynchronousEvents: true });
  const messages: Buffer[] = [];
  let error: Error | undefined;
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(true);
    messages.push(Buffer.from(data));
  });
  receiver.on('error', (e: Error) => (error = e));
  receiver.write(bytes);
  return error ? { messages, error } : { messages };
}

const payload = (length: number) => Buffer.from(Array.from({ length }, (_, i) => i % 251));

describe('wsFrame', () => {
  // Each length where the header changes form (RFC 6455 §5.2: 7-bit, 16-bit, 64-bit lengths).
  it.each([0, 1, 125, 126, 65_535, 65_536, 300_000])('wsFrame - a %i-byte payload is one binary frame a WebSocket client reads back whole', (length) => {
    const bytes = payload(length);
    const frame = binaryFrame([bytes]);
    expect(frame.length).toBe(length + (length < 126 ? 2 : length < 65_536 ? 4 : 10));
    const { messages, error } = parse(frame);
    expect(error).toBeUndefined();
    expect(messages).toEqual([bytes]);
  });

  it('wsFrame - frames written back to back are read as separate messages, in order', () => {
    const first = payload(3);
    const second = payload(200);
    const { messages } = parse(Buffer.concat([binaryFrame([first]), binaryFrame([second]), binaryFrame([first])]));
    expect(messages).toEqual([first, second, first]);
  });

  it('wsFrame - a payload given in parts is one frame of their bytes in order', () => {
    const parts = [payload(100), payload(0), payload(30)];
    expect(parse(binaryFrame(parts)).messages).toEqual([Buffer.concat(parts)]);
  });
});
