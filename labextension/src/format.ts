/**
 * Pure helpers shared by the views: number and time formatting, smoothing, min/max
 * downsampling, merging series increments, filtering and sorting runs, config differences.
 * No DOM and no JupyterLab imports, so the unit tests run them in plain node.
 */

export type Num = number | null;

/** A value as the tables show it: 4 significant digits for floats, integers whole. */
export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) {
    return '–';
  }
  if (typeof v === 'number') {
    if (!isFinite(v)) {
      return String(v);
    }
    if (Number.isInteger(v) && Math.abs(v) < 1e15) {
      return String(v);
    }
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
      return v.toExponential(3).replace(/\.?0+e/, 'e');
    }
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'boolean') {
    return v ? 'true' : 'false';
  }
  if (typeof v === 'string') {
    return v;
  }
  return JSON.stringify(v);
}

/** "12 s", "5 min", "3 h", "2 d": how long ago / how long. */
export function fmtSpan(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  const s = Math.max(0, seconds);
  if (s < 60) {
    return `${Math.round(s)} s`;
  }
  if (s < 3600) {
    return `${Math.round(s / 60)} min`;
  }
  if (s < 86400) {
    return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  }
  return `${Math.round(s / 86400)} d`;
}

export const STATUSES = ['running', 'finished', 'failed', 'interrupted', 'crashed'];

/** The CSS modifier of a status; unknown statuses read as crashed (as the Python readers do). */
export function statusClass(status: string | null | undefined): string {
  return `nbt-status-${STATUSES.indexOf(status || '') >= 0 ? status : 'crashed'}`;
}

/**
 * Exponential moving average with bias correction (TensorBoard's smoothing), over points in
 * order; gaps (null, non-finite) stay gaps and do not reset the average.
 */
export function smooth(y: Num[], weight: number): Num[] {
  if (!(weight > 0)) {
    return y.slice();
  }
  const w = Math.min(weight, 0.999);
  let last = 0;
  let n = 0;
  return y.map(v => {
    if (v === null || !isFinite(v)) {
      return v;
    }
    last = last * w + (1 - w) * v;
    n += 1;
    return last / (1 - Math.pow(w, n));
  });
}

/**
 * At most about 2 * buckets points: the first and last point and, per bucket of consecutive
 * points, its minimum and its maximum (spikes are never hidden). x must be in log order.
 */
export function minmax(x: number[], y: Num[], buckets: number): [number[], Num[]] {
  const n = x.length;
  if (n <= 2 * buckets) {
    return [x.slice(), y.slice()];
  }
  const keep = new Set<number>([0, n - 1]);
  const width = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * width);
    const hi = Math.min(n, Math.floor((b + 1) * width));
    let imin = -1;
    let imax = -1;
    for (let i = lo; i < hi; i++) {
      const v = y[i];
      if (v === null || !isFinite(v)) {
        continue;
      }
      if (imin < 0 || v < (y[imin] as number)) {
        imin = i;
      }
      if (imax < 0 || v > (y[imax] as number)) {
        imax = i;
      }
    }
    if (imin < 0) {
      keep.add(lo); // an all-gap bucket stays a gap
    } else {
      keep.add(imin);
      keep.add(imax);
    }
  }
  const idx = Array.from(keep).sort((a, b) => a - b);
  return [idx.map(i => x[i]), idx.map(i => y[i])];
}

/** One metric as the browser holds it, and the server's reply for it. */
export interface SeriesData {
  n: number; // points of this metric the server has seen (the client's "have")
  x: number[];
  t: Num[];
  y: Num[];
}

export interface SeriesReply {
  n: number;
  from: number;
  replace: boolean;
  x: number[];
  t: Num[];
  y: Num[];
}

/** Points held per metric before the browser downsamples what it appended. */
export const MAX_HELD = 8192;

/**
 * Fold a reply into what the browser holds: a replacement, or the points after those it
 * had. An increment that does not start where the held data ends is refused (null): the
 * caller asks again for the whole series.
 */
export function mergeSeries(held: SeriesData | undefined, reply: SeriesReply): SeriesData | null {
  if (reply.replace || !held) {
    if (!reply.replace && reply.from !== 0) {
      return null;
    }
    return { n: reply.n, x: reply.x.slice(), t: reply.t.slice(), y: reply.y.slice() };
  }
  if (reply.from !== held.n) {
    return null;
  }
  let x = held.x.concat(reply.x);
  let y = held.y.concat(reply.y);
  let t = held.t.concat(reply.t);
  if (x.length > MAX_HELD) {
    const idx = x.map((_, i) => i);
    const [kept] = minmax(idx, y, MAX_HELD / 4);
    x = kept.map(i => x[i]);
    t = kept.map(i => t[i]);
    y = kept.map(i => y[i]);
  }
  return { n: reply.n, x, t, y };
}

/** A run as the listing returns it. */
export interface RunSummary {
  key: string;
  id: string;
  project: string;
  name: string;
  status: string;
  group: string | null;
  tags: string[];
  start_time: number | null;
  end_time: number | null;
  updated_time: number | null;
  rows: number;
  primary: {
    name: string;
    goal: string;
    last: unknown;
    best: unknown;
    best_step: unknown;
  } | null;
}

/** Flatten nested config objects to dotted keys. */
export function flatten(obj: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    const entries = Object.entries(obj as Record<string, unknown>);
    if (entries.length === 0 && prefix) {
      out[prefix] = {};
    }
    for (const [k, v] of entries) {
      flatten(v, prefix ? `${prefix}.${k}` : k, out);
    }
  } else if (prefix) {
    out[prefix] = obj;
  }
  return out;
}

/** Keys whose values differ between the given flat records (missing counts as a value). */
export function differingKeys(records: Record<string, unknown>[]): string[] {
  const keys = new Set<string>();
  records.forEach(r => Object.keys(r).forEach(k => keys.add(k)));
  const out: string[] = [];
  for (const k of Array.from(keys).sort()) {
    const seen = new Set(records.map(r => (k in r ? JSON.stringify(r[k]) : '\u0000missing')));
    if (seen.size > 1) {
      out.push(k);
    }
  }
  return out;
}

/** Compare two table cells: numbers numerically, then text; empty last. */
export function compareValues(a: unknown, b: unknown): number {
  const ea = a === null || a === undefined || a === '';
  const eb = b === null || b === undefined || b === '';
  if (ea || eb) {
    return ea === eb ? 0 : ea ? 1 : -1;
  }
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

const OPS: Record<string, (a: number, b: number) => boolean> = {
  '>=': (a, b) => a >= b,
  '<=': (a, b) => a <= b,
  '!=': (a, b) => a !== b,
  '>': (a, b) => a > b,
  '<': (a, b) => a < b,
  '=': (a, b) => a === b
};

/**
 * Whether a row matches a filter: space-separated terms, each a word to find in any cell
 * (case-insensitive) or `key op number` (op one of = != < <= > >=) on that column.
 */
export function matchesFilter(row: Record<string, unknown>, query: string): boolean {
  const terms = query.trim().split(/\s+/).filter(Boolean);
  return terms.every(term => {
    const m = /^([^<>=!]+)(>=|<=|!=|>|<|=)(.+)$/.exec(term);
    if (m && m[1] in row) {
      const v = row[m[1]];
      const want = Number(m[3]);
      if (typeof v === 'number' && !isNaN(want)) {
        return OPS[m[2]](v, want);
      }
      return m[2] === '=' ? fmtValue(v) === m[3] : m[2] === '!=' ? fmtValue(v) !== m[3] : false;
    }
    const needle = term.toLowerCase();
    return Object.values(row).some(v => fmtValue(v).toLowerCase().includes(needle));
  });
}

/** Values that a log axis cannot show become gaps; returns how many were hidden. */
export function forLog(y: Num[]): [Num[], number] {
  let hidden = 0;
  const out = y.map(v => {
    if (v !== null && v <= 0) {
      hidden += 1;
      return null;
    }
    return v;
  });
  return [out, hidden];
}
