// The portal's daily work as staff and a visitor do it, in headless Chromium with JavaScript
// off (the portal needs none), against one server on the embedded default:
//   1. an editor uploads an image to the media library, writes an insight that shows it,
//      publishes it, and sees it (with the image's variants) on the public site;
//   2. a visitor sends the contact form, and sales finds the lead in the CRM by a word of its
//      message;
//   3. the lead is moved to "qualified", gets a note, and the current selection is exported as
//      CSV (which holds the lead at its new stage);
//   4. an unpublish is scheduled a few seconds ahead, and the insight's page disappears.
// Then every mutation made here has its audit entry, and `vantus audit verify` passes.
// Screenshots of each step in e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');
const bin = process.env.VANTUS_BIN || path.join(repo, 'target', 'debug', 'vantus');
const EMAIL = 'grace.owner@example.com';
const PASSWORD = 'correct horse battery staple';
const MIN_FILL_SECONDS = 1;
const skip = process.env.BASE_URL ? 'needs a server of its own (BASE_URL is set)' : false;
// Cheap hashing (behaviour, not cost, is tested), no second factor required, a 1 s schedule tick.
const ENV = {
  VANTUS_ARGON2_MEMORY_KIB: '8192',
  VANTUS_ARGON2_ITERATIONS: '1',
  VANTUS_MFA_REQUIRED_ROLES: 'none',
  VANTUS_FORM_MIN_FILL_TIME: `${MIN_FILL_SECONDS}s`,
  VANTUS_RATE_LIMIT_FORMS: '1000/10m',
  VANTUS_CONTENT_SCHEDULE_TICK: '1s',
};
const WORD = `zephyrine${process.pid}`;
const SLUG = `field-notes-${process.pid}`;

let server;
let browser;
let context;
let page;

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  server = await startServer({ env: ENV });
  const created = spawnSync(
    bin,
    ['user', 'create', '--email', EMAIL, '--role', 'owner', '--name', 'Grace Hopper', '--password-stdin'],
    { env: cliEnv(), input: `${PASSWORD}\n`, encoding: 'utf8' },
  );
  assert.equal(created.status, 0, created.stderr);
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, javaScriptEnabled: false });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function cliEnv() {
  return { PATH: process.env.PATH, VANTUS_DATA_DIR: path.dirname(server.dbPath), RUST_LOG: 'warn', ...ENV };
}

const shot = (name) => page.screenshot({ path: path.join(artifacts, `portal-${name}-1440.png`), fullPage: true });

function sql(query) {
  const out = execFileSync('sqlite3', ['-readonly', '-json', server.dbPath, query], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

/** Submits the form holding `selector` (a button) and waits for the page it leads to. */
async function submit(selector) {
  await Promise.all([page.waitForNavigation(), page.locator(selector).click()]);
}

/** A 96×64 PNG with a red top half and a blue bottom half, encoded here (no image tools). */
function png(width = 96, height = 64) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set(y < height / 2 ? [220, 40, 40] : [40, 60, 220], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Polls `check` (async, truthy when done) every 250 ms for up to `seconds`. */
async function until(check, seconds, what) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// The steps build on each other (one server, one signed-in browser), so they run in order.

let insightId;

test('1. an insight with an uploaded image is published and seen on the public site', { skip }, async () => {
  await page.goto(`${server.base}/admin/login`);
  await page.locator('#email').fill(EMAIL);
  await page.locator('#password').fill(PASSWORD);
  await submit('button[type="submit"]');
  assert.equal(new URL(page.url()).pathname, '/admin');

  // Upload.
  const file = path.join(tmpdir(), `e2e-photo-${process.pid}.png`);
  writeFileSync(file, png());
  await page.goto(`${server.base}/admin/media`);
  await page.locator('#file').setInputFiles(file);
  await page.locator('#alt_text').fill('A red band over a blue band');
  await submit('form[action="/admin/media"] button[type="submit"]');
  assert.match(new URL(page.url()).pathname, /^\/admin\/media\/[0-9a-f-]{36}$/, page.url());
  const markdownImage = (await page.locator('#file-markdown').textContent()).trim();
  assert.match(markdownImage, /^!\[A red band over a blue band\]\(\/media\/[^)]+\)$/);
  await shot('media-uploaded');

  // Write and publish.
  await page.goto(`${server.base}/admin/content/new?kind=insight`);
  await page.locator('#field-title').fill('Field notes from the portal');
  await page.locator('#field-slug').fill(SLUG);
  await page.locator('#field-summary').fill('What a browser test saw while publishing.');
  await page.locator('#field-body').fill(`Written and published in a browser.\n\n${markdownImage}\n\nThe end.`);
  await page.locator('#field-meta').fill('{"author": "Grace Hopper", "tags": ["e2e"]}');
  await submit('#editor button[type="submit"]:not([formaction])');
  const edited = new URL(page.url());
  assert.match(edited.pathname, /^\/admin\/content\/[0-9a-f-]{36}$/, page.url());
  insightId = edited.pathname.split('/').pop();
  await submit(`form[action="/admin/content/${insightId}/publish"] button`);
  assert.match(await page.locator('#item-status').textContent(), /published/);
  await shot('insight-published');

  // The public page shows it, with the image from the library, which loads.
  const visitor = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const pub = await visitor.newPage();
  await until(async () => (await pub.goto(`${server.base}/insights/${SLUG}`)).status() === 200, 5, 'the page to appear');
  assert.equal((await pub.locator('h1').textContent()).trim(), 'Field notes from the portal');
  const img = pub.locator('article img[alt="A red band over a blue band"], main img[alt="A red band over a blue band"]').first();
  assert.match(await img.getAttribute('src'), /^\/media\//);
  assert.equal(await img.getAttribute('width'), '96');
  assert.equal(await img.getAttribute('height'), '64');
  await pub.waitForLoadState('load');
  assert.ok(await img.evaluate((el) => el.complete && el.naturalWidth > 0), 'the image loads');
  await pub.screenshot({ path: path.join(artifacts, 'portal-insight-public-1440.png'), fullPage: true });
  await visitor.close();
});

test('2. a visitor sends the contact form and the lead is found in the CRM', { skip }, async () => {
  const visitor = await browser.newContext({ viewport: { width: 390, height: 844 }, javaScriptEnabled: false });
  const form = await visitor.newPage();
  await form.goto(`${server.base}/contact`);
  const who = {
    name: 'Katherine Johnson',
    email: `katherine.${process.pid}@example.com`,
    company: 'Orbital Mechanics Ltd',
    message: `We need a customer portal for trajectory reports; codename ${WORD}. Can we talk next week?`,
  };
  for (const [field, value] of Object.entries(who)) await form.locator(`#${field}`).fill(value);
  await form.selectOption('#budget', { index: 1 });
  await form.check('#consent');
  const token = await form.locator('input[name="form_token"]').getAttribute('value');
  const wait = (Number(token.split('.')[1]) + MIN_FILL_SECONDS) * 1000 + 250 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await Promise.all([form.waitForURL((u) => u.pathname === '/contact/thanks'), form.getByRole('button', { name: 'Send enquiry' }).click()]);
  await visitor.close();

  await page.goto(`${server.base}/admin/leads`);
  await page.locator('#f-q').fill(WORD);
  await submit('form[role="search"] button[type="submit"]');
  const row = page.locator('table tr', { hasText: 'Katherine Johnson' });
  assert.equal(await row.count(), 1, 'the search finds the lead by a word of its message');
  await shot('crm-search');
  await Promise.all([page.waitForNavigation(), row.locator('a').first().click()]);
  assert.match(new URL(page.url()).pathname, /^\/admin\/leads\/[0-9a-f-]{36}$/);
  assert.match(await page.locator('main').textContent(), new RegExp(WORD));
});

test('3. the lead moves to "qualified", gets a note, and the selection is exported as CSV', { skip }, async () => {
  const leadPage = page.url();
  await page.selectOption('#stage', 'qualified');
  await submit('form[action$="/stage"] button');
  await page.locator('#note').fill('Called back: wants a proposal by Friday.');
  await submit('form[action$="/notes"] button');
  const main = await page.locator('main').textContent();
  assert.match(main, /Called back: wants a proposal by Friday\./);
  assert.match(main, /[Qq]ualified/);
  await shot('crm-lead-qualified');

  await page.goto(`${server.base}/admin/leads?q=${WORD}`);
  const href = await page.locator('#export-csv').getAttribute('href');
  const res = await context.request.get(`${server.base}${href}`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /text\/csv/);
  const csv = await res.text();
  const lines = csv.trim().split(/\r\n/);
  assert.equal(lines.length, 2, `a header and the one lead:\n${csv}`);
  assert.match(lines[1], /Katherine Johnson/);
  assert.match(lines[1], /qualified/);
  writeFileSync(path.join(artifacts, 'portal-leads-export.csv'), csv);
  assert.ok(leadPage.includes('/admin/leads/'));
});

test('4. a scheduled unpublish takes the page off the site', { skip }, async () => {
  await page.goto(`${server.base}/admin/content/${insightId}`);
  // datetime-local, read as UTC: three seconds from now.
  const at = new Date(Date.now() + 3000).toISOString().slice(0, 19);
  await page.locator('#field-unpublish_at').fill(at);
  await submit('#schedule button[type="submit"]');
  assert.equal(await page.locator('#schedules tbody tr').count(), 1, 'the schedule is listed');
  await shot('insight-unpublish-scheduled');

  const visitor = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const pub = await visitor.newPage();
  await until(async () => (await pub.goto(`${server.base}/insights/${SLUG}`)).status() === 404, 15, 'the page to disappear');
  await pub.screenshot({ path: path.join(artifacts, 'portal-insight-gone-1440.png'), fullPage: true });
  await visitor.close();
});

test('every mutation above is in the audit log, and the chain verifies', { skip }, async () => {
  const actions = new Set(sql('SELECT action FROM audit_log').map((r) => r.action));
  for (const action of [
    'media.uploaded', 'content.created', 'content.published', 'lead.received', 'lead.stage_changed',
    'lead.note_added', 'leads.exported', 'content.scheduled', 'content.unpublished',
  ]) {
    assert.ok(actions.has(action), `an audit entry for ${action} (have: ${[...actions].sort().join(', ')})`);
  }
  const verified = spawnSync(bin, ['audit', 'verify'], { env: cliEnv(), encoding: 'utf8' });
  assert.equal(verified.status, 0, verified.stderr);
  assert.match(verified.stdout, /audit chain intact/);
});
