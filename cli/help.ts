/**
 * `pixdex --help`, `pixdex <command> --help` (or `pixdex help <command>`) and `pixdex --version`,
 * written from the command table (commands.ts) and the option declarations: an option added to a
 * verb's schema or to a command's options shows up here by itself.
 */
import fs from 'node:fs';
import { EXIT } from './exit.ts';
import { GLOBAL_OPTIONS, type OptionSpec } from './args.ts';
import { COMMANDS } from './commands.ts';
import { optionsOf, type CommandSpec } from './spec.ts';

const WIDTH = 100;

/** `text` wrapped to WIDTH columns, every line after the first indented by `indent`. */
function wrap(text: string, indent: number, first = indent): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const room = WIDTH - (lines.length === 0 ? first : indent);
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** Two columns: left padded to the widest (up to 30), the right wrapped under itself. */
function table(rows: [string, string][]): string {
  const col = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([left, right]) => {
    const lead = `  ${left}`;
    return lead.length + 1 >= col + 2 ? `${lead}\n${' '.repeat(col + 2)}${wrap(right, col + 2)}` : `${lead.padEnd(col + 2)}${wrap(right, col + 2)}`;
  }).join('\n');
}

function optionRows(options: Record<string, OptionSpec>): [string, string][] {
  return Object.entries(options).map(([name, o]) => [`${o.short ? `-${o.short}, ` : ''}--${name}${o.value ? ` ${o.value}` : ''}${o.multiple ? '...' : ''}`, o.help]);
}

/** `pixdex --help`: every command in a line, the global options, where to read more. */
export function globalHelp(): string {
  return [
    'Usage: pixdex <command> [options]',
    '',
    'Commands:',
    table(COMMANDS.map((c) => [`${c.name}${c.args ? ` ${c.args}` : ''}`, c.summary])),
    '',
    'Global options (every command):',
    table(optionRows(GLOBAL_OPTIONS)),
    '',
    '`pixdex <command> --help` (or `pixdex help <command>`) shows a command\'s options and examples;',
    '`pixdex --version` (or -v) prints the version.',
    `Exit codes: ${EXIT.ok} ok, ${EXIT.usage} usage, ${EXIT.notFound} not found, ${EXIT.badInput} bad input, ${EXIT.environment} model/store, ${EXIT.interrupted} interrupted, ${EXIT.failure} other;`,
    'errors are one line on stderr: `pixdex: <CODE>: message`.',
    '',
  ].join('\n');
}

/** `pixdex <command> --help`: usage line, what it does, its own options, the global ones, examples. */
export function commandHelp(spec: CommandSpec): string {
  const own = optionsOf(spec);
  const subcommands = COMMANDS.filter((c) => c.name.startsWith(`${spec.name} `)).map((c) => c.name);
  return [
    `Usage: pixdex ${spec.name}${spec.args ? ` ${spec.args}` : ''} [options]`,
    '',
    wrap(`${spec.summary}.`, 0),
    ...(spec.details ? ['', spec.details] : []),
    ...(subcommands.length ? ['', wrap(`Subcommands: ${subcommands.map((s) => `pixdex ${s}`).join(', ')} (each has --help).`, 2, 0)] : []),
    '',
    ...(Object.keys(own).length ? ['Options:', table(optionRows(own)), ''] : []),
    wrap(`Global options: ${optionRows(GLOBAL_OPTIONS).map(([o]) => o).join(', ')} (described in \`pixdex --help\`).`, 2, 0),
    '',
    'Examples:',
    ...spec.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

/** The version of this pixdex, from package.json. */
export function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
