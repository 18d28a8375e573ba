const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'] as const;

/** A byte count for people, in binary units: `512 B`, `1.5 KiB`, `3.4 MiB`, `2.00 GiB` (gigabytes and up to two decimals). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit >= 2 ? 2 : 1)} ${UNITS[unit]}`;
}
