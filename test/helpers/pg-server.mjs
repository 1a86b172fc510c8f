// A real PostgreSQL with pgvector for the tests: PGlite (PostgreSQL compiled to WebAssembly) with
// its `vector` extension, served over the wire protocol by pglite-socket, so pixdex reaches it with
// the ordinary `pg` client as it would a PostgreSQL server. Run as its own process (pixdex's store
// blocks its thread while it waits for the database). Prints `{"port":N}` once listening.
// Usage: node test/helpers/pg-server.mjs [--port N] [--dir DIR] (DIR: data kept on disk; default in memory)
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const db = await PGlite.create(arg('dir') ?? 'memory://', { extensions: { vector } });
// Several clients (pixdex processes, each one connection): pglite-socket runs one statement at a
// time on its single session and keeps a client's transaction to itself until it ends.
const server = new PGLiteSocketServer({ db, port: Number(arg('port') ?? 0), host: '127.0.0.1', maxConnections: 32 });
await server.start();
process.stdout.write(JSON.stringify({ port: Number(server.getServerConn().split(':').pop()) }) + '\n');
const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
