"""Handlers of the suite's own templates (support/templates/*.yml)."""
from __future__ import annotations

import asyncio
import threading

from tasker_core import BatchableHandler, DecisionHandler, StepContext, StepHandler, StepHandlerResult
from tasker_core.errors import NetworkError, PermanentError, RetryableError, TimeoutError


class PermanentFailHandler(StepHandler):
    def call(self, context: StepContext):
        raise PermanentError(message="the order is invalid", error_code="INVALID_ORDER", context={"order": 7})


class FailureResultHandler(StepHandler):
    def call(self, context: StepContext):
        return self.failure("Validation failed", error_type="validation_error", retryable=False,
                            error_code="INVALID_DATA")


class RetryOnceHandler(StepHandler):
    """Fails retryably (retry_after 1 second) on its first attempt, succeeds on the next."""

    def call(self, context: StepContext):
        kind = context.get_input_or("kind", "retryable")
        if context.retry_count == 0:
            if kind == "timeout":
                raise TimeoutError("the gateway timed out", timeout_duration=5, retry_after=1)
            if kind == "network":
                raise NetworkError("connection refused", status_code=503, retry_after=1)
            raise RetryableError(message="Payment gateway timeout", retry_after=1, context={"gateway": "stripe"})
        return self.success({"attempt": context.retry_count})


class BoomHandler(StepHandler):
    def call(self, context: StepContext):
        raise ValueError("boom: %s" % context.get_input("what"))


class UnstorableHandler(StepHandler):
    def call(self, context: StepContext):
        return self.success({"value": object()})


class AsyncSquareHandler(StepHandler):
    """An async handler; records the thread it ran on (the worker's event loop)."""

    threads: set = set()

    async def call(self, context: StepContext):
        await asyncio.sleep(0.01)
        AsyncSquareHandler.threads.add(threading.current_thread().name)
        n = context.get_input("n")
        return self.success({"square": n * n})


class CustomMethodHandler(StepHandler):
    def compute(self, context: StepContext):
        return self.success({"method": "compute", "config": self.config})


class RouteHandler(DecisionHandler):
    def call(self, context: StepContext):
        amount = context.get_input("amount")
        if amount is None:
            return self.decision_no_branches(result_data={"reason": "no amount"})
        return self.decision_success(steps=["large"] if amount >= 1000 else ["small"],
                                     result_data={"amount": amount})


class ApproveHandler(StepHandler):
    def call(self, context: StepContext):
        return self.success({"approved_by": self.config.get("approver")})


class FinishRouteHandler(StepHandler):
    def call(self, context: StepContext):
        branches = sorted(name for name in context.dependency_results if name in ("small", "large"))
        return self.success({"branches": branches})


class AnalyzeHandler(BatchableHandler):
    def call(self, context: StepContext):
        total = context.get_input_or("rows", 0)
        if total == 0:
            return self.no_batches(reason="nothing to do", result_data={"total_rows": 0})
        configs = self.create_cursor_configs(total, self.config.get("worker_count", 3))
        return self.batch_success(worker_template_name="work", cursor_configs=configs, total_items=total,
                                  result_data={"total_rows": total})


class WorkHandler(BatchableHandler):
    def call(self, context: StepContext):
        if self.is_no_op_worker(context):
            return self.handle_no_op_worker(context)
        cursor = self.batch_cursor(context)
        rows = list(range(cursor["start_cursor"], cursor["end_cursor"]))
        return self.batch_worker_success(items_processed=len(rows), items_succeeded=len(rows),
                                         last_cursor=cursor["end_cursor"], results={"sum": sum(rows)})


class TotalHandler(StepHandler):
    def call(self, context: StepContext):
        total, workers = 0, []
        for name in sorted(context.dependency_results):
            if not name.startswith("work_"):
                continue
            workers.append(name)
            result = context.get_dependency_result(name)
            if not result.get("no_op"):
                total += context.get_dependency_field(name, "results", "sum")
        return self.success({"sum": total, "workers": workers})


class SlowHandler(StepHandler):
    """Runs until release is set (a test's graceful-shutdown probe)."""

    started = threading.Event()
    release = threading.Event()

    def call(self, context: StepContext):
        SlowHandler.started.set()
        SlowHandler.release.wait(30)
        return self.success({"slow": True})


class SleepHandler(StepHandler):
    """Sleeps for the task context's seconds (a graceful-shutdown probe across processes)."""

    def call(self, context: StepContext):
        import time

        time.sleep(context.get_input_or("seconds", 1))
        return self.success({"slept": context.get_input_or("seconds", 1)})


class ChargeHandler(StepHandler):
    """Charges, publishing one event by hand; the template declares the others."""

    def call(self, context: StepContext):
        context.publish_domain_event("charge.attempted", {"amount": context.get_input("amount")})
        if context.get_input("decline"):
            raise PermanentError("card declined", error_code="DECLINED")
        return self.success({"payment_id": "pay_%s" % context.get_input("amount"), "amount": context.get_input("amount")})


from tasker_core.domain_events import BasePublisher  # noqa: E402


class AuditPublisher(BasePublisher):
    def transform_payload(self, step_result, event_declaration, step_context):
        return {"audited_amount": step_result["result"]["amount"] * 100}

    def additional_metadata(self, step_result, event_declaration, step_context):
        return {"auditor": "py"}


class CountingHandler(StepHandler):
    """Counts to the context's total in checkpointed chunks of 2, publishing one event per run."""

    def call(self, context: StepContext):
        done = context.checkpoint_cursor or 0
        context.publish_domain_event("count.progressed", {"done": done})
        if done + 2 < context.get_input("total"):
            return StepHandlerResult.checkpoint(cursor=done + 2, items_processed=done + 2)
        return self.success({"counted": context.get_input("total")})
