/**
 * `pixdex check` for local features (issue 14): every image of a library with local features
 * has decodable features, nothing is kept for an image that is gone, word lists match their
 * features under the current vocabulary, and the vocabulary's bytes are there and readable.
 * Repair drops what is orphaned or unreadable; features missing from images come back with the
 * next `pixdex index` of their folder, words and the vocabulary are derived again.
 */
import { decodeFeatures } from '../local/features.ts';
import { Vocabulary } from '../local/vocabulary.ts';
import type { Store } from './lmdb.ts';
import { VOCABULARY_KEY } from './lmdb.ts';

export type LocalProblemKind =
  | 'FEATURES_WITHOUT_IMAGE' // local features or visual words kept for no image
  | 'FEATURES_UNREADABLE' // an image's local features do not decode (repair drops them: `pixdex index` computes them again)
  | 'WORDS_STALE' // an image's visual words are missing, of another vocabulary, or do not match its features
  | 'VOCABULARY'; // the vocabulary's bytes are missing or unreadable (repair learns it again)

export interface LocalProblem {
  kind: LocalProblemKind;
  message: string;
  id?: number;
}

/** What a repair does about local features. */
export interface LocalPlan {
  problems: LocalProblem[];
  /** Features (and words) to drop. */
  dropFeatures: number[];
  /** Word lists to drop (derived again by `VisualWords.maintain`). */
  dropWords: number[];
  dropVocabulary: boolean;
}

export function planLocal(store: Store): LocalPlan {
  const plan: LocalPlan = { problems: [], dropFeatures: [], dropWords: [], dropVocabulary: false };
  const { problems } = plan;
  const local = store.getMeta()?.local;
  const counts = new Map<number, number>();
  for (const { key: id, value } of store.features.getRange()) {
    if (!store.images.doesExist(id)) {
      problems.push({ kind: 'FEATURES_WITHOUT_IMAGE', id, message: `local features ${id} belong to no image` });
      plan.dropFeatures.push(id);
      continue;
    }
    try {
      counts.set(id, decodeFeatures(new Uint8Array(value)).count);
    } catch (err) {
      problems.push({ kind: 'FEATURES_UNREADABLE', id, message: `the local features of image ${id} do not decode (${(err as Error).message}); \`pixdex check --repair\` drops them and the next \`pixdex index\` of its folder computes them again` });
      plan.dropFeatures.push(id);
    }
  }
  // Images without features in a library that has them on (indexed before it was turned on, or
  // whose features could not be computed) are not an inconsistency: `pixdex stats` says how many
  // and how to add them.
  const vocab = local?.vocabulary;
  if (vocab) {
    const bytes = store.models.getBinary(VOCABULARY_KEY);
    let ok = false;
    try {
      ok = bytes !== undefined && Vocabulary.fromBytes(new Uint8Array(bytes)).words === vocab.words;
    } catch {
      ok = false;
    }
    if (!ok) {
      problems.push({ kind: 'VOCABULARY', message: `the visual vocabulary (version ${vocab.version}) is ${bytes ? 'unreadable' : 'missing'}; \`pixdex check --repair\` learns it again` });
      plan.dropVocabulary = true;
    }
  }
  for (const { key: id, value } of store.words.getRange()) {
    const n = counts.get(id);
    if (n === undefined) {
      if (!plan.dropFeatures.includes(id)) {
        problems.push({ kind: 'FEATURES_WITHOUT_IMAGE', id, message: `visual words ${id} belong to no image with local features` });
        plan.dropWords.push(id);
      }
      continue;
    }
    const version = value.length >= 4 ? value.readUInt32LE(0) : -1;
    if (value.length % 4 !== 0 || value.length / 4 - 1 !== n || (vocab && version !== vocab.version) || !vocab) {
      problems.push({ kind: 'WORDS_STALE', id, message: `the visual words of image ${id} do not match its features under the current vocabulary` });
      plan.dropWords.push(id);
    }
  }
  // Images with features but no words yet (a run stopped between learning and quantizing) are
  // not a problem: the inverted index quantizes them when it is built, the next run stores them.
  return plan;
}

/** Inside a write: applies `plan`; returns what it fixed, by name. */
export function applyLocal(store: Store, plan: LocalPlan): Record<string, number> {
  for (const id of plan.dropFeatures) {
    store.features.removeSync(id);
    store.words.removeSync(id);
  }
  for (const id of plan.dropWords) store.words.removeSync(id);
  if (plan.dropVocabulary) {
    store.models.removeSync(VOCABULARY_KEY);
    const meta = store.getMeta();
    if (meta?.local) store.putMeta({ ...meta, local: { enabled: meta.local.enabled } });
  }
  const fixed: Record<string, number> = {};
  if (plan.dropFeatures.length) fixed['local features dropped'] = plan.dropFeatures.length;
  if (plan.dropWords.length) fixed['visual words dropped'] = plan.dropWords.length;
  if (plan.dropVocabulary) fixed['vocabulary dropped'] = 1;
  return fixed;
}
