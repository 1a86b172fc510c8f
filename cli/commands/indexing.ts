/** `pixdex index`: recursive, incremental, resumable; a progress line and a summary in the same words. */
import type { IndexProgress, IndexSummary } from '../../src/engine.ts';
import type { VERBS } from '../../src/contracts/verbs.ts';
import type { z } from 'zod';
import { EXIT, exitCodeForCode } from '../exit.ts';
import { ProgressLine, formatEta } from '../progress.ts';
import { checkInputsExist, interruptible, out, withEngine } from '../run.ts';
import type { Parsed } from '../spec.ts';

/**
 * The counts of a run in the words of the `--json` summary: "16 added, 0 updated, 3 skipped,
 * 0 failed" (skipped: unchanged since the last run, not read again). The progress line and the
 * final summary both say it this way.
 */
export function countsText(s: Pick<IndexSummary, 'added' | 'updated' | 'skipped' | 'failed'>): string {
  return `${s.added} added, ${s.updated} updated, ${s.skipped} skipped, ${s.failed} failed`;
}

export async function index({ values: v, pos, params }: Parsed<z.output<typeof VERBS.index>>): Promise<number> {
  const { labelFromFolder, workers, watch } = params;
  await checkInputsExist(pos);
  if (watch) {
    const { watchFolders, watchRoots } = await import('../watch.ts');
    const roots = await watchRoots(pos);
    return withEngine({ ...v, workers }, (engine) => watchFolders(engine, roots, { labelFromFolder, json: Boolean(v.json) }), { create: true });
  }
  return withEngine({ ...v, workers }, async (engine) => {
    const progress = new ProgressLine(process.stderr);
    const summary: IndexSummary = await interruptible(progress, 'stopping after the current batch (Ctrl-C again to quit at once; the store stays consistent)', (signal) =>
      engine.index(pos, {
        labelFromFolder,
        signal,
        onWarning: (message) => progress.note(`warning: ${message}`),
        onProgress: (p: IndexProgress) => progress.update(`indexed ${p.done}/${p.total}  ${p.rate.toFixed(1)} img/s  ETA ${formatEta(p.etaSeconds)}  (${countsText(p.summary)})`),
        onVocabulary: (p) => progress.update(p.stage === 'learn' ? `learning the visual vocabulary from ${p.total} keypoints${p.done === p.total ? ': done' : ''}` : `visual words ${p.done}/${p.total} images`),
        onDuplicates: (p) => progress.update(`duplicates: compared ${p.done}/${p.total} new images with their neighbours  ${p.rate.toFixed(0)}/s  ETA ${formatEta(p.etaSeconds)}`),
      }));
    const text = [
      `${countsText(summary)}, ${summary.removed} removed of ${summary.total} files in ${summary.seconds}s${summary.interrupted ? ' (interrupted: re-run to resume)' : ''}`,
      ...summary.errors.map((e) => `  failed: ${e.path}: ${e.error}`),
    ].join('\n');
    out(v, summary, text);
    return indexExitCode(summary);
  }, { create: true });
}

/**
 * Exit code of an index run: 130 when interrupted; when files failed and none was indexed, updated
 * or skipped as unchanged, the failures' shared error code (MODEL_NOT_FOUND 5, EMPTY_IMAGE 4...)
 * or else 4 (bad input), with one line on stderr; otherwise 0 (failures next to successes are in
 * the report).
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
