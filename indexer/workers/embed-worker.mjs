// Worker-thread entry: the sources are TypeScript, so register tsx's loader first.
import { register } from 'tsx/esm/api';

register();
await import('./embed-worker.ts');
