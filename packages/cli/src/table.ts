import { markdownTable } from 'markdown-table';

/** A table as Markdown: readable in a terminal, and pasted as is into a pull-request comment. */
export function renderTable(header: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  return markdownTable([header, ...rows], align ? { align } : {});
}

/** Four decimals, or four significant digits for a number below 0.001 (a learning rate), so none reads as 0. */
export function formatNumber(value: number | undefined): string {
  if (value === undefined) return '–';
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) < 0.001) return value.toPrecision(4).replace(/\.?0+(e|$)/, '$1');
  return value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

export function formatDelta(value: number | undefined): string {
  if (value === undefined) return '–';
  return value === 0 ? '0' : `${value > 0 ? '+' : ''}${formatNumber(value)}`;
}
