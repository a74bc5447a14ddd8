// The contact form as a person uses it, in headless Chromium, with JavaScript off and on:
// fill it in, send it, land on the thank-you page, and find the lead in the database (not
// marked as spam, with its notification queued and its audit entry). Also: per-field errors
// (422, error summary, aria-invalid / aria-describedby naming the problem, input kept), axe-core
// on the form with errors shown, the honeypot out of the Tab order, a double click storing
// one lead, and screenshots (390 px and 1440 px: empty form, errors, thank-you page) in
// e2e/artifacts/.
//
// The server is started here with VANTUS_FORM_MIN_FILL_TIME=1s so a test waits one second,
// not three, before sending, and with a form rate limit above the dozen posts made here (the
// default, 10 per 10 minutes per client, would answer the last ones 429). The database is read with Debian's sqlite3 command-line shell
// (read-only; Node 20 has no node:sqlite and a native npm module is not needed for this).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { assertAccessible } from '../support/axe.mjs';
import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');
const MIN_FILL_SECONDS = 1;
const WIDTHS = [390, 1440];
// A server given by BASE_URL has a database this test cannot read, and its own fill time.
const skip = process.env.BASE_URL ? 'needs a server of its own (BASE_URL is set)' : false;

let server;
let browser;

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  server = await startServer({
    env: { VANTUS_FORM_MIN_FILL_TIME: `${MIN_FILL_SECONDS}s`, VANTUS_RATE_LIMIT_FORMS: '1000/10m' },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// --- the database ---------------------------------------------------------------------------

const quote = (s) => `'${String(s).replaceAll("'", "''")}'`;

function sql(query) {
  const out = execFileSync('sqlite3', ['-readonly', '-json', server.dbPath, query], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

/** The leads stored under `email`, with their outbox and audit rows counted. */
function leadsFor(email) {
  return sql(`SELECT lower(hex(id)) AS id, spam_reason, source, name, company, role, budget, website, message,
                     (SELECT count(*) FROM outbox o WHERE o.lead_id = l.id AND o.topic = 'lead.created') AS notifications
              FROM leads l WHERE email = ${quote(email)}`).map((lead) => {
    const h = lead.id;
    const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    const [{ n }] = sql(`SELECT count(*) AS n FROM audit_log WHERE action = 'lead.received' AND resource = ${quote(`lead:${uuid}`)}`);
    return { ...lead, audit_entries: n };
  });
}

// --- the form -------------------------------------------------------------------------------

function person(tag) {
  return {
    name: 'Ada Lovelace',
    email: `ada.${tag}.${randomUUID().slice(0, 8)}@example.com`,
    company: 'Analytical Engines Ltd',
    role: 'Head of product',
    budget: '25k-50k',
    website: 'https://engines.example.com',
    message: 'We need a new customer portal before the spring launch.\nThe current one is slow.',
  };
}

async function newPage({ javaScript, width = 1440 }) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, javaScriptEnabled: javaScript, colorScheme: 'light' });
  return { context, page: await context.newPage() };
}

/** Types into each field, as a person does (key by key), and ticks consent. */
async function fillForm(page, who, { consent = true } = {}) {
  for (const field of ['name', 'email', 'company', 'role', 'website', 'message']) {
    if (who[field] === undefined) continue;
    const input = page.locator(`#${field}`);
    await input.fill('');
    await input.pressSequentially(who[field]);
  }
  if (who.budget) await page.selectOption('#budget', who.budget);
  if (consent) await page.check('#consent');
}

/** Waits until the form's token is older than the minimum fill time (its issue time is in it). */
async function waitPastMinFillTime(page) {
  await waitPastMinFillTimeOf(await page.locator('input[name="form_token"]').getAttribute('value'));
}

async function waitPastMinFillTimeOf(token) {
  const issuedAt = Number(token.split('.')[1]);
  assert.ok(Number.isInteger(issuedAt), `the form token carries its issue time: ${token}`);
  const wait = (issuedAt + MIN_FILL_SECONDS) * 1000 + 250 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

const isFormPost = (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/contact';

/** Clicks "Send enquiry"; returns the response to the POST once the next page has loaded. */
async function send(page) {
  const [response] = await Promise.all([
    page.waitForResponse(isFormPost),
    page.getByRole('button', { name: 'Send enquiry' }).click(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

async function assertThanks(page) {
  await page.waitForURL((u) => u.pathname === '/contact/thanks');
  assert.equal((await page.locator('h1').textContent()).trim(), 'Thank you');
}

function assertOneRealLead(who, source = 'form') {
  const rows = leadsFor(who.email);
  assert.equal(rows.length, 1, `exactly one lead for ${who.email}`);
  const [lead] = rows;
  assert.equal(lead.spam_reason, null, 'stored as a real lead, not as spam');
  assert.deepEqual(
    { source: lead.source, name: lead.name, company: lead.company, role: lead.role, budget: lead.budget, website: lead.website, message: lead.message },
    { source, name: who.name, company: who.company, role: who.role, budget: who.budget, website: who.website, message: who.message },
  );
  assert.equal(lead.notifications, 1, 'a lead.created notification is queued in the outbox');
  assert.equal(lead.audit_entries, 1, 'a lead.received audit entry');
}

// --- the tests ------------------------------------------------------------------------------

for (const javaScript of [false, true]) {
  test(`a person sends the form with JavaScript ${javaScript ? 'on' : 'off'} and the lead is stored`, { skip }, async () => {
    const { context, page } = await newPage({ javaScript });
    const res = await page.goto(`${server.base}/contact`);
    assert.equal(res.status(), 200);
    const who = person(javaScript ? 'js-on' : 'js-off');
    await fillForm(page, who);
    await waitPastMinFillTime(page);
    const post = await send(page);
    assert.equal(post.status(), 303);
    assert.equal(post.headers().location, '/contact/thanks');
    await assertThanks(page);
    assertOneRealLead(who);
    await context.close();
  });
}

test('invalid input: 422, error summary, described fields, input kept; then corrected and sent', { skip }, async () => {
  for (const width of WIDTHS) {
    const { context, page } = await newPage({ javaScript: false, width });
    await page.goto(`${server.base}/contact`);
    await page.screenshot({ path: path.join(artifacts, `contact-form-empty-${width}.png`), fullPage: true });

    // Empty: every required field is named.
    let post = await send(page);
    assert.equal(post.status(), 422);
    const summary = page.locator('.error-summary[role="alert"]');
    assert.equal(await summary.count(), 1, 'one error summary, announced as an alert');
    assert.deepEqual(
      await summary.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))),
      ['#name', '#email', '#message', '#consent'],
    );

    // Some right, some wrong: a bad email, a too-short message, no consent.
    const who = person(`errors-${width}`);
    await fillForm(page, { ...who, email: 'ada@example', message: 'Too short' }, { consent: false });
    post = await send(page);
    assert.equal(post.status(), 422);
    assert.equal(new URL(page.url()).pathname, '/contact');
    assert.deepEqual(
      await summary.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))),
      ['#email', '#message', '#consent'],
    );
    const expected = { email: /email address/i, message: /at least 10 characters/i, consent: /consent must be given/i };
    for (const [field, problem] of Object.entries(expected)) {
      const input = page.locator(`#${field}`);
      assert.equal(await input.getAttribute('aria-invalid'), 'true', `${field} is marked invalid`);
      const describedBy = (await input.getAttribute('aria-describedby') ?? '').split(/\s+/);
      assert.ok(describedBy.includes(`${field}-error`), `${field} aria-describedby names ${field}-error: ${describedBy}`);
      const text = await page.locator(`[id="${field}-error"]`).textContent();
      assert.match(text, problem, `${field}'s description says what is wrong`);
      assert.match(await summary.locator(`a[href="#${field}"]`).textContent(), problem);
    }
    for (const field of ['name', 'company', 'role', 'website']) {
      assert.equal(await page.locator(`#${field}`).getAttribute('aria-invalid'), null, `${field} is not marked invalid`);
    }
    // What was typed is still there.
    assert.equal(await page.inputValue('#name'), who.name);
    assert.equal(await page.inputValue('#email'), 'ada@example');
    assert.equal(await page.inputValue('#company'), who.company);
    assert.equal(await page.inputValue('#role'), who.role);
    assert.equal(await page.inputValue('#website'), who.website);
    assert.equal(await page.inputValue('#message'), 'Too short');
    assert.equal(await page.inputValue('#budget'), who.budget);
    assert.equal(await page.isChecked('#consent'), false);
    assert.deepEqual(leadsFor('ada@example'), [], 'nothing stored for an invalid submission');
    await page.screenshot({ path: path.join(artifacts, `contact-form-errors-${width}.png`), fullPage: true });

    // Corrected: sent, thanked, stored.
    await fillForm(page, { email: who.email, message: who.message });
    await waitPastMinFillTime(page);
    post = await send(page);
    assert.equal(post.status(), 303);
    await assertThanks(page);
    assertOneRealLead(who);
    await page.screenshot({ path: path.join(artifacts, `contact-thanks-${width}.png`), fullPage: true });
    await context.close();
  }
});

test('the form with errors shown passes axe-core (no serious or critical violations)', { skip }, async () => {
  const { context, page } = await newPage({ javaScript: true });
  await page.goto(`${server.base}/contact`);
  await assertAccessible(page, 'the empty form');
  await fillForm(page, { name: 'Ada Lovelace', email: 'not-an-address', message: 'Short' }, { consent: false });
  assert.equal((await send(page)).status(), 422);
  assert.equal(await page.locator('[aria-invalid="true"]').count(), 3);
  await assertAccessible(page, 'the form with errors');
  await context.close();
});

test('keyboard: Tab reaches every field and the button in order, never the honeypot', { skip }, async () => {
  const { context, page } = await newPage({ javaScript: false });
  await page.goto(`${server.base}/contact`);
  const reached = [];
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return el === document.body ? null : el.id || el.getAttribute('name') || el.textContent.trim();
    });
    if (focused === null || reached.includes(focused)) break;
    reached.push(focused);
  }
  const formOrder = ['name', 'email', 'company', 'role', 'budget', 'website', 'message', 'consent', 'Send enquiry'];
  assert.deepEqual(reached.filter((id) => formOrder.includes(id)), formOrder, `Tab order: ${reached.join(', ')}`);
  assert.ok(!reached.includes('leave_blank'), 'the honeypot is never focused');
  assert.equal(await page.locator('#leave_blank').getAttribute('tabindex'), '-1');
  assert.equal(await page.locator('.hp-field').getAttribute('aria-hidden'), 'true');
  await context.close();
});

test('a bot that fills the honeypot is thanked, and its submission is stored as spam', { skip }, async () => {
  const { context, page } = await newPage({ javaScript: false });
  await page.goto(`${server.base}/contact`);
  const who = person('honeypot');
  await fillForm(page, who);
  await page.locator('#leave_blank').fill('bot', { force: true });
  await waitPastMinFillTime(page);
  assert.equal((await send(page)).status(), 303);
  await assertThanks(page);
  const rows = leadsFor(who.email);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].spam_reason, 'honeypot');
  assert.equal(rows[0].notifications, 0, 'nobody is notified about spam');
  await context.close();
});

for (const javaScript of [false, true]) {
  test(`a double click on "Send enquiry" stores one lead (JavaScript ${javaScript ? 'on' : 'off'})`, { skip }, async () => {
    const { context, page } = await newPage({ javaScript });
    await page.goto(`${server.base}/contact`);
    const who = person(`double-${javaScript ? 'js-on' : 'js-off'}`);
    await fillForm(page, who);
    await waitPastMinFillTime(page);
    // Two clicks as fast as a person makes them reach the server as one POST (Chromium
    // replaces a pending submission), so the second click here comes while the first POST is
    // at the server and its answer is still on the way, as on a slow line: both reach the
    // server with the form's one idempotency key.
    const answered = [];
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await page.route('**/contact', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      const response = await route.fetch({ maxRedirects: 0 });
      answered.push(response.status());
      await held;
      await route.fulfill({ response }).catch(() => { /* the browser gave up on the first */ });
    });
    // The mouse itself: a locator's click would wait for the navigation the first one starts.
    const button = page.getByRole('button', { name: 'Send enquiry' });
    await button.scrollIntoViewIfNeeded();
    const box = await button.boundingBox();
    const click = () => page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await click();
    await waitFor(() => answered.length === 1);
    await click();
    await waitFor(() => answered.length === 2);
    release();
    await assertThanks(page);
    assert.deepEqual(answered, [303, 303], 'both posts reached the server and were answered with the redirect');
    assertOneRealLead(who);
    await context.close();
  });
}

/** Polls `condition` (bounded: 10 s), for events the page reports asynchronously. */
async function waitFor(condition) {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(condition(), `condition never held: ${condition}`);
}

test('two identical posts of one rendered form at once (a double submit) store one lead', { skip }, async () => {
  // The browser may cancel the first of two quick submissions before it reaches the server;
  // here both certainly arrive, concurrently, with the same idempotency key.
  const html = await (await fetch(`${server.base}/contact`)).text();
  const hidden = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
  const token = hidden('form_token');
  await waitPastMinFillTimeOf(token);
  const who = person('concurrent');
  const body = new URLSearchParams({ ...who, form_token: token, idempotency_key: hidden('idempotency_key'), leave_blank: '', consent: 'on' });
  const post = () => fetch(`${server.base}/contact`, {
    method: 'POST', body, redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const answers = await Promise.all([post(), post()]);
  assert.deepEqual(answers.map((a) => [a.status, a.headers.get('location')]), [[303, '/contact/thanks'], [303, '/contact/thanks']]);
  assertOneRealLead(who);
});
