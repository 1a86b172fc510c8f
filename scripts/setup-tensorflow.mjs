#!/usr/bin/env node
// setup-tensorflow.mjs: make the optional `tensorflow` backend (@tensorflow/tfjs-node) work on
// a machine that cannot reach the libtensorflow download, using the TensorFlow C libraries from a
// `tensorflow-cpu` wheel (from pip's configured index, or a wheel file given with --wheel).
//
//   node scripts/setup-tensorflow.mjs [--wheel PATH] [--version 2.21.0] [--rebuild] [--force]
//
// Run it from the project root after `npm ci` / `npm install`. Node built-ins only.
//
// What it does (each step is skipped when its result is already there):
//   1. probe: if require('@tensorflow/tfjs-node') already loads and runs a small model on the
//      `tensorflow` backend, say so and exit 0 (idempotent; also the case after a normal online
//      `npm install`, where none of this is needed).
//   2. libs: `pip download --no-deps tensorflow-cpu==<version>` into the cache (or use --wheel),
//      unzip only tensorflow/libtensorflow_cc.so.2, tensorflow/libtensorflow_framework.so.2 and
//      the C-API headers the binding includes into <cache>/libtensorflow-<version>/, then delete
//      the downloaded wheel (a --wheel file is never touched).
//   3. package: `npm install --no-save --ignore-scripts @tensorflow/tfjs-node@<package.json ver>`
//      (its install script, which downloads libtensorflow, is not run), checking with `npm ls`
//      and the native addons' mtimes that no other installed package was removed or changed.
//   4. deps: node_modules/@tensorflow/tfjs-node/deps/{include,lib}: the libraries hard-linked
//      from the cache (copied if the cache is on another filesystem) plus the names tfjs-node
//      expects: libtensorflow.so{,.2.9.1} -> libtensorflow_cc.so.2 and
//      libtensorflow_framework.so{,.2.9.1} -> libtensorflow_framework.so.2.
//   5. binding: reuse a binding built before for the same tfjs-node/TF/N-API (kept in the cache)
//      or build it: `npm rebuild @tensorflow/tfjs-node` with npm_config_build_from_source=true
//      (its install.js sees deps/lib/libtensorflow.so.2.9.1 and skips the download; build-from-
//      source stops node-pre-gyp from trying to fetch a prebuilt addon).
//   6. verify in a child process: backend is `tensorflow`, conv2d + matMul match the cpu backend,
//      one model.fit step of a small conv model gives a finite loss and changes the weights.
//   7. CPU kernels (src/tensorflow-cpu.ts; after the build, before step 6's verification, which
//      then runs under the chosen setting): a MobileNet-shaped probe in child processes under
//      oneDNN at the full instruction set, then capped at AVX2, AVX, SSE4.1, then oneDNN off; the
//      first that does not crash is recorded in deps/pixdex-cpu.json, which pixdex applies before
//      TensorFlow loads (on VMs that report no cache sizes, oneDNN's AVX2/AVX-512 1x1 kernels die
//      of SIGFPE). Runs on the 'already set up' path too, so a new CPU gets a new verdict.
// On any failure after step 3 started, node_modules/@tensorflow/tfjs-node (and what step 3
// added) is removed, so require() fails with MODULE_NOT_FOUND and pixdex falls back to wasm.
//
// Cache: $PIXDEX_CACHE_DIR, else $XDG_CACHE_HOME/pixdex, else ~/.cache/pixdex; this script uses
// <cache>/tensorflow/. Disk (tensorflow-cpu 2.21.0, linux x86_64): the wheel is ~274 MB while it
// is being unpacked; the cache keeps ~815 MiB (854 MB) of libraries (+ <1 MB headers, ~0.3 MB binding).
// node_modules/@tensorflow/tfjs-node/deps/lib hard-links them (no extra space on the same
// filesystem; ~815 MiB per project when it has to copy). Logs: <cache>/tensorflow/logs/.
//
// Env: PIXDEX_CACHE_DIR, PIXDEX_TF_VERSION (default 2.21.0), PIXDEX_PYTHON (default python3),
// PIXDEX_KEEP_WHEEL=1 (keep the downloaded wheel). Loading the backend prints TensorFlow start-up
// lines on stderr: TF_CPP_MIN_LOG_LEVEL=2 (env, or process.env before require) drops the
// CPU-feature banner; the oneDNN notice stays unless TF_ENABLE_ONEDNN_OPTS=0, which also turns
// oneDNN off and about halves inference speed (MobileNetV2, batch 16: 65 -> 31 img/s).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const DEFAULT_TF_VERSION = '2.21.0';
const LIBTF_EXPECTED = '2.9.1'; // tfjs-node 4.x's LIBTENSORFLOW_VERSION (scripts/deps-constants.js)
const PKG = '@tensorflow/tfjs-node';
// What tfjs-node 4.x's binding/*.{cc,h} #include from TensorFlow (their closure is unpacked too).
const BINDING_HEADERS = [
  'tensorflow/c/c_api.h', 'tensorflow/c/eager/c_api.h', 'tensorflow/c/tf_datatype.h',
  'tensorflow/c/tf_status.h', 'tensorflow/c/tf_tensor.h', 'tensorflow/core/platform/ctstring_internal.h',
];
const TAG = '[setup:tensorflow]';

// ---------------------------------------------------------------------------------------------
// small helpers

const t0 = Date.now();
const timings = [];
const log = (msg) => console.log(`${TAG} ${msg}`);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;

class SetupError extends Error {
  constructor(what, hint, detail) {
    super(what);
    this.hint = hint;
    this.detail = detail;
  }
}

async function step(name, fn) {
  const start = Date.now();
  log(`${name} ...`);
  try {
    const result = await fn();
    if (current.interrupted) throw interruptedError();
    const ms = Date.now() - start;
    timings.push([name, ms]);
    log(`${name}: done (${secs(ms)})${result && result.note ? ` - ${result.note}` : ''}`);
    return result;
  } catch (e) {
    timings.push([`${name} (failed)`, Date.now() - start]);
    throw e;
  }
}

function parseArgs(argv) {
  const opts = { wheel: null, version: null, rebuild: false, force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new SetupError(`option ${a} needs a value`, 'see --help');
      return argv[++i];
    };
    if (a === '--help' || a === '-h') opts.help = true;
    else if (a === '--wheel' || a.startsWith('--wheel=')) opts.wheel = path.resolve(val());
    else if (a === '--version' || a.startsWith('--version=')) opts.version = val();
    else if (a === '--rebuild') opts.rebuild = true; // ignore a cached binding, build it again
    else if (a === '--force') opts.force = true; // redo the setup even if the probe passes
    else throw new SetupError(`unknown argument: ${a}`, 'see --help');
  }
  return opts;
}

const HELP = `usage: node scripts/setup-tensorflow.mjs [--wheel PATH] [--version X.Y.Z] [--rebuild] [--force]
Sets up the optional @tensorflow/tfjs-node backend from a tensorflow-cpu wheel (linux x86_64),
without the libtensorflow download. Run from the project root after npm ci.
  --wheel PATH     use this tensorflow-cpu (or tensorflow) wheel instead of pip download
  --version X      tensorflow-cpu version for pip download (default $PIXDEX_TF_VERSION or ${DEFAULT_TF_VERSION})
  --rebuild        build the binding even if a cached one exists
  --force          redo the setup even if the backend already works
Cache: $PIXDEX_CACHE_DIR, else $XDG_CACHE_HOME/pixdex, else ~/.cache/pixdex (~815 MiB).`;

/** Runs a command; output goes to a log file (and is returned). Rejects with SetupError. */
function run(cmd, args, { cwd, env, logFile, timeoutMs = 15 * 60_000, what, hint } = {}) {
  return new Promise((resolve, reject) => {
    let out = '';
    if (current.interrupted) return reject(interruptedError());
    // Own process group, so that an interrupt or a timeout stops the whole tree (npm -> sh ->
    // install.js -> node-pre-gyp -> node-gyp -> make -> g++), not just its top.
    const child = spawn(cmd, args, { cwd, env: env || process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const logStream = logFile ? fs.createWriteStream(logFile) : null;
    if (logStream) logStream.write(`$ ${cmd} ${args.join(' ')}\n(cwd ${cwd || process.cwd()})\n`);
    const onData = (d) => {
      out += d;
      if (out.length > 4e6) out = out.slice(-2e6);
      if (logStream) logStream.write(d);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => killTree(child), timeoutMs);
    current.children.add(child);
    const finish = (code, signal, spawnErr) => {
      clearTimeout(timer);
      current.children.delete(child);
      const done = () => {
        if (current.interrupted) return reject(interruptedError());
        if (code === 0) return resolve(out);
        const lines = out.trim().split('\n');
        // the first error lines (e.g. the compiler's) and then the end of the output
        const firstErrors = lines.filter((l) => /\berror\b|No such file|not found/i.test(l) && !/ERR!|^npm error/.test(l)).slice(0, 8);
        const tail = [...firstErrors, ...(firstErrors.length ? ['...'] : []), ...lines.slice(-12)].join('\n');
        const why = spawnErr ? spawnErr.message : signal ? `killed by ${signal}` : `exit code ${code}`;
        const err = new SetupError(`${what || cmd} failed (${why})`, hint,
          `${tail}${logFile ? `\n(full output: ${logFile})` : ''}`);
        err.output = out;
        reject(err);
      };
      if (logStream) logStream.end(done); else done();
    };
    child.on('error', (err) => finish(-1, null, err));
    child.on('close', (code, signal) => finish(code, signal, null));
  });
}

async function exists(p) {
  try { await fsp.lstat(p); return true; } catch { return false; }
}

async function dirSize(p) {
  let total = 0;
  const st = await fsp.lstat(p).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of await fsp.readdir(p)) total += await dirSize(path.join(p, e));
  return total;
}

// ---------------------------------------------------------------------------------------------
// zip reading (a wheel is a zip): central directory + streamed inflate of chosen entries

async function readZipIndex(file) {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const tailLen = Math.min(size, 65557 + 20);
    const tail = Buffer.alloc(tailLen);
    await fh.read(tail, 0, tailLen, size - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) if (tail.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
    if (eocd < 0) throw new Error('not a zip file (no end-of-central-directory record)');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || count === 0xffff) { // zip64
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) throw new Error('bad zip64 locator');
      const z64Off = Number(tail.readBigUInt64LE(loc + 8));
      const z = Buffer.alloc(56);
      await fh.read(z, 0, 56, z64Off);
      if (z.readUInt32LE(0) !== 0x06064b50) throw new Error('bad zip64 end record');
      count = Number(z.readBigUInt64LE(32));
      cdSize = Number(z.readBigUInt64LE(40));
      cdOffset = Number(z.readBigUInt64LE(48));
    }
    const cd = Buffer.alloc(cdSize);
    await fh.read(cd, 0, cdSize, cdOffset);
    const entries = new Map();
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory entry');
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) { // zip64 extended information
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) { size = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (compSize === 0xffffffff) { compSize = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (localOffset === 0xffffffff) { localOffset = Number(cd.readBigUInt64LE(q)); q += 8; }
        }
        e += 4 + len;
      }
      entries.set(name, { name, method, crc, compSize, size, localOffset });
      p = extraEnd + commentLen;
    }
    return entries;
  } finally {
    await fh.close();
  }
}

async function zipDataStart(file, entry) {
  const fh = await fsp.open(file, 'r');
  try {
    const h = Buffer.alloc(30);
    await fh.read(h, 0, 30, entry.localOffset);
    if (h.readUInt32LE(0) !== 0x04034b50) throw new Error(`bad local header for ${entry.name}`);
    return entry.localOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  } finally {
    await fh.close();
  }
}

async function extractEntry(file, entry, dest, mode) {
  if (entry.method !== 0 && entry.method !== 8) throw new Error(`${entry.name}: unsupported zip method ${entry.method}`);
  const start = await zipDataStart(file, entry);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const src = fs.createReadStream(file, entry.compSize ? { start, end: start + entry.compSize - 1 } : { start, end: start - 1 });
  let crc = 0;
  let n = 0;
  const hasCrc = typeof zlib.crc32 === 'function';
  const check = new Transform({
    transform(chunk, _enc, cb) { n += chunk.length; if (hasCrc) crc = zlib.crc32(chunk, crc); cb(null, chunk); },
  });
  const stages = entry.method === 8 ? [src, zlib.createInflateRaw(), check] : [src, check];
  await pipeline(...stages, fs.createWriteStream(dest, { mode }));
  if (n !== entry.size) throw new Error(`${entry.name}: size ${n} != ${entry.size} (corrupt wheel?)`);
  if (hasCrc && (crc >>> 0) !== entry.crc) throw new Error(`${entry.name}: CRC mismatch (corrupt wheel?)`);
}

async function readEntryText(file, entry) {
  const tmp = path.join(os.tmpdir(), `pixdex-zip-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    await extractEntry(file, entry, tmp, 0o600);
    return await fsp.readFile(tmp, 'utf8');
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// the steps

const current = { children: new Set(), rollback: null, rollbackSync: null, interrupted: null };

function interruptedError() {
  return new SetupError(`interrupted (${current.interrupted})`, 'run it again to finish the setup');
}

function killTree(child) {
  const kill = (sig) => { try { process.kill(-child.pid, sig); } catch { try { child.kill(sig); } catch { /* gone */ } } };
  kill('SIGTERM');
  setTimeout(() => kill('SIGKILL'), 5000).unref();
}

function cacheRoot() {
  const base = process.env.PIXDEX_CACHE_DIR
    || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pixdex');
  return path.join(path.resolve(base), 'tensorflow');
}

const VERIFY_JS = String.raw`
const t0 = Date.now();
const out = { ok: false };
process.on('uncaughtException', (e) => { out.error = String(e && e.stack || e); console.log('@@RESULT ' + JSON.stringify(out)); process.exit(1); });
(async () => {
  let tf;
  try { tf = require('@tensorflow/tfjs-node'); }
  catch (e) { out.error = (e && e.code === 'MODULE_NOT_FOUND' && /tfjs-node'/.test(e.message)) ? 'MODULE_NOT_FOUND' : String(e && e.stack || e); throw null; }
  out.loadMs = Date.now() - t0;
  await tf.ready();
  out.backend = tf.getBackend();
  out.tfjsNode = tf.version['tfjs-node'];
  try { out.libtensorflow = tf.backend().binding.TF_Version; } catch {}
  if (out.backend !== 'tensorflow') throw new Error('backend is ' + out.backend + ', not tensorflow');
  const ops = () => tf.tidy(() => {
    const x = tf.tensor4d(Array.from({ length: 2 * 6 * 6 * 3 }, (_, i) => Math.sin(i)), [2, 6, 6, 3]);
    const w = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i) / 3), [3, 3, 3, 4]);
    const y = tf.conv2d(x, w, 1, 'same').reshape([2, 144]);
    const m = tf.tensor2d(Array.from({ length: 144 * 5 }, (_, i) => Math.sin(i * 0.37) / 12), [144, 5]);
    return Array.from(tf.matMul(y, m).dataSync());
  });
  const got = ops();
  await tf.setBackend('cpu');
  const want = ops();
  await tf.setBackend('tensorflow');
  const maxDiff = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
  out.opsMaxAbsDiffVsCpu = maxDiff;
  if (!(maxDiff < 1e-3)) throw new Error('conv2d+matMul differ from the cpu backend by ' + maxDiff);
  const model = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2dTranspose({ filters: 3, kernelSize: 2, strides: 2, padding: 'same' }),
  ] });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const xs = tf.randomUniform([8, 8, 8, 3], 0, 1, 'float32', 7);
  const before = model.getWeights().map((w) => w.dataSync().slice());
  const h = await model.fit(xs, xs, { epochs: 1, batchSize: 8, verbose: 0 });
  const after = model.getWeights().map((w) => w.dataSync());
  out.fitLoss = h.history.loss[0];
  if (!Number.isFinite(out.fitLoss)) throw new Error('model.fit loss is ' + out.fitLoss);
  const changed = before.every((b, i) => b.some((v, j) => v !== after[i][j]));
  if (!changed) throw new Error('model.fit did not change every weight tensor');
  out.ok = true;
  out.totalMs = Date.now() - t0;
  console.log('@@RESULT ' + JSON.stringify(out));
})().catch((e) => { if (e) out.error = String(e && e.stack || e); console.log('@@RESULT ' + JSON.stringify(out)); process.exit(1); });
`;

/** Runs the small model in a child process; returns the parsed result (never throws). */
function probe(root, cpuEnv = {}) {
  return new Promise((resolve) => {
    const env = { ...process.env, ...cpuEnv };
    if (env.TF_CPP_MIN_LOG_LEVEL === undefined) env.TF_CPP_MIN_LOG_LEVEL = '2';
    const child = spawn(process.execPath, ['-e', VERIFY_JS], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    current.children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; if (err.length > 1e6) err = err.slice(-5e5); });
    const timer = setTimeout(() => killTree(child), 180_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current.children.delete(child);
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      let res = line ? JSON.parse(line.slice(9)) : { ok: false };
      if (!line) res.error = `verification process ended (${signal || `exit ${code}`}) without a result`;
      res.stderr = err.trim().split('\n').slice(-15).join('\n');
      resolve(res);
    });
  });
}

/** Step 7: probes TensorFlow's CPU kernels on this machine and records the setting that runs. */
async function chooseCpuKernels(root, pkgDir) {
  const { register } = await import('tsx/esm/api');
  register();
  const cpu = await import(pathToFileURL(path.join(root, 'src', 'tensorflow-cpu.ts')).href);
  const v = cpu.cpuVerdict(pkgDir, { reprobe: true });
  const tried = v.trials.map((t) => `${t.label}: ${t.outcome} (${secs(t.ms)})`).join('; ');
  if (!v.setting) {
    throw new SetupError(`TensorFlow crashed on this CPU under every kernel setting (${tried})`, 'pixdex keeps using wasm; report the CPU (lscpu) and this output');
  }
  return { note: `${v.setting.label}${tried ? ` - tried: ${tried}` : ''}`, env: v.setting.env };
}

function wheelVersion(file) {
  const m = /^tensorflow(?:[_-]cpu)?-(\d+\.\d+\.\d+[^-]*)-.*\.whl$/i.exec(path.basename(file));
  return m ? m[1] : null;
}

async function findPython() {
  const candidates = process.env.PIXDEX_PYTHON ? [process.env.PIXDEX_PYTHON] : ['python3', 'python'];
  for (const py of candidates) {
    try {
      await run(py, ['-m', 'pip', '--version'], { what: `${py} -m pip --version`, timeoutMs: 60_000 });
      return py;
    } catch { /* next */ }
  }
  return null;
}

/** Ensures <cache>/libtensorflow-<ver>/{lib,include} exists; returns its path. */
async function ensureLibs(opts, cache) {
  let version = opts.version || process.env.PIXDEX_TF_VERSION || DEFAULT_TF_VERSION;
  if (opts.wheel) {
    if (!(await exists(opts.wheel))) throw new SetupError(`wheel not found: ${opts.wheel}`, 'give an existing tensorflow-cpu .whl file with --wheel');
    const wv = wheelVersion(opts.wheel);
    if (!wv) throw new SetupError(`not a tensorflow wheel file name: ${path.basename(opts.wheel)}`, 'expected tensorflow_cpu-<version>-...-linux_x86_64.whl');
    if (opts.version && opts.version !== wv) throw new SetupError(`--version ${opts.version} but the wheel is ${wv}`, 'drop --version or give the matching wheel');
    version = wv;
  }
  const dir = path.join(cache, `libtensorflow-${version}`);
  const stamp = path.join(dir, '.complete');
  if (await exists(stamp)) {
    const s = JSON.parse(await fsp.readFile(stamp, 'utf8'));
    return { dir, version, note: `cached ${dir} (from ${s.wheel})` };
  }

  let wheel = opts.wheel;
  let downloaded = false;
  if (!wheel) {
    const py = await findPython();
    if (!py) throw new SetupError('no pip found (tried python3 -m pip, python -m pip)', 'install pip, set PIXDEX_PYTHON, or download the wheel yourself and pass it with --wheel PATH');
    const wheelDir = path.join(cache, 'wheels');
    await fsp.mkdir(wheelDir, { recursive: true });
    const start = Date.now();
    log(`  pip download --no-deps tensorflow-cpu==${version} (~270 MB) into ${wheelDir}`);
    await run(py, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', `tensorflow-cpu==${version}`, '-d', wheelDir], {
      logFile: path.join(cache, 'logs', 'pip-download.log'),
      what: `pip download tensorflow-cpu==${version}`,
      hint: `check pip's index (pip config list) has tensorflow-cpu ${version} for this Python/platform, try another --version, or pass a wheel with --wheel PATH`,
    });
    const names = (await fsp.readdir(wheelDir)).filter((f) => wheelVersion(f) === version && /^tensorflow_cpu-/i.test(f));
    if (!names.length) throw new SetupError(`pip download left no tensorflow_cpu-${version}-*.whl in ${wheelDir}`, 'pass a wheel with --wheel PATH');
    wheel = path.join(wheelDir, names[0]);
    downloaded = true;
    log(`  got ${names[0]} (${mb((await fsp.stat(wheel)).size)}) in ${secs(Date.now() - start)}`);
  }

  const start = Date.now();
  log(`  unpacking libtensorflow_cc.so.2, libtensorflow_framework.so.2 and C headers from ${path.basename(wheel)}`);
  const entries = await readZipIndex(wheel);
  const libs = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];
  for (const l of libs) {
    if (!entries.has(`tensorflow/${l}`)) throw new SetupError(`${path.basename(wheel)} has no tensorflow/${l}`, 'use a linux x86_64 tensorflow-cpu (2.x) wheel');
  }
  // headers: the ones the binding includes and everything they #include "..." (~16 small files).
  const inc = 'tensorflow/include/';
  const wanted = new Set();
  const queue = BINDING_HEADERS.map((h) => inc + h);
  const missing = queue.filter((n) => !entries.has(n));
  if (missing.length) throw new SetupError(`${path.basename(wheel)} lacks ${missing.join(', ')}`, 'use a tensorflow-cpu 2.x wheel (the binding needs the TensorFlow C API headers)');
  while (queue.length) {
    const name = queue.pop();
    if (wanted.has(name)) continue;
    wanted.add(name);
    const text = await readEntryText(wheel, entries.get(name));
    for (const m of text.matchAll(/^\s*#\s*include\s*"([^"]+)"/gm)) {
      const dep = inc + path.posix.normalize(m[1]);
      if (entries.has(dep) && !wanted.has(dep)) queue.push(dep);
    }
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await fsp.rm(tmp, { recursive: true, force: true });
  try {
    for (const l of libs) await extractEntry(wheel, entries.get(`tensorflow/${l}`), path.join(tmp, 'lib', l), 0o755);
    for (const name of wanted) await extractEntry(wheel, entries.get(name), path.join(tmp, 'include', name.slice(inc.length)), 0o644);
    await fsp.writeFile(path.join(tmp, '.complete'), JSON.stringify({ wheel: path.basename(wheel), version, headers: wanted.size, at: new Date().toISOString() }, null, 1));
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rename(tmp, dir);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    if (e instanceof SetupError) throw e;
    throw new SetupError(`unpacking ${wheel} failed: ${e.message}`, `check disk space under ${cache} (needs ~1.1 GB) and that the wheel is intact (delete it and re-run)`);
  }
  log(`  unpacked ${wanted.size} headers and 2 libraries (${mb(await dirSize(dir))}) in ${secs(Date.now() - start)}`);
  if (downloaded && process.env.PIXDEX_KEEP_WHEEL !== '1') {
    await fsp.rm(wheel, { force: true });
    log(`  removed the downloaded wheel (set PIXDEX_KEEP_WHEEL=1 to keep it)`);
  }
  return { dir, version, note: `${dir}` };
}

/** `npm ls` as {path -> name@version}, plus the native addons' (path -> size:mtime). */
async function snapshot(root, pkgDir) {
  let out = '';
  try {
    out = await run('npm', ['ls', '--all', '--parseable', '--long'], { cwd: root, timeoutMs: 120_000, what: 'npm ls' });
  } catch (e) {
    out = e.output || ''; // npm ls exits non-zero on extraneous/invalid packages; its list is still useful
  }
  const pkgs = new Map();
  for (const line of out.split('\n')) {
    const m = /^(\/.*?):([^:]+@[^:]+)/.exec(line.trim());
    if (m) pkgs.set(m[1], m[2]);
  }
  const addons = new Map();
  const walk = async (d, depth) => {
    if (depth > 8 || d === pkgDir) return;
    let list;
    try { list = await fsp.readdir(d, { withFileTypes: true }); } catch { return; }
    for (const e of list) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith('.node')) {
        const st = await fsp.stat(p);
        addons.set(p, `${st.size}:${st.mtimeMs}`);
      }
    }
  };
  await walk(path.join(root, 'node_modules'), 0);
  return { pkgs, addons };
}

function diffSnapshots(before, after, pkgDir) {
  const inPkg = (p) => p === pkgDir || p.startsWith(pkgDir + path.sep);
  const removed = [];
  const changed = [];
  const added = [];
  for (const [p, v] of before.pkgs) {
    if (inPkg(p)) continue;
    if (!after.pkgs.has(p)) removed.push(`${v} (${p})`);
    else if (after.pkgs.get(p) !== v) changed.push(`${v} -> ${after.pkgs.get(p)}`);
  }
  for (const [p, v] of before.addons) {
    if (!after.addons.has(p)) removed.push(`native addon ${p}`);
    else if (after.addons.get(p) !== v) changed.push(`native addon ${p} (rewritten)`);
  }
  for (const p of after.pkgs.keys()) if (!before.pkgs.has(p)) added.push(p);
  return { removed, changed, added };
}

async function layoutDeps(pkgDir, libDir) {
  const deps = path.join(pkgDir, 'deps');
  // The binding of this tfjs-node version must not include a TensorFlow header the cache lacks.
  const srcDir = path.join(pkgDir, 'binding');
  for (const f of (await fsp.readdir(srcDir)).filter((n) => /\.(cc|h)$/.test(n))) {
    const text = await fsp.readFile(path.join(srcDir, f), 'utf8');
    for (const m of text.matchAll(/^\s*#\s*include\s*"(tensorflow\/[^"]+)"/gm)) {
      if (!(await exists(path.join(libDir, 'include', m[1])))) {
        throw new SetupError(`${PKG}'s binding/${f} includes ${m[1]}, which the unpacked headers lack`,
          `add it to BINDING_HEADERS in this script, delete ${libDir} and re-run`);
      }
    }
  }
  await fsp.rm(deps, { recursive: true, force: true });
  await fsp.mkdir(path.join(deps, 'lib'), { recursive: true });
  await fsp.cp(path.join(libDir, 'include'), path.join(deps, 'include'), { recursive: true });
  let how = 'hard-linked';
  for (const l of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
    const src = path.join(libDir, 'lib', l);
    const dst = path.join(deps, 'lib', l);
    try {
      await fsp.link(src, dst);
    } catch {
      await fsp.copyFile(src, dst, fs.constants.COPYFILE_FICLONE);
      how = 'copied';
    }
  }
  const links = {
    'libtensorflow.so': 'libtensorflow_cc.so.2',
    [`libtensorflow.so.${LIBTF_EXPECTED}`]: 'libtensorflow_cc.so.2',
    'libtensorflow_framework.so': 'libtensorflow_framework.so.2',
    [`libtensorflow_framework.so.${LIBTF_EXPECTED}`]: 'libtensorflow_framework.so.2',
  };
  for (const [name, target] of Object.entries(links)) await fsp.symlink(target, path.join(deps, 'lib', name));
  return { note: `${how} the libraries into ${path.relative(process.cwd(), deps)}/lib (+ ${Object.keys(links).length} symlinks)` };
}

async function napiBindingPath(pkgDir) {
  const pj = JSON.parse(await fsp.readFile(path.join(pkgDir, 'package.json'), 'utf8'));
  const versions = (pj.binary?.napi_versions || []).map(Number).filter((v) => v <= Number(process.versions.napi));
  const v = Math.max(...versions);
  return path.join(pkgDir, pj.binary.module_path.replace('{napi_build_version}', String(v)), `${pj.binary.module_name}.node`);
}

/** Env for the build: build from source, and Node headers where node-gyp can find them offline. */
async function buildEnv(root) {
  const env = { ...process.env, npm_config_build_from_source: 'true' };
  const configured = (await run('npm', ['config', 'get', 'nodedir'], { cwd: root, timeoutMs: 60_000 }).catch(() => '')).trim();
  if (!configured || configured === 'undefined' || configured === 'null') {
    // node-gyp would download the headers (impossible offline); use the ones shipped with node.
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
  }
  return env;
}

async function buildBinding(root, pkgDir, cache, key, opts) {
  const target = await napiBindingPath(pkgDir);
  const cached = path.join(cache, 'bindings', key, path.basename(target));
  if (!opts.rebuild && (await exists(cached))) {
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.copyFile(cached, target);
    const res = await probe(root);
    if (res.ok) return { built: false, res, note: `reused cached binding ${cached}` };
    log(`  the cached binding did not verify (${res.error?.split('\n')[0]}); building it`);
    await fsp.rm(target, { force: true });
  }
  const env = await buildEnv(root);
  log(`  npm rebuild ${PKG} (build from source against deps/; ~1 min)`);
  await run('npm', ['rebuild', PKG, '--foreground-scripts'], {
    cwd: root, env, logFile: path.join(cache, 'logs', 'npm-rebuild.log'), what: `npm rebuild ${PKG}`,
    hint: 'the binding did not compile: it needs a C++ toolchain (g++, make, python3 for node-gyp) and Node headers (npm config set nodedir /usr, or a node-gyp header cache); see the log',
  });
  if (!(await exists(target))) throw new SetupError(`npm rebuild finished but ${target} is missing`, `see ${path.join(cache, 'logs', 'npm-rebuild.log')}`);
  return { built: true, target, cached, note: `built ${path.relative(root, target)}` };
}

async function rollback(root, pkgDir, added) {
  const gone = [];
  for (const p of [pkgDir, ...added]) {
    if (!p.startsWith(path.join(root, 'node_modules') + path.sep)) continue;
    if (await exists(p)) { await fsp.rm(p, { recursive: true, force: true }); gone.push(path.relative(root, p)); }
  }
  return gone;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) { console.log(HELP); return 0; }
  const root = process.cwd();
  const pjPath = path.join(root, 'package.json');
  if (!(await exists(pjPath))) throw new SetupError(`no package.json in ${root}`, 'run it from the project root (npm run setup:tensorflow)');
  const pj = JSON.parse(await fsp.readFile(pjPath, 'utf8'));
  const spec = pj.optionalDependencies?.[PKG] || pj.dependencies?.[PKG] || pj.devDependencies?.[PKG];
  if (!spec) throw new SetupError(`${PKG} is not in package.json`, 'add it to optionalDependencies');
  const req = createRequire(pjPath);
  for (const dep of ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm']) {
    try { req.resolve(dep); } catch { throw new SetupError(`${dep} is not installed`, 'run npm ci (or npm install) first'); }
  }
  const pkgDir = path.join(root, 'node_modules', ...PKG.split('/'));
  log(`project ${root}, ${PKG}@${spec}, node ${process.version} (N-API ${process.versions.napi}), ${process.platform}-${process.arch}`);

  if (!opts.force) {
    const res = await step('check whether the tensorflow backend already works', () => probe(root).then((r) => ({ ...r, note: r.ok ? 'yes' : `no (${(r.error || '').split('\n')[0]})` })));
    if (res.ok) {
      await step("choose TensorFlow's CPU kernels for this CPU (child processes)", () => chooseCpuKernels(root, pkgDir));
      log(`already set up: ${PKG} ${res.tfjsNode}, libtensorflow ${res.libtensorflow}, backend '${res.backend}', conv2d+matMul match cpu (max diff ${res.opsMaxAbsDiffVsCpu.toExponential(1)}), model.fit loss ${res.fitLoss.toFixed(4)}. Nothing to do.`);
      return 0;
    }
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new SetupError(`this setup supports linux-x64 only (here ${process.platform}-${process.arch})`, `with internet access, \`npm install ${PKG}\` downloads what it needs; pixdex keeps using wasm meanwhile`);
  }

  const cache = cacheRoot();
  await fsp.mkdir(path.join(cache, 'logs'), { recursive: true });
  log(`cache ${cache}`);
  const libs = await step('get the TensorFlow C libraries', () => ensureLibs(opts, cache));

  // From here on, a failure removes the package so require() fails cleanly.
  let added = [];
  const hadPkg = await exists(pkgDir);
  current.rollback = async () => rollback(root, pkgDir, added);
  current.rollbackSync = () => { for (const p of [pkgDir, ...added]) if (p.startsWith(path.join(root, 'node_modules') + path.sep)) fs.rmSync(p, { recursive: true, force: true }); };
  const pkgVersion = hadPkg ? JSON.parse(await fsp.readFile(path.join(pkgDir, 'package.json'), 'utf8')).version : null;
  if (!hadPkg || pkgVersion !== spec) {
    await step(`install ${PKG}@${spec} without its install script`, async () => {
      const before = await snapshot(root, pkgDir);
      await run('npm', ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', `${PKG}@${spec}`], {
        cwd: root, logFile: path.join(cache, 'logs', 'npm-install.log'), timeoutMs: 10 * 60_000,
        what: `npm install --no-save --ignore-scripts ${PKG}@${spec}`,
        hint: `npm could not fetch ${PKG} and its dependencies from the registry`,
      });
      const after = await snapshot(root, pkgDir);
      const d = diffSnapshots(before, after, pkgDir);
      added = d.added;
      if (!(await exists(path.join(pkgDir, 'package.json')))) throw new SetupError(`npm install did not place ${PKG} in node_modules`, 'see the npm log');
      if (d.removed.length || d.changed.length) {
        throw new SetupError('npm install changed other installed packages',
          'run `npm ci` to restore node_modules exactly, then report this',
          [...d.removed.map((x) => `removed: ${x}`), ...d.changed.map((x) => `changed: ${x}`)].join('\n'));
      }
      return { note: `added ${d.added.length} packages (${PKG} and its dependencies); npm ls: nothing else removed or changed` };
    });
  } else {
    log(`${PKG}@${pkgVersion} is already in node_modules: setting up its deps/ and binding`);
  }

  await step('lay out deps/{include,lib}', () => layoutDeps(pkgDir, libs.dir));
  const key = `tfjs-node-${spec}_tf-${libs.version}_napi-${process.versions.napi}_${process.platform}-${process.arch}`;
  const build = await step('build the binding', () => buildBinding(root, pkgDir, cache, key, opts));
  // The CPU's kernel setting first: the verification then runs under it, as pixdex will.
  const cpu = await step("choose TensorFlow's CPU kernels for this CPU (child processes)", () => chooseCpuKernels(root, pkgDir));
  const res = (build.res && !Object.keys(cpu.env).length ? build.res : undefined) || (await step('verify: small model on the tensorflow backend (child process)', async () => {
    const r = await probe(root, cpu.env);
    if (!r.ok) throw new SetupError(`verification failed: ${(r.error || '').split('\n')[0]}`, 'the binding loads TensorFlow 2.x where 2.9.1 is expected; try another --version, or use wasm', `${r.error || ''}\n${r.stderr || ''}`);
    return { ...r, note: `backend '${r.backend}', libtensorflow ${r.libtensorflow}` };
  }));
  if (build.built) {
    await fsp.mkdir(path.dirname(build.cached), { recursive: true });
    const tmp = `${build.cached}.tmp-${process.pid}`;
    await fsp.copyFile(build.target, tmp);
    await fsp.rename(tmp, build.cached);
  }
  if (current.interrupted) throw interruptedError();
  current.rollback = null;
  current.rollbackSync = null;
  log(`OK: ${PKG} ${res.tfjsNode} on libtensorflow ${res.libtensorflow}: backend '${res.backend}', conv2d+matMul match cpu (max diff ${res.opsMaxAbsDiffVsCpu.toExponential(1)}), model.fit loss ${res.fitLoss.toFixed(4)}, load ${secs(res.loadMs)}.`);
  log('use it with PIXDEX_BACKEND=tensorflow. Loading it prints TensorFlow start-up lines on stderr: TF_CPP_MIN_LOG_LEVEL=2 hides the CPU-feature banner; the oneDNN notice goes only with TF_ENABLE_ONEDNN_OPTS=0, which also turns oneDNN off (about half the speed).');
  log(`disk: cache ${mb(await dirSize(cache))} in ${cache}; ${PKG}/deps ${mb(await dirSize(path.join(pkgDir, 'deps')))} apparent (hard links share the cache's blocks)`);
  return 0;
}

function printTimings() {
  if (!timings.length) return;
  log(`timings: ${timings.map(([n, ms]) => `${n} ${secs(ms)}`).join('; ')}; total ${secs(Date.now() - t0)}`);
}

process.on('uncaughtException', (e) => {
  console.error(`${TAG} FAILED: unexpected error: ${e && e.stack || e}`);
  if (current.rollback && current.rollbackSync) {
    try { current.rollbackSync(); console.error(`${TAG} removed ${PKG}: pixdex uses the wasm backend.`); } catch { /* ignore */ }
  }
  process.exit(1);
});

// Ctrl-C / SIGTERM: stop the running command's process tree; main() then fails with
// "interrupted", rolls back and exits. A second signal rolls back synchronously and exits now.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current.interrupted) {
      if (current.rollbackSync) { try { current.rollbackSync(); } catch { /* ignore */ } }
      process.exit(130);
    }
    current.interrupted = sig;
    console.error(`${TAG} ${sig}: stopping ...`);
    for (const child of current.children) killTree(child);
  });
}

main().then((code) => {
  printTimings();
  process.exit(code);
}).catch(async (e) => {
  printTimings();
  const err = e instanceof SetupError ? e : new SetupError(`unexpected error: ${e && e.message}`, 'see the stack below and report it', e && e.stack);
  let rolled = [];
  if (current.rollback) rolled = await current.rollback().catch((re) => [`(rollback failed: ${re.message})`]);
  console.error(`${TAG} FAILED: ${err.message}`);
  const exitCode = current.interrupted ? 130 : 1;
  if (err.detail) console.error(err.detail.split('\n').map((l) => `${TAG}   | ${l}`).join('\n'));
  if (rolled.length) console.error(`${TAG} removed ${rolled[0]}${rolled.length > 1 ? ` and the ${rolled.length - 1} packages npm added for it` : ''}: require('${PKG}') now fails with MODULE_NOT_FOUND and pixdex uses the wasm backend.`);
  else console.error(`${TAG} nothing was changed in node_modules; pixdex uses the wasm backend.`);
  if (err.hint) console.error(`${TAG} what to do: ${err.hint}`);
  process.exit(exitCode);
});
