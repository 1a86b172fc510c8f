/**
 * Child of test/tensorflow-cpu.test.ts: imports pixdex's backend, notes TensorFlow's variables as
 * the import left them, then counts every environment write while the tensorflow backend starts.
 * Prints one JSON line.
 */
import { initBackend } from '../../src/backend.ts';

const VARS = ['ONEDNN_MAX_CPU_ISA', 'TF_ENABLE_ONEDNN_OPTS', 'TF_CPP_MIN_LOG_LEVEL'];
const atImport = Object.fromEntries(VARS.map((v) => [v, process.env[v] ?? null]));
const writes: string[] = [];
const env = process.env;
process.env = new Proxy(env, {
  set(target, key, value) {
    writes.push(String(key));
    return Reflect.set(target, key, value);
  },
  deleteProperty(target, key) {
    writes.push(`delete ${String(key)}`);
    return Reflect.deleteProperty(target, key);
  },
});
const info = await initBackend('tensorflow');
console.log(JSON.stringify({ atImport, writes, backend: info.name }));
