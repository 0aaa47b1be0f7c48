/**
 * Streaming throughput on a folder of JPEGs (bench/data-throughput.ts
 * --folder): writes a folder of generated photos when asked (400×300, JPEG
 * quality 80, smooth colour fields with texture), then passes over it with
 * the DataLoader at a crop size for 1, 2, … worker threads, reporting images
 * per second (wall clock and per CPU-second) and the process's peak RSS.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { Rng } from '../graph/rng.js';
import { DataLoader, DataPool, loadDataset, type TaskName } from '../train/data/index.js';

/** One generated photo (HWC RGB): a few soft colour blobs over a gradient, plus pixel noise. */
function photo(w: number, h: number, rng: Rng): Buffer {
  const blobs = Array.from({ length: 5 }, () => ({
    x: rng.next() * w,
    y: rng.next() * h,
    r: 30 + rng.next() * 120,
    c: [rng.int(256), rng.int(256), rng.int(256)],
  }));
  const base = [rng.int(256), rng.int(256), rng.int(256)];
  const out = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < 3; ch++) {
        let v = base[ch]! * (0.5 + (0.5 * x) / w);
        for (const b of blobs) {
          const d = ((x - b.x) ** 2 + (y - b.y) ** 2) / (b.r * b.r);
          if (d < 1) v = v * d + b.c[ch]! * (1 - d);
        }
        out[(y * w + x) * 3 + ch] = Math.max(0, Math.min(255, v + rng.int(25) - 12));
      }
    }
  }
  return out;
}

/**
 * Writes `n` 400×300 JPEGs (quality 80) into `dir` unless it already holds
 * that many: 100 distinct generated photos, repeated under new names (each
 * file is decoded in full; their content does not change the cost).
 */
export async function generateJpegs(dir: string, n: number, seed = 1): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const have = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.jpg')).length : 0;
  if (have >= n) return;
  const rng = new Rng(seed);
  const photos: Buffer[] = [];
  for (let k = 0; k < Math.min(100, n); k++)
    photos.push(
      await sharp(photo(400, 300, rng), { raw: { width: 400, height: 300, channels: 3 } })
        .jpeg({ quality: 80 })
        .toBuffer(),
    );
  for (let i = have; i < n; i++)
    writeFileSync(join(dir, `img_${String(i).padStart(6, '0')}.jpg`), photos[i % photos.length]!);
}

export interface FolderPoint {
  workers: number;
  images: number;
  imagesPerSec: number;
  imagesPerCpuSec: number;
  /** Highest resident set size (MiB) seen in each tenth of the pass: flat when memory does not grow with the images read. */
  rssByTenth: number[];
}

/** Options of a folder pass. */
export interface FolderBench {
  folder: string;
  size: number;
  task: TaskName;
  batchSize: number;
  maxWorkers: number;
  /** Stop a pass after this many seconds (0: one whole epoch). */
  seconds: number;
  /** Only this worker count (else 1..maxWorkers). */
  workers?: number;
  /** Decoded-image cache budget (0: always stream from disk). */
  memoryBytes: number;
  /** Collect garbage after every batch (node --expose-gc): RSS then follows live memory, not GC timing. */
  gc?: boolean;
}

/** One pass (an epoch, or `seconds` of it) with `workers` threads, after a warm-up batch per worker. */
async function pass(o: FolderBench, workers: number): Promise<FolderPoint> {
  const ds = await loadDataset(o.folder, { crop: o.size, memoryBytes: o.memoryBytes });
  const pool = new DataPool({ workers });
  const loader = new DataLoader(ds, { task: o.task, batchSize: o.batchSize, seed: 1, pool, dropLast: true });
  try {
    for (let b = 0; b < Math.max(1, workers); b++) await loader.batch(1000, b);
    let images = 0;
    const total = loader.batchesPerEpoch * o.batchSize;
    const rssByTenth = new Array<number>(10).fill(0);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const gc = o.gc ? (globalThis as { gc?: () => void }).gc : undefined;
    if (o.gc && !gc) throw new Error('--gc needs node --expose-gc');
    for await (const b of loader.epoch(0)) {
      gc?.();
      const tenth = Math.min(9, Math.floor((10 * images) / total));
      rssByTenth[tenth] = Math.max(rssByTenth[tenth]!, process.memoryUsage.rss() / 2 ** 20);
      images += b.size;
      if (o.seconds > 0 && performance.now() - t0 > o.seconds * 1000) break;
    }
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const perCpu = images / ((c.user + c.system) / 1e6);
    return { workers, images, imagesPerSec: images / wall, imagesPerCpuSec: perCpu, rssByTenth };
  } finally {
    await loader.close();
    await pool.close();
  }
}

/** Passes over the folder for 1..maxWorkers workers; prints a line each and the peak RSS. */
export async function folderThroughput(o: FolderBench, json: boolean): Promise<FolderPoint[]> {
  const points: FolderPoint[] = [];
  const counts = o.workers ? [o.workers] : Array.from({ length: o.maxWorkers }, (_, i) => i + 1);
  for (const w of counts) {
    const p = await pass(o, w);
    points.push(p);
    if (!json) {
      const ratio = points[0] ? ` ×${(p.imagesPerSec / points[0].imagesPerSec).toFixed(2)}` : '';
      console.log(
        `${w} worker(s): ${p.imagesPerSec.toFixed(1)} images/s${ratio} [${p.imagesPerCpuSec.toFixed(1)} per CPU-second], ${p.images} images; ` +
          `RSS by tenth of the pass (MiB): ${p.rssByTenth.map((r) => r.toFixed(0)).join(' ')}`,
      );
    }
  }
  const rss = process.resourceUsage().maxRSS / 1024;
  if (json) console.log(JSON.stringify({ ...o, points, peakRssMiB: rss }, null, 2));
  else console.log(`peak RSS of the process: ${rss.toFixed(0)} MiB`);
  return points;
}
