// @opentelemetry/sdk-node configured by OTEL_* variables only: a server span "checkout" whose client
// span calls INVENTORY_URL with the W3C traceparent, and an exception recorded on the root.
const { NodeSDK } = require("@opentelemetry/sdk-node");
const api = require("@opentelemetry/api");

const sdk = new NodeSDK();
sdk.start();
const tracer = api.trace.getTracer("checkout");

async function main() {
  let traceId;
  await tracer.startActiveSpan("checkout", { kind: api.SpanKind.SERVER }, async (root) => {
    traceId = root.spanContext().traceId;
    await tracer.startActiveSpan("GET /inventory", { kind: api.SpanKind.CLIENT }, async (client) => {
      const headers = {};
      api.propagation.inject(api.context.active(), headers);
      const answer = await fetch(process.env.INVENTORY_URL, { headers });
      client.setAttribute("http.response.status_code", answer.status);
      client.end();
    });
    try {
      throw new Error("stock check failed for sku 42");
    } catch (err) {
      root.recordException(err);
      root.setStatus({ code: api.SpanStatusCode.ERROR });
    }
    root.end();
  });
  await sdk.shutdown();
  console.log(JSON.stringify({ trace_id: traceId }));
}

main();
