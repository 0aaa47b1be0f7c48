/**
 * A small, fast, seedable PRNG whose whole state is four 32-bit words, so a
 * checkpoint can store it and a resumed run continues the exact same stream.
 *
 * Algorithm: xoshiro128** (Blackman & Vigna), seeded through splitmix32.
 */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s: Uint32Array;

  constructor(seed: number | RngState = 0) {
    this.s = new Uint32Array(4);
    if (typeof seed === 'number') {
      const sm = splitmix32(seed);
      for (let i = 0; i < 4; i++) this.s[i] = sm();
      if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
    } else {
      this.s.set(seed);
    }
  }

  /** Independent child stream derived from this seed and a label (e.g. a worker index). */
  static derive(seed: number, ...labels: number[]): Rng {
    let h = seed >>> 0;
    for (const l of labels) {
      const sm = splitmix32((h ^ Math.imul(l + 1, 0x27d4eb2d)) >>> 0);
      h = (sm() ^ sm()) >>> 0;
    }
    return new Rng(h);
  }

  getState(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  setState(st: RngState): void {
    this.s.set(st);
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] = s[2]! ^ s[0]!;
    s[3] = s[3]! ^ s[1]!;
    s[1] = s[1]! ^ s[2]!;
    s[0] = s[0]! ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller; both values of a pair are drawn together). */
  normal(): number {
    const u1 = 1 - this.next();
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(a: T[] | Int32Array | Uint32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
