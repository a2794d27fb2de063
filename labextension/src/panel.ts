/**
 * The "Runs" sidebar: every run under the run root the server sees, grouped by project, with
 * status, age, steps and the primary metric's best value; kept current by the model's polling.
 * Click a run to open it; tick several and press "compare" to overlay them.
 */
import { Widget } from '@lumino/widgets';

import { fmtSpan, fmtValue, RunSummary, statusClass } from './format';
import { RunsModel } from './model';

export class RunsPanel extends Widget {
  private list = document.createElement('div');
  private status = document.createElement('div');
  private filter = document.createElement('input');
  private selected = new Set<string>();
  private compareButton = document.createElement('button');

  constructor(
    private model: RunsModel,
    private open: (key: string) => void,
    private compare: (keys: string[]) => void
  ) {
    super();
    this.id = 'nbtracker-runs-panel';
    this.addClass('nbt-runs-panel');
    const head = document.createElement('div');
    head.className = 'nbt-panel-head';
    const title = document.createElement('h2');
    title.textContent = 'Runs';
    this.compareButton.className = 'jp-mod-styled nbt-compare-button';
    this.compareButton.textContent = 'compare';
    this.compareButton.disabled = true;
    this.compareButton.onclick = () => this.compare(Array.from(this.selected));
    head.append(title, this.compareButton);
    this.filter.type = 'search';
    this.filter.className = 'nbt-filter';
    this.filter.placeholder = 'filter runs';
    this.filter.oninput = () => this.render();
    this.status.className = 'nbt-panel-status';
    this.list.className = 'nbt-run-list';
    this.node.append(head, this.filter, this.status, this.list);
    model.changed.connect(() => this.render());
  }

  protected onAfterShow(): void {
    this.model.kick();
  }

  render(): void {
    const m = this.model;
    this.status.textContent = m.error ? `cannot list runs: ${m.error} (retrying)` : `${m.runs.size} run${m.runs.size === 1 ? '' : 's'} under ${m.root}`;
    this.status.classList.toggle('nbt-error', !!m.error);
    const needle = this.filter.value.trim().toLowerCase();
    const now = Date.now() / 1000;
    const groups = m.byProject();
    const nodes: HTMLElement[] = [];
    for (const [project, runs] of groups) {
      const shown = needle ? runs.filter(r => `${r.name} ${r.id} ${r.status} ${r.tags.join(' ')} ${project}`.toLowerCase().includes(needle)) : runs;
      if (!shown.length) {
        continue;
      }
      const section = document.createElement('details');
      section.open = true;
      section.className = 'nbt-project';
      const summary = document.createElement('summary');
      summary.textContent = `${project} (${shown.length})`;
      section.append(summary);
      for (const r of shown.slice(0, 500)) {
        section.append(this.row(r, now));
      }
      if (shown.length > 500) {
        const more = document.createElement('div');
        more.className = 'nbt-more';
        more.textContent = `${shown.length - 500} older runs not shown: filter to find them`;
        section.append(more);
      }
      nodes.push(section);
    }
    if (!nodes.length) {
      const empty = document.createElement('div');
      empty.className = 'nbt-empty';
      empty.textContent = m.generation === null ? 'loading…' : 'no runs yet: nbtracker.init() in a notebook starts one';
      nodes.push(empty);
    }
    this.list.replaceChildren(...nodes);
    for (const key of Array.from(this.selected)) {
      if (!m.runs.has(key)) {
        this.selected.delete(key);
      }
    }
    this.compareButton.disabled = this.selected.size < 2;
    this.compareButton.textContent = this.selected.size ? `compare (${this.selected.size})` : 'compare';
  }

  private row(r: RunSummary, now: number): HTMLElement {
    const row = document.createElement('div');
    row.className = `nbt-run ${statusClass(r.status)}`;
    row.dataset.key = r.key;
    row.dataset.status = r.status;
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = this.selected.has(r.key);
    box.onclick = e => e.stopPropagation();
    box.onchange = () => {
      box.checked ? this.selected.add(r.key) : this.selected.delete(r.key);
      this.compareButton.disabled = this.selected.size < 2;
      this.compareButton.textContent = this.selected.size ? `compare (${this.selected.size})` : 'compare';
    };
    const dot = document.createElement('span');
    dot.className = 'nbt-dot';
    dot.title = r.status;
    const name = document.createElement('span');
    name.className = 'nbt-run-name';
    name.textContent = r.name;
    const status = document.createElement('span');
    status.className = 'nbt-run-status';
    status.textContent = r.status;
    const meta = document.createElement('span');
    meta.className = 'nbt-run-meta';
    const age = r.start_time ? `${fmtSpan(now - r.start_time)} ago` : '';
    const best = r.primary && r.primary.best !== undefined && r.primary.best !== null ? ` · ${r.primary.name} ${fmtValue(r.primary.best)}` : '';
    meta.textContent = `${age} · ${r.rows} steps${best}`;
    row.title = `${r.project}/${r.id}${r.tags.length ? ' · ' + r.tags.join(', ') : ''}`;
    row.append(box, dot, name, status, meta);
    row.onclick = () => this.open(r.key);
    return row;
  }
}
