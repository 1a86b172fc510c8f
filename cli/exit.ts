/** The one place where errors become exit codes and one-line messages on stderr. */
import { EXIT, ERRORS, isErrorCode } from '../src/contracts/errors.ts';
import { PixdexError } from '../src/errors.ts';

export { EXIT };

/** Exit code for a PixdexError code (`MODEL_NOT_FOUND`...) from the one table, or undefined for a code not in it. */
export function exitCodeForCode(code: string): number | undefined {
  return isErrorCode(code) ? ERRORS[code].exit : undefined;
}

/** Exit code for an error. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PixdexError) return exitCodeForCode(err.code) ?? EXIT.failure;
  const code = (err as { code?: string })?.code;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return EXIT.usage;
  return EXIT.failure;
}

/** One line for stderr: `pixdex: <CODE>: message`. */
export function errorLine(err: unknown): string {
  if (err instanceof PixdexError) return `pixdex: ${err.code}: ${err.message}`;
  const message = err instanceof Error ? err.message : String(err);
  return `pixdex: ${message.split('\n')[0]}`;
}
