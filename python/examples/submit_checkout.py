"""Creates a checkout task (seed 001's workflow), waits until a worker has run it, and prints its
steps. Run it while a worker serves the ecommerce namespace:

    python examples/submit_checkout.py
"""
from tasker_core import TaskerClient

client = TaskerClient(initiator="checkout-demo")

task = client.create_task(
    "checkout_workflow",
    namespace="ecommerce",
    context={
        "cart_items": [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}],
        "payment_method": "card",
        "payment_token": "tok_visa",
        "customer_email": "ada@example.com",
    },
    reason="Checkout demo",
)
print(f"Task created: {task.task_uuid} ({task.status})")

status = client.wait_for_task(task.task_uuid, timeout=60)
print(f"Task finished: {status}")

for step in client.list_task_steps(task.task_uuid):
    print(f"  {step.name}: {step.current_state}")

confirmation = next(s for s in client.list_task_steps(task.task_uuid) if s.name == "send_confirmation")
print(f"Confirmation: {confirmation.results['result']}")
