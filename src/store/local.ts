/**
 * The records of local features (issue 14): each image's encoded keypoints and descriptors
 * (`features`), its visual words under the current vocabulary (`words`), the vocabulary itself
 * (`models`) and the library's setting (`meta.local`). Written with the image's other records in
 * `Records.writeFiles` (same transaction) and removed with them.
 */
import { PixdexError } from '../errors.ts';
import { Store, VOCABULARY_KEY, type LocalFeaturesMeta, type StoreMeta, type VocabularyInfo } from './lmdb.ts';
import { readMany } from './table.ts';

/** An image's local features as the indexer computed them. */
export interface LocalToWrite {
  features: Uint8Array;
  /** Words of `features` under vocabulary `version` (dropped if the vocabulary changed since). */
  words?: { version: number; words: Uint32Array };
}

export class LocalRecords {
  constructor(private readonly store: Store) {}

  private meta(): StoreMeta {
    const meta = this.store.getMeta();
    if (!meta) throw new PixdexError('STORE_MISMATCH', `The store in ${this.store.where} has no metadata; run \`pixdex check --repair\`.`);
    return meta;
  }

  /** The library's local-features setting (stores made before local features: off). */
  setting(): LocalFeaturesMeta {
    return this.store.getMeta()?.local ?? { enabled: false };
  }

  /**
   * Turns local features on or off for the library. Off drops every image's features and words
   * and the vocabulary (they are computed again when turned on: `pixdex index --local-features on`).
   */
  setEnabled(enabled: boolean): void {
    const { store } = this;
    store.write(() => {
      const meta = this.meta();
      if ((meta.local?.enabled ?? false) === enabled) return;
      if (!enabled) {
        for (const id of store.features.getKeys()) store.features.removeSync(id);
        for (const id of store.words.getKeys()) store.words.removeSync(id);
        store.models.removeSync(VOCABULARY_KEY);
      }
      store.putMeta({ ...meta, local: enabled ? { enabled, vocabulary: meta.local?.vocabulary } : { enabled } });
    });
  }

  /** The encoded local features of `id` (a copy), or undefined. */
  features(id: number): Uint8Array | undefined {
    const b = this.store.features.getBinary(id);
    return b && new Uint8Array(b);
  }

  /** `features` of many ids in one read of the store. */
  featuresOf(ids: readonly number[]): Array<Uint8Array | undefined> {
    return readMany(this.store.features, ids, true).map((b) => b && new Uint8Array(b));
  }

  hasFeatures(id: number): boolean {
    return this.store.features.doesExist(id);
  }

  /** Ids of the images that have local features. */
  featureIds(): Iterable<number> {
    return this.store.features.getKeys();
  }

  featureCount(): number {
    return this.store.features.getCount();
  }

  /** The visual words of `id` under vocabulary `version`, or undefined (none, or another version's). */
  words(id: number, version: number): Uint32Array | undefined {
    const b = this.store.words.getBinary(id);
    if (!b || b.length < 4 || b.length % 4 !== 0) return undefined;
    const all = new Uint32Array(new Uint8Array(b).buffer);
    return all[0] === version ? all.subarray(1) : undefined;
  }

  /** Stores visual words for images that still have features, if `version` is still the vocabulary's; one transaction. */
  putWords(version: number, batch: ReadonlyArray<{ id: number; words: Uint32Array }>): boolean {
    const { store } = this;
    return store.write(() => {
      if (this.setting().vocabulary?.version !== version) return false;
      for (const { id, words } of batch) if (store.features.doesExist(id)) store.words.putSync(id, wordsBytes(version, words));
      return true;
    });
  }

  /** The vocabulary's bytes and facts, or undefined before one was learned. */
  vocabulary(): { info: VocabularyInfo; bytes: Uint8Array } | undefined {
    const info = this.setting().vocabulary;
    const bytes = info && this.store.models.getBinary(VOCABULARY_KEY);
    return info && bytes ? { info, bytes: new Uint8Array(bytes) } : undefined;
  }

  /** Stores a newly learned vocabulary (the old one's word lists become stale); returns its version. */
  putVocabulary(bytes: Uint8Array, info: Omit<VocabularyInfo, 'version' | 'learnedAt'>): VocabularyInfo {
    const { store } = this;
    return store.write(() => {
      const meta = this.meta();
      const full: VocabularyInfo = { ...info, version: (meta.local?.vocabulary?.version ?? 0) + 1, learnedAt: Date.now() };
      store.models.putSync(VOCABULARY_KEY, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      store.putMeta({ ...meta, local: { enabled: meta.local?.enabled ?? true, vocabulary: full } });
      return full;
    });
  }
}

/** Inside a write: stores an image's local features and, if still current, its words. */
export function putLocal(store: Store, id: number, local: LocalToWrite): void {
  store.features.putSync(id, Buffer.from(local.features.buffer, local.features.byteOffset, local.features.byteLength));
  const w = local.words;
  if (w && store.getMeta()?.local?.vocabulary?.version === w.version) store.words.putSync(id, wordsBytes(w.version, w.words));
  else store.words.removeSync(id);
}

/** Inside a write: drops an image's local features and words. */
export function dropLocal(store: Store, id: number): void {
  store.features.removeSync(id);
  store.words.removeSync(id);
}

/** A word list as stored: uint32 vocabulary version, then the words. */
function wordsBytes(version: number, words: Uint32Array): Buffer {
  const out = new Uint32Array(words.length + 1);
  out[0] = version;
  out.set(words, 1);
  return Buffer.from(out.buffer);
}
