// Makes the HEIC test fixtures in test/fixtures/heic/ (run once; the tests use the shipped files).
// Needs heif-enc (libheif's examples: `apt-get install libheif-examples`; libheif 1.15.1, x265 3.5).
// The picture is drawn here (SVG shapes and gradients, plus a seeded pixel texture): no photo of
// anyone's, no dataset image. Usage: node scripts/make-heic-fixtures.mjs
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

const OUT = new URL('../test/fixtures/heic/', import.meta.url).pathname;
const WIDTH = 640;
const HEIGHT = 480;

/** A drawn scene: sky gradient, sun, hills, a house and a fence, in flat colours. */
function scene(width, height) {
  const posts = Array.from({ length: 16 }, (_, i) => `<rect x="${20 + i * 38}" y="${height - 120}" width="12" height="70" fill="#f4efe6"/>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
  <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#2f6db5"/><stop offset="1" stop-color="#f7c98b"/></linearGradient></defs>
  <rect width="${width}" height="${height}" fill="url(#sky)"/>
  <circle cx="${width * 0.78}" cy="${height * 0.22}" r="48" fill="#ffd23f"/>
  <path d="M0 ${height * 0.7} Q ${width * 0.25} ${height * 0.45} ${width * 0.5} ${height * 0.68} T ${width} ${height * 0.6} V ${height} H 0 Z" fill="#3f8f3a"/>
  <rect x="${width * 0.18}" y="${height * 0.42}" width="150" height="110" fill="#b5442c"/>
  <polygon points="${width * 0.18 - 15},${height * 0.42} ${width * 0.18 + 75},${height * 0.27} ${width * 0.18 + 165},${height * 0.42}" fill="#5a3b2e"/>
  <rect x="${width * 0.18 + 60}" y="${height * 0.42 + 50}" width="32" height="60" fill="#2b2b2b"/>
  ${posts}
</svg>`;
}

/** A deterministic texture (xorshift32, seed 19) added to the drawing, so the codec has detail to code. */
function texture(rgb) {
  let s = 19;
  for (let i = 0; i < rgb.length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    rgb[i] = Math.max(0, Math.min(255, rgb[i] + ((s % 25) - 12)));
  }
  return rgb;
}

async function picture(width, height) {
  const { data } = await sharp(Buffer.from(scene(width, height))).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return sharp(texture(data), { raw: { width, height, channels: 3 } });
}

/** The child boxes of b[from, to): [{ type, at (box start), start (payload), end }]. */
function children(b, from, to) {
  const list = [];
  for (let at = from; at + 8 <= to; ) {
    const size = b.readUInt32BE(at);
    list.push({ type: b.toString('latin1', at + 4, at + 8), at, start: at + 8, end: at + size });
    at += size;
  }
  return list;
}

/**
 * Adds an `irot` property (rotation by 90° x `quarters`, anticlockwise) to the primary item of a
 * heif-enc file: heif-enc 1.15 writes none. Grows ipco, ipma and their parents, and moves the
 * iloc extents (absolute offsets into mdat, after meta) by the bytes inserted.
 */
function addRotation(file, quarters) {
  const b = fs.readFileSync(file);
  const meta = children(b, 0, b.length).find((x) => x.type === 'meta');
  const inMeta = children(b, meta.start + 4, meta.end);
  const iprp = inMeta.find((x) => x.type === 'iprp');
  const iloc = inMeta.find((x) => x.type === 'iloc');
  const [ipco, ipma] = ['ipco', 'ipma'].map((t) => children(b, iprp.start, iprp.end).find((x) => x.type === t));
  if (b[ipma.start] !== 0 || (b.readUInt32BE(ipma.start) & 1) !== 0 || b.readUInt32BE(ipma.start + 4) !== 1) throw new Error('expected one ipma v0 entry with 7-bit indexes');
  const index = children(b, ipco.start, ipco.end).length + 1; // the new property's 1-based index
  const irot = Buffer.from([0, 0, 0, 9, ...Buffer.from('irot'), quarters & 3]);
  const countAt = ipma.start + 4 + 4 + 2; // version/flags, entry_count, item_ID (16 bits)
  const grown = 9 + 1;
  const out = Buffer.concat([b.subarray(0, ipco.end), irot, b.subarray(ipco.end, ipma.end), Buffer.from([0x80 | index]), b.subarray(ipma.end)]);
  const shift = (at, by) => out.writeUInt32BE(out.readUInt32BE(at) + by, at);
  for (const box of [meta, iprp]) shift(box.at, grown);
  shift(ipco.at, 9);
  shift(ipma.at + 9, 1); // ipma sits 9 bytes later now
  out[countAt + 9] += 1;
  // iloc version 0/1 with 4-byte offsets, lengths and base offsets (what heif-enc writes): move each item's base
  const sizes = out.readUInt16BE(iloc.start + 4);
  if (sizes !== 0x4440 || out[iloc.start] > 1) throw new Error(`unexpected iloc layout ${sizes.toString(16)}`);
  const version = out[iloc.start];
  let at = iloc.start + 6;
  const items = out.readUInt16BE(at);
  at += 2;
  for (let i = 0; i < items; i++) {
    at += 2 + (version === 1 ? 2 : 0) + 2; // item_ID, construction_method, data_reference_index
    shift(at, grown); // base_offset
    const extents = out.readUInt16BE(at + 4);
    at += 6 + extents * 8;
  }
  fs.writeFileSync(file, out);
}

function heifEnc(input, output, quality) {
  execFileSync('heif-enc', ['-q', String(quality), '-o', output, input], { stdio: 'inherit' });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-heic-'));
try {
  fs.mkdirSync(OUT, { recursive: true });
  // scene.heic: 640x480, quality 40
  const png = path.join(tmp, 'scene.png');
  await (await picture(WIDTH, HEIGHT)).png().toFile(png);
  heifEnc(png, path.join(OUT, 'scene.heic'), 40);
  // rotated.heic: the same scene coded at 160x120, with an irot of 90° anticlockwise: shown 120x160
  const small = path.join(tmp, 'small.png');
  await (await picture(160, 120)).png().toFile(small);
  heifEnc(small, path.join(OUT, 'rotated.heic'), 50);
  addRotation(path.join(OUT, 'rotated.heic'), 1);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
