/**
 * 405 Method Not Allowed: a request whose path a route or a page file has, but not with its
 * method, is answered 405 with an `Allow` header (and OPTIONS with 204 and `Allow`) instead of
 * the JSON 404 meant for paths that do not exist. Mounted after every route and the page's files.
 */
import type { Express, RequestHandler } from 'express';
import { MethodNotAllowedError } from './errors.ts';

/** What this middleware reads of Express's router (router 2.x): its route layers and their matcher. */
interface RouteLayer {
  route?: { methods: Record<string, boolean> };
  match(path: string): unknown;
}

/**
 * The middleware. `pagePaths`: the paths of the page's static files (GET and HEAD only). The
 * routes are read from the app's router at the first request, when they are all mounted.
 */
export function methodNotAllowed(app: Express, pagePaths: ReadonlySet<string>): RequestHandler {
  const allowed = (path: string): string[] => {
    const methods = new Set<string>();
    if (pagePaths.has(path)) methods.add('GET');
    for (const layer of app.router.stack as unknown as RouteLayer[]) {
      if (!layer.route || !layer.match(path)) continue;
      for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') methods.add(m.toUpperCase());
    }
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  };
  return (req, res, next) => {
    const allow = allowed(req.path);
    if (allow.length === 0) return next(); // not a path of this server: the JSON 404
    const header = [...allow, 'OPTIONS'].sort();
    if (req.method === 'OPTIONS') {
      res.set('Allow', header.join(', ')).status(204).end();
      return;
    }
    next(new MethodNotAllowedError(header, `${req.path} does not take ${req.method}; it takes ${allow.join(', ')}. GET /openapi.json lists the routes.`));
  };
}
