import type { Pipeline } from '@headstart/core';
import { exitWith, type CommandResult } from '../command-result.js';
import { loadForCommand, type PipelineFlags } from '../load.js';

interface GraphFlags extends PipelineFlags {
  format: 'mermaid' | 'dot';
}

export async function graphCommand(file: string, flags: GraphFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  console.log(flags.format === 'dot' ? toDot(loaded.value) : toMermaid(loaded.value));
  return exitWith(0);
}

/** Each edge with its label: the input name for data edges, nothing for `needs:`. */
function edges(pipeline: Pipeline): { from: string; to: string; label?: string }[] {
  return pipeline.order.flatMap((id) => {
    const stage = pipeline.stages.get(id)!;
    const data = Object.entries(stage.inputs).map(([name, input]) => ({ from: input.stage, to: id, label: input.output === name ? name : `${input.output} → ${name}` }));
    const order = stage.needs.map((need) => ({ from: need, to: id }));
    return [...data, ...order];
  });
}

function toMermaid(pipeline: Pipeline): string {
  const lines = ['flowchart TD'];
  // A matrix instance's id (`head@lr=0.001`) is not a mermaid node id: such nodes are named by position.
  const node = (id: string) => (/^[A-Za-z][A-Za-z0-9_-]*$/.test(id) ? id : `stage_${pipeline.order.indexOf(id)}`);
  for (const id of pipeline.order) lines.push(`  ${node(id)}["${id}<br/><small>${pipeline.stages.get(id)!.uses}</small>"]`);
  for (const edge of edges(pipeline)) {
    const [from, to] = [node(edge.from), node(edge.to)];
    lines.push(edge.label ? `  ${from} -->|${edge.label}| ${to}` : `  ${from} -.-> ${to}`);
  }
  return lines.join('\n');
}

function toDot(pipeline: Pipeline): string {
  const lines = [`digraph "${pipeline.name}" {`, '  rankdir=TB;', '  node [shape=box];'];
  for (const id of pipeline.order) lines.push(`  "${id}" [label="${id}\\n${pipeline.stages.get(id)!.uses}"];`);
  for (const edge of edges(pipeline)) lines.push(`  "${edge.from}" -> "${edge.to}"${edge.label ? ` [label="${edge.label}"]` : ' [style=dashed]'};`);
  lines.push('}');
  return lines.join('\n');
}
