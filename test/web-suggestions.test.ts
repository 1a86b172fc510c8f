/**
 * The web page's review of label suggestions, and the classify method selector, in headless
 * Chromium (see web.test.ts) against the real server over real photos: a few hymenoptera train
 * photos labelled from their folders plus unlabelled val photos. Runs propagation from the page
 * (a readable 401 first, without the token), accepts one suggestion with the keyboard (the label
 * persists), rejects one (it is gone, and never comes back), accepts the rest, and shows the 409
 * for method=head with no trained head. Saves test-artifacts/suggestions.png.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { Engine } from '../src/engine.ts';
import { HYM_TRAIN, HYM_VAL, REPO, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { type TestServer, openBrowser, startServer } from './helpers/browser.ts';
import { chromiumSkip } from './helpers/chromium.ts';

const ARTIFACTS = path.join(REPO, 'test-artifacts');
const TOKEN = 'web-suggest-token-0123456789';
const KINDS = ['ants', 'bees'];
/** Labelled train photos per class, and unlabelled val photos per class: small, so the test is fast. */
const TRAIN_PER_CLASS = 12;
const VAL_PER_CLASS = 4;
/** Low enough that most of the unlabelled photos get a suggestion from so few labelled ones. */
const MIN_CONFIDENCE = '0.6';

/** Skipped locally without Chromium (with a message); in CI a missing Chromium fails this file. */
const skip = chromiumSkip();

interface Suggestion { id: number; path: string; label: string; confidence: number; thumbnailUrl: string }

describe('web page: label suggestions and classify methods', { skip }, () => {
  const tmp = tempDir('pixdex-web-suggest-');
  const consoleErrors: string[] = [];
  const train = KINDS.flatMap((k) => imagesIn(path.join(HYM_TRAIN, k)).slice(0, TRAIN_PER_CLASS));
  const val = KINDS.flatMap((k) => imagesIn(path.join(HYM_VAL, k)).slice(0, VAL_PER_CLASS));
  let engine: Engine;
  let served: TestServer | undefined;
  let context: BrowserContext;
  let page: Page;
  let base = '';

  const getJson = async (url: string) => (await fetch(base + url)).json();
  const pending = async (): Promise<Suggestion[]> => (await getJson('/api/suggestions')).suggestions;
  const items = () => page.locator('#suggestions li');
  const idsShown = () => items().evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.id)));

  before(async () => {
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    assert.equal((await engine.index(train, { labelFromFolder: true })).added, train.length);
    assert.equal((await engine.index(val)).added, val.length);
    served = await startServer(engine, { token: TOKEN });
    base = served.base;
    ({ context, page } = await openBrowser(tmp.dir, consoleErrors));
  });
  after(async () => {
    await context?.close();
    await served?.close();
    await engine?.close();
    tmp.cleanup();
  });

  it('opens the Suggestions tab from its address, with nothing to review yet', async () => {
    await page.goto(`${base}/#suggestions`);
    await page.waitForFunction(() => document.getElementById('suggestions-status')!.textContent!.startsWith('No suggestions waiting'));
    assert.equal(await page.locator('#tab-suggestions').getAttribute('aria-selected'), 'true');
    assert.equal(await page.locator('#view-suggestions').isVisible(), true);
    assert.equal(await items().count(), 0);
    assert.equal(await page.locator('#accept-all').isDisabled(), true);
  });

  it('runs propagation: without the token a readable 401, with it the pending suggestions as thumbnails', async () => {
    await page.locator('#min-confidence').fill(MIN_CONFIDENCE);
    await page.locator('#propagate').click();
    await page.locator('#alert').waitFor();
    assert.match((await page.locator('#alert-text').textContent()) ?? '', /server token.*Enter the server token under “Token”/);
    assert.equal(await page.locator('#alert').getAttribute('data-code'), 'UNAUTHORIZED');
    assert.equal(await page.locator('#token-box').getAttribute('open'), null, 'the Token box does not open over the message');
    assert.deepEqual(await pending(), [], 'nothing was saved');

    await page.locator('#alert-token').click(); // the message's button opens it, with the focus in the field
    await page.locator('#token').fill(TOKEN);
    await page.locator('#token').press('Enter');
    await page.locator('#min-confidence').press('Enter'); // the form submits from the keyboard
    await page.waitForFunction(() => document.getElementById('suggestions-status')!.textContent!.startsWith('Checked'));
    assert.equal(await page.locator('#alert').isHidden(), true);
    const listed = await pending();
    assert.ok(listed.length >= 3, `only ${listed.length} suggestions for ${val.length} unlabelled photos`);
    assert.match((await page.locator('#suggestions-status').textContent()) ?? '', new RegExp(`^Checked ${val.length} unlabelled images: ${listed.length} suggestions? at 60% confidence or more, ${val.length - listed.length} undecided\\.$`));
    assert.deepEqual(await idsShown(), listed.map((s) => s.id));
    const first = items().first();
    assert.equal(await first.locator('.label-chip').textContent(), listed[0].label);
    assert.equal(await first.locator('.score').textContent(), `${Math.round(listed[0].confidence * 100)}%`);
    const name = `${path.basename(path.dirname(listed[0].path))}/${path.basename(listed[0].path)}`;
    assert.equal(await first.locator('img').getAttribute('alt'), `${name}, suggested label ${listed[0].label}`);
    assert.equal(await first.locator('.accept').getAttribute('aria-label'), `Accept “${listed[0].label}” for ${name}`);
    assert.ok(listed.every((s) => s.confidence >= 0.6 && val.includes(s.path)));
    assert.equal(await page.locator('#accept-all').isEnabled(), true);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#suggestions img')].every((i) => i.complete && i.naturalWidth > 0));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'suggestions.png'), fullPage: true });
  });

  it('accepts a suggestion from the keyboard: it leaves the list, the label persists, focus moves on', async () => {
    const [s, next] = await pending();
    await page.locator(`#suggestions li[data-id="${s.id}"] .accept`).focus();
    await page.keyboard.press('Enter');
    await page.locator(`#suggestions li[data-id="${s.id}"]`).waitFor({ state: 'detached' });
    assert.equal((await getJson(`/api/images/${s.id}`)).label, s.label);
    assert.ok(!(await pending()).some((p) => p.id === s.id));
    assert.match((await page.locator('#suggestions-status').textContent()) ?? '', new RegExp(`^Labelled .+ “${s.label}”\\.$`));
    assert.equal(await page.evaluate(() => (document.activeElement?.closest('li') as HTMLElement | null)?.dataset.id), String(next.id));
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'accept primary');
  });

  it('rejects a suggestion: it disappears, stays unlabelled, and is not suggested again', async () => {
    const [s] = await pending();
    await page.locator(`#suggestions li[data-id="${s.id}"] .reject`).click();
    await page.locator(`#suggestions li[data-id="${s.id}"]`).waitFor({ state: 'detached' });
    assert.equal((await getJson(`/api/images/${s.id}`)).label, null);
    assert.ok(!(await pending()).some((p) => p.id === s.id));
    assert.match((await page.locator('#suggestions-status').textContent()) ?? '', /^Rejected “.+” for .+: it will not be suggested again\.$/);

    // Propagating again (confidences change: one more image is labelled) never brings it back.
    await page.locator('#propagate').click();
    await page.waitForFunction(() => document.getElementById('suggestions-status')!.textContent!.startsWith('Checked'));
    const again = await pending();
    assert.deepEqual(await idsShown(), again.map((p) => p.id));
    assert.ok(!again.some((p) => p.id === s.id), 'the rejected one does not come back');
  });

  it('accepts all the rest after a confirmation', async () => {
    const rest = await pending();
    assert.ok(rest.length >= 1);
    page.once('dialog', (d) => void d.accept());
    await page.locator('#accept-all').click();
    await page.waitForFunction(() => document.getElementById('suggestions-status')!.textContent!.startsWith('Accepted'));
    assert.equal(await page.locator('#suggestions-status').textContent(), `Accepted ${rest.length} suggestion${rest.length === 1 ? '' : 's'}.`);
    assert.equal(await items().count(), 0);
    assert.deepEqual(await pending(), []);
    for (const s of rest) assert.equal((await getJson(`/api/images/${s.id}`)).label, s.label);
    assert.equal(await page.locator('#accept-all').isDisabled(), true);
  });

  it('classify panel: method=head shows the readable 409 when no head is trained, kNN still votes', async () => {
    await page.locator('#tab-search').click();
    const photo = val.find((f) => f.includes(`${path.sep}bees${path.sep}`))!;
    await page.locator('#file').setInputFiles(photo);
    await page.waitForFunction(() => document.getElementById('classify')!.dataset.method === 'knn' && !document.getElementById('classify')!.hidden);
    assert.equal(await page.locator('#pred-label').textContent(), 'bees');

    await page.locator('#classify-method').selectOption('head');
    await page.locator('#classify-error').waitFor();
    const form = new FormData();
    form.append('image', new Blob([fs.readFileSync(photo)], { type: 'image/jpeg' }), 'q.jpg');
    const direct = await fetch(`${base}/api/classify?method=head`, { method: 'POST', body: form });
    assert.equal(direct.status, 409);
    const { error } = await direct.json();
    assert.equal(error.code, 'NO_CLASSIFIER');
    assert.equal(await page.locator('#classify-error').textContent(), error.message.charAt(0).toUpperCase() + error.message.slice(1));
    assert.equal(await page.locator('#classify-error').getAttribute('data-code'), 'NO_CLASSIFIER');
    assert.equal(await page.locator('#classify-result').isHidden(), true);
    assert.equal(await page.locator('#alert').isHidden(), true, 'the search results are fine: no page-wide alert');
    assert.ok((await page.locator('#grid .card').count()) > 0);
    await page.locator('#classify').screenshot({ path: path.join(ARTIFACTS, 'classify-no-head.png') });

    await page.locator('#classify-method').selectOption('knn');
    await page.locator('#classify-error').waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#pred-label').textContent(), 'bees');
    assert.match((await page.locator('#pred-conf').textContent()) ?? '', /^\d+% confidence$/);
  });

  it('the tabs (five now) are keyboard operable and the page logged no errors', async () => {
    await page.locator('#tab-search').focus();
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.locator('#tab-duplicates').getAttribute('aria-selected'), 'true');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.locator('#tab-suggestions').getAttribute('aria-selected'), 'true');
    assert.equal(await page.evaluate(() => location.hash), '#suggestions');
    await page.keyboard.press('Home');
    assert.equal(await page.locator('#tab-search').getAttribute('aria-selected'), 'true');
    assert.deepEqual(consoleErrors, []);
  });
});
