/**
 * Decoding: formats, EXIF orientation, and typed errors for bad input (made here from real photos).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { decodeImage } from '../src/image/decode.ts';
import { BadImageError } from '../src/errors.ts';
import { Engine } from '../src/engine.ts';
import { HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const OPTS = { size: 224, maxInputPixels: 100_000_000 };
const photo = imagesIn(HYM_VAL)[0];
const photoBytes = fs.readFileSync(photo);

/** A PNG whose header claims 50000x50000 pixels (a decompression bomb's header). */
async function hugeHeaderPng(): Promise<Buffer> {
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer();
  png.writeUInt32BE(50000, 16);
  png.writeUInt32BE(50000, 20);
  return png;
}

async function expectBad(input: Buffer, code: string): Promise<BadImageError> {
  const err = await decodeImage(input, OPTS, 'input').then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof BadImageError, `expected BadImageError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}

describe('decodeImage', () => {
  it('decodes a JPEG photo into 224x224 RGB bytes and keeps its original size', async () => {
    const meta = await sharp(photoBytes).metadata();
    const img = await decodeImage(photoBytes, OPTS, photo);
    assert.equal(img.pixels.length, 224 * 224 * 3);
    assert.deepEqual([img.width, img.height, img.format], [meta.width, meta.height, 'jpeg']);
  });

  it('accepts PNG, WebP, GIF, TIFF and AVIF, giving the same pixels as the JPEG up to coding noise', async () => {
    const ref = await decodeImage(photoBytes, OPTS);
    const encoders = {
      png: (s: Sharp) => s.png(),
      webp: (s: Sharp) => s.webp({ lossless: true }),
      gif: (s: Sharp) => s.gif(),
      tiff: (s: Sharp) => s.tiff(),
      avif: (s: Sharp) => s.avif({ lossless: true }),
    };
    for (const [format, encode] of Object.entries(encoders)) {
      const img = await decodeImage(await encode(sharp(photoBytes)).toBuffer(), OPTS, format);
      assert.equal(img.format === 'heif' ? 'avif' : img.format, format);
      let diff = 0;
      for (let i = 0; i < ref.pixels.length; i++) diff += Math.abs(ref.pixels[i] - img.pixels[i]);
      const mean = diff / ref.pixels.length;
      assert.ok(mean < (format === 'gif' ? 12 : 4), `${format}: mean abs pixel difference ${mean}`);
    }
  });

  it('applies EXIF orientation (a photo stored sideways comes out upright)', async () => {
    // Smoothed so that a one-pixel resampling offset does not dominate the comparison.
    const upright = await sharp(photoBytes).resize(300, 200, { fit: 'fill' }).blur(2).png().toBuffer();
    const meanDiff = (a: Uint8Array, b: Uint8Array): number => {
      let d = 0;
      for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
      return d / a.length;
    };
    const ref = await decodeImage(upright, OPTS);
    // Pixels stored rotated 90° counter-clockwise, tagged orientation 6 ("rotate 90° CW to view").
    const sideways = await decodeImage(await sharp(upright).rotate(-90).withMetadata({ orientation: 6 }).png().toBuffer(), OPTS);
    const wrongWay = await decodeImage(await sharp(upright).rotate(90).withMetadata({ orientation: 6 }).png().toBuffer(), OPTS);
    assert.deepEqual([sideways.width, sideways.height], [300, 200]);
    const right = meanDiff(ref.pixels, sideways.pixels);
    const wrong = meanDiff(ref.pixels, wrongWay.pixels);
    assert.ok(right < 5, `mean abs difference ${right}`);
    assert.ok(wrong > 5 * right, `upside-down copy differs by ${wrong}, upright by ${right}`);
  });

  it('refuses a truncated JPEG with TRUNCATED_IMAGE', async () => {
    await expectBad(photoBytes.subarray(0, Math.floor(photoBytes.length / 2)), 'TRUNCATED_IMAGE');
  });

  it('refuses an empty file with EMPTY_IMAGE', async () => {
    await expectBad(Buffer.alloc(0), 'EMPTY_IMAGE');
  });

  it('refuses text with UNSUPPORTED_IMAGE and says which formats work', async () => {
    const err = await expectBad(Buffer.from('this is a text file renamed to .jpg\n'), 'UNSUPPORTED_IMAGE');
    assert.match(err.message, /JPEG, PNG, WebP, GIF, TIFF, AVIF/);
  });

  it('refuses SVG (vector input is not decoded) with UNSUPPORTED_IMAGE', async () => {
    await expectBad(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'), 'UNSUPPORTED_IMAGE');
  });

  it('refuses a 50000x50000 PNG header with IMAGE_TOO_LARGE before allocating it', async () => {
    const err = await expectBad(await hugeHeaderPng(), 'IMAGE_TOO_LARGE');
    assert.match(err.message, /maxInputPixels/);
  });
});

describe('Indexing a folder with bad files', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  it('indexes the good photos and lists each bad file under errors', async () => {
    const lib = path.join(tmp.dir, 'library');
    fs.mkdirSync(lib);
    fs.copyFileSync(photo, path.join(lib, 'good1.jpg'));
    fs.copyFileSync(imagesIn(HYM_VAL)[1], path.join(lib, 'good2.jpg'));
    fs.writeFileSync(path.join(lib, 'truncated.jpg'), photoBytes.subarray(0, Math.floor(photoBytes.length / 2)));
    fs.writeFileSync(path.join(lib, 'empty.jpg'), Buffer.alloc(0));
    fs.writeFileSync(path.join(lib, 'notes.jpg'), 'not an image\n');
    fs.writeFileSync(path.join(lib, 'huge.png'), await hugeHeaderPng());
    fs.writeFileSync(path.join(lib, 'readme.txt'), 'ignored: not an image extension');

    const engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    try {
      const s = await engine.index([lib]);
      assert.equal(s.added, 2);
      assert.equal(s.failed, 4);
      assert.equal(s.total, 6);
      const byFile = Object.fromEntries(s.errors.map((e) => [path.basename(e.path), e.error.split(':')[0]]));
      assert.deepEqual(byFile, { 'truncated.jpg': 'TRUNCATED_IMAGE', 'empty.jpg': 'EMPTY_IMAGE', 'notes.jpg': 'UNSUPPORTED_IMAGE', 'huge.png': 'IMAGE_TOO_LARGE' });
      assert.equal(engine.store.images.getCount(), 2);
    } finally {
      await engine.close();
    }
  });
});
