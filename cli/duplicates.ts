/**
 * `pixdex duplicates [--kind exact|near|similar] [--threshold T] [--json]`: groups of copies, edits
 * and bursts (src/duplicates/), best copy first. Images not compared with their neighbours yet
 * (indexed before duplicates existed, or interrupted) are compared first, with progress.
 */
import { parseArgs } from 'node:util';
import { parseParams, VERBS } from '../src/contracts/verbs.ts';
import type { DuplicateReport } from '../src/duplicates/report.ts';
import { Engine } from '../src/engine.ts';
import { InvalidParameterError } from '../src/errors.ts';
import { EXIT } from './exit.ts';
import { GLOBAL_OPTIONS, engineOptions } from './args.ts';
import { ProgressLine, formatEta } from './progress.ts';

const USAGE = `Usage: pixdex duplicates [--kind exact|near|similar] [--threshold T] [--json] [--data DIR]

Groups of the same picture in the library, best copy first (most pixels, then the oldest file):
  exact     the same bytes under several paths (stored once)
  near      the same picture resized, re-saved, cropped (up to ~20 %), colour-edited, watermarked
            or in another format (default)
  similar   the same scene moments apart: bursts, a step to the side (includes near copies)

  --threshold T  the cosine (0..1] a pair needs for near or similar (default: the measured one)
  --json         {"kind", "thresholds", "images", "groups": [{"kind", "members": [{"id", "path",
                 "width", "height", "bytes", "mtimeMs", "label", "evidence": {"kind", "cosine",
                 "inliers"}}]}], "checked"}

pixdex never deletes files: \`pixdex remove <path|id>\` takes a copy out of the library only.
`;

/** Runs `pixdex duplicates`; returns the exit code. */
export async function duplicates(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { ...GLOBAL_OPTIONS, kind: { type: 'string' }, threshold: { type: 'string' } },
  });
  if (v.help) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new InvalidParameterError(`pixdex duplicates takes no arguments, but received ${positionals.map((p) => JSON.stringify(p)).join(' ')}; see pixdex duplicates --help`);
  const options = parseParams(VERBS.duplicates, { kind: v.kind, threshold: v.threshold }, { names: 'cli' });
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
