/**
 * Which hnswlib-node build pixdex runs (issue 22). The install step (scripts/build-hnswlib.mjs)
 * may replace hnswlib-node's portable addon with one compiled for this CPU's vector instructions;
 * it records what it built in `build/Release/pixdex-build.json` and keeps the portable build as
 * `addon-portable.node`. Here, at start-up, the addon is loaded and the record is believed only
 * if it describes the file actually loaded (same SHA-256); otherwise the build is reported as
 * 'portable (unknown)'. The portable copy is loaded instead when PIXDEX_PORTABLE_ANN is set, or
 * when the native build uses instructions this CPU lacks (node_modules copied to another machine).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type Hnswlib = typeof import('hnswlib-node');

/** What `pixdex stats` reports as `ann`. */
export interface AnnBuild {
  /**
   * 'native': built by the install step with `flags`; 'portable': hnswlib-node's own build;
   * 'portable (unknown)': no build record, or one describing another file than the one loaded.
   */
  build: 'native' | 'portable' | 'portable (unknown)';
  /** Compiler flags of a native build (null otherwise). */
  flags: string | null;
  compiler: string | null;
  /** The vector instruction sets a native build uses (AVX-512, AVX2, AVX, FMA, SSE4.2...). */
  vector: string[];
  /**
   * Whether the build asks Linux for transparent huge pages on its base layer and visited lists
   * (the install step's patch, scripts/build-hnswlib.mjs): fewer TLB misses, 1.16-1.24x the QPS
   * of the unpatched native build at 200k x 256-d (README, "The HNSW build").
   */
  hugePages: boolean;
  builtAt: string | null;
  /** Why this build: the record's reason, or why the record was not believed. */
  reason: string;
  /** The addon file loaded. */
  addon: string | null;
}

/** The install step's record (the fields read here). */
interface BuildRecord {
  build?: string;
  flags?: string | null;
  compiler?: string | null;
  isa?: string[];
  hugePages?: { patch?: string | null };
  builtAt?: string;
  reason?: string;
  addon?: { sha256?: string };
  portable?: { file?: string; sha256?: string };
}

export const BUILD_RECORD = 'pixdex-build.json';
export const PORTABLE_ADDON = 'addon-portable.node';
const VECTOR_SETS = ['avx512f', 'avx2', 'avx', 'fma', 'sse42', 'asimd', 'sve'];

const require = createRequire(import.meta.url);

function sha256(file: string): string | undefined {
  try {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

function readRecord(file: string): BuildRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return r !== null && typeof r === 'object' ? (r as BuildRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** This CPU's /proc/cpuinfo flags (lower case, no underscores); undefined where there is none. */
function cpuFlags(): Set<string> | undefined {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
    return line ? new Set(line.split(':')[1].trim().split(/\s+/).map((f) => f.replaceAll('_', '').toLowerCase())) : undefined;
  } catch {
    return undefined;
  }
}

const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';

/**
 * What build `addon` is, by the record in `recordFile`: believed only when its SHA-256 is the
 * record's addon (or, for the portable copy, the record's portable addon).
 */
export function describeAddon(addon: string, recordFile: string, note?: string): AnnBuild {
  const unknown = (reason: string): AnnBuild => ({ build: 'portable (unknown)', flags: null, compiler: null, vector: [], hugePages: false, builtAt: null, reason, addon });
  const record = readRecord(recordFile);
  const hash = sha256(addon);
  if (!hash) return unknown(`cannot read ${addon}`);
  if (!record) return unknown(`no build record (${BUILD_RECORD}): the install step did not run (npm --ignore-scripts?) or failed`);
  if (record.portable?.sha256 === hash && (record.build !== 'native' || path.basename(addon) === PORTABLE_ADDON)) {
    return { build: 'portable', flags: null, compiler: null, vector: [], hugePages: false, builtAt: note ? null : (record.builtAt ?? null), reason: note ?? record.reason ?? 'portable build', addon };
  }
  if (record.addon?.sha256 !== hash) return unknown(`the build record describes another addon than the one loaded (rebuilt since, e.g. by npm rebuild?): \`npm run postinstall\` rebuilds and records it`);
  if (record.build === 'native') {
    const isa = Array.isArray(record.isa) ? record.isa : [];
    return { build: 'native', flags: record.flags ?? null, compiler: record.compiler ?? null, vector: VECTOR_SETS.filter((f) => isa.includes(f)), hugePages: typeof record.hugePages?.patch === 'string', builtAt: record.builtAt ?? null, reason: note ?? record.reason ?? '', addon };
  }
  return unknown(`the build record says ${JSON.stringify(record.build)}`);
}

/**
 * Loads hnswlib-node (the one pixdex resolves) and says which build it is: the portable copy
 * instead of a native build when PIXDEX_PORTABLE_ANN is set or when this CPU lacks an instruction
 * set the native build uses.
 */
export function loadHnswlib(env: NodeJS.ProcessEnv = process.env): { hnswlib: Hnswlib; build: AnnBuild } {
  const dir = fs.realpathSync(path.dirname(require.resolve('hnswlib-node/package.json')));
  const release = path.join(dir, 'build', 'Release');
  const recordFile = path.join(release, BUILD_RECORD);
  const portable = path.join(release, PORTABLE_ADDON);
  const record = readRecord(recordFile);
  let instead: string | undefined;
  if (record?.build === 'native' && fs.existsSync(portable) && sha256(portable) === record.portable?.sha256 && sha256(path.join(release, 'addon.node')) === record.addon?.sha256) {
    const cpu = cpuFlags();
    const missing = cpu && Array.isArray(record.isa) ? record.isa.filter((f) => !cpu.has(f)) : [];
    if (truthy(env.PIXDEX_PORTABLE_ANN)) instead = 'PIXDEX_PORTABLE_ANN is set: the portable build is loaded instead of the native one';
    else if (missing.length > 0) instead = `the native build uses ${missing.slice(0, 4).join(', ')}, which this CPU lacks: the portable build is loaded instead (reinstall to build for this CPU)`;
  }
  const hnswlib = (instead ? require(portable) : require('hnswlib-node')) as Hnswlib;
  // The .node file actually loaded: the one in the module cache under hnswlib-node's folder.
  const loaded = Object.keys(require.cache).find((k) => k.endsWith('.node') && k.startsWith(dir + path.sep) && (instead ? k === portable : k !== portable));
  const build = loaded ? describeAddon(loaded, recordFile, instead) : { build: 'portable (unknown)' as const, flags: null, compiler: null, vector: [], hugePages: false, builtAt: null, reason: 'cannot tell which addon file was loaded', addon: null };
  return { hnswlib, build };
}

/** The loaded build as one line (`pixdex stats`). */
export function describeBuildLine(b: AnnBuild): string {
  if (b.build === 'native') return `native (${b.flags}: ${b.vector.join(' ') || 'no vector extensions'}${b.hugePages ? '; huge pages' : ''}; ${b.compiler})`;
  return `${b.build} (${b.reason})`;
}
