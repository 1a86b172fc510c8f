/**
 * Chooses the tfjs backend. Priority (for `auto`):
 *
 * | backend    | package                        | speed (MobileNetV2, 2 cores)       |
 * |------------|--------------------------------|------------------------------------|
 * | tensorflow | @tensorflow/tfjs-node (optional) | 60–75 img/s, native training     |
 * | wasm       | @tensorflow/tfjs-backend-wasm  | ~30 img/s per thread, SIMD         |
 * | cpu        | @tensorflow/tfjs (pure JS)     | ~1 img/s: only when nothing else loads |
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import type { BackendChoice, BackendName } from './config.ts';
import { BackendError } from './errors.ts';
import { applyTensorflowEnvironment, prepareTensorflowCpu } from './tensorflow-cpu.ts';

const require = createRequire(import.meta.url);

// TensorFlow's environment, set now, before this process decodes any image: a later write races
// with sharp's threads reading the environment (a SIGSEGV in getenv; src/tensorflow-cpu.ts).
applyTensorflowEnvironment();

/** The backend that runs, and why it was chosen. */
export interface BackendInfo {
  name: BackendName;
  reason: string;
}

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

/** Which of TensorFlow's CPU kernels run here, when it is not the default (src/tensorflow-cpu.ts). */
let cpuNote: string | undefined;

/** Loads tfjs-node if it is installed and built; returns the failure message otherwise. */
function loadTensorflow(): string | undefined {
  // TF_CPP_MIN_LOG_LEVEL (level 2: warnings and errors, not the start-up banner) and the recorded
  // CPU setting were set at import (`applyTensorflowEnvironment`). Before TensorFlow loads: kernels
  // that crash this CPU are never dispatched to.
  const cpu = prepareTensorflowCpu();
  if (!cpu.ok) return cpu.failure;
  cpuNote = cpu.note;
  try {
    require('@tensorflow/tfjs-node');
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'MODULE_NOT_FOUND' ? '@tensorflow/tfjs-node is not installed' : `@tensorflow/tfjs-node failed to load: ${e.message.split('\n')[0]}`;
  }
}

async function loadWasm(): Promise<string | undefined> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return undefined;
  } catch (err) {
    return `@tensorflow/tfjs-backend-wasm failed to load: ${(err as Error).message}`;
  }
}

type ProcessEvent = 'uncaughtException' | 'unhandledRejection';
const PROCESS_EVENTS: ProcessEvent[] = ['uncaughtException', 'unhandledRejection'];

/**
 * The emscripten module of tfjs-backend-wasm adds process-wide handlers when it starts that
 * rethrow every uncaught error and unhandled rejection (printing its whole minified source).
 * pixdex handles its own errors, so those handlers are removed again.
 */
async function withoutNewProcessHandlers<T>(run: () => Promise<T>): Promise<T> {
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set<unknown>(process.listeners(e as 'uncaughtException'))]));
  try {
    return await run();
  } finally {
    for (const event of PROCESS_EVENTS) {
      for (const listener of process.listeners(event as 'uncaughtException')) {
        if (!before.get(event)!.has(listener)) process.removeListener(event as 'uncaughtException', listener);
      }
    }
  }
}

async function activate(name: BackendName): Promise<boolean> {
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

async function choose(choice: BackendChoice): Promise<BackendInfo> {
  const notes: string[] = [];
  if (choice === 'tensorflow' || choice === 'auto') {
    const failure = loadTensorflow();
    if (!failure && (await activate('tensorflow'))) {
      const reason = choice === 'auto' ? 'tfjs-node loaded (fastest)' : 'requested';
      return { name: 'tensorflow', reason: cpuNote ? `${reason}; ${cpuNote}` : reason };
    }
    notes.push(failure ?? 'tensorflow backend failed to initialise');
    if (choice === 'tensorflow') {
      throw new BackendError(`The tensorflow backend was requested but ${notes[0]}. Run \`npm run setup:tensorflow\`, or use PIXDEX_BACKEND=wasm.`);
    }
  }
  if (choice === 'wasm' || choice === 'auto') {
    const failure = await loadWasm();
    if (!failure && (await withoutNewProcessHandlers(() => activate('wasm')))) {
      return { name: 'wasm', reason: choice === 'auto' ? `wasm (SIMD); ${notes.join('; ')}` : 'requested' };
    }
    notes.push(failure ?? 'wasm backend failed to initialise');
    if (choice === 'wasm') throw new BackendError(`The wasm backend was requested but ${notes.at(-1)}.`);
  }
  if (await activate('cpu')) {
    return { name: 'cpu', reason: choice === 'auto' ? `pure-JS fallback, ~30x slower than wasm: ${notes.join('; ')}` : 'requested' };
  }
  throw new BackendError(`No tfjs backend could be initialised: ${notes.join('; ')}`);
}

/**
 * Initialises the backend once per thread and returns it. A second call with another explicit
 * choice than the one running is refused (tfjs has one global backend per thread).
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (current) {
    if (choice !== 'auto' && choice !== current.name) {
      throw new BackendError(`Backend ${current.name} is already running in this thread; cannot switch to ${choice}.`);
    }
    return current;
  }
  pending ??= choose(choice).then((info) => {
    current = info;
    return info;
  }).finally(() => {
    pending = undefined;
  });
  return pending;
}

/** The running backend, if one was initialised. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

export { tf };
