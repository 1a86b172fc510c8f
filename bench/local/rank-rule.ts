/**
 * Collects, through the product engine, every verified candidate (visual score + inliers) of real
 * queries, to choose the rule that orders unverified candidates (src/local/rerank.ts):
 *   smvs/<category>: index reference/, query every query/ photo (truth: same file name);
 *   hymenoptera: index train/ labelled from folders, query every val/ photo (truth: its label).
 * Writes <out>/<set>.json; `--rules` then prints P@1 / R@5 (smvs) and 1-NN accuracy (hymenoptera)
 * under each rule, from those files.
 *   node --import tsx bench/local/rank-rule.ts --out /tmp/rr            # collect (~10 min, wasm)
 *   node --import tsx bench/local/rank-rule.ts --out /tmp/rr --rules    # compare rules
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../../src/engine.ts';
import { VERIFIED_INLIERS } from '../../src/local/verify.ts';

const { values: args } = parseArgs({ options: { out: { type: 'string', default: '/tmp/rr' }, rules: { type: 'boolean', default: false } } });
const DATASETS = process.env.PIXDEX_DATASETS ?? path.resolve('../shared/datasets');
const images = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(jpe?g|png)$/i.test(f)).map((f) => path.join(dir, f)).sort();
type Row = { query: string; truth: string; hits: Array<{ path: string; label: string | null; score: number; inliers: number }> };

async function collect(name: string, refs: string, queries: string, byLabel: boolean) {
  const file = path.join(args.out, `${name}.json`);
  if (fs.existsSync(file)) return;
  const engine = await Engine.open({ dataDir: path.join(args.out, `lib-${name}`), modelsDir: process.env.PIXDEX_MODELS, backend: process.env.PIXDEX_BACKEND as 'wasm' | undefined });
  try {
    await engine.index([refs], { labelFromFolder: byLabel });
    const rows: Row[] = [];
    for (const q of images(queries)) {
      const hits = await engine.search(fs.readFileSync(q), { k: 100 });
      const truth = byLabel ? path.basename(path.dirname(q)) : path.join(refs, path.basename(q));
      rows.push({ query: q, truth, hits: hits.map((h) => ({ path: h.path, label: h.label, score: h.score, inliers: h.inliers ?? 0 })) });
    }
    fs.writeFileSync(file, JSON.stringify(rows));
    console.error(`${name}: ${rows.length} queries`);
  } finally {
    await engine.close();
  }
}

type Hit = Row['hits'][number];
/** A rule gives, from one query's candidates, the key its unverified candidates are ordered by. */
type Rule = (hits: Hit[]) => (h: Hit) => number;
const bonus = (a: number, over: number) => (h: Hit) => h.score + a * Math.log1p(Math.max(0, h.inliers - over));
const inliersDown = (hits: Hit[]) => hits.map((h) => h.inliers).sort((x, y) => y - x);
const rules: Record<string, Rule> = {
  visual: () => (h) => h.score,
  'soft a=0.2': () => bonus(0.2, 0),
  ...Object.fromEntries([4, 5, 6, 7, 8, 9].flatMap((f) => [0.1, 0.2, 0.3].map((a): [string, Rule] => [`floor ${f} a=${a}`, () => bonus(a, f)]))),
  // Relative to the query's own noise: above its candidates' 90th percentile + 3; or 3+ above the runner-up.
  'p90+3 a=0.1': (hits) => bonus(0.1, inliersDown(hits)[Math.floor(0.1 * hits.length)] + 3),
  'runner-up+3 a=0.1': (hits) => {
    const second = inliersDown(hits.filter((h) => h.inliers < VERIFIED_INLIERS))[1] ?? 0;
    return (h) => h.score + (h.inliers - second >= 3 ? 0.1 * Math.log1p(h.inliers - second) : 0);
  },
};
function rank(hits: Hit[], rule: Rule): Hit[] {
  const key = rule(hits);
  return [...hits].sort((x, y) => {
    const vx = x.inliers >= VERIFIED_INLIERS, vy = y.inliers >= VERIFIED_INLIERS;
    if (vx !== vy) return vx ? -1 : 1;
    if (vx) return y.inliers - x.inliers || y.score - x.score;
    return key(y) - key(x);
  });
}

if (!args.rules) {
  fs.mkdirSync(args.out, { recursive: true });
  for (const c of ['book_covers', 'museum_paintings', 'landmarks']) await collect(c, path.join(DATASETS, 'smvs', c, 'reference'), path.join(DATASETS, 'smvs', c, 'query'), false);
  await collect('hymenoptera', path.join(DATASETS, 'hymenoptera_data', 'train'), path.join(DATASETS, 'hymenoptera_data', 'val'), true);
} else {
  const sets = fs.readdirSync(args.out).filter((f) => f.endsWith('.json')).map((f) => [f.slice(0, -5), JSON.parse(fs.readFileSync(path.join(args.out, f), 'utf8')) as Row[]] as const);
  for (const [rule, key] of Object.entries(rules)) {
    const cells = sets.map(([name, rows]) => {
      if (name === 'hymenoptera') return `hym kNN@1 ${(rows.filter((r) => rank(r.hits, key)[0]?.label === r.truth).length / rows.length).toFixed(3)}`;
      const p1 = rows.filter((r) => rank(r.hits, key)[0]?.path === r.truth).length / rows.length;
      const r5 = rows.filter((r) => rank(r.hits, key).slice(0, 5).some((h) => h.path === r.truth)).length / rows.length;
      return `${name.slice(0, 6)} ${p1.toFixed(3)}/${r5.toFixed(3)}`;
    });
    console.log(`${rule.padEnd(18)} ${cells.join('  ')}`);
  }
}
