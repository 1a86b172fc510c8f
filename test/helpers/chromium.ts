/**
 * Where the browser tests find headless Chromium, and what happens when there is none: locally
 * they are skipped with a message saying how to get one; in CI (env CI set, not "false"/"0") a
 * missing Chromium is an error, so the browser tests can never be skipped there silently.
 */
import fs from 'node:fs';

/** Debian's package (`apt-get install -y chromium`), unless PIXDEX_CHROMIUM names another binary. */
export const CHROMIUM = process.env.PIXDEX_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a headless run that talks to nothing but the test server. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** True when running in CI (the CI variable set by .ci/run's callers and by every CI service). */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * The `skip` option of a browser test suite: false when Chromium is there; a message when it is
 * missing locally; throws when it is missing in CI (the test file fails with that message).
 */
export function chromiumSkip(env: NodeJS.ProcessEnv = process.env): false | string {
  if (fs.existsSync(CHROMIUM)) return false;
  const how = 'apt-get install -y chromium, or set PIXDEX_CHROMIUM to a Chromium binary';
  if (inCI(env)) throw new Error(`CI=${env.CI}: no Chromium at ${CHROMIUM}; the browser tests must run in CI (${how})`);
  return `no Chromium at ${CHROMIUM}: browser test skipped (${how})`;
}
