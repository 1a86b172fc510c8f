/**
 * `pixdex duplicates [--kind exact|near|similar] [--threshold T] [--json]`: groups of copies, edits
 * and bursts (src/duplicates/), best copy first. Images not compared with their neighbours yet
 * (indexed before duplicates existed, or interrupted) are compared first, with progress.
 */
import type { z } from 'zod';
import type { VERBS } from '../src/contracts/verbs.ts';
import type { DuplicateReport } from '../src/duplicates/report.ts';
import { Engine } from '../src/engine.ts';
import { EXIT } from './exit.ts';
import { engineOptions } from './args.ts';
import type { Parsed } from './spec.ts';
import { ProgressLine, formatEta } from './progress.ts';

/** Runs `pixdex duplicates`; returns the exit code. */
export async function duplicates({ values: v, params: options }: Parsed<z.output<typeof VERBS.duplicates>>): Promise<number> {
  const engine = await Engine.open(engineOptions(v), { create: false });
  const progress = new ProgressLine(process.stderr);
  try {
    const report = await engine.duplicates({ ...options, onProgress: (p) => progress.update(`comparing ${p.done}/${p.total} images with their neighbours  ${p.rate.toFixed(0)}/s  ETA ${formatEta(p.etaSeconds)}`) });
    progress.done();
    process.stdout.write(v.json ? JSON.stringify(report) + '\n' : describe(report));
    return EXIT.ok;
  } finally {
    progress.done();
    await engine.close();
  }
}

function describe(r: DuplicateReport): string {
  if (r.groups.length === 0) return `no ${r.kind} duplicates${r.kind === 'exact' ? '' : ` (cosine >= ${r.thresholds[r.kind === 'near' ? 'nearCosine' : 'similarCosine']})`}\n`;
  const lines = [`${r.groups.length} groups of ${r.kind} duplicates, ${r.images} images (best copy first):`];
  r.groups.forEach((g, i) => {
    lines.push(`group ${i + 1}:`);
    g.members.forEach((m, j) => {
      const e = g.kind === 'exact' ? (j === 0 ? '  keep' : '  the same bytes') : m.evidence ? `  ${m.evidence.kind}: cosine ${m.evidence.cosine.toFixed(3)}${m.evidence.inliers >= 0 ? `, ${m.evidence.inliers} inliers` : ''}` : m.evidence === null ? '  (joined through another copy)' : '  keep';
      lines.push(`  ${m.width}x${m.height}  ${m.path}  (id ${m.id})${e}`);
    });
  });
  return lines.join('\n') + '\n';
}
