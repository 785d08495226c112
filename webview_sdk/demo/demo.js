// Ramen Ichiban: a small self-order page that pays with the MpacPay SDK (docs/webview-sdk.md).
// The terminal opens it as /demo/webview/#token=pt_… : the fragment never reaches a server or a
// log, and the page drops it from the address bar as soon as it has read it.
import MpacPay from "/sdk/v1/mpac-pay.mjs";

const MENU = [
  { id: "shoyu", name: "Shoyu ramen", note: "Soy broth, chashu, egg", price: 900, quantity: 1 },
  { id: "gyoza", name: "Gyoza (6)", note: "Pan-fried dumplings", price: 300, quantity: 1 },
  { id: "matcha", name: "Matcha ice cream", note: "Uji green tea", price: 250, quantity: 0 },
];

const MESSAGES = {
  token_expired: "This payment session has expired. Please ask the staff for a new one.",
  token_invalid: "This payment link is not valid. Please ask the staff for a new one.",
  token_used: "This payment session was already used for a payment.",
  cancelled: "Payment cancelled.",
  timeout: "The QR code expired before it was paid.",
  network: "Connection lost. Check the network and tap Retry.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  menu: $("menu"),
  total: $("total"),
  amountNote: $("amount-note"),
  expiry: $("expiry"),
  testMode: $("test-mode"),
  payCard: $("pay-card"),
  payQr: $("pay-qr"),
  status: $("status"),
  notice: $("notice"),
  qr: $("qr"),
  qrImage: $("qr-image"),
  qrAmount: $("qr-amount"),
  retry: $("retry"),
  cancel: $("cancel"),
};

let client = null;
let session = null;
let finished = false;

function readToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", location.pathname + location.search);
  return token;
}

function fixedAmount() {
  return session && session.amount !== null ? session.amount : null;
}

function menuTotal() {
  return MENU.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

function amountDue() {
  return fixedAmount() ?? menuTotal();
}

function currency() {
  return (session && session.currency) || "JPY";
}

function format(amount) {
  return MpacPay.formatAmount(amount, currency());
}

function setStatus(state, text, code) {
  ui.status.dataset.state = state;
  if (code) ui.status.dataset.code = code;
  else delete ui.status.dataset.code;
  ui.status.textContent = text;
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => {
    ui.notice.hidden = true;
  }, 4000);
}

function refreshButtons() {
  const ready = client !== null && session !== null && !finished;
  const busy = ready && client.busy;
  const canPay = ready && !busy && amountDue() > 0;
  // Pay buttons stay clickable while busy (dimmed): the SDK itself refuses a double submit.
  for (const button of [ui.payCard, ui.payQr]) {
    button.disabled = !(canPay || busy);
    button.setAttribute("aria-disabled", String(busy));
  }
  ui.cancel.hidden = !busy;
  ui.retry.hidden = !(ready && client.canRetry);
  for (const button of ui.menu.querySelectorAll("button")) {
    button.disabled = !ready || busy || fixedAmount() !== null;
  }
}

function renderMenu() {
  ui.menu.replaceChildren();
  for (const item of MENU) {
    const row = document.createElement("li");
    row.className = "item";
    const label = document.createElement("div");
    label.className = "label";
    const name = document.createElement("strong");
    name.textContent = item.name;
    const note = document.createElement("small");
    note.textContent = `${item.note} · ${MpacPay.formatAmount(item.price, "JPY")}`;
    label.append(name, note);
    const stepper = document.createElement("div");
    stepper.className = "stepper";
    const less = document.createElement("button");
    less.type = "button";
    less.textContent = "−";
    less.setAttribute("aria-label", `One ${item.name} less`);
    less.addEventListener("click", () => changeQuantity(item, -1));
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(item.quantity);
    const more = document.createElement("button");
    more.type = "button";
    more.textContent = "+";
    more.setAttribute("aria-label", `One more ${item.name}`);
    more.addEventListener("click", () => changeQuantity(item, 1));
    stepper.append(less, count, more);
    row.append(label, stepper);
    ui.menu.append(row);
  }
  ui.total.textContent = format(amountDue());
  refreshButtons();
}

function changeQuantity(item, delta) {
  item.quantity = Math.max(0, Math.min(9, item.quantity + delta));
  renderMenu();
}

function tickExpiry() {
  if (!client || finished) return;
  const left = client.expiresIn;
  if (left === null) return;
  if (left <= 0) {
    ui.expiry.textContent = "Session expired.";
    return;
  }
  const minutes = Math.floor(left / 60);
  const seconds = String(left % 60).padStart(2, "0");
  ui.expiry.textContent = `Session expires in ${minutes}:${seconds}`;
}

function describeFailure(error) {
  if (error.code === "declined") {
    const reason = error.declineCode ? ` (${error.declineCode.replaceAll("_", " ")})` : "";
    return `Declined${reason}. Nothing was charged.`;
  }
  return MESSAGES[error.code] || `Payment failed: ${error.message}`;
}

function onStatusChange(change) {
  switch (change.status) {
    case "awaiting_card":
      setStatus(
        "awaiting_card",
        change.mode === "native" ? "Present the card on the terminal…" : "Pick a test card…",
      );
      break;
    case "processing":
      setStatus("processing", "Processing the payment…");
      break;
    case "retrying":
      setStatus("retrying", `Connection problem, retrying (${change.attempt})…`);
      break;
    case "awaiting_payment":
      setStatus("awaiting_payment", "Scan the QR code with your wallet app.");
      break;
    default:
      break;
  }
  refreshButtons();
}

function onQrCode(code) {
  ui.qrAmount.textContent = MpacPay.formatAmount(code.amount, code.currency);
  if (code.dataUrl) ui.qrImage.src = code.dataUrl;
  else ui.qrImage.alt = code.payload || "QR code unavailable";
  ui.qr.hidden = false;
}

function onPaid(result) {
  finished = true;
  ui.qr.hidden = true;
  const brand = result.card && result.card.brand ? result.card.brand.toUpperCase() : "CARD";
  const card = result.card ? ` · ${brand} •••• ${result.card.last4}` : "";
  setStatus("paid", `Paid ${MpacPay.formatAmount(result.amount + result.tipAmount, result.currency)}${card}. Thank you!`);
  ui.status.dataset.paymentId = result.paymentId || "";
  ui.expiry.textContent = "";
  refreshButtons();
  // The token did its one payment: retire it now rather than in 5 minutes.
  client.revoke().catch(() => {});
}

function onFailed(error) {
  ui.qr.hidden = true;
  // After these the token cannot pay any more: the page is done.
  finished = ["declined", "token_used", "token_expired", "token_invalid"].includes(error.code);
  if (finished) ui.expiry.textContent = "";
  setStatus(error.code === "declined" ? "declined" : "error", describeFailure(error), error.code);
  refreshButtons();
}

function onCancelled() {
  ui.qr.hidden = true;
  setStatus("cancelled", MESSAGES.cancelled, "cancelled");
  refreshButtons();
}

async function pay(kind) {
  const options = fixedAmount() === null ? { amount: menuTotal(), currency: currency() } : {};
  const promise = kind === "qr" ? client.payByQr(options) : client.payByCard(options);
  refreshButtons();
  try {
    await promise;
  } catch (error) {
    if (error.code === "double_submit") showNotice("A payment is already in progress.");
    // every other outcome was shown by the failed / cancelled events
  } finally {
    refreshButtons();
  }
}

async function start() {
  renderMenu();
  let token = null;
  try {
    token = readToken();
    client = MpacPay.init({ token });
  } catch (error) {
    setStatus("error", MESSAGES[error.code] || error.message, error.code);
    return;
  }
  client.on("statuschange", onStatusChange);
  client.on("qrcode", onQrCode);
  client.on("paid", onPaid);
  client.on("failed", onFailed);
  client.on("cancelled", onCancelled);
  ui.testMode.hidden = client.cardMode !== "test";
  ui.payCard.addEventListener("click", () => pay("card"));
  ui.payQr.addEventListener("click", () => pay("qr"));
  ui.retry.addEventListener("click", () => {
    client.retry().catch(() => {});
    refreshButtons();
  });
  ui.cancel.addEventListener("click", async () => {
    const cancelled = await client.cancel();
    if (!cancelled && client.busy) showNotice("Too late to cancel: the payment is being processed.");
  });
  try {
    session = await client.getSession();
  } catch (error) {
    setStatus("error", MESSAGES[error.code] || error.message, error.code);
    return;
  }
  ui.amountNote.hidden = fixedAmount() === null;
  renderMenu();
  tickExpiry();
  setInterval(tickExpiry, 1000);
  setStatus("ready", `Ready to pay ${format(amountDue())}.`);
}

start();
