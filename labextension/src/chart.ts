/**
 * Interactive charts drawn in the browser with uPlot: a toolbar (log y, smoothing, reset
 * zoom) over a grid of panels, one per metric, a line per run. Hover shows the values under
 * the cursor in each panel's legend, dragging zooms x (double-click resets), clicking a
 * legend entry hides or shows that line. Data updates keep the user's zoom.
 */
import uPlot from 'uplot';

import { el } from './dom';
import { fmtValue, forLog, Num, smooth } from './format';

export interface Line {
  name: string;
  x: number[];
  y: Num[];
}

export interface PanelData {
  title: string;
  group?: string;
  lines: Line[];
  best?: [number, number, string] | null;
}

export interface ChartSettings {
  logY: boolean;
  smoothing: number;
  xlabel: string;
}

export const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const HEIGHT = 200;

/** A theme colour for the canvas (canvas cannot resolve CSS variables itself). */
function themeColor(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

class PanelChart {
  readonly node = el('div', 'nbt-panel');
  private plot: uPlot | null = null;
  private signature = '';
  private zoomed = false;
  private titleNode = el('div', 'nbt-panel-title');
  private plotNode = el('div', 'nbt-panel-plot');
  private data: PanelData | null = null;

  constructor(private grid: ChartGrid) {
    this.node.append(this.titleNode, this.plotNode);
  }

  update(panel: PanelData, settings: ChartSettings, width: number): void {
    this.data = panel;
    let hidden = 0;
    const tables: uPlot.AlignedData[] = panel.lines.map(line => {
      let y = smooth(line.y, settings.smoothing);
      if (settings.logY) {
        const [logged, n] = forLog(y);
        y = logged;
        hidden += n;
      }
      return [line.x, y as any] as uPlot.AlignedData;
    });
    const data: uPlot.AlignedData =
      tables.length === 1 ? tables[0] : tables.length === 0 ? [[]] : uPlot.join(tables, tables.map(() => [1]));
    let title = panel.title;
    if (panel.best) {
      title += `  ·  ${panel.best[2]}`;
    }
    if (hidden) {
      title += `  (log: ${hidden} values ≤ 0 hidden)`;
    }
    this.titleNode.textContent = title;
    const signature = JSON.stringify([panel.lines.map(l => l.name), settings.logY, settings.xlabel]);
    if (this.plot && signature === this.signature) {
      this.plot.setData(data, !this.zoomed);
      if (Math.abs(this.plot.width - width) > 2) {
        this.plot.setSize({ width, height: HEIGHT });
      }
      return;
    }
    this.signature = signature;
    this.zoomed = false;
    this.plot?.destroy();
    const ink = themeColor('--jp-ui-font-color1', '#333');
    const grid = themeColor('--jp-border-color2', '#e0e0e0');
    const opts: uPlot.Options = {
      width,
      height: HEIGHT,
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { live: true },
      scales: { x: { time: false }, y: settings.logY ? { distr: 3 } : {} },
      axes: [
        { label: settings.xlabel, labelSize: 18, size: 32, stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { size: 56, stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: (_u, vals) => vals.map(v => fmtValue(v)) }
      ],
      series: [
        { label: settings.xlabel, value: (_u, v) => (v === null || v === undefined ? '--' : fmtValue(v)) },
        ...panel.lines.map((line, i) => ({
          label: line.name,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '--' : fmtValue(v))
        }))
      ],
      hooks: {
        setSelect: [
          u => {
            if (u.select.width > 0) {
              this.zoomed = true;
            }
          }
        ],
        draw: [u => this.drawBest(u)]
      }
    };
    this.plot = new uPlot(opts, data, this.plotNode);
    this.plotNode.ondblclick = () => this.resetZoom();
  }

  resetZoom(): void {
    this.zoomed = false;
    if (this.plot) {
      this.plot.setData(this.plot.data, true);
    }
  }

  private drawBest(u: uPlot): void {
    const best = this.data?.best;
    if (!best || this.grid.settings.logY && best[1] <= 0) {
      return;
    }
    const cx = u.valToPos(best[0], 'x', true);
    const cy = u.valToPos(best[1], 'y', true);
    if (!isFinite(cx) || !isFinite(cy)) {
      return;
    }
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = '#d62728';
    ctx.beginPath();
    ctx.arc(cx, cy, 4 * devicePixelRatio, 0, 2 * Math.PI);
    ctx.fill();
    ctx.restore();
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}

/** A toolbar and one uPlot panel per metric. */
export class ChartGrid {
  readonly node = el('div', 'nbt-charts');
  settings: ChartSettings;
  private toolbar = el('div', 'nbt-toolbar');
  private body = el('div', 'nbt-grid');
  private panels: PanelChart[] = [];
  private last: PanelData[] = [];
  private observer: ResizeObserver | null = null;
  private width = 0;

  constructor(settings: ChartSettings) {
    this.settings = { ...settings };
    const log = el('label', 'nbt-control');
    const logBox = el('input');
    logBox.type = 'checkbox';
    logBox.checked = settings.logY;
    logBox.className = 'nbt-log';
    logBox.onchange = () => {
      this.settings.logY = logBox.checked;
      this.render();
    };
    log.append(logBox, document.createTextNode(' log y'));
    const sm = el('label', 'nbt-control');
    const slider = el('input');
    slider.type = 'range';
    slider.min = '0';
    slider.max = '0.99';
    slider.step = '0.01';
    slider.value = String(settings.smoothing);
    slider.className = 'nbt-smoothing';
    const smValue = el('span', 'nbt-smoothing-value', settings.smoothing.toFixed(2));
    slider.oninput = () => {
      this.settings.smoothing = Number(slider.value);
      smValue.textContent = this.settings.smoothing.toFixed(2);
      this.render();
    };
    sm.append(document.createTextNode('smoothing '), slider, smValue);
    const reset = el('button', 'nbt-control nbt-reset jp-mod-styled', 'reset zoom');
    reset.onclick = () => this.panels.forEach(p => p.resetZoom());
    this.toolbar.append(log, sm, reset);
    this.node.append(this.toolbar, this.body);
  }

  /** Start following the node's width (call once it is in the document). */
  attach(): void {
    if (this.observer || typeof ResizeObserver === 'undefined') {
      return;
    }
    this.observer = new ResizeObserver(() => {
      const w = this.panelWidth();
      if (Math.abs(w - this.width) > 8) {
        this.render();
      }
    });
    this.observer.observe(this.node);
  }

  private panelWidth(): number {
    const total = this.node.clientWidth || 720;
    const cols = this.last.length > 1 && total >= 700 ? 2 : 1;
    return Math.max(240, Math.floor(total / cols) - 16);
  }

  setPanels(panels: PanelData[]): void {
    this.last = panels;
    this.render();
  }

  private render(): void {
    const panels = this.last;
    while (this.panels.length > panels.length) {
      const p = this.panels.pop()!;
      p.destroy();
      p.node.remove();
    }
    while (this.panels.length < panels.length) {
      const p = new PanelChart(this);
      this.panels.push(p);
      this.body.append(p.node);
    }
    this.width = this.panelWidth();
    panels.forEach((panel, i) => this.panels[i].update(panel, this.settings, this.width));
  }

  dispose(): void {
    this.observer?.disconnect();
    this.panels.forEach(p => p.destroy());
    this.panels = [];
  }
}
