// Two-factor sign-in as a person uses it, in headless Chromium with JavaScript off (the portal
// needs none): an owner created with the CLI signs in with the password, is sent to enrolment
// (owners must have a second factor by default), reads the key for manual entry from the page,
// computes the code the way an authenticator app does (RFC 6238, HMAC-SHA1, 30 s, 6 digits),
// turns TOTP on and sees the recovery codes once; signs out; signs in again with the password and
// a TOTP code. A time step that was used is refused, so the second sign-in uses the next step's
// code (the server accepts one step of skew). Screenshots in e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');
const EMAIL = 'ada.owner@example.com';
const PASSWORD = 'correct horse battery staple';
// The account is created in this server's database with the CLI.
const skip = process.env.BASE_URL ? 'needs a server of its own (BASE_URL is set)' : false;

let server;
let browser;

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  // Cheap hashing: behaviour, not cost, is tested here. Owners must enrol (the default).
  const env = { VANTUS_ARGON2_MEMORY_KIB: '8192', VANTUS_ARGON2_ITERATIONS: '1' };
  server = await startServer({ env });
  const bin = process.env.VANTUS_BIN || path.join(repo, 'target', 'debug', 'vantus');
  const created = spawnSync(
    bin,
    ['user', 'create', '--email', EMAIL, '--role', 'owner', '--name', 'Ada Lovelace', '--password-stdin'],
    {
      env: { PATH: process.env.PATH, VANTUS_DATA_DIR: path.dirname(server.dbPath), RUST_LOG: 'warn', ...env },
      input: `${PASSWORD}\n`,
      encoding: 'utf8',
    },
  );
  assert.equal(created.status, 0, created.stderr);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// --- RFC 6238 in Node ------------------------------------------------------------------------

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(ch);
    assert.ok(i >= 0, `base32 character ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The 6-digit code for the time step `step` (unix seconds / 30). */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const number = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(number).padStart(6, '0');
}

const currentStep = () => Math.floor(Date.now() / 1000 / 30);

// --- the test ----------------------------------------------------------------------------------

async function signInWithPassword(page) {
  await page.goto(`${server.base}/admin/login`);
  await page.locator('#email').fill(EMAIL);
  await page.locator('#password').fill(PASSWORD);
  await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
}

test('an owner enrols TOTP, signs out, and signs in again with a code', { skip }, async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, javaScriptEnabled: false, colorScheme: 'light' });
  const page = await context.newPage();

  // The password alone leads to enrolment, and nowhere else.
  await signInWithPassword(page);
  assert.equal(new URL(page.url()).pathname, '/admin/account/mfa');
  assert.match(await page.locator('#must-enrol').textContent(), /requires two-factor sign-in/);
  await page.goto(`${server.base}/admin`);
  assert.equal(new URL(page.url()).pathname, '/admin/account/mfa', 'the dashboard waits for enrolment');

  assert.equal(await page.locator('.qr-code svg').count(), 1, 'an inline SVG QR code');
  const secret = base32Decode(await page.locator('#manual-secret').textContent());
  assert.equal(secret.length, 20);
  await page.screenshot({ path: path.join(artifacts, 'mfa-enrol-1440.png'), fullPage: true });

  const enrolStep = currentStep();
  await page.locator('#code').fill(totp(secret, enrolStep));
  await Promise.all([page.waitForNavigation(), page.locator('form[action="/admin/account/mfa"] button').click()]);
  assert.match(await page.locator('#mfa-status').textContent(), /Two-factor sign-in is on/);
  const codes = await page.locator('.recovery-codes code').allTextContents();
  assert.equal(codes.length, 10);
  for (const c of codes) assert.match(c, /^[0-9a-z]{4}(-[0-9a-z]{4}){3}$/);
  await page.screenshot({ path: path.join(artifacts, 'mfa-recovery-codes-1440.png'), fullPage: true });

  // The portal opens now; sign out.
  await page.goto(`${server.base}/admin`);
  assert.equal(new URL(page.url()).pathname, '/admin');
  await Promise.all([page.waitForNavigation(), page.locator('form[action="/admin/logout"] button').click()]);
  assert.equal(new URL(page.url()).pathname, '/admin/login');

  // Password, then the second step: the used step is refused, the next one signs in.
  await signInWithPassword(page);
  assert.equal(new URL(page.url()).pathname, '/admin/login/mfa');
  await page.screenshot({ path: path.join(artifacts, 'mfa-second-step-1440.png'), fullPage: true });
  await page.locator('#code').fill(totp(secret, enrolStep));
  await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
  assert.equal(new URL(page.url()).pathname, '/admin/login/mfa');
  assert.match(await page.locator('#code-error').textContent(), /The code is not right/);
  assert.equal(await page.locator('#code').getAttribute('aria-invalid'), 'true');
  await page.screenshot({ path: path.join(artifacts, 'mfa-code-refused-1440.png'), fullPage: true });

  const next = Math.max(enrolStep + 1, currentStep());
  await page.locator('#code').fill(totp(secret, next));
  await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
  assert.equal(new URL(page.url()).pathname, '/admin');
  assert.match(await page.locator('body').textContent(), /Signed in as Ada Lovelace \(owner\)/);
  await page.screenshot({ path: path.join(artifacts, 'mfa-signed-in-1440.png'), fullPage: true });
  await context.close();
});
