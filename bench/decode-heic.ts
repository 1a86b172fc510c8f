/**
 * HEIC vs JPEG decoding at the same pixel count: `decodeImage` (what indexing and uploads run:
 * decode, EXIF/irot orientation, resize and crop to 224) on the same picture coded both ways,
 * median ms per image and megapixels per second; sharp shrinks a JPEG while decoding it (DCT
 * scaling), so `jpegFullMs` adds a full-size JPEG decode, the codecs pixel for pixel. HEIC goes through the wasm libheif (from the
 * main thread: in its decoder thread, pixels transferred back), JPEG through sharp.
 *
 * The shipped fixture (test/fixtures/heic/scene.heic, 640x480) is always measured; with heif-enc
 * on the PATH (Debian: libheif-examples) the same scene is also coded at phone-photo sizes.
 *
 *   node --import tsx bench/decode-heic.ts [--rounds N]      (bench:index prints it too)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { decodeImage } from '../src/image/decode.ts';
import { openHeic } from '../src/image/heic.ts';

const FIXTURE = new URL('../test/fixtures/heic/scene.heic', import.meta.url).pathname;
/** Larger sizes coded with heif-enc when it is installed: 3 MP and a 12 MP phone photo. */
const SIZES: ReadonlyArray<[number, number]> = [[2016, 1512], [4032, 3024]];
const OPTS = { size: 224, maxInputPixels: 100_000_000 };

export interface HeicVsJpeg {
  width: number;
  height: number;
  heicBytes: number;
  jpegBytes: number;
  /** Median ms per image. */
  heicMs: number;
  jpegMs: number;
  heicMpPerSec: number;
  jpegMpPerSec: number;
  /** The JPEG decoded to full-size RGB (sharp, no shrink-on-load): the codecs alone, pixel for pixel. */
  jpegFullMs: number;
  /** How many times longer a HEIC takes than a JPEG of the same pixels. */
  heicVsJpeg: number;
}

function hasHeifEnc(): boolean {
  try {
    execFileSync('heif-enc', ['--list-encoders'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function medianMs(run: () => Promise<unknown>, rounds: number): Promise<number> {
  await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}

async function measure(heic: Buffer, rounds: number): Promise<HeicVsJpeg> {
  const image = await openHeic(heic, OPTS.maxInputPixels, 'bench');
  if (!image) throw new Error('not a HEIC');
  const jpeg = await image.pipeline().removeAlpha().jpeg({ quality: 90 }).toBuffer();
  const heicMs = await medianMs(() => decodeImage(heic, OPTS, 'bench'), rounds);
  const jpegMs = await medianMs(() => decodeImage(jpeg, OPTS, 'bench'), rounds);
  const jpegFullMs = await medianMs(() => sharp(jpeg).raw().toBuffer(), rounds);
  const mp = (image.width * image.height) / 1e6;
  const r = (x: number, d = 10) => Math.round(x * d) / d;
  return {
    width: image.width, height: image.height, heicBytes: heic.length, jpegBytes: jpeg.length,
    heicMs: r(heicMs), jpegMs: r(jpegMs), heicMpPerSec: r(mp / (heicMs / 1000)), jpegMpPerSec: r(mp / (jpegMs / 1000)),
    jpegFullMs: r(jpegFullMs), heicVsJpeg: r(heicMs / jpegMs, 100),
  };
}

/** The shipped fixture, then (with heif-enc) the same scene coded at SIZES. */
export async function heicVsJpeg(rounds = 7): Promise<HeicVsJpeg[]> {
  const fixture = fs.readFileSync(FIXTURE);
  const out = [await measure(fixture, rounds)];
  if (!hasHeifEnc()) return out;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-heic-bench-'));
  try {
    const scene = await openHeic(fixture, OPTS.maxInputPixels, 'fixture');
    for (const [width, height] of SIZES) {
      const png = path.join(tmp, `${width}.png`);
      const heic = path.join(tmp, `${width}.heic`);
      await scene!.pipeline().removeAlpha().resize(width, height).png({ compressionLevel: 1 }).toFile(png);
      execFileSync('heif-enc', ['-q', '50', '-o', heic, png], { stdio: 'ignore' });
      out.push(await measure(fs.readFileSync(heic), Math.max(3, rounds >> 1)));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
  console.log(JSON.stringify({ heic: await heicVsJpeg(Number(values.rounds)), loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100) }));
}
