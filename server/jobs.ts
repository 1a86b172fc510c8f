/**
 * Index jobs: `POST /api/index` runs `engine.index` in the background over folders the server
 * can read, one job at a time, and `GET /api/index/:jobId` reports its progress, so the web page
 * can show a live progress bar. The passes of `pixdex serve --watch` run as jobs too (`origin:
 * "watch"`), taking turns with requested jobs. Jobs live in memory: a restart forgets them (the
 * store keeps what was indexed, and indexing again skips it).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import express, { type Express, type RequestHandler } from 'express';
import type { Engine, IndexOptions, IndexProgress, IndexSummary } from '../src/engine.ts';
import { InvalidParameterError, NotFoundError, PixdexError } from '../src/errors.ts';
import { VERBS, jobId as jobIdSchema, parseParam, parseParams } from '../src/contracts/verbs.ts';
import { describeFsError } from '../indexer/scan.ts';
import { HttpError } from './errors.ts';

/** `running` until `engine.index` settles; `cancelled` when stopped early (DELETE or shutdown). */
export type IndexJobState = 'running' | 'done' | 'failed' | 'cancelled';

/** What `GET /api/index/:jobId` answers. */
export interface IndexJobStatus {
  jobId: string;
  /** `request`: POST /api/index; `watch`: a pass of the server's folder watcher. */
  origin: 'request' | 'watch';
  state: IndexJobState;
  paths: string[];
  labelFromFolder: boolean;
  /** Files handled so far (skipped unchanged files count as done). */
  done: number;
  /** Files found by the scan; null until the first batch is reported. */
  total: number | null;
  /** Images per second over the files that needed work. */
  rate: number;
  etaSeconds: number;
  /** Epoch milliseconds. */
  startedAt: number;
  finishedAt: number | null;
  /** Counts so far, then the final summary (`errors` lists at most MAX_REPORTED_ERRORS). */
  summary: IndexSummary | null;
  /** Trouble that did not stop the run (e.g. workers that could not start). */
  warnings: string[];
  /** Why a `failed` job failed. */
  error: { code: string; message: string } | null;
  cancelRequested: boolean;
}

/** Refused when a job is running: the route answers 409 with this code. */
export const JOB_RUNNING = 'INDEX_JOB_RUNNING';
/** Finished jobs kept for GET (oldest dropped first): enough for a page reload or two. */
const KEEP_FINISHED = 20;
/** Per-file errors in a status: the count is in `summary.failed`, the full list in the server log. */
const MAX_REPORTED_ERRORS = 100;
/** A body names paths, not data: 64 KiB is plenty. */
const JSON_LIMIT = '64kb';

/** What a job runs: by default `engine.index`; a watch pass runs its own (indexer/watch-pass.ts). */
export type JobWork<S extends IndexSummary = IndexSummary> = (options: IndexOptions) => Promise<S>;

interface Job {
  status: IndexJobStatus;
  controller: AbortController;
  finished: Promise<void>;
}

/** The jobs of one app: at most one running, the last KEEP_FINISHED kept. */
export class IndexJobs {
  private readonly jobs = new Map<string, Job>();
  private running?: Job;

  constructor(
    private readonly engine: Engine,
    private readonly log: (line: string) => void,
  ) {}

  /** The running job, if any. */
  get current(): IndexJobStatus | undefined {
    return this.running?.status;
  }

  /** Starts a job (by default `engine.index` over `paths`); the caller has checked `current` and the paths. */
  start(paths: string[], labelFromFolder: boolean, work?: JobWork, origin: IndexJobStatus['origin'] = 'request'): IndexJobStatus {
    if (this.running) throw new Error('an index job is already running');
    const status: IndexJobStatus = {
      jobId: randomBytes(8).toString('hex'),
      origin,
      state: 'running',
      paths,
      labelFromFolder,
      done: 0,
      total: null,
      rate: 0,
      etaSeconds: 0,
      startedAt: Date.now(),
      finishedAt: null,
      summary: null,
      warnings: [],
      error: null,
      cancelRequested: false,
    };
    const controller = new AbortController();
    const onProgress = (p: IndexProgress): void => {
      status.done = p.done;
      status.total = p.total;
      status.rate = Math.round(p.rate * 10) / 10;
      status.etaSeconds = Math.round(p.etaSeconds);
      status.summary = capErrors(p.summary);
    };
    const options: IndexOptions = { labelFromFolder, signal: controller.signal, onProgress, onWarning: (m) => status.warnings.push(m) };
    const finished = (work ? work(options) : this.engine.index(paths, options))
      .then(
        (summary) => {
          status.summary = capErrors(summary);
          status.total = summary.total;
          if (!summary.interrupted) status.done = summary.total;
          status.etaSeconds = 0;
          status.state = summary.interrupted ? 'cancelled' : 'done';
          for (const e of summary.errors) this.log(`index job ${status.jobId}: ${e.path}: ${e.error}`);
        },
        (err: unknown) => {
          status.state = 'failed';
          status.error = err instanceof PixdexError
            ? { code: err.code, message: err.message }
            : { code: 'INTERNAL', message: 'Internal error; the server log has the details' };
          this.log(`error: index job ${status.jobId}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        },
      )
      .finally(() => {
        status.finishedAt = Date.now();
        this.running = undefined;
        this.prune();
      });
    const job: Job = { status, controller, finished };
    this.jobs.set(status.jobId, job);
    this.running = job;
    return status;
  }

  /**
   * Runs one pass of the server's watcher as a job once no other job runs (the watcher and POST
   * /api/index take turns, never write at once), and resolves with its summary. Cancelling the job
   * (DELETE) or aborting `signal` stops it after its batches in flight.
   */
  async runWatchPass<S extends IndexSummary>(roots: string[], signal: AbortSignal, work: JobWork<S>): Promise<S> {
    while (this.running) await this.running.finished;
    let result: S | undefined;
    let failure: unknown;
    const status = this.start(roots, false, async (o) => {
      try {
        return (result = await work({ ...o, signal: AbortSignal.any([o.signal!, signal]) }));
      } catch (err) {
        failure = err;
        throw err;
      }
    }, 'watch');
    await this.jobs.get(status.jobId)?.finished;
    if (!result) throw failure;
    return result;
  }

  /** A job by id, or NotFoundError. */
  get(jobId: string): IndexJobStatus {
    const job = this.jobs.get(jobId);
    if (!job) throw new NotFoundError(`No index job ${JSON.stringify(jobId)}: jobs are kept in memory until the server restarts (the last ${KEEP_FINISHED}). GET /api/index lists them.`);
    return job.status;
  }

  /** All kept jobs, newest first. */
  list(): IndexJobStatus[] {
    return [...this.jobs.values()].map((j) => j.status).reverse();
  }

  /** Asks a running job to stop after its batches in flight; a finished job is left as it is. */
  cancel(jobId: string): IndexJobStatus {
    const status = this.get(jobId);
    const job = this.jobs.get(jobId)!;
    if (status.state === 'running') {
      status.cancelRequested = true;
      job.controller.abort();
    }
    return status;
  }

  /** Cancels the running job and waits until it has stopped (call before `engine.close()`). */
  async stop(): Promise<void> {
    const job = this.running;
    if (!job) return;
    job.status.cancelRequested = true;
    job.controller.abort();
    await job.finished;
  }

  private prune(): void {
    const finished = [...this.jobs.values()].filter((j) => j.status.state !== 'running');
    for (const j of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.jobs.delete(j.status.jobId);
  }
}

/** Options of `mountIndexJobs`. */
export interface IndexJobRouteOptions {
  /** The app's bearer-token check: starting and cancelling jobs change the index. */
  auth: RequestHandler;
  /** Aborted on shutdown: the running job is cancelled. */
  signal?: AbortSignal;
  log: (line: string) => void;
}

/**
 * Adds the index-job routes to `app` (on the app itself, so the OpenAPI test sees them):
 * `GET /api/index`, `POST /api/index`, `GET /api/index/:jobId`, `DELETE /api/index/:jobId`.
 */
export function mountIndexJobs(app: Express, engine: Engine, o: IndexJobRouteOptions): IndexJobs {
  const jobs = new IndexJobs(engine, o.log);
  o.signal?.addEventListener('abort', () => void jobs.stop(), { once: true });

  app.get('/api/index', (_req, res) => {
    res.json({ jobs: jobs.list() });
  });

  app.post('/api/index', o.auth, express.json({ limit: JSON_LIMIT }), async (req, res) => {
    // JSON only: a cross-site form cannot send it without a CORS preflight, which this server refuses.
    if (!req.is('application/json')) {
      throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Expected a JSON body {"paths": ["/absolute/folder"], "labelFromFolder": false} with Content-Type application/json');
    }
    const { paths, labelFromFolder } = parseBody(req.body);
    for (const p of paths) await checkReadable(p);
    const running = jobs.current;
    if (running) {
      const what = running.origin === 'watch' ? 'a pass of the folder watcher, usually over in seconds' : `${running.done}/${running.total ?? '?'} files`;
      throw new HttpError(JOB_RUNNING, `Index job ${running.jobId} is still running (${what}); wait for it or cancel it with DELETE /api/index/${running.jobId}`);
    }
    const status = jobs.start(paths, labelFromFolder);
    res.status(202).location(`/api/index/${status.jobId}`).json({ jobId: status.jobId, statusUrl: `/api/index/${status.jobId}` });
  });

  app.get('/api/index/:jobId', (req, res) => {
    res.json(jobs.get(jobIdParam(req.params.jobId)));
  });

  app.delete('/api/index/:jobId', o.auth, (req, res) => {
    res.json(jobs.cancel(jobIdParam(req.params.jobId)));
  });

  return jobs;
}

function parseBody(body: unknown): { paths: string[]; labelFromFolder: boolean } {
  const { paths, labelFromFolder } = parseParams(VERBS['index-job'], body, { body: 'a JSON object {"paths": [...], "labelFromFolder"?: boolean}' });
  return { paths: [...new Set(paths.map((p) => path.resolve(p.trim())))], labelFromFolder };
}

/** A path the server cannot read is refused before a job starts: 404 when missing, 400 otherwise. */
async function checkReadable(p: string): Promise<void> {
  try {
    await fs.access(p, fs.constants.R_OK);
  } catch (err) {
    const why = describeFsError(err);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`No folder or file ${p} on the server: check the path (it is read by the server, not uploaded from this computer)`);
    }
    throw new InvalidParameterError(`Cannot read ${p}: ${why}`);
  }
}

function jobIdParam(v: unknown): string {
  return parseParam(jobIdSchema, 'jobId', v);
}

function capErrors(s: IndexSummary): IndexSummary {
  return { ...s, errors: s.errors.slice(0, MAX_REPORTED_ERRORS) };
}
