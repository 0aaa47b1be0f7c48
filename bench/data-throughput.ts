/**
 * Data pipeline throughput: source images per second delivered by the
 * DataLoader for each pretext task, against the number of worker threads
 * (in-process, then 1, 2, … up to the number of cores), on Fashion-MNIST-shaped
 * (1×28×28; the real data when installed) and CIFAR-shaped (3×32×32,
 * synthetic) data, with the speed-up relative to 1 worker.
 *
 * Run after `npm run build`:
 *   node dist/bench/data-throughput.js [--batch-size 128] [--seconds 1] [--repeat 3]
 *        [--tasks cls,rot,col,jig,simclr] [--max-workers N] [--json]
 *
 * Streaming from a folder of JPEGs (bench/image-folder.ts): images/s at a crop
 * size for 1, 2, … workers, one pass each (or --seconds of it), and the
 * process's peak RSS; --generate N first writes N generated 400×300 JPEGs
 * into the folder (keep such folders in /tmp):
 *   node dist/bench/data-throughput.js --folder /tmp/jpegs --size 224 [--generate 2000]
 *        [--tasks rot] [--batch-size 32] [--max-workers 2 | --workers N] [--seconds 0] [--cache-mb 0]
 *        [--gc: collect garbage after each batch; run with node --expose-gc]
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Rng } from '../graph/rng.js';
import { folderThroughput, generateJpegs } from './image-folder.js';
import {
  type Dataset,
  DataLoader,
  DataPool,
  FASHION_MNIST_DIR,
  loadDataset,
  TASK_NAMES,
  type TaskName,
} from '../train/data/index.js';

interface Args {
  batchSize: number;
  seconds: number;
  tasks: TaskName[];
  maxWorkers: number;
  repeat: number;
  json: boolean;
  /** Folder mode: the folder, crop size, images to generate first, decoded-image cache budget (MiB). */
  folder?: string;
  size: number;
  generate: number;
  cacheMb: number;
  /** Folder mode: only this worker count; garbage collection after every batch. */
  workers?: number;
  gc: boolean;
}

function parseArgs(argv: string[]): Args {
  // folder mode: one pass at 1 and 2 workers, rot, batches of 32; else timed points for every task
  const folder = argv.includes('--folder');
  const a: Args = {
    batchSize: folder ? 32 : 128,
    seconds: folder ? 0 : 1,
    tasks: folder ? ['rot'] : [...TASK_NAMES],
    maxWorkers: folder ? 2 : availableParallelism(),
    repeat: 3,
    json: false,
    size: 224,
    generate: 0,
    cacheMb: 0,
    gc: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '--batch-size') a.batchSize = Number(value());
    else if (k === '--seconds') a.seconds = Number(value());
    else if (k === '--tasks') a.tasks = value().split(',') as TaskName[];
    else if (k === '--max-workers') a.maxWorkers = Number(value());
    else if (k === '--repeat') a.repeat = Number(value());
    else if (k === '--json') a.json = true;
    else if (k === '--folder') a.folder = value();
    else if (k === '--size') a.size = Number(value());
    else if (k === '--generate') a.generate = Number(value());
    else if (k === '--cache-mb') a.cacheMb = Number(value());
    else if (k === '--workers') a.workers = Number(value());
    else if (k === '--gc') a.gc = true;
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

function synthetic(n: number, c: number, h: number, w: number, name: string): Dataset {
  const rng = new Rng(1);
  const images = new Uint8Array(new SharedArrayBuffer(n * c * h * w));
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = rng.int(10);
  return { images, labels, n, c, h, w, classes: 10, name, mean: Array(c).fill(0.5), std: Array(c).fill(0.25) };
}

/** Throughput of one configuration after a warm-up that starts the threads. */
interface Point {
  /** Source images per second of wall-clock time. */
  wall: number;
  /** Source images per CPU-second of the whole process (all threads): robust to other load on the machine. */
  cpu: number;
}

async function measure(
  ds: Dataset,
  task: TaskName,
  pool: DataPool,
  batchSize: number,
  seconds: number,
): Promise<Point> {
  const loader = new DataLoader(ds, { task, batchSize, seed: 1, pool, dropLast: true });
  // Warm-up (JIT in every worker): a third of the measuring time, at least 2 batches per worker.
  let k = 0;
  const w0 = performance.now();
  for await (const b of loader.epoch(1000)) {
    void b;
    if (++k >= Math.max(2, 2 * pool.workers) && performance.now() - w0 > (seconds * 1000) / 3) break;
  }
  let images = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let e = 0; ; e++) {
    for await (const b of loader.epoch(e)) {
      images += b.size;
      const dt = performance.now() - t0;
      if (dt > seconds * 1000) {
        const c = process.cpuUsage(c0);
        return { wall: (images * 1000) / dt, cpu: images / ((c.user + c.system) / 1e6) };
      }
    }
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.folder) {
    if (args.generate > 0) await generateJpegs(args.folder, args.generate);
    const task = args.tasks[0]!;
    console.log(
      `streaming ${args.folder}: crop ${args.size}, task ${task}, batch ${args.batchSize}, ${availableParallelism()} cores, node ${process.version}`,
    );
    const { folder, size, batchSize, maxWorkers, seconds, workers, gc } = args;
    const memoryBytes = args.cacheMb * 2 ** 20;
    await folderThroughput({ folder, size, task, batchSize, maxWorkers, seconds, memoryBytes, workers, gc }, args.json);
    return;
  }
  const fmnistReal = existsSync(process.env.FASHION_MNIST_DIR ?? FASHION_MNIST_DIR);
  const sets: Dataset[] = [
    fmnistReal
      ? await loadDataset('fashion-mnist', { limit: 20000 })
      : synthetic(20000, 1, 28, 28, 'fashion-mnist-shaped'),
    synthetic(20000, 3, 32, 32, 'cifar-shaped'),
  ];
  const counts = [0];
  for (let w = 1; w <= args.maxWorkers; w++) counts.push(w);
  const results: {
    dataset: string;
    task: string;
    workers: number;
    imagesPerSec: number;
    imagesPerCpuSec: number;
    vs1: number | null;
  }[] = [];
  if (!args.json) {
    console.log(
      `data throughput: batch ${args.batchSize}, best of ${args.repeat} × ${args.seconds}s per point, ${availableParallelism()} cores, node ${process.version}`,
    );
    console.log(
      'images/s (wall clock) per worker count; 0 = in-process; ×r = ratio to 1 worker; [images per CPU-second]',
    );
  }
  // One pool per worker count, reused for every task, so its threads stay warm.
  const pools = counts.map((w) => new DataPool({ workers: w }));
  try {
    for (const ds of sets) {
      for (const task of args.tasks) {
        if (task === 'col' && ds.c !== 3) continue; // colorization needs RGB images
        const row: Point[] = [];
        for (const pool of pools) {
          // Best of `repeat` runs: other processes on the machine only ever slow a run down.
          let best: Point = { wall: 0, cpu: 0 };
          for (let r = 0; r < args.repeat; r++) {
            const p = await measure(ds, task, pool, args.batchSize, args.seconds);
            best = { wall: Math.max(best.wall, p.wall), cpu: Math.max(best.cpu, p.cpu) };
          }
          row.push(best);
        }
        const one = row[1]?.wall ?? null;
        counts.forEach((w, i) =>
          results.push({
            dataset: ds.name,
            task,
            workers: w,
            imagesPerSec: row[i]!.wall,
            imagesPerCpuSec: row[i]!.cpu,
            vs1: one ? row[i]!.wall / one : null,
          }),
        );
        if (!args.json) {
          const cells = counts.map((w, i) => {
            const p = row[i]!;
            const ratio = one && w > 0 ? ` ×${(p.wall / one).toFixed(2)}` : '';
            return `${w}w ${p.wall.toFixed(0).padStart(7)}${ratio.padEnd(6)} [${p.cpu.toFixed(0)}]`;
          });
          console.log(`${ds.name.padEnd(20)} ${task.padEnd(7)} ${cells.join('  ')}`);
        }
      }
    }
  } finally {
    for (const p of pools) await p.close();
  }
  if (args.json) console.log(JSON.stringify(results, null, 2));
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
