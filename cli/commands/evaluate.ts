/**
 * `pixdex eval`: quality on a folder-per-class dataset (category and generated instance
 * retrieval), or with --queries/--references the same object in real photos (src/eval/pairs.ts).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import type { VERBS } from '../../src/contracts/verbs.ts';
import { DEFAULT_EXTENSIONS } from '../../src/config.ts';
import { formatConfusionTable } from '../../src/classify.ts';
import { loadDataset } from '../../src/eval/evaluate.ts';
import { evaluateLibrary } from '../../src/eval/evaluate-library.ts';
import { evaluatePairs, formatPairsReport, imageFilesIn } from '../../src/eval/pairs.ts';
import { checkDescriptor } from '../../src/library-descriptor.ts';
import { EXIT } from '../exit.ts';
import { ProgressLine, formatEta } from '../progress.ts';
import { interruptible, out, withEngine } from '../run.ts';
import { UsageError, type Parsed } from '../spec.ts';

type EvalParsed = Parsed<z.output<typeof VERBS.eval>>;

export async function evaluate(p: EvalParsed): Promise<number> {
  const { values: v, pos, params: options } = p;
  if (v.queries !== undefined || v.references !== undefined) return evalPairs(p);
  if (pos.length !== 1) throw new UsageError(`pixdex eval takes a dataset folder, or --queries DIR --references DIR, but received ${pos.length} arguments`, 'eval');
  if (v.workers !== undefined) throw new UsageError('--workers belongs to pixdex eval --queries DIR --references DIR', 'eval');
  // --descriptor names what to evaluate, not the library's descriptor: eval writes nothing.
  const descriptor = v.descriptor === undefined ? undefined : checkDescriptor(v.descriptor);
  return withEngine({ ...v, descriptor: undefined }, async (engine) => {
    const started = performance.now();
    const items = loadDataset(path.resolve(pos[0]), engine.config.extensions);
    const progress = new ProgressLine(process.stderr);
    const report = await evaluateLibrary(engine, items, {
      space: options.space,
      descriptor,
      instanceQueries: options.instance,
      seed: options.seed,
      backgrounds: v.backgrounds === undefined ? undefined : loadDataset(path.resolve(String(v.backgrounds)), engine.config.extensions),
      onProgress: (what) => progress.update(what),
    });
    progress.done();
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    const full = { dataset: path.resolve(pos[0]), backend: (await engine.backendInfo()).name, seconds, ...report };
    const r = report.retrieval;
    const k = report.knn;
    const inst = report.instance;
    out(v, full, [
      `${report.images} images, ${report.classes} classes, ${report.backbone} (${report.dims}-d, ${report.space}, descriptor ${report.descriptor}) on ${full.backend}, ${seconds}s`,
      `retrieval (leave-one-out)  P@1 ${r.p1.toFixed(3)}  P@10 ${r.p10.toFixed(3)}  mAP ${r.mAP.toFixed(3)}`,
      `kNN accuracy (${k.protocol}, ${k.queries} queries)  k=1 ${k.k1.toFixed(3)}  k=5 ${k.k5.toFixed(3)}  k=10 ${k.k10.toFixed(3)}`,
      ...(inst ? [
        `instance retrieval (${inst.queries} generated re-photographs, seed ${inst.seed})  P@1 ${inst.p1.toFixed(3)}  R@5 ${inst.r5.toFixed(3)}`,
        ...Object.entries(inst.perTransform).map(([t, x]) => `  ${t.padEnd(12)} P@1 ${x.p1.toFixed(3)}  R@5 ${x.r5.toFixed(3)}  (${x.n})`),
      ] : []),
      '',
      'k=10 vote, per class:',
      ...Object.entries(report.perClass).map(([l, c]) => `  ${l.padEnd(14)} precision ${c.precision.toFixed(3)}  recall ${c.recall.toFixed(3)}  (${c.support})`),
      '',
      formatConfusionTable(report.confusion),
      ...report.failed.map((f) => `failed: ${f.path}: ${f.error}`),
    ].join('\n'));
    return EXIT.ok;
  }, { create: true }); // eval needs no indexed images: it may run before the first index
}

/**
 * `pixdex eval --queries DIR --references DIR` (src/eval/pairs.ts). Without --data the references
 * go into a temporary library under os.tmpdir(), removed at the end (PIXDEX_DATA is not used:
 * an evaluation does not fill the default library unless --data names it).
 */
async function evalPairs({ values: v, pos, params }: EvalParsed): Promise<number> {
  if (pos.length > 0) throw new UsageError(`pixdex eval --queries DIR --references DIR takes no dataset folder, but received ${pos.map((p) => JSON.stringify(p)).join(' ')}`, 'eval');
  if (v.queries === undefined || v.references === undefined) throw new UsageError(`pixdex eval needs both --queries DIR and --references DIR (missing --${v.queries === undefined ? 'queries' : 'references'})`, 'eval');
  for (const o of ['space', 'instance', 'seed', 'backgrounds'] as const) {
    if (v[o] !== undefined) throw new UsageError(`--${o} belongs to pixdex eval <dataset-dir>, not to --queries/--references`, 'eval');
  }
  const { queries, references, workers } = params;
  // The folders are checked before any library is opened or created.
  imageFilesIn(queries!, DEFAULT_EXTENSIONS, '--queries');
  imageFilesIn(references!, DEFAULT_EXTENSIONS, '--references');
  const temporary = v.data === undefined ? await fs.mkdtemp(path.join(os.tmpdir(), 'pixdex-eval-')) : undefined;
  try {
    return await withEngine({ ...v, workers, data: temporary ?? v.data }, async (engine) => {
      const progress = new ProgressLine(process.stderr);
      const report = await interruptible(progress, 'stopping after the current step (Ctrl-C again to quit at once)', (signal) =>
        evaluatePairs(engine, { queries: queries!, references: references! }, {
          signal,
          onWarning: (message) => progress.note(`warning: ${message}`),
          onProgress: (p) => progress.update(`${p.stage === 'index' ? 'indexed' : 'queries'} ${p.done}/${p.total}  ${p.rate.toFixed(1)} ${p.stage === 'index' ? 'img' : 'queries'}/s  ETA ${formatEta(p.etaSeconds)}`),
        }));
      const full = { ...report, library: temporary ? { dataDir: null, temporary: true } : { dataDir: engine.config.dataDir, temporary: false } };
      out(v, full, formatPairsReport(report) + (temporary ? '' : `\nlibrary kept: ${engine.config.dataDir}`));
      return report.interrupted ? EXIT.interrupted : EXIT.ok;
    }, { create: true });
  } finally {
    if (temporary) await fs.rm(temporary, { recursive: true, force: true });
  }
}
