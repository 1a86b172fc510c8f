/** The one place where errors become exit codes and one-line messages on stderr. */
import { PixdexError } from '../src/errors.ts';

/** Exit codes: 0 success, 1 unexpected failure, 2 usage/parameters, 3 not found, 4 bad input, 5 model/store, 130 interrupted. */
export const EXIT = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  badInput: 4,
  environment: 5,
  interrupted: 130,
});

const BY_CODE: Record<string, number> = {
  INVALID_PARAMETER: EXIT.usage,
  USAGE: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  EMPTY_IMAGE: EXIT.badInput,
  TRUNCATED_IMAGE: EXIT.badInput,
  CORRUPT_IMAGE: EXIT.badInput,
  UNSUPPORTED_IMAGE: EXIT.badInput,
  IMAGE_TOO_LARGE: EXIT.badInput,
  UNREADABLE_FILE: EXIT.badInput,
  MODEL_NOT_FOUND: EXIT.environment,
  STORE_MISMATCH: EXIT.environment,
  STORE_CONFLICT: EXIT.environment,
  BACKEND_UNAVAILABLE: EXIT.environment,
  SNAPSHOT_UNUSABLE: EXIT.environment,
  NO_CLASSIFIER: EXIT.environment,
};

/** Exit code for a PixdexError code (`MODEL_NOT_FOUND`...), or undefined for a code without one. */
export function exitCodeForCode(code: string): number | undefined {
  return Object.hasOwn(BY_CODE, code) ? BY_CODE[code] : undefined;
}

/** Exit code for an error. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PixdexError) return BY_CODE[err.code] ?? EXIT.failure;
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
