/** `pixdex search` and `pixdex classify`: a query photo against the library. */
import type { z } from 'zod';
import type { VERBS } from '../../src/contracts/verbs.ts';
import { EXIT } from '../exit.ts';
import { out, readQuery, withEngine } from '../run.ts';
import type { Parsed } from '../spec.ts';

export async function search({ values: v, pos, params }: Parsed<z.output<typeof VERBS.search>>): Promise<number> {
  const query = await readQuery(pos[0]);
  return withEngine(v, async (engine) => {
    const results = await engine.search(query, params);
    const filtered = params.label !== undefined || params.after !== undefined || params.before !== undefined;
    out(v, { results }, results.map((r, i) => `${String(i + 1).padStart(3)}. ${r.score.toFixed(4)}  ${r.label ?? '-'}  ${r.path}  (id ${r.id})${r.takenAt ? `  taken ${r.takenAt}` : ''}${r.inliers === undefined ? '' : r.verified ? `  verified: ${r.inliers} inliers` : `  ${r.inliers} inliers`}`).join('\n') || (filtered ? 'no results: no indexed image matches the filters' : 'no results: the index is empty'));
    return EXIT.ok;
  });
}

export async function classify({ values: v, pos, params }: Parsed<z.output<typeof VERBS.classify>>): Promise<number> {
  const query = await readQuery(pos[0]);
  return withEngine(v, async (engine) => {
    const c = await engine.classify(query, params);
    const { method: _m, ...json } = c;
    out(v, json, `${c.label ?? c.reason ?? 'unknown'}  confidence ${c.confidence.toFixed(3)} (calibrated; vote share ${c.share.toFixed(3)})  (${c.method})  votes ${Object.entries(c.votes).map(([l, w]) => `${l} ${w.toFixed(3)}`).join(', ')}`);
    return EXIT.ok;
  });
}
