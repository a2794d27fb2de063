/**
 * nbtracker for JupyterLab and Notebook 7: the plugin objects and command ids only.
 * - renderers for the kernel's chart and runs-table outputs (mime.ts);
 * - a "Runs" panel in the left sidebar (panel.ts over model.ts, fed by api.ts);
 * - main-area run and comparison views (runview.ts);
 * - the `nbtracker` comm target on every notebook kernel: the kernel opens it and, when this
 *   extension answers, sends chart data for the browser to draw instead of drawing PNG frames.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Kernel } from '@jupyterlab/services';
import { listIcon } from '@jupyterlab/ui-components';

import * as api from './api';
import { CHART_MIME, chartFactory, RUNS_MIME, runsFactory } from './mime';
import { RunsModel } from './model';
import { RunsPanel } from './panel';
import { CompareView, RunView } from './runview';

export const COMMANDS = {
  openRun: 'nbtracker:open-run',
  compare: 'nbtracker:compare',
  showRuns: 'nbtracker:show-runs'
};

export const COMM_TARGET = 'nbtracker';

/** Answer the kernel's probe: this frontend draws nbtracker charts itself. */
function registerComm(kernel: Kernel.IKernelConnection | null | undefined, done: WeakSet<object>): void {
  if (!kernel || done.has(kernel)) {
    return;
  }
  done.add(kernel);
  kernel.registerCommTarget(COMM_TARGET, comm => {
    comm.send({ renderer: 'nbtracker', mimetypes: [CHART_MIME, RUNS_MIME] });
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbtracker:plugin',
  description: 'nbtracker: a Runs panel, run views, and browser-drawn charts for nbtracker outputs.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [INotebookTracker, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, rendermime: IRenderMimeRegistry, notebooks: INotebookTracker | null, restorer: ILayoutRestorer | null) => {
    rendermime.addFactory(chartFactory(), 20);
    rendermime.addFactory(runsFactory(), 20);

    const done = new WeakSet<object>();
    const watch = (panel: NotebookPanel) => {
      const ctx = panel.sessionContext;
      ctx.kernelChanged.connect((_, change) => registerComm(change.newValue, done));
      ctx.ready.then(() => registerComm(ctx.session?.kernel, done)).catch(() => undefined);
      registerComm(ctx.session?.kernel, done);
    };
    notebooks?.widgetAdded.connect((_, panel) => watch(panel));
    notebooks?.forEach(panel => watch(panel));

    const open = (key: string) => {
      const id = `nbtracker-run-${key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
      const existing = Array.from(app.shell.widgets('main')).find(w => w.id === `${id}-main`);
      if (existing) {
        app.shell.activateById(existing.id);
        return;
      }
      const view = new RunView(key);
      const widget = new MainAreaWidget({ content: view });
      widget.id = `${id}-main`;
      widget.title.label = key.split('/')[1];
      widget.title.closable = true;
      view.title.changed.connect(() => (widget.title.label = view.title.label));
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };
    const compare = (keys: string[]) => {
      const view = new CompareView(keys);
      const widget = new MainAreaWidget({ content: view });
      widget.id = `${view.id}-main`;
      widget.title.label = view.title.label;
      widget.title.closable = true;
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };
    app.commands.addCommand(COMMANDS.openRun, {
      label: 'Open nbtracker run',
      execute: args => open(String(args.key))
    });
    app.commands.addCommand(COMMANDS.compare, {
      label: 'Compare nbtracker runs',
      execute: args => compare((args.keys as string[]) || [])
    });

    const model = new RunsModel(api.listRuns);
    const panel = new RunsPanel(model, open, compare);
    panel.title.icon = listIcon;
    panel.title.caption = 'nbtracker runs';
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'nbtracker-runs-panel');
    app.commands.addCommand(COMMANDS.showRuns, {
      label: 'Show nbtracker runs',
      execute: () => app.shell.activateById(panel.id)
    });
    model.start();
  }
};

export default plugin;
