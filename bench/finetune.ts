/**
 * head vs finetune vs scratch (`train-classifier --mode`), train → val, on hymenoptera_data
 * (train/ and val/ folders) and oxford_flowers17 (fixed split as bench/labels.ts: per class the
 * first 60 files in name order train, the last 20 validate). Each (dataset, mode) runs in its own
 * child process so its peak RSS is its own. Prints one JSON line per run (`missed`: each wrong val
 * photo, relative to the dataset, and what it was called).
 *
 *   node --import tsx bench/finetune.ts [--datasets DIR] [--dataset NAME] [--mode head|finetune|scratch] [--views N] [--blocks N] [--input N] [--epochs N] [--seed N] [--no-refit]
 *
 * --blocks: inverted-residual blocks retrained below Conv_1 (default: train-classifier's default on
 * the tensorflow backend; 0 on wasm, which cannot train the blocks' depthwise convolutions: the
 * JSON line says which). --input: scratch's input side (default 128). scratch trains the whole
 * network and needs the tensorflow backend (on wasm its run fails with BACKEND_UNAVAILABLE).
 * PIXDEX_BACKBONE=mobilenet_v1_embedding measures that backbone (finetune retrains its last 1x1
 * convolution, on any backend; scratch is mobilenet_v2 only).
 *   PIXDEX_BENCH_SMOKE=1 node --import tsx bench/finetune.ts   # 8 images per class, 2 epochs
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/engine.ts';
import { loadDataset, type DatasetItem } from '../src/eval/evaluate.ts';
import { accuracy } from '../src/classify.ts';
import { ClassifierHead } from '../src/models/head.ts';
import { finetuneOnFiles, queryFeatures } from '../src/finetune.ts';
import { decodeImage } from '../src/image/decode.ts';
import { ScratchNet, assertCanTrainScratch } from '../src/models/scratch-net.ts';
import type { PixdexError } from '../src/errors.ts';
import { tf } from '../src/backend.ts';
import { FINETUNE_BLOCKS } from '../src/contracts/limits.ts';
import { MOBILENET_V2_TOP } from '../src/models/finetune.ts';

const { values } = parseArgs({ options: { datasets: { type: 'string' }, dataset: { type: 'string' }, mode: { type: 'string' }, views: { type: 'string' }, blocks: { type: 'string' }, input: { type: 'string' }, epochs: { type: 'string' }, seed: { type: 'string' }, 'no-refit': { type: 'boolean' } } });
const root = path.resolve(values.datasets ?? process.env.PIXDEX_DATASETS ?? '../shared/datasets');
const smoke = process.env.PIXDEX_BENCH_SMOKE === '1';
const DATASETS = smoke ? ['hymenoptera_data'] : ['hymenoptera_data', 'oxford_flowers17'];
const MODES = ['head', 'finetune', 'scratch'];

if (!values.dataset || !values.mode) {
  for (const dataset of DATASETS) {
    for (const mode of MODES) {
      const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--datasets', root, '--dataset', dataset, '--mode', mode, ...(values.views ? ['--views', values.views] : []), ...(values.blocks ? ['--blocks', values.blocks] : []), ...(values.input ? ['--input', values.input] : []), ...(values.epochs ? ['--epochs', values.epochs] : []), ...(values.seed ? ['--seed', values.seed] : []), ...(values['no-refit'] ? ['--no-refit'] : [])];
      process.stdout.write(execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
    }
  }
} else {
  await runOne(values.dataset, values.mode);
}

function flowersSplit(items: DatasetItem[]): DatasetItem[] {
  const byClass = new Map<string, DatasetItem[]>();
  for (const it of items) byClass.set(it.label, [...(byClass.get(it.label) ?? []), it]);
  return [...byClass.values()].flatMap((list) => list.sort((a, b) => (a.path < b.path ? -1 : 1)).map((it, i) => ({ ...it, split: i < 60 ? 'train' : 'val' })));
}

async function runOne(name: string, mode: string): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-finetune-'));
  const engine = await Engine.open({ dataDir });
  try {
    let items = loadDataset(path.join(root, name), engine.config.extensions);
    if (!items.some((i) => i.split)) items = flowersSplit(items);
    if (smoke) {
      const seen = new Map<string, number>();
      items = items.filter((it) => {
        const key = `${it.split}/${it.label}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        return seen.get(key)! <= 8;
      });
    }
    const train = items.filter((x) => x.split === 'train');
    const val = items.filter((x) => x.split !== 'train');
    const truth = val.map((x) => x.label);
    const backbone = await engine.describer.model();
    if (mode === 'scratch') {
      try {
        assertCanTrainScratch();
      } catch (err) {
        // wasm (CI's smoke run): the whole network cannot train there; say so in the JSON line instead of dying.
        console.log(JSON.stringify({ dataset: name, mode, backend: tf.getBackend(), skipped: `${(err as PixdexError).code}: ${(err as Error).message}` }));
        return;
      }
    }
    const t = performance.now();
    let pred: string[];
    let extra: Record<string, unknown>;
    if (mode === 'head') {
      const vec = async (list: DatasetItem[]) => (await engine.describer.describeFiles(list.map((i) => i.path), { space: engine.space() })).embeddings.map((e) => e!.pooled);
      const trainVectors = await vec(train);
      const head = await ClassifierHead.train(trainVectors, train.map((x) => x.label));
      const trainSeconds = (performance.now() - t) / 1000;
      pred = (await vec(val)).map((v) => head.predict(v)[0].label);
      extra = { epochs: head.report.epochs, heldOutAccuracy: round4(head.report.heldOutAccuracy), trainSeconds: round1(trainSeconds) };
      head.dispose();
    } else {
      const views = Number(values.views ?? (smoke ? 2 : 4));
      // scratch trains the whole network (no --blocks); finetune on mobilenet_v2: the default blocks on tensorflow, Conv_1 alone on wasm; other backbones: their one split.
      const blocks = mode === 'scratch' ? undefined : values.blocks !== undefined ? Number(values.blocks) : engine.spec.id !== MOBILENET_V2_TOP.backbone ? undefined : tf.getBackend() === 'tensorflow' ? FINETUNE_BLOCKS.default : 0;
      const { top, report } = await finetuneOnFiles(backbone, train, engine.config.maxInputPixels, {
        mode: mode as 'finetune' | 'scratch',
        views,
        blocks,
        ...(smoke ? { epochs: 2 } : values.epochs ? { epochs: Number(values.epochs) } : {}),
        ...(values.input ? { inputSize: Number(values.input) } : {}),
        ...(values.seed ? { seed: Number(values.seed) } : {}),
        ...(values['no-refit'] ? { refit: false } : {}),
        onEpoch: (e) => process.stderr.write(Number.isNaN(e.valLoss) ? `${name} ${mode} refit epoch ${e.epoch} loss ${e.loss.toFixed(4)} ${e.seconds.toFixed(1)}s\n` : `${name} ${mode} epoch ${e.epoch} loss ${e.loss.toFixed(4)} held-out loss ${e.valLoss.toFixed(4)} acc ${e.valAccuracy.toFixed(3)} ${e.seconds.toFixed(1)}s\n`),
      });
      const trainSeconds = (performance.now() - t) / 1000;
      pred = [];
      for (const it of val) {
        const bytes = fs.readFileSync(it.path);
        pred.push((top instanceof ScratchNet ? top.predict((await decodeImage(bytes, { size: top.inputSize, maxInputPixels: engine.config.maxInputPixels })).pixels) : top.predict(await queryFeatures(backbone, top.split, bytes, engine.config.maxInputPixels)))[0].label);
      }
      extra = { epochs: report.epochs, bestEpoch: report.bestEpoch, views: mode === 'scratch' ? '1 fresh per epoch' : views, blocks: blocks ?? (mode === 'scratch' ? 'all' : 0), ...(top instanceof ScratchNet ? { inputSize: top.inputSize } : {}), heldOutAccuracy: round4(report.heldOutAccuracy), refit: report.refit ?? false, featureSeconds: report.featureSeconds, trainSeconds: round1(trainSeconds), trained: report.trained };
      top.dispose();
    }
    console.log(JSON.stringify({
      dataset: name, mode, backbone: engine.spec.id, backend: tf.getBackend(), train: train.length, val: val.length,
      valAccuracy: round4(accuracy(truth, pred)), ...extra,
      missed: val.flatMap((it, i) => (pred[i] === it.label ? [] : [`${path.relative(path.join(root, name), it.path)} -> ${pred[i]}`])),
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), loadAverage: os.loadavg().map((x) => round1(x)),
    }));
  } finally {
    await engine.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}
