/**
 * HEIC/HEIF (issue 19): decoded by the wasm libheif into the same sharp pipeline as every format,
 * in worker threads too; rotated by its `irot`; refused from its container when too large, typed
 * errors when truncated or corrupt; and, in a library of real photos, found by an upload of itself
 * and of its JPEG conversion, with a thumbnail. AVIF keeps going through sharp.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { Thumbnails } from '../server/thumbnails.ts';
import { Engine } from '../src/engine.ts';
import { BadImageError } from '../src/errors.ts';
import { decodeImage } from '../src/image/decode.ts';
import { openHeic } from '../src/image/heic.ts';
import { inspectHeif } from '../src/image/heif.ts';
import { seededRandom } from '../src/random.ts';
import { openBrowser, startServer, type TestServer } from './helpers/browser.ts';
import { chromiumSkip } from './helpers/chromium.ts';
import { HEIC_ROTATED, HEIC_SCENE, heicWithSize, scrambleAfter } from './helpers/heic.ts';
import { HYM_TRAIN, REPO, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const OPTS = { size: 224, maxInputPixels: 100_000_000 };
const scene = fs.readFileSync(HEIC_SCENE);

async function expectBad(input: Buffer, code: string): Promise<BadImageError> {
  const err = await decodeImage(input, OPTS, 'input.heic').then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof BadImageError, `expected BadImageError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}

/** The decoded HEIC as raw RGB. */
async function rgbOf(heic: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const image = await openHeic(heic, OPTS.maxInputPixels, 'fixture');
  assert.ok(image, 'a HEIC');
  const { data, info } = await image.pipeline().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('HEIC decoding', () => {
  it('reads the container: HEVC codec, ispe size, complete; AVIF is AV1; a JPEG is not HEIF', async () => {
    assert.deepEqual(inspectHeif(scene), { codec: 'hevc', width: 640, height: 480, complete: true });
    assert.equal(inspectHeif(scene.subarray(0, scene.length - 1))?.complete, false);
    const avif = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } }).avif().toBuffer();
    assert.equal(inspectHeif(avif)?.codec, 'av1');
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).jpeg().toBuffer();
    assert.equal(inspectHeif(jpeg), undefined);
  });

  it('decodes the HEIC fixture into 224x224 RGB with its size, matching its own JPEG conversion', async () => {
    const img = await decodeImage(scene, OPTS, HEIC_SCENE);
    assert.deepEqual([img.width, img.height, img.format, img.pixels.length], [640, 480, 'heic', 224 * 224 * 3]);
    const { data, width, height } = await rgbOf(scene);
    const jpeg = await sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
    const fromJpeg = await decodeImage(jpeg, OPTS, 'conversion.jpg');
    let diff = 0;
    for (let i = 0; i < img.pixels.length; i++) diff += Math.abs(img.pixels[i] - fromJpeg.pixels[i]);
    assert.ok(diff / img.pixels.length < 3, `mean difference ${diff / img.pixels.length}`);
    // the drawn scene: a blue sky at the top, green hills at the bottom
    const at = (x: number, y: number) => [...data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
    const [r, g, b] = at(20, 5);
    assert.ok(b > r + 60 && b > 120, `sky ${[r, g, b]}`);
    const [r2, g2, b2] = at(600, 470);
    assert.ok(g2 > r2 + 30 && g2 > b2 + 30, `grass ${[r2, g2, b2]}`);
  });

  it('applies the irot rotation: 160x120 coded, 120x160 shown, the sun moved to the top left', async () => {
    assert.deepEqual(inspectHeif(fs.readFileSync(HEIC_ROTATED)), { codec: 'hevc', width: 160, height: 120, complete: true });
    const { data, width, height } = await rgbOf(fs.readFileSync(HEIC_ROTATED));
    assert.deepEqual([width, height], [120, 160]);
    // the sun is at (125, 26) of the 160x120 drawing: 90° anticlockwise puts it at (26, 35), clockwise at (93, 125)
    const px = (x: number, y: number) => [...data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
    const [r, g, b] = px(26, 35);
    assert.ok(r > 200 && g > 160 && b < 120, `sun ${[r, g, b]}`);
    const [r2, , b2] = px(93, 125);
    assert.ok(!(r2 > 200 && b2 < 120), 'no sun where a clockwise turn would put it');
    const decoded = await decodeImage(fs.readFileSync(HEIC_ROTATED), OPTS, 'rotated.heic');
    assert.deepEqual([decoded.width, decoded.height], [120, 160]);
  });

  it('refuses a truncated HEIC (TRUNCATED_IMAGE) and a corrupt one (CORRUPT_IMAGE)', async () => {
    for (const cut of [scene.length >> 1, 200, scene.length - 1]) await expectBad(scene.subarray(0, cut), 'TRUNCATED_IMAGE');
    const hvcc = await expectBad(scrambleAfter(scene, 'hvcC', 56), 'CORRUPT_IMAGE');
    assert.match(hvcc.message, /input\.heic could not be decoded \(HEIC\): /);
    await expectBad(scrambleAfter(scene, 'mdat', 200), 'CORRUPT_IMAGE');
  });

  it('refuses a HEIC whose ispe is over the pixel limit from its header, before decoding', async () => {
    const err = await expectBad(heicWithSize(scene, 30000, 30000), 'IMAGE_TOO_LARGE');
    assert.match(err.message, /30000x30000 \(900000000 pixels\), over the limit of 100000000/);
    // the limit is the engine's: a small one refuses the real 640x480 too
    const small = await decodeImage(scene, { ...OPTS, maxInputPixels: 640 * 480 - 1 }, 'x').then(() => undefined, (e: unknown) => e);
    assert.ok(small instanceof BadImageError && small.code === 'IMAGE_TOO_LARGE');
  });

  it('reads damaged containers without throwing, and decodes them to a picture or a typed error (seeded fuzz)', async () => {
    const rand = seededRandom(19);
    const damaged: Buffer[] = [];
    for (let n = 0; n < 1200; n++) damaged.push(scene.subarray(0, n)); // every cut through the boxes before mdat
    for (let i = 0; i < 3000; i++) {
      const copy = Buffer.from(scene);
      const flips = 1 + Math.floor(rand() * 8);
      for (let f = 0; f < flips; f++) copy[Math.floor(rand() * 1200)] = Math.floor(rand() * 256); // in ftyp and meta
      damaged.push(copy);
    }
    for (const bytes of damaged) inspectHeif(bytes); // throws nothing
    const outcomes = new Map<string, number>();
    for (const bytes of damaged.filter((_, i) => i % 40 === 7)) {
      const code = await decodeImage(bytes, OPTS, 'fuzzed.heic').then(
        () => 'decoded',
        (e: unknown) => (e instanceof BadImageError ? e.code : `untyped: ${String(e)}`),
      );
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    process.stderr.write(`# fuzzed HEICs: ${JSON.stringify(Object.fromEntries(outcomes))}\n`);
    const untyped = [...outcomes.keys()].filter((c) => c.startsWith('untyped'));
    assert.deepEqual(untyped, [], JSON.stringify(Object.fromEntries(outcomes)));
    assert.ok((outcomes.get('TRUNCATED_IMAGE') ?? 0) > 0 && (outcomes.get('CORRUPT_IMAGE') ?? 0) + (outcomes.get('UNSUPPORTED_IMAGE') ?? 0) > 0, JSON.stringify(Object.fromEntries(outcomes)));
    assert.equal((await decodeImage(scene, OPTS, 'after the fuzz')).format, 'heic', 'the decoder still works');
  });

  it('still decodes AVIF through sharp', async () => {
    const avif = await sharp({ create: { width: 96, height: 64, channels: 3, background: '#c04020' } }).avif({ lossless: true }).toBuffer();
    const img = await decodeImage(avif, OPTS, 'x.avif');
    assert.deepEqual([img.width, img.height, img.format], [96, 64, 'heif']);
    assert.ok(Math.abs(img.pixels[0] - 0xc0) < 4 && Math.abs(img.pixels[2] - 0x20) < 4, `${img.pixels.subarray(0, 3)}`);
  });

  it('decodes in a worker thread, in that thread', async () => {
    const decodeUrl = new URL('../src/image/decode.ts', import.meta.url).href;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(decodeUrl)}); })
        .then(({ decodeImage }) => decodeImage(new Uint8Array(workerData), { size: 224, maxInputPixels: 1e8 }, 'w.heic'))
        .then((img) => parentPort.postMessage({ width: img.width, height: img.height, format: img.format, bytes: img.pixels.length }),
              (err) => parentPort.postMessage({ error: String(err) }));`;
    const worker = new Worker(code, { eval: true, workerData: scene, cwd: REPO } as ConstructorParameters<typeof Worker>[1]);
    const answer = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    await worker.terminate();
    assert.deepEqual(answer, { width: 640, height: 480, format: 'heic', bytes: 224 * 224 * 3 });
  });

  it('does not leak over 200 decodes (RSS)', async () => {
    const rss = () => process.memoryUsage().rss;
    for (let i = 0; i < 20; i++) await decodeImage(scene, OPTS, 'warm-up'); // the wasm heap reaches its high-water mark
    const start = rss();
    for (let i = 0; i < 200; i++) await decodeImage(scene, OPTS, `round ${i}`);
    const grown = (rss() - start) / 1048576;
    process.stderr.write(`# 200 HEIC decodes: RSS ${Math.round(start / 1048576)} MB, grew ${grown.toFixed(1)} MB\n`);
    assert.ok(grown < 40, `RSS grew ${grown.toFixed(1)} MB over 200 decodes (a 640x480 RGBA is 1.2 MB)`);
  });
});

describe('HEIC in a library of real photos', () => {
  const tmp = tempDir();
  const photos = [...imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, 10), ...imagesIn(path.join(HYM_TRAIN, 'bees')).slice(0, 10)];
  const folder = path.join(tmp.dir, 'photos');
  const heicPath = path.join(folder, 'scene.heic');
  let engine: Engine;
  let server: TestServer;
  let base: string;
  let conversion: Buffer;

  before(async () => {
    fs.mkdirSync(folder);
    for (const p of photos) fs.copyFileSync(p, path.join(folder, path.basename(p)));
    fs.copyFileSync(HEIC_SCENE, heicPath);
    const { data, width, height } = await rgbOf(scene);
    conversion = await sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    server = await startServer(engine);
    base = server.base;
  });
  after(async () => {
    await server?.close();
    await engine?.close();
    tmp.cleanup();
  });

  it('indexes the HEIC beside 20 photos; an upload of itself finds it at 1.000, of its JPEG conversion first', async () => {
    const summary = await engine.index([folder]);
    assert.deepEqual([summary.added, summary.failed], [21, 0], JSON.stringify(summary.errors));
    const id = engine.resolve(heicPath);
    const self = await engine.search(scene, { k: 5 });
    assert.equal(self[0].id, id);
    assert.equal(self[0].score.toFixed(3), '1.000');
    const converted = await engine.search(conversion, { k: 5 });
    assert.equal(converted[0].id, id, `first: ${converted[0].path}`);
    assert.ok(converted[0].score > converted[1].score + 0.05, `${converted[0].score} vs ${converted[1].score}`);
  });

  it('gets a thumbnail (server/thumbnails.ts), rotated like the image', async () => {
    const t = new Thumbnails({ size: 128, cacheBytes: 0, maxInputPixels: OPTS.maxInputPixels });
    const { createHash } = await import('node:crypto');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const jpeg = await t.get({ id: 1, path: HEIC_SCENE, sha256: sha(scene) }, 'jpeg');
    const meta = await sharp(jpeg).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 128, 96]);
    const rotated = fs.readFileSync(HEIC_ROTATED);
    const webp = await t.get({ id: 2, path: HEIC_ROTATED, sha256: sha(rotated) }, 'webp');
    const wmeta = await sharp(webp).metadata();
    assert.deepEqual([wmeta.format, wmeta.width, wmeta.height], ['webp', 96, 128]);
  });

  it('over HTTP: POST /api/search with a HEIC upload finds it, its thumbnail and preview are served; a truncated one is a 400', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(scene)], { type: 'image/heic' }), 'IMG_0001.HEIC');
    const res = await fetch(`${base}/api/search?k=3`, { method: 'POST', body: form });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { results: Array<{ id: number; path: string; score: number }> };
    assert.equal(body.results[0].path, heicPath);
    assert.equal(body.results[0].score.toFixed(3), '1.000');
    const raw = await fetch(`${base}/api/search`, { method: 'POST', body: new Uint8Array(conversion), headers: { 'content-type': 'image/jpeg' } });
    assert.equal(((await raw.json()) as typeof body).results[0].path, heicPath);
    const thumb = await fetch(`${base}/api/images/${body.results[0].id}/thumbnail`);
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    assert.equal(Math.max(meta.width ?? 0, meta.height ?? 0), 256);
    const cut = await fetch(`${base}/api/search`, { method: 'POST', body: new Uint8Array(scene.subarray(0, 5000)), headers: { 'content-type': 'image/heic' } });
    assert.equal(cut.status, 400);
    assert.equal(((await cut.json()) as { error: { code: string } }).error.code, 'TRUNCATED_IMAGE');
    // the web page's preview of a HEIC it cannot show: a JPEG thumbnail; other formats are the browser's
    const preview = await fetch(`${base}/api/preview`, { method: 'POST', body: new Uint8Array(scene), headers: { 'content-type': 'image/heic' } });
    assert.equal(preview.headers.get('content-type'), 'image/jpeg');
    const pmeta = await sharp(Buffer.from(await preview.arrayBuffer())).metadata();
    assert.deepEqual([pmeta.format, pmeta.width, pmeta.height], ['jpeg', 256, 192]);
    const notHeic = await fetch(`${base}/api/preview`, { method: 'POST', body: new Uint8Array(conversion), headers: { 'content-type': 'image/jpeg' } });
    assert.equal(notHeic.status, 415);
    assert.equal(((await notHeic.json()) as { error: { code: string } }).error.code, 'UNSUPPORTED_IMAGE');
    const cutPreview = await fetch(`${base}/api/preview`, { method: 'POST', body: new Uint8Array(scene.subarray(0, 5000)), headers: { 'content-type': 'image/heic' } });
    assert.equal(cutPreview.status, 400);
  });

  it('in the web page: choosing a .heic photo shows it first, with its thumbnail, and a preview of the photo sent', { skip: chromiumSkip() }, async () => {
    const errors: string[] = [];
    const { context, page } = await openBrowser(tmp.dir, errors);
    try {
      await page.goto(base);
      await page.locator('#file').setInputFiles(HEIC_SCENE);
      await page.waitForFunction((p) => (document.querySelector('#grid .card') as HTMLElement | null)?.dataset.path === p, heicPath, { timeout: 30_000 });
      const first = page.locator('#grid .card img').first();
      await page.waitForFunction(() => { const i = document.querySelector<HTMLImageElement>('#grid .card img'); return !!i && i.complete && i.naturalWidth > 0; });
      assert.ok(await first.evaluate((i: HTMLImageElement) => i.naturalWidth === 256 && i.naturalHeight === 192), 'the HEIC thumbnail, 256x192');
      // Chromium cannot show the HEIC it sent: the page shows the server's preview of it instead
      await page.waitForFunction(() => { const q = document.getElementById('query-img') as HTMLImageElement; return q.complete && q.naturalWidth === 256; });
      fs.mkdirSync(path.join(REPO, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: path.join(REPO, 'test-artifacts', 'heic.png') });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
