/**
 * Which of TensorFlow's CPU kernels are safe on this machine. tfjs-node's TensorFlow runs its
 * convolutions through oneDNN, which picks kernels for the CPU's widest instruction set and sizes
 * their blocks from the CPU's cache sizes. Some virtual machines report no cache sizes (an AMD EPYC
 * guest with AVX-512: no `/sys/devices/system/cpu/cpu0/cache`), and there oneDNN's AVX2 and AVX-512
 * 1x1-convolution kernels divide by zero: the process dies of SIGFPE on the first MobileNet pass.
 *
 * So, before TensorFlow is loaded, pixdex runs a small MobileNet-shaped network (inference and
 * gradients) in child processes under candidate settings, widest first, and keeps the first that
 * survives: oneDNN at the full instruction set, capped at AVX2, at AVX, at SSE4.1, or oneDNN off.
 * The verdict is recorded beside tfjs-node's libraries (`deps/pixdex-cpu.json`), keyed by the CPU
 * and the TensorFlow build, so the probe runs once per machine (`npm run setup:tensorflow` runs it
 * too). A user's own `ONEDNN_MAX_CPU_ISA` / `TF_ENABLE_ONEDNN_OPTS` is taken as given.
 *
 * The setting lives in environment variables that TensorFlow reads once per process, so it is
 * applied on the main thread before TensorFlow loads and before any worker starts (workers get a
 * copy of the main thread's environment; their own `process.env` does not reach native code).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const require = createRequire(import.meta.url);

/** A setting of TensorFlow's CPU kernels: the environment variables that select it. */
export interface CpuSetting {
  label: string;
  env: Record<string, string>;
}

/** Candidates, fastest first (ONEDNN_MAX_CPU_ISA caps the instruction set oneDNN dispatches to). */
export const CPU_SETTINGS: readonly CpuSetting[] = [
  { label: "oneDNN at the CPU's full instruction set", env: {} },
  { label: 'oneDNN capped at AVX2', env: { ONEDNN_MAX_CPU_ISA: 'AVX2' } },
  { label: 'oneDNN capped at AVX', env: { ONEDNN_MAX_CPU_ISA: 'AVX' } },
  { label: 'oneDNN capped at SSE4.1', env: { ONEDNN_MAX_CPU_ISA: 'SSE41' } },
  { label: 'oneDNN off (Eigen kernels, about half the speed)', env: { TF_ENABLE_ONEDNN_OPTS: '0' } },
];

/** Variables that choose the kernels; when the user set any of them, pixdex does not probe. */
const USER_VARIABLES = 'ONEDNN_MAX_CPU_ISA DNNL_MAX_CPU_ISA TF_ENABLE_ONEDNN_OPTS'.split(' ');

export const CPU_RECORD = 'pixdex-cpu.json';

/** One candidate's trial: `ok`, or how the child process ended. */
export interface CpuTrial {
  label: string;
  ok: boolean;
  outcome: string;
  ms: number;
}

/** The verdict for this machine. `setting` is undefined when no candidate ran (tensorflow unusable). */
export interface CpuVerdict {
  fingerprint: string;
  setting?: CpuSetting;
  trials: CpuTrial[];
  at: string;
  /** 'user': the user's own variables; 'recorded': read back; 'probed': measured now. */
  source: 'user' | 'recorded' | 'probed';
}

/**
 * The probe: MobileNet v1's layer shapes with random weights, batches of 1 and 4 at 224 and 160 px,
 * fused bias + ReLU6, average pooling, a dense layer, and gradients through the last blocks (what
 * fine-tuning runs). Prints `@@OK` when all of it ran.
 */
const PROBE_JS = String.raw`
const tf = require('@tensorflow/tfjs-node');
const blocks = [[64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2], [1024, 1]];
const weights = [];
let c = 32;
for (const [out, stride] of blocks) {
  weights.push({ dw: tf.variable(tf.randomNormal([3, 3, c, 1], 0, 0.1)), pw: tf.variable(tf.randomNormal([1, 1, c, out], 0, 0.05)), b: tf.variable(tf.zeros([out])), stride });
  c = out;
}
const stem = tf.randomNormal([3, 3, 3, 32], 0, 0.1);
const dense = tf.variable(tf.randomNormal([1024, 5], 0, 0.05));
const net = (x) => {
  let y = tf.fused.conv2d({ x, filter: stem, strides: 2, pad: 'same', bias: tf.zeros([32]), activation: 'relu6' });
  for (const w of weights) {
    y = tf.fused.depthwiseConv2d({ x: y, filter: w.dw, strides: w.stride, pad: 'same', activation: 'relu6' });
    y = tf.fused.conv2d({ x: y, filter: w.pw, strides: 1, pad: 'same', bias: w.b, activation: 'relu6' });
  }
  return tf.matMul(tf.avgPool(y, y.shape[1], 1, 'valid').reshape([x.shape[0], 1024]), dense);
};
for (const [n, side] of [[1, 224], [4, 224], [4, 160]]) {
  tf.tidy(() => net(tf.randomUniform([n, side, side, 3], -1, 1)).dataSync());
}
const last = weights.slice(-2).flatMap((w) => [w.dw, w.pw, w.b]).concat([dense]);
const { value, grads } = tf.variableGrads(() => net(tf.randomUniform([4, 224, 224, 3], -1, 1)).square().mean(), last);
if (!Number.isFinite(value.dataSync()[0]) || Object.keys(grads).length !== last.length) throw new Error('gradients did not run');
console.log('@@OK');
`;

/** The tfjs-node package directory, or undefined when it is not installed. */
export function tfjsNodeDir(): string | undefined {
  try {
    return path.dirname(require.resolve('@tensorflow/tfjs-node/package.json'));
  } catch {
    return undefined;
  }
}

/** What the verdict depends on: the CPU (as Linux reports it) and the TensorFlow build. */
export function cpuFingerprint(pkgDir: string): string {
  let cpu = '';
  try {
    const first = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0];
    cpu = first.split('\n').filter((l) => /^(vendor_id|cpu family|model|model name|stepping|flags)\s*:/.test(l)).join('\n');
  } catch {
    cpu = `${process.platform}-${process.arch}`;
  }
  const caches = fs.existsSync('/sys/devices/system/cpu/cpu0/cache/index0') ? 'caches reported' : 'no caches reported';
  const lib = ['libtensorflow.so.2', 'libtensorflow_cc.so.2'].map((f) => {
    try {
      return `${f}:${fs.statSync(path.join(pkgDir, 'deps', 'lib', f)).size}`;
    } catch {
      return `${f}:-`;
    }
  });
  let version = '';
  try {
    version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
  } catch { /* unknown version: part of the key as '' */ }
  return crypto.createHash('sha256').update([cpu, caches, version, ...lib].join('\n')).digest('hex').slice(0, 16);
}

/** Runs the probe in a child process under one setting. */
export function tryCpuSetting(setting: CpuSetting, cwd: string): CpuTrial {
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' };
  for (const v of USER_VARIABLES) delete env[v];
  Object.assign(env, setting.env);
  const r = spawnSync(process.execPath, ['-e', PROBE_JS], { cwd, env, encoding: 'utf8', timeout: 180_000, maxBuffer: 4 << 20 });
  const ok = r.status === 0 && r.stdout.includes('@@OK');
  const outcome = ok ? 'ran' : r.signal ? `killed by ${r.signal}` : r.error ? r.error.message : `exit code ${r.status}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`;
  return { label: setting.label, ok, outcome, ms: Date.now() - t0 };
}

function readRecord(file: string, fingerprint: string): CpuVerdict | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuVerdict;
    return v.fingerprint === fingerprint && Array.isArray(v.trials) ? { ...v, source: 'recorded' } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The verdict known without probing: the user's own variables (those pixdex did not set), else the
 * record when it matches this CPU and build (unless `reprobe`), else undefined.
 */
function knownVerdict(pkgDir: string, fingerprint: string, opts: { reprobe?: boolean }): CpuVerdict | undefined {
  const user = Object.fromEntries(USER_VARIABLES.filter((v) => process.env[v] !== undefined && process.env[v] !== ours[v]).map((v) => [v, process.env[v]!]));
  if (Object.keys(user).length) {
    return { fingerprint, setting: { label: `your own ${Object.entries(user).map(([k, v]) => `${k}=${v}`).join(' ')}`, env: {} }, trials: [], at: new Date().toISOString(), source: 'user' };
  }
  return opts.reprobe ? undefined : readRecord(path.join(pkgDir, 'deps', CPU_RECORD), fingerprint);
}

/**
 * The verdict for this machine: the user's variables, the record when it matches this CPU and
 * build, or a fresh probe (recorded when `deps/` is writable). `reprobe` ignores the record.
 */
export function cpuVerdict(pkgDir: string, opts: { reprobe?: boolean } = {}): CpuVerdict {
  const fingerprint = cpuFingerprint(pkgDir);
  const known = knownVerdict(pkgDir, fingerprint, opts);
  if (known) return known;
  const file = path.join(pkgDir, 'deps', CPU_RECORD);
  const trials: CpuTrial[] = [];
  let setting: CpuSetting | undefined;
  for (const candidate of CPU_SETTINGS) {
    const trial = tryCpuSetting(candidate, pkgDir);
    trials.push(trial);
    if (trial.ok) {
      setting = candidate;
      break;
    }
    // A load failure (not a crash) is the same under every setting: no point trying the others.
    if (!trial.outcome.startsWith('killed by')) break;
  }
  const verdict: CpuVerdict = { fingerprint, setting, trials, at: new Date().toISOString(), source: 'probed' };
  try {
    fs.writeFileSync(`${file}.tmp-${process.pid}`, `${JSON.stringify({ ...verdict, source: undefined }, null, 2)}\n`);
    fs.renameSync(`${file}.tmp-${process.pid}`, file);
  } catch { /* read-only install: the probe runs again next time */ }
  return verdict;
}

/** What `prepareTensorflowCpu` did: a note for the backend's reason, or why tensorflow cannot run. */
export type CpuPreparation = { ok: true; note?: string } | { ok: false; failure: string };

let prepared: CpuPreparation | undefined;

/**
 * Applies this machine's setting to the process environment before TensorFlow loads. Call it on
 * the main thread (the backend does; so does the embedding pool before it starts workers). In a
 * worker thread it only checks that the main thread did, and refuses tensorflow otherwise.
 */
export function prepareTensorflowCpu(): CpuPreparation {
  if (prepared) return prepared;
  const pkgDir = tfjsNodeDir();
  if (!pkgDir) return { ok: true };
  const verdict = atImport ?? cpuVerdict(pkgDir);
  const crashed = verdict.trials.filter((t) => !t.ok).map((t) => `${t.label}: ${t.outcome}`);
  let result: CpuPreparation;
  if (!verdict.setting) {
    result = { ok: false, failure: `TensorFlow did not run a small MobileNet on this CPU under any kernel setting (${crashed.join('; ')})` };
  } else if (isMainThread) {
    // Written only when not already set at import (`applyTensorflowEnvironment`): here only after
    // a fresh probe, whose seconds of child processes the image threads have finished their work in.
    setEnv(verdict.setting.env);
    result = { ok: true, note: crashed.length || verdict.source === 'user' ? `${verdict.setting.label}${crashed.length ? ` (${crashed.join('; ')})` : ''}` : undefined };
  } else {
    const missing = Object.entries(verdict.setting.env).filter(([k, v]) => process.env[k] !== v);
    result = missing.length
      ? { ok: false, failure: `this CPU needs ${missing.map(([k, v]) => `${k}=${v}`).join(' ')} set before TensorFlow loads, and this worker thread was started without it` }
      : { ok: true, note: crashed.length ? verdict.setting.label : undefined };
  }
  prepared = result;
  return result;
}

/** Variables pixdex itself set (so they are not mistaken for the user's own). */
const ours: Record<string, string> = {};

/** Writes only the variables whose value differs: each write may move the environment under native readers. */
function setEnv(vars: Record<string, string>): void {
  for (const [k, v] of Object.entries(vars)) {
    ours[k] = v;
    if (process.env[k] !== v) process.env[k] = v;
  }
}

let applied = false;
/** The verdict `applyTensorflowEnvironment` found at import (main thread), kept for `prepareTensorflowCpu`. */
let atImport: CpuVerdict | undefined;

/**
 * Sets TensorFlow's process environment once, on the main thread, when pixdex's backend module is
 * imported, before this process does any image work: TF_CPP_MIN_LOG_LEVEL=2 (TensorFlow's C++
 * start-up banner, unless the user set it) and this machine's recorded CPU setting (a file read,
 * never a probe; without a record the probe runs at TensorFlow's first use, `prepareTensorflowCpu`).
 * Writing the environment later races with native threads that read it: libvips (sharp) calls
 * getenv on its own threads for every image, and glibc's setenv may move the environment array
 * under them. Measured: an engine opened on tensorflow while sharp decoded died of SIGSEGV in
 * getenv("PS_MAX_COORD") (vips_max_coord_get) once in 169 runs, the main thread loading tfjs-node
 * right after setting ONEDNN_MAX_CPU_ISA; CI saw the same in test/instance.test.ts.
 */
export function applyTensorflowEnvironment(): void {
  if (applied || !isMainThread) return;
  applied = true;
  setEnv({ TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' });
  const pkgDir = tfjsNodeDir();
  if (!pkgDir) return;
  atImport = knownVerdict(pkgDir, cpuFingerprint(pkgDir), {});
  if (atImport?.setting) setEnv(atImport.setting.env);
}
