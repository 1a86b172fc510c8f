/**
 * The web page end to end, in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) against the real server on an ephemeral port, over a store of real photos
 * (hymenoptera val, labelled from folders): upload → grid with the original first, k and label
 * filter, click → similar-by-id, labelling with the token, a PDF's readable error, and an index
 * job whose progress bar reaches 100%. Saves test-artifacts/results.png.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Express } from 'express';
import type { BrowserContext, Page } from 'playwright-core';
import type { IndexJobs } from '../server/jobs.ts';
import { PAGE_CSP } from '../server/web.ts';
import { Engine } from '../src/engine.ts';
import { HYM_VAL, REPO, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { type TestServer, openBrowser, startServer } from './helpers/browser.ts';
import { chromiumSkip } from './helpers/chromium.ts';

const ARTIFACTS = path.join(REPO, 'test-artifacts');
const TOKEN = 'web-token-0123456789';
/** Photos per class in the library (the rest of val feeds the index job): small, so the test is fast. */
const PER_CLASS = 15;
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

/** Skipped locally without Chromium (with a message); in CI a missing Chromium fails this file. */
const skip = chromiumSkip();

describe('web page in headless Chromium', { skip }, () => {
  const tmp = tempDir('pixdex-web-');
  const library = path.join(tmp.dir, 'library');
  const incoming = path.join(tmp.dir, 'incoming');
  const consoleErrors: string[] = [];
  let engine: Engine;
  let app: Express;
  let served: TestServer | undefined;
  let context: BrowserContext;
  let page: Page;
  let base = '';
  let libraryFiles: string[] = [];

  before(async () => {
    for (const kind of ['ants', 'bees']) {
      const files = imagesIn(path.join(HYM_VAL, kind));
      fs.mkdirSync(path.join(library, kind), { recursive: true });
      fs.mkdirSync(path.join(incoming, kind), { recursive: true });
      for (const f of files.slice(0, PER_CLASS)) fs.copyFileSync(f, path.join(library, kind, path.basename(f)));
      for (const f of files.slice(PER_CLASS, PER_CLASS + 2)) fs.copyFileSync(f, path.join(incoming, kind, path.basename(f)));
    }
    libraryFiles = imagesIn(library);
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    const s = await engine.index([library], { labelFromFolder: true });
    assert.equal(s.added, 2 * PER_CLASS);
    served = await startServer(engine, { token: TOKEN });
    ({ app, base } = served);
    ({ context, page } = await openBrowser(tmp.dir, consoleErrors));
    page.on('request', (r) => { if (r.url().includes('/api/')) apiInFlight++; });
    page.on('requestfinished', (r) => { if (r.url().includes('/api/')) apiInFlight--; });
    page.on('requestfailed', (r) => { if (r.url().includes('/api/')) apiInFlight--; });
  });
  after(async () => {
    await context?.close();
    await served?.close();
    await engine?.close();
    tmp.cleanup();
  });

  const cards = () => page.locator('#grid .card');
  /** API requests the page has sent and not had answered (a late answer re-renders the grid). */
  let apiInFlight = 0;
  /** Waits until no API request has been in flight for 300 ms: the grid will not re-render by itself. */
  async function settled(): Promise<void> {
    for (let quiet = 0, waited = 0; quiet < 300; waited += 50) {
      if (waited > 30_000) throw new Error(`${apiInFlight} API request(s) still in flight after 30 s`);
      await new Promise((r) => setTimeout(r, 50));
      quiet = apiInFlight === 0 ? quiet + 50 : 0;
    }
  }
  const alertText = () => page.locator('#alert-text').textContent();

  it('serves the page at / with a CSP that allows only same-origin code', async () => {
    const r = await fetch(`${base}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(r.headers.get('content-security-policy'), PAGE_CSP);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal((await fetch(`${base}/app.js`)).headers.get('content-type')?.split(';')[0], 'text/javascript');
    await page.goto(`${base}/`);
    await page.locator('#label-filter option[value="ants"]').waitFor({ state: 'attached' });
    assert.deepEqual(await page.locator('#label-filter option').allTextContents(), ['All labels', `ants (${PER_CLASS})`, `bees (${PER_CLASS})`]);
  });

  it('uploads a real photo: its indexed original comes first, with score, label and the classify vote', async () => {
    const photo = libraryFiles.find((f) => f.includes(`${path.sep}ants${path.sep}`))!;
    await page.locator('#file').setInputFiles(photo);
    await cards().nth(11).waitFor();
    assert.equal(await cards().count(), 12, 'k defaults to 12');
    const first = cards().first();
    assert.equal(await first.getAttribute('data-path'), photo);
    assert.ok(Number(await first.locator('.score').textContent()) >= 0.999);
    assert.equal(await first.locator('.label-chip').textContent(), 'ants');
    assert.equal(await first.locator('.thumb img').getAttribute('alt'), `ants/${path.basename(photo)}, labelled ants`);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
    assert.equal(await page.locator('#pred-label').textContent(), 'ants');
    assert.match((await page.locator('#pred-conf').textContent()) ?? '', /^\d+% confidence$/);
    assert.ok((await page.locator('#votes li').count()) >= 1);
    assert.match((await page.locator('#status').textContent()) ?? '', /^12 similar images to your photo/);
    assert.equal(await page.locator('#query').isVisible(), true);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'results.png') });
  });

  it('applies the k control and the label filter', async () => {
    await page.locator('#k').fill('5');
    await page.locator('#k').dispatchEvent('change');
    await page.waitForFunction(() => document.querySelectorAll('#grid .card').length === 5);
    await page.locator('#label-filter').selectOption('bees');
    await page.waitForFunction(() => [...document.querySelectorAll('#grid .card')].every((c) => (c as HTMLElement).dataset.label === 'bees'));
    assert.equal(await cards().count(), 5);
    await page.locator('#label-filter').selectOption('');
    await page.waitForFunction(() => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.label === 'ants');
  });

  it('searches by an indexed image when a result is chosen (keyboard: Enter)', async () => {
    // The previous step's searches may still be answering: a late one re-renders the grid and
    // would detach the focused card between focus() and Enter. Let the page settle first
    // (waitForLoadState('networkidle') does not wait once the page has loaded).
    await settled();
    const second = cards().nth(1);
    const id = await second.getAttribute('data-id');
    const file = (await second.getAttribute('data-path'))!;
    // Focus and Enter in one action on that card (found again if the grid re-rendered meanwhile);
    // a re-render also keeps the focus on the same image (app.js renderResults).
    await page.locator(`#grid .card[data-id="${id}"] .thumb`).press('Enter');
    const name = `${path.basename(path.dirname(file))}/${path.basename(file)}`;
    try {
      await page.waitForFunction((n) => document.getElementById('status')!.textContent!.includes(`similar to ${n}`), name, { timeout: 20_000 });
    } catch (err) {
      // What the page shows instead (CI saw this time out once or twice in full-suite runs only).
      const state = await page.evaluate(() => ({
        status: document.getElementById('status')?.textContent,
        alert: document.getElementById('alert-text')?.textContent,
        active: document.activeElement?.outerHTML.slice(0, 160),
        grid: [...document.querySelectorAll<HTMLElement>('#grid .card')].map((c) => c.dataset.id),
        busy: document.getElementById('grid')?.getAttribute('aria-busy'),
      }));
      throw new Error(`no "similar to ${name}" (id ${id}) in the status: ${JSON.stringify({ ...state, apiInFlight, consoleErrors })}`, { cause: err });
    }
    assert.match((await page.locator('#query-caption').textContent()) ?? '', new RegExp(`^Image ${id}: `));
    const ids = await cards().evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id));
    assert.equal(ids.length, 5);
    assert.ok(!ids.includes(id!), 'the query image itself is excluded');
    assert.equal(await page.locator('#classify').isHidden(), true);
    assert.equal(await page.locator('#back').isVisible(), true);
  });

  it('sets a label from the grid: without the token a readable 401, with it the label persists', async () => {
    const target = cards().first();
    const id = await target.getAttribute('data-id');
    await target.locator('.edit').click();
    const input = target.locator('.label-form input');
    await input.fill('wasps');
    await input.press('Enter');
    await page.locator('#alert').waitFor();
    assert.match((await alertText()) ?? '', /token/i);
    assert.equal(await page.locator('#token-box').evaluate((d: HTMLDetailsElement) => d.open), false, 'the Token box does not open over the message');

    await page.locator('#alert-token').click();
    await page.locator('#token').fill(TOKEN);
    await page.locator('#token-form button[type=submit]').click();
    await target.locator('.label-form button[type=submit]').click();
    await page.waitForFunction((i) => document.querySelector(`#grid .card[data-id="${i}"] .label-chip`)?.textContent === 'wasps', id);
    assert.equal(await page.locator('#alert').isHidden(), true);
    const rec = await (await fetch(`${base}/api/images/${id}`)).json();
    assert.equal(rec.label, 'wasps');
    await page.reload();
    await page.locator('#label-filter option[value="wasps"]').waitFor({ state: 'attached' });
    assert.equal(await page.locator('#label-filter option[value="wasps"]').textContent(), 'wasps (1)');
  });

  it('shows the server’s message for a PDF upload in place of the results, and keeps working', async () => {
    const photo = libraryFiles.find((f) => f.includes(`${path.sep}bees${path.sep}`))!;
    await page.locator('#file').setInputFiles(photo);
    await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, photo);
    await page.locator('#file').setInputFiles({ name: 'invoice.pdf', mimeType: 'application/pdf', buffer: PDF });
    await page.locator('#alert').waitFor();
    const form = new FormData();
    form.append('image', new Blob([PDF], { type: 'application/pdf' }), 'invoice.pdf');
    const direct = await (await fetch(`${base}/api/search`, { method: 'POST', body: form })).json();
    assert.equal(await alertText(), direct.error.message.charAt(0).toUpperCase() + direct.error.message.slice(1));
    assert.match(direct.error.message, /not an image in a supported format|pdf format/);
    assert.equal(await page.locator('#alert').getAttribute('data-code'), 'UNSUPPORTED_IMAGE');
    assert.equal(await cards().count(), 0, 'the error replaces the results of the previous photo');
    assert.equal(await page.locator('#query').isHidden(), true);
    await page.locator('#alert-close').click();
    assert.equal(await page.locator('#alert').isHidden(), true);
    await page.locator('#back').click(); // back to the last photo that was searched
    await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, photo);
  });

  it('shows library stats and indexes a folder with a progress bar that reaches 100%', async () => {
    await page.locator('#tab-library').click();
    await page.waitForFunction((n) => document.getElementById('fact-images')!.textContent === String(n), 2 * PER_CLASS);
    assert.equal(await page.locator('#fact-space').textContent(), 'backbone');
    assert.match((await page.locator('#fact-backbone').textContent()) ?? '', /^mobilenet/);
    assert.deepEqual((await page.locator('#labels-body tr td:first-child').allTextContents()).sort(), ['ants', 'bees', 'wasps']);

    await page.locator('#index-path').fill(path.join(tmp.dir, 'no-such-folder'));
    await page.locator('#index-start').click();
    await page.locator('#alert').waitFor();
    assert.match((await alertText()) ?? '', /No folder or file .*no-such-folder on the server/);

    await page.locator('#index-path').fill(incoming);
    await page.locator('#index-label-folder').check();
    await page.locator('#index-start').click();
    await page.waitForFunction(() => document.getElementById('index-job')!.dataset.state === 'done', undefined, { timeout: 45_000 });
    assert.equal(await page.locator('#index-progress').evaluate((p: HTMLProgressElement) => p.value), 100);
    assert.match((await page.locator('#index-text').textContent()) ?? '', /^Done: 4 added, 0 updated, 0 skipped, 0 failed/);
    await page.waitForFunction((n) => document.getElementById('fact-images')!.textContent === String(n), 2 * PER_CLASS + 4);
    assert.equal(await page.locator('#index-start').isEnabled(), true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'library.png') });
  });

  it('tabs are keyboard operable and the page logged no errors (no CSP violations)', async () => {
    await page.locator('#tab-browse').focus();
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.locator('#tab-search').getAttribute('aria-selected'), 'true');
    assert.equal(await page.locator('#view-browse').isHidden(), true);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-search');
    assert.deepEqual(consoleErrors, []);
  });

  it('leaves no job running', () => {
    assert.equal((app.locals.indexJobs as IndexJobs).current, undefined);
  });
});
