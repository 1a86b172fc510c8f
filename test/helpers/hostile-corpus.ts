/**
 * A corpus of hostile image files made from one real photo (and the shipped HEIC fixture): broken, disguised, oversized and
 * exotic inputs. `makeCorpus` writes them into a folder and returns what each one is.
 * Deterministic: the bit flips come from a seeded generator.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { seededRandom } from '../../src/random.ts';
import { HEIC_SCENE, heicWithSize, scrambleAfter } from './heic.ts';

/** Seeded PRNG: the same seed gives the same corpus. */
export const rng = seededRandom;

/** One hostile file: its name in the corpus folder and its bytes (file-system cases have none). */
export interface HostileFile {
  name: string;
  /** What it is, for messages. */
  what: string;
  bytes: Buffer;
}


/** Flips `count` bits at seeded positions at or after byte `from`. */
function flipBits(buf: Buffer, count: number, from: number, seed: number): Buffer {
  const out = Buffer.from(buf);
  const r = rng(seed);
  for (let i = 0; i < count; i++) {
    const at = from + Math.floor(r() * (out.length - from));
    out[at] ^= 1 << Math.floor(r() * 8);
  }
  return out;
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A valid 1-bit grayscale PNG of `side`x`side` zero pixels: a few KB on disk, `side`² pixels
 * decoded (the decompression bomb).
 */
export function bombPng(side: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  // Each row: filter byte 0 then zero pixels; 32 MB raw for 16000², ~32 KB deflated.
  const raw = Buffer.alloc((1 + Math.ceil(side / 8)) * side);
  const idat = zlib.deflateSync(raw, { level: 9 });
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A copy of a JPEG whose frame header (SOF) claims `width`x`height`. */
export function jpegWithSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i < out.length - 9; ) {
    if (out[i] !== 0xff) throw new Error('not a JPEG marker stream');
    const marker = out[i + 1];
    const len = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker');
}

/** A copy of a PNG whose IHDR claims `width`x`height` (CRC fixed, so only the size lies). */
export function pngWithSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** A copy of a GIF whose logical screen claims `width`x`height`. */
function gifWithScreen(gif: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(gif);
  out.writeUInt16LE(width, 6);
  out.writeUInt16LE(height, 8);
  return out;
}

/** A minimal ZIP archive holding one stored file. */
function zipBytes(): Buffer {
  const name = Buffer.from('hello.txt');
  const data = Buffer.from('hello\n');
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(10, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(name.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(10, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(name.length, 28);
  const end = Buffer.alloc(22);
  const cdOffset = local.length + name.length + data.length;
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + name.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, name, data, central, name, end]);
}

/** An SVG that expands entities a billion times if a parser lets it ("billion laughs"). */
const SVG_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE svg [
<!ENTITY a "lollollollollollollollollollol">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
<!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
<!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
]>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><text>&i;</text></svg>
`;

/** Builds the byte-level hostile files from one real JPEG photo. */
export async function hostileFiles(photoPath: string): Promise<HostileFile[]> {
  const jpeg = fs.readFileSync(photoPath);
  const heic = fs.readFileSync(HEIC_SCENE);
  const small = sharp(jpeg).resize(320, 240, { fit: 'cover' });
  const png = await small.clone().png().toBuffer();
  const webp = await small.clone().webp({ quality: 80 }).toBuffer();
  const smallJpeg = await small.clone().jpeg({ quality: 85 }).toBuffer();
  const frame = (i: number) => sharp(jpeg).resize(64, 64, { fit: 'cover' }).modulate({ hue: i * 90 }).raw().toBuffer();
  const frames = await Promise.all([0, 1, 2].map(frame));
  const gif = await sharp(Buffer.concat(frames), { raw: { width: 64, height: 64 * 3, channels: 3, pageHeight: 64 } })
    .gif({ loop: 0, delay: [100, 100, 100] })
    .toBuffer();

  return [
    { name: 'ok-photo.jpg', what: 'the untouched photo (control)', bytes: jpeg },
    { name: 'png-named.jpg', what: 'a valid PNG with a .jpg extension', bytes: png },
    { name: 'truncated.jpg', what: 'JPEG cut in half', bytes: jpeg.subarray(0, jpeg.length >> 1) },
    { name: 'truncated.png', what: 'PNG cut in half', bytes: png.subarray(0, png.length >> 1) },
    { name: 'truncated.webp', what: 'WebP cut in half', bytes: webp.subarray(0, webp.length >> 1) },
    { name: 'bitflip.jpg', what: 'JPEG with 40 flipped bits after its headers', bytes: flipBits(smallJpeg, 40, 700, 1) },
    { name: 'bitflip-heavy.jpg', what: 'JPEG with 3000 flipped bits after its headers', bytes: flipBits(smallJpeg, 3000, 700, 4) },
    { name: 'bitflip.png', what: 'PNG with 40 flipped bits in its data', bytes: flipBits(png, 40, 100, 2) },
    { name: 'bitflip.webp', what: 'WebP with 40 flipped bits in its data', bytes: flipBits(webp, 40, 64, 3) },
    { name: 'empty.jpg', what: 'zero bytes', bytes: Buffer.alloc(0) },
    { name: 'notes.jpg', what: 'plain text', bytes: Buffer.from('These are not the pixels you are looking for.\n'.repeat(20)) },
    { name: 'page.png', what: 'an HTML page', bytes: Buffer.from('<!doctype html><html><head><title>x</title></head><body><img src=x onerror=alert(1)></body></html>\n') },
    { name: 'doc.jpg', what: 'a PDF', bytes: Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n') },
    { name: 'archive.webp', what: 'a ZIP archive', bytes: zipBytes() },
    { name: 'laughs.png', what: 'an SVG billion-laughs entity bomb', bytes: Buffer.from(SVG_LAUGHS) },
    { name: 'bomb.png', what: 'a decompression bomb: 1-bit PNG of 16000x16000 (256 MP)', bytes: bombPng(16000) },
    { name: 'huge-header.jpg', what: 'a JPEG whose header claims 65000x65000', bytes: jpegWithSize(smallJpeg, 65000, 65000) },
    { name: 'huge-header.png', what: 'a PNG whose header claims 100000x100000', bytes: pngWithSize(png, 100_000, 100_000) },
    { name: 'huge-screen.gif', what: 'a GIF whose screen claims 65535x65535', bytes: gifWithScreen(gif, 65535, 65535) },
    { name: 'tiny-1x1.png', what: 'a 1x1 image', bytes: await sharp({ create: { width: 1, height: 1, channels: 3, background: '#c04020' } }).png().toBuffer() },
    { name: 'deep-16bit.png', what: 'a 16-bit RGB PNG', bytes: await small.clone().toColourspace('rgb16').png().toBuffer() },
    { name: 'cmyk.jpg', what: 'a CMYK JPEG', bytes: await small.clone().toColourspace('cmyk').jpeg().toBuffer() },
    { name: 'animated.gif', what: 'an animated GIF of 3 frames', bytes: gif },
    { name: 'scene.heic', what: 'a HEIC (HEVC in HEIF) photo-like scene', bytes: heic },
    { name: 'truncated.heic', what: 'HEIC cut in half', bytes: heic.subarray(0, heic.length >> 1) },
    { name: 'corrupt.heic', what: 'HEIC with its HEVC decoder configuration (hvcC) scrambled', bytes: scrambleAfter(heic, 'hvcC', 56) },
    { name: 'huge-ispe.heic', what: 'a HEIC whose ispe claims 30000x30000', bytes: heicWithSize(heic, 30000, 30000) },
  ];
}

/** Writes `files` into `dir` (created). */
export function writeCorpus(dir: string, files: HostileFile[]): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of files) fs.writeFileSync(path.join(dir, f.name), f.bytes);
}
