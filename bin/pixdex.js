#!/usr/bin/env node
// The pixdex CLI. The sources are TypeScript, run through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

// A reader that goes away (`pixdex label suggestions | head -5`) is not a failure: the rest of the
// output is dropped quietly and the command ends with its own exit code (0 when it succeeded).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
