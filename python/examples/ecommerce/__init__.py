"""Seed 001's e-commerce handlers: the checkout workflow (examples/checkout/templates in the
repository root) names them ecommerce.step_handlers.*, for Python and Ruby workers alike."""
