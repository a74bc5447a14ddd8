// Every public page in a real browser, at a phone width (390 px) and a desktop width (1440 px):
// it loads with JavaScript off, has a title and one h1, does not scroll sideways, logs no
// console errors, and passes axe-core's accessibility rules (no serious or critical
// violations). Full-page screenshots of every page at both widths, and in dark mode, are kept
// in e2e/artifacts/ for review.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { assertAccessible } from '../support/axe.mjs';
import { launch } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts');

const PAGES = [
  ['home', '/'],
  ['services', '/services'],
  ['process', '/process'],
  ['work', '/work'],
  ['case-study', '/work/shopify-erp-sync'],
  ['insights', '/insights'],
  ['insight', '/insights/graphql-at-scale'],
  ['about', '/about'],
  ['trust', '/trust'],
  ['contact', '/contact'],
  ['contact-thanks', '/contact/thanks'],
  ['privacy', '/privacy'],
  ['terms', '/terms'],
  ['not-found', '/this-page-does-not-exist'],
];
const WIDTHS = [390, 1440];

let server;
let browser;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const width of WIDTHS) {
  test(`every page renders well at ${width}px with JavaScript off`, async () => {
    const context = await browser.newContext({
      viewport: { width, height: 900 },
      javaScriptEnabled: false,
      colorScheme: 'light',
    });
    const page = await context.newPage();
    const consoleErrors = [];
    let current = '';
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${current}: ${m.text()}`); });
    page.on('pageerror', (e) => consoleErrors.push(`${current}: ${e}`));
    for (const [name, url] of PAGES) {
      current = url;
      const res = await page.goto(server.base + url, { waitUntil: 'load' });
      assert.equal(res.status(), name === 'not-found' ? 404 : 200, `${url} status`);
      assert.ok((await page.title()).length > 5, `${url} has a title`);
      assert.equal(await page.locator('h1').count(), 1, `${url} has exactly one h1`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${url} scrolls sideways by ${overflow}px at ${width}px`);
      await page.screenshot({ path: path.join(artifacts, `${name}-${width}.png`), fullPage: true });
    }
    // The 404 page's own status is reported by the browser as a failed load; nothing else may be.
    const unexpected = consoleErrors.filter((e) => !e.startsWith('/this-page-does-not-exist: Failed to load resource'));
    assert.deepEqual(unexpected, [], 'no console errors');
    await context.close();
  });
}

test('every page passes axe-core accessibility rules (no serious or critical violations)', async () => {
  // axe needs script; the page itself still ships none.
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  for (const [, url] of PAGES) {
    await page.goto(server.base + url, { waitUntil: 'load' });
    await assertAccessible(page, url);
  }
  await context.close();
});

test('dark mode and keyboard navigation', async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
  const page = await context.newPage();
  for (const [name, url] of [['home', '/'], ['case-study', '/work/shopify-erp-sync'], ['insight', '/insights/graphql-at-scale']]) {
    await page.goto(server.base + url);
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(bg, 'rgb(247, 246, 242)', 'dark mode changes the background');
    await page.screenshot({ path: path.join(artifacts, `${name}-1440-dark.png`), fullPage: true });
  }
  // The first Tab lands on the skip link, and following it moves focus to the main content.
  await page.goto(server.base + '/');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  await context.close();
});
