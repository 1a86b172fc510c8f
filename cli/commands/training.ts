/** `pixdex train` (the autoencoder) and `pixdex train-classifier` (the softmax head, or the fine-tuned / scratch top). */
import type { z } from 'zod';
import type { VERBS } from '../../src/contracts/verbs.ts';
import { EXIT } from '../exit.ts';
import { ProgressLine } from '../progress.ts';
import { interruptible, out, withEngine } from '../run.ts';
import type { Parsed } from '../spec.ts';

export async function train({ values: v, params }: Parsed<z.output<typeof VERBS.train>>): Promise<number> {
  return withEngine(v, async (engine) => {
    const progress = new ProgressLine(process.stderr);
    const report = await engine.train({
      ...params,
      onProgress: (p) => {
        if (p.phase === 'features') progress.update(`feature maps ${p.done}/${p.total}`);
        else if (p.phase === 'train') progress.note(`epoch ${p.epoch}/${p.epochs}  loss ${p.loss.total.toFixed(4)} (reconstruction ${p.loss.reconstruction.toFixed(4)}, similarity ${p.loss.similarity.toFixed(4)})  ${p.loss.seconds.toFixed(1)}s`);
        else if (p.phase === 'embed') progress.update(`re-embedding ${p.done}/${p.total}`);
      },
    });
    progress.done();
    const s = report.space;
    out(v, report, [
      `trained a ${params.dim}-d autoencoder in ${report.trainSeconds}s (features ${report.featureSeconds}s), re-embedded ${report.reembedded} images in ${report.embedSeconds}s; search now uses it (${report.bytesPerImage} bytes per image)`,
      ...(s.kind === 'autoencoder' ? [`final loss ${s.finalLoss.toFixed(4)}; compare with: pixdex eval DATASET --space backbone|autoencoder`] : []),
      ...report.removed.map((r) => `  removed: ${r.path}: ${r.error}`),
    ].join('\n'));
    return EXIT.ok;
  }, { create: true });
}

export async function trainClassifier({ values: v, params }: Parsed<z.output<typeof VERBS['train-classifier']>>): Promise<number> {
  return withEngine(v, async (engine) => {
    const progress = new ProgressLine(process.stderr);
    const tuning = params.mode === 'finetune' || params.mode === 'scratch';
    const report = await interruptible(progress, 'stopping after this step; the best weights so far are kept (Ctrl-C again quits without saving)', (signal) =>
      engine.trainClassifier({
        ...params,
        ...(tuning ? { signal, onFeatures: (done: number, total: number) => progress.update(`${params.mode === 'scratch' ? 'decoding' : 'backbone features'} ${done}/${total} images`) } : {}),
      }, (epoch, loss, valLoss) => (tuning ? progress.note.bind(progress) : progress.update.bind(progress))(Number.isNaN(valLoss) ? `refit on every labelled image: epoch ${epoch}  loss ${loss.toFixed(4)}` : `epoch ${epoch}  loss ${loss.toFixed(4)}  held-out loss ${valLoss.toFixed(4)}`)));
    const mode = 'mode' in report ? `${report.mode} (${report.trained.join(' + ')}, ${report.mode === 'scratch' ? 'a fresh augmented view per image per epoch' : `${report.views} views per image`}, ${report.backend}${report.aborted ? ', stopped early: best weights kept' : ''})` : 'head';
    const refit = 'refit' in report ? report.refit : undefined;
    out(v, report, `trained the ${mode} classifier on ${refit ? refit.images - report.heldOutImages : report.trainImages} images (${report.classes.length} labels) in ${report.seconds}s${'featureSeconds' in report ? ` (+${report.featureSeconds}s ${params.mode === 'scratch' ? 'decoding' : 'backbone features'})` : ''}, ${report.epochs} epochs; held-out accuracy ${report.heldOutAccuracy.toFixed(3)} on ${report.heldOutImages} images${refit ? `; then refit on all ${refit.images} images (held-out ones included) for the best ${refit.epochs} epochs, ${refit.seconds}s` : ''}. Use: pixdex classify <image> --method head|both`);
    return EXIT.ok;
  });
}
