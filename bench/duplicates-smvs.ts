/**
 * `similar` on real re-photographs (issue 15): smvs's phone photos and their references (book
 * covers, museum paintings, landmarks: the same object photographed again, from elsewhere) in one
 * library; every query–reference pair is a true "same scene" pair. The real engine (local features
 * on) compares each image with its neighbours; the stored evidence is then grouped at a grid of
 * `similarCosine` values (near pairs count too: similar groups include them). Prints per category
 * the evidence of the true pairs, and pair precision/recall per threshold. (hymenoptera_data and
 * oxford_flowers17 hold no burst-like pairs of distinct photos: hymenoptera's closest pairs are at
 * cosine 0.86 with 2–4 inliers.)
 *
 *   node --import tsx bench/duplicates-smvs.ts [--out DIR]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { groupEdges, pairKind } from '../src/duplicates/groups.ts';
import { DEFAULT_THRESHOLDS } from '../src/duplicates/thresholds.ts';
import { Engine } from '../src/engine.ts';

const { values: args } = parseArgs({ options: { out: { type: 'string' } } });
const SMVS = path.join(path.resolve(process.env.PIXDEX_DATASETS ?? '../shared/datasets'), 'smvs');
const out = args.out ? path.resolve(args.out) : fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-dupes-smvs-'));
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const CATEGORIES = ['book_covers', 'museum_paintings', 'landmarks'];
const engine = await Engine.open({ dataDir: out, modelsDir: process.env.PIXDEX_MODELS, backend: process.env.PIXDEX_BACKEND as 'wasm' | undefined, workers: 2 });
try {
  await engine.index(CATEGORIES.map((c) => path.join(SMVS, c)));
  /** The true pair of a query photo: its reference (same file name). */
  const partner = (p: string) => (p.includes(`${path.sep}query${path.sep}`) ? p.replace(`${path.sep}query${path.sep}`, `${path.sep}reference${path.sep}`) : p.replace(`${path.sep}reference${path.sep}`, `${path.sep}query${path.sep}`));
  const truth = new Set<string>();
  for (const c of CATEGORIES) for (const f of fs.readdirSync(path.join(SMVS, c, 'query'))) truth.add(path.join(SMVS, c, 'query', f));
  const all = [...engine.records.dupes.all()];
  const pathOf = (id: number) => engine.records.get(id)!.path;
  const edgeOf = new Map<string, { cosine: number; inliers: number }>();
  for (const { id, edges } of all) for (const e of edges) edgeOf.set(`${pathOf(id)}\u0000${pathOf(e.id)}`, e);
  for (const c of CATEGORIES) {
    const qs = [...truth].filter((q) => q.includes(`${path.sep}${c}${path.sep}`));
    const found = qs.map((q) => edgeOf.get(`${q}\u0000${partner(q)}`));
    const kinds = found.map((e) => (e ? pairKind(e, DEFAULT_THRESHOLDS) ?? 'none' : 'not a neighbour'));
    const count = (k: string) => kinds.filter((x) => x === k).length;
    const cos = found.flatMap((e) => (e ? [e.cosine] : [])).sort((a, b) => a - b);
    console.log(JSON.stringify({ category: c, pairs: qs.length, asNeighbours: cos.length, cosineP50: cos[Math.floor(cos.length / 2)], atDefaults: { near: count('near'), similar: count('similar'), none: count('none'), notANeighbour: count('not a neighbour') } }));
  }
  const facts = (id: number) => {
    const r = engine.records.get(id);
    return r && { id, path: r.path, width: r.width, height: r.height, bytes: r.bytes, mtimeMs: r.mtimeMs };
  };
  for (const similarCosine of [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92]) {
    let predicted = 0, right = 0;
    for (const g of groupEdges(all, 'similar', { ...DEFAULT_THRESHOLDS, similarCosine }, facts)) {
      const ps = g.members.map((m) => m.path);
      for (let i = 0; i < ps.length; i++) for (let j = i + 1; j < ps.length; j++) {
        predicted++;
        if (partner(ps[i]) === ps[j]) right++;
      }
    }
    console.log(JSON.stringify({ similarCosine, precision: predicted ? r3(right / predicted) : 1, recall: r3(right / truth.size), predicted, loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100) }));
  }
} finally {
  await engine.close();
  if (!args.out) fs.rmSync(out, { recursive: true, force: true });
}
