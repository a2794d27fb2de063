/**
 * State without DOM: the run listing kept current by polling with back-off, and one run's
 * series kept current by increments. Views subscribe to `changed`; the fetching functions are
 * injected (api.ts in the browser, stubs in the unit tests).
 */
import { mergeSeries, RunSummary, SeriesData, SeriesReply } from './format';

export type Listener = () => void;

/** A tiny signal: views connect, the model emits. */
export class Changed {
  private listeners: Listener[] = [];
  connect(fn: Listener): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter(l => l !== fn);
    };
  }
  emit(): void {
    for (const fn of this.listeners.slice()) {
      try {
        fn();
      } catch (e) {
        console.error('nbtracker: a view failed to update', e);
      }
    }
  }
}

export interface ListingReply {
  root: string;
  generation: number;
  total: number;
  projects: string[];
  unreadable: number;
  runs?: RunSummary[];
  offset?: number;
  changed?: RunSummary[];
  removed?: string[];
  complete?: boolean;
}

export type FetchListing = (params: { offset?: number; limit?: number; since?: number }) => Promise<ListingReply>;

/** Polling intervals (ms): fast while runs are running or changing, slower when all rest. */
export const POLL = { active: 1000, idle: 5000, max: 30000 };

/**
 * All runs under the root: the first poll pages through the listing, later polls ask only
 * for what changed since the generation they have. The next delay is `POLL.active` while a
 * run is running or something changed, then grows (x2) to `POLL.idle`; errors back off
 * (x2) to `POLL.max`.
 */
export class RunsModel {
  readonly changed = new Changed();
  runs = new Map<string, RunSummary>();
  root = '';
  error: string | null = null;
  generation: number | null = null;
  delay = POLL.active;
  private timer: any = null;
  private stopped = false;

  constructor(private fetchListing: FetchListing, private pageSize = 2000) {}

  /** One poll; returns the delay before the next. */
  async poll(): Promise<number> {
    let changed = false;
    try {
      if (this.generation === null) {
        const fresh = new Map<string, RunSummary>();
        let offset = 0;
        let reply: ListingReply;
        do {
          reply = await this.fetchListing({ offset, limit: this.pageSize });
          (reply.runs || []).forEach(r => fresh.set(r.key, r));
          offset += this.pageSize;
        } while (offset < reply.total);
        this.runs = fresh;
        this.root = reply.root;
        this.generation = reply.generation;
        changed = true;
      } else {
        const reply = await this.fetchListing({ since: this.generation, limit: this.pageSize });
        if (reply.complete === false) {
          this.generation = null; // too much changed: read the listing again
          return this.poll();
        }
        for (const r of reply.changed || []) {
          this.runs.set(r.key, r);
          changed = true;
        }
        for (const key of reply.removed || []) {
          changed = this.runs.delete(key) || changed;
        }
        this.generation = reply.generation;
        this.root = reply.root;
      }
      const wasError = this.error !== null;
      this.error = null;
      const running = Array.from(this.runs.values()).some(r => r.status === 'running');
      this.delay = changed || running ? POLL.active : Math.min(POLL.idle, this.delay * 2);
      if (changed || wasError) {
        this.changed.emit();
      }
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      this.delay = Math.min(POLL.max, Math.max(POLL.active, this.delay * 2));
      this.changed.emit();
    }
    return this.delay;
  }

  /** Poll now and then on the back-off schedule, until `stop`. */
  start(): void {
    this.stopped = false;
    const loop = async () => {
      const delay = await this.poll();
      if (!this.stopped) {
        this.timer = setTimeout(loop, delay);
      }
    };
    if (this.timer === null) {
      void loop();
    }
  }

  /** Poll soon (a user action), resetting the back-off. */
  kick(): void {
    this.delay = POLL.active;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.start();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Runs grouped by project (projects sorted), newest first within each. */
  byProject(): [string, RunSummary[]][] {
    const groups = new Map<string, RunSummary[]>();
    for (const r of this.runs.values()) {
      const list = groups.get(r.project) || [];
      list.push(r);
      groups.set(r.project, list);
    }
    return Array.from(groups.entries())
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([p, list]) => [p, list.sort((a, b) => (b.start_time || 0) - (a.start_time || 0))]);
  }
}

export interface MetricsReply {
  rows: number;
  keys: string[];
  series: Record<string, SeriesReply>;
  /** The server is still reading a long history: these are the rows at the end of the file. */
  partial?: { bytes: number; tail_rows: number };
}

export type FetchMetrics = (keys: string[] | null, have: Record<string, number>) => Promise<MetricsReply>;

/** One run's series, fetched whole once and then by increments (`have` says what we hold). */
export class SeriesModel {
  readonly changed = new Changed();
  series = new Map<string, SeriesData>();
  keys: string[] = [];
  rows = 0;
  /** The last reply was partial (a long history still being read): poll again. */
  partial = false;

  constructor(private fetchMetrics: FetchMetrics) {}

  have(): Record<string, number> {
    const out: Record<string, number> = {};
    this.series.forEach((s, k) => (out[k] = s.n));
    return out;
  }

  /** Fetch what is new; returns whether anything changed. */
  async update(keys: string[] | null = null): Promise<boolean> {
    const reply = await this.fetchMetrics(keys, this.have());
    let changed = reply.rows !== this.rows || reply.keys.length !== this.keys.length || !!reply.partial !== this.partial;
    this.partial = !!reply.partial;
    const refetch: string[] = [];
    for (const [key, part] of Object.entries(reply.series)) {
      if (part.x.length === 0 && !part.replace && this.series.has(key)) {
        continue;
      }
      const merged = mergeSeries(this.series.get(key), part);
      if (merged === null) {
        this.series.delete(key);
        refetch.push(key);
        continue;
      }
      this.series.set(key, merged);
      changed = true;
    }
    this.rows = reply.rows;
    this.keys = reply.keys;
    if (refetch.length) {
      await this.update(refetch);
    }
    if (changed) {
      this.changed.emit();
    }
    return changed;
  }
}
