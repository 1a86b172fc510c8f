/**
 * Offline fusion rules over the per-pair scores smvs.ts caches (<cache>/pairs-<config>-<cat>.json):
 *   thresh   verified (inliers >= T) first, by inliers; the rest in global order (smvs.ts's rule)
 *   soft     score = global cosine + a * ln(1 + inliers), every candidate
 *   both     thresh, then the unverified by the soft score
 * on a few inlier measures (single methods, and max(homography, fundHough)). One (rule, a, T) for
 * all three categories, chosen by mean P@1; prints JSON lines per category.
 *   node --import tsx bench/local/fuse.ts --config orb-q800-r640-n1000 [--N 50]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CACHE, CATEGORIES, out, r3 } from './common.ts';

const { values: args } = parseArgs({ options: { config: { type: 'string', default: 'orb-q640-r480-n500' }, N: { type: 'string', default: '50' } } });
type Pair = Record<string, number> & { name: string; rank: number; global: number };
type Q = { query: string; truth: string; pairs: Pair[] };
const data = Object.fromEntries(CATEGORIES.map((c) => [c, JSON.parse(fs.readFileSync(path.join(CACHE, `pairs-${args.config}-${c}.json`), 'utf8')) as Q[]]));
const N = Number(args.N);
const measures: Record<string, (p: Pair) => number> = {
  homography: (p) => p.homography,
  hough4: (p) => p.hough4,
  fundHough: (p) => p.fundHough,
  affine: (p) => p.affine,
  'max(homography,fundHough)': (p) => Math.max(p.homography, p.fundHough),
  'max(homography,hough4)': (p) => Math.max(p.homography, p.hough4),
};
function run(rule: string, inl: (p: Pair) => number, a: number, T: number) {
  const res: Record<string, { p1: number; r5: number; fvTop1: number }> = {};
  for (const [cat, rows] of Object.entries(data)) {
    let p1 = 0, r5 = 0, fv = 0;
    for (const q of rows) {
      const cand = q.pairs.filter((p) => p.rank < N);
      const soft = (p: Pair) => p.global + a * Math.log1p(inl(p));
      const ranked = [...cand].sort((x, y) => {
        if (rule !== 'soft') {
          const vx = inl(x) >= T, vy = inl(y) >= T;
          if (vx !== vy) return vx ? -1 : 1;
          if (vx && inl(x) !== inl(y)) return inl(y) - inl(x);
          if (rule === 'thresh') return x.rank - y.rank;
        }
        return soft(y) - soft(x);
      });
      if (ranked[0]?.name === q.truth) p1++;
      else if (ranked[0] && inl(ranked[0]) >= T) fv++;
      if (ranked.slice(0, 5).some((p) => p.name === q.truth)) r5++;
    }
    res[cat] = { p1: r3(p1 / rows.length), r5: r3(r5 / rows.length), fvTop1: r3(fv / rows.length) };
  }
  return res;
}
const results: Array<{ mean: number; row: Record<string, unknown> }> = [];
for (const [mname, inl] of Object.entries(measures)) {
  for (const rule of ['thresh', 'soft', 'both']) {
    for (const a of rule === 'thresh' ? [0] : [0.05, 0.1, 0.2, 0.3, 0.5]) {
      for (const T of rule === 'soft' ? [Infinity] : [6, 8, 10, 12, 15, 20]) {
        const res = run(rule, inl, a, T);
        const mean = Object.values(res).reduce((s, r) => s + r.p1, 0) / 3;
        results.push({ mean, row: { kind: 'fuse', config: args.config, N, measure: mname, rule, a, T: Number.isFinite(T) ? T : null, meanP1: r3(mean), ...res } });
      }
    }
  }
}
results.sort((x, y) => y.mean - x.mean);
for (const r of results.slice(0, 15)) out(r.row);
