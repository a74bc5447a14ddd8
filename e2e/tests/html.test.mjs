// Every public page is valid HTML5 with a correct heading outline, checked by html-validate
// (offline, its "standard" preset: the HTML specification's content models, attributes and
// nesting) plus its heading-level rule. A parse or content-model error in a template fails
// here before a browser would silently repair it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HtmlValidate } from 'html-validate';

import { startServer } from '../support/server.mjs';

const PAGES = [
  '/', '/services', '/process', '/work', '/work/shopify-erp-sync', '/work/fintech-analytics-dashboard',
  '/work/healthcare-intake-portal', '/insights', '/insights/graphql-at-scale', '/insights/restore-drills',
  '/about', '/trust', '/contact', '/contact/thanks', '/privacy', '/terms', '/this-page-does-not-exist',
];

const validator = new HtmlValidate({
  extends: ['html-validate:standard'],
  rules: {
    'heading-level': ['error', { allowMultipleH1: false }],
    'no-dup-id': 'error',
    'valid-id': 'error',
  },
});

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('every public page is valid HTML5 with a correct heading outline', async () => {
  const problems = [];
  for (const url of PAGES) {
    const res = await fetch(server.base + url, { headers: { accept: 'text/html' } });
    const html = await res.text();
    const report = await validator.validateString(html, url);
    for (const r of report.results) {
      for (const m of r.messages) problems.push(`${url}:${m.line}:${m.column} ${m.ruleId}: ${m.message}`);
    }
  }
  assert.deepEqual(problems, [], `HTML problems:\n${problems.join('\n')}`);
});

test('the contact form re-rendered with errors (422) is valid HTML5', async () => {
  const res = await fetch(server.base + '/contact', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    body: new URLSearchParams({ name: 'Ada', email: 'ada@', message: 'short', website: 'not a url' }),
  });
  assert.equal(res.status, 422);
  const html = await res.text();
  assert.match(html, /aria-invalid="true"/, 'the errors are shown');
  const report = await validator.validateString(html, 'POST /contact');
  const problems = report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`));
  assert.deepEqual(problems, [], `HTML problems:\n${problems.join('\n')}`);
});
