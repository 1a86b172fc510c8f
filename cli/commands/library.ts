/** `pixdex stats` and `pixdex remove`: what the library holds, and taking an image out of it. */
import { DEFAULT_DESCRIPTOR } from '../../src/descriptor-kind.ts';
import type { Stats } from '../../src/stats.ts';
import type { WatchStatus } from '../../src/watch-status.ts';
import { describeBuildLine } from '../../src/ann-build.ts';
import { EXIT } from '../exit.ts';
import { out, withEngine } from '../run.ts';
import type { Parsed } from '../spec.ts';

export async function stats({ values: v }: Parsed): Promise<number> {
  return withEngine(v, async (engine) => {
    const s = await engine.stats();
    out(v, s, statsText(s));
    return EXIT.ok;
  });
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

/** The text of `pixdex stats`: a line for each field of its `--json` (test/cli.test.ts compares them). */
export function statsText(s: Stats): string {
  const labels = Object.entries(s.labels).map(([l, n]) => `${l} ${n}`).join(', ') || 'none';
  const sp = s.spaceInfo;
  const ix = s.index;
  const c = s.classifier;
  const lf = s.localFeatures;
  const rows: [string, string][] = [
    ['images', `${s.images}`],
    ['labels', labels],
    ['dates', s.dates.dated === 0 ? 'none (no image has an EXIF capture date)' : `${s.dates.earliest} … ${s.dates.latest} (${s.dates.dated} of ${s.images} images dated)`],
    ['suggestions', `${s.suggestions} pending${s.suggestions > 0 ? ' (review with `pixdex label suggestions`)' : ''}`],
    ['classifier', c
      ? `${c.mode === 'finetune' || c.mode === 'scratch' ? `${c.mode} (${c.trained.join(' + ')}, ${c.mode === 'scratch' ? 'a fresh augmented view per image per epoch' : `${c.views} views per image`}, ${c.backend})` : 'head'} on ${c.classes.length} labels (${c.classes.join(', ')}), held-out accuracy ${c.heldOutAccuracy.toFixed(3)} on ${c.heldOutImages} images, ${'refit' in c && c.refit ? `refit on all ${c.refit.images} images in ${c.refit.epochs} epochs (the best of a first run of ${c.epochs} epochs on the other ${c.refit.images - c.heldOutImages}, which the held-out accuracy is of)` : `trained on ${c.trainImages} images in ${c.epochs} epochs`} (final loss ${c.finalLoss.toFixed(4)}, ${c.seconds}s) at ${new Date(c.trainedAt).toISOString()}, ${(c.bytes / 1024).toFixed(1)} KiB`
      : 'none (`pixdex train-classifier` trains one on the labelled images)'],
    ['backbone', `${s.backbone} (${s.dims}-d), descriptor ${s.descriptor}${s.descriptor === DEFAULT_DESCRIPTOR ? '' : ` (kept from when the library was made; new libraries get ${DEFAULT_DESCRIPTOR})`}`],
    ['space', sp.kind === 'backbone' ? `backbone (${s.descriptor} ${s.dims}-d)` : `autoencoder ${sp.dims}-d, trained ${sp.trainedAt} on ${sp.samples} images, ${sp.epochs} epochs, final loss ${sp.finalLoss.toFixed(4)}`],
    ['backend', `${s.backend} (${s.backendReason})`],
    ['index', `${ix.type} ${ix.metric} M=${ix.m} efConstruction=${ix.efConstruction} ef=${ix.efSearch}, ${ix.size} vectors of ${ix.dims}-d (capacity ${ix.capacity}), ${ix.snapshotSeq === null ? 'no snapshot yet' : `snapshot at journal ${ix.snapshotSeq} (${mib(ix.snapshotBytes ?? 0)})`}, ${ix.pendingChanges} changes since the snapshot`],
    ['ann', `hnswlib-node ${describeBuildLine(s.ann)}`],
    ['local', `${lf.enabled ? `on, ${lf.images} images with local features, ${lf.vocabulary ? `vocabulary of ${lf.vocabulary.words} words (${lf.vocabulary.images} images, ${lf.vocabulary.learnedAt})` : 'no vocabulary yet'}` : 'off'}${lf.hint ? ` — ${lf.hint}` : ''}`],
    ['store', `${mib(s.storeBytes)} in ${s.store}${s.store === s.dataDir ? '' : `, data folder ${s.dataDir}`}`],
    ...s.watch.map((w): [string, string] => ['watch', watchStatusText(w)]),
  ];
  return rows.map(([k, text]) => `${k.padEnd(12)}${text}`).join('\n');
}

export async function remove({ values: v, pos }: Parsed): Promise<number> {
  return withEngine(v, async (engine) => {
    const rec = engine.get(engine.resolve(pos[0]));
    engine.remove(rec.id);
    out(v, { removed: rec.id, path: rec.path }, `removed ${rec.path} (id ${rec.id})`);
    return EXIT.ok;
  });
}

/** A watching process in words: its folders, state, pending changes and last pass. */
function watchStatusText(s: WatchStatus): string {
  const roots = s.roots.map((r) => (r.state === 'missing' ? `${r.path} (missing: images kept)` : r.path)).join(', ');
  const p = s.lastPass;
  const last = p ? `; last pass ${p.finishedAt}: ${p.added} added, ${p.updated} updated, ${p.removed} removed, ${p.failed} failed in ${p.seconds}s` : '';
  return `${roots}: ${s.state}, ${s.pending} pending, ${s.passes} passes${last} (pid ${s.pid})`;
}
