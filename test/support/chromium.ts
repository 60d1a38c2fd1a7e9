import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`.ci/run` installs it), or the one `PRESENCE_CHROMIUM` names. */
const CHROMIUM = process.env.PRESENCE_CHROMIUM ?? '/usr/bin/chromium';
// As root in a sandbox without network: no sandbox, no GPU, none of Chromium's own traffic.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Headless Chromium for the dashboard's browser tests, driven by playwright-core. */
export const launchChromium = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
