import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import { requestAPI } from './api';
import { PanelModel } from './model';
import { WorkbenchPanel } from './panel';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<path d="M3 3h8v8H3zm10 0h8v5h-8zM3 13h8v8H3zm10-3h8v11h-8z"/></g></svg>';

export const workbenchIcon = new LabIcon({ name: 'workbench:panel', svgstr: ICON_SVG });

/** The workbench side panel (left area): experiments, models, deployments, monitors, lineage. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-workbench:plugin',
  description: 'workbench side panel over the workbench REST API',
  autoStart: true,
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd) => {
    const model = new PanelModel(requestAPI);
    const panel = new WorkbenchPanel(model);
    panel.title.icon = workbenchIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    app.commands.addCommand('workbench:open-panel', {
      label: 'Show the workbench panel',
      execute: () => app.shell.activateById(panel.id)
    });
    // Polls only while shown; the first version check runs now so "extension missing" shows at once.
    model.setVisible(panel.isVisible && !document.hidden);
    void model.start();
  }
};

export default plugin;
