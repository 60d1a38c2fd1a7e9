import { describe, expect, it } from 'vitest';
import { pathOf } from '../../src/admin/httpServer.js';

/** The parser's path, or undefined where it refuses the target. */
function byParser(target: string): string | undefined {
  try {
    return new URL(target, 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

describe('request path', () => {
  it('http path - plain targets are their path, the query cut off', () => {
    expect(pathOf('/ws')).toBe('/ws');
    expect(pathOf('/ws?token=1&x=/..')).toBe('/ws');
    expect(pathOf('/admin/apps/1400000001/users')).toBe('/admin/apps/1400000001/users');
    expect(pathOf(undefined)).toBe('/');
  });

  it('http path - a target the URL parser refuses has no path, and does not throw', () => {
    for (const target of ['//%', '// ', '//[', '//a b']) expect(pathOf(target), target).toBeUndefined();
  });

  it('http path - every target gives the path a URL parser gives', () => {
    const fixed = ['//%', '/', '/ws/', '//ws', '/./ws', '/ws/.', '/ws/..', '/a/../ws', '/ws/.hidden', '/ws..', '/%77s', '/ws#x', '/w s', '\\ws', '/ws\\x', 'ws', '/ws?', '/ws?#', '/ü', '/ws;x'];
    for (const target of fixed) expect(pathOf(target), target).toBe(byParser(target));
    const alphabet = ['/', '.', 'w', 's', '%', '2', 'e', '?', '#', '\\', ' ', '-', '_', 'ü', ';'];
    let state = 7;
    const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8);
    for (let i = 0; i < 5000; i++) {
      let target = '/';
      for (let n = next() % 12; n > 0; n--) target += alphabet[next() % alphabet.length];
      expect(pathOf(target), JSON.stringify(target)).toBe(byParser(target));
    }
  });
});
