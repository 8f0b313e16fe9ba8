"""The chapter's 8.3 example (DataProcessor behind POST /process-data), ported by following docs/from-the-chapter.md.

`@debug_trace(level)` -> `@kansoku.traced(level=...)`: as in the chapter, the global
`KANSOKU_TRACE_LEVEL` is a ceiling, so `ERROR_ONLY` turns the VERBOSE function below down too.
`@memory_profile(track_objects=True)` -> `@kansoku.memory_profile(track_args=True)`; the chapter's
/debug/performance and /debug/clear-history -> `/kansoku/api/debug/performance` and
`/kansoku/api/debug/clear-history`. An item whose `data` is not a mapping fails, is logged with
`error=e` and skipped, as in the chapter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI

import kansoku

log = kansoku.get_logger(__name__)


class DataProcessor:
    """データ処理サービス例 (the chapter's DataProcessor)."""

    @kansoku.traced(level="DETAILED")
    @kansoku.memory_profile(track_args=True)
    async def process_large_dataset(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Process every item; a failing one is logged with its exception and skipped."""
        log.info(f"Processing dataset with {len(data)} items")
        processed_data = []
        for i, item in enumerate(data):
            try:
                processed_data.append(await self._process_item(item))
                if i % 1000 == 0:
                    log.debug(f"Processed {i}/{len(data)} items", category="performance",
                              progress_percent=(i / len(data)) * 100)
            except Exception as e:
                log.error(f"Failed to process item {i}", error=e, item_data=item,
                          processed_count=len(processed_data))
                continue
        log.info(f"Dataset processing completed: {len(processed_data)}/{len(data)} items",
                 success_rate=(len(processed_data) / len(data)) * 100 if data else 100.0)
        return processed_data

    @kansoku.traced(level="VERBOSE")
    async def _process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return {"id": item.get("id"), "processed_at": time.time(), "original_size": len(str(item)),
                "processed_data": item.get("data", {}).copy()}


app = FastAPI(title="data-processing")
kansoku.instrument(app)
data_processor = DataProcessor()


@app.post("/process-data")
async def process_data_endpoint(data: list[dict[str, Any]]) -> dict[str, Any]:
    """データ処理エンドポイント."""
    try:
        result = await data_processor.process_large_dataset(data)
        return {"processed_data": result, "count": len(result)}
    except Exception as e:
        log.error("Data processing endpoint failed", error=e)
        raise
