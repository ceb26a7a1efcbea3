"""Seed 001's batch handler with checkpoints: it sums items in batches of batch_size, yielding a
checkpoint after each full batch; the engine saves it and runs the handler again at once with it.
The items are generated from the task context's item_count (item i has value i)."""
from tasker_core import StepContext, StepHandler, StepHandlerResult


class BatchProcessHandler(StepHandler):
    handler_name = "batch_process"

    def call(self, context: StepContext) -> StepHandlerResult:
        # Check for existing checkpoint
        if context.has_checkpoint():
            cursor = context.checkpoint_cursor
            accumulated = context.accumulated_results or {}
        else:
            cursor = 0
            accumulated = {"total": 0, "processed": 0}

        # Process batch
        batch_size = context.get_input_or("batch_size", 100)
        items = self._fetch_items(context, cursor, batch_size)

        for item in items:
            accumulated["total"] += item["value"]
            accumulated["processed"] += 1

        if len(items) < batch_size:
            # All done
            return self.success(accumulated)
        else:
            # More to process - yield checkpoint
            return StepHandlerResult.checkpoint(
                cursor=cursor + batch_size,
                items_processed=accumulated["processed"],
                accumulated_results=accumulated
            )

    def _fetch_items(self, context: StepContext, cursor: int, batch_size: int) -> list[dict]:
        count = context.get_input_or("item_count", 0)
        return [{"value": i} for i in range(cursor, min(cursor + batch_size, count))]
