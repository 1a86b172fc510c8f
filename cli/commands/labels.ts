/** `pixdex label`: set or clear a label, and the suggestions (propagate, list, accept, reject). */
import type { z } from 'zod';
import { VERBS, parseParams } from '../../src/contracts/verbs.ts';
import { EXIT } from '../exit.ts';
import { out, withEngine } from '../run.ts';
import { UsageError, type Parsed } from '../spec.ts';

/**
 * `pixdex label <path|id> <label>` sets a label; `--clear` removes it, through the same engine
 * call as `PUT /api/images/:id/label {"label": null}`.
 */
export async function label({ values: v, pos }: Parsed): Promise<number> {
  if (v.clear && pos.length !== 1) throw new UsageError(`pixdex label <path|id> --clear takes no label, but received ${pos.slice(1).map((p) => JSON.stringify(p)).join(' ')}`, 'label');
  if (!v.clear && pos.length !== 2) throw new UsageError(`pixdex label takes <path|id> and a label (or --clear instead of the label), but received ${pos.length} argument(s)`, 'label');
  if (!v.clear && pos[1].trim() === '') throw new UsageError('An empty label does not clear one: use `pixdex label <path|id> --clear`', 'label');
  const { label: value } = parseParams(VERBS.label, { label: v.clear ? null : pos[1] }, { names: 'cli' });
  return withEngine(v, async (engine) => {
    const rec = engine.label(pos[0], value);
    out(v, rec, value === null ? `${rec.path}: label cleared` : `${rec.path}: ${rec.label}`);
    return EXIT.ok;
  });
}

export async function propagate({ values: v, params }: Parsed<z.output<typeof VERBS.propagate>>): Promise<number> {
  if (v.apply && v['dry-run']) throw new UsageError('--apply and --dry-run exclude each other', 'label propagate');
  return withEngine(v, async (engine) => {
    const r = engine.propagate(params);
    out(v, r, [
      `${r.suggested} suggestions for ${r.unlabelled} unlabelled images (${r.undecided} undecided: below confidence ${params.minConfidence}, or ${r.unknown} unlike every labelled class)${r.applied ? ': saved; review with `pixdex label suggestions`' : ': not saved (add --apply)'}`,
      ...r.suggestions.slice(0, 20).map((x) => `  ${x.label.padEnd(16)} ${x.confidence.toFixed(3)}  ${x.path}  (id ${x.id})`),
      ...(r.suggestions.length > 20 ? [`  ... and ${r.suggestions.length - 20} more (--json for all)`] : []),
    ].join('\n'));
    return EXIT.ok;
  });
}

export async function suggestions({ values: v }: Parsed): Promise<number> {
  return withEngine(v, async (engine) => {
    const list = engine.suggestions();
    out(v, { suggestions: list }, list.map((x) => `${String(x.id).padStart(6)}  ${x.label.padEnd(16)} ${x.confidence.toFixed(3)}  ${x.path}`).join('\n') || 'no pending suggestions (run `pixdex label propagate --apply`)');
    return EXIT.ok;
  });
}

/** `pixdex label accept|reject <id>...|--all`. */
export async function decide({ command, values: v, pos }: Parsed): Promise<number> {
  const accept = command === 'label accept';
  if (!v.all && pos.length === 0) throw new UsageError(`pixdex ${command} takes image ids (or --all)`, command);
  if (v.all && pos.length > 0) throw new UsageError(`pixdex ${command} takes image ids or --all, not both`, command);
  return withEngine(v, async (engine) => {
    const ids = v.all ? engine.suggestions().map((x) => x.id) : pos.map((p) => engine.resolve(p));
    const done = ids.map((id) => (accept ? engine.acceptSuggestion(id) : engine.rejectSuggestion(id)));
    out(v, { [accept ? 'accepted' : 'rejected']: done }, `${done.length} suggestion(s) ${accept ? 'accepted' : 'rejected'}`);
    return EXIT.ok;
  });
}
