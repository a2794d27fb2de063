/**
 * Main-area views: one run (charts, config and summary, the cell timeline, the captured code,
 * files, checkpoints, images and text) and a comparison of several runs (overlaid charts and
 * the config and summary values that differ). Everything from the run is set as text.
 */
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { ChartGrid, PanelData } from './chart';
import { el } from './dom';
import { differingKeys, flatten, fmtSpan, fmtValue, statusClass } from './format';
import { SeriesModel } from './model';

/** Panels drawn at most (the rest are listed by name). */
const MAX_PANELS = 24;

function kvTable(record: Record<string, unknown>, cls: string): HTMLTableElement {
  const table = el('table', `nbt-table ${cls}`);
  const body = el('tbody');
  for (const k of Object.keys(record).sort()) {
    const tr = el('tr');
    tr.append(el('th', undefined, k), el('td', undefined, fmtValue(record[k])));
    body.append(tr);
  }
  table.append(body);
  return table;
}

/** Metric keys in panel order: the primary metric first, then grouped by prefix. */
export function panelOrder(keys: string[], primary: string | null): string[] {
  const sorted = keys.slice().sort((a, b) => {
    const ga = a.includes('/') ? a.slice(0, a.lastIndexOf('/')) : '';
    const gb = b.includes('/') ? b.slice(0, b.lastIndexOf('/')) : '';
    return ga === gb ? a.localeCompare(b) : ga.localeCompare(gb);
  });
  if (primary && sorted.includes(primary)) {
    sorted.splice(sorted.indexOf(primary), 1);
    sorted.unshift(primary);
  }
  return sorted;
}

abstract class Poller extends Widget {
  private timer: any = null;
  protected abstract refresh(): Promise<boolean>; // returns whether to keep polling

  protected schedule(delay: number): void {
    if (this.isDisposed) {
      return;
    }
    this.timer = setTimeout(async () => {
      let again = false;
      try {
        again = await this.refresh();
      } catch (e) {
        console.warn('nbtracker: refresh failed', e);
        again = true;
        delay = Math.min(30000, delay * 2);
      }
      if (again) {
        this.schedule(Math.max(1000, delay));
      }
    }, delay);
  }

  dispose(): void {
    clearTimeout(this.timer);
    super.dispose();
  }
}

export class RunView extends Poller {
  private doc: any = null;
  private series: SeriesModel;
  private chart = new ChartGrid({ logY: false, smoothing: 0, xlabel: 'step' });
  private header = el('div', 'nbt-run-header');
  private tabs = el('div', 'nbt-tabs');
  private pages: Record<string, HTMLElement> = {};
  private loaded = new Set<string>();
  private more = el('div', 'nbt-note');
  private blobUrls: string[] = [];

  constructor(readonly key: string) {
    super();
    this.addClass('nbt-run-view');
    this.id = `nbtracker-run-${key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.title.label = key.split('/')[1];
    this.title.closable = true;
    this.series = new SeriesModel((keys, have) => api.getMetrics(key, keys, have));
    const names = ['charts', 'config', 'cells', 'code', 'files'];
    for (const name of names) {
      const button = el('button', 'nbt-tab', name);
      button.dataset.tab = name;
      button.onclick = () => this.showTab(name);
      this.tabs.append(button);
      this.pages[name] = el('div', `nbt-page nbt-page-${name}`);
    }
    this.pages.charts.append(this.chart.node, this.more);
    this.node.append(this.header, this.tabs, ...names.map(n => this.pages[n]));
    this.series.changed.connect(() => this.drawCharts());
    this.showTab('charts');
    this.schedule(0);
  }

  protected onAfterAttach(): void {
    this.chart.attach();
  }

  private showTab(name: string): void {
    for (const [n, page] of Object.entries(this.pages)) {
      page.hidden = n !== name;
    }
    this.tabs.querySelectorAll('button').forEach(b => b.classList.toggle('nbt-active', b.dataset.tab === name));
    if (!this.loaded.has(name) && name !== 'charts') {
      this.loaded.add(name);
      void this.loadPage(name);
    }
  }

  protected async refresh(): Promise<boolean> {
    this.doc = await api.getRun(this.key);
    this.renderHeader();
    await this.series.update();
    if (!this.loaded.has('config')) {
      this.renderConfig();
    }
    return this.doc.status === 'running' || this.series.partial;
  }

  private renderHeader(): void {
    const d = this.doc;
    this.title.label = d.name;
    const name = el('span', 'nbt-run-title', d.name);
    const status = el('span', `nbt-status ${statusClass(d.status)}`, d.status);
    const bits = [`${d.project}/${d.id}`, d.start_time ? `started ${fmtSpan(Date.now() / 1000 - d.start_time)} ago` : '', `${d.rows || 0} steps`];
    if (d.primary_metric) {
      const pm = d.primary_metric.name;
      const best = d.summary?.[`best/${pm}`];
      if (best !== undefined) {
        bits.push(`best ${pm} ${fmtValue(best)} @ ${fmtValue(d.summary?.[`best_step/${pm}`])}`);
      }
    }
    if (d.tags?.length) {
      bits.push(`tags: ${d.tags.join(', ')}`);
    }
    const meta = el('span', 'nbt-run-meta', bits.filter(Boolean).join(' · '));
    const parts: HTMLElement[] = [name, status, meta];
    if (d.notes) {
      parts.push(el('div', 'nbt-notes', d.notes));
    }
    if (d.error) {
      parts.push(el('div', 'nbt-error', `${d.error.type}: ${d.error.message}`));
    }
    this.header.replaceChildren(...parts);
  }

  private drawCharts(): void {
    const primary = this.doc?.primary_metric?.name || null;
    const keys = panelOrder(Array.from(this.series.series.keys()), primary);
    const panels: PanelData[] = keys.slice(0, MAX_PANELS).map(k => {
      const s = this.series.series.get(k)!;
      let best: [number, number, string] | null = null;
      if (k === primary) {
        const b = this.doc.summary?.[`best/${k}`];
        const step = this.doc.summary?.[`best_step/${k}`];
        if (typeof b === 'number' && typeof step === 'number') {
          best = [step, b, `best ${fmtValue(b)} @ ${step}`];
        }
      }
      return { title: k, lines: [{ name: this.doc?.name || k, x: s.x, y: s.y }], best };
    });
    const notes = [];
    if (this.series.partial) {
      notes.push(`reading the whole history (${fmtValue(this.doc?.rows)} rows); the latest ${this.series.rows} rows meanwhile…`);
    }
    if (keys.length > MAX_PANELS) {
      notes.push(`${keys.length - MAX_PANELS} more metrics: ${keys.slice(MAX_PANELS).join(', ')}`);
    }
    if (!keys.length) {
      notes.push('no metrics logged yet');
    }
    this.more.textContent = notes.join(' · ');
    this.chart.setPanels(panels);
  }

  private renderConfig(): void {
    const page = this.pages.config;
    const d = this.doc;
    page.replaceChildren(el('h3', undefined, 'config'), kvTable(flatten(d.config || {}), 'nbt-config'), el('h3', undefined, 'summary'), kvTable(d.summary || {}, 'nbt-summary'));
  }

  private async loadPage(name: string): Promise<void> {
    const page = this.pages[name];
    page.textContent = 'loading…';
    try {
      if (name === 'config') {
        this.renderConfig();
      } else if (name === 'cells') {
        page.replaceChildren(this.cellsTable((await api.getCells(this.key)).cells));
      } else if (name === 'code') {
        const code = await api.getCode(this.key);
        const parts: HTMLElement[] = [];
        const hidden = code.source?.hidden_state;
        const findings: string[] = [];
        if (hidden?.checked) {
          for (const o of hidden.out_of_order || []) {
            findings.push(`cell [${o.execution_count}] ran out of order (notebook cell ${o.cell} after cell ${o.after_cell})`);
          }
          for (const c of hidden.changed_after_run || []) {
            findings.push(`cell [${c.execution_count}] logged ${c.rows} rows and was edited in the notebook since`);
          }
          for (const m of hidden.rows_from_missing_cells || []) {
            findings.push(`cell [${m.execution_count}] logged ${m.rows} rows and is not in the notebook file`);
          }
          for (const n of hidden.names_from_deleted_cells || []) {
            findings.push(n.note);
          }
        }
        for (const e of code.modules?.edited_not_reloaded || []) {
          findings.push(`${e.path}: ${e.note}`);
        }
        if (findings.length) {
          parts.push(el('h3', undefined, 'hidden state'));
          const ul = el('ul', 'nbt-hidden-state');
          findings.forEach(f => ul.append(el('li', undefined, f)));
          parts.push(ul);
        }
        const mods = code.modules?.modules || [];
        if (mods.length) {
          parts.push(el('h3', undefined, `local modules (${mods.length})`));
          const ul = el('ul', 'nbt-modules');
          mods.forEach((m: any) => ul.append(el('li', undefined, `${m.path} v${m.version} (${String(m.sha256).slice(0, 12)}, cells ${m.cells[0]}–${m.cells[1]})${m.reloaded ? ' reloaded' : ''}`)));
          parts.push(ul);
        }
        if (code.git) {
          const g = code.git;
          parts.push(el('div', 'nbt-note', g.git === 'ok' ? `git: ${g.branch || '?'} @ ${String(g.commit || 'no commit').slice(0, 12)}${g.dirty ? ` with uncommitted changes (${g.changed_files} files)` : ''}${g.remote ? ` · ${g.remote}` : ''}` : `git: ${g.git}`));
        }
        for (const file of ['clean.py', 'history.py'] as const) {
          parts.push(el('h3', undefined, file === 'clean.py' ? 'clean (the last version of each cell)' : 'history (every execution, in order)'));
          parts.push(el('pre', `nbt-code nbt-code-${file.split('.')[0]}`, code[file] ?? 'not captured'));
        }
        const source = code.source;
        if (source) {
          parts.push(el('h3', undefined, 'the notebook file and what ran'));
          const d = source.differences;
          const found = source.path ? `${source.path} (found by ${source.method})` : `not found (tried: ${(source.tried || []).join('; ')})`;
          parts.push(el('div', 'nbt-note', `notebook: ${found}`));
          if (d) {
            parts.push(el('div', 'nbt-note', d.identical ? 'the file holds exactly the code that ran' : `cells in the file never run: ${d.cells_in_file_never_run} · cells run but not in the file: ${d.cells_run_not_in_file}`));
            if (Array.isArray(d.diff) && d.diff.length) {
              const pre = el('pre', 'nbt-code nbt-diff-lines');
              for (const line of d.diff as string[]) {
                const cls = line.startsWith('+') && !line.startsWith('+++') ? 'nbt-add' : line.startsWith('-') && !line.startsWith('---') ? 'nbt-del' : line.startsWith('@@') ? 'nbt-hunk' : '';
                pre.append(el('span', cls, line.endsWith('\n') ? line : line + '\n'));
              }
              parts.push(pre);
            }
          }
        }
        page.replaceChildren(...parts);
      } else if (name === 'files') {
        page.replaceChildren(...(await this.assets()));
      }
    } catch (e) {
      page.textContent = `could not load: ${e}`;
      this.loaded.delete(name);
    }
  }

  private cellsTable(cells: any[]): HTMLElement {
    if (!cells.length) {
      return el('div', 'nbt-empty', 'no cells recorded (cells are recorded in notebooks and IPython with %load_ext nbtracker)');
    }
    const table = el('table', 'nbt-table nbt-cells');
    const head = el('tr');
    ['cell', 'status', 'started', 'duration', 'steps', 'rows', 'code'].forEach(h => head.append(el('th', undefined, h)));
    const body = el('tbody');
    for (const c of cells) {
      const tr = el('tr', `nbt-cell ${c.status === 'ok' ? '' : 'nbt-cell-' + c.status}`);
      const steps = Array.isArray(c.steps) ? `${c.steps[0]}–${c.steps[1]}` : '–';
      const started = typeof c.start === 'number' ? new Date(c.start * 1000).toLocaleTimeString() : '–';
      const src = el('details');
      const first = String(c.source || '').split('\n')[0];
      src.append(el('summary', undefined, first.length > 80 ? first.slice(0, 80) + '…' : first), el('pre', 'nbt-code', c.source || ''));
      const status = c.error ? `${c.status}: ${c.error.type}` : c.status;
      [`[${c.execution_count}]`, status, started, fmtSpan(c.duration), steps, String(c.rows ?? 0)].forEach(v => tr.append(el('td', undefined, v)));
      const td = el('td');
      td.append(src);
      tr.append(td);
      body.append(tr);
    }
    const thead = el('thead');
    thead.append(head);
    table.append(thead, body);
    return table;
  }

  private async assets(): Promise<HTMLElement[]> {
    const a = await api.getAssets(this.key);
    const out: HTMLElement[] = [];
    if (a.checkpoints.length) {
      out.push(el('h3', undefined, `checkpoints (${a.checkpoints.length})`));
      const table = el('table', 'nbt-table nbt-checkpoints');
      for (const c of a.checkpoints) {
        const tr = el('tr');
        const metrics = Object.entries(c.metrics || {}).map(([k, v]) => `${k} ${fmtValue(v)}`).join(', ');
        [c.id, `step ${fmtValue(c.step)}`, metrics, c.files.map((f: any) => f.path).join(', ')].forEach(v => tr.append(el('td', undefined, v)));
        table.append(tr);
      }
      out.push(table);
    }
    for (const [label, list] of [['saved files', a.files], ['outputs', a.outputs]] as [string, any[]][]) {
      if (list.length) {
        out.push(el('h3', undefined, `${label} (${list.length})`));
        const ul = el('ul', 'nbt-files');
        list.forEach(f => ul.append(el('li', undefined, `${f.path} (${fmtValue(f.size)} bytes)`)));
        out.push(ul);
      }
    }
    for (const [key, images] of Object.entries(a.images) as [string, any[]][]) {
      out.push(el('h3', undefined, `images: ${key}`));
      const strip = el('div', 'nbt-images');
      for (const img of images.slice(-24)) {
        const fig = el('figure');
        const tag = el('img');
        tag.alt = `${key} step ${img.step}`;
        api.fileBlobUrl(this.key, img.path).then(url => {
          this.blobUrls.push(url);
          tag.src = url;
        }, () => (tag.alt = `${key}: could not load`));
        fig.append(tag, el('figcaption', undefined, `step ${fmtValue(img.step)}`));
        strip.append(fig);
      }
      out.push(strip);
    }
    if (a.text.length) {
      out.push(el('h3', undefined, 'text'));
      out.push(el('pre', 'nbt-log', a.text.map((t: any) => `${t.level ? t.level + ' ' : ''}${t.step !== undefined && t.step !== null ? '[' + t.step + '] ' : ''}${t.text}`).join('\n')));
    }
    if (a.console.length) {
      out.push(el('h3', undefined, 'console'));
      out.push(el('pre', 'nbt-log nbt-console', a.console.map((c: any) => c.line).join('\n')));
    }
    if (!out.length) {
      out.push(el('div', 'nbt-empty', 'no checkpoints, files, images, text or console output in this run'));
    }
    return out;
  }

  dispose(): void {
    this.chart.dispose();
    this.blobUrls.forEach(u => URL.revokeObjectURL(u));
    super.dispose();
  }
}

export class CompareView extends Poller {
  private docs: any[] = [];
  private models: SeriesModel[];
  private chart = new ChartGrid({ logY: false, smoothing: 0, xlabel: 'step' });
  private diff = el('div', 'nbt-diff');

  constructor(readonly keys: string[]) {
    super();
    this.addClass('nbt-compare-view');
    this.id = `nbtracker-compare-${keys.join('-').replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.title.label = `compare ${keys.length} runs`;
    this.title.closable = true;
    this.models = keys.map(k => new SeriesModel((ks, have) => api.getMetrics(k, ks, have)));
    this.node.append(el('h2', undefined, `${keys.length} runs`), this.chart.node, el('h3', undefined, 'config and summary values that differ'), this.diff);
    this.schedule(0);
  }

  protected onAfterAttach(): void {
    this.chart.attach();
  }

  protected async refresh(): Promise<boolean> {
    this.docs = await Promise.all(this.keys.map(k => api.getRun(k)));
    await Promise.all(this.models.map(m => m.update()));
    this.draw();
    return this.docs.some(d => d.status === 'running') || this.models.some(m => m.partial);
  }

  private draw(): void {
    const primary = this.docs.find(d => d.primary_metric)?.primary_metric?.name || null;
    const all = new Set<string>();
    this.models.forEach(m => m.series.forEach((_, k) => all.add(k)));
    const keys = panelOrder(Array.from(all), primary).slice(0, 12);
    const panels: PanelData[] = keys.map(k => ({
      title: k,
      lines: this.models.flatMap((m, i) => {
        const s = m.series.get(k);
        return s ? [{ name: this.docs[i].name, x: s.x, y: s.y }] : [];
      })
    }));
    this.chart.setPanels(panels);
    const records = this.docs.map(d => ({ ...flatten(d.config || {}, 'config'), ...flatten(d.summary || {}, 'summary') }));
    const differ = differingKeys(records);
    const table = el('table', 'nbt-table nbt-diff-table');
    const head = el('tr');
    head.append(el('th', undefined, 'key'));
    this.docs.forEach(d => head.append(el('th', undefined, d.name)));
    const thead = el('thead');
    thead.append(head);
    const body = el('tbody');
    for (const k of differ) {
      const tr = el('tr');
      tr.append(el('th', undefined, k));
      records.forEach(r => tr.append(el('td', undefined, k in r ? fmtValue(r[k]) : '–')));
      body.append(tr);
    }
    table.append(thead, body);
    this.diff.replaceChildren(differ.length ? table : el('div', 'nbt-empty', 'no differences in config or summary'));
  }

  dispose(): void {
    this.chart.dispose();
    super.dispose();
  }
}
