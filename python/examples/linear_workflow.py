"""Seed 001's minimal handler (LinearStep1Handler) and the three steps that follow it in the
linear workflow (templates/linear_workflow.yml): each squares its predecessor's result."""
from tasker_core import HandlerRegistry, StepContext, StepHandler, StepHandlerResult


class LinearStep1Handler(StepHandler):
    handler_name = "linear_step_1"
    handler_version = "1.0.0"

    def call(self, context: StepContext) -> StepHandlerResult:
        # Access task context using get_input()
        even_number = context.get_input("even_number")

        if not even_number or even_number % 2 != 0:
            return self.failure(
                "Task context must contain an even number",
                error_type="validation_error",
                retryable=False
            )

        # Perform business logic
        result = even_number * even_number

        # Return success result
        return self.success(
            {"result": result},
            metadata={
                "operation": "square",
                "step_type": "initial"
            }
        )


class SquarePreviousHandler(StepHandler):
    """Squares the result of the step named in handler.initialization.previous."""

    handler_name = "linear_square_previous"

    def call(self, context: StepContext) -> StepHandlerResult:
        previous = context.get_dependency_field(self.config["previous"], "result")
        return self.success({"result": previous * previous}, metadata={"operation": "square"})


# The template names these handlers by handler_name ("linear_step_1"), so they are registered.
registry = HandlerRegistry()
registry.register(LinearStep1Handler)
registry.register(SquarePreviousHandler)
