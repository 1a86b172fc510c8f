/**
 * The web page on a phone and on wide screens (issue 23), in headless Chromium against the real
 * server over real photos (hymenoptera val, labelled from folders, one with a long label and one
 * with a long file name). At 360, 768, 1280 and 1920 px, in the light and the dark theme, the
 * search results and the Browse view (with an error shown) are checked from element boxes
 * (getBoundingClientRect): nothing wider than the viewport, no element sticking out of its
 * parent, no in-flow siblings overlapping, the error message not covered; on a phone every
 * control is at least 44 px. Screenshots go to test-artifacts/layout/ (the path is printed).
 * Then: the camera input, an error replacing stale results, the Token box never opening over a
 * message, full names and labels, and the Browse view (list, label filter, pages, original,
 * add, remove).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { Engine } from '../src/engine.ts';
import { HYM_VAL, REPO, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { type TestServer, closeAll, openBrowser, startServer } from './helpers/browser.ts';
import { chromiumSkip } from './helpers/chromium.ts';

const ARTIFACTS = path.join(REPO, 'test-artifacts', 'layout');
const TOKEN = 'layout-token-0123456789';
const ANTS = 8;
const BEES = 7;
const LONG_LABEL = 'formicidae-camponotus-herculeanus-carpenter-ant-worker';
const LONG_NAME = 'IMG_20240603_142200_HDR_portrait_mode_from_the_garden_wall.jpg';
const WIDTHS = [360, 768, 1280, 1920];
const THEMES = ['light', 'dark'] as const;
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

const skip = chromiumSkip();

/**
 * Runs in the page: what is wrong with the layout of the visible page, from element boxes. Every
 * visible element must lie within the viewport's width and (unless positioned absolutely, as an
 * overlay on purpose) within its parent's left and right edges; the visible in-flow children of
 * any element must not overlap each other. Visually hidden elements (screen-reader text, the
 * file inputs), the content of a closed <details>, the shapes inside an SVG and the skip link
 * (off screen until focused) are left out.
 */
function layoutProblems(): string[] {
  const width = document.documentElement.clientWidth;
  const problems: string[] = [];
  if (document.documentElement.scrollWidth > width) problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  const name = (e: Element): string => (e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}${typeof e.className === 'string' && e.className.trim() ? `.${e.className.trim().split(/\s+/).join('.')}` : ''}`);
  const where = (e: Element): string => `${e.parentElement ? `${name(e.parentElement)} > ` : ''}${name(e)}`;
  const skipTags = new Set(['SCRIPT', 'TEMPLATE', 'STYLE', 'DATALIST', 'OPTION', 'HEAD', 'TITLE', 'META', 'LINK']);
  const shown = new Set<Element>();
  for (const e of document.body.querySelectorAll('*')) {
    if (skipTags.has(e.tagName) || e.closest('template, .visually-hidden, [hidden], .skip, details:not([open]) > :not(summary)')) continue;
    if (e.closest('svg') && e.tagName !== 'svg') continue; // a drawing's shapes overlap by design (the outline's halo and line)
    const r = e.getBoundingClientRect();
    const cs = getComputedStyle(e);
    if (r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'contents') shown.add(e);
  }
  const overlay = (e: Element): boolean => ['absolute', 'fixed'].includes(getComputedStyle(e).position);
  for (const e of shown) {
    const r = e.getBoundingClientRect();
    if (r.left < -0.5 || r.right > width + 0.5) problems.push(`${where(e)} is outside the viewport: ${r.left.toFixed(1)}..${r.right.toFixed(1)} of ${width}`);
    const p = e.parentElement;
    if (p && shown.has(p) && !overlay(e)) {
      const pr = p.getBoundingClientRect();
      if (r.left < pr.left - 1 || r.right > pr.right + 1) problems.push(`${where(e)} sticks out of its parent: ${r.left.toFixed(1)}..${r.right.toFixed(1)} in ${pr.left.toFixed(1)}..${pr.right.toFixed(1)}`);
    }
    const kids = [...e.children].filter((c) => shown.has(c) && !overlay(c));
    for (let i = 0; i < kids.length; i++) {
      const a = kids[i].getBoundingClientRect();
      for (let j = i + 1; j < kids.length; j++) {
        const b = kids[j].getBoundingClientRect();
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) problems.push(`${where(kids[i])} overlaps ${name(kids[j])} (${w.toFixed(1)} × ${h.toFixed(1)} px)`);
      }
    }
  }
  return problems;
}

/** Runs in the page: the error message is shown and the element at its first and last characters is the message itself. */
function alertCovered(): string | null {
  const text = document.getElementById('alert-text')!;
  if (!text.firstChild || text.closest('[hidden]')) return 'no message shown';
  const range = document.createRange();
  range.selectNodeContents(text);
  const rects = [...range.getClientRects()];
  for (const [x, y] of [[rects[0].left + 2, rects[0].top + rects[0].height / 2], [rects.at(-1)!.right - 2, rects.at(-1)!.top + rects.at(-1)!.height / 2]]) {
    const hit = document.elementFromPoint(x, y);
    if (!hit || !text.contains(hit)) return `the message at (${x.toFixed(0)}, ${y.toFixed(0)}) is covered by ${hit ? hit.outerHTML.slice(0, 80) : 'nothing (off screen)'}`;
  }
  return null;
}

/** Runs in the page: visible controls under 44 px (phones). */
function smallTargets(): string[] {
  const out: string[] = [];
  for (const e of document.querySelectorAll('button, select, summary, a.button, label.camera, input[type="text"], input[type="number"], input[type="password"], .check, .keep')) {
    if (e.closest('[hidden], template, .visually-hidden')) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0) continue;
    const wide = e.matches('input, select, .check, .keep') ? true : r.width >= 44;
    if (r.height < 44 || !wide) out.push(`${e.id ? `#${e.id}` : e.tagName.toLowerCase() + '.' + e.className}: ${r.width.toFixed(0)} × ${r.height.toFixed(0)}`);
  }
  return out;
}

/** Runs in the page: the thumbnails of `grid` within the screen have loaded (those below it load lazily, when scrolled to). */
function thumbnailsShown(grid: string): boolean {
  return [...document.querySelectorAll<HTMLImageElement>(`${grid} img`)].filter((i) => i.getBoundingClientRect().top < innerHeight).every((i) => i.complete && i.naturalWidth > 0);
}

describe('web page layout on phones and wide screens', { skip }, () => {
  const tmp = tempDir('pixdex-web-layout-');
  const library = path.join(tmp.dir, 'library');
  const consoleErrors: string[] = [];
  /** What `before` opens and `after` closes. */
  const opened: { engine?: Engine; served?: TestServer; context?: BrowserContext } = {};
  let page: Page;
  let base = '';
  let antPhoto = '';
  let longFile = '';

  before(async () => {
    for (const [kind, n] of [['ants', ANTS], ['bees', BEES]] as const) {
      fs.mkdirSync(path.join(library, kind), { recursive: true });
      for (const f of imagesIn(path.join(HYM_VAL, kind)).slice(0, n)) fs.copyFileSync(f, path.join(library, kind, path.basename(f)));
    }
    longFile = path.join(library, 'ants', LONG_NAME);
    fs.renameSync(imagesIn(path.join(library, 'ants'))[1], longFile);
    const engine = (opened.engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 }));
    assert.equal((await engine.index([library], { labelFromFolder: true })).added, ANTS + BEES);
    antPhoto = imagesIn(path.join(library, 'ants'))[0];
    engine.label(imagesIn(path.join(library, 'ants'))[2], LONG_LABEL);
    opened.served = await startServer(engine, { token: TOKEN });
    base = opened.served.base;
    const browser = await openBrowser(tmp.dir, consoleErrors);
    opened.context = browser.context;
    page = browser.page;
    // tsx names the functions this file passes to page.evaluate with a helper the page lacks
    await browser.context.addInitScript('globalThis.__name = (f) => f;');
    page.on('dialog', (d) => void d.accept());
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(() => closeAll({ ...opened, tmp }));

  const cards = () => page.locator('#grid .card');
  const browseCards = () => page.locator('#browse-grid .card');

  async function searchFor(file: string | { name: string; mimeType: string; buffer: Buffer }): Promise<void> {
    await page.locator('#file').setInputFiles(file);
  }

  async function assertLayout(what: string): Promise<void> {
    const problems = await page.evaluate(layoutProblems);
    assert.deepEqual(problems, [], what);
  }

  for (const theme of THEMES) {
    for (const width of WIDTHS) {
      it(`${width} px, ${theme}: search results and the Browse view with an error fit the screen, nothing overlaps`, async (t) => {
        await page.setViewportSize({ width, height: width < 700 ? 800 : 900 });
        await page.emulateMedia({ colorScheme: theme });
        await page.goto(`${base}/`);
        await page.locator(`#label-filter option[value="${LONG_LABEL}"]`).waitFor({ state: 'attached' });
        assert.equal(await page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches), theme === 'dark');
        await searchFor(antPhoto);
        await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, antPhoto);
        await page.locator('#classify').waitFor();
        await page.waitForFunction(thumbnailsShown, '#grid');
        await assertLayout(`search, ${width} px ${theme}`);
        if (width < 700) assert.deepEqual(await page.evaluate(smallTargets), [], 'touch targets of at least 44 px');
        const shots = [path.join(ARTIFACTS, `search-${width}-${theme}.png`)];
        await page.screenshot({ path: shots[0], fullPage: true });

        await page.locator('#tab-browse').click();
        await browseCards().first().waitFor();
        await page.waitForFunction(thumbnailsShown, '#browse-grid');
        await assertLayout(`browse, ${width} px ${theme}`);
        // No token in this tab: removing answers 401, shown in the alert with the Token box closed.
        await browseCards().first().locator('.remove').click();
        await page.locator('#alert').waitFor();
        assert.match((await page.locator('#alert-text').textContent()) ?? '', /token/i);
        assert.equal(await page.locator('#token-box').evaluate((d: HTMLDetailsElement) => d.open), false);
        assert.equal(await page.evaluate(alertCovered), null);
        await assertLayout(`browse with an error, ${width} px ${theme}`);
        if (width < 700) assert.deepEqual(await page.evaluate(smallTargets), [], 'touch targets of at least 44 px');
        shots.push(path.join(ARTIFACTS, `browse-${width}-${theme}.png`));
        await page.screenshot({ path: shots[1], fullPage: true });
        t.diagnostic(`screenshots: ${shots.join(', ')}`);
      });
    }
  }

  describe('on a 390 px phone', () => {
    before(async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.emulateMedia({ colorScheme: 'light' });
      await page.goto(`${base}/`);
      await page.locator('#label-filter option[value="bees"]').waitFor({ state: 'attached' });
    });

    it('offers the camera beside the normal file picker', async () => {
      assert.deepEqual(await page.locator('#camera').evaluate((i: HTMLInputElement) => [i.type, i.accept, i.getAttribute('capture')]), ['file', 'image/*', 'environment']);
      assert.deepEqual(await page.locator('#file').evaluate((i: HTMLInputElement) => [i.type, i.accept, i.hasAttribute('capture')]), ['file', 'image/*,.heic,.heif', false]);
      const take = page.locator('label[for="camera"]');
      assert.equal(await take.textContent(), 'Take photo');
      const box = (await take.boundingBox())!;
      assert.ok(box.height >= 44 && box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
      assert.equal(await page.locator('#browse-camera').getAttribute('capture'), 'environment');
    });

    it('shows full file names and labels, wrapped, with the whole path in the tooltip', async () => {
      await searchFor(longFile);
      await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, longFile);
      const first = cards().first();
      assert.equal(await first.locator('.name').textContent(), `ants/${LONG_NAME}`);
      assert.equal(await first.locator('.name').getAttribute('title'), longFile);
      assert.equal(await first.locator('.open').getAttribute('href'), `/api/images/${await first.getAttribute('data-id')}/original`);
      const long = page.locator(`#grid .card[data-label="${LONG_LABEL}"]`);
      await long.first().waitFor();
      assert.equal(await long.first().locator('.label-chip').textContent(), LONG_LABEL);
      // nothing cut: every name and label chip shows all of its text
      const cut = await page.evaluate(() => [...document.querySelectorAll<HTMLElement>('#grid .name, #grid .label-chip')].filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
      assert.deepEqual(cut, []);
      await assertLayout('long names');
    });

    it('replaces the results with the error when a search fails: no stale results or photo under it', async () => {
      await searchFor(antPhoto);
      await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, antPhoto);
      assert.match((await page.locator('#status').textContent()) ?? '', /similar images to your photo/);
      await searchFor({ name: 'invoice.pdf', mimeType: 'application/pdf', buffer: PDF });
      await page.locator('#alert').waitFor();
      assert.equal(await page.locator('#alert').getAttribute('data-code'), 'UNSUPPORTED_IMAGE');
      assert.equal(await cards().count(), 0);
      assert.doesNotMatch((await page.locator('#status').textContent()) ?? '', /similar images/);
      assert.equal(await page.locator('#query').isHidden(), true);
      assert.equal(await page.locator('#classify').isHidden(), true);
      assert.equal(await page.evaluate(alertCovered), null);
      await assertLayout('error after results');
      // and the next search works again, and clears the message
      await searchFor(antPhoto);
      await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, antPhoto);
      assert.equal(await page.locator('#alert').isHidden(), true);
    });

    it('never opens the Token box over a 401: its button does, and the box pushes the message down', async () => {
      const card = cards().first();
      await card.locator('.edit').click();
      await card.locator('.label-form input').fill('wasps');
      await card.locator('.label-form input').press('Enter');
      await page.locator('#alert').waitFor();
      assert.equal(await page.locator('#token-box').evaluate((d: HTMLDetailsElement) => d.open), false);
      assert.equal(await page.evaluate(alertCovered), null);
      await page.locator('#alert-token').click();
      assert.equal(await page.locator('#token-box').evaluate((d: HTMLDetailsElement) => d.open), true);
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
      assert.equal(await page.evaluate(alertCovered), null, 'the open Token box covers nothing');
      await assertLayout('Token box open with a message');
      await page.screenshot({ path: path.join(ARTIFACTS, 'token-open-390.png'), fullPage: true });
      await page.locator('#token').fill(TOKEN);
      await page.locator('#token-form button[type=submit]').click();
      assert.equal(await page.locator('#token-box').evaluate((d: HTMLDetailsElement) => d.open), false);
    });
  });

  describe('the Browse view', () => {
    before(async () => {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${base}/#browse`);
      await browseCards().first().waitFor();
    });

    it('lists the library page by page, with full names and labels', async () => {
      const total = ANTS + BEES;
      assert.equal(await browseCards().count(), total, 'one page of 24 holds them all');
      assert.equal(await page.locator('#browse-page').textContent(), `1–${total} of ${total}`);
      const ids = await browseCards().evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.id)));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      await page.locator('#browse-size').selectOption('12');
      await page.waitForFunction(() => document.querySelectorAll('#browse-grid .card').length === 12);
      assert.equal(await page.locator('#browse-prev').isDisabled(), true);
      await page.locator('#browse-next').click();
      await page.waitForFunction((n) => document.querySelectorAll('#browse-grid .card').length === n, total - 12);
      assert.equal(await page.locator('#browse-page').textContent(), `13–${total} of ${total}`);
      assert.equal(await page.locator('#browse-next').isDisabled(), true);
      const second = await browseCards().evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.id)));
      assert.deepEqual(second, ids.slice(12));
      await page.locator('#browse-prev').click();
      await page.waitForFunction(() => document.querySelectorAll('#browse-grid .card').length === 12);
      const card = page.locator(`#browse-grid .card[data-path="${longFile}"]`);
      assert.equal(await card.locator('.name').textContent(), `ants/${LONG_NAME}`);
      assert.equal(await card.locator('.name').getAttribute('title'), longFile);
      await page.locator('#browse-size').selectOption('24');
      await page.waitForFunction((n) => document.querySelectorAll('#browse-grid .card').length === n, total);
      // By date taken: these photos carry no capture date, so they come last, in the order added.
      const asked = page.waitForRequest((r) => r.url().includes('/api/images?') && r.url().includes('order=taken'));
      await page.locator('#browse-order').selectOption('taken');
      await asked;
      await page.waitForFunction((n) => document.querySelectorAll('#browse-grid .card').length === n, total);
      assert.deepEqual(await browseCards().evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.id))), ids);
      await page.locator('#browse-order').selectOption('added');
    });

    it('filters by label', async () => {
      await page.locator('#browse-label').selectOption('bees');
      await page.waitForFunction((n) => {
        const c = [...document.querySelectorAll<HTMLElement>('#browse-grid .card')];
        return c.length === n && c.every((e) => e.dataset.label === 'bees');
      }, BEES);
      assert.match((await page.locator('#browse-status').textContent()) ?? '', new RegExp(`^${BEES} images labelled “bees”`));
      await page.locator('#browse-label').selectOption('');
      await page.waitForFunction((n) => document.querySelectorAll('#browse-grid .card').length === n, ANTS + BEES);
    });

    it('opens an original in a new tab: the indexed file, shown by the browser', async () => {
      const card = browseCards().first();
      const file = (await card.getAttribute('data-path'))!;
      const id = await card.getAttribute('data-id');
      assert.equal(await card.locator('.download').getAttribute('href'), `/api/images/${id}/original?download=true`);
      const [popup] = await Promise.all([opened.context!.waitForEvent('page'), card.locator('.open').click()]);
      await popup.waitForLoadState();
      assert.equal(popup.url(), `${base}/api/images/${id}/original`);
      await popup.waitForFunction(() => document.images.length === 1 && document.images[0].complete && document.images[0].naturalWidth > 0);
      await popup.close();
      const bytes = Buffer.from(await (await fetch(`${base}/api/images/${id}/original`)).arrayBuffer());
      assert.ok(bytes.equals(fs.readFileSync(file)));
    });

    it('adds a photo with the token, and removes one from the library', async () => {
      const extra = imagesIn(path.join(HYM_VAL, 'bees'))[BEES];
      await page.locator('#browse-file').setInputFiles(extra);
      await page.waitForFunction((n) => document.getElementById('browse-page')!.textContent!.endsWith(` of ${n}`), ANTS + BEES + 1);
      assert.match((await page.locator('#browse-status').textContent()) ?? '', /^Added 1 photo\./);
      const added = browseCards().last();
      const id = await added.getAttribute('data-id');
      assert.equal((await (await fetch(`${base}/api/images/${id}`)).json()).bytes, fs.statSync(extra).size);

      await added.locator('.remove').click();
      await page.waitForFunction((n) => document.getElementById('browse-page')!.textContent!.endsWith(` of ${n}`), ANTS + BEES);
      assert.match((await page.locator('#browse-status').textContent()) ?? '', /^Removed .* from the library\./);
      assert.equal(await page.locator(`#browse-grid .card[data-id="${id}"]`).count(), 0);
      assert.equal((await fetch(`${base}/api/images/${id}`)).status, 404);
      assert.equal(await page.locator('#alert').isHidden(), true);
    });

    it('logged no page errors', () => {
      assert.deepEqual(consoleErrors, []);
    });
  });
});
