/**
 * OpenCV in WebAssembly (`@techstark/opencv-js` 4.5.2): loaded once per thread (the main thread
 * and every worker thread load their own copy, ~1.5 s and ~60 MB each), then used synchronously.
 *
 * Traps of this build, handled here:
 * - The module object has a `then` method: awaiting it, or resolving a promise with it, loops
 *   forever. `loadOpenCv()` resolves with nothing and `opencv()` hands the object out afterwards.
 * - Loading it in Node installs process-wide `uncaughtException` (rethrow) and
 *   `unhandledRejection` (`abort()`, which kills the module) listeners. They are removed again, so
 *   loading OpenCV does not change how the process handles its own errors.
 * - It reads and writes a global `Module` (Emscripten's configuration object): a pre-existing one
 *   is set aside while it loads and put back afterwards.
 * - WebAssembly memory is not garbage collected: every `Mat`, vector or algorithm object created
 *   through it must be `.delete()`d (callers do so in `finally`).
 */
import { createRequire } from 'node:module';
import { BackendError } from '../errors.ts';

/** The OpenCV.js module object (untyped: its bundled typings do not describe this build). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OpenCv = any;

/** How long the WebAssembly runtime may take to start before loading fails, ms. */
const LOAD_TIMEOUT_MS = 60_000;
const POLL_MS = 10;

let module: OpenCv | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads OpenCV.js into this thread and waits until it can be used (`cv.Mat` exists). Concurrent
 * and repeated calls share one load; a failed load stays failed for the thread (the module cannot
 * be initialised twice). Throws `BackendError` (BACKEND_UNAVAILABLE) when the package is missing
 * or its runtime aborts or does not start within a minute.
 */
export function loadOpenCv(): Promise<void> {
  loading ??= load();
  return loading;
}

/** The loaded OpenCV module; throws if `loadOpenCv()` has not completed in this thread. */
export function opencv(): OpenCv {
  if (!module) throw new BackendError('OpenCV.js is not loaded in this thread: await loadOpenCv() before extracting or verifying local features');
  return module;
}

/** Whether `opencv()` can be called in this thread. */
export function openCvLoaded(): boolean {
  return module !== undefined;
}

async function load(): Promise<void> {
  const started = performance.now();
  let aborted: string | undefined;
  let cv: OpenCv;
  const g = globalThis as { Module?: unknown };
  const hadModule = Object.hasOwn(g, 'Module');
  const previousModule = g.Module;
  const emitter = process as NodeJS.EventEmitter;
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((event) => emitter.listeners(event));
  try {
    // Emscripten takes its configuration from a global `Module`: hook `onAbort` so that a failed
    // WebAssembly start is reported instead of waited for.
    g.Module = { onAbort: (what: unknown) => { aborted = String(what); } };
    cv = createRequire(import.meta.url)('@techstark/opencv-js');
  } catch (err) {
    throw new BackendError(`OpenCV.js (@techstark/opencv-js) cannot be loaded: ${err instanceof Error ? err.message : String(err)}. Local features need it: reinstall pixdex's dependencies (npm ci).`, { cause: err });
  } finally {
    events.forEach((event, i) => {
      for (const listener of emitter.listeners(event)) {
        if (!before[i].includes(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    });
    if (hadModule) g.Module = previousModule;
    else delete g.Module;
  }
  // Never `await cv` (it has a `then`): poll for the runtime instead.
  while (!cv.Mat) {
    if (aborted !== undefined) throw new BackendError(`OpenCV.js failed to start its WebAssembly runtime: ${aborted}`);
    if (performance.now() - started > LOAD_TIMEOUT_MS) throw new BackendError(`OpenCV.js did not start its WebAssembly runtime within ${LOAD_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  module = cv;
}
