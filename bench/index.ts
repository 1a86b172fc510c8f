/**
 * Indexing throughput on a folder, in one run: decoding alone, the backbone alone (on
 * pre-decoded batches), and end to end (`Engine.index` into a fresh store). Prints one JSON line.
 *
 *   npm run bench:index -- <dir> [--workers N|1,2] [--descriptor D|regional,regional2] [--local-features on|off|off,on] [--stages on|off] [--limit N] [--backbone ID] [--backend NAME]
 *
 * `--descriptor regional,regional2` indexes with each library descriptor (every worker count, the
 * last local-features setting) in this one run: `endToEndByDescriptor` holds each rate with the
 * 1-minute load average measured just before it, `descriptorSpeedup` the last descriptor's rate
 * over the first's per worker count; every other figure is the last descriptor's (default: the
 * default descriptor only).
 * With both, every descriptor is also run with the other setting (`byDescriptorAndSetting`: rate,
 * load, bytes per image at the last worker count), e.g. `--descriptor regional,regional2
 * --local-features off,on` puts issue 14's baseline (regional, no local features: the default when
 * it was filed) and today's default with local features side by side.
 * `--local-features off,on` measures both settings (with the last worker count) in this one run:
 * `localFeaturesRatio` is the rate with them over the rate without, and `bytesPerImage` the
 * store's size per image for each.
 * `backbonePerSec` is one thread running the model on pre-decoded batches; `endToEndPerSec` is
 * the last worker count's full indexing rate (read, hash, decode, embed, LMDB, HNSW).
 * `heicVsJpeg` is bench/decode-heic.ts: HEIC vs JPEG decoding of the same pixels (median ms, MP/s).
 * `stages` (off with `--stages off`) accounts for the gap between the two: every stage of an index
 * run timed one at a time (bench/index-stages.ts: read, hash, decode at each side, backbone at
 * each side, descriptor, local features, commit, and after the files vocabulary, duplicates,
 * snapshot), with the last local-features setting,
 * beside the end-to-end time per image of one worker.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine.ts';
import { indexBatchSize } from '../indexer/run.ts';
import { scanInputs } from '../indexer/scan.ts';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { heicVsJpeg } from './decode-heic.ts';
import { measureStages } from './index-stages.ts';
import { checkDescriptor } from '../src/descriptor-kind.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workers: { type: 'string', default: '1' },
    limit: { type: 'string' },
    backbone: { type: 'string' },
    backend: { type: 'string' },
    models: { type: 'string' },
    'local-features': { type: 'string', default: 'on' },
    descriptor: { type: 'string' },
    stages: { type: 'string', default: 'on' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: npm run bench:index -- <dir> [--workers N] [--limit N] [--backbone ID] [--backend NAME]');
  process.exit(2);
}
const dir = path.resolve(positionals[0]);
/** `--workers 1,2` measures each count in this one run (the machines are noisy: compare within a run). */
const workerCounts = String(values.workers).split(',').map((w) => Number(w));
if (workerCounts.some((w) => !Number.isInteger(w) || w < 1)) {
  console.error(`--workers takes whole numbers >= 1, e.g. 1 or 1,2; received ${values.workers}`);
  process.exit(2);
}
const localSettings = String(values['local-features']).split(',');
if (localSettings.some((x) => x !== 'on' && x !== 'off')) {
  console.error(`--local-features takes on, off or off,on; received ${values['local-features']}`);
  process.exit(2);
}
const descriptors = values.descriptor ? String(values.descriptor).split(',').map((d) => checkDescriptor(d)) : [undefined];
const scan = await scanInputs([dir], DEFAULT_EXTENSIONS);
const files = scan.files.slice(0, values.limit ? Number(values.limit) : undefined).map((f) => f.path);

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-'));
const options = {
  dataDir,
  ...(descriptors.at(-1) ? { descriptor: descriptors.at(-1) } : {}),
  ...(values.models ? { modelsDir: values.models } : {}),
  ...(values.backbone ? { backbone: values.backbone } : {}),
  ...(values.backend ? { backend: values.backend as 'wasm' } : {}),
};
try {
  const engine = await Engine.open(options);
  const model = await engine.model(); // load + warm up outside the timings
  const backend = (await engine.backendInfo()).name;

  // 1. Decoding only (read + sharp), with as many files in flight as the indexer uses.
  let t = performance.now();
  const decoded: Uint8Array[] = [];
  let cursor = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (cursor < files.length) {
      const f = files[cursor++];
      try {
        decoded.push((await engine.describer.decode(fs.readFileSync(f), f)).pixels);
      } catch {
        // bad files are counted by the end-to-end pass
      }
    }
  }));
  const decodeSeconds = (performance.now() - t) / 1000;

  // 2. Backbone only, on pre-decoded batches.
  t = performance.now();
  for (let i = 0; i < decoded.length; i += engine.config.batchSize) {
    await model.pooledVectors(decoded.slice(i, i + engine.config.batchSize));
  }
  const backboneSeconds = (performance.now() - t) / 1000;
  await engine.close();

  // 3. End to end into a fresh store, for each worker count. The main thread's model is warmed
  // before the clock; a worker pool's start-up (each worker loads and warms its model) is timed.
  const round = (x: number) => Math.round(x * 10) / 10;
  const backbonePerSec = decoded.length / backboneSeconds;
  const endToEnd: Record<string, number> = {};
  const byDescriptor: Record<string, Record<string, { perSec: number; load1: number }>> = {};
  let last = { added: 0, failed: 0 };
  const lastDescriptor = descriptors.at(-1);
  // With several descriptors and both settings, every descriptor is also run with the other
  // setting (last worker count): `byDescriptorAndSetting` compares any two of them in this run.
  const runs = [
    ...descriptors.flatMap((descriptor) => workerCounts.map((n) => ({ n, local: localSettings.at(-1)!, descriptor }))),
    ...localSettings.slice(0, -1).flatMap((local) => descriptors.map((descriptor) => ({ n: workerCounts.at(-1)!, local, descriptor }))),
  ];
  const byDescriptorAndSetting: Record<string, Record<string, { perSec: number; load1: number; bytesPerImage: number }>> = {};
  for (const { n, local, descriptor } of runs) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    const e2e = await Engine.open({ ...options, ...(descriptor ? { descriptor } : {}), workers: n, localFeatures: local === 'on' });
    await e2e.model();
    const load1 = Math.round(os.loadavg()[0] * 100) / 100;
    t = performance.now();
    const summary = await e2e.index(files, {});
    const seconds = (performance.now() - t) / 1000;
    const stats = await e2e.stats();
    const name = e2e.descriptor;
    await e2e.close();
    const rate = round(summary.added / seconds);
    if (n === workerCounts.at(-1)) (byDescriptorAndSetting[name] ??= {})[local] = { perSec: rate, load1, bytesPerImage: Math.round(stats.storeBytes / Math.max(1, stats.images)) };
    if (local === localSettings.at(-1)) (byDescriptor[name] ??= {})[String(n)] = { perSec: rate, load1 };
    if (descriptor !== lastDescriptor) continue;
    if (local === localSettings.at(-1)) endToEnd[String(n)] = rate;
    last = { added: summary.added, failed: summary.failed };
  }
  const first = endToEnd[String(workerCounts[0])];
  // 4. Stage by stage (one thread), against one worker's end-to-end rate when it was measured.
  let stages: Record<string, unknown> | undefined;
  if (values.stages !== 'off') {
    const report = await measureStages(files, options, localSettings.at(-1) === 'on');
    const oneWorker = endToEnd['1'];
    stages = {
      ...report,
      ...(oneWorker ? { endToEndMsPerImage: round(1000 / oneWorker), overlapMs: round(report.sumMsPerImage - 1000 / oneWorker) } : {}),
      backboneAllSidesPerSec: round(1000 / report.backboneMsPerImage),
    };
  }
  const best = endToEnd[String(workerCounts.at(-1))];
  // the last descriptor's figures per setting (rate and bytes per image at the last worker count)
  const bySetting = Object.values(byDescriptorAndSetting).at(-1) ?? {};

  console.log(JSON.stringify({
    dir,
    images: files.length,
    backbone: engine.spec.id,
    backend,
    workers: workerCounts.at(-1),
    batchSize: engine.config.batchSize,
    // what the worker pool batches by (indexer/run.ts)
    indexBatchSize: indexBatchSize(engine.config, (workerCounts.at(-1) ?? 1) > 1 ? backend : undefined),
    decodePerSec: round(decoded.length / decodeSeconds),
    backbonePerSec: round(backbonePerSec),
    backboneRuntime: model.runtime,
    endToEndPerSec: best,
    endToEndVsBackbone: Math.round((best / backbonePerSec) * 1000) / 1000,
    firstVsBackbone: Math.round((first / backbonePerSec) * 1000) / 1000,
    endToEndByWorkers: endToEnd,
    endToEndByDescriptor: byDescriptor,
    ...(descriptors.length > 1 ? { descriptorSpeedup: Object.fromEntries(workerCounts.map((n) => [String(n), Math.round((byDescriptor[descriptors.at(-1)!]![String(n)].perSec / byDescriptor[descriptors[0]!]![String(n)].perSec) * 100) / 100])) } : {}),
    speedupVsFirst: workerCounts.length > 1 ? Math.round((best / first) * 100) / 100 : 1,
    localFeatures: bySetting,
    ...(descriptors.length > 1 && localSettings.length > 1 ? { byDescriptorAndSetting } : {}),
    ...(stages ? { stages } : {}),
    ...(bySetting.on && bySetting.off ? { localFeaturesRatio: Math.round((bySetting.on.perSec / bySetting.off.perSec) * 100) / 100 } : {}),
    heicVsJpeg: await heicVsJpeg(),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    ...last,
  }));
} finally {
  fs.rmSync(dataDir, { recursive: true, force: true });
}
