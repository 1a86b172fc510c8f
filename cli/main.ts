/**
 * The `pixdex` command line (DESIGN.md, CLI contract). Parses arguments, opens the engine once,
 * prints human text or `--json`, and maps errors to exit codes in one place (exit.ts).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Engine, type IndexProgress, type IndexSummary } from '../src/engine.ts';
import { NotFoundError, PixdexError } from '../src/errors.ts';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { DEFAULT_CLASSIFY_MIN_CONFIDENCE, DEFAULT_K, DEFAULT_PROPAGATE_MIN_CONFIDENCE, HEAD_EPOCHS, HEAD_HIDDEN, MAX_EXPAND, TRAIN_DIM, TRAIN_EPOCHS, TRAIN_SAMPLE } from '../src/contracts/limits.ts';
import { VERBS, parseParams } from '../src/contracts/verbs.ts';
import { formatConfusionTable } from '../src/classify.ts';
import { loadDataset } from '../src/eval/evaluate.ts';
import { evaluateLibrary } from '../src/eval/evaluate-library.ts';
import { evaluatePairs, formatPairsReport, imageFilesIn } from '../src/eval/pairs.ts';
import { checkDescriptor } from '../src/library-descriptor.ts';
import { describeBuildLine } from '../src/ann-build.ts';
import path from 'node:path';
import { EXIT, errorLine, exitCodeFor, exitCodeForCode } from './exit.ts';
import { GLOBAL_OPTIONS, engineOptions, type Values } from './args.ts';
import { ProgressLine, formatEta } from './progress.ts';

const USAGE = `Usage: pixdex <command> [options]

Commands:
  index <dir|file>...   Index images (recursive, incremental, resumable)
        [--label-from-folder] [--workers N (default: one per core)]
  search <image>        Most similar indexed images  [--k ${DEFAULT_K}] [--label L] [--space backbone|autoencoder] [--expand 0..${MAX_EXPAND}]
        [--no-verify (visual ranking only, no geometric verification)]
  classify <image>      Label by neighbours or head  [--k ${DEFAULT_K}] [--min-confidence ${DEFAULT_CLASSIFY_MIN_CONFIDENCE}] [--method knn|head|both]
  label <path|id> <label>  Set an image's label
  label propagate       Suggest labels for unlabelled images  [--min-confidence ${DEFAULT_PROPAGATE_MIN_CONFIDENCE}] [--k ${DEFAULT_K}] [--dry-run|--apply]
  label suggestions     List pending suggestions
  label accept|reject <id>...|--all   Accept or reject suggestions
  train-classifier      Train the softmax head on labelled images  [--hidden ${HEAD_HIDDEN.default}] [--epochs ${HEAD_EPOCHS.default}]
  remove <path|id>      Remove an image from the index
  eval <dataset-dir>    Quality on a folder-per-class dataset: category retrieval (P@1, mAP, kNN accuracy)
        and instance retrieval (generated re-photographs)  [--space ...] [--descriptor D] [--instance 243] [--seed 8]
        [--backgrounds DATASET (more clutter photos)]
  eval --queries DIR --references DIR   The same object in real photos: indexes the references (into a
        temporary library, or the --data library when given), searches each query with and without
        geometric verification: P@1, R@5, p50/p90 latency. A query pairs with the reference of the same
        file name (smvs/<category>/query|reference); queries without one are listed and skipped  [--workers N]
  train                 Train the library's autoencoder and switch search to it  [--dim ${TRAIN_DIM.default}] [--epochs ${TRAIN_EPOCHS.default}] [--sample ${TRAIN_SAMPLE.default}]
  stats                 Store, model and index facts
  serve                 HTTP API and web page  [--host 127.0.0.1] [--port 8080] [--token T]
  check                 Verify the store and its index  [--repair]
  duplicates            Groups of copies, edits and bursts, best copy first  [--kind exact|near|similar] [--threshold T]
  models list|fetch|verify|import   The backbones: downloaded on first use into ~/.cache/pixdex/models
        (pinned SHA-256); import FILE.tflite --name N brings your own (\`pixdex models --help\`)

Global options:
  --data DIR      data directory (default ./data, env PIXDEX_DATA)
  --models DIR    folder with the backbone model folders (env PIXDEX_MODELS; default: the cache,
                  ~/.cache/pixdex/models, where missing ones are downloaded)
  --backbone ID   mobilenet_v2 (default) | mobilenet_v1_0.75 | mobilenet_v1_embedding
  --descriptor D  regional (default) | gem | pooled: how a new library describes images (env PIXDEX_DESCRIPTOR)
  --local-features on|off  keypoints + geometric verification of the same object (default on for a new
                  library; on an existing one it switches: on adds them at the next index run, off drops them;
                  env PIXDEX_LOCAL_FEATURES)
  --backend NAME  auto (default) | tensorflow | wasm | cpu (env PIXDEX_BACKEND)
  --json          machine-readable output on stdout
`;


/** Parameter names in messages are the options' (`min-confidence`). */
const CLI_NAMES = { names: 'cli' } as const;

class UsageError extends PixdexError {
  constructor(message: string) {
    super('USAGE', `${message}. Run \`pixdex --help\` for usage.`);
  }
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  try {
    const handler = COMMANDS[command];
    if (!handler) throw new UsageError(`Unknown command "${command}"; expected one of ${Object.keys(COMMANDS).join(', ')}`);
    return await handler(rest);
  } catch (err) {
    process.stderr.write(errorLine(err) + '\n');
    if (process.env.PIXDEX_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return exitCodeFor(err);
  }
}

function parse(args: string[], options: ParseArgsConfig['options'], positionals: [min: number, max: number], name: string) {
  const { values, positionals: pos } = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(EXIT.ok);
  }
  if (pos.length < positionals[0] || pos.length > positionals[1]) {
    throw new UsageError(`pixdex ${name} takes ${positionals[0] === positionals[1] ? positionals[0] : `${positionals[0]} to ${positionals[1] === Infinity ? 'any number of' : positionals[1]}`} argument(s) but received ${pos.length}`);
  }
  return { values: values as Values, pos };
}

/**
 * Opens the engine for one command. Only commands that build a library (`index`, `train`, `eval`)
 * create one; every other command on a folder without a library fails with NOT_FOUND and creates
 * nothing (a mistyped --data must not leave an empty library behind).
 */
async function withEngine<T>(v: Values, fn: (engine: Engine) => Promise<T>, { create = false }: { create?: boolean } = {}): Promise<T> {
  const engine = await Engine.open(engineOptions(v), { create });
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

function out(v: Values, json: unknown, text: string): void {
  process.stdout.write(v.json ? JSON.stringify(json) + '\n' : text.endsWith('\n') ? text : text + '\n');
}

async function readQuery(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`Query image ${file} does not exist (${path.resolve(file)})`);
    throw new PixdexError('UNREADABLE_FILE', `Cannot read query image ${file}: ${(err as Error).message}`);
  }
}

/** Refuses inputs that do not exist before anything is opened or created: NOT_FOUND, naming them. */
async function checkInputsExist(inputs: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const input of inputs) {
    try {
      await fs.stat(input);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') missing.push(path.resolve(input));
      // other errors (permission denied...) are reported per path by the scan
    }
  }
  if (missing.length > 0) {
    throw new NotFoundError(`${missing.length === 1 ? 'Input does' : 'Inputs do'} not exist: ${missing.join(', ')}. Nothing was indexed; check the path${missing.length === 1 ? '' : 's'}.`);
  }
}

/**
 * Exit code of an index run: 130 when interrupted; when files failed and none was indexed, updated
 * or found unchanged, the failures' shared error code (MODEL_NOT_FOUND 5, EMPTY_IMAGE 4...) or else
 * 4 (bad input), with one line on stderr; otherwise 0 (failures next to successes are in the report).
 */
function indexExitCode(summary: IndexSummary): number {
  if (summary.interrupted) return EXIT.interrupted;
  if (summary.failed === 0 || summary.added + summary.updated + summary.skipped > 0) return EXIT.ok;
  const counts = new Map<string, number>();
  for (const e of summary.errors) {
    const code = /^([A-Z][A-Z0-9_]*): /.exec(e.error)?.[1] ?? 'ERROR';
    counts.set(code, (counts.get(code) ?? 0) + 1);
  }
  const shared = counts.size === 1 ? [...counts.keys()][0] : undefined;
  const exit = (shared && exitCodeForCode(shared)) || EXIT.badInput;
  const what = `none of the inputs could be indexed: ${summary.failed} failed${shared ? '' : ` (${[...counts].map(([c, n]) => `${c} ${n}`).join(', ')})`}; the report lists each failure`;
  process.stderr.write(`pixdex: ${shared ?? 'INDEX_FAILED'}: ${what}\n`);
  return exit;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  /** `pixdex serve`: the HTTP server (server/), loaded only when asked for. */
  async serve(args) {
    const { serve } = await import('./serve.ts');
    return serve(args);
  },

  /** `pixdex models`: list, fetch, verify and import backbones (src/models/manage.ts). */
  async models(args) {
    const { models } = await import('./models.ts');
    return models(args);
  },
  /** `pixdex duplicates`: copies, edits and bursts (src/duplicates/). */
  async duplicates(args) {
    const { duplicates } = await import('./duplicates.ts');
    return duplicates(args);
  },

  /** `pixdex check`: store invariants (src/check.ts), loaded only when asked for. */
  async check(args) {
    const { check } = await import('./check.ts');
    return check(args);
  },

  async index(args) {
    const { values: v, pos } = parse(args, { 'label-from-folder': { type: 'boolean', default: false }, workers: { type: 'string' } }, [1, Infinity], 'index');
    const { labelFromFolder, workers } = parseParams(VERBS.index, { labelFromFolder: v['label-from-folder'], workers: v.workers }, CLI_NAMES);
    await checkInputsExist(pos);
    return withEngine({ ...v, workers }, async (engine) => {
      const progress = new ProgressLine(process.stderr);
      const summary: IndexSummary = await interruptible(progress, 'stopping after the current batch (Ctrl-C again to quit at once; the store stays consistent)', (signal) =>
        engine.index(pos, {
          labelFromFolder,
          signal,
          onWarning: (message) => progress.note(`warning: ${message}`),
          onProgress: (p: IndexProgress) => progress.update(`indexed ${p.done}/${p.total}  ${p.rate.toFixed(1)} img/s  ETA ${formatEta(p.etaSeconds)}  (+${p.summary.added} ~${p.summary.updated} !${p.summary.failed})`),
          onVocabulary: (p) => progress.update(p.stage === 'learn' ? `learning the visual vocabulary from ${p.total} keypoints${p.done === p.total ? ': done' : ''}` : `visual words ${p.done}/${p.total} images`),
          onDuplicates: (p) => progress.update(`duplicates: compared ${p.done}/${p.total} new images with their neighbours  ${p.rate.toFixed(0)}/s  ETA ${formatEta(p.etaSeconds)}`),
        }));
      const text = [
        `${summary.added} added, ${summary.updated} updated, ${summary.skipped} unchanged, ${summary.failed} failed, ${summary.removed} removed of ${summary.total} files in ${summary.seconds}s${summary.interrupted ? ' (interrupted: re-run to resume)' : ''}`,
        ...summary.errors.map((e) => `  failed: ${e.path}: ${e.error}`),
      ].join('\n');
      out(v, summary, text);
      return indexExitCode(summary);
    }, { create: true });
  },

  async search(args) {
    const { values: v, pos } = parse(args, { k: { type: 'string' }, label: { type: 'string' }, after: { type: 'string' }, before: { type: 'string' }, space: { type: 'string' }, expand: { type: 'string' }, 'no-verify': { type: 'boolean', default: false } }, [1, 1], 'search');
    const options = parseParams(VERBS.search, { k: v.k, label: v.label, after: v.after, before: v.before, space: v.space, expand: v.expand, verify: !v['no-verify'] }, CLI_NAMES);
    const query = await readQuery(pos[0]);
    return withEngine(v, async (engine) => {
      const results = await engine.search(query, options);
      const filtered = options.label !== undefined || options.after !== undefined || options.before !== undefined;
      out(v, { results }, results.map((r, i) => `${String(i + 1).padStart(3)}. ${r.score.toFixed(4)}  ${r.label ?? '-'}  ${r.path}  (id ${r.id})${r.takenAt ? `  taken ${r.takenAt}` : ''}${r.inliers === undefined ? '' : r.verified ? `  verified: ${r.inliers} inliers` : `  ${r.inliers} inliers`}`).join('\n') || (filtered ? 'no results: no indexed image matches the filters' : 'no results: the index is empty'));
      return EXIT.ok;
    });
  },

  async classify(args) {
    const { values: v, pos } = parse(args, { k: { type: 'string' }, 'min-confidence': { type: 'string' }, method: { type: 'string' }, space: { type: 'string' } }, [1, 1], 'classify');
    const options = parseParams(VERBS.classify, { k: v.k, minConfidence: v['min-confidence'], method: v.method, space: v.space }, CLI_NAMES);
    const query = await readQuery(pos[0]);
    return withEngine(v, async (engine) => {
      const c = await engine.classify(query, options);
      const { method: _m, ...json } = c;
      out(v, json, `${c.label ?? 'unknown'}  confidence ${c.confidence.toFixed(3)}  (${c.method})  votes ${Object.entries(c.votes).map(([l, w]) => `${l} ${w.toFixed(3)}`).join(', ')}`);
      return EXIT.ok;
    });
  },

  async label(args) {
    const sub = args[0];
    if (sub === 'propagate') {
      const { values: v } = parse(args.slice(1), { k: { type: 'string' }, 'min-confidence': { type: 'string' }, apply: { type: 'boolean', default: false }, 'dry-run': { type: 'boolean', default: false } }, [0, 0], 'label propagate');
      if (v.apply && v['dry-run']) throw new UsageError('--apply and --dry-run exclude each other');
      const options = parseParams(VERBS.propagate, { k: v.k, minConfidence: v['min-confidence'], apply: v.apply }, CLI_NAMES);
      const { minConfidence } = options;
      return withEngine(v, async (engine) => {
        const r = engine.propagate(options);
        out(v, r, [
          `${r.suggested} suggestions for ${r.unlabelled} unlabelled images (${r.undecided} below confidence ${minConfidence})${r.applied ? ': saved; review with `pixdex label suggestions`' : ': not saved (add --apply)'}`,
          ...r.suggestions.slice(0, 20).map((x) => `  ${x.label.padEnd(16)} ${x.confidence.toFixed(3)}  ${x.path}  (id ${x.id})`),
          ...(r.suggestions.length > 20 ? [`  ... and ${r.suggestions.length - 20} more (--json for all)`] : []),
        ].join('\n'));
        return EXIT.ok;
      });
    }
    if (sub === 'suggestions') {
      const { values: v } = parse(args.slice(1), {}, [0, 0], 'label suggestions');
      return withEngine(v, async (engine) => {
        const list = engine.suggestions();
        out(v, { suggestions: list }, list.map((x) => `${String(x.id).padStart(6)}  ${x.label.padEnd(16)} ${x.confidence.toFixed(3)}  ${x.path}`).join('\n') || 'no pending suggestions (run `pixdex label propagate --apply`)');
        return EXIT.ok;
      });
    }
    if (sub === 'accept' || sub === 'reject') {
      const { values: v, pos } = parse(args.slice(1), { all: { type: 'boolean', default: false } }, [0, Infinity], `label ${sub}`);
      if (!v.all && pos.length === 0) throw new UsageError(`pixdex label ${sub} takes image ids (or --all)`);
      return withEngine(v, async (engine) => {
        const ids = v.all ? engine.suggestions().map((x) => x.id) : pos.map((p) => engine.resolve(p));
        const done = ids.map((id) => (sub === 'accept' ? engine.acceptSuggestion(id) : engine.rejectSuggestion(id)));
        out(v, { [sub === 'accept' ? 'accepted' : 'rejected']: done }, `${done.length} suggestion(s) ${sub}ed`);
        return EXIT.ok;
      });
    }
    const { values: v, pos } = parse(args, {}, [2, 2], 'label');
    const { label } = parseParams(VERBS.label, { label: pos[1] }, CLI_NAMES);
    return withEngine(v, async (engine) => {
      const rec = engine.label(pos[0], label);
      out(v, rec, `${rec.path}: ${rec.label}`);
      return EXIT.ok;
    });
  },

  async train(args) {
    const { values: v } = parse(args, { dim: { type: 'string' }, epochs: { type: 'string' }, sample: { type: 'string' } }, [0, 0], 'train');
    const options = parseParams(VERBS.train, { dim: v.dim, epochs: v.epochs, sample: v.sample }, CLI_NAMES);
    return withEngine(v, async (engine) => {
      const progress = new ProgressLine(process.stderr);
      const report = await engine.train({
        ...options,
        onProgress: (p) => {
          if (p.phase === 'features') progress.update(`feature maps ${p.done}/${p.total}`);
          else if (p.phase === 'train') progress.note(`epoch ${p.epoch}/${p.epochs}  loss ${p.loss.total.toFixed(4)} (reconstruction ${p.loss.reconstruction.toFixed(4)}, similarity ${p.loss.similarity.toFixed(4)})  ${p.loss.seconds.toFixed(1)}s`);
          else if (p.phase === 'embed') progress.update(`re-embedding ${p.done}/${p.total}`);
        },
      });
      progress.done();
      const s = report.space;
      out(v, report, [
        `trained a ${options.dim}-d autoencoder in ${report.trainSeconds}s (features ${report.featureSeconds}s), re-embedded ${report.reembedded} images in ${report.embedSeconds}s; search now uses it (${report.bytesPerImage} bytes per image)`,
        ...(s.kind === 'autoencoder' ? [`final loss ${s.finalLoss.toFixed(4)}; compare with: pixdex eval DATASET --space backbone|autoencoder`] : []),
        ...report.removed.map((r) => `  removed: ${r.path}: ${r.error}`),
      ].join('\n'));
      return EXIT.ok;
    }, { create: true });
  },

  async 'train-classifier'(args) {
    const { values: v } = parse(args, { hidden: { type: 'string' }, epochs: { type: 'string' }, patience: { type: 'string' } }, [0, 0], 'train-classifier');
    const options = parseParams(VERBS['train-classifier'], { hidden: v.hidden, epochs: v.epochs, patience: v.patience }, CLI_NAMES);
    return withEngine(v, async (engine) => {
      const progress = new ProgressLine(process.stderr);
      const report = await engine.trainClassifier(options, (epoch, loss, valLoss) => progress.update(`epoch ${epoch}  loss ${loss.toFixed(4)}  held-out loss ${valLoss.toFixed(4)}`));
      progress.done();
      out(v, report, `trained on ${report.trainImages} images (${report.classes.length} labels) in ${report.seconds}s, ${report.epochs} epochs; held-out accuracy ${report.heldOutAccuracy.toFixed(3)} on ${report.heldOutImages} images. Use: pixdex classify <image> --method head|both`);
      return EXIT.ok;
    });
  },

  async remove(args) {
    const { values: v, pos } = parse(args, {}, [1, 1], 'remove');
    return withEngine(v, async (engine) => {
      const rec = engine.get(engine.resolve(pos[0]));
      engine.remove(rec.id);
      out(v, { removed: rec.id, path: rec.path }, `removed ${rec.path} (id ${rec.id})`);
      return EXIT.ok;
    });
  },

  async eval(args) {
    const { values: v, pos } = parse(args, { space: { type: 'string' }, instance: { type: 'string' }, seed: { type: 'string' }, backgrounds: { type: 'string' }, queries: { type: 'string' }, references: { type: 'string' }, workers: { type: 'string' } }, [0, 1], 'eval');
    if (v.queries !== undefined || v.references !== undefined) return evalPairs(v, pos);
    if (pos.length !== 1) throw new UsageError(`pixdex eval takes a dataset folder, or --queries DIR --references DIR, but received ${pos.length} arguments`);
    if (v.workers !== undefined) throw new UsageError('--workers belongs to pixdex eval --queries DIR --references DIR');
    // --descriptor names what to evaluate, not the library's descriptor: eval writes nothing.
    const descriptor = v.descriptor === undefined ? undefined : checkDescriptor(v.descriptor);
    const options = parseParams(VERBS.eval, { space: v.space, instance: v.instance, seed: v.seed }, CLI_NAMES);
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
  },

  async stats(args) {
    const { values: v } = parse(args, {}, [0, 0], 'stats');
    return withEngine(v, async (engine) => {
      const s = await engine.stats();
      const labels = Object.entries(s.labels).map(([l, n]) => `${l} ${n}`).join(', ') || 'none';
      out(v, s, [
        `images    ${s.images}`,
        `labels    ${labels}`,
        `dates     ${s.dates.dated === 0 ? 'none (no image has an EXIF capture date)' : `${s.dates.earliest} … ${s.dates.latest} (${s.dates.dated} of ${s.images} images dated)`}`,
        `backbone  ${s.backbone} (${s.dims}-d), descriptor ${s.descriptor}`,
        `space     ${s.spaceInfo.kind === 'backbone' ? `backbone (${s.descriptor} ${s.dims}-d)` : `autoencoder ${s.spaceInfo.dims}-d, trained ${s.spaceInfo.trainedAt} on ${s.spaceInfo.samples} images, ${s.spaceInfo.epochs} epochs, final loss ${s.spaceInfo.finalLoss.toFixed(4)}`}`,
        `backend   ${s.backend} (${s.backendReason})`,
        `index     hnsw cosine M=${s.index.m} efConstruction=${s.index.efConstruction} ef=${s.index.efSearch}, ${s.index.size} vectors, ${s.index.pendingChanges} changes since snapshot`,
        `ann       hnswlib-node ${describeBuildLine(s.ann)}`,
        `local     ${s.localFeatures.enabled ? `on, ${s.localFeatures.images} images with local features, ${s.localFeatures.vocabulary ? `vocabulary of ${s.localFeatures.vocabulary.words} words (${s.localFeatures.vocabulary.images} images, ${s.localFeatures.vocabulary.learnedAt})` : 'no vocabulary yet'}` : 'off'}${s.localFeatures.hint ? ` — ${s.localFeatures.hint}` : ''}`,
        `store     ${(s.storeBytes / 1048576).toFixed(1)} MiB in ${s.dataDir}`,
      ].join('\n'));
      return EXIT.ok;
    });
  },
};

/**
 * Runs `work` with a signal that the first Ctrl-C (or SIGTERM) aborts, telling the user
 * `stopping`; a second one quits at once (exit code interrupted). The progress line is closed and
 * the handlers removed however `work` ends.
 */
async function interruptible<T>(progress: ProgressLine, stopping: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    progress.note(stopping);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * `pixdex eval --queries DIR --references DIR` (src/eval/pairs.ts). Without --data the references
 * go into a temporary library under os.tmpdir(), removed at the end (PIXDEX_DATA is not used:
 * an evaluation does not fill the default library unless --data names it).
 */
async function evalPairs(v: Values, pos: readonly string[]): Promise<number> {
  if (pos.length > 0) throw new UsageError(`pixdex eval --queries DIR --references DIR takes no dataset folder, but received ${pos.map((p) => JSON.stringify(p)).join(' ')}`);
  if (v.queries === undefined || v.references === undefined) throw new UsageError(`pixdex eval needs both --queries DIR and --references DIR (missing --${v.queries === undefined ? 'queries' : 'references'})`);
  for (const o of ['space', 'instance', 'seed', 'backgrounds'] as const) {
    if (v[o] !== undefined) throw new UsageError(`--${o} belongs to pixdex eval <dataset-dir>, not to --queries/--references`);
  }
  const { queries, references, workers } = parseParams(VERBS.eval, { queries: v.queries, references: v.references, workers: v.workers }, CLI_NAMES);
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
