"""tasker_core for Python: step handlers, workers and the TaskerClient on the tasker_core engine
(a C library on PostgreSQL, shared with the Ruby gem).

    from tasker_core import StepHandler, StepContext, StepHandlerResult, TaskerClient
"""
from . import errors
from .client import TaskerClient
from .client_types import (
    HealthResponse as ClientHealthResponse,
    PaginationInfo as ClientPaginationInfo,
    StepAuditResponse as ClientStepAuditResponse,
    StepReadiness as ClientStepReadiness,
    StepResponse as ClientStepResponse,
    TaskListResponse as ClientTaskListResponse,
    TaskResponse as ClientTaskResponse,
)
from .configuration import Config, boot, config, configure, migrate, shutdown
from .registry import HandlerRegistry
from .step_context import DependencyResults, StepContext
from .step_handler import BatchableHandler, DecisionHandler, StepHandler, StepHandlerResult
from .templates import load as load_templates
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "errors", "TaskerClient", "ClientTaskResponse", "ClientTaskListResponse", "ClientStepResponse",
    "ClientStepAuditResponse", "ClientHealthResponse", "ClientPaginationInfo", "ClientStepReadiness",
    "Config", "config", "configure", "boot", "migrate", "shutdown", "HandlerRegistry", "StepContext",
    "DependencyResults", "StepHandler", "StepHandlerResult", "DecisionHandler", "BatchableHandler",
    "load_templates", "Worker",
]
