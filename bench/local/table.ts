/**
 * Markdown table of fixed recipes over smvs.ts's cached per-pair scores (<cache>/pairs-*.json):
 * per feature config, shortlist N and recipe, P@1 / R@5 / false-verified top-1 per category and
 * the verification ms per query (p50/p90: query features + matching + the check, over the shortlist).
 *   node --import tsx bench/local/table.ts [--configs a,b] [--Ns 20,50,101]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CACHE, CATEGORIES, pct } from './common.ts';

const { values: args } = parseArgs({ options: { configs: { type: 'string' }, Ns: { type: 'string', default: '20,50,101' } } });
type Pair = Record<string, number> & { name: string; rank: number; global: number; matchMs: number; ms: Record<string, number> };
type Q = { query: string; truth: string; featMs: number; pairs: Pair[] };
const recipes: Array<{ name: string; m: string; T: number; a: number }> = [
  { name: 'homography ≥10 (thresh)', m: 'homography', T: 10, a: 0 },
  { name: 'hough4 ≥10 (thresh)', m: 'hough4', T: 10, a: 0 },
  { name: 'hough4 ≥10, else global+0.2·ln(1+inl)', m: 'hough4', T: 10, a: 0.2 },
  { name: 'fundHough ≥8, else global+0.2·ln(1+inl)', m: 'fundHough', T: 8, a: 0.2 },
];
const configs = args.configs?.split(',') ?? [...new Set(fs.readdirSync(CACHE).filter((f) => f.startsWith('pairs-') && f.endsWith('-landmarks.json')).map((f) => f.slice(6, -'-landmarks.json'.length)))];
console.log('| features | N | recipe | book P@1 / R@5 / fv | museum P@1 / R@5 / fv | landmarks P@1 / R@5 / fv | ms p50/p90 (book, museum, landmarks) |');
console.log('|---|---|---|---|---|---|---|');
for (const cfg of configs) {
  const data = CATEGORIES.map((c) => JSON.parse(fs.readFileSync(path.join(CACHE, `pairs-${cfg}-${c}.json`), 'utf8')) as Q[]);
  const maxN = Math.max(...data[0][0].pairs.map((p) => p.rank)) + 1;
  for (const N of args.Ns!.split(',').map(Number).filter((n) => n <= maxN)) {
    for (const r of recipes) {
      const cells: string[] = [];
      const times: string[] = [];
      for (const rows of data) {
        let p1 = 0, r5 = 0, fv = 0;
        const ms: number[] = [];
        for (const q of rows) {
          const cand = q.pairs.filter((p) => p.rank < N);
          const s = (p: Pair) => p.global + r.a * Math.log1p(p[r.m]);
          const ranked = [...cand].sort((x, y) => {
            const vx = x[r.m] >= r.T, vy = y[r.m] >= r.T;
            if (vx !== vy) return vx ? -1 : 1;
            if (vx && x[r.m] !== y[r.m]) return y[r.m] - x[r.m];
            return r.a ? s(y) - s(x) : x.rank - y.rank;
          });
          if (ranked[0]?.name === q.truth) p1++;
          else if (ranked[0] && ranked[0][r.m] >= r.T) fv++;
          if (ranked.slice(0, 5).some((p) => p.name === q.truth)) r5++;
          ms.push(q.featMs + cand.reduce((t, p) => t + p.matchMs + p.ms[r.m], 0));
        }
        const n = rows.length;
        cells.push(`${(p1 / n).toFixed(3)} / ${(r5 / n).toFixed(3)} / ${(fv / n).toFixed(2)}`);
        times.push(`${Math.round(pct(ms, 50))}/${Math.round(pct(ms, 90))}`);
      }
      console.log(`| ${cfg} | ${N === 101 ? 'all' : N} | ${r.name} | ${cells.join(' | ')} | ${times.join(', ')} |`);
    }
  }
}
