/**
 * The `pixdex` CLI with kill points, for test/crash.test.ts. It SIGKILLs itself at a chosen
 * point of an index run (inside an LMDB write transaction, inside a snapshot) and announces each
 * inference batch on stderr, so that the test can kill it from outside in mid-inference.
 *
 *   node --import tsx test/helpers/crash-child.ts <point> <pixdex args...>
 *
 * point (N = the N-th occurrence in this run):
 *   none               run normally
 *   write:N            the N-th batch transaction, after all its writes, before it commits
 *   write-mid:N:K      the N-th batch transaction, right after its K-th vector is written
 *   serialize:N        right after the N-th HNSW serialisation, before it is written to LMDB
 *   snapshot:N         the N-th snapshot transaction, after its writes, before it commits
 *   final-snapshot     the snapshot transaction at the end of the run (after pruning)
 * stderr: "@@embed <n>" before each inference batch, "@@write <n> <vectors>" and "@@snapshot <n>"
 * before those transactions commit, "@@kill <point>" just before dying.
 */
import fs from 'node:fs';
import { AnnIndex } from '../../src/ann.ts';
import { Describer } from '../../src/describe.ts';
import { Records } from '../../src/store/records.ts';
import { Store } from '../../src/store/lmdb.ts';
import { main } from '../../cli/main.ts';

const [point = 'none', ...args] = process.argv.slice(2);
const [kind, n1, n2] = point.split(':');
const nth = Number(n1 ?? 1);
const kth = Number(n2 ?? 1);

function say(line: string): void {
  fs.writeSync(2, `@@${line}\n`);
}

function die(): never {
  say(`kill ${point}`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

// Inference batches, announced for external kills.
let embeds = 0;
const embedPixels = Describer.prototype.embedPixels;
Describer.prototype.embedPixels = function (this: Describer, ...a: Parameters<Describer['embedPixels']>) {
  say(`embed ${++embeds}`);
  return embedPixels.apply(this, a);
};

// Batch transactions are the outermost writes that store vectors.
let depth = 0;
let vectorsInTxn = 0;
let batchTxns = 0;
let snapshots = 0;
let pruned = false;
const write = Store.prototype.write;
Store.prototype.write = function <T>(this: Store, fn: () => T): T {
  return write.call(this, () => {
    if (depth === 0) vectorsInTxn = 0;
    depth++;
    try {
      const result = fn();
      if (depth === 1 && vectorsInTxn > 0) {
        say(`write ${batchTxns} ${vectorsInTxn}`);
        if (kind === 'write' && batchTxns === nth) die();
      }
      return result;
    } finally {
      depth--;
    }
  }) as T;
};

const putVector = Store.prototype.putVector;
Store.prototype.putVector = function (this: Store, ...a: Parameters<Store['putVector']>) {
  putVector.apply(this, a);
  if (++vectorsInTxn === 1) batchTxns++;
  if (kind === 'write-mid' && batchTxns === nth && vectorsInTxn === kth) die();
};

// A snapshot is written inside its transaction; dying right after its writes, before the commit.
const writeSnapshot = Store.prototype.writeSnapshot;
Store.prototype.writeSnapshot = function (this: Store, ...a: Parameters<Store['writeSnapshot']>) {
  const meta = writeSnapshot.apply(this, a);
  say(`snapshot ${++snapshots}`);
  if ((kind === 'snapshot' && snapshots === nth) || (kind === 'final-snapshot' && pruned)) die();
  return meta;
};

let serialized = 0;
const toBytes = AnnIndex.prototype.toBytes;
AnnIndex.prototype.toBytes = function (this: AnnIndex) {
  const bytes = toBytes.call(this);
  if (kind === 'serialize' && ++serialized === nth) die();
  return bytes;
};

// Pruning (files gone from the scanned folders) lists the indexed paths under each folder: the
// only snapshot after that is the final one.
const pathsUnder = Records.prototype.pathsUnder;
Records.prototype.pathsUnder = function (this: Records, folder: string) {
  pruned = true;
  return pathsUnder.call(this, folder);
};

process.exitCode = await main(args);
