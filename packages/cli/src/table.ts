import { markdownTable } from 'markdown-table';

/** A table as Markdown: readable in a terminal, and pasted as is into a pull-request comment. */
export function renderTable(header: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  return markdownTable([header, ...rows], align ? { align } : {});
}

export function formatNumber(value: number | undefined): string {
  if (value === undefined) return '–';
  return Number.isInteger(value) ? String(value) : value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

export function formatDelta(value: number | undefined): string {
  if (value === undefined) return '–';
  return value === 0 ? '0' : `${value > 0 ? '+' : ''}${formatNumber(value)}`;
}
