/**
 * kNN vote vs the trained softmax head, train → val, on labelled datasets. Prints one JSON line
 * per dataset.
 *
 *   node --import tsx bench/labels.ts [--datasets DIR] [--backbone ID]
 *
 * Splits: hymenoptera_data has train/ and val/ folders. oxford_flowers17 has none; the fixed
 * split is, per class, the first 60 files in name order for training and the last 20 for
 * validation (1020 / 340).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine.ts';
import { loadDataset, type DatasetItem } from '../src/eval/evaluate.ts';
import { accuracy, knnVote } from '../src/classify.ts';
import { exactKnn, l2normalize } from '../src/vector.ts';
import { ClassifierHead } from '../src/models/head.ts';

const { values } = parseArgs({ options: { datasets: { type: 'string' }, backbone: { type: 'string' }, models: { type: 'string' } } });
const root = path.resolve(values.datasets ?? process.env.PIXDEX_DATASETS ?? '../shared/datasets');

function flowersSplit(items: DatasetItem[]): DatasetItem[] {
  const byClass = new Map<string, DatasetItem[]>();
  for (const it of items) byClass.set(it.label, [...(byClass.get(it.label) ?? []), it]);
  return [...byClass.values()].flatMap((list) => list.sort((a, b) => (a.path < b.path ? -1 : 1)).map((it, i) => ({ ...it, split: i < 60 ? 'train' : 'val' })));
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-labels-'));
const engine = await Engine.open({ dataDir, ...(values.backbone ? { backbone: values.backbone } : {}), ...(values.models ? { modelsDir: values.models } : {}) });
try {
  for (const name of ['hymenoptera_data', 'oxford_flowers17']) {
    let items = loadDataset(path.join(root, name), engine.config.extensions);
    if (!items.some((i) => i.split)) items = flowersSplit(items);
    const { embeddings } = await engine.describer.describeFiles(items.map((i) => i.path), { space: engine.space() });
    const vectors = embeddings.map((e) => e?.code ?? e?.pooled);
    const ok = items.map((it, i) => ({ it, v: vectors[i] })).filter((x): x is { it: DatasetItem; v: Float32Array } => x.v !== undefined);
    const train = ok.filter((x) => x.it.split === 'train');
    const val = ok.filter((x) => x.it.split !== 'train');
    const dim = train[0].v.length;
    const matrix = new Float32Array(train.length * dim);
    train.forEach((x, i) => matrix.set(l2normalize(x.v), i * dim));
    const truth = val.map((x) => x.it.label);
    const knn: Record<string, number> = {};
    for (const k of [1, 5, 10]) {
      const pred = val.map((x) => knnVote(exactKnn(x.v, matrix, dim, k).map((h) => ({ label: train[h.index].it.label, score: h.score }))).label);
      knn[`k${k}`] = Math.round(accuracy(truth, pred) * 10000) / 10000;
    }
    const t = performance.now();
    const head = await ClassifierHead.train(train.map((x) => x.v), train.map((x) => x.it.label));
    const trainSeconds = (performance.now() - t) / 1000;
    const headAcc = accuracy(truth, val.map((x) => head.predict(x.v)[0].label));
    head.dispose();
    console.log(JSON.stringify({
      dataset: name,
      backbone: engine.spec.id,
      train: train.length,
      val: val.length,
      knnAccuracy: knn,
      headAccuracy: Math.round(headAcc * 10000) / 10000,
      headTrainSeconds: Math.round(trainSeconds * 10) / 10,
      headEpochs: head.report.epochs,
      headHeldOutAccuracy: Math.round(head.report.heldOutAccuracy * 10000) / 10000,
    }));
  }
} finally {
  await engine.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
