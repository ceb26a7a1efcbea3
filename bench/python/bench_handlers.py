"""The benchmark's handlers in Python (bench/handlers.rb's twins), registered under the Ruby class
names the benchmark templates name, so the same templates run on a Python worker."""
import time

from tasker_core import HandlerRegistry, StepHandler

MODULUS = 1_000_000_007


def _inputs(context):
    name = context.get_config("input")
    if name:
        return [int(context.get_input(name))]
    return [int(context.get_dependency_field(parent, "result")) for parent in context.get_config("parents")]


class Square(StepHandler):
    handler_name = "bench_square"

    def call(self, context):
        value = 1
        for v in _inputs(context):
            value = (value * v) % MODULUS
        return self.success({"result": (value * value) % MODULUS})


class Sum(StepHandler):
    handler_name = "bench_sum"

    def call(self, context):
        return self.success({"result": sum(_inputs(context)) % MODULUS})


class Noop(StepHandler):
    handler_name = "bench_noop"

    def call(self, context):
        return self.success({})


registry = HandlerRegistry()
registry.register("Bench::Square", Square)
registry.register("Bench::Sum", Sum)
registry.register("Bench::Noop", Noop)
