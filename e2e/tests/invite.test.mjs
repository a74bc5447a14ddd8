// Inviting a colleague, as people do it, in headless Chromium: an owner made with the CLI
// signs in, invites an editor on the users page, the invitation email arrives at a real SMTP
// server (Python's aiosmtpd, writing a maildir; scripts/ensure-services installs it), the
// editor opens its link in a browser of their own, chooses a name and a password, signs in,
// and is refused the users page (403). Screenshots of each step go to e2e/artifacts/.
//
// The server gets a fixed free port so its public URL (the links in emails) is the one the
// browser uses. VANTUS_MFA_REQUIRED_ROLES is set empty for the day owners must enrol a second
// factor: this test is about invitations, and signs in with passwords only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { HtmlValidate } from 'html-validate';

import { assertAccessible } from '../support/axe.mjs';
import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');
const bin = process.env.VANTUS_BIN || path.join(repo, 'target', 'debug', 'vantus');
const skip = process.env.BASE_URL ? 'needs a server of its own (BASE_URL is set)' : false;

const OWNER = { email: 'owner@example.com', name: 'Olive Owner', password: 'correct horse battery staple' };
const EDITOR = { email: 'editor@example.com', name: 'Eddie Editor', password: 'a brand new passphrase of mine' };

let server;
let browser;
let smtp;
let mailDir;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitListening(port) {
  for (let i = 0; i < 200; i++) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}: is aiosmtpd installed (python3 -m pip install aiosmtpd)?`);
}

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  mailDir = mkdtempSync(path.join(tmpdir(), 'vantus-e2e-mail-'));
  const smtpPort = await freePort();
  smtp = spawn('python3', ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${smtpPort}`, '-c', 'aiosmtpd.handlers.Mailbox', path.join(mailDir, 'maildir')], { stdio: 'ignore' });
  await waitListening(smtpPort);
  const port = await freePort();
  server = await startServer({
    env: {
      VANTUS_LISTEN: `127.0.0.1:${port}`,
      VANTUS_PUBLIC_URL: `http://127.0.0.1:${port}`,
      SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      SMTP_FROM: 'Vantus <noreply@vantus.test>',
      VANTUS_MFA_REQUIRED_ROLES: '',
      VANTUS_ARGON2_MEMORY_KIB: '8192',
      VANTUS_ARGON2_ITERATIONS: '1',
    },
  });
  execFileSync(bin, ['user', 'create', '--email', OWNER.email, '--role', 'owner', '--name', OWNER.name, '--password-stdin'], {
    input: `${OWNER.password}\n`,
    env: { PATH: process.env.PATH, VANTUS_DATA_DIR: path.dirname(server.dbPath), RUST_LOG: 'warn' },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  smtp?.kill();
  if (mailDir) rmSync(mailDir, { recursive: true, force: true });
});

// The plain-text parts of every delivered message, decoded by Python's email parser (as a
// mail client reads them, whatever transfer encoding lettre chose).
const READ_MAILDIR = `
import email, email.policy, json, mailbox, os, sys
out = []
path = sys.argv[1]
if os.path.isdir(os.path.join(path, "new")):
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        with box.get_file(key) as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",))
        out.append({"to": str(msg["to"]), "subject": str(msg["subject"]), "text": text.get_content() if text else ""})
print(json.dumps(out))
`;

function mails() {
  return JSON.parse(execFileSync('python3', ['-c', READ_MAILDIR, path.join(mailDir, 'maildir')], { encoding: 'utf8' }));
}

async function invitationLink(to) {
  for (let i = 0; i < 200; i++) {
    const mail = mails().find((m) => m.to.includes(to));
    if (mail) {
      const link = mail.text.match(/https?:\/\/\S+\/admin\/invitations\/[A-Za-z0-9_-]{43}/);
      assert.ok(link, `the invitation email carries its link: ${mail.text}`);
      return link[0];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no email to ${to} arrived within 20 s`);
}

const validator = new HtmlValidate({
  extends: ['html-validate:standard'],
  rules: { 'heading-level': ['error', { allowMultipleH1: false }], 'no-dup-id': 'error', 'valid-id': 'error' },
});

/** The page's HTML as the server sent it (with the context's cookies) is valid HTML5. */
async function assertValidHtml(context, url) {
  const res = await context.request.get(url, { headers: { accept: 'text/html' } });
  const report = await validator.validateString(await res.text(), url);
  const problems = report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`));
  assert.deepEqual(problems, [], `HTML problems in ${url}:\n${problems.join('\n')}`);
}

async function signIn(page, who) {
  await page.goto(`${server.base}/admin/login`);
  await page.fill('#email', who.email);
  await page.fill('#password', who.password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/admin'), page.getByRole('button', { name: 'Sign in' }).click()]);
}

test('an owner invites an editor, who accepts, signs in, and may not manage users', { skip }, async () => {
  const ownerContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const owner = await ownerContext.newPage();
  await signIn(owner, OWNER);
  await owner.getByRole('navigation').getByRole('link', { name: 'Users', exact: true }).click();
  await owner.waitForURL((u) => u.pathname === '/admin/users');
  await owner.screenshot({ path: path.join(artifacts, 'users-page.png'), fullPage: true });
  await assertValidHtml(ownerContext, `${server.base}/admin/users`);
  await assertAccessible(owner, '/admin/users');

  await owner.fill('#invite-email', EDITOR.email);
  await owner.selectOption('#invite-role', 'editor');
  await Promise.all([
    owner.waitForURL((u) => u.searchParams.get('done') === 'invited'),
    owner.getByRole('button', { name: 'Send the invitation' }).click(),
  ]);
  assert.match(await owner.locator('#invitations').textContent(), /editor@example\.com/);
  await owner.screenshot({ path: path.join(artifacts, 'users-invited.png'), fullPage: true });

  const link = await invitationLink(EDITOR.email);
  assert.ok(link.startsWith(server.base), `${link} is on ${server.base}`);

  // The invitee, in a browser of their own.
  const editorContext = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const editor = await editorContext.newPage();
  await assertValidHtml(editorContext, link);
  const opened = await editor.goto(link);
  assert.equal(opened.status(), 200);
  await assertAccessible(editor, 'the invitation page');
  await editor.fill('#name', EDITOR.name);
  await editor.fill('#new_password', EDITOR.password);
  await editor.fill('#new_password_again', EDITOR.password);
  await editor.screenshot({ path: path.join(artifacts, 'invitation-accept.png'), fullPage: true });
  await editor.getByRole('button', { name: 'Create my account' }).click();
  await editor.waitForSelector('#done');
  await editor.screenshot({ path: path.join(artifacts, 'invitation-accepted.png'), fullPage: true });
  const again = await editor.goto(link);
  assert.equal(again.status(), 410, 'the link works once');

  await signIn(editor, EDITOR);
  assert.match(await editor.locator('body').textContent(), /Eddie Editor \(editor\)/);
  const users = await editor.goto(`${server.base}/admin/users`);
  assert.equal(users.status(), 403);
  await editor.screenshot({ path: path.join(artifacts, 'users-forbidden-editor.png'), fullPage: true });

  // The sign-in page leads to password reset, whose pages are valid too.
  for (const url of ['/admin/login', '/admin/password-reset']) await assertValidHtml(editorContext, `${server.base}${url}`);

  // The owner sees the new member.
  await owner.reload();
  assert.match(await owner.locator('#members').textContent(), /Eddie Editor/);
  await ownerContext.close();
  await editorContext.close();
});
