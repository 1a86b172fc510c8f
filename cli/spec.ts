/**
 * What a `pixdex` command is (name, arguments, options, examples, how it runs) and how its
 * command line is parsed. A command's options come from one declaration: its verb's schema
 * (src/contracts/verbs.ts: each field an option, its `.describe()` text the help) plus the
 * CLI-only options it declares. The parser and `--help` (help.ts) both read `optionsOf`, so an
 * option added to a verb's schema is parsed, passed on and documented without more code.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { PixdexError } from '../src/errors.ts';
import { parseParams } from '../src/contracts/verbs.ts';
import { GLOBAL_OPTIONS, type OptionSpec, type Values } from './args.ts';

/** A parsed command line: raw option values, positional arguments, and the verb's parameters. */
export interface Parsed<P = Record<string, unknown>> {
  /** The command's name (`label propagate`). */
  command: string;
  values: Values;
  pos: string[];
  /** The verb's parameters with their defaults (`{}` for a command without a verb). */
  params: P;
}

export interface CommandSpec<S extends z.ZodObject = z.ZodObject> {
  /** One word, or two for a subcommand (`label propagate`). */
  name: string;
  /** The positional arguments as the usage line shows them (`<image>`). */
  args: string;
  /** One line for `pixdex --help`. */
  summary: string;
  /** More text for `pixdex <command> --help`, after the summary. */
  details?: string;
  /** The verb whose fields are this command's options (kebab-case: minConfidence is --min-confidence). */
  verb?: S;
  /** Verb fields that are not options (given as arguments, or HTTP only). */
  skip?: readonly string[];
  /** CLI-only options, and options that fill a verb field differently (`no-verify` negates `verify`). */
  options?: Readonly<Record<string, OptionSpec>>;
  /** Placeholders of derived options whose schema says only "string" (`queries: 'DIR'`). */
  values?: Readonly<Record<string, string>>;
  /** Fewest and most positional arguments. */
  positionals: readonly [min: number, max: number];
  /** One to three command lines, each optionally followed by `  # what it does`. */
  examples: readonly string[];
  run(p: Parsed<z.output<S>>): Promise<number>;
}

/** Declares a command, its handler typed by its verb. */
export function command<S extends z.ZodObject>(spec: CommandSpec<S>): CommandSpec {
  return spec as unknown as CommandSpec;
}

/** A command line that is malformed: USAGE (exit 2), pointing at the command's help. */
export class UsageError extends PixdexError {
  constructor(message: string, commandName?: string) {
    super('USAGE', `${message}. Run \`pixdex ${commandName ? `${commandName} ` : ''}--help\` for usage.`);
  }
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

type Json = { type?: string; enum?: string[]; anyOf?: Json[] };

/** The placeholder and parse type of a verb field, from its JSON schema. */
function describeField(field: z.ZodType): { type: 'string' | 'boolean'; value?: string } {
  const j = z.toJSONSchema(field, { io: 'output', unrepresentable: 'any' }) as Json;
  if (j.type === 'boolean') return { type: 'boolean' };
  if (j.enum) return { type: 'string', value: j.enum.join('|') };
  if (j.type === 'integer') return { type: 'string', value: 'N' };
  if (j.type === 'number') return { type: 'string', value: 'X' };
  return { type: 'string' };
}

/** The command's own options (not the global ones), in declaration order: verb fields first. */
export function optionsOf(spec: CommandSpec): Record<string, OptionSpec> {
  const own = spec.options ?? {};
  const claimed = new Set(Object.values(own).map((o) => o.field).filter(Boolean));
  const options: Record<string, OptionSpec> = {};
  for (const [field, schema] of Object.entries(spec.verb?.shape ?? {}) as [string, z.ZodType][]) {
    if (spec.skip?.includes(field) || claimed.has(field)) continue;
    const name = kebab(field);
    const { type, value } = describeField(schema);
    options[name] = { type, value: spec.values?.[name] ?? value ?? name.toUpperCase(), help: schema.description ?? '', field };
    if (type === 'boolean') delete options[name].value;
  }
  return { ...options, ...own };
}

/**
 * Parses a command's arguments: unknown options and a wrong number of arguments are USAGE
 * errors naming the command; the verb's parameters are checked (INVALID_PARAMETER).
 */
export function parseCommand(spec: CommandSpec, args: string[]): Parsed {
  const own = optionsOf(spec);
  const all = { ...GLOBAL_OPTIONS, ...own };
  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, o] of Object.entries(all)) config[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args, options: config, allowPositionals: true, strict: true });
  } catch (err) {
    throw usageOf(err, spec.name, Object.keys(all));
  }
  const { values, positionals: pos } = parsed;
  const [min, max] = spec.positionals;
  if (pos.length < min || pos.length > max) {
    const expected = max === 0 ? 'no arguments' : `${min === max ? min : max === Infinity ? `at least ${min}` : `${min} to ${max}`} argument(s) (${spec.args})`;
    throw new UsageError(`pixdex ${spec.name} takes ${expected} but received ${pos.length}${pos.length ? `: ${pos.map((p) => JSON.stringify(p)).join(' ')}` : ''}`, spec.name);
  }
  const input: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(own)) {
    if (o.field) input[o.field] = o.negates ? !values[name] : values[name];
  }
  const params = spec.verb ? parseParams(spec.verb, input, { names: 'cli' }) : {};
  return { command: spec.name, values: values as Values, pos, params };
}

/** node:util's parse errors as USAGE, naming the command (and the nearest known option). */
function usageOf(err: unknown, name: string, known: string[]): unknown {
  const code = (err as { code?: string }).code;
  if (!code?.startsWith('ERR_PARSE_ARGS_')) return err;
  const message = (err as Error).message;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /'([^']+)'/.exec(message)?.[1] ?? message;
    const near = nearest(option.replace(/^-+/, '').split('=')[0], known);
    return new UsageError(`pixdex ${name} has no option ${option}${near ? ` (did you mean --${near}?)` : ''}`, name);
  }
  return new UsageError(`pixdex ${name}: ${message.replace(/\.$/, '')}`, name);
}

/** The known option within 2 edits of `typed`, if one is. */
function nearest(typed: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(typed, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}
