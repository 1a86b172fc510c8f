/**
 * The `pixdex` command line (DESIGN.md, CLI contract): finds the command (commands.ts), answers
 * `--help` and `--version`, parses its arguments (spec.ts), runs it, and maps errors to one line
 * on stderr and an exit code in one place (exit.ts).
 */
import { EXIT, errorLine, exitCodeFor } from './exit.ts';
import { COMMANDS, findCommand } from './commands.ts';
import { commandHelp, globalHelp, version } from './help.ts';
import { UsageError, parseCommand } from './spec.ts';

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (err) {
    process.stderr.write(errorLine(err) + '\n');
    if (process.env.PIXDEX_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return exitCodeFor(err);
  }
}

async function dispatch(argv: string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined) {
    process.stdout.write(globalHelp());
    return EXIT.usage;
  }
  if (first === '--help' || first === '-h' || (first === 'help' && argv.length === 1)) {
    process.stdout.write(globalHelp());
    return EXIT.ok;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const asked = first === 'help' ? argv.slice(1) : argv;
  const found = findCommand(asked);
  if (!found) {
    const names = [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]))];
    throw new UsageError(`Unknown command "${asked[0]}"; expected one of ${names.join(', ')}`);
  }
  const { spec, rest } = found;
  if (first === 'help' || wantsHelp(rest)) {
    process.stdout.write(commandHelp(spec));
    return EXIT.ok;
  }
  return spec.run(parseCommand(spec, rest));
}

/** `--help` or `-h` among the arguments (before a `--`). */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}
