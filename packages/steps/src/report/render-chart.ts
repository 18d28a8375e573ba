import sharp from 'sharp';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface RenderedChart {
  svg: string;
  png: Buffer;
}

/** PNGs are rasterized at twice the SVG's size, so text stays sharp. */
const PNG_DENSITY = 144;

/** Renders a Vega-Lite spec headless (no canvas): an SVG to inline, and the same chart as a PNG. */
export async function renderChart(name: string, spec: TopLevelSpec): Promise<RenderedChart> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = localIds(await view.toSVG(), name);
    const png = await sharp(Buffer.from(svg), { density: PNG_DENSITY }).png({ compressionLevel: 9 }).toBuffer();
    return { svg, png };
  } finally {
    view.finalize();
  }
}

/**
 * Vega numbers gradient and clip ids from a process-wide counter: renamed here after the chart, so the same
 * chart gives the same bytes and several charts inlined in one page do not share ids.
 */
function localIds(svg: string, name: string): string {
  const ids = [...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!);
  let renamed = svg;
  ids.forEach((id, i) => {
    const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    renamed = renamed.replace(new RegExp(`(\\bid="|url\\(#|href="#)${escaped}(?=[")])`, 'g'), `$1${name}-${i}`);
  });
  return renamed;
}
