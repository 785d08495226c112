/*! MpacPay WebView SDK — take one payment through MPAC pgw with a 5-minute payment token.
 *  docs/webview-sdk.md. Dependency-free; no console output (tokens and cards are never logged). */
// The source of /sdk/v1/mpac-pay.mjs. `python -m webview_sdk.build` writes dist/: this module, the
// script-tag build (the same code wrapped in a function that defines window.MpacPay) and the
// type declarations. Keep to plain `export const|function|class` declarations and one
// `export default`: that is what the build knows how to unwrap.

export const VERSION = "1.0.0";

// Where this file was loaded from: pgw serves the SDK, so its origin is pgw's and the default
// baseUrl. (The script-tag build reads document.currentScript instead.)
const SDK_URL = import.meta.url;

/** The codes a MpacPayError carries (docs/webview-sdk.md#errors). */
export const ErrorCode = Object.freeze({
  TOKEN_EXPIRED: "token_expired",
  TOKEN_INVALID: "token_invalid",
  TOKEN_USED: "token_used",
  DECLINED: "declined",
  CANCELLED: "cancelled",
  TIMEOUT: "timeout",
  NETWORK: "network",
  DOUBLE_SUBMIT: "double_submit",
  GATEWAY: "gateway",
});

/** The events a client emits (`client.on(name, handler)`). */
export const EVENTS = Object.freeze(["statuschange", "qrcode", "paid", "failed", "cancelled"]);

const MESSAGES = {
  token_expired: "This payment session has expired. Ask the staff to start again.",
  token_invalid: "This payment session is not valid. Ask the staff to start again.",
  token_used: "This payment session was already used for a payment.",
  declined: "The payment was declined.",
  cancelled: "The payment was cancelled.",
  timeout: "The payment was not completed in time.",
  network: "The connection was lost. Check the network and try again.",
  double_submit: "A payment is already in progress.",
  gateway: "The payment could not be completed.",
};

/** Every failure of the SDK's promises: `code` says what happened, `retryable` whether
 *  `client.retry()` (same Idempotency-Key / request id, never a second charge) may help. */
export class MpacPayError extends Error {
  constructor(code, message, options = {}) {
    super(message || MESSAGES[code] || code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MpacPayError";
    this.code = code;
    this.retryable = Boolean(options.retryable);
    this.declineCode = options.declineCode ?? null;
    this.problemCode = options.problemCode ?? null;
    this.status = options.status ?? null;
    this.paymentId = options.paymentId ?? null;
    this.problem = options.problem ?? null;
    this.retryAfterMs = options.retryAfterMs ?? 0;
  }
}

// ISO 4217 minor-unit digits of the currencies pgw accepts (backend/pgw/payments/schemas.py).
const CURRENCY_DIGITS = { JPY: 0, KRW: 0, USD: 2, EUR: 2, GBP: 2, AUD: 2, SGD: 2, THB: 2, TWD: 2 };

/** `amount` in minor units (an integer: yen for JPY, cents for USD) as people read it:
 *  `formatAmount(1200, "JPY")` is "¥1,200", `formatAmount(1999, "USD")` is "$19.99". */
export function formatAmount(amount, currency = "JPY", locale = "en-US") {
  if (!Number.isSafeInteger(amount)) {
    throw new TypeError("amount must be an integer number of minor units");
  }
  const code = String(currency).toUpperCase();
  const sign = amount < 0 ? "-" : "";
  const digits = String(Math.abs(amount));
  if (code === "JPY") {
    return `${sign}¥${digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}`;
  }
  const exponent =
    CURRENCY_DIGITS[code] ??
    new Intl.NumberFormat(locale, { style: "currency", currency: code }).resolvedOptions()
      .maximumFractionDigits;
  // A decimal string, not a float: Intl formats it exactly.
  const padded = digits.padStart(exponent + 1, "0");
  const decimal =
    exponent === 0 ? padded : `${padded.slice(0, -exponent)}.${padded.slice(-exponent)}`;
  return new Intl.NumberFormat(locale, {
    style: "currency",
    currency: code,
    minimumFractionDigits: exponent,
    maximumFractionDigits: exponent,
  }).format(`${sign}${decimal}`);
}

// pgw payment statuses: money moved (paid) and the ones that never change again.
const PAID_STATUSES = new Set(["authorized", "captured", "partially_refunded", "refunded"]);
const FINAL_STATUSES = new Set([...PAID_STATUSES, "declined", "failed", "canceled", "voided", "expired"]);

const TOKEN_PROBLEMS = {
  payment_token_expired: "token_expired",
  payment_token_invalid: "token_invalid",
  payment_token_revoked: "token_invalid",
  payment_token_required: "token_invalid",
  missing_token: "token_invalid",
  payment_token_used: "token_used",
};
// Problems worth the same request again after a pause (same Idempotency-Key).
const RETRYABLE_PROBLEMS = new Set([
  "idempotency_request_in_progress",
  "provider_unavailable",
  "provider_timeout",
  "too_many_attempts",
]);

// The Credit Card App's error codes (terminal_emulator/contract.py ErrorCode) as decline codes.
const NATIVE_DECLINES = {
  DECLINED_GENERIC: "generic_decline",
  DECLINED_INSUFFICIENT_FUNDS: "insufficient_funds",
  DECLINED_LOST_CARD: "lost_card",
  DECLINED_STOLEN_CARD: "stolen_card",
  DECLINED_EXPIRED_CARD: "expired_card",
  DECLINED_PROCESSING_ERROR: "processing_error",
  DECLINED_DO_NOT_HONOR: "do_not_honor",
  DECLINED_INVALID_NUMBER: "invalid_number",
  DECLINED_WALLET: "wallet_declined",
  PIN_REQUIRED: "pin_required",
  INCORRECT_PIN: "incorrect_pin",
};
const NATIVE_RETRYABLE = new Set(["NETWORK_ERROR", "PROVIDER_UNAVAILABLE", "TERMINAL_BUSY"]);

// TEST ONLY: the simulated acquirer's catalogue (docs/provider.md). Shown by the browser
// fallback when no native bridge exists; a real page never sees a card number.
const TEST_CARDS = [
  { id: "visa-approved", pan: "4242424242424242", brand: "Visa", outcome: "approved" },
  { id: "mastercard-approved", pan: "5555555555554444", brand: "Mastercard", outcome: "approved" },
  { id: "jcb-approved", pan: "3566002020360505", brand: "JCB", outcome: "approved" },
  { id: "visa-declined", pan: "4000000000000002", brand: "Visa", outcome: "declined: generic_decline" },
  { id: "visa-insufficient-funds", pan: "4000000000009995", brand: "Visa", outcome: "declined: insufficient_funds" },
  { id: "visa-do-not-honor", pan: "4000000000001026", brand: "Visa", outcome: "declined: do_not_honor" },
];

// --- native bridge (window.MpacNative ⇄ window.MpacPay._nativeResult) ----------------------

const pendingNativeCalls = new Map();

/** Called by the Business App with the answer to `MpacNative.request(json)`: the call's id and
 *  the Credit Card App's TransactionResult JSON. Returns whether the call was known. */
export function _nativeResult(callId, resultJson) {
  const call = pendingNativeCalls.get(callId);
  if (!call) return false;
  pendingNativeCalls.delete(callId);
  try {
    call.resolve(typeof resultJson === "string" ? JSON.parse(resultJson) : resultJson);
  } catch (error) {
    call.reject(new MpacPayError("gateway", "The terminal answered with an unreadable result.", { cause: error }));
  }
  return true;
}

function installGlobal() {
  // The Business App answers through window.MpacPay._nativeResult, also for pages that
  // imported the ES module (which defines no global by itself).
  const root = globalThis;
  try {
    if (!root.MpacPay) {
      root.MpacPay = MpacPay;
    } else if (root.MpacPay._nativeResult !== _nativeResult) {
      const previous = root.MpacPay._nativeResult;
      root.MpacPay._nativeResult = (callId, resultJson) =>
        _nativeResult(callId, resultJson) ||
        (typeof previous === "function" ? previous(callId, resultJson) : false);
    }
  } catch {
    // a frozen or foreign window.MpacPay: native answers cannot reach this copy
  }
}

// --- small helpers --------------------------------------------------------------------------

function randomId() {
  const cryptoApi = globalThis.crypto;
  if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const bytes = cryptoApi.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function cancelledError(message) {
  return new MpacPayError("cancelled", message);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(cancelledError());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(cancelledError());
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function retryAfterMs(headers) {
  const value = Number(headers?.get?.("retry-after"));
  return Number.isFinite(value) && value > 0 ? Math.min(value, 30) * 1000 : 0;
}

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function errorFromProblem(httpStatus, problem, headers) {
  const body = problem && typeof problem === "object" ? problem : {};
  const problemCode = typeof body.code === "string" ? body.code : null;
  const detail = typeof body.detail === "string" ? body.detail : undefined;
  const common = { status: httpStatus, problemCode, problem: body };
  if (problemCode && TOKEN_PROBLEMS[problemCode]) {
    const code = TOKEN_PROBLEMS[problemCode];
    return new MpacPayError(code, MESSAGES[code], { ...common, paymentId: body.payment_id ?? null });
  }
  const retryable =
    RETRYABLE_PROBLEMS.has(problemCode) || (!problemCode && [429, 502, 503, 504].includes(httpStatus));
  return new MpacPayError("gateway", detail || `pgw answered ${httpStatus}.`, {
    ...common,
    retryable,
    retryAfterMs: retryAfterMs(headers),
  });
}

function resultFromPayment(payment, method) {
  const result = {
    status: "paid",
    paymentId: payment.id,
    paymentStatus: payment.status,
    method,
    amount: payment.amount,
    tipAmount: payment.tip_amount ?? 0,
    currency: payment.currency,
    authCode: payment.auth_code ?? null,
    createdAt: payment.created_at ?? null,
  };
  if (payment.card && payment.card.last4) {
    result.card = { brand: payment.card.brand, last4: payment.card.last4 };
  }
  return result;
}

function errorFromPayment(payment) {
  const common = { paymentId: payment.id, problemCode: payment.failure_code ?? null };
  switch (payment.status) {
    case "declined":
      return new MpacPayError("declined", payment.failure_message || MESSAGES.declined, {
        ...common,
        declineCode: payment.failure_code ?? "declined",
      });
    case "expired":
      return new MpacPayError("timeout", "The QR code expired before it was paid.", common);
    case "canceled":
    case "voided":
      return new MpacPayError("cancelled", MESSAGES.cancelled, common);
    default:
      return new MpacPayError("gateway", payment.failure_message || MESSAGES.gateway, common);
  }
}

function resultFromNative(doc, attempt) {
  const last4 = typeof doc.masked_pan === "string" ? doc.masked_pan.slice(-4) : null;
  const result = {
    status: "paid",
    paymentId: doc.payment_id ?? null,
    paymentStatus: doc.payment_status ?? "captured",
    method: "card",
    amount: doc.amount ?? attempt.amount,
    tipAmount: doc.tip_amount ?? attempt.tipAmount,
    currency: doc.currency ?? attempt.currency,
    authCode: doc.auth_code ?? null,
    createdAt: doc.completed_at ?? null,
  };
  if (last4) result.card = { brand: doc.card_brand ?? null, last4 };
  return result;
}

function errorFromNative(doc) {
  const errorCode = typeof doc.error_code === "string" ? doc.error_code : null;
  const common = { paymentId: doc.payment_id ?? null, problemCode: errorCode };
  const message = typeof doc.error_message === "string" ? doc.error_message : undefined;
  switch (doc.status) {
    case "declined":
      return new MpacPayError("declined", message || MESSAGES.declined, {
        ...common,
        declineCode: NATIVE_DECLINES[errorCode] ?? (errorCode ? errorCode.toLowerCase() : "declined"),
      });
    case "cancelled":
      return new MpacPayError("cancelled", message, common);
    case "timeout":
      return new MpacPayError("timeout", message, common);
    default:
      if (errorCode === "NETWORK_ERROR") return new MpacPayError("network", message, { ...common, retryable: true });
      return new MpacPayError("gateway", message, { ...common, retryable: NATIVE_RETRYABLE.has(errorCode) });
  }
}

// --- the browser fallback's test-card picker (TEST ONLY) -----------------------------------

function pickTestCard(signal, amountText) {
  return new Promise((resolve, reject) => {
    const doc = globalThis.document;
    if (!doc || !doc.body) {
      reject(new MpacPayError("gateway", "No native bridge and no document for the test-card picker."));
      return;
    }
    const overlay = doc.createElement("div");
    overlay.className = "mpac-pay-test-cards";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "Test card");
    // Styles through the CSSOM: allowed under a CSP without 'unsafe-inline'.
    Object.assign(overlay.style, {
      position: "fixed", inset: "0", background: "rgba(0,0,0,0.55)", display: "flex",
      alignItems: "flex-end", justifyContent: "center", zIndex: "2147483647",
      fontFamily: "system-ui, sans-serif",
    });
    const panel = doc.createElement("div");
    Object.assign(panel.style, {
      background: "#fff", color: "#222", width: "100%", maxWidth: "420px", borderRadius: "12px 12px 0 0",
      padding: "16px", boxSizing: "border-box", boxShadow: "0 -4px 16px rgba(0,0,0,0.3)",
    });
    const title = doc.createElement("div");
    title.textContent = `Present a card — ${amountText}`;
    Object.assign(title.style, { fontWeight: "700", fontSize: "18px", marginBottom: "4px" });
    const warning = doc.createElement("div");
    warning.textContent = "TEST MODE: no card reader here. Pick a test card of the simulated acquirer.";
    Object.assign(warning.style, {
      fontSize: "12px", color: "#8a4b00", background: "#fff4e0", padding: "6px 8px",
      borderRadius: "6px", marginBottom: "10px",
    });
    panel.append(title, warning);
    const finish = (action) => {
      signal?.removeEventListener("abort", onAbort);
      overlay.remove();
      action();
    };
    for (const card of TEST_CARDS) {
      const button = doc.createElement("button");
      button.type = "button";
      button.dataset.mpacTestCard = card.id;
      button.textContent = `${card.brand} •••• ${card.pan.slice(-4)} — ${card.outcome}`;
      Object.assign(button.style, {
        display: "block", width: "100%", textAlign: "left", padding: "10px 12px", margin: "6px 0",
        fontSize: "15px", border: "1px solid #ccc", borderRadius: "8px", background: "#fafafa",
        color: "#222", cursor: "pointer",
      });
      button.addEventListener("click", () => finish(() => resolve(card)));
      panel.append(button);
    }
    const cancel = doc.createElement("button");
    cancel.type = "button";
    cancel.dataset.mpacTestCard = "cancel";
    cancel.textContent = "Cancel";
    Object.assign(cancel.style, {
      display: "block", width: "100%", padding: "10px", marginTop: "10px", fontSize: "15px",
      border: "0", borderRadius: "8px", background: "#555", color: "#fff", cursor: "pointer",
    });
    cancel.addEventListener("click", () => finish(() => reject(cancelledError("The customer cancelled."))));
    panel.append(cancel);
    overlay.append(panel);
    function onAbort() {
      finish(() => reject(cancelledError()));
    }
    if (signal?.aborted) {
      reject(cancelledError());
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    doc.body.append(overlay);
  });
}

// --- the client -----------------------------------------------------------------------------

/** One payment session: made by `init({token})`. */
export class MpacPayClient {
  #token;
  #baseUrl;
  #fetch;
  #options;
  #listeners = new Map();
  #session = null;
  #sessionFetchedAt = 0;
  #status = "idle";
  #operation = null; // the pay/retry in flight
  #attempt = null; // the last attempt, kept while a retry of it may help

  constructor(options) {
    const settings = options || {};
    const token = settings.token;
    if (typeof token !== "string" || !/^pt_[A-Za-z0-9_-]{10,200}$/.test(token)) {
      throw new MpacPayError("token_invalid", "init() needs the payment token (pt_…) the terminal issued.");
    }
    this.#token = token;
    const sdkOrigin = SDK_URL ? new URL(SDK_URL).origin : "null";
    const fallbackBase = sdkOrigin !== "null" ? sdkOrigin : globalThis.location?.origin;
    this.#baseUrl = String(settings.baseUrl || fallbackBase || "").replace(/\/+$/, "");
    const fetchImpl = settings.fetch || globalThis.fetch;
    this.#fetch = (...args) => fetchImpl.apply(globalThis, args);
    this.#options = {
      retries: settings.retries ?? 3,
      retryDelayMs: settings.retryDelayMs ?? 500,
      pollIntervalMs: settings.pollIntervalMs ?? 1000,
      stream: settings.stream ?? true,
      nativeTimeoutMs: settings.nativeTimeoutMs ?? 180000,
      bridge: settings.bridge ?? null,
    };
    installGlobal();
  }

  /** pgw's origin the client talks to. */
  get baseUrl() {
    return this.#baseUrl;
  }

  /** "native" when the Business App injected window.MpacNative, else "test" (browser fallback). */
  get cardMode() {
    return this.#bridge() ? "native" : "test";
  }

  /** The last status announced by `statuschange`. */
  get status() {
    return this.#status;
  }

  /** Whether a pay (or retry) is in flight. */
  get busy() {
    return this.#operation !== null;
  }

  /** Whether `retry()` has a failed attempt it could repeat safely. */
  get canRetry() {
    return this.#operation === null && Boolean(this.#attempt?.retryable);
  }

  on(type, handler) {
    if (!EVENTS.includes(type)) throw new TypeError(`Unknown event "${type}"; one of ${EVENTS.join(", ")}`);
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this.#listeners.get(type)?.delete(handler);
  }

  /** The token's limits: `{amount, currency, expiresIn, expiresAt, paymentId, storeId, …}`. */
  async getSession() {
    const { body } = await this.#withRetry(null, (signal) =>
      this.#request("GET", "/v1/payment-tokens/current", { signal }),
    );
    this.#session = {
      id: body.id,
      amount: body.amount ?? null,
      currency: body.currency ?? null,
      expiresIn: body.expires_in,
      expiresAt: body.expires_at,
      paymentId: body.payment_id ?? null,
      storeId: body.store_id,
      terminalId: body.terminal_id ?? null,
    };
    this.#sessionFetchedAt = Date.now();
    return { ...this.#session };
  }

  /** Seconds the token has left by the local clock since the last getSession(), or null. */
  get expiresIn() {
    if (!this.#session) return null;
    return Math.max(0, this.#session.expiresIn - Math.floor((Date.now() - this.#sessionFetchedAt) / 1000));
  }

  /** Like the module's formatAmount; amount and currency default to the session's. */
  formatAmount(amount, currency, locale) {
    return formatAmount(
      amount ?? this.#session?.amount,
      currency ?? this.#session?.currency ?? "JPY",
      locale,
    );
  }

  /** Card present: the Credit Card App through the native bridge, or (TEST ONLY, no bridge)
   *  a test-card picker and a card payment made directly at pgw. */
  payByCard(options = {}) {
    return this.#start("card", options);
  }

  /** QR wallet: creates the payment, emits `qrcode`, waits for the wallet (SSE, else polling). */
  payByQr(options = {}) {
    return this.#start("qr", options);
  }

  /** Repeats the last attempt after a retryable failure with the same Idempotency-Key (or the
   *  Credit Card App's request id), so it can never charge twice. */
  retry() {
    if (this.#operation) return Promise.reject(new MpacPayError("double_submit"));
    const attempt = this.#attempt;
    if (!attempt || !attempt.retryable) {
      return Promise.reject(new MpacPayError("gateway", "There is no failed attempt to retry."));
    }
    return this.#execute(attempt);
  }

  /** Stops the payment in flight if it still can be: the picker or the Credit Card App is
   *  waiting for a card, a QR code is still unpaid (voided at pgw). Resolves true when the
   *  payment ended cancelled, false when there was nothing to cancel or it was too late. */
  async cancel() {
    const operation = this.#operation;
    if (!operation) {
      if (this.#attempt?.retryable && !this.#attempt.sent) this.#attempt = null;
      return false;
    }
    const attempt = operation.attempt;
    if (!attempt) return false; // still reading the session: nothing started yet
    if (operation.native) {
      const bridge = this.#bridge();
      this.#callNative(bridge, "cancel", { request_id: attempt.requestId }, 10000).catch(() => {});
    } else if (attempt.kind === "qr" && attempt.paymentId) {
      try {
        await this.#request("POST", `/v1/payments/${attempt.paymentId}/void`, {
          body: {},
          key: randomId(),
        });
        operation.controller.abort();
      } catch {
        return (await operation.done) === "cancelled";
      }
    } else if (!attempt.sent || attempt.kind === "qr") {
      // nothing sent yet, or a QR payment whose code nobody has seen: no money can move
      operation.controller.abort();
    } else {
      return false; // a card payment already went to pgw: it completes (or fails) as it is
    }
    return (await operation.done) === "cancelled";
  }

  /** Revokes the token (DELETE /v1/payment-tokens/current): do it when the page is done. */
  async revoke() {
    await this.#request("DELETE", "/v1/payment-tokens/current", {});
  }

  // --- internals ----------------------------------------------------------------------------

  #bridge() {
    const bridge = this.#options.bridge ?? globalThis.MpacNative;
    return bridge && typeof bridge.request === "function" ? bridge : null;
  }

  #emit(type, detail) {
    for (const handler of [...(this.#listeners.get(type) || [])]) {
      try {
        handler(detail);
      } catch (error) {
        // a page's handler must not break the payment; surface it without logging here
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  #setStatus(status, extra = {}) {
    const previous = this.#status;
    this.#status = status;
    this.#emit("statuschange", { status, previous, ...extra });
  }

  async #start(kind, options) {
    if (this.#operation) throw new MpacPayError("double_submit");
    // Claim at once, before any await: a second click in the same tick is a double submit.
    const claim = { pending: true };
    this.#operation = claim;
    let attempt;
    try {
      attempt = await this.#prepare(kind, options || {});
    } catch (error) {
      this.#operation = null;
      this.#status = "idle";
      throw error;
    }
    if (this.#operation === claim) this.#operation = null;
    return this.#execute(attempt);
  }

  async #prepare(kind, options) {
    let amount = options.amount ?? null;
    let currency = options.currency ?? null;
    if (this.#session && this.expiresIn === 0) {
      throw new MpacPayError("token_expired");
    }
    if (amount === null || currency === null) {
      const session = this.#session ?? (await this.getSession());
      amount ??= session.amount;
      currency ??= session.currency ?? (amount !== null ? "JPY" : null);
    }
    if (!Number.isSafeInteger(amount) || amount <= 0) {
      throw new TypeError("amount (integer minor units) is required when the token names none");
    }
    const tipAmount = options.tipAmount ?? 0;
    if (!Number.isSafeInteger(tipAmount) || tipAmount < 0) throw new TypeError("tipAmount must be a non-negative integer");
    const request = {
      kind,
      amount,
      currency: String(currency).toUpperCase(),
      tipAmount,
      note: options.note ?? null,
      metadata: options.metadata ?? null,
      entryModes: options.entryModes ?? null,
    };
    const signature = JSON.stringify(request);
    const previous = this.#attempt;
    if (previous && previous.retryable && previous.signature === signature) {
      return previous; // the same payment again after a lost answer: same key, same request id
    }
    return {
      ...request,
      signature,
      key: randomId(),
      requestId: randomId(),
      retryable: false,
      sent: false,
      card: null,
      paymentId: null,
    };
  }

  #execute(attempt) {
    const controller = new AbortController();
    let finish;
    const operation = {
      attempt,
      controller,
      native: false,
      done: new Promise((resolve) => {
        finish = resolve;
      }),
    };
    this.#operation = operation;
    this.#attempt = attempt;
    attempt.retryable = false;
    const flow = attempt.kind === "qr" ? this.#qrFlow(operation) : this.#cardFlow(operation);
    return flow.then(
      (result) => {
        this.#operation = null;
        this.#attempt = null;
        this.#setStatus("paid", { paymentId: result.paymentId, paymentStatus: result.paymentStatus });
        this.#emit("paid", result);
        finish("paid");
        return result;
      },
      (failure) => {
        const error =
          failure instanceof MpacPayError
            ? failure
            : new MpacPayError("gateway", failure?.message || MESSAGES.gateway, { cause: failure });
        if (controller.signal.aborted && error.code !== "cancelled") {
          error.code = "cancelled";
          error.retryable = false;
        }
        this.#operation = null;
        error.paymentId ??= attempt.paymentId;
        attempt.retryable = error.retryable;
        if (!error.retryable) this.#attempt = null;
        if (error.code === "cancelled") {
          this.#setStatus("cancelled", { paymentId: error.paymentId });
          this.#emit("cancelled", error);
          finish("cancelled");
        } else {
          this.#setStatus("failed", { paymentId: error.paymentId, code: error.code, retryable: error.retryable });
          this.#emit("failed", error);
          finish("failed");
        }
        throw error;
      },
    );
  }

  async #cardFlow(operation) {
    const attempt = operation.attempt;
    const bridge = this.#bridge();
    if (bridge) return this.#nativeFlow(operation, bridge);
    if (!attempt.card) {
      this.#setStatus("awaiting_card", { mode: "test" });
      const card = await pickTestCard(operation.controller.signal, formatAmount(attempt.amount + attempt.tipAmount, attempt.currency));
      const year = new Date().getFullYear() + 3;
      attempt.card = { pan: card.pan, exp_month: 12, exp_year: year };
    }
    const body = {
      amount: attempt.amount,
      currency: attempt.currency,
      method: "card_present",
      entry_mode: "contactless",
      card: attempt.card,
    };
    if (attempt.tipAmount) body.tip_amount = attempt.tipAmount;
    if (attempt.note) body.description = String(attempt.note);
    if (attempt.metadata) body.metadata = attempt.metadata;
    const payment = await this.#createPayment(operation, body);
    if (PAID_STATUSES.has(payment.status)) return resultFromPayment(payment, "card");
    throw errorFromPayment(payment);
  }

  async #qrFlow(operation) {
    const attempt = operation.attempt;
    let payment;
    if (attempt.paymentId) {
      // a retry after the wait was cut off: the payment exists, wait for it again
      this.#setStatus("processing", { paymentId: attempt.paymentId });
      payment = (
        await this.#withRetry(operation, (signal) =>
          this.#request("GET", `/v1/payments/${attempt.paymentId}`, { signal }),
        )
      ).body;
    } else {
      const body = { amount: attempt.amount, currency: attempt.currency, method: "qr_wallet" };
      if (attempt.tipAmount) body.tip_amount = attempt.tipAmount;
      if (attempt.note) body.description = String(attempt.note);
      if (attempt.metadata) body.metadata = attempt.metadata;
      payment = await this.#createPayment(operation, body);
    }
    if (payment.status === "requires_action") {
      await this.#announceQr(operation, payment);
      this.#setStatus("awaiting_payment", { paymentId: payment.id, paymentStatus: payment.status });
      payment = await this.#waitForFinal(operation, payment.id);
    }
    if (PAID_STATUSES.has(payment.status)) return resultFromPayment(payment, "qr");
    throw errorFromPayment(payment);
  }

  async #createPayment(operation, body) {
    const attempt = operation.attempt;
    this.#setStatus("processing");
    attempt.sent = true;
    const response = await this.#withRetry(operation, (signal) =>
      this.#request("POST", "/v1/payments", { body, key: attempt.key, signal }),
    );
    let payment = response.body;
    attempt.paymentId = payment.id;
    this.#setStatus("processing", { paymentId: payment.id, paymentStatus: payment.status });
    if (!FINAL_STATUSES.has(payment.status) && payment.status !== "requires_action") {
      // 202 processing: the acquirer has not answered yet; pgw settles it (retry, reconciler)
      payment = await this.#waitForFinal(operation, payment.id, true);
    }
    return payment;
  }

  async #announceQr(operation, payment) {
    const svgUrl = `${this.#baseUrl}/v1/payments/${payment.id}/qr.svg`;
    let svg = null;
    try {
      const response = await this.#fetch(svgUrl, {
        headers: { authorization: `Bearer ${this.#token}`, accept: "image/svg+xml" },
        signal: operation.controller.signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (response.ok) svg = await response.text();
    } catch {
      // the payload below still lets the page draw or print the code
    }
    if (operation.controller.signal.aborted) throw cancelledError();
    this.#emit("qrcode", {
      paymentId: payment.id,
      payload: payment.qr_payload ?? null,
      svg,
      dataUrl: svg ? `data:image/svg+xml;base64,${toBase64(svg)}` : null,
      svgUrl,
      amount: payment.amount + (payment.tip_amount ?? 0),
      currency: payment.currency,
    });
  }

  async #waitForFinal(operation, paymentId, pollOnly = false) {
    if (this.#options.stream && !pollOnly) {
      try {
        const final = await this.#stream(operation, paymentId);
        if (final) return final;
      } catch (error) {
        if (error instanceof MpacPayError && error.code !== "network" && error.code !== "gateway") throw error;
        if (operation.controller.signal.aborted) throw cancelledError();
      }
    }
    return this.#poll(operation, paymentId);
  }

  async #poll(operation, paymentId) {
    const signal = operation.controller.signal;
    let lastStatus = null;
    let failures = 0;
    for (;;) {
      try {
        const { body } = await this.#request("GET", `/v1/payments/${paymentId}`, { signal });
        failures = 0;
        if (body.status !== lastStatus) {
          lastStatus = body.status;
          this.#emitPaymentStatus(body);
        }
        if (FINAL_STATUSES.has(body.status)) return body;
      } catch (error) {
        if (signal.aborted) throw cancelledError();
        if (!error.retryable || ++failures > Math.max(5, this.#options.retries * 5)) throw error;
      }
      await sleep(this.#options.pollIntervalMs, signal);
    }
  }

  #emitPaymentStatus(payment) {
    this.#setStatus(payment.status === "requires_action" ? "awaiting_payment" : this.#status, {
      paymentId: payment.id,
      paymentStatus: payment.status,
    });
  }

  // Server-sent events read with fetch (EventSource cannot send Authorization). Returns the
  // final payment, or null when the stream ended early (the caller then polls).
  async #stream(operation, paymentId) {
    const signal = operation.controller.signal;
    let response;
    try {
      response = await this.#fetch(`${this.#baseUrl}/v1/payments/${paymentId}/stream`, {
        headers: { authorization: `Bearer ${this.#token}`, accept: "text/event-stream" },
        signal,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new MpacPayError("network", undefined, { retryable: true, cause: error });
    }
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.json();
      } catch {
        // not a problem document
      }
      throw errorFromProblem(response.status, problem, response.headers);
    }
    if (!response.body || !(response.headers.get("content-type") || "").includes("text/event-stream")) {
      return null;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let eventType = "";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length && (eventType === "" || eventType === "status")) {
              const payment = JSON.parse(data.join("\n"));
              this.#emitPaymentStatus(payment);
              if (FINAL_STATUSES.has(payment.status)) return payment;
            } else if (data.length && eventType === "error") {
              // the token expired or was revoked while waiting: pgw's problem document
              const problem = JSON.parse(data.join("\n"));
              throw errorFromProblem(problem.status ?? 0, problem, null);
            }
            eventType = "";
            data = [];
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const fieldValue = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") eventType = fieldValue;
            else if (field === "data") data.push(fieldValue);
          }
        }
      }
    } catch (error) {
      if (error instanceof MpacPayError) throw error;
      throw new MpacPayError("network", undefined, { retryable: true, cause: error });
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async #nativeFlow(operation, bridge) {
    const attempt = operation.attempt;
    operation.native = true;
    this.#setStatus("awaiting_card", { mode: "native" });
    const params = {
      request_id: attempt.requestId,
      amount: attempt.amount,
      currency: attempt.currency,
    };
    if (attempt.tipAmount) params.tip_amount = attempt.tipAmount;
    if (attempt.note) params.note = String(attempt.note);
    if (attempt.metadata) params.metadata = attempt.metadata;
    if (attempt.entryModes) params.entry_modes = attempt.entryModes;
    attempt.sent = true;
    let doc = await this.#callNative(bridge, "pay_card", params, this.#options.nativeTimeoutMs);
    // processing (the gateway's answer is late) or in_progress: ask the app again by request id
    for (let asked = 0; doc && (doc.status === "processing" || doc.status === "in_progress" || doc.status === "not_found"); asked++) {
      if (asked >= 20) {
        throw new MpacPayError("gateway", "The payment's outcome is not known yet; retry to ask again.", {
          retryable: true,
          paymentId: doc.payment_id ?? null,
          problemCode: doc.error_code ?? doc.status,
        });
      }
      if (doc.status === "not_found") {
        doc = await this.#callNative(bridge, "pay_card", params, this.#options.nativeTimeoutMs);
      } else {
        this.#setStatus("processing", { paymentId: doc.payment_id ?? null });
        await sleep(1500);
        doc = await this.#callNative(bridge, "query", { request_id: attempt.requestId }, 30000);
      }
    }
    if (doc && doc.status === "approved") return resultFromNative(doc, attempt);
    throw errorFromNative(doc || {});
  }

  #callNative(bridge, method, params, timeoutMs) {
    const id = randomId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingNativeCalls.delete(id);
        // the answer was lost: a retry re-sends the same request id and gets the journaled result
        reject(new MpacPayError("network", "The terminal did not answer.", { retryable: true }));
      }, timeoutMs);
      pendingNativeCalls.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      try {
        bridge.request(JSON.stringify({ id, method, params }));
      } catch (error) {
        clearTimeout(timer);
        pendingNativeCalls.delete(id);
        reject(new MpacPayError("gateway", "The terminal's bridge refused the request.", { cause: error }));
      }
    });
  }

  // Runs `send` again after network errors and retryable problems, with back-off. The same
  // Idempotency-Key travels every time, so pgw replays rather than charging twice.
  async #withRetry(operation, send) {
    const signal = operation?.controller.signal;
    for (let attempt = 0; ; attempt++) {
      try {
        return await send(signal);
      } catch (error) {
        if (signal?.aborted) throw cancelledError();
        if (!(error instanceof MpacPayError) || !error.retryable || attempt >= this.#options.retries) throw error;
        const delayMs = Math.max(error.retryAfterMs || 0, this.#options.retryDelayMs * 2 ** attempt);
        const resume = this.#status;
        this.#setStatus("retrying", { attempt: attempt + 1, delayMs, reason: error.code });
        await sleep(delayMs, signal);
        this.#setStatus(resume, { attempt: attempt + 1 });
      }
    }
  }

  async #request(method, path, { body, key, signal } = {}) {
    const headers = { authorization: `Bearer ${this.#token}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (key) headers["idempotency-key"] = key;
    let response;
    let text;
    try {
      response = await this.#fetch(`${this.#baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: "omit",
      });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw cancelledError();
      throw new MpacPayError("network", undefined, { retryable: true, cause: error });
    }
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (!response.ok) throw errorFromProblem(response.status, json, response.headers);
    return { status: response.status, body: json, headers: response.headers };
  }
}

/** Starts a payment session with the payment token the terminal issued (`#token=pt_…`). */
export function init(options) {
  return new MpacPayClient(options);
}

const MpacPay = {
  VERSION,
  init,
  formatAmount,
  MpacPayError,
  MpacPayClient,
  ErrorCode,
  EVENTS,
  _nativeResult,
};

export default MpacPay;
