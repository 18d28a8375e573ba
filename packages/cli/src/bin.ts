#!/usr/bin/env node
import { main } from './cli.js';

// `headstart run | head` closes our stdout early; the run itself must still finish and cache its work.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

process.exitCode = await main(process.argv);
