/**
 * The README's benchmark table from one command: runs the benchmarks that feed it (indexing with
 * its stages, HTTP query latency, HNSW, open at scale, local-feature matching) one after another in
 * bounded time, takes each figure's median over `--repeat` runs, records the 1-minute load average
 * before and after every run, and rewrites the table between `<!-- bench:all start -->` and
 * `<!-- bench:all end -->` in the README (with a line naming the machine: CPU, cores, Node,
 * backend, HNSW build). Run it on an idle machine: the load column says how idle it was.
 *
 *   npm run bench:all [-- --quick] [--repeat 1] [--minutes 15] [--readme README.md] [--print]
 *
 * `--quick`: smaller inputs (about 3 minutes idle); `--smoke`: the tiny inputs of bench:smoke (to
 * check the generator; the figures mean nothing); `--print`: print the table, leave the README;
 * `--readme FILE`: the file to rewrite. Stops with exit code 1 and writes nothing when a benchmark
 * fails or the time budget (`--minutes`) runs out. Prints the table and one JSON line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, runScript, type ScriptResult } from './lib/run.ts';
import { tinyDatasets } from './lib/smoke.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
    minutes: { type: 'string', default: '15' },
    readme: { type: 'string', default: path.join(REPO, 'README.md') },
    print: { type: 'boolean', default: false },
  },
});
const START = '<!-- bench:all start -->';
const END = '<!-- bench:all end -->';
type Json = Record<string, unknown>;
type Size = 'full' | 'quick' | 'smoke';
/** One row of the table: what, its value (a number, or a few joined by " / "), unit. */
type Figure = [label: string, value: number | string, unit: string];

/** A benchmark of the table: its script, arguments per size, and the figures read from its JSON lines. */
interface TableBench {
  name: string;
  script: string;
  nodeFlags?: string[];
  args: (size: Size, datasets: string) => string[];
  figures: (json: Json[]) => Figure[];
}

const num = (x: unknown): number => (typeof x === 'number' ? x : NaN);
const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Json)[k] : undefined), o);
const pick = <T>(size: Size, full: T, quick: T, smoke: T): T => (size === 'full' ? full : size === 'quick' ? quick : smoke);

const BENCHES: TableBench[] = [
  {
    name: 'index',
    script: 'bench/index.ts',
    args: (size, data) => [path.join(data, 'oxford_flowers17'), '--limit', pick(size, '320', '64', '8'), '--workers', '1,2', '--local-features', 'off,on'],
    figures: ([j]) => {
      const stages = at(j, 'stages', 'msPerImage') as Record<string, number>;
      const sum = (prefix: string) => Object.entries(stages).filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
      const r1 = (x: number) => Math.round(x * 10) / 10;
      return [
        ['indexing: decode (4 files in flight)', num(j.decodePerSec), 'images/s'],
        ['indexing: backbone alone, one pass at 224 px', num(j.backbonePerSec), 'images/s'],
        [`indexing: backbone alone, every side of the ${at(j, 'stages', 'descriptor')} descriptor (${(at(j, 'stages', 'sides') as number[]).join(', ')} px)`, num(at(j, 'stages', 'backboneAllSidesPerSec')), 'images/s'],
        ['indexing end to end, local features on: 1 / 2 workers', `${num(at(j, 'endToEndByWorkers', '1'))} / ${num(at(j, 'endToEndByWorkers', '2'))}`, 'images/s'],
        ['indexing end to end, local features off (2 workers)', num(at(j, 'localFeatures', 'off', 'perSec')), 'images/s'],
        ['store bytes per image, local features off / on', `${num(at(j, 'localFeatures', 'off', 'bytesPerImage'))} / ${num(at(j, 'localFeatures', 'on', 'bytesPerImage'))}`, 'bytes'],
        ['stages per image: read + hash / decode (every side) / greyscale', `${r1(sum('read') + sum('hash'))} / ${r1(sum('decode@'))} / ${r1(sum('grey@'))}`, 'ms'],
        ['stages per image: backbone (every side) / descriptor / local features', `${r1(sum('backbone@'))} / ${r1(sum('descriptor'))} / ${r1(sum('localFeatures'))}`, 'ms'],
        ['stages per image: commit (LMDB + HNSW) / after the files: vocabulary / duplicates / snapshot', `${r1(sum('commit'))} / ${r1(sum('vocabulary'))} / ${r1(sum('duplicates'))} / ${r1(sum('snapshot'))}`, 'ms'],
        ['stages summed vs end to end (1 worker)', `${num(at(j, 'stages', 'sumMsPerImage'))} / ${num(at(j, 'stages', 'endToEndMsPerImage'))}`, 'ms per image'],
      ];
    },
  },
  {
    name: 'query',
    script: 'bench/query.ts',
    args: (size, data) => ['--dataset', path.join(data, 'hymenoptera_data/train'), '--queries', path.join(data, 'hymenoptera_data/val'), '--n', pick(size, '200', '40', '6'), '--breakdown', pick(size, '30', '10', '2')],
    figures: ([j]) => [
      ['query in process: decode / backbone / HNSW / whole search (median)', ['decodeMs', 'backboneMs', 'annMs', 'engineSearchMs'].map((k) => num(at(j, 'breakdownMedianMs', k))).join(' / '), 'ms'],
      ['POST /api/search, concurrency 1: p50 / p99', `${num(at(j, 'search', 'c1', 'p50Ms'))} / ${num(at(j, 'search', 'c1', 'p99Ms'))}`, 'ms'],
      ['POST /api/search, concurrency 8: p50 / p99', `${num(at(j, 'search', 'c8', 'p50Ms'))} / ${num(at(j, 'search', 'c8', 'p99Ms'))}`, 'ms'],
      ['POST /api/search throughput, concurrency 1 / 8', `${num(at(j, 'search', 'c1', 'rps'))} / ${num(at(j, 'search', 'c8', 'rps'))}`, 'requests/s'],
      ['GET /api/images/:id/similar, concurrency 1: p50', num(at(j, 'similar', 'c1', 'p50Ms')), 'ms'],
      ['24 MP JPEG decoded for a query (shrink-on-load)', num(at(j, 'largeJpeg', 'engineDecodeMs')), 'ms'],
    ],
  },
  {
    name: 'ann',
    script: 'bench/ann.ts',
    args: (size) => ['--n', pick(size, '100000', '10000', '600'), '--dims', '256', '--queries', pick(size, '500', '200', '20'), '--ef', '64,200', '--repeat', pick(size, '3', '1', '1')],
    figures: ([j]) => {
      const results = (j.results as Json[]) ?? [];
      return [
        [`HNSW build, ${j.n} x ${j.dims}-d`, num(j.buildPerSec), 'vectors/s'],
        ...results.map((r): Figure => [`HNSW search at ef ${r.ef}: QPS / recall@10`, `${num(r.qps)} / ${num(r.recall)}`, 'queries/s']),
        ['exact search (the recall reference)', num(at(j, 'exact', 'qps')), 'queries/s'],
      ];
    },
  },
  {
    name: 'open',
    script: 'bench/open.ts',
    args: (size) => ['--n', pick(size, '100000', '10000', '600'), '--dims', '256', '--runs', pick(size, '3', '1', '1')],
    figures: ([j]) => [
      [`open a ${j.n}-image store + first query (snapshot, no rebuild)`, num(at(j, 'open', 'streamed', 'openPlusFirstQueryMs')), 'ms'],
      ['store bytes per image (256-d vectors, no local features)', num(at(j, 'storeBytes', 'perImage', 'used')), 'bytes'],
    ],
  },
  {
    name: 'local-match',
    script: 'bench/local-match.ts',
    args: (size) => ['--queries', pick(size, '20', '6', '2'), '--wrong', pick(size, '4', '2', '1'), '--repeat', pick(size, '5', '2', '1')],
    figures: ([j]) => [
      ['local features per image: query (640 px) / reference (480 px)', `${num(at(j, 'featuresMsPerImage', 'query'))} / ${num(at(j, 'featuresMsPerImage', 'reference'))}`, 'ms'],
      ['verification per pair: match / Hough vote', `${num(at(j, 'matchMsPerPair', 'pixdex'))} / ${num(at(j, 'houghMsPerPair', 'pixdex'))}`, 'ms'],
    ],
  },
];

/** The median of each figure over runs (a "a / b" value: each part's median). */
function medianFigures(runs: Figure[][]): Figure[] {
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : Math.round(((s[m - 1] + s[m]) / 2) * 1000) / 1000;
  };
  return runs[0].map(([label, , unit], i) => {
    const parts = runs.map((r) => String(r[i][1]).split(' / ').map(Number));
    const value = parts[0].map((_, k) => med(parts.map((p) => p[k]))).join(' / ');
    return [label, parts[0].length === 1 ? Number(value) : value, unit];
  });
}

/** The README section between the markers. */
function tableMarkdown(machine: string, rows: Array<{ figure: Figure; load: string }>): string {
  const lines = [machine, '', '| figure | value | unit | load (1 min) before → after |', '|---|---|---|---|'];
  for (const { figure: [label, value, unit], load } of rows) lines.push(`| ${label} | ${value} | ${unit} | ${load} |`);
  return lines.join('\n');
}

/** `text` with the part between the markers replaced by `table`; throws when the markers are missing. */
function replaceBetweenMarkers(text: string, table: string): string {
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`the README has no ${START} ... ${END} markers: add them where the benchmark table goes`);
  return `${text.slice(0, a + START.length)}\n${table}\n${text.slice(b)}`;
}

async function main(): Promise<void> {
  const size: Size = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const repeat = Math.max(1, Number(values.repeat));
  const deadline = performance.now() + Number(values.minutes) * 60_000;
  const readme = path.resolve(values.readme!);
  if (!values.print) replaceBetweenMarkers(fs.readFileSync(readme, 'utf8'), ''); // fail before an hour of work, not after
  const shared = path.resolve(process.env.PIXDEX_DATASETS ?? path.join(REPO, '../shared/datasets'));
  const tmp = size === 'smoke' ? fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-all-')) : undefined;
  const data = tmp ? tinyDatasets(shared, path.join(tmp, 'datasets'), 4) : shared;
  const env: Record<string, string> = tmp ? { PIXDEX_DATASETS: data, PIXDEX_BENCH_CACHE: path.join(tmp, 'cache') } : {};
  const rows: Array<{ figure: Figure; load: string }> = [];
  const facts: Json = {};
  let failure: string | undefined;
  try {
    for (const bench of BENCHES) {
      const runs: Figure[][] = [];
      const loads: ScriptResult['load'][] = [];
      for (let r = 0; r < repeat && !failure; r++) {
        const left = Math.floor((deadline - performance.now()) / 1000);
        if (left <= 0) failure = `the time budget (--minutes ${values.minutes}) ran out before ${bench.name}`;
        if (failure) break;
        process.stderr.write(`[bench:all] ${bench.name} (run ${r + 1} of ${repeat}, ${left} s left)\n`);
        const result = await runScript({ script: bench.script, args: bench.args(size, data), nodeFlags: bench.nodeFlags, env, timeoutSeconds: left });
        if (result.exit !== 0 || result.json.length === 0) {
          failure = `${bench.name}: ${result.timedOut ? 'the time budget ran out' : `exit ${result.exit}`}${result.json.length ? '' : ', no JSON'}\n${result.stderrTail}`;
          break;
        }
        runs.push(bench.figures(result.json));
        loads.push(result.load);
        for (const key of ['backend', 'annBuild']) if (result.json[0][key] !== undefined) facts[key] ??= result.json[0][key];
      }
      if (failure) break;
      const load = loads.map(([a, b]) => `${a} → ${b}`).join(', ');
      for (const figure of medianFigures(runs)) rows.push({ figure, load });
    }
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (failure) {
    process.stderr.write(`bench:all FAILED, the README is unchanged: ${failure}\n`);
    process.exitCode = 1;
    return;
  }
  const cpus = os.cpus();
  const ann = facts.annBuild as { build?: string; flags?: string; hugePages?: boolean } | undefined;
  const machine = `Generated by \`npm run bench:all${size === 'full' ? '' : ` -- --${size}`}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, Node ${process.version}, backend ${facts.backend ?? 'unknown'}, hnswlib ${ann?.build ?? 'unknown'}${ann?.flags ? ` (${ann.flags}${ann.hugePages ? ', huge pages' : ''})` : ''}; each figure the median of ${repeat} run${repeat > 1 ? 's' : ''}; inputs: oxford_flowers17 (indexing), hymenoptera train/val (queries), synthetic real-like vectors (HNSW, open), smvs book covers (verification).`;
  const table = tableMarkdown(machine, rows);
  console.log(table);
  if (!values.print) fs.writeFileSync(readme, replaceBetweenMarkers(fs.readFileSync(readme, 'utf8'), table));
  console.log(JSON.stringify({ benchAll: 'ok', size, repeat, rows: rows.length, readme: values.print ? null : readme }));
}

await main();
