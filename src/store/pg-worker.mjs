// The PostgreSQL side of the synchronous bridge (src/store/pg-bridge.ts): one `pg` Client in a
// worker thread. Each request is answered on the port, then the shared flag is raised, so the
// caller blocked in Atomics.wait reads the answer with receiveMessageOnPort. Plain JavaScript: it
// imports nothing of pixdex.
import { workerData } from 'node:worker_threads';
import pg from 'pg';

const { url, port, flag } = workerData;
const state = new Int32Array(flag);
// int8 (journal sequence numbers, counts) as numbers: pixdex keeps them below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));
const client = new pg.Client({ connectionString: url, application_name: 'pixdex' });
let ready;
let broken;
client.on('error', (err) => { broken = err; });

function answer(message) {
  port.postMessage(message);
  Atomics.store(state, 0, 1);
  Atomics.notify(state, 0);
}

port.on('message', async (req) => {
  try {
    if (broken) throw broken;
    // literals are quoted for standard_conforming_strings (pg-bridge.ts): never trust the server's default
    ready ??= client.connect().then(() => client.query('SET standard_conforming_strings = on'));
    await ready;
    if (req.close) {
      await client.end();
      answer({ rows: [] });
      port.close();
      return;
    }
    // Simple protocol (no parameters): one message per statement, so a server that multiplexes
    // connections onto one session (pglite-socket) cannot interleave another client's Parse/Bind.
    const res = await client.query(req.sql);
    const last = Array.isArray(res) ? res[res.length - 1] : res;
    answer({ rows: last.rows, count: last.rowCount });
  } catch (err) {
    answer({ error: { message: err?.message ?? String(err), code: err?.code, connection: !err?.code || String(err.code).startsWith('08') || err.code === 'ECONNREFUSED' } });
  }
});
