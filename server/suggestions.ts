/**
 * Label suggestions over HTTP (label propagation): list, propagate, accept, reject. Suggestions
 * are kept apart from the labels a person set; accepting one makes it a label.
 */
import type { Express, RequestHandler } from 'express';
import type { Engine } from '../src/engine.ts';
import { VERBS, parseParams } from '../src/contracts/verbs.ts';

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
    res.json(engine.propagate(parseParams(VERBS.propagate, req.query)));
  });

  app.post('/api/suggestions/:id/accept', o.auth, (req, res) => {
    res.json(engine.acceptSuggestion(o.idParam(req.params.id)));
  });

  app.post('/api/suggestions/:id/reject', o.auth, (req, res) => {
    res.json(engine.rejectSuggestion(o.idParam(req.params.id)));
  });
}
