// Worker-thread entry of src/local/learn-thread.ts: the sources are TypeScript, so register tsx's loader first.
import { register } from 'tsx/esm/api';

register();
await import('./learn-worker.ts');
