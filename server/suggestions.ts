/**
 * Label suggestions over HTTP (label propagation): list, propagate, accept, reject. Suggestions
 * are kept apart from the labels a person set; accepting one makes it a label.
 */
import type { Express, RequestHandler } from 'express';
import type { Engine } from '../src/engine.ts';
import { intParam, invalidParameter, numberParam } from '../src/errors.ts';

export interface SuggestionRouteOptions {
  /** Token check for the mutating routes. */
  auth: RequestHandler;
  /** Parses an image id path parameter. */
  idParam: (v: unknown) => number;
  thumbnailUrl: (id: number) => string;
}

/** Adds GET /api/suggestions, POST /api/suggestions/propagate, POST /api/suggestions/:id/accept|reject. */
export function mountSuggestions(app: Express, engine: Engine, o: SuggestionRouteOptions): void {
  app.get('/api/suggestions', (_req, res) => {
    res.json({ suggestions: engine.suggestions().map((s) => ({ ...s, thumbnailUrl: o.thumbnailUrl(s.id) })) });
  });

  app.post('/api/suggestions/propagate', o.auth, (req, res) => {
    const q = req.query;
    const k = q.k === undefined ? 10 : intParam('k', q.k, 1, 1000);
    const minConfidence = q.minConfidence === undefined ? 0.8 : numberParam('minConfidence', q.minConfidence, 0, 1);
    if (q.apply !== undefined && q.apply !== 'true' && q.apply !== 'false') throw invalidParameter('apply', 'true or false', q.apply);
    res.json(engine.propagate({ k, minConfidence, apply: q.apply === 'true' }));
  });

  app.post('/api/suggestions/:id/accept', o.auth, (req, res) => {
    res.json(engine.acceptSuggestion(o.idParam(req.params.id)));
  });

  app.post('/api/suggestions/:id/reject', o.auth, (req, res) => {
    res.json(engine.rejectSuggestion(o.idParam(req.params.id)));
  });
}
