/**
 * `pixdex check [--repair]`: verifies the invariants a store must keep through crashes, and
 * repairs what can be derived again.
 *
 * The image records and their backbone vectors are the truth. Everything else is derived from
 * them and is rebuilt by a repair: the `paths` and `hashes` lookups, the label counts,
 * `meta.nextId`, and the HNSW index of the active embedding space (with a fresh snapshot). An
 * image without a usable vector cannot be derived: a repair removes it, and the next
 * `pixdex index` of its folder embeds the file again. Autoencoder codes missing for some images
 * need the model: `pixdex train` embeds them again; a repair does not.
 */
import { applyDupes, planDupes, type DupesProblemKind } from './check-dupes.ts';
import { applyLocal, planLocal, type LocalProblemKind } from './check-local.ts';
import { spaceDims, spaceKey, type IndexSync } from '../index-sync.ts';
import { isRegional, libraryRegional, type LibraryDescriptor } from '../library-descriptor.ts';
import type { BackboneSpec } from '../models/backbone.ts';
import { l2normalize } from '../vector.ts';
import { toFloat32, type CodesTable, type ImageRecord, type JournalEntry, type Store, type StoreMeta } from './lmdb.ts';
import type { Records } from './records.ts';

/** What check and repair work on: the records, the index of the active space, the library's backbone and descriptor. */
export interface CheckTarget {
  readonly records: Records;
  readonly sync: IndexSync;
  readonly spec: BackboneSpec;
  readonly descriptor: LibraryDescriptor;
  /** Derives visual words and the vocabulary again after a repair. */
  readonly words?: { maintain(): unknown };
}

/** What can be wrong, each kind with the invariant it breaks. */
export type ProblemKind =
  | 'DUPLICATE_PATH' // two images record the same file path
  | 'DUPLICATE_HASH' // two images record the same content (sha256): identical files are stored once
  | 'IMAGE_WITHOUT_VECTOR' // an image has no vector, or one of the wrong length or with NaN/Infinity
  | 'VECTOR_WITHOUT_IMAGE' // a vector (or autoencoder code) belongs to no image
  | 'IMAGE_WITHOUT_CODE' // in an autoencoder space, an image has no usable code: not searchable (`pixdex train`)
  | 'PATH_ENTRY' // a `paths` entry is missing, points to no image, or to the wrong one
  | 'HASH_ENTRY' // a `hashes` entry is missing, points to no image, or to one with other content
  | 'LABEL_COUNT' // a label count differs from the number of images with that label
  | 'NEXT_ID' // meta.nextId is not above every image id (a new image would overwrite one)
  | 'META' // store metadata disagrees with the backbone (dims) or the journal
  | 'SPACE' // the active autoencoder space has lost its weights: searches cannot embed a query
  | 'SNAPSHOT' // the HNSW snapshot is incomplete, of other dims, or ahead of the journal
  | 'INDEX_MISSING' // a stored image is not searchable
  | 'INDEX_EXTRA' // a searchable id is no stored image
  | 'INDEX_STALE' // the index holds another vector for an image than the store
  | 'INDEX_COUNT' // the index's count of searchable vectors is off
  | LocalProblemKind // local features, visual words, vocabulary (src/store/check-local.ts)
  | DupesProblemKind; // near-duplicate evidence (src/store/check-dupes.ts)

/** One broken invariant. */
export interface Problem {
  kind: ProblemKind;
  message: string;
  /** The image id concerned, when there is one. */
  id?: number;
}

/** What `checkStore` found. */
export interface CheckReport {
  /** True when no problem was found. */
  ok: boolean;
  images: number;
  vectors: number;
  /** `paths` entries: one per image plus aliases (other paths of identical files). */
  paths: number;
  labels: number;
  index: {
    /** Searchable vectors. */
    size: number;
    /** Where the index searches use came from when the store was opened. */
    source: 'snapshot' | 'rebuilt';
    snapshotSeq: number | null;
    /** Journal entries replayed on top of the snapshot. */
    journal: number;
  };
  /** Problems, at most `MAX_LISTED` of them. */
  problems: Problem[];
  /** Number of problems of each kind (complete even when `problems` is cut). */
  counts: Partial<Record<ProblemKind, number>>;
}

/** What `repairStore` did. */
export interface RepairReport {
  before: CheckReport;
  /** Changes written, by kind of fix. */
  fixed: Record<string, number>;
  after: CheckReport;
}

/** Problems listed in a report; a broken store can have one per image, the counts stay exact. */
const MAX_LISTED = 200;
/** Largest difference between a stored (normalised) vector and the index's copy (float32 round-off). */
const VECTOR_TOLERANCE = 1e-4;

/** The store as it should be, derived from the images that have a usable vector. */
interface Plan {
  problems: Problem[];
  /** Images to delete (duplicates, and images without a usable vector). */
  dropImages: number[];
  /** Vectors and codes that belong to no kept image. */
  dropVectors: number[];
  dropCodes: Array<{ table: CodesTable; id: number }>;
  /** `paths` and `hashes` entries to write and to delete. */
  putPaths: Map<string, number>;
  dropPaths: string[];
  putHashes: Map<string, number>;
  dropHashes: string[];
  putLabels: Map<string, number>;
  dropLabels: string[];
  meta?: StoreMeta;
  counts: { images: number; vectors: number; paths: number; labels: number };
}

/** Verifies every invariant; writes nothing. */
export function checkStore(target: CheckTarget): CheckReport {
  target.sync.refresh();
  const plan = planRepair(target.records.store, target.spec.dims, scalesLength(target));
  const snapshot = snapshotProblems(target);
  const problems = [...plan.problems, ...snapshot.problems, ...indexProblems(target), ...planLocal(target.records.store).problems, ...planDupes(target.records.store).problems];
  return report(target, plan, problems, snapshot.loaded);
}

/**
 * Checks, then fixes what it can in one write transaction (dropping orphans and duplicates,
 * rewriting lookups, label counts and nextId), rebuilds the HNSW index from the vectors, saves a
 * fresh snapshot, and checks again. Run it on a store no other process is writing to.
 */
export function repairStore(target: CheckTarget): RepairReport {
  const before = checkStore(target);
  const fixed: Record<string, number> = {};
  if (before.ok) return { before, fixed, after: before };
  const { store } = target.records;
  const count = (what: string, n: number): void => {
    if (n > 0) fixed[what] = (fixed[what] ?? 0) + n;
  };
  store.write(() => {
    // Planned again inside the transaction: what it fixes is what the store holds now.
    const plan = planRepair(store, target.spec.dims, scalesLength(target));
    const meta = plan.meta ?? store.getMeta()!;
    const journal: JournalEntry[] = [];
    for (const id of plan.dropImages) {
      store.images.removeSync(id);
      store.vectors.removeSync(id);
      store.scales.removeSync(id);
      store.codes.removeSync(id);
      store.codes2.removeSync(id);
      store.suggestions.removeSync(id);
      store.features.removeSync(id);
      store.words.removeSync(id);
      journal.push({ op: 'remove', id });
    }
    count('images removed', plan.dropImages.length);
    for (const id of plan.dropVectors) {
      store.vectors.removeSync(id);
      store.scales.removeSync(id);
    }
    count('orphan vectors removed', plan.dropVectors.length);
    for (const { table, id } of plan.dropCodes) store.codesTable(table).removeSync(id);
    count('orphan codes removed', plan.dropCodes.length);
    for (const key of plan.dropPaths) store.paths.removeSync(key);
    for (const [key, id] of plan.putPaths) store.paths.putSync(key, id);
    count('paths entries fixed', plan.dropPaths.length + plan.putPaths.size);
    for (const key of plan.dropHashes) store.hashes.removeSync(key);
    for (const [key, id] of plan.putHashes) store.hashes.putSync(key, id);
    count('hashes entries fixed', plan.dropHashes.length + plan.putHashes.size);
    for (const key of plan.dropLabels) store.labels.removeSync(key);
    for (const [key, n] of plan.putLabels) store.labels.putSync(key, n);
    count('label counts fixed', plan.dropLabels.length + plan.putLabels.size);
    store.appendJournal(meta, journal);
    if (plan.meta || journal.length > 0) store.putMeta(meta);
    count('meta fixed', plan.meta ? 1 : 0);
    for (const [what, n] of Object.entries(applyLocal(store, planLocal(store)))) count(what, n);
    for (const [what, n] of Object.entries(applyDupes(store, planDupes(store).drop))) count(what, n);
  });
  if (store.getMeta()?.local?.enabled) target.words?.maintain();
  // The index is derived data: rebuild it from the vectors and replace the snapshot.
  store.dropSnapshot();
  target.sync.rebuild();
  target.sync.snapshot();
  count('index rebuilt', 1);
  return { before, fixed, after: checkStore(target) };
}

/** Length of an image's smaller-side descriptors in a `regional` library (0 otherwise). */
function scalesLength(target: CheckTarget): number {
  return isRegional(target.descriptor) ? libraryRegional(target.spec, target.descriptor).smaller.length * target.spec.dims : 0;
}

/** Derives the store's derived data from its images and vectors, and lists the differences. */
function planRepair(store: Store, dims: number, scalesDims: number): Plan {
  const problems: Problem[] = [];
  const meta = store.getMeta();
  const plan: Plan = {
    problems,
    dropImages: [],
    dropVectors: [],
    dropCodes: [],
    putPaths: new Map(),
    dropPaths: [],
    putHashes: new Map(),
    dropHashes: [],
    putLabels: new Map(),
    dropLabels: [],
    counts: { images: 0, vectors: 0, paths: 0, labels: 0 },
  };

  // 1. Images with a usable vector, then one image per path and one per content.
  const valid = new Map<number, ImageRecord>();
  for (const { key: id, value: rec } of store.images.getRange()) {
    plan.counts.images++;
    const scalesWhy = scalesDims > 0 ? vectorProblem(store.scales.getBinary(id), scalesDims) : undefined;
    const why = vectorProblem(store.vectors.getBinary(id), dims) ?? (scalesWhy && `${scalesWhy.replace('vector', 'smaller-side vector')} (regional descriptor)`);
    if (why) {
      problems.push({ kind: 'IMAGE_WITHOUT_VECTOR', id, message: `image ${id} (${rec.path}) ${why}` });
      plan.dropImages.push(id);
    } else {
      valid.set(id, rec);
    }
  }
  /** Dropped duplicate → the image kept in its place. */
  const movedTo = new Map<number, number>();
  const byPath = groupBy(valid, (r) => r.path);
  for (const [p, ids] of byPath) {
    if (ids.length < 2) continue;
    const keep = pickKeeper(ids, store.paths.get(p));
    for (const id of ids) {
      if (id === keep) continue;
      problems.push({ kind: 'DUPLICATE_PATH', id, message: `images ${keep} and ${id} both record ${p}` });
      plan.dropImages.push(id);
      movedTo.set(id, keep);
      valid.delete(id);
    }
  }
  /** Paths of dropped duplicates that stay as aliases of the image kept. */
  const aliases = new Map<string, number>();
  for (const [sha, ids] of groupBy(valid, (r) => r.sha256)) {
    if (ids.length < 2) continue;
    const keep = pickKeeper(ids, store.hashes.get(sha));
    for (const id of ids) {
      if (id === keep) continue;
      const rec = valid.get(id)!;
      problems.push({ kind: 'DUPLICATE_HASH', id, message: `images ${keep} and ${id} (${rec.path}) have the same content ${sha.slice(0, 12)}…` });
      plan.dropImages.push(id);
      aliases.set(rec.path, keep);
      movedTo.set(id, keep);
      valid.delete(id);
    }
  }

  // 2. Vectors and codes that belong to no kept image.
  const dropped = new Set(plan.dropImages);
  for (const id of store.vectors.getKeys()) {
    plan.counts.vectors++;
    if (!valid.has(id) && !dropped.has(id)) {
      problems.push({ kind: 'VECTOR_WITHOUT_IMAGE', id, message: `vector ${id} belongs to no image` });
      plan.dropVectors.push(id);
    }
  }
  for (const id of store.scales.getKeys()) {
    if (!valid.has(id) && !dropped.has(id) && !store.vectors.doesExist(id)) { // with its vector: reported above
      problems.push({ kind: 'VECTOR_WITHOUT_IMAGE', id, message: `smaller-side vector ${id} belongs to no image` });
      plan.dropVectors.push(id);
    }
  }
  for (const table of ['codes', 'codes2'] as const) {
    for (const id of store.codesTable(table).getKeys()) {
      if (!valid.has(id) && !dropped.has(id)) {
        problems.push({ kind: 'VECTOR_WITHOUT_IMAGE', id, message: `autoencoder code ${id} (table ${table}) belongs to no image` });
        plan.dropCodes.push({ table, id });
      }
    }
  }
  // In an autoencoder space, every kept image needs its code to be searchable.
  const space = store.getSpace();
  if (space.kind === 'autoencoder') {
    if (!store.models.doesExist(space.model)) {
      problems.push({ kind: 'SPACE', message: `the weights of the active autoencoder space (${space.model}) are missing: a repair goes back to the backbone space` });
    } else {
      for (const [id, rec] of valid) {
        const why = vectorProblem(store.codesTable(space.codes).getBinary(id), space.dims);
        if (why) problems.push({ kind: 'IMAGE_WITHOUT_CODE', id, message: `image ${id} (${rec.path}) ${why.replace('vector', 'autoencoder code')}; run \`pixdex train\` to embed it again` });
      }
    }
  }

  // 3. `paths`: each kept image's own path points to it; other entries are aliases of kept images.
  const wantPath = new Map<string, number>();
  for (const [id, rec] of valid) wantPath.set(rec.path, id);
  for (const { key, value: id } of store.paths.getRange()) {
    plan.counts.paths++;
    const want = wantPath.get(key) ?? aliases.get(key) ?? (valid.has(id) ? id : movedTo.get(id));
    if (want === id) continue;
    if (want === undefined) {
      problems.push({ kind: 'PATH_ENTRY', id, message: `paths entry ${key} points to ${id}, which is no image` });
      plan.dropPaths.push(key);
    } else {
      problems.push({ kind: 'PATH_ENTRY', id: want, message: `paths entry ${key} points to ${id} instead of image ${want}` });
      plan.putPaths.set(key, want);
    }
  }
  for (const [key, id] of [...wantPath, ...aliases]) {
    if (store.paths.get(key) === undefined && !plan.putPaths.has(key)) {
      problems.push({ kind: 'PATH_ENTRY', id, message: `image ${id}: no paths entry for ${key}` });
      plan.putPaths.set(key, id);
    }
  }

  // 4. `hashes`: exactly one entry per kept image's content.
  const wantHash = new Map<string, number>();
  for (const [id, rec] of valid) wantHash.set(rec.sha256, id);
  for (const { key, value: id } of store.hashes.getRange()) {
    const want = wantHash.get(key);
    if (want === id) continue;
    if (want === undefined) {
      problems.push({ kind: 'HASH_ENTRY', id, message: `hashes entry ${key.slice(0, 12)}… points to ${id}, which is no image with that content` });
      plan.dropHashes.push(key);
    } else {
      problems.push({ kind: 'HASH_ENTRY', id: want, message: `hashes entry ${key.slice(0, 12)}… points to ${id} instead of image ${want}` });
      plan.putHashes.set(key, want);
    }
  }
  for (const [key, id] of wantHash) {
    if (store.hashes.get(key) === undefined) {
      problems.push({ kind: 'HASH_ENTRY', id, message: `image ${id}: no hashes entry for its content` });
      plan.putHashes.set(key, id);
    }
  }

  // 5. Label counts (numeric entries of `labels`).
  const wantLabels = new Map<string, number>();
  for (const rec of valid.values()) if (rec.label !== undefined) wantLabels.set(rec.label, (wantLabels.get(rec.label) ?? 0) + 1);
  for (const { key, value } of store.labels.getRange()) {
    plan.counts.labels++;
    if (typeof value !== 'number') continue; // label-level data that is not a count
    const want = wantLabels.get(key);
    if (want === value) continue;
    problems.push({ kind: 'LABEL_COUNT', message: `label ${JSON.stringify(key)} counts ${value} images but ${want ?? 0} have it` });
    if (want === undefined) plan.dropLabels.push(key);
    else plan.putLabels.set(key, want);
  }
  for (const [key, n] of wantLabels) {
    if (store.labels.get(key) === undefined) {
      problems.push({ kind: 'LABEL_COUNT', message: `label ${JSON.stringify(key)} has ${n} images but no count` });
      plan.putLabels.set(key, n);
    }
  }

  // 6. Metadata: nextId above every id ever used, dims of the backbone, journal within meta.seq.
  if (meta) {
    const fixed = { ...meta };
    let maxId = 0;
    for (const id of store.images.getKeys({ reverse: true, limit: 1 })) maxId = id;
    for (const id of store.vectors.getKeys({ reverse: true, limit: 1 })) maxId = Math.max(maxId, id);
    if (meta.nextId <= maxId) {
      problems.push({ kind: 'NEXT_ID', message: `meta.nextId is ${meta.nextId} but id ${maxId} exists: a new image would overwrite it` });
      fixed.nextId = maxId + 1;
    }
    if (meta.dims !== dims) {
      problems.push({ kind: 'META', message: `meta.dims is ${meta.dims} but the backbone ${meta.backbone} gives ${dims}` });
      fixed.dims = dims;
    }
    let lastSeq = 0;
    for (const key of store.journal.getKeys({ reverse: true, limit: 1 })) lastSeq = key;
    if (lastSeq > meta.seq) {
      problems.push({ kind: 'META', message: `the journal goes to ${lastSeq} but meta.seq is ${meta.seq}` });
      fixed.seq = lastSeq;
    }
    if (space.kind === 'autoencoder' && !store.models.doesExist(space.model)) fixed.space = { kind: 'backbone' };
    if (fixed.nextId !== meta.nextId || fixed.dims !== meta.dims || fixed.seq !== meta.seq || fixed.space !== meta.space) plan.meta = fixed;
  } else {
    problems.push({ kind: 'META', message: 'the store has no metadata' });
  }
  return plan;
}

/** Why a stored vector is unusable, or undefined when it is fine. */
function vectorProblem(buf: Uint8Array | undefined, dims: number): string | undefined {
  if (!buf) return 'has no vector';
  if (buf.length !== dims * 4) return `has a vector of ${buf.length / 4} values instead of ${dims}`;
  const v = toFloat32(buf)!;
  let norm = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) return 'has a vector with NaN or infinite values';
    norm += x * x;
  }
  return norm > 0 ? undefined : 'has an all-zero vector';
}

/**
 * The snapshot must be complete, of the backbone's dims, and not ahead of the journal. `loaded`:
 * whether the target loaded it on open (it rebuilds from the vectors otherwise).
 */
function snapshotProblems(target: CheckTarget): { problems: Problem[]; loaded: boolean } {
  const { store } = target.records;
  const snap = store.getSnapshotMeta();
  if (!snap) return { problems: [], loaded: false };
  const meta = store.getMeta();
  const space = store.getSpace();
  const dims = spaceDims(space, target.spec);
  const out: Problem[] = [];
  let loaded = false;
  if ((snap.space ?? 'backbone') !== spaceKey(space)) out.push({ kind: 'SNAPSHOT', message: `the HNSW snapshot indexes space ${snap.space ?? 'backbone'}, not the active ${spaceKey(space)}` });
  else if (snap.dims !== dims) out.push({ kind: 'SNAPSHOT', message: `the HNSW snapshot has ${snap.dims} dims, the space ${dims}` });
  else if (!store.loadSnapshot(snap)) out.push({ kind: 'SNAPSHOT', message: `the HNSW snapshot is incomplete (${snap.chunks} chunks, ${snap.bytes} bytes expected)` });
  else loaded = true;
  if (meta && snap.seq > meta.seq) out.push({ kind: 'SNAPSHOT', message: `the HNSW snapshot covers journal entry ${snap.seq}, beyond the last one written (${meta.seq})` });
  return { problems: out, loaded };
}

/** The index searches use must hold exactly the stored images, each with its vector in the active space. */
function indexProblems(target: CheckTarget): Problem[] {
  const { store } = target.records;
  const ann = target.sync.index;
  const space = store.getSpace();
  const table = space.kind === 'backbone' ? store.vectors : store.codesTable(space.codes);
  const dims = spaceDims(space, target.spec);
  const out: Problem[] = [];
  const ids = ann.ids();
  const inIndex = new Set(ids);
  for (const id of store.images.getKeys()) {
    const buf = table.getBinary(id);
    if (vectorProblem(store.vectors.getBinary(id), target.spec.dims) || vectorProblem(buf, dims)) {
      inIndex.delete(id); // reported as IMAGE_WITHOUT_VECTOR or IMAGE_WITHOUT_CODE
      continue;
    }
    const stored = toFloat32(buf)!;
    if (!inIndex.has(id)) {
      out.push({ kind: 'INDEX_MISSING', id, message: `image ${id} is not in the HNSW index: searches never return it` });
      continue;
    }
    inIndex.delete(id);
    const held = ann.vector(id);
    if (!held || held.length !== stored.length || maxDiff(held, l2normalize(stored)) > VECTOR_TOLERANCE) {
      out.push({ kind: 'INDEX_STALE', id, message: `the HNSW index holds another vector for image ${id} than the store` });
    }
  }
  for (const id of inIndex) out.push({ kind: 'INDEX_EXTRA', id, message: `the HNSW index returns id ${id}, which is no stored image` });
  if (ann.size !== ids.length) out.push({ kind: 'INDEX_COUNT', message: `the HNSW index counts ${ann.size} vectors but holds ${ids.length}` });
  return out;
}

function report(target: CheckTarget, plan: Plan, problems: Problem[], loaded: boolean): CheckReport {
  const { store } = target.records;
  const counts: Partial<Record<ProblemKind, number>> = {};
  for (const p of problems) counts[p.kind] = (counts[p.kind] ?? 0) + 1;
  const snap = store.getSnapshotMeta();
  const meta = store.getMeta();
  return {
    ok: problems.length === 0,
    images: plan.counts.images,
    vectors: plan.counts.vectors,
    paths: plan.counts.paths,
    labels: plan.counts.labels,
    index: {
      size: target.sync.index.size,
      source: loaded ? 'snapshot' : 'rebuilt',
      snapshotSeq: snap?.seq ?? null,
      journal: meta ? Math.max(0, meta.seq - (snap?.seq ?? meta.seq)) : 0,
    },
    problems: problems.slice(0, MAX_LISTED),
    counts,
  };
}

/** The id to keep among duplicates: the one the lookup points to, else the oldest. */
function pickKeeper(ids: number[], pointed: number | undefined): number {
  return pointed !== undefined && ids.includes(pointed) ? pointed : Math.min(...ids);
}

function groupBy(images: Map<number, ImageRecord>, key: (r: ImageRecord) => string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [id, rec] of images) {
    const k = key(rec);
    const list = out.get(k);
    if (list) list.push(id);
    else out.set(k, [id]);
  }
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
