/**
 * `stats`: what a library holds and how it runs — images and labels, backbone and descriptor,
 * backend, embedding space, the HNSW index and its snapshot, store size, suggestions, classifier.
 */
import type { Describer } from './describe.ts';
import type { IndexSync } from './index-sync.ts';
import type { Labels } from './labels.ts';
import type { LibraryDescriptor } from './library-descriptor.ts';
import type { BackboneSpec } from './models/backbone.ts';
import type { HeadReport } from './models/head.ts';
import type { FinetuneReport } from './models/finetune.ts';
import { libraryTopInfo, type FinetuneLibrary } from './finetune.ts';
import type { Searcher, SpaceKind } from './search.ts';
import type { SpaceInfo } from './store/lmdb.ts';
import type { Records } from './store/records.ts';
import type { PixdexConfig } from './config.ts';
import { annBuild } from './ann.ts';
import type { AnnBuild } from './ann-build.ts';
import { readWatchStatuses, type WatchStatus } from './watch-status.ts';
import type { DateRange } from './capture-dates.ts';

/** What `stats` reports (DESIGN.md). */
export interface Stats {
  images: number;
  labels: Record<string, number>;
  /** Capture dates (EXIF): the earliest and latest `takenAt` (null when none is dated) and how many images have one. */
  dates: DateRange;
  backbone: string;
  dims: number;
  /** How the library describes images (src/library-descriptor.ts). */
  descriptor: LibraryDescriptor;
  backend: string;
  backendReason: string;
  /** The active embedding space (DESIGN.md: a name). */
  space: SpaceKind;
  /** Its details: for an autoencoder, dims, when and how it was trained, final loss. */
  spaceInfo: SpaceInfo;
  index: {
    type: 'hnsw';
    metric: 'cosine';
    m: number;
    efConstruction: number;
    efSearch: number;
    dims: number;
    size: number;
    capacity: number;
    snapshotSeq: number | null;
    snapshotBytes: number | null;
    pendingChanges: number;
  };
  /** The hnswlib-node build running: native (flags) or portable (src/ann-build.ts, issue 22). */
  ann: AnnBuild;
  storeBytes: number;
  /** Where the records live: the data folder (LMDB) or the PostgreSQL URL without its password. */
  store: string;
  dataDir: string;
  /** Pending label suggestions. */
  suggestions: number;
  /** The classifier in use (the newer of the head and the fine-tuned top; `mode` absent = head), if any. */
  classifier: ((HeadReport & { mode?: 'head' }) | FinetuneReport) & { bytes: number } | null;
  /** Local features and geometric verification (issue 14). */
  localFeatures: {
    enabled: boolean;
    /** Images that have them. */
    images: number;
    /** The visual vocabulary: words, images learned from, when; null before one was learned. */
    vocabulary: { words: number; images: number; learnedAt: string } | null;
    /** What to do when they are off, or missing from some images. */
    hint: string | null;
  };
  /** Processes watching folders into this library (`index --watch`, `serve --watch`): roots, state, pending changes, last pass; empty when none. */
  watch: WatchStatus[];
}

/** What `stats` reads. */
export interface StatsSource {
  readonly config: PixdexConfig;
  readonly spec: BackboneSpec;
  readonly records: Records;
  readonly sync: IndexSync;
  readonly describer: Describer;
  readonly labelling: Labels;
  tuned(): FinetuneLibrary;
  readonly searcher: Pick<Searcher, 'dates'>;
}

/** Store, model and index facts (DESIGN.md `stats`). */
export async function libraryStats(lib: StatsSource): Promise<Stats> {
  lib.sync.refresh();
  const backend = await lib.describer.backendInfo();
  const snap = lib.records.snapshotMeta();
  const ann = lib.sync.index;
  const space = lib.records.space();
  return {
    images: lib.records.count(),
    labels: Object.fromEntries(lib.records.labels().map((l) => [l.label, l.count])),
    dates: lib.searcher.dates.range(),
    backbone: lib.spec.id,
    dims: lib.spec.dims,
    descriptor: lib.describer.descriptor,
    backend: backend.name,
    backendReason: backend.reason,
    space: space.kind,
    spaceInfo: space,
    index: {
      type: 'hnsw',
      metric: 'cosine',
      m: lib.config.ann.m,
      efConstruction: lib.config.ann.efConstruction,
      efSearch: lib.config.ann.efSearch,
      dims: ann.dims,
      size: ann.size,
      capacity: ann.capacity,
      snapshotSeq: snap?.seq ?? null,
      snapshotBytes: snap?.bytes ?? null,
      pendingChanges: lib.sync.pending(),
    },
    ann: annBuild,
    storeBytes: lib.records.sizeOnDisk(),
    store: lib.records.where(),
    dataDir: lib.config.dataDir,
    suggestions: lib.labelling.suggestions().length,
    classifier: libraryTopInfo(lib.tuned()) ?? lib.labelling.headInfo(),
    localFeatures: localStats(lib.records),
    watch: readWatchStatuses(lib.config.dataDir),
  };
}

function localStats(records: Records): Stats['localFeatures'] {
  const setting = records.local.setting();
  const images = records.local.featureCount();
  const missing = records.count() - images;
  const v = setting.vocabulary;
  const hint = !setting.enabled
    ? 'off: `pixdex index <folders> --local-features on` adds them (the same object in a new photo is then found far more often)'
    : missing > 0
      ? `${missing} images have none yet: \`pixdex index <folders>\` adds them`
      : null;
  return { enabled: setting.enabled, images, vocabulary: v ? { words: v.words, images: v.images, learnedAt: new Date(v.learnedAt).toISOString() } : null, hint };
}
