// @sentry/node configured by its environment only (SENTRY_DSN, SENTRY_RELEASE, SENTRY_ENVIRONMENT):
// COUNT captures of one error, flushed in small bursts (the SDK's transport buffer is bounded).
const Sentry = require("@sentry/node");

Sentry.init({});

function checkout(order) {
  throw new Error(`payment for order ${order} declined`);
}

async function main() {
  // Every capture from the same (asynchronous) call stack: the first ones would otherwise have the
  // module's top level under them, the later ones the event loop, and frames decide the group.
  await new Promise((resolve) => setImmediate(resolve));
  const count = Number(process.env.COUNT || 100);
  for (let i = 0; i < count; i++) {
    try {
      checkout(i);
    } catch (err) {
      Sentry.captureException(err);
    }
    if (i % 10 === 9) await Sentry.flush(10000);
  }
  await Sentry.flush(10000);
}

main();
