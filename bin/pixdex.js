#!/usr/bin/env node
// The pixdex CLI. The sources are TypeScript, run through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../indexer/cli.ts');
process.exitCode = await main(process.argv.slice(2));
