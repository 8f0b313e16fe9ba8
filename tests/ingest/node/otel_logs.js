// @opentelemetry/sdk-logs with the OTLP/HTTP log exporter, configured by OTEL_* variables only
// (endpoint, headers, service name): a warning inside a span (so it carries the trace), an error
// with attributes, and a structured body. Prints the span's trace id.
const api = require("@opentelemetry/api");
const { LoggerProvider, BatchLogRecordProcessor } = require("@opentelemetry/sdk-logs");
const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-http");
const { detectResources, envDetector } = require("@opentelemetry/resources");
const { TracerProvider } = require("@opentelemetry/sdk-trace");

async function main() {
  const resource = detectResources({ detectors: [envDetector] });
  const provider = new LoggerProvider({
    resource,
    processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter() })],
  });
  const logger = provider.getLogger("checkout.cart");
  const tracer = new TracerProvider({ resource }).getTracer("checkout");
  const span = tracer.startSpan("add to cart");
  const traceId = span.spanContext().traceId;
  logger.emit({
    severityNumber: api.SeverityNumber.WARN, severityText: "WARN", body: "cart nearly full",
    attributes: { "cart.id": "cart-501", items: 19 },
    context: api.trace.setSpan(api.context.active(), span),
  });
  span.end();
  logger.emit({
    severityNumber: api.SeverityNumber.ERROR, severityText: "ERROR", body: "payment refused",
    attributes: { "cart.id": "cart-502", reason: "insufficient funds" },
  });
  logger.emit({ severityNumber: api.SeverityNumber.INFO, body: { step: "checkout", ok: true } });
  await provider.shutdown();
  console.log(JSON.stringify({ trace_id: traceId }));
}

main();
