/**
 * Local features with OpenCV.js (@techstark/opencv-js@4.5.2): loading, extraction from sharp
 * greyscale raw, a compact in-memory form, a file cache, and descriptor matching.
 * The cv module object has a `then`: never await it or resolve a promise with it (NOTES.md).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import sharp from 'sharp';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CV = any;
let cvModule: CV | undefined;
export async function loadCv(): Promise<void> {
  if (cvModule) return;
  const require = createRequire(import.meta.url);
  const cv = require('@techstark/opencv-js');
  while (!cv.Mat) await new Promise((r) => setTimeout(r, 20));
  cvModule = cv; // assigned, never returned from an async function
}
export function cv(): CV {
  if (!cvModule) throw new Error('loadCv() first');
  return cvModule;
}

export interface FeatureConfig {
  detector: 'orb' | 'akaze';
  /** Long side of the query photo, px. */
  q: number;
  /** Long side of a reference image, px. */
  r: number;
  /** Keypoints kept (ORB nfeatures; AKAZE: the strongest n). */
  n: number;
  /** AKAZE detector threshold ×1e4 (OpenCV default 10). Not settable for ORB in this build. */
  fast?: number;
  /** Contrast before detection: sharp normalise (1st–99th percentile stretch) or OpenCV CLAHE. */
  pre?: 'norm' | 'clahe';
}
export const configName = (c: FeatureConfig) => `${c.detector}-q${c.q}-r${c.r}-n${c.n}${c.fast !== undefined ? `-f${c.fast}` : ''}${c.pre ? `-${c.pre}` : ''}`;
export function parseConfig(s: string): FeatureConfig {
  const m = /^(orb|akaze)-q(\d+)-r(\d+)-n(\d+)(?:-f(\d+))?(?:-(norm|clahe))?$/.exec(s);
  if (!m) throw new Error(`bad feature config ${s}`);
  return { detector: m[1] as 'orb' | 'akaze', q: Number(m[2]), r: Number(m[3]), n: Number(m[4]), fast: m[5] === undefined ? undefined : Number(m[5]), pre: m[6] as FeatureConfig['pre'] };
}

export interface Features {
  /** x, y, size, angle (degrees) per keypoint. */
  kp: Float32Array;
  desc: Uint8Array;
  /** Bytes per descriptor (ORB 32, AKAZE MLDB 61). */
  dbytes: number;
  count: number;
  width: number;
  height: number;
  /** Decode + resize + detect + describe, ms. */
  ms: number;
}

export async function extract(file: string, side: number, config: FeatureConfig): Promise<Features> {
  const c = cv();
  const t0 = performance.now();
  let img = sharp(file).rotate().greyscale();
  if (config.pre === 'norm') img = img.normalise();
  const { data, info } = await img.resize(side, side, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true });
  const mat = new c.Mat(info.height, info.width, c.CV_8UC1);
  mat.data.set(data.subarray(0, info.width * info.height));
  const none = new c.Mat();
  const kpv = new c.KeyPointVector();
  const desc = new c.Mat();
  const det =
    // this build binds only ORB(nfeatures) and has no setFastThreshold: contrast (pre) stands in for it
    config.detector === 'orb' ? new c.ORB(config.n) : new c.AKAZE();
  if (config.detector === 'akaze' && config.fast !== undefined) det.setThreshold(config.fast / 1e4);
  try {
    if (config.pre === 'clahe') {
      const clahe = new c.CLAHE(2.0, new c.Size(8, 8));
      const eq = new c.Mat();
      clahe.apply(mat, eq);
      eq.copyTo(mat);
      eq.delete();
      clahe.delete();
    }
    det.detectAndCompute(mat, none, kpv, desc);
    const total = kpv.size();
    const dbytes = total ? desc.cols : config.detector === 'orb' ? 32 : 61;
    let order = Array.from({ length: total }, (_, i) => i);
    const kps = order.map((i) => kpv.get(i));
    if (total > config.n) order = order.sort((a, b) => kps[b].response - kps[a].response).slice(0, config.n);
    const count = order.length;
    const kp = new Float32Array(count * 4);
    const d = new Uint8Array(count * dbytes);
    order.forEach((i, j) => {
      const k = kps[i];
      kp[j * 4] = k.pt.x;
      kp[j * 4 + 1] = k.pt.y;
      kp[j * 4 + 2] = k.size;
      kp[j * 4 + 3] = k.angle;
      d.set(desc.data.subarray(i * dbytes, (i + 1) * dbytes), j * dbytes);
    });
    return { kp, desc: d, dbytes, count, width: info.width, height: info.height, ms: performance.now() - t0 };
  } finally {
    mat.delete();
    none.delete();
    kpv.delete();
    desc.delete();
    det.delete();
  }
}

/** Stored bytes per image if kept as x,y (2×uint16), size (uint8 octave), angle (uint8) + descriptor. */
export const storedBytes = (f: Features) => f.count * (f.dbytes + 6);

export function saveCache(file: string, map: Map<string, Features>): void {
  const obj: Record<string, unknown> = {};
  for (const [k, f] of map) obj[k] = { ...f, kp: Buffer.from(f.kp.buffer, f.kp.byteOffset, f.kp.byteLength).toString('base64'), desc: Buffer.from(f.desc).toString('base64') };
  fs.writeFileSync(file, JSON.stringify(obj));
}
export function readCache(file: string): Map<string, Features> {
  const map = new Map<string, Features>();
  if (!fs.existsSync(file)) return map;
  const obj = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Features & { kp: string; desc: string }>;
  for (const [k, f] of Object.entries(obj)) {
    const kb = Buffer.from(f.kp as unknown as string, 'base64');
    const kp = new Float32Array(kb.byteLength / 4);
    new Uint8Array(kp.buffer).set(kb);
    map.set(k, { ...f, kp, desc: new Uint8Array(Buffer.from(f.desc as unknown as string, 'base64')) });
  }
  return map;
}

/** A descriptor Mat for BFMatcher (caller deletes). */
export function descMat(f: Features): CV {
  const c = cv();
  const m = new c.Mat(f.count, f.dbytes, c.CV_8UC1);
  m.data.set(f.desc);
  return m;
}

export interface Match {
  qi: number;
  ri: number;
  /** best / second-best Hamming distance. */
  ratio: number;
}

/** knnMatch k=2 (Hamming), ratio test, then one match per reference keypoint (the best ratio). */
export function match(bf: CV, qd: CV, rd: CV, maxRatio: number): Match[] {
  const c = cv();
  if (qd.rows < 2 || rd.rows < 2) return [];
  const mv = new c.DMatchVectorVector();
  try {
    bf.knnMatch(qd, rd, mv, 2);
    const best = new Map<number, Match>();
    for (let i = 0, n = mv.size(); i < n; i++) {
      const pair = mv.get(i);
      if (pair.size() < 2) continue;
      const a = pair.get(0);
      const b = pair.get(1);
      const ratio = b.distance > 0 ? a.distance / b.distance : 1;
      if (ratio > maxRatio) continue;
      const prev = best.get(a.trainIdx);
      if (!prev || ratio < prev.ratio) best.set(a.trainIdx, { qi: a.queryIdx, ri: a.trainIdx, ratio });
    }
    return [...best.values()];
  } finally {
    mv.delete();
  }
}
