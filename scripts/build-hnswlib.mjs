#!/usr/bin/env node
/**
 * Install step (`postinstall`): rebuilds hnswlib-node for this machine's vector instructions.
 *
 * hnswlib-node's own install compiles it portably (no AVX: its distance kernels pick SSE/AVX/
 * AVX-512 at compile time). This script compiles it again with `PIXDEX_ANN_FLAGS` (default
 * `-O3 -march=native`) passed to node-gyp's make as CXXFLAGS/CFLAGS, in a staging copy beside it
 * (node_modules/.pixdex-hnswlib-*, removed after), checks the result in a child process (it
 * loads, and HNSW answers a small search like exact search does), and only then puts it in place
 * of build/Release/addon.node. The native build also asks Linux for transparent huge pages on
 * hnswlib's base layer and visited lists (HUGE_PAGES_PATCH below: madvise, advice only; 1.16-1.24x
 * the QPS of the unpatched native build at 200k x 256-d, `bench:ann --ab`); the record says whether
 * the patch applied and what the kernel gave the check. Anything else (no compiler,
 * a flag the compiler rejects, a failed or slow build, an addon that does not load or answers
 * wrongly) keeps or restores the portable build. It never fails the install: exit code 0 always.
 *
 * Beside the addon it leaves `addon-portable.node` (the portable build, loaded instead of a
 * native build on a CPU without its instructions: src/ann-build.ts) and `pixdex-build.json`
 * (what was built: build, flags, compiler, instruction sets, the addon's size and SHA-256, the
 * check). A native build is kept in `<PIXDEX_CACHE_DIR>/hnswlib/` (default ~/.cache/pixdex),
 * keyed by sources, flags, compiler, Node and CPU, so the next `npm ci` reuses it (still checked).
 *
 *   node scripts/build-hnswlib.mjs [--package DIR]     (default: the hnswlib-node pixdex resolves)
 *   PIXDEX_PORTABLE_ANN=1   keep (or restore) the portable build
 *   PIXDEX_ANN_FLAGS=...    compiler flags for the native build (default -O3 -march=native)
 *   PIXDEX_ANN_NO_HUGEPAGES=1   compile the native build without the huge-pages patch
 *
 * Prints one line saying what it did.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const RECORD = 'pixdex-build.json';
const PORTABLE = 'addon-portable.node';
const DEFAULT_FLAGS = '-O3 -march=native';
const BUILD_TIMEOUT_MS = 180_000;
const CHECK_TIMEOUT_MS = 30_000;
const started = performance.now();
const say = (what) => console.log(`pixdex: hnswlib-node ${what} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
/** Set once addon-portable.node holds this install's portable build (the catch-all restores it). */
let portableReady = false;
const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const fileFacts = (file) => ({ bytes: fs.statSync(file).size, sha256: sha256(file) });

function packageDir() {
  const i = process.argv.indexOf('--package');
  if (i > 0 && process.argv[i + 1]) return path.resolve(process.argv[i + 1]);
  try {
    return path.dirname(createRequire(import.meta.url).resolve('hnswlib-node/package.json'));
  } catch {
    return undefined;
  }
}

/** Writes `file` atomically (temp file + rename in the same folder). */
function writeAtomic(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
function copyAtomic(from, to) {
  const tmp = `${to}.${process.pid}.tmp`;
  fs.copyFileSync(from, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, to);
}

function readRecord(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The C++ compiler make will use (CXX, else g++ as make's default), its version line, or undefined. */
function compiler() {
  const cxx = process.env.CXX || 'g++';
  const r = spawnSync(cxx, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return undefined;
  return { cxx, version: r.stdout.split('\n')[0].trim() };
}

/** /proc/cpuinfo flags, normalised (lower case, no underscores); undefined off Linux. */
function cpuFlags() {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
    return line ? new Set(line.split(':')[1].trim().split(/\s+/).map((f) => f.replaceAll('_', '').toLowerCase())) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The instruction-set extensions `flags` make the compiler use (its predefined `__AVX2__`-style
 * macros), as /proc/cpuinfo names where this CPU lists them; or `{ error }` when it rejects them.
 */
function instructionSets(cxx, flags) {
  const r = spawnSync(cxx, [...flags.split(/\s+/).filter(Boolean), '-dM', '-E', '-x', 'c++', '-'], { input: '', encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').find((l) => /error/i.test(l)) ?? r.stderr.trim().split('\n')[0] };
  const cpu = cpuFlags();
  const alias = { sse3: 'pni', lzcnt: 'abm' };
  const isa = [];
  for (const m of r.stdout.matchAll(/#define __([A-Z0-9_]+)__ 1/g)) {
    const name = m[1].replaceAll('_', '').toLowerCase();
    const flag = alias[name] ?? name;
    if (cpu?.has(flag)) isa.push(flag);
  }
  return { isa: [...new Set(isa)].sort() };
}

/** The vector extensions worth naming in one line (hnswlib's kernels use AVX-512, AVX or SSE). */
const vectorSets = (isa) => ['avx512f', 'avx2', 'avx', 'fma', 'sse42', 'asimd', 'sve'].filter((f) => isa.includes(f)).join(' ') || 'no vector extensions';

/** npm's node-gyp (npm sets npm_config_node_gyp for scripts), else the one beside this node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && fs.existsSync(c));
}

/** `--nodedir` when npm did not pass one: the headers installed with this node, if they match it. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  try {
    const h = fs.readFileSync(path.join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH'].map((p) => h.match(new RegExp(`#define NODE_${p}_VERSION (\\d+)`))?.[1]).join('.');
    return v === process.versions.node ? [`--nodedir=${prefix}`] : [];
  } catch {
    return [];
  }
}

/** Hash of everything the addon is compiled from (binding.gyp, src/). */
function sourceHash(pkg) {
  const h = crypto.createHash('sha256');
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) h.update(path.relative(pkg, p)).update(fs.readFileSync(p));
    }
  };
  h.update(fs.readFileSync(path.join(pkg, 'binding.gyp')));
  walk(path.join(pkg, 'src'));
  return h.digest('hex');
}

/**
 * Huge pages for hnswlib's big arrays (Linux): a search reads a few hundred vectors and their
 * links at random places of the base layer (1.2 GB at 1M x 256-d) and marks them in a visited
 * list (2 bytes a slot): with 4 KiB pages nearly every read is a TLB miss. The patch asks the
 * kernel for transparent huge pages on these arrays (madvise(MADV_HUGEPAGE) right after they are
 * allocated, before they are written) — advice only: where the kernel says no, or off Linux,
 * nothing changes. Each edit's anchor must occur exactly once in hnswlib's sources, else nothing
 * is patched (`{ error }`) and the native build is compiled without it.
 */
const HUGE_PAGES_HELPER = `
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#endif
namespace hnswlib {
// pixdex (scripts/build-hnswlib.mjs): transparent huge pages for a large array, advice only.
static inline void pixdex_hugepages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p == nullptr || bytes < (size_t(2) << 20)) return;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
    if (end > start) (void) madvise(reinterpret_cast<void *>(start), end - start, MADV_HUGEPAGE);
#endif
}
}  // namespace hnswlib
`;
const HUGE_PAGES_PATCH = [
  ['visited_list_pool.h', '#include <deque>\n', `#include <deque>\n${HUGE_PAGES_HELPER}`],
  ['visited_list_pool.h', '        mass = new vl_type[numelements];\n', '        mass = new vl_type[numelements];\n        pixdex_hugepages(mass, sizeof(vl_type) * numelements);\n'],
  ['hnswalg.h', '            throw std::runtime_error("Not enough memory");\n', '            throw std::runtime_error("Not enough memory");\n        pixdex_hugepages(data_level0_memory_, max_elements_ * size_data_per_element_);\n'],
  ['hnswalg.h', '        data_level0_memory_ = data_level0_memory_new;\n', '        data_level0_memory_ = data_level0_memory_new;\n        pixdex_hugepages(data_level0_memory_, new_max_elements * size_data_per_element_);\n'],
  ['hnswalg.h', '            throw std::runtime_error("Not enough memory: loadIndex failed to allocate level0");\n', '            throw std::runtime_error("Not enough memory: loadIndex failed to allocate level0");\n        pixdex_hugepages(data_level0_memory_, max_elements * size_data_per_element_);\n'],
];
const HUGE_PAGES_ID = crypto.createHash('sha256').update(JSON.stringify(HUGE_PAGES_PATCH)).digest('hex').slice(0, 12);

/**
 * HUGE_PAGES_PATCH applied to the hnswlib sources of `pkg`, in memory: `{ id, files }` (the
 * patched text of each file, relative to src/hnswlib), or `{ error }` when an anchor is not there
 * exactly once (another hnswlib version) or PIXDEX_ANN_NO_HUGEPAGES is set.
 */
function planHugePages(pkg) {
  if (truthy(process.env.PIXDEX_ANN_NO_HUGEPAGES)) return { error: 'PIXDEX_ANN_NO_HUGEPAGES is set' };
  const files = new Map();
  for (const [file, anchor, replacement] of HUGE_PAGES_PATCH) {
    if (!files.has(file)) {
      const full = path.join(pkg, 'src', 'hnswlib', file);
      if (!fs.existsSync(full)) return { error: `src/hnswlib/${file} not found` };
      files.set(file, fs.readFileSync(full, 'utf8'));
    }
    const text = files.get(file);
    const count = text.split(anchor).length - 1;
    if (count !== 1) return { error: `src/hnswlib/${file}: expected 1 occurrence of ${JSON.stringify(anchor.trim())}, found ${count}` };
    files.set(file, text.replace(anchor, () => replacement));
  }
  return { id: HUGE_PAGES_ID, files };
}

/**
 * Compiles a copy of the package in a temp folder, with `hugePages` (planHugePages) applied when
 * it is a plan; returns the built addon's path or `{ error }`.
 */
function compile(pkg, staging, flags, hugePages) {
  const gyp = nodeGyp();
  if (!gyp) return { error: "npm's node-gyp not found" };
  fs.cpSync(path.join(pkg, 'src'), path.join(staging, 'src'), { recursive: true });
  for (const [file, text] of hugePages.files ?? []) fs.writeFileSync(path.join(staging, 'src', 'hnswlib', file), text);
  for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(pkg, f), path.join(staging, f));
  // binding.gyp asks node for node-addon-api's include dir from the package's folder.
  let addonApi;
  for (const from of [path.join(pkg, 'package.json'), fileURLToPath(import.meta.url)]) {
    try {
      addonApi = path.dirname(createRequire(from).resolve('node-addon-api/package.json'));
      break;
    } catch { /* next */ }
  }
  if (!addonApi) return { error: 'node-addon-api not found' };
  fs.mkdirSync(path.join(staging, 'node_modules'));
  fs.symlinkSync(addonApi, path.join(staging, 'node_modules', 'node-addon-api'), process.platform === 'win32' ? 'junction' : 'dir');
  const env = { ...process.env };
  env.CXXFLAGS = [process.env.CXXFLAGS, flags].filter(Boolean).join(' ');
  env.CFLAGS = [process.env.CFLAGS, flags].filter(Boolean).join(' ');
  const r = spawnSync(process.execPath, [gyp, 'rebuild', '--release', ...nodedirArgs()], { cwd: staging, env, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 << 20 });
  const built = path.join(staging, 'build', 'Release', 'addon.node');
  if (r.status === 0 && fs.existsSync(built)) return { built };
  const why = r.error?.code === 'ETIMEDOUT' ? `timed out after ${BUILD_TIMEOUT_MS / 1000} s` : ((r.stderr || '') + (r.stdout || '')).split('\n').find((l) => /error/i.test(l) && !/^gyp ERR! (stack|cwd|node|System|command|not ok)/.test(l)) ?? `exit ${r.status}`;
  return { error: `build failed: ${why.trim().slice(0, 300)}` };
}

/**
 * Loads `addon` in a child process (a crash or an illegal instruction stays there) and checks it:
 * HNSW over 2,000 random 64-d vectors (cosine and L2) must find exact search's top 10 (recall@10
 * at least 0.95) with the same distances (within 1e-4). Returns the measured facts or `{ error }`.
 */
function check(addon) {
  const probe = `
    const { HierarchicalNSW } = require(process.argv[1]);
    let s = 7; const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5; };
    const n = 2000, d = 64, k = 10, queries = 50;
    const data = Array.from({ length: n }, () => Array.from({ length: d }, rnd));
    const dist = {
      cosine: (a, b) => { let ab = 0, aa = 0, bb = 0; for (let i = 0; i < d; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; } return 1 - ab / Math.sqrt(aa * bb); },
      l2: (a, b) => { let t = 0; for (let i = 0; i < d; i++) t += (a[i] - b[i]) ** 2; return t; },
    };
    const out = {};
    for (const space of ['cosine', 'l2']) {
      const index = new HierarchicalNSW(space, d);
      index.initIndex({ maxElements: n, m: 16, efConstruction: 100, randomSeed: 100 });
      data.forEach((v, i) => index.addPoint(v, i));
      index.setEf(100);
      let hits = 0, worst = 0;
      for (let q = 0; q < queries; q++) {
        const x = Array.from({ length: d }, rnd);
        const exact = data.map((v, i) => [dist[space](x, v), i]).sort((a, b) => a[0] - b[0]).slice(0, k);
        const got = index.searchKnn(x, k);
        const want = new Set(exact.map((e) => e[1]));
        got.neighbors.forEach((id, j) => {
          if (want.has(id)) hits++;
          worst = Math.max(worst, Math.abs(got.distances[j] - dist[space](x, data[id])));
        });
      }
      out[space] = { recallAt10: hits / (queries * k), maxDistanceError: worst };
    }
    // Transparent huge pages the process gained for a 7.9 MB base layer a third written (Linux;
    // the kernel's choice: reported, not required).
    const thp = () => { try { return Number(/AnonHugePages:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]); } catch { return null; } };
    // The patched allocations (base layer on create, resize and load) must hold what was written.
    const before = thp();
    const big = new HierarchicalNSW('l2', d);
    big.initIndex({ maxElements: 20000, m: 16, efConstruction: 16, randomSeed: 100 });
    for (let i = 0; i < 6000; i++) big.addPoint(data[i % n], i);
    const after = thp();
    big.resizeIndex(30000);
    for (let i = 6000; i < 8000; i++) big.addPoint(data[i % n], i);
    const file = require('path').join(require('os').tmpdir(), 'pixdex-hnswlib-check-' + process.pid + '.bin');
    big.writeIndexSync(file);
    const loaded = new HierarchicalNSW('l2', d);
    loaded.readIndexSync(file);
    require('fs').rmSync(file, { force: true });
    for (const index of [big, loaded]) {
      index.setEf(200);
      for (const i of [3, 1999, 4321, 7999]) {
        const got = index.searchKnn(data[i % n], 1);
        if (!(got.distances[0] < 1e-6) || got.neighbors[0] % n !== i % n) throw new Error('a large index answers wrongly: ' + JSON.stringify(got));
      }
    }
    out.hugePagesKb = before === null || after === null ? null : after - before;
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', probe, addon], { encoding: 'utf8', timeout: CHECK_TIMEOUT_MS });
  if (r.status !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : (r.stderr.split('\n').find((l) => /Error|error:/.test(l)) ?? `exit ${r.status}`);
    return { error: `the built addon failed its check: ${why.trim().slice(0, 300)}` };
  }
  let facts;
  try {
    facts = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return { error: `the built addon's check printed ${JSON.stringify(r.stdout.slice(0, 200))}` };
  }
  for (const [space, f] of Object.entries(facts)) {
    if (space === 'hugePagesKb') continue;
    if (!(f.recallAt10 >= 0.95) || !(f.maxDistanceError <= 1e-4)) return { error: `the built addon answers wrongly (${space}: recall@10 ${f.recallAt10}, distance error ${f.maxDistanceError})` };
  }
  return { facts };
}

/** What the record says about huge pages: the patch, the kernel's mode, what the check saw. */
function hugePagesFacts(plan, facts) {
  let kernel = null;
  try {
    kernel = /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch { /* not Linux */ }
  return plan.id ? { patch: plan.id, kernel, checkKb: facts.hugePagesKb ?? null } : { patch: null, reason: plan.error, kernel };
}

function main() {
  const pkg = packageDir();
  if (!pkg || !fs.existsSync(path.join(pkg, 'binding.gyp'))) return say('not installed: nothing to rebuild');
  const release = path.join(pkg, 'build', 'Release');
  const addon = path.join(release, 'addon.node');
  const portable = path.join(release, PORTABLE);
  const recordFile = path.join(release, RECORD);
  if (!fs.existsSync(addon)) return say(`has no ${path.relative(pkg, addon)}: nothing to rebuild`);

  // The portable build: addon.node unless a record says addon.node is our native build
  // (an addon no record describes is hnswlib-node's own install, or `npm rebuild`'s).
  const old = readRecord(recordFile);
  const current = fileFacts(addon);
  const ours = old && old.addon?.sha256 === current.sha256;
  if (!(ours && old.build === 'native')) {
    if (!fs.existsSync(portable) || sha256(portable) !== current.sha256) copyAtomic(addon, portable);
  } else if (!fs.existsSync(portable) || sha256(portable) !== old.portable?.sha256) {
    // A native build whose portable copy is gone or changed: nothing to fall back to. Leave the
    // native build as it is (it passed its check when it was built).
    return say(`left as built (${old.flags}); its portable copy ${PORTABLE} is missing: reinstall to restore it`);
  }
  const portableFacts = fileFacts(portable);
  portableReady = true;
  const base = { schema: 1, package: JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version, node: process.versions.node, napi: process.versions.napi, platform: process.platform, arch: process.arch, cpu: os.cpus()[0]?.model ?? null, portable: { file: PORTABLE, ...portableFacts } };

  const keepPortable = (reason, extra = {}) => {
    if (fileFacts(addon).sha256 !== portableFacts.sha256) copyAtomic(portable, addon);
    writeAtomic(recordFile, JSON.stringify({ ...base, build: 'portable', flags: null, isa: [], compiler: null, reason, builtAt: new Date().toISOString(), addon: { file: 'addon.node', ...portableFacts }, ...extra }, null, 2) + '\n');
    say(`kept portable: ${reason}`);
  };

  if (truthy(process.env.PIXDEX_PORTABLE_ANN)) return keepPortable('PIXDEX_PORTABLE_ANN is set');
  const flags = (process.env.PIXDEX_ANN_FLAGS || DEFAULT_FLAGS).trim();
  const cc = compiler();
  if (!cc) return keepPortable(`no C++ compiler (${process.env.CXX || 'g++'}) found`);
  const probe = instructionSets(cc.cxx, flags);
  if (probe.error) return keepPortable(`${cc.cxx} rejects ${flags}: ${probe.error}`, { compiler: cc.version });

  const hugePages = planHugePages(pkg);
  const key = crypto.createHash('sha256').update(JSON.stringify([sourceHash(pkg), flags, hugePages.id ?? null, cc.version, process.versions.node, process.versions.modules, process.platform, process.arch, base.cpu, probe.isa])).digest('hex').slice(0, 24);
  if (ours && old.build === 'native' && old.key === key) return say(`already built for this CPU (${flags}: ${vectorSets(probe.isa)}${hugePages.id ? ', huge pages' : ''})`);

  const cacheDir = path.join(process.env.PIXDEX_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pixdex'), 'hnswlib');
  const cached = path.join(cacheDir, `${key}.node`);
  let staging;
  try {
    let built;
    let from = 'cached';
    let ok;
    if (fs.existsSync(cached)) {
      built = cached;
      ok = check(built);
      if (ok.error) fs.rmSync(cached, { force: true }); // a bad cache entry: compile afresh
    }
    const t0 = performance.now();
    if (!ok || ok.error) {
      from = 'compiled';
      // Beside the package, not in the OS temp dir: it may be mounted noexec (the check loads it).
      staging = fs.mkdtempSync(path.join(path.dirname(pkg), '.pixdex-hnswlib-'));
      const c = compile(pkg, staging, flags, hugePages);
      if (c.error) return keepPortable(c.error, { compiler: cc.version });
      built = c.built;
      ok = check(built);
      if (ok.error) return keepPortable(ok.error, { compiler: cc.version });
    }
    const compileSeconds = Math.round((performance.now() - t0) / 100) / 10;
    if (from === 'compiled') {
      try {
        fs.mkdirSync(cacheDir, { recursive: true });
        copyAtomic(built, cached);
      } catch { /* no cache: the next install compiles again */ }
    }
    copyAtomic(built, addon);
    const facts = fileFacts(addon);
    if (facts.sha256 !== sha256(built)) return keepPortable('the copied addon differs from the checked one', { compiler: cc.version });
    writeAtomic(recordFile, JSON.stringify({ ...base, build: 'native', flags, isa: probe.isa, compiler: cc.version, key, reason: `${from} with ${flags}`, compileSeconds: from === 'compiled' ? compileSeconds : null, hugePages: hugePagesFacts(hugePages, ok.facts), builtAt: new Date().toISOString(), addon: { file: 'addon.node', ...facts }, check: ok.facts }, null, 2) + '\n');
    say(`${from === 'cached' ? 'native build reused from cache' : 'rebuilt'} for this CPU (${flags}: ${vectorSets(probe.isa)}${hugePages.id ? ', huge pages' : ''}; ${cc.version}; check recall@10 ${ok.facts.cosine.recallAt10})`);
  } finally {
    if (staging) fs.rmSync(staging, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  // Never fail the install; never leave a half-done build: put the portable one back if we can.
  let restored = '';
  try {
    const pkg = packageDir();
    const release = pkg && path.join(pkg, 'build', 'Release');
    if (portableReady && release) {
      copyAtomic(path.join(release, PORTABLE), path.join(release, 'addon.node'));
      fs.rmSync(path.join(release, RECORD), { force: true });
      restored = '; portable build restored';
    }
  } catch { /* leave it */ }
  say(`left as installed: ${err?.message ?? err}${restored}`);
}
