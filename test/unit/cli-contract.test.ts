import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyUserSig } from '../../src/auth/index.js';
import { ConfigError, loadConfig } from '../../src/config.js';

// SPEC.md §5 and the README's CLI: `presence start|usersig|chart`, flags over PRESENCE_* over the file.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = 1400000001;
const SECRET = 'cli-contract-secret';

/** Runs the CLI to its exit; the timeout only stops a CLI that wrongly went on to serve. */
function presence(...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, PRESENCE_LOG_LEVEL: 'silent' },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const usersig = (...extra: string[]) => presence('usersig', '--app', String(APP), '--secret', SECRET, ...extra);

const dir = mkdtempSync(join(tmpdir(), 'cli-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('cli contract: presence usersig', () => {
  it('cli contract - usersig prints a UserSig that verifies, valid for 86400 s by default', () => {
    const run = usersig('--user', 'bob');
    expect(run.status).toBe(0);
    const ticket = verifyUserSig({ userSig: run.stdout.trim(), sdkAppID: APP, userID: 'bob', secretKey: SECRET });
    expect(ticket.expire).toBe(86400);
  });

  it('cli contract - usersig --help prints the usage and exits 0', () => {
    const run = presence('usersig', '--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('usersig  --app ID --secret S --user U [--expire SECONDS]');
  });

  it('cli contract - a mistyped option is a usage error: exit 2 with the usage', () => {
    const run = usersig('--userid', 'bob');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("'--userid'");
    expect(run.stderr).toContain('usersig  --app ID --secret S --user U [--expire SECONDS]');
  });

  it('cli contract - an option without its value is a usage error: exit 2', () => {
    expect(presence('start', '--port').status).toBe(2);
    expect(presence('chart', 'svg').status).toBe(2);
  });

  it('cli contract - usersig refuses an --expire no node accepts (over 180 days)', () => {
    const longest = usersig('--user', 'bob', '--expire', String(180 * 86400));
    expect(longest.status).toBe(0);
    expect(verifyUserSig({ userSig: longest.stdout.trim(), sdkAppID: APP, userID: 'bob', secretKey: SECRET }).expire).toBe(
      180 * 86400,
    );
    const tooLong = usersig('--user', 'bob', '--expire', String(180 * 86400 + 1));
    expect(tooLong.status).toBe(2);
    expect(tooLong.stdout).toBe('');
    expect(tooLong.stderr).toContain('--expire');
  });

  it('cli contract - usersig refuses a userID that can never log in (6017)', () => {
    for (const user of ['bob smith', 'x'.repeat(33), 'bö']) {
      const run = usersig('--user', user);
      expect(run.status, user).toBe(2);
      expect(run.stdout, user).toBe('');
      expect(run.stderr, user).toContain('--user');
    }
  });
});

describe('cli contract: presence start configuration', () => {
  it('cli contract - an empty port is refused, not a random port', () => {
    expect(() => loadConfig({}, { PRESENCE_PORT: '' })).toThrow(ConfigError);
    expect(() => loadConfig({ port: '' }, {})).toThrow(ConfigError);
    expect(loadConfig({}, { PRESENCE_PORT: '8081' }).port).toBe(8081);
    expect(loadConfig({}, {}).port).toBe(8080);
    expect(loadConfig({ port: '0' }, {}).port).toBe(0);
  });

  it('cli contract - a config file of the wrong shape is refused with a ConfigError naming the file', () => {
    const files = [
      configFile('null.json', 'null'),
      configFile('array.json', '[]'),
      configFile('apps.json', '{"apps":{"sdkAppID":1400000002}}'),
      configFile('nats.json', '{"nats":4222}'),
    ];
    for (const path of files) {
      expect(() => loadConfig({ config: path }, {}), path).toThrow(ConfigError);
      expect(() => loadConfig({ config: path }, {}), path).toThrow(path);
    }
  });

  it('cli contract - presence start says what is wrong with the config file and exits 1', () => {
    const run = presence('start', '--config', configFile('start-null.json', 'null'));
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('start-null.json');
  });
});
