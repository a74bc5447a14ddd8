// Passkeys as a person uses them, in headless Chromium with its virtual authenticator (the
// DevTools protocol's WebAuthn domain: a CTAP2 platform authenticator with resident keys and
// user verification that always succeeds): create an owner with the CLI, sign in with the
// password, add a passkey on the account page, sign out, and sign in with the passkey alone.
// Also: without JavaScript the sign-in page explains that passkeys need it. Screenshots in
// e2e/artifacts/.
//
// WebAuthn needs a secure context and a relying party id that is a domain: the server is
// started on a known port with VANTUS_PUBLIC_URL=http://localhost:PORT and the browser visits
// that address (localhost is a secure context over plain HTTP). VANTUS_MFA_REQUIRED_ROLES is
// set empty so an owner is not asked to enrol a second factor first (unknown variables are
// ignored by servers that do not have that setting yet).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { HtmlValidate } from 'html-validate';

import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');
const skip = process.env.BASE_URL ? 'needs a server of its own (BASE_URL is set)' : false;
const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery staple';
const CHEAP_HASHING = { VANTUS_ARGON2_MEMORY_KIB: '8192', VANTUS_ARGON2_ITERATIONS: '1' };

let server;
let browser;
let site;

/** A port nobody listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  site = `http://localhost:${port}`;
  server = await startServer({
    env: {
      VANTUS_LISTEN: `127.0.0.1:${port}`,
      VANTUS_PUBLIC_URL: site,
      VANTUS_MFA_REQUIRED_ROLES: '',
      ...CHEAP_HASHING,
    },
  });
  const bin = process.env.VANTUS_BIN || path.join(repo, 'target', 'debug', 'vantus');
  execFileSync(bin, ['user', 'create', '--email', EMAIL, '--role', 'owner', '--name', 'Ada Lovelace', '--password-stdin'], {
    input: `${PASSWORD}\n`,
    env: { PATH: process.env.PATH, VANTUS_DATA_DIR: path.dirname(server.dbPath), RUST_LOG: 'warn', ...CHEAP_HASHING },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// The same rules as html.test.mjs, for the two pages that gained passkey markup.
const validator = new HtmlValidate({
  extends: ['html-validate:standard'],
  rules: { 'heading-level': ['error', { allowMultipleH1: false }], 'no-dup-id': 'error', 'valid-id': 'error' },
});

/** The page at `url` as the server sent it (with the context's cookies) is valid HTML5. */
async function assertValidHtml(context, url) {
  const html = await (await context.request.get(url, { headers: { accept: 'text/html' } })).text();
  const report = await validator.validateString(html, url);
  const problems = report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`));
  assert.deepEqual(problems, [], `HTML problems in ${url}:\n${problems.join('\n')}`);
}

function sql(query) {
  const out = execFileSync('sqlite3', ['-readonly', '-json', server.dbPath, query], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

test('without JavaScript the sign-in page says passkeys need it, and the password form works', { skip }, async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${site}/admin/login`);
  assert.match(await page.textContent('[data-passkey-login]'), /needs JavaScript/);
  assert.equal(await page.isVisible('button[data-passkey-action]'), false);
  await context.close();
});

test('register a passkey on the account page, sign out, sign in with the passkey alone', { skip }, async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  // The password first.
  await page.goto(`${site}/admin/login`);
  await page.fill('#email', EMAIL);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(`${site}/admin`), page.click('form.lead-form button[type=submit]')]);

  // Add a passkey.
  await page.goto(`${site}/admin/account`);
  assert.match(await page.textContent('main'), /You have no passkey yet/);
  await page.fill('#passkey_name', 'Virtual authenticator');
  await page.screenshot({ path: path.join(artifacts, 'passkeys-account-empty-1440.png'), fullPage: true });
  await page.click('button:has-text("Add a passkey")');
  await page.waitForSelector('table.passkeys td:has-text("Virtual authenticator")');
  await page.screenshot({ path: path.join(artifacts, 'passkeys-account-registered-1440.png'), fullPage: true });
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential');
  assert.equal(sql("SELECT count(*) AS n FROM audit_log WHERE action = 'passkey.registered'")[0].n, 1);
  await assertValidHtml(context, `${site}/admin/account`);
  await assertValidHtml(context, `${site}/admin/login`);

  // Sign out, then in with the passkey alone.
  await page.goto(`${site}/admin`);
  await Promise.all([page.waitForURL(`${site}/admin/login`), page.click('form[action="/admin/logout"] button')]);
  await page.waitForSelector('button:has-text("Sign in with a passkey")');
  await page.screenshot({ path: path.join(artifacts, 'passkeys-login-1440.png'), fullPage: true });
  await Promise.all([page.waitForURL(`${site}/admin`), page.click('button:has-text("Sign in with a passkey")')]);
  assert.match(await page.textContent('main'), /Ada Lovelace/);
  await page.screenshot({ path: path.join(artifacts, 'passkeys-signed-in-1440.png'), fullPage: true });
  const [last] = sql("SELECT detail FROM audit_log WHERE action = 'login.succeeded' ORDER BY seq DESC LIMIT 1");
  assert.equal(JSON.parse(last.detail).method, 'passkey');
  const [used] = sql('SELECT last_used_at FROM passkeys');
  assert.ok(used.last_used_at, 'the use is recorded');
  await context.close();
});
