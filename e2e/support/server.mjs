// Starts a Vantus server for the browser tests, or uses BASE_URL when one is given.
// The server runs on the embedded default (SQLite in a temporary folder) on a free port,
// and readiness is polled on /readyz: no fixed sleeps. `env` adds settings (e.g. a short
// VANTUS_FORM_MIN_FILL_TIME); `dbPath` is the SQLite file of a server started here (null with
// BASE_URL, whose database is not ours to read).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function startServer({ env = {} } = {}) {
  if (process.env.BASE_URL) {
    await waitReady(process.env.BASE_URL);
    return { base: process.env.BASE_URL.replace(/\/$/, ''), dbPath: null, stop: async () => {} };
  }
  const bin = process.env.VANTUS_BIN || path.join(repo, 'target', 'debug', 'vantus');
  const dir = mkdtempSync(path.join(tmpdir(), 'vantus-e2e-'));
  const dataDir = path.join(dir, 'var');
  const child = spawn(bin, ['serve'], {
    env: { PATH: process.env.PATH, VANTUS_LISTEN: '127.0.0.1:0', VANTUS_DATA_DIR: dataDir, RUST_LOG: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('vantus did not log its address within 30 s')), 30_000);
    child.on('exit', (code) => reject(new Error(`vantus exited with ${code} before listening`)));
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (const line of buffer.split('\n')) {
        try {
          const entry = JSON.parse(line);
          if (entry.message === 'listening') {
            clearTimeout(timer);
            resolve(`http://${entry.addr}`);
          }
        } catch { /* partial or non-JSON line */ }
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
    });
  });
  await waitReady(base);
  return {
    base,
    dbPath: path.join(dataDir, 'vantus.db'),
    stop: async () => {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`vantus exited with ${code} after SIGTERM`);
    },
  };
}

async function waitReady(base, attempts = 300) {
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await fetch(`${base.replace(/\/$/, '')}/readyz`);
      if (res.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${base}/readyz never answered 200`);
}
