#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runChart } from './chart.js';
import { runStart } from './start.js';
import { runUserSig } from './usersig.js';

const USAGE = `presence <command> [options]

commands:
  start    [--port N] [--host H] [--nats nats://h:p[,...]] [--node-id ID] [--config FILE]
           run a node (embedded in-process transport without --nats)
  usersig  --app ID --secret S --user U [--expire SECONDS]
           print a UserSig for a user
  chart    [--format mermaid|dot|svg|json] [--out FILE] [--write-doc FILE.md]
           the user presence state machine, drawn from its definition
`;

const COMMANDS = new Set(['start', 'usersig', 'chart']);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && COMMANDS.has(command) && rest.some((arg) => arg === '--help' || arg === '-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(command, rest);
  } catch (error) {
    // A mistyped option is the user's to fix, like any other usage error (exit 2), not a failure.
    if (!(error instanceof TypeError && String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_'))) throw error;
    process.stderr.write(`presence ${command}: ${error.message}\n\n${USAGE}`);
    return 2;
  }
}

async function run(command: string | undefined, rest: string[]): Promise<number> {
  switch (command) {
    case 'start': {
      const { values } = parseArgs({
        args: rest,
        options: {
          port: { type: 'string' },
          host: { type: 'string' },
          nats: { type: 'string' },
          'node-id': { type: 'string' },
          config: { type: 'string' },
        },
      });
      return runStart({ ...values, nodeId: values['node-id'] });
    }
    case 'usersig': {
      const { values } = parseArgs({
        args: rest,
        options: { app: { type: 'string' }, secret: { type: 'string' }, user: { type: 'string' }, expire: { type: 'string' } },
      });
      return runUserSig(values);
    }
    case 'chart': {
      const { values } = parseArgs({
        args: rest,
        options: { format: { type: 'string' }, out: { type: 'string' }, 'write-doc': { type: 'string' } },
      });
      return runChart({ ...values, writeDoc: values['write-doc'] });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`presence: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
