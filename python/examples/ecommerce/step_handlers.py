"""The checkout workflow's handlers, as seed 001 writes them: validate the cart, take payment and
update inventory in parallel, then send the confirmation."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any

from tasker_core import StepContext, StepHandler, StepHandlerResult
from tasker_core.errors import PermanentError, RetryableError

logger = logging.getLogger(__name__)

# Mock product database
PRODUCTS = {
    1: {"id": 1, "name": "Widget A", "price": 29.99, "stock": 100, "active": True},
    2: {"id": 2, "name": "Widget B", "price": 49.99, "stock": 50, "active": True},
    3: {"id": 3, "name": "Widget C", "price": 19.99, "stock": 25, "active": True},
}


class ValidateCartHandler(StepHandler):
    """Validates cart items, checks availability, and calculates totals."""

    handler_name = "ecommerce.step_handlers.ValidateCartHandler"
    handler_version = "1.0.0"

    def call(self, context: StepContext) -> StepHandlerResult:
        cart_items = context.get_input("cart_items")

        if not cart_items:
            raise PermanentError(
                message="Cart items are required",
                error_code="MISSING_CART_ITEMS",
            )

        logger.info(
            "ValidateCartHandler: Validating cart - task_uuid=%s, items=%d",
            context.task_uuid,
            len(cart_items),
        )

        # Validate each cart item
        self._validate_cart_item_structure(cart_items)
        validated_items = self._validate_cart_items(cart_items)

        # Calculate totals
        subtotal = sum(item["line_total"] for item in validated_items)
        tax = round(subtotal * 0.08, 2)  # 8% tax
        shipping = self._calculate_shipping(validated_items)
        total = subtotal + tax + shipping

        return StepHandlerResult.success(
            {
                "validated_items": validated_items,
                "subtotal": subtotal,
                "tax": tax,
                "shipping": shipping,
                "total": total,
                "item_count": len(validated_items),
                "validated_at": datetime.now(timezone.utc).isoformat(),
            },
            metadata={
                "operation": "validate_cart",
                "execution_hints": {
                    "items_validated": len(validated_items),
                    "total_amount": total,
                },
            },
        )

    def _validate_cart_item_structure(self, cart_items: list[dict]) -> None:
        for index, item in enumerate(cart_items):
            if not item.get("product_id"):
                raise PermanentError(
                    message=f"Product ID required for item {index + 1}",
                    error_code="MISSING_PRODUCT_ID",
                )

            quantity = item.get("quantity")
            if not quantity or quantity <= 0:
                raise PermanentError(
                    message=f"Valid quantity required for item {index + 1}",
                    error_code="INVALID_QUANTITY",
                )

    def _validate_cart_items(self, cart_items: list[dict]) -> list[dict]:
        validated = []

        for item in cart_items:
            product_id = item["product_id"]
            quantity = item["quantity"]
            product = PRODUCTS.get(product_id)

            if not product:
                raise PermanentError(
                    message=f"Product {product_id} not found",
                    error_code="PRODUCT_NOT_FOUND",
                )

            if not product["active"]:
                raise PermanentError(
                    message=f"Product {product['name']} is not available",
                    error_code="PRODUCT_INACTIVE",
                )

            if product["stock"] < quantity:
                # Temporary failure - retry when stock replenished
                raise RetryableError(
                    message=f"Insufficient stock for {product['name']}",
                    retry_after=30,
                    context={
                        "product_id": product_id,
                        "available": product["stock"],
                        "requested": quantity,
                    },
                )

            validated.append({
                "product_id": product["id"],
                "name": product["name"],
                "price": product["price"],
                "quantity": quantity,
                "line_total": round(product["price"] * quantity, 2),
            })

        return validated

    def _calculate_shipping(self, items: list[dict]) -> float:
        total_weight = sum(item["quantity"] * 0.5 for item in items)
        if total_weight <= 2:
            return 5.99
        elif total_weight <= 10:
            return 9.99
        else:
            return 14.99


class ProcessPaymentHandler(StepHandler):
    handler_name = "process_payment"

    def call(self, context: StepContext) -> StepHandlerResult:
        # Get results from upstream steps
        cart_result = context.get_dependency_result("validate_cart")
        total = cart_result["total"]

        # Get payment info from task context
        payment_method = context.get_input("payment_method")
        payment_token = context.get_input("payment_token")

        # Process payment
        payment_id = self._charge_payment(total, payment_method, payment_token)

        return self.success({
            "payment_id": payment_id,
            "amount_charged": total,
            "status": "completed"
        })

    def _charge_payment(self, total: float, payment_method: Any, payment_token: Any) -> str:
        """A stand-in gateway: a declined test token fails for good, anything else is charged."""
        if payment_token == "tok_declined":
            raise PermanentError(message="Payment declined", error_code="PAYMENT_DECLINED")
        digest = hashlib.sha256(f"{payment_method}:{payment_token}:{total}".encode()).hexdigest()
        return f"pay_{digest[:12]}"


class UpdateInventoryHandler(StepHandler):
    handler_name = "update_inventory"

    def call(self, context: StepContext) -> StepHandlerResult:
        items = context.get_dependency_field("validate_cart", "validated_items")
        reservations = [{"product_id": item["product_id"], "reserved": item["quantity"]} for item in items]
        return self.success({
            "reservations": reservations,
            "items_reserved": sum(r["reserved"] for r in reservations),
        })


class SendConfirmationHandler(StepHandler):
    handler_name = "send_confirmation"

    def call(self, context: StepContext) -> StepHandlerResult:
        payment = context.get_dependency_result("process_payment")
        inventory = context.get_dependency_result("update_inventory")
        email = context.get_input_or("customer_email", "customer@example.com")
        return self.success({
            "email_sent_to": email,
            "payment_id": payment["payment_id"],
            "items_reserved": inventory["items_reserved"],
        })
