/**
 * Output renderers for what the kernel sends next to its PNG/HTML/text:
 * - `application/vnd.nbtracker.chart+json`: a run's live chart or a comparison, drawn with
 *   uPlot; updates from `update_display` re-render in place (zoom is kept);
 * - `application/vnd.nbtracker.runs+json`: the runs table, sortable and filterable, with
 *   checkboxes to overlay the selected runs' metric (series fetched from the server extension).
 * The data lives in the output, so a saved notebook renders both again with no kernel.
 * Run names, keys and values are set as text (never as HTML); the header HTML the kernel
 * builds goes through JupyterLab's sanitizer.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { getMetrics } from './api';
import { ChartGrid, Line, PanelData } from './chart';
import { compareValues, fmtSpan, fmtValue, matchesFilter, mergeSeries, statusClass } from './format';

export const CHART_MIME = 'application/vnd.nbtracker.chart+json';
export const RUNS_MIME = 'application/vnd.nbtracker.runs+json';

export interface ChartPayload {
  version: number;
  kind: 'live' | 'compare';
  title: string;
  xlabel: string;
  status?: string;
  options: { log_y: boolean; smoothing: number };
  header?: string;
  footer?: string;
  note?: string;
  panels: { title: string; group?: string; lines: { name: string; x: number[]; y: (number | null)[] }[]; best?: [number, number, string] | null }[];
}

function sanitized(options: IRenderMime.IRendererOptions, html: string | undefined): HTMLDivElement {
  const div = document.createElement('div');
  if (html) {
    div.innerHTML = options.sanitizer.sanitize(html);
  }
  return div;
}

export class ChartRenderer extends Widget implements IRenderMime.IRenderer {
  private grid: ChartGrid | null = null;
  private header: HTMLDivElement | null = null;
  private footer: HTMLDivElement | null = null;
  private headerHtml = '';
  private footerHtml = '';
  private note = document.createElement('div');
  updates = 0;

  constructor(private options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('nbtracker-chart-output');
    this.note.className = 'nbt-note';
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[CHART_MIME] as unknown as ChartPayload;
    if (!data || !Array.isArray(data.panels)) {
      this.node.textContent = 'nbtracker: this chart output is damaged';
      return;
    }
    if (this.grid === null) {
      this.grid = new ChartGrid({ logY: !!data.options?.log_y, smoothing: data.options?.smoothing || 0, xlabel: data.xlabel || 'step' });
      this.header = sanitized(this.options, data.header);
      this.header.className = 'nbt-header';
      this.headerHtml = data.header || '';
      this.footer = sanitized(this.options, data.footer);
      this.footer.className = 'nbt-footer';
      this.footerHtml = data.footer || '';
      this.node.append(this.header, this.grid.node, this.note, this.footer);
    } else {
      if ((data.header || '') !== this.headerHtml) {
        this.headerHtml = data.header || '';
        this.header!.innerHTML = this.options.sanitizer.sanitize(this.headerHtml);
      }
      if ((data.footer || '') !== this.footerHtml) {
        this.footerHtml = data.footer || '';
        this.footer!.innerHTML = this.options.sanitizer.sanitize(this.footerHtml);
      }
    }
    this.note.textContent = data.note || '';
    this.node.dataset.status = data.status || '';
    this.node.dataset.points = String(data.panels.reduce((n, p) => n + p.lines.reduce((m, l) => m + l.x.length, 0), 0));
    this.updates += 1;
    this.node.dataset.updates = String(this.updates);
    this.grid.setPanels(data.panels.map(p => ({ title: p.title, group: p.group, lines: p.lines, best: p.best || null })));
    requestAnimationFrame(() => this.grid?.attach());
  }

  protected onAfterAttach(): void {
    this.grid?.attach();
  }

  dispose(): void {
    this.grid?.dispose();
    super.dispose();
  }
}

export interface RunsPayload {
  version: number;
  columns: { label: string; kind: string }[];
  rows: { key: string; name: string; status: string; values: unknown[] }[];
  metrics: string[];
}

/** The runs table: sort by a header click, filter by words or `key op value`, overlay selected runs. */
export class RunsRenderer extends Widget implements IRenderMime.IRenderer {
  private payload: RunsPayload | null = null;
  private sortCol = -1;
  private descending = false;
  private selected = new Set<string>();
  private filterBox = document.createElement('input');
  private table = document.createElement('table');
  private caption = document.createElement('div');
  private overlay = document.createElement('div');
  private metricSelect = document.createElement('select');
  private chart: ChartGrid | null = null;

  constructor(_options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('nbtracker-runs-output');
    this.filterBox.type = 'search';
    this.filterBox.className = 'nbt-filter';
    this.filterBox.placeholder = 'filter: words, or key>value (lr<0.01 status=crashed)';
    this.filterBox.oninput = () => this.renderRows();
    this.table.className = 'nbt-table';
    this.caption.className = 'nbt-caption';
    const bar = document.createElement('div');
    bar.className = 'nbt-toolbar';
    const button = document.createElement('button');
    button.className = 'jp-mod-styled nbt-overlay-button';
    button.textContent = 'overlay selected';
    button.onclick = () => void this.drawOverlay();
    bar.append(this.filterBox, this.metricSelect, button);
    this.overlay.className = 'nbt-overlay';
    this.node.append(bar, this.table, this.caption, this.overlay);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.payload = model.data[RUNS_MIME] as unknown as RunsPayload;
    this.metricSelect.replaceChildren(
      ...(this.payload.metrics || []).map(m => {
        const o = document.createElement('option');
        o.value = m;
        o.textContent = m;
        return o;
      })
    );
    this.renderRows();
  }

  private renderRows(): void {
    const p = this.payload;
    if (!p) {
      return;
    }
    const head = document.createElement('thead');
    const tr = document.createElement('tr');
    tr.append(document.createElement('th'));
    p.columns.forEach((c, i) => {
      const th = document.createElement('th');
      th.textContent = c.label + (this.sortCol === i ? (this.descending ? ' ▼' : ' ▲') : '');
      th.onclick = () => {
        this.descending = this.sortCol === i ? !this.descending : false;
        this.sortCol = i;
        this.renderRows();
      };
      tr.append(th);
    });
    head.append(tr);
    const records = p.rows.map(r => {
      const rec: Record<string, unknown> = {};
      p.columns.forEach((c, i) => (rec[c.label] = r.values[i]));
      return { row: r, rec };
    });
    let shown = records.filter(r => matchesFilter(r.rec, this.filterBox.value));
    if (this.sortCol >= 0) {
      const i = this.sortCol;
      shown = shown.slice().sort((a, b) => {
        const c = compareValues(a.row.values[i], b.row.values[i]);
        const empty = a.row.values[i] === null || b.row.values[i] === null;
        return this.descending && !empty ? -c : c;
      });
    }
    const body = document.createElement('tbody');
    for (const { row } of shown) {
      const tr = document.createElement('tr');
      const pick = document.createElement('td');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = this.selected.has(row.key);
      box.onchange = () => (box.checked ? this.selected.add(row.key) : this.selected.delete(row.key));
      pick.append(box);
      tr.append(pick);
      p.columns.forEach((c, i) => {
        const td = document.createElement('td');
        const v = row.values[i];
        if (c.kind === 'status') {
          td.className = statusClass(String(v));
        }
        td.textContent = c.kind === 'time' && typeof v === 'number' ? `${fmtSpan(Date.now() / 1000 - v)} ago` : c.kind === 'duration' && typeof v === 'number' ? fmtSpan(v) : fmtValue(v);
        tr.append(td);
      });
      body.append(tr);
    }
    this.table.replaceChildren(head, body);
    this.caption.textContent = this.filterBox.value ? `${shown.length} of ${p.rows.length} runs` : `${p.rows.length} runs`;
  }

  private async drawOverlay(): Promise<void> {
    const p = this.payload;
    const metric = this.metricSelect.value;
    if (!p || !metric || this.selected.size === 0) {
      this.overlay.textContent = 'select runs (checkboxes) and a metric to overlay';
      return;
    }
    const lines: Line[] = [];
    for (const row of p.rows.filter(r => this.selected.has(r.key))) {
      try {
        const reply = await getMetrics(row.key, [metric], {});
        const s = reply.series[metric] ? mergeSeries(undefined, reply.series[metric]) : null;
        if (s) {
          lines.push({ name: row.name, x: s.x, y: s.y });
        }
      } catch (e) {
        this.overlay.textContent = `could not read ${row.name} from the server: ${e}`;
        return;
      }
    }
    if (this.chart === null) {
      this.chart = new ChartGrid({ logY: false, smoothing: 0, xlabel: 'step' });
      this.overlay.replaceChildren(this.chart.node);
      this.chart.attach();
    }
    const panel: PanelData = { title: metric, lines };
    this.chart.setPanels([panel]);
  }

  dispose(): void {
    this.chart?.dispose();
    super.dispose();
  }
}

export function chartFactory(): IRenderMime.IRendererFactory {
  return { safe: true, mimeTypes: [CHART_MIME], defaultRank: 20, createRenderer: options => new ChartRenderer(options) };
}

export function runsFactory(): IRenderMime.IRendererFactory {
  return { safe: true, mimeTypes: [RUNS_MIME], defaultRank: 20, createRenderer: options => new RunsRenderer(options) };
}
