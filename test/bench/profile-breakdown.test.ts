import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { breakdown, breakdownTable, type CpuProfile } from '../../src/bench/profile-breakdown.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'small.cpuprofile');
const fixture = () => JSON.parse(readFileSync(FIXTURE, 'utf8')) as CpuProfile;

describe('profile breakdown', () => {
  // Sample i lasts until sample i+1 (delta i+1); the last until the end (10 ms - 8.5 ms).
  it('gives each sample to the leaf-most frame that names a category, idle left out', () => {
    const { busyMs, idleMs, wallMs } = breakdown(fixture());
    expect(wallMs).toBe(10);
    // Idle: the first sample (2 ms) and the last (1.5 ms).
    expect(idleMs).toBe(3.5);
    expect(busyMs['garbage collection']).toBe(1);
    // (program) under the TLS handshake, under a socket read: TLS, the leaf-most match.
    expect(busyMs['TLS and crypto']).toBe(1);
    // Buffer.concat inside fast-xml-parser: XML, not Node.
    expect(busyMs['XML encode/decode']).toBe(1);
    // better-sqlite3 under the engine: SQLite; the engine's own frame: the engine.
    expect(busyMs.SQLite).toBe(1);
    expect(busyMs['engine (workflows, journal)']).toBe(0.5);
    expect(busyMs['host command start']).toBe(0.5);
    // A VBS frame no rule names, and a socket read: by their own rules.
    expect(busyMs['other VBS code']).toBe(0.5);
    expect(busyMs['sockets and streams']).toBe(1);
    const total = Object.values(busyMs).reduce((a, b) => a + b, 0);
    expect(total + idleMs).toBe(wallMs);
  });

  it('counts only the samples inside a window of the same clock (a phase of a long-lived service)', () => {
    // Samples are stamped at 0, 2, 3, 4, 5, 6, 6.5, 7, 7.5 and 8.5 ms: the window [3, 6) ms holds TLS, XML and SQLite.
    const { busyMs, idleMs, wallMs } = breakdown(fixture(), { fromUs: 3000, toUs: 6000 });
    expect(wallMs).toBe(3);
    expect(idleMs).toBe(0);
    expect(busyMs['TLS and crypto']).toBe(1);
    expect(busyMs['XML encode/decode']).toBe(1);
    expect(busyMs.SQLite).toBe(1);
    expect(Object.values(busyMs).reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('tables the categories with time, largest first, per operation and as shares', () => {
    const { busyMs } = breakdown(fixture());
    const table = breakdownTable([{ name: 'front', busyMs }, { name: 'client', busyMs }], 2).split('\n');
    expect(table[0]).toBe('| category | front ms/op | client ms/op | all ms/op | share |');
    expect(table[2]).toMatch(/^\| (garbage collection|TLS and crypto|XML encode\/decode|SQLite|sockets and streams) \| 0\.50 \| 0\.50 \| 1\.00 \| 15\.4 % \|$/);
    expect(table.at(-1)).toBe('| **all** | 3.25 | 3.25 | 6.50 | 100 % |');
    expect(table.some((l) => l.startsWith('| HTTP'))).toBe(false);
  });

  // The built command (npm test builds first), as the bench's --profile and a person run it.
  it('runs as a command on .cpuprofile files', () => {
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'dist', 'bench', 'profile-breakdown.js'), '--per', '13', `front=${FIXTURE}`], { encoding: 'utf8' });
    expect(out.split('\n')[0]).toBe('| category | front ms/op | all ms/op | share |');
    expect(out).toContain('| **all** | 0.50 | 0.50 | 100 % |');
  });
});
