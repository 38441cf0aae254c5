// A small client for the HTTP API. URLs are relative to the page, so the same files work
// on the local stack (http://127.0.0.1:8000/) and behind API Gateway (https://.../api/).

const TOKEN_KEY = "imgbatch.apiToken";

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export const auth = {
  get token() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  },
  set token(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, value);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* private mode: the token lives for this page only */
    }
    memoryToken = value || "";
  },
  current() {
    return memoryToken || this.token;
  },
};
let memoryToken = "";

/** Listeners told when the API answers 401 (the token was revoked or mistyped). */
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

export function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url.toString();
}

/**
 * Call the API; resolves to {status, data, headers} for 2xx, throws ApiError otherwise.
 * `accept` lists extra non-2xx statuses that should resolve instead of throwing.
 */
export async function request(method, path, { params, body, token, signal, accept = [] } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? auth.current();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, params), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "NetworkError", "Cannot reach the API: check your connection and try again.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok || accept.includes(response.status)) {
    return { status: response.status, data, headers: response.headers };
  }
  const code = (data && (data.Code || data.code)) || `HTTP${response.status}`;
  let message =
    (data && (data.Message || data.message)) ||
    `${response.status} ${response.statusText || "error"}`.trim();
  if (response.status === 403 && !(data && data.Code) && /Missing Authentication Token|Authorization header requires/.test(message)) {
    // API Gateway (and chalice local) answer an unknown route this way.
    message = `This server has no ${method} ${path.split("?")[0]} endpoint (the gateway answered 403 for an unknown route).`;
  }
  const error = new ApiError(response.status, code, message, data);
  if (response.status === 401 && token === undefined) {
    for (const fn of unauthorizedListeners) fn(error);
  }
  throw error;
}

export const api = {
  stats: () => request("GET", "batches/stats").then((r) => r.data),
  pipelines: () => request("GET", "pipelines").then((r) => r.data.pipelines),
  createPipeline: (spec) => request("POST", "pipelines", { body: spec }).then((r) => r.data.pipeline),
  replacePipeline: (id, spec) =>
    request("PUT", `pipelines/${encodeURIComponent(id)}`, { body: spec }).then((r) => r.data.pipeline),
  deletePipeline: (id) => request("DELETE", `pipelines/${encodeURIComponent(id)}`),
  listBatches: (params) => request("GET", "batches", { params }).then((r) => r.data),
  getBatch: (id, params) =>
    request("GET", `batches/${encodeURIComponent(id)}`, { params }).then((r) => r.data.batch),
  createBatch: (payload) => request("POST", "batches", { body: payload }).then((r) => r.data),
  uploads: (id, cursor) =>
    request("GET", `batches/${encodeURIComponent(id)}/uploads`, { params: { cursor } }).then((r) => r.data),
  /** Start or resume a file's upload in parts: {parts_uploaded, parts (URLs of parts to send), next_after, ...}. */
  startMultipart: (id, jobId, after) =>
    request("POST", `batches/${encodeURIComponent(id)}/jobs/${encodeURIComponent(jobId)}/multipart`, {
      params: { after, limit: 1000 },
    }).then((r) => r.data.upload),
  completeMultipart: (id, jobId) =>
    request("POST", `batches/${encodeURIComponent(id)}/jobs/${encodeURIComponent(jobId)}/multipart/complete`).then((r) => r.data),
  cancelBatch: (id) => request("POST", `batches/${encodeURIComponent(id)}/cancel`).then((r) => r.data.batch),
  retryBatch: (id) => request("POST", `batches/${encodeURIComponent(id)}/retry`).then((r) => r.data.batch),
  deleteBatch: (id) => request("DELETE", `batches/${encodeURIComponent(id)}`),
  /** {url} of one job's output (a short-lived URL, Content-Disposition attachment). */
  jobOutput: (jobId, pipelineId) =>
    request("GET", `jobs/${encodeURIComponent(jobId)}/download`, {
      params: { redirect: "false", pipeline_id: pipelineId },
    }).then((r) => r.data),
  /** {url, file_name, expires_at, size} of the batch's results as csv, xlsx or json. */
  results: (id, format) =>
    request("GET", `batches/${encodeURIComponent(id)}/results`, { params: { format, redirect: "false" } }).then((r) => r.data),
  /** {url, file_name, ..., part, parts} of one part of the batch's contact sheet (PDF). */
  contactSheet: (id, part = 1) =>
    request("GET", `batches/${encodeURIComponent(id)}/contact-sheet`, { params: { part, redirect: "false" } }).then((r) => r.data),
  patchBatch: (id, fields) =>
    request("PATCH", `batches/${encodeURIComponent(id)}`, { body: fields }).then((r) => r.data.batch),
  webhooks: () => request("GET", "webhooks").then((r) => r.data.webhooks),
  createWebhook: (spec) => request("POST", "webhooks", { body: spec }).then((r) => r.data),
  deleteWebhook: (id) => request("DELETE", `webhooks/${encodeURIComponent(id)}`),
  pingWebhook: (id) => request("POST", `webhooks/${encodeURIComponent(id)}/ping`).then((r) => r.data.delivery),
  deliveries: (id, cursor) =>
    request("GET", `webhooks/${encodeURIComponent(id)}/deliveries`, { params: { cursor, limit: 20 } }).then((r) => r.data),
  redeliver: (id, deliveryId) =>
    request("POST", `webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`)
      .then((r) => r.data.delivery),
  /** 200 ready {url, file_name}, 202 building {retry_after}; 409 etc. throw. */
  download: (id, partial) =>
    request("GET", `batches/${encodeURIComponent(id)}/download`, {
      params: { redirect: "false", partial: partial ? "true" : undefined },
      accept: [202],
    }),
};
