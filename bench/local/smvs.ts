/**
 * Issue 14 research: local features + geometric verification on smvs real phone photos, fused with
 * the global shortlist of the real engine. Prints JSON lines.
 *
 *   node --import tsx bench/local/global.ts                 # global baseline + shortlists (cached)
 *   node --import tsx bench/local/global.ts --distractors   # the ~2,050-image library (cached)
 *   node --import tsx bench/local/smvs.ts [--configs orb-q640-r480-n500,akaze-q640-r480-n500]
 *        [--categories book_covers,museum_paintings,landmarks] [--maxShortlist 101] [--ratio 0.8]
 *        [--hThr 6] [--aThr 20] [--fThr 2] [--distractors --shortlist 20]
 *
 * Per category (its own library): global P@1/R@5 (from global.ts's cache), then per feature config,
 * verification method, shortlist N and inlier threshold T: a candidate is verified if its inliers
 * >= T; verified candidates rank first by inliers, the rest keep their global order. Prints P@1,
 * R@5, false verified (wrong candidates passing T, per pair and per query), verification
 * milliseconds per query (query features + matching + RANSAC over the shortlist; p50/p90) with
 * os.loadavg, and stored feature bytes per image. Features are cached in the cache folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CACHE, CATEGORIES, SMVS, listJpg, load, log, out, pct, r3 } from './common.ts';
import { configName, cv, descMat, extract, loadCv, match, parseConfig, readCache, saveCache, storedBytes, type FeatureConfig, type Features } from './features.ts';
import { METHODS, scorePair, type Method, type PairScores } from './geometry.ts';

const { values: args } = parseArgs({
  options: {
    configs: { type: 'string', default: 'orb-q640-r480-n500' },
    categories: { type: 'string', default: CATEGORIES.join(',') },
    maxShortlist: { type: 'string', default: '101' },
    ratio: { type: 'string', default: '0.8' },
    hThr: { type: 'string', default: '6' },
    aThr: { type: 'string', default: '20' },
    fThr: { type: 'string', default: '2' },
    thresholds: { type: 'string', default: '5,6,8,10,12,15,20,25,30,40' },
    shortlists: { type: 'string', default: '20,50' },
    distractors: { type: 'boolean', default: false },
    method: { type: 'string', default: 'hough4' },
    T: { type: 'string', default: '10' },
    a: { type: 'string', default: '0.2' },
    queries: { type: 'string', default: '100000' },
  },
});


await loadCv();
const c = cv();
const ratio = Number(args.ratio);
const geo = { hThr: Number(args.hThr), aThr: Number(args.aThr), fThr: Number(args.fThr) };

/** Features of a file at a role's size, through the per-config file cache. */
class FeatureStore {
  private map: Map<string, Features>;
  private dirty = 0;
  private mats = new Map<string, unknown>();
  constructor(readonly config: FeatureConfig, private file = path.join(CACHE, `feat-${configName(config)}.json`)) {
    this.map = readCache(file);
  }
  async get(file: string, role: 'q' | 'r'): Promise<Features> {
    const key = `${role}:${file}`;
    let f = this.map.get(key);
    if (!f) {
      f = await extract(file, role === 'q' ? this.config.q : this.config.r, this.config);
      this.map.set(key, f);
      if (++this.dirty % 200 === 0) this.save();
    }
    return f;
  }
  mat(file: string, role: 'q' | 'r', f: Features): unknown {
    const key = `${role}:${file}`;
    let m = this.mats.get(key);
    if (!m) this.mats.set(key, (m = descMat(f)));
    return m;
  }
  freeMats(): void {
    for (const m of this.mats.values()) (m as { delete(): void }).delete();
    this.mats.clear();
  }
  save(): void {
    if (this.dirty) saveCache(this.file, this.map);
  }
}

interface PairRow extends PairScores {
  name: string;
  rank: number;
  global: number;
  matchMs: number;
}
interface QueryRow {
  query: string;
  truth: string;
  featMs: number;
  pairs: PairRow[];
}

/** a > 0: unverified candidates are ordered by global + a·ln(1 + inliers) instead of the global score alone. */
function evaluate(rows: QueryRow[], method: Method | 'global', N: number, T: number, soft = 0) {
  let p1 = 0, r5 = 0, wrongPairs = 0, wrongVerified = 0, queriesWrongVerified = 0, wrongTop = 0, verifiedTrue = 0;
  const ms: number[] = [];
  for (const q of rows) {
    const cand = q.pairs.filter((p) => p.rank < N);
    const ranked = method === 'global'
      ? cand
      : [...cand].sort((a, b) => {
          const va = a[method] >= T, vb = b[method] >= T;
          if (va !== vb) return va ? -1 : 1;
          if (va && a[method] !== b[method]) return b[method] - a[method];
          if (soft > 0) return b.global + soft * Math.log1p(b[method]) - (a.global + soft * Math.log1p(a[method]));
          return a.rank - b.rank;
        });
    if (ranked[0]?.name === q.truth) p1++;
    if (ranked.slice(0, 5).some((p) => p.name === q.truth)) r5++;
    if (method !== 'global') {
      let anyWrong = false;
      for (const p of cand) {
        if (p.name === q.truth) {
          if (p[method] >= T) verifiedTrue++;
          continue;
        }
        wrongPairs++;
        if (p[method] >= T) (wrongVerified++, (anyWrong = true));
      }
      if (anyWrong) queriesWrongVerified++;
      if (ranked[0] && ranked[0].name !== q.truth && ranked[0][method] >= T) wrongTop++;
      ms.push(q.featMs + cand.reduce((s, p) => s + p.matchMs + p.ms[method], 0));
    }
  }
  const n = rows.length;
  return {
    p1: r3(p1 / n), r5: r3(r5 / n),
    ...(method === 'global' ? {} : {
      trueVerified: r3(verifiedTrue / n),
      falseVerifiedPairs: r3(wrongVerified / Math.max(1, wrongPairs)),
      queriesWithFalseVerified: r3(queriesWrongVerified / n),
      falseVerifiedTop1: r3(wrongTop / n),
      msP50: Math.round(pct(ms, 50)), msP90: Math.round(pct(ms, 90)),
    }),
  };
}

if (!args.distractors) {
  const bf = new c.BFMatcher(c.NORM_HAMMING, false);
  for (const cfgName of args.configs!.split(',')) {
    const config = parseConfig(cfgName);
    const store = new FeatureStore(config);
    for (const cat of args.categories!.split(',')) {
      const global = JSON.parse(fs.readFileSync(path.join(CACHE, `global-${cat}.json`), 'utf8')) as Array<{ query: string; ranking: Array<{ name: string; score: number }> }>;
      const qDir = path.join(SMVS, cat, 'query'), rDir = path.join(SMVS, cat, 'reference');
      const t0 = performance.now();
      const refs = new Map<string, Features>();
      for (const f of listJpg(rDir)) refs.set(f, await store.get(path.join(rDir, f), 'r'));
      const refFeatMs = [...refs.values()].map((f) => f.ms);
      log(`${cfgName} ${cat}: ${refs.size} reference features in ${Math.round(performance.now() - t0)} ms`);
      const rows: QueryRow[] = [];
      const maxN = Number(args.maxShortlist);
      for (const g of global.slice(0, Number(args.queries))) {
        const qFile = path.join(qDir, g.query);
        const qf = await store.get(qFile, 'q');
        const qm = store.mat(qFile, 'q', qf);
        const pairs: PairRow[] = [];
        g.ranking.slice(0, maxN).forEach((h, rank) => {
          const rf = refs.get(h.name)!;
          const rm = store.mat(path.join(rDir, h.name), 'r', rf);
          const tm = performance.now();
          const ms = match(bf, qm, rm, ratio);
          const matchMs = performance.now() - tm;
          pairs.push({ name: h.name, rank, global: h.score, matchMs, ...scorePair(qf, rf, ms, geo) });
        });
        rows.push({ query: g.query, truth: g.query, featMs: qf.ms, pairs });
      }
      store.freeMats();
      store.save();
      fs.writeFileSync(path.join(CACHE, `pairs-${cfgName}-${cat}.json`), JSON.stringify(rows));
      const allRefs = [...refs.values()];
      const allQ = global.map(() => 0);
      void allQ;
      const la = load();
      const base = evaluate(rows, 'global', Infinity, 0);
      out({ kind: 'global', category: cat, ...base });
      const common = {
        config: cfgName, category: cat, loadavg: la,
        bytesPerRef: Math.round(allRefs.reduce((s, f) => s + storedBytes(f), 0) / allRefs.length),
        kpPerRef: Math.round(allRefs.reduce((s, f) => s + f.count, 0) / allRefs.length),
        refFeatMsP50: Math.round(pct(refFeatMs, 50)),
        queryFeatMsP50: Math.round(pct(rows.map((r) => r.featMs), 50)),
        matchMsP50: r3(pct(rows.flatMap((r) => r.pairs.map((p) => p.matchMs)), 50)),
        ransacMsP50: Object.fromEntries(METHODS.map((m) => [m, r3(pct(rows.flatMap((r) => r.pairs.map((p) => p.ms[m])), 50))])),
        trueInliersP50: Object.fromEntries(METHODS.map((m) => [m, pct(rows.flatMap((r) => r.pairs.filter((p) => p.name === r.truth).map((p) => p[m])), 50)])),
        wrongInliersP99: Object.fromEntries(METHODS.map((m) => [m, pct(rows.flatMap((r) => r.pairs.filter((p) => p.name !== r.truth).map((p) => p[m])), 99)])),
      };
      out({ kind: 'config', ...common });
      const Ns = [...args.shortlists!.split(',').map(Number).filter((n) => n < maxN), maxN];
      for (const method of METHODS) for (const N of Ns) for (const T of args.thresholds!.split(',').map(Number)) {
        out({ kind: 'verify', config: cfgName, category: cat, method, rule: 'thresh', N, T, ...evaluate(rows, method, N, T), loadavg: la });
        out({ kind: 'verify', config: cfgName, category: cat, method, rule: 'both', a: Number(args.a), N, T, ...evaluate(rows, method, N, T, Number(args.a)), loadavg: la });
      }
    }
  }
  bf.delete();
} else {
  // the ~2,050-image library: candidates = the global top-N of one shared library (global.ts --distractors)
  const config = parseConfig(args.configs!.split(',')[0]);
  const cfgName = configName(config);
  const store = new FeatureStore(config);
  const bf = new c.BFMatcher(c.NORM_HAMMING, false);
  const global = JSON.parse(fs.readFileSync(path.join(CACHE, 'global-all.json'), 'utf8')) as Array<{ category: string; query: string; ranking: Array<{ path: string; score: number }> }>;
  const maxN = Number(args.maxShortlist);
  const rows: Array<QueryRow & { category: string }> = [];
  let done = 0;
  for (const g of global.slice(0, Number(args.queries))) {
    const qFile = path.join(SMVS, g.category, 'query', g.query);
    const qf = await store.get(qFile, 'q');
    const qm = store.mat(qFile, 'q', qf);
    const pairs: PairRow[] = [];
    for (const [rank, h] of g.ranking.slice(0, maxN).entries()) {
      const rf = await store.get(h.path, 'r');
      const rm = store.mat(h.path, 'r', rf);
      const tm = performance.now();
      const ms = match(bf, qm, rm, ratio);
      const matchMs = performance.now() - tm;
      pairs.push({ name: h.path, rank, global: h.score, matchMs, ...scorePair(qf, rf, ms, geo) });
    }
    rows.push({ category: g.category, query: g.query, truth: path.join(SMVS, g.category, 'reference', g.query), featMs: qf.ms, pairs });
    store.freeMats();
    if (++done % 50 === 0) log(`${done}/${global.length} queries`);
  }
  store.save();
  fs.writeFileSync(path.join(CACHE, `pairs-${cfgName}-distractors.json`), JSON.stringify(rows));
  const la = load();
  const method = args.method as Method;
  const T = Number(args.T);
  const a = Number(args.a);
  for (const cat of [...CATEGORIES, 'overall']) {
    const sub = rows.filter((r) => cat === 'overall' || r.category === cat);
    out({ kind: 'distractors-global', category: cat, queries: sub.length, ...evaluate(sub, 'global', Infinity, 0) });
    for (const N of [...args.shortlists!.split(',').map(Number).filter((n) => n < maxN), maxN]) {
      out({ kind: 'distractors', config: cfgName, method, rule: 'thresh', N, T, category: cat, ...evaluate(sub, method, N, T), loadavg: la });
      out({ kind: 'distractors', config: cfgName, method, rule: 'both', a, N, T, category: cat, ...evaluate(sub, method, N, T, a), loadavg: la });
    }
  }
  bf.delete();
}
