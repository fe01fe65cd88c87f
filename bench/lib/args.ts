/** Numeric `--name value` flags of a benchmark's command line; a missing or non-numeric value gives the fallback. */
export function numberFlag(name: string, fallback: number, args: string[] = process.argv.slice(2)): number {
  const at = args.indexOf(`--${name}`);
  // A missing flag (indexOf -1) must not read args[0] as its value.
  return at >= 0 ? Number(args[at + 1]) || fallback : fallback;
}
