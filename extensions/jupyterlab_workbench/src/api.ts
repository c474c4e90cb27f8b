import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, Fetcher, reportPath } from './model';

/**
 * Call the workbench REST API (`<base_url>workbench/<path>`). ServerConnection adds the token or
 * the `_xsrf` header the server requires; an error answer becomes an `ApiError` with its message.
 */
export const requestAPI: Fetcher = async (path, init = {}) => {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, `network error: ${(error as Error).message}`);
  }
  const text = await response.text();
  let data: any = null;
  if (text.length) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || response.statusText);
  }
  return data;
};

/** The absolute URL of a version's HTML evaluation report (opened in a new browser tab). */
export function reportUrl(model: string, version: number | string): string {
  return URLExt.join(ServerConnection.makeSettings().baseUrl, 'workbench', reportPath(model, version));
}
