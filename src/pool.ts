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
