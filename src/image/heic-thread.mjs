// Worker-thread entry of the HEIC decoder thread (src/image/heic.ts): the sources are TypeScript,
// so register tsx's loader first.
import { register } from 'tsx/esm/api';

register();
await import('./heic-thread.ts');
