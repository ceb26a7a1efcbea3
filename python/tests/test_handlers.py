"""The handler API of seed 001 without a worker: StepHandler, StepHandlerResult, StepContext,
HandlerRegistry, the decision and batch helpers, and seed 001's handler tests as written."""
from __future__ import annotations

import asyncio

import pytest

from tasker_core import (
    BatchableHandler, DecisionHandler, HandlerRegistry, StepContext, StepHandler, StepHandlerResult,
)
from tasker_core import executor
from tasker_core.errors import (
    ConfigurationError, PermanentError, RetryableError, TemplateError, ValidationError,
)
from ecommerce.step_handlers import ValidateCartHandler


def build_test_context(task_context: dict):
    """Helper to create test contexts."""
    return StepContext.for_test(task_context)


class TestValidateCartHandler:
    """Seed 001's handler tests, as written there."""

    def test_validates_cart_successfully(self):
        handler = ValidateCartHandler()
        context = build_test_context({
            "cart_items": [
                {"product_id": 1, "quantity": 2}
            ]
        })

        result = handler.call(context)

        assert result.is_success
        assert result.result["total"] == 59.98 + 4.80 + 5.99

    def test_rejects_empty_cart(self):
        handler = ValidateCartHandler()
        context = build_test_context({"cart_items": []})

        with pytest.raises(PermanentError) as exc_info:
            handler.call(context)

        assert exc_info.value.error_code == "MISSING_CART_ITEMS"

    def test_handles_out_of_stock(self):
        handler = ValidateCartHandler()
        context = build_test_context({
            "cart_items": [
                {"product_id": 1, "quantity": 1000}  # More than stock
            ]
        })

        with pytest.raises(RetryableError):
            handler.call(context)


EVENT = {
    "task_uuid": "01a233fe-0000-7000-8000-000000000001",
    "step_uuid": "01a233fe-0000-7000-8000-000000000002",
    "correlation_id": "01a233fe-0000-7000-8000-000000000003",
    "handler_callable": "x.Handler",
    "task_sequence_step": {
        "task": {"task": {"context": {"customer_id": 7, "cart_items": [1, 2], "zero": 0}},
                 "namespace_name": "shop", "task_name": "checkout", "task_version": "2.0.0"},
        "workflow_step": {"name": "charge", "attempts": 2, "max_attempts": 3, "inputs": {"cursor": {"batch_id": "002"}},
                          "checkpoint": {"cursor": 200, "items_processed": 200, "accumulated_results": {"sum": 5}}},
        "step_definition": {"name": "charge", "handler": {"initialization": {"gateway": "demo"}}},
        "dependency_results": {"validate_order": {"success": True, "result": {"order_total": 42.5,
                                                                              "lines": [{"sku": "A"}]}}},
    },
}


def test_step_context_accessors():
    context = StepContext(EVENT)
    assert context.task_uuid == EVENT["task_uuid"] and context.step_uuid == EVENT["step_uuid"]
    assert context.correlation_id == EVENT["correlation_id"] and context.handler_name == "x.Handler"
    assert (context.namespace_name, context.task_name, context.task_version, context.step_name) == (
        "shop", "checkout", "2.0.0", "charge")
    assert context.get_input("customer_id") == 7 and context.get_input("missing") is None
    assert context.get_input_or("zero", 9) == 0 and context.get_input_or("batch_size", 100) == 100
    assert context.step_config == {"gateway": "demo"} and context.get_config("gateway") == "demo"
    assert context.step_inputs == {"cursor": {"batch_id": "002"}}
    assert context.get_dependency_result("validate_order") == {"order_total": 42.5, "lines": [{"sku": "A"}]}
    assert context.get_dependency_result("nope") is None
    assert context.get_dependency_field("validate_order", "order_total") == 42.5
    assert context.get_dependency_field("validate_order", "lines", 0, "sku") == "A"
    assert context.get_dependency_field("validate_order", "lines", 5) is None
    assert context.get_dependency_field("validate_order", "order_total", "deeper") is None
    assert context.dependency_results.get_result("validate_order")["success"] is True
    assert list(context.dependency_results) == ["validate_order"]
    assert context.retry_count == 2 and context.max_retries == 3 and context.is_retry() and context.is_last_retry()
    assert context.has_checkpoint() and context.checkpoint_cursor == 200
    assert context.checkpoint_items_processed == 200 and context.accumulated_results == {"sum": 5}
    fresh = StepContext.for_test({"a": 1})
    assert not fresh.has_checkpoint() and fresh.accumulated_results is None and not fresh.is_retry()


def test_step_handler_results():
    class H(StepHandler):
        handler_name = "h"

        def call(self, context):
            return self.success({"ok": True}, metadata={"operation": "x"})

    result = H().call(build_test_context({}))
    assert result.is_success and result.result == {"ok": True} and result.metadata == {"operation": "x"}
    failure = H().failure("External service unavailable", error_type="network_error", retryable=True,
                          error_code="E1")
    assert not failure.is_success and failure.retryable and failure.error_code == "E1"
    assert failure.error_type == "network_error" and failure.error_message == "External service unavailable"
    checkpoint = StepHandlerResult.checkpoint(cursor=100, items_processed=100, accumulated_results={"total": 3})
    assert checkpoint.is_checkpoint and not checkpoint.is_success
    assert checkpoint.checkpoint_data == {"cursor": 100, "items_processed": 100, "accumulated_results": {"total": 3}}
    assert StepHandlerResult.success({"a": 1}).is_success
    assert StepHandler.handler_version == "1.0.0"
    with pytest.raises(NotImplementedError):
        StepHandler().call(build_test_context({}))


def test_error_classes_of_handlers():
    permanent = PermanentError(message="Invalid order data", error_code="VALIDATION_ERROR")
    assert str(permanent) == "Invalid order data" and permanent.error_code == "VALIDATION_ERROR"
    assert permanent.context == {}
    retryable = RetryableError(message="Payment gateway timeout", retry_after=30, context={"gateway": "stripe"},
                               error_code="GW")
    assert retryable.retry_after == 30 and retryable.context == {"gateway": "stripe"} and retryable.error_code == "GW"
    positional = RetryableError("later")
    assert positional.message == "later" and positional.retry_after is None


def test_envelopes_built_by_the_executor():
    class Ok(StepHandler):
        def call(self, context):
            return {"plain": "dict"}

    class Retry(StepHandler):
        def call(self, context):
            raise RetryableError("later", retry_after=2.5)

    class NotPlain(StepHandler):
        def call(self, context):
            return self.success({"x": 1}, metadata="not a dict")  # type: ignore[arg-type]

    registry = HandlerRegistry(isolated=True)
    for key, cls in (("ok", Ok), ("retry", Retry), ("notplain", NotPlain)):
        registry.register(key, cls)
    ok = executor.execute({**EVENT, "handler_callable": "ok"}, registry=registry)
    assert ok["success"] is True and ok["result"] == {"plain": "dict"}
    assert ok["metadata"]["wrapped"] is True and ok["metadata"]["original_type"] == "dict"
    retry = executor.execute({**EVENT, "handler_callable": "retry"}, registry=registry)
    assert retry["success"] is False and retry["error"]["retryable"] is True
    assert retry["orchestration_metadata"]["headers"] == {"retry-after": "3"}
    assert retry["orchestration_metadata"]["backoff_hint"]["delay_seconds"] == 2.5
    bad = executor.execute({**EVENT, "handler_callable": "notplain"}, registry=registry)
    assert bad["error"]["error_type"] == "StepCompletionError" and "metadata must be a dict" in bad["error"]["message"]
    missing = executor.execute({**EVENT, "handler_callable": "no.such.Handler"}, registry=registry)
    assert missing["error"]["error_type"] == "PermanentError" and "no handler for callable" in missing["error"]["message"]
    assert executor.retry_after_seconds(float("nan")) is None and executor.retry_after_seconds(-1) is None
    assert executor.retry_after_seconds(10**9) == 3600.0 and executor.retry_after_seconds("5") == 5.0


def test_async_handler_called_directly_and_by_the_executor():
    class AsyncOne(StepHandler):
        async def call(self, context):
            await asyncio.sleep(0)
            return self.success({"n": context.get_input("n")})

    assert asyncio.run(AsyncOne().call(build_test_context({"n": 3}))).result == {"n": 3}
    registry = HandlerRegistry(isolated=True)
    registry.register("async_one", AsyncOne)
    event = {**EVENT, "handler_callable": "async_one"}
    assert executor.execute(event, registry=registry)["result"] == {"n": None}


def test_registry_registers_by_name_path_and_key():
    class Registered(StepHandler):
        handler_name = "registered_handler"

    registry = HandlerRegistry(isolated=True)
    assert registry.register(Registered) is Registered
    assert registry.resolve("registered_handler") is Registered
    assert registry.resolve("%s.%s" % (Registered.__module__, Registered.__qualname__)) is Registered
    registry.register("custom.key", Registered)
    assert registry.is_registered("custom.key") and not HandlerRegistry(isolated=True).is_registered("custom.key")
    with pytest.raises(ConfigurationError, match="must be a class"):
        registry.register("not a class")


def test_registry_shared_by_default_instances():
    class Shared(StepHandler):
        handler_name = "shared_by_instances"

    HandlerRegistry().register(Shared)
    assert HandlerRegistry().resolve("shared_by_instances") is Shared


def test_dotted_callables_are_imported():
    registry = HandlerRegistry(isolated=True)
    assert registry.resolve("ecommerce.step_handlers.ValidateCartHandler") is ValidateCartHandler
    with pytest.raises(TemplateError, match="no handler for callable 'ecommerce.step_handlers.Nope'"):
        registry.resolve("ecommerce.step_handlers.Nope")
    with pytest.raises(TemplateError, match="no handler for callable 'nowhere.at_all.Handler'"):
        registry.resolve("nowhere.at_all.Handler")
    with pytest.raises(TemplateError, match="not a step handler"):
        registry.resolve("ecommerce.step_handlers.PRODUCTS")


def test_handler_method_must_be_the_handlers_own():
    class WithMethod(StepHandler):
        def compute(self, context):
            return self.success(1)

    registry = HandlerRegistry(isolated=True)
    assert registry.handler_method(WithMethod, None, "x") == "call"
    assert registry.handler_method(WithMethod, "compute", "x") == "compute"
    for name in ("success", "failure", "__init__", "_private", "missing"):
        with pytest.raises(TemplateError, match="handler.method '%s'" % name):
            registry.handler_method(WithMethod, name, "x")


def test_decision_outcomes():
    decision = DecisionHandler()
    result = decision.decision_success(steps=["a", "b"], result_data={"k": 1})
    assert result.result == {"k": 1, "decision_point_outcome": {"type": "create_steps", "step_names": ["a", "b"]}}
    assert result.metadata["branches_created"] == 2 and result.metadata["decision_point"] is True
    none = decision.decision_no_branches()
    assert none.result == {"decision_point_outcome": {"type": "no_branches"}}
    with pytest.raises(PermanentError) as e:
        decision.decision_success(steps=[])
    assert e.value.error_code == "INVALID_DECISION_OUTCOME"
    with pytest.raises(PermanentError, match="a more than once"):
        decision.decision_success(steps=["a", "a"])


def test_batch_outcomes():
    batch = BatchableHandler()
    configs = batch.create_cursor_configs(10, 3)
    assert configs == [{"batch_id": "001", "start_cursor": 0, "end_cursor": 4, "batch_size": 4},
                       {"batch_id": "002", "start_cursor": 4, "end_cursor": 8, "batch_size": 4},
                       {"batch_id": "003", "start_cursor": 8, "end_cursor": 10, "batch_size": 2}]
    assert batch.create_cursor_configs(2, 5) == [{"batch_id": "001", "start_cursor": 0, "end_cursor": 1, "batch_size": 1},
                                                 {"batch_id": "002", "start_cursor": 1, "end_cursor": 2, "batch_size": 1}]
    outcome = batch.batch_success(worker_template_name="work", cursor_configs=configs, total_items=10).result
    assert outcome["batch_processing_outcome"]["type"] == "create_batches"
    assert outcome["batch_processing_outcome"]["worker_count"] == 3 and outcome["total_items"] == 10
    assert batch.no_batches(reason="empty").result == {"batch_processing_outcome": {"type": "no_batches",
                                                                                    "reason": "empty"}}
    with pytest.raises(PermanentError, match="batch_id 001 more than once"):
        batch.batch_success(worker_template_name="work", cursor_configs=[configs[0], configs[0]])
    with pytest.raises(PermanentError, match="total_items >= 0"):
        batch.create_cursor_configs(-1, 2)
    worker_context = StepContext.for_test({}, step_inputs={"cursor": {"batch_id": "002"}, "is_no_op": False})
    assert batch.batch_cursor(worker_context) == {"batch_id": "002"} and not batch.is_no_op_worker(worker_context)
    no_op = StepContext.for_test({}, step_inputs={"cursor": {"batch_id": "000"}, "is_no_op": True})
    assert batch.is_no_op_worker(no_op) and batch.handle_no_op_worker(no_op).result == {"batch_id": "000",
                                                                                        "no_op": True}
    done = batch.batch_worker_success(items_processed=4, items_succeeded=4, last_cursor=4, results={"sum": 6})
    assert done.result["items_failed"] == 0 and done.result["errors"] == []


def test_validation_error_names_the_field():
    error = ValidationError("amount must be positive", field="amount")
    assert error.field == "amount" and isinstance(error, PermanentError)
