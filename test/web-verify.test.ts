/**
 * The web page's verified hits (issue 14), in headless Chromium (see web.test.ts) against the
 * real server over a real library with local features: eight smvs book-cover references plus a
 * crop of one phone photo (the middle of query 002, a known rectangle of it). Uploading that
 * phone photo verifies two hits, reference 002 and the crop: their cards carry the "same object"
 * badge, and the preview of the photo gets the first one's outline, a 4-point SVG polygon laid
 * exactly over the displayed photo; the crop's outline lands on the crop's rectangle. Hover,
 * focus and the badge switch the outline; similar-by-id draws none; an unrelated cover gets no
 * badge and no outline; a photo stored sideways with EXIF orientation 6 is outlined as displayed;
 * at phone width nothing overflows. Saves test-artifacts/verified.png and verified-phone.png.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { BrowserContext, Page } from 'playwright-core';
import { Engine } from '../src/engine.ts';
import { REPO, SMVS_BOOKS as BOOKS, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { type TestServer, openBrowser, startServer } from './helpers/browser.ts';
import { chromiumSkip } from './helpers/chromium.ts';

const ARTIFACTS = path.join(REPO, 'test-artifacts');
/** References in the library (ground truth by file name: query/NNN.jpg shows reference/NNN.jpg). */
const REFERENCES = ['001', '002', '003', '004', '005', '006', '007', '008'];
/** The phone photo uploaded: its cover is reference 002. */
const QUERY = path.join(BOOKS, 'query', '002.jpg');
/** A phone photo of a cover that is not in the library. */
const UNRELATED = path.join(BOOKS, 'query', '050.jpg');
/** The part of QUERY indexed as crop.jpg, as fractions of its width and height: x0, y0, x1, y1. */
const CROP = [0.2, 0.25, 0.75, 0.8] as const;

/** Skipped locally without Chromium (with a message); in CI a missing Chromium fails this file. */
const skip = chromiumSkip();

type Box = { x: number; y: number; w: number; h: number };
interface Overlay {
  /** The SVG is rendered (not hidden). */
  shown: boolean;
  /** The id of the card whose outline is drawn. */
  id: string | null;
  points: Array<[number, number]>;
  svg: Box;
  img: Box;
  /** The drawn polygon's box on screen. */
  poly: Box;
  found: string;
  natural: [number, number];
}

interface Hit { id: number; path: string; verified?: boolean; inliers?: number; outline?: Array<[number, number]> }

describe('web page: verified hits and where they were found', { skip }, () => {
  const tmp = tempDir('pixdex-web-verify-');
  const library = path.join(tmp.dir, 'library');
  const sideways = path.join(tmp.dir, 'sideways-002.jpg');
  const consoleErrors: string[] = [];
  let engine: Engine;
  let served: TestServer | undefined;
  let context: BrowserContext;
  let page: Page;
  let base = '';

  before(async () => {
    fs.mkdirSync(library, { recursive: true });
    for (const n of REFERENCES) fs.copyFileSync(path.join(BOOKS, 'reference', `${n}.jpg`), path.join(library, `${n}.jpg`));
    const photo = fs.readFileSync(QUERY);
    const { width, height } = await sharp(photo).metadata();
    const [x0, y0, x1, y1] = CROP;
    const left = Math.round(x0 * width), top = Math.round(y0 * height);
    await sharp(photo).extract({ left, top, width: Math.round(x1 * width) - left, height: Math.round(y1 * height) - top }).jpeg({ quality: 90 }).toFile(path.join(library, 'crop.jpg'));
    // The same photo stored turned a quarter left, with EXIF orientation 6 to display it upright.
    await sharp(photo).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 92 }).toFile(sideways);

    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1, localFeatures: true });
    assert.equal((await engine.index([library])).added, REFERENCES.length + 1);
    served = await startServer(engine);
    base = served.base;
    ({ context, page } = await openBrowser(tmp.dir, consoleErrors));
    await page.goto(`${base}/`);
  });
  after(async () => {
    await context?.close();
    await served?.close();
    await engine?.close();
    tmp.cleanup();
  });

  const cards = () => page.locator('#grid .card');
  const card = (id: string) => page.locator(`#grid .card[data-id="${id}"]`);
  const classes = (id: string) => card(id).evaluate((e) => [...e.classList].filter((c) => c === 'verified' || c === 'outlined').join(' '));
  const idOf = (file: string) => page.locator(`#grid .card[data-path="${path.join(library, file)}"]`).getAttribute('data-id');

  /** What is drawn over the preview, and where on the screen. */
  const overlay = (): Promise<Overlay> => page.evaluate(() => {
    const svg = document.getElementById('query-outline')!;
    const img = document.getElementById('query-img') as HTMLImageElement;
    const line = svg.querySelector('polygon.line')!;
    // (No named function in here: tsx would wrap it in a __name() the page does not have.)
    const [s, i, l] = [svg, img, line].map((e) => {
      const b = e.getBoundingClientRect();
      return { x: b.x, y: b.y, w: b.width, h: b.height };
    });
    const points = (line.getAttribute('points') ?? '').trim().split(/\s+/).filter(Boolean).map((p) => p.split(',').map(Number) as [number, number]);
    return {
      shown: svg.checkVisibility(),
      id: svg.dataset.id ?? null,
      points,
      svg: s,
      img: i,
      poly: l,
      found: document.getElementById('query-found')!.textContent ?? '',
      natural: [img.naturalWidth, img.naturalHeight] as [number, number],
    };
  });

  /** Uploads a photo and waits for its results (and for the preview to be loaded). */
  async function upload(file: string): Promise<void> {
    await page.evaluate(() => { document.getElementById('status')!.textContent = ''; });
    await page.locator('#file').setInputFiles(file);
    await page.waitForFunction(() => /similar images to your photo/.test(document.getElementById('status')!.textContent ?? ''), undefined, { timeout: 30_000 });
    await page.waitForFunction(() => {
      const img = document.getElementById('query-img') as HTMLImageElement;
      return img.complete && img.naturalWidth > 0;
    });
  }

  /** The same search straight from the API. */
  async function apiSearch(file: string): Promise<Hit[]> {
    const form = new FormData();
    form.append('image', new Blob([fs.readFileSync(file)], { type: 'image/jpeg' }), path.basename(file));
    const r = await fetch(`${base}/api/search?k=12`, { method: 'POST', body: form });
    assert.equal(r.status, 200);
    return (await r.json()).results;
  }

  /** The overlay covers the displayed photo exactly, and the polygon is drawn at its points. */
  function assertPlaced(o: Overlay): void {
    assert.equal(o.shown, true, 'the outline is drawn');
    assert.equal(o.points.length, 4, `4 points: ${JSON.stringify(o.points)}`);
    for (const k of ['x', 'y', 'w', 'h'] as const) assert.ok(Math.abs(o.svg[k] - o.img[k]) <= 1, `svg ${k} ${o.svg[k]} = img ${k} ${o.img[k]}`);
    assert.ok(o.img.w > 50 && o.img.h > 50, `the photo is shown: ${JSON.stringify(o.img)}`);
    const xs = o.points.map(([x]) => o.img.x + x * o.img.w);
    const ys = o.points.map(([, y]) => o.img.y + y * o.img.h);
    const want = { x: Math.min(...xs), y: Math.min(...ys), w: Math.max(...xs) - Math.min(...xs), h: Math.max(...ys) - Math.min(...ys) };
    for (const k of ['x', 'y', 'w', 'h'] as const) assert.ok(Math.abs(o.poly[k] - want[k]) <= 1.5, `polygon ${k} ${o.poly[k]} ≈ ${want[k]}`);
  }

  /** The crop's outline lies on the crop's rectangle of the photo (2% of its size). */
  function assertOnCrop(o: Overlay): void {
    const [x0, y0, x1, y1] = CROP;
    const near = (a: number, b: number) => Math.abs(a - b) <= 0.02;
    const xs = o.points.map(([x]) => x).sort((a, b) => a - b);
    const ys = o.points.map(([, y]) => y).sort((a, b) => a - b);
    assert.ok(near(xs[0], x0) && near(xs[1], x0) && near(xs[2], x1) && near(xs[3], x1), `x ${xs} on ${x0}, ${x1}`);
    assert.ok(near(ys[0], y0) && near(ys[1], y0) && near(ys[2], y1) && near(ys[3], y1), `y ${ys} on ${y0}, ${y1}`);
  }

  it('marks the verified hits with a badge and outlines the first one on the uploaded photo', async () => {
    await upload(QUERY);
    const direct = await apiSearch(QUERY);
    const verified = direct.filter((h) => h.verified);
    assert.deepEqual(verified.map((h) => path.basename(h.path)).sort(), ['002.jpg', 'crop.jpg'], 'the reference and the crop are verified, nothing else');
    assert.ok(direct.slice(0, 2).every((h) => h.verified), 'verified hits come first');

    // The badge: visible text, not colour alone, and an accessible name; none on the other cards.
    const badges = page.locator('#grid .card .verify');
    assert.equal(await badges.count(), 2);
    for (const h of verified) {
      const badge = card(String(h.id)).locator('.verify');
      assert.equal(await badge.textContent(), `✓ Same object · ${h.inliers} matches`);
      assert.equal(await badge.getAttribute('aria-label'), `Same object, ${h.inliers} matches: verified. Show where it is in your photo`);
      assert.equal(await card(String(h.id)).locator('.thumb').getAttribute('aria-describedby'), await badge.getAttribute('id'));
      assert.ok(h.inliers! >= 12);
    }
    const others = direct.filter((h) => !h.verified);
    assert.ok(others.length >= 5);
    for (const h of others) {
      assert.equal(await card(String(h.id)).locator('.verify').count(), 0);
      if (h.inliers) assert.match((await card(String(h.id)).locator('.score').getAttribute('title')) ?? '', /too few to be the same object/);
    }
    assert.match((await page.locator('#status').textContent()) ?? '', new RegExp(`^${REFERENCES.length + 1} similar images to your photo \\(2 of the same object\\) · \\d+ ms$`));

    // The first verified hit is outlined by default, with the server's corners.
    const o = await overlay();
    assertPlaced(o);
    const first = verified[0];
    assert.equal(o.id, String(first.id));
    assert.deepEqual(o.points, first.outline!.map(([x, y]) => [Number(x.toFixed(4)), Number(y.toFixed(4))]));
    assert.equal(o.found, `Outlined: where library/${path.basename(first.path)} was found (${first.inliers} matches)`);
    assert.equal(await classes(String(first.id)), 'verified outlined');
    assert.equal(await card(String(first.id)).locator('.verify').getAttribute('aria-pressed'), 'true');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'verified.png') });
  });

  it('draws the crop where it was cut from, and the reference cover inside the photo', async () => {
    const crop = (await idOf('crop.jpg'))!;
    const ref = (await idOf('002.jpg'))!;
    await card(crop).hover();
    const c = await overlay();
    assert.equal(c.id, crop);
    assertPlaced(c);
    assertOnCrop(c);
    await card(ref).hover();
    const r = await overlay();
    assert.equal(r.id, ref);
    assertPlaced(r);
    // The cover fills most of the phone photo (corners may lie a little outside it).
    for (const [x, y] of r.points) assert.ok(x > -0.1 && x < 1.1 && y > -0.1 && y < 1.1, `corner ${x}, ${y}`);
    const area = Math.abs(r.points.reduce((s, [x, y], i) => { const [u, v] = r.points[(i + 1) % 4]; return s + x * v - u * y; }, 0)) / 2;
    assert.ok(area > 0.3, `the cover's outline covers ${area} of the photo`);
  });

  it('follows the pointer and the keyboard focus, and the badge pins an outline', async () => {
    const first = (await page.locator('#grid .card.verified').first().getAttribute('data-id'))!;
    const second = (await page.locator('#grid .card.verified').nth(1).getAttribute('data-id'))!;
    await page.mouse.move(2, 2); // off the cards: the default again
    assert.equal((await overlay()).id, first);
    assert.equal(await classes(first), 'verified outlined');

    await card(second).locator('.thumb').focus();
    assert.equal((await overlay()).id, second, 'focus on a verified card shows its outline');
    assert.equal(await classes(second), 'verified outlined');
    assert.equal(await classes(first), 'verified');
    await page.keyboard.press('Tab'); // to its badge: still inside the card
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'verify');
    assert.equal((await overlay()).id, second);
    await page.keyboard.press('Enter'); // pins it
    assert.equal(await card(second).locator('.verify').getAttribute('aria-pressed'), 'true');
    assert.equal(await card(first).locator('.verify').getAttribute('aria-pressed'), 'false');
    await page.locator('#k').focus(); // focus leaves the grid: the pinned one stays
    assert.equal((await overlay()).id, second);
    await card(first).hover();
    assert.equal((await overlay()).id, first, 'hover shows another');
    await page.mouse.move(2, 2);
    assert.equal((await overlay()).id, second);

    // Choosing a result (Enter on its image) still searches by it: another image, no outline.
    const path2 = (await card(second).getAttribute('data-path'))!;
    await card(second).locator('.thumb').press('Enter');
    await page.waitForFunction((n) => document.getElementById('status')!.textContent!.includes(` similar to ${n} · `), `library/${path.basename(path2)}`);
    const byId = await overlay();
    assert.equal(byId.shown, false, 'no outline over another image');
    assert.equal(byId.points.length, 0);
    assert.equal(await page.locator('#query-found').isHidden(), true);
    assert.equal(await page.locator('#grid .card.outlined').count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('thumb')), true, 'the keyboard focus is on the first result');

    // Back to the photo: its outlines again, the first verified hit by default.
    await page.locator('#back').click();
    await page.waitForFunction(() => /similar images to your photo/.test(document.getElementById('status')!.textContent ?? ''));
    await page.mouse.move(2, 2);
    await page.locator('#k').focus();
    const back = await overlay();
    assertPlaced(back);
    assert.equal(back.id, first);
  });

  it('draws nothing for a photo of an object that is not in the library', async () => {
    await upload(UNRELATED);
    const direct = await apiSearch(UNRELATED);
    assert.ok(direct.every((h) => !h.verified && !h.outline), JSON.stringify(direct.map((h) => [h.path, h.inliers])));
    assert.equal(await page.locator('#grid .verify').count(), 0);
    const o = await overlay();
    assert.equal(o.shown, false);
    assert.equal(o.points.length, 0);
    assert.equal(await page.locator('#query-found').isHidden(), true);
    assert.equal(await page.locator('#query').isVisible(), true, 'the photo itself is still shown');
  });

  it('outlines a photo stored sideways (EXIF orientation 6) as the browser displays it', async () => {
    const meta = await sharp(sideways).metadata();
    assert.equal(meta.orientation, 6);
    assert.ok(meta.height > meta.width, 'stored portrait');
    await upload(sideways);
    await page.mouse.move(2, 2);
    await page.locator('#k').focus();
    const o = await overlay();
    assert.ok(o.natural[0] > o.natural[1], `displayed landscape, as the phone took it: ${o.natural}`);
    assertPlaced(o);
    const crop = (await idOf('crop.jpg'))!;
    await card(crop).hover();
    const c = await overlay();
    assert.equal(c.id, crop);
    assertOnCrop(c);
    await page.mouse.move(2, 2);
  });

  it('fits a phone-width screen: no overflow, the outline on the photo, the badge pins and shows it', async () => {
    await upload(QUERY);
    await page.setViewportSize({ width: 375, height: 740 });
    await page.waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth);
    const widths = await page.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      view: window.innerWidth,
      wider: [...document.querySelectorAll('#view-search *')].filter((e) => {
        const b = e.getBoundingClientRect();
        return b.width > 0 && (b.right > window.innerWidth + 0.5 || b.left < -0.5) && !e.closest('.visually-hidden');
      }).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute('class')}`),
    }));
    assert.ok(widths.doc <= widths.view, `no horizontal scroll: ${widths.doc} > ${widths.view}`);
    assert.deepEqual(widths.wider, [], 'nothing wider than the screen');
    const o = await overlay();
    assertPlaced(o);
    assert.ok(o.img.x >= 0 && o.img.x + o.img.w <= 375, JSON.stringify(o.img));
    for (const badge of await page.locator('#grid .verify').all()) {
      const b = (await badge.boundingBox())!;
      const c = (await badge.locator('xpath=ancestor::li[1]').boundingBox())!;
      assert.ok(b.x >= c.x && b.x + b.width <= c.x + c.width, 'the badge fits its card');
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'verified-phone.png') });

    // Below the photo, a tap on the second verified card's badge outlines it and brings the photo back.
    const second = (await page.locator('#grid .card.verified').nth(1).getAttribute('data-id'))!;
    await card(second).locator('.verify').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.getElementById('query')!.getBoundingClientRect().bottom <= 0);
    await card(second).locator('.verify').click();
    assert.equal(await card(second).locator('.verify').getAttribute('aria-pressed'), 'true');
    await page.waitForFunction(() => {
      const b = document.getElementById('query')!.getBoundingClientRect();
      return b.bottom > 0 && b.top < window.innerHeight;
    });
    await page.mouse.move(2, 2);
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    assert.equal((await overlay()).id, second, 'pinned: shown with neither pointer nor focus on it');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('logged no errors (no CSP violations)', () => {
    assert.deepEqual(consoleErrors, []);
  });
});
