// The gateway's REST API, same origin. The session lives in this module's variables and
// nowhere else: not in Web Storage, not in a cookie. So the browser holds no ambient
// credential that another site could make it send (no CSRF), nothing stored outlives the
// page for a later script to find, and a reload signs out.

/** An error the API answered: `message` is for people, `code` for the console. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The request failed (HTTP ${status}).`);
    this.status = status;
    this.code = body?.code || 'http_error';
    this.requestId = body?.request_id || null;
    this.details = Array.isArray(body?.details) ? body.details : [];
  }
}

/** @type {{access: string, refresh: string, expiresAt: number} | null} */
let session = null;
/** The one refresh in flight: a spent refresh token used twice ends the whole session. */
let refreshing = null;
let onSessionEnded = () => {};

/** Called when the session ends by itself (refresh refused): the app signs out. */
export function whenSessionEnds(callback) {
  onSessionEnded = callback;
}

export function signedIn() {
  return session !== null;
}

/** Keeps the tokens of a signup, login or refresh answer. */
function keep(tokens) {
  session = {
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    // Refresh a little early, so a request is never sent with a token about to lapse.
    expiresAt: Date.now() + Math.max(0, (tokens.expires_in - 30) * 1000),
  };
}

export function forget() {
  session = null;
}

async function send(method, path, { body, bearer, query } = {}) {
  const headers = { Accept: 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Nothing ambient: no cookies, no HTTP auth, whatever the browser holds.
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, { code: 'network_error', message: 'The console could not reach the server. Check your connection and try again.' });
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return { body: json, headers: response.headers };
}

async function refreshSession() {
  if (!refreshing) {
    const spent = session?.refresh;
    refreshing = (async () => {
      try {
        const { body } = await send('POST', '/api/v1/auth/refresh', { body: { refresh_token: spent } });
        keep(body);
      } catch (error) {
        // Only the API's refusal ends the session; a network blip keeps it (and any
        // secret on screen) for the next try.
        if (error instanceof ApiError && (error.status === 400 || error.status === 401)) {
          forget();
          onSessionEnded();
        }
        throw error;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/**
 * A call with the session bearer; refreshes the access token when it is about to lapse
 * or was refused as expired, once. Answers the JSON body.
 */
export async function call(method, path, options = {}) {
  return (await callWithHeaders(method, path, options)).body;
}

/** As `call`, answering `{body, headers}` (for the `Link` header of the key list). */
export async function callWithHeaders(method, path, options = {}) {
  if (!session) throw new ApiError(401, { code: 'signed_out', message: 'Sign in first.' });
  if (Date.now() >= session.expiresAt) await refreshSession();
  try {
    return await send(method, path, { ...options, bearer: session.access });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && error.code === 'token_expired' && session) {
      await refreshSession();
      return send(method, path, { ...options, bearer: session.access });
    }
    throw error;
  }
}

/** A call that needs no credential (sign-in, signup, verification). */
export async function anonymous(method, path, options = {}) {
  return (await send(method, path, options)).body;
}

export async function signUp(email, password, name) {
  const answer = await anonymous('POST', '/api/v1/auth/signup', { body: { email, password, name } });
  keep(answer);
  return answer.user;
}

export async function signIn(email, password) {
  const answer = await anonymous('POST', '/api/v1/auth/login', { body: { email, password } });
  keep(answer);
  return answer.user;
}

/** Ends the session at the server too, so its tokens are refused from now on. */
export async function signOut() {
  if (!session) return;
  try {
    await call('POST', '/api/v1/auth/logout');
  } finally {
    forget();
  }
}
