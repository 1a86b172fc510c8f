/**
 * Child process for the backend parity test: embeds the given image files on one backend and
 * prints `{ backend, vectors: number[][] }` as JSON (tfjs has one backend per thread, so each
 * backend gets its own process).
 *   node --import tsx test/helpers/embed-child.ts <backend> <modelsDir> <file>...
 * EMBED_BACKBONE picks the backbone (default mobilenet_v2).
 */
import fs from 'node:fs';
import { initBackend } from '../../src/backend.ts';
import { Backbone } from '../../src/models/backbone.ts';
import { decodeImage } from '../../src/image/decode.ts';

const [backend, modelsDir, ...files] = process.argv.slice(2);
const info = await initBackend(backend as 'wasm');
const model = await Backbone.load(modelsDir, process.env.EMBED_BACKBONE ?? 'mobilenet_v2');
const pixels = await Promise.all(files.map(async (f) => (await decodeImage(fs.readFileSync(f), { size: 224, maxInputPixels: 1e8 })).pixels));
const vectors = await model.pooledVectors(pixels);
process.stdout.write(JSON.stringify({ backend: info.name, vectors: vectors.map((v) => Array.from(v)) }));
