/** Bounded concurrency for async work (file reads and sharp decodes run on libuv threads). */

/**
 * Maps `items` through `fn` with at most `limit` calls in flight; results keep input order.
 * A rejected call becomes `{ error }` in its slot instead of failing the whole map.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<Array<{ value: R } | { error: unknown }>> {
  const out = new Array<{ value: R } | { error: unknown }>(items.length);
  let cursor = 0;
  const worker = async (): Promise<void> => {
    while (cursor < items.length) {
      const i = cursor++;
      try {
        out[i] = { value: await fn(items[i], i) };
      } catch (error) {
        out[i] = { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Runs batches through two stages: `prepare` one batch at a time (reading files), then `run` it
 * (embedding and writing) with at most `parallelism` runs in flight, so the next batch is read
 * while earlier ones are embedded. `stop` is asked before each batch. A run that rejects rejects
 * the whole pipeline once the runs in flight have ended.
 */
export async function pipeline<B, R>(batches: Iterable<B>, parallelism: number, prepare: (batch: B) => Promise<R>, run: (batch: B, prepared: R) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  const inflight = new Set<Promise<void>>();
  for (const batch of batches) {
    if (stop()) break;
    const prepared = await prepare(batch);
    const task = run(batch, prepared);
    inflight.add(task);
    void task.then(
      () => inflight.delete(task),
      () => inflight.delete(task),
    );
    if (inflight.size >= parallelism) await Promise.race(inflight).catch(() => undefined);
  }
  await Promise.all(inflight);
}

/**
 * Blocks this (worker) thread until `gate[0]` reaches `turn`: threads started together run a
 * step that must not overlap (TensorFlow's process-wide initialisation) in turn order, while
 * everything before and after it runs side by side. Each turn must end with `passTurn`. A
 * thread blocked here can still be terminated (V8 wakes a waiting thread for interrupts).
 */
export function awaitTurn(gate: Int32Array, turn: number): void {
  for (let seen = Atomics.load(gate, 0); seen < turn; seen = Atomics.load(gate, 0)) Atomics.wait(gate, 0, seen, 1000);
}

/** Ends this thread's turn (after `awaitTurn`), whether its step succeeded or not. */
export function passTurn(gate: Int32Array): void {
  Atomics.add(gate, 0, 1);
  Atomics.notify(gate, 0);
}
