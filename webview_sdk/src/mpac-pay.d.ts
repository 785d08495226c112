// Type declarations of the MpacPay WebView SDK (/sdk/v1/mpac-pay.mjs and /sdk/v1/mpac-pay.js).
// Hand-written next to src/mpac-pay.mjs; tests/webview_sdk/test_build.py checks that every
// name the module exports is declared here. docs/webview-sdk.md explains the API.

export declare const VERSION: string;

export type ErrorCodeName =
  | "token_expired"
  | "token_invalid"
  | "token_used"
  | "declined"
  | "cancelled"
  | "timeout"
  | "network"
  | "double_submit"
  | "gateway";

export declare const ErrorCode: Readonly<{
  TOKEN_EXPIRED: "token_expired";
  TOKEN_INVALID: "token_invalid";
  TOKEN_USED: "token_used";
  DECLINED: "declined";
  CANCELLED: "cancelled";
  TIMEOUT: "timeout";
  NETWORK: "network";
  DOUBLE_SUBMIT: "double_submit";
  GATEWAY: "gateway";
}>;

export type EventName = "statuschange" | "qrcode" | "paid" | "failed" | "cancelled";

export declare const EVENTS: ReadonlyArray<EventName>;

/** pgw's problem details (RFC 9457), as the gateway answered. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  request_id?: string;
  [extension: string]: unknown;
}

export declare class MpacPayError extends Error {
  constructor(code: ErrorCodeName, message?: string, options?: MpacPayErrorOptions);
  readonly name: "MpacPayError";
  code: ErrorCodeName;
  /** `client.retry()` (same Idempotency-Key / request id) may succeed. */
  retryable: boolean;
  /** For `declined`: the issuer's or wallet's reason (generic_decline, insufficient_funds, …). */
  declineCode: string | null;
  /** pgw's problem code or failure code, or the Credit Card App's error code. */
  problemCode: string | null;
  /** The HTTP status pgw answered, when the error came from an answer. */
  status: number | null;
  paymentId: string | null;
  problem: Problem | null;
  /** pgw's Retry-After, in milliseconds (0 when it sent none). */
  retryAfterMs: number;
}

export interface MpacPayErrorOptions {
  cause?: unknown;
  retryable?: boolean;
  declineCode?: string | null;
  problemCode?: string | null;
  status?: number | null;
  paymentId?: string | null;
  problem?: Problem | null;
  retryAfterMs?: number;
}

export interface InitOptions {
  /** The payment token (`pt_…`) the terminal issued; 5 minutes, one payment. */
  token: string;
  /** pgw's origin; defaults to where the SDK was loaded from. */
  baseUrl?: string;
  /** A fetch implementation (defaults to the global one). */
  fetch?: typeof fetch;
  /** Automatic retries after a network error or a retryable problem (default 3). */
  retries?: number;
  /** First back-off delay, doubled each retry (default 500 ms). */
  retryDelayMs?: number;
  /** Polling interval when the event stream is unavailable (default 1000 ms). */
  pollIntervalMs?: number;
  /** Wait for QR payments with server-sent events (default true; false: polling only). */
  stream?: boolean;
  /** How long to wait for the Credit Card App's answer (default 180000 ms). */
  nativeTimeoutMs?: number;
  /** The native bridge; defaults to window.MpacNative, injected by the Business App. */
  bridge?: NativeBridge | null;
}

export interface Session {
  id: string;
  /** Minor units (JPY: yen); null when the token names no amount. */
  amount: number | null;
  currency: string | null;
  /** Seconds the token had left when it was read. */
  expiresIn: number;
  expiresAt: string;
  /** The payment the token is bound to, if any (then it cannot create another). */
  paymentId: string | null;
  storeId: string;
  terminalId: string | null;
}

export interface CardPaymentOptions {
  /** Minor units; defaults to the token's amount. */
  amount?: number;
  currency?: string;
  tipAmount?: number;
  note?: string;
  metadata?: Record<string, string>;
  /** Native bridge only: which entry modes the Credit Card App may offer. */
  entryModes?: Array<"contactless" | "chip" | "swipe">;
}

export interface QrPaymentOptions {
  amount?: number;
  currency?: string;
  tipAmount?: number;
  note?: string;
  metadata?: Record<string, string>;
}

export interface PaymentResult {
  status: "paid";
  paymentId: string | null;
  /** pgw's status: captured (or authorized for manual capture). */
  paymentStatus: string;
  method: "card" | "qr";
  amount: number;
  tipAmount: number;
  currency: string;
  authCode: string | null;
  createdAt: string | null;
  card?: { brand: string | null; last4: string };
}

export type ClientStatus =
  | "idle"
  | "awaiting_card"
  | "processing"
  | "retrying"
  | "awaiting_payment"
  | "paid"
  | "failed"
  | "cancelled";

export interface StatusChange {
  status: ClientStatus;
  previous: ClientStatus;
  paymentId?: string | null;
  /** pgw's payment status, when known. */
  paymentStatus?: string;
  /** awaiting_card: "native" (Credit Card App) or "test" (browser fallback). */
  mode?: "native" | "test";
  /** retrying: which retry, after how long, and why. */
  attempt?: number;
  delayMs?: number;
  reason?: ErrorCodeName;
  /** failed: the error's code and whether retry() may help. */
  code?: ErrorCodeName;
  retryable?: boolean;
}

export interface QrCode {
  paymentId: string;
  /** The wallet payload the code encodes (mpacqr://pay/…). */
  payload: string | null;
  /** SVG markup from pgw (GET /v1/payments/{id}/qr.svg), null if it could not be fetched. */
  svg: string | null;
  /** The SVG as a data: URL for an <img>, or null. */
  dataUrl: string | null;
  svgUrl: string;
  amount: number;
  currency: string;
}

export interface EventMap {
  statuschange: StatusChange;
  qrcode: QrCode;
  paid: PaymentResult;
  failed: MpacPayError;
  cancelled: MpacPayError;
}

export declare class MpacPayClient {
  constructor(options: InitOptions);
  readonly baseUrl: string;
  /** "native" when window.MpacNative exists, else "test" (browser fallback, TEST ONLY). */
  readonly cardMode: "native" | "test";
  readonly status: ClientStatus;
  readonly busy: boolean;
  readonly canRetry: boolean;
  /** Seconds left by the local clock since the last getSession(), or null. */
  readonly expiresIn: number | null;
  on<K extends EventName>(type: K, handler: (detail: EventMap[K]) => void): () => void;
  off<K extends EventName>(type: K, handler: (detail: EventMap[K]) => void): void;
  getSession(): Promise<Session>;
  formatAmount(amount?: number, currency?: string, locale?: string): string;
  payByCard(options?: CardPaymentOptions): Promise<PaymentResult>;
  payByQr(options?: QrPaymentOptions): Promise<PaymentResult>;
  retry(): Promise<PaymentResult>;
  cancel(): Promise<boolean>;
  revoke(): Promise<void>;
}

/** Amount in minor units as people read it: formatAmount(1200, "JPY") is "¥1,200". */
export declare function formatAmount(amount: number, currency?: string, locale?: string): string;

export declare function init(options: InitOptions): MpacPayClient;

/** Called by the Business App with the Credit Card App's TransactionResult JSON. */
export declare function _nativeResult(callId: string, resultJson: string | object): boolean;

/** What the Business App injects as window.MpacNative. `json` is
 *  {"id": callId, "method": "pay_card" | "cancel" | "query", "params": {...}}. */
export interface NativeBridge {
  request(json: string): unknown;
}

export interface MpacPayNamespace {
  VERSION: typeof VERSION;
  init: typeof init;
  formatAmount: typeof formatAmount;
  MpacPayError: typeof MpacPayError;
  MpacPayClient: typeof MpacPayClient;
  ErrorCode: typeof ErrorCode;
  EVENTS: typeof EVENTS;
  _nativeResult: typeof _nativeResult;
}

declare const MpacPay: MpacPayNamespace;
export default MpacPay;

declare global {
  interface Window {
    /** Defined by the script-tag build (/sdk/v1/mpac-pay.js) and by init(). */
    MpacPay?: MpacPayNamespace;
    /** Injected by the terminal's Business App into its WebView. */
    MpacNative?: NativeBridge;
  }
}
