/** The one file that knows the server's URLs (nbtracker/server/handlers.py). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ListingReply, MetricsReply } from './model';

const settings = () => ServerConnection.makeSettings();

function runPath(key: string): string {
  const [project, id] = key.split('/');
  return `runs/${encodeURIComponent(project)}/${encodeURIComponent(id)}`;
}

async function get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
  const s = settings();
  const params = Object.entries(query)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const url = URLExt.join(s.baseUrl, 'nbtracker', 'api', path) + (params ? `?${params}` : '');
  const response = await ServerConnection.makeRequest(url, {}, s);
  if (!response.ok) {
    throw new Error(`nbtracker server: ${response.status} ${response.statusText}`);
  }
  return (await response.json()) as T;
}

export function listRuns(params: { offset?: number; limit?: number; since?: number }): Promise<ListingReply> {
  return get<ListingReply>('runs', params);
}

export function getRun(key: string): Promise<any> {
  return get<any>(runPath(key));
}

export function getMetrics(key: string, keys: string[] | null, have: Record<string, number>): Promise<MetricsReply> {
  return get<MetricsReply>(`${runPath(key)}/metrics`, {
    keys: keys === null ? undefined : JSON.stringify(keys),
    have: JSON.stringify(have)
  });
}

export function getCells(key: string): Promise<{ cells: any[] }> {
  return get(`${runPath(key)}/cells`);
}

export function getCode(key: string): Promise<{ 'clean.py': string | null; 'history.py': string | null; source: any; modules: any; git: any }> {
  return get(`${runPath(key)}/code`);
}

export function getAssets(key: string): Promise<any> {
  return get(`${runPath(key)}/assets`);
}

/** One file of a run as a blob: URL (fetched with the session's credentials, no token in the DOM). */
export async function fileBlobUrl(key: string, path: string): Promise<string> {
  const s = settings();
  const url = URLExt.join(s.baseUrl, 'nbtracker', 'api', runPath(key), 'file') + `?path=${encodeURIComponent(path)}`;
  const response = await ServerConnection.makeRequest(url, {}, s);
  if (!response.ok) {
    throw new Error(`nbtracker server: ${response.status} ${response.statusText}`);
  }
  return URL.createObjectURL(await response.blob());
}
