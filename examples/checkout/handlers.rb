# frozen_string_literal: true

require "digest"

# The checkout workflow's step handlers (seed 001's example, in Ruby). The template names them
# "ecommerce.step_handlers.ValidateCartHandler" and so on; the handler registry resolves those
# dotted names to these classes.
module Ecommerce
  module StepHandlers
    PRODUCTS = {
      1 => { "id" => 1, "name" => "Widget A", "price" => 29.99, "stock" => 100, "active" => true },
      2 => { "id" => 2, "name" => "Widget B", "price" => 49.99, "stock" => 50, "active" => true },
      3 => { "id" => 3, "name" => "Widget C", "price" => 19.99, "stock" => 25, "active" => true }
    }.freeze

    # Validates cart items, checks availability and calculates totals.
    class ValidateCartHandler < TaskerCore::StepHandler::Base
      def call(context)
        cart_items = context.get_input("cart_items")
        if cart_items.nil? || cart_items.empty?
          raise TaskerCore::Errors::PermanentError.new("Cart items are required", error_code: "MISSING_CART_ITEMS")
        end

        items = cart_items.each_with_index.map { |item, index| validate_item(item, index) }
        subtotal = items.sum { |i| i["line_total"] }.round(2)
        tax = (subtotal * 0.08).round(2)
        shipping = shipping_for(items)
        success({ "validated_items" => items, "subtotal" => subtotal, "tax" => tax, "shipping" => shipping,
                  "total" => (subtotal + tax + shipping).round(2), "item_count" => items.size },
                metadata: { "operation" => "validate_cart" })
      end

      private

      def validate_item(item, index)
        product = PRODUCTS[item["product_id"]]
        quantity = item["quantity"].to_i
        unless product
          raise TaskerCore::Errors::PermanentError.new("Product #{item['product_id'].inspect} not found (item #{index + 1})",
                                                       error_code: "PRODUCT_NOT_FOUND")
        end
        raise TaskerCore::Errors::PermanentError.new("Valid quantity required for item #{index + 1}", error_code: "INVALID_QUANTITY") if quantity <= 0
        if product["stock"] < quantity
          raise TaskerCore::Errors::RetryableError.new("Insufficient stock for #{product['name']}", retry_after: 30,
                                                       context: { "product_id" => product["id"] })
        end

        { "product_id" => product["id"], "name" => product["name"], "price" => product["price"],
          "quantity" => quantity, "line_total" => (product["price"] * quantity).round(2) }
      end

      def shipping_for(items)
        weight = items.sum { |i| i["quantity"] * 0.5 }
        if weight <= 2 then 5.99
        elsif weight <= 10 then 9.99
        else 14.99
        end
      end
    end

    # Charges the cart total through the configured gateway.
    class ProcessPaymentHandler < TaskerCore::StepHandler::Base
      def call(context)
        total = context.get_dependency_field("validate_cart", "total")
        token = context.get_input_or("payment_token", "tok_demo")
        payment_id = "pay_#{Digest::SHA256.hexdigest("#{context.task_uuid}:#{token}")[0, 12]}"
        success({ "payment_id" => payment_id, "amount_charged" => total, "gateway" => context.get_config("gateway"),
                  "status" => "completed" })
      end
    end

    # Reserves stock for each validated item.
    class UpdateInventoryHandler < TaskerCore::StepHandler::Base
      def call(context)
        items = context.get_dependency_field("validate_cart", "validated_items")
        reserved = items.map do |item|
          { "product_id" => item["product_id"], "reserved" => item["quantity"],
            "remaining_stock" => PRODUCTS.fetch(item["product_id"])["stock"] - item["quantity"] }
        end
        success({ "reservations" => reserved, "items_reserved" => reserved.sum { |r| r["reserved"] } })
      end
    end

    # Sends the order confirmation once payment and inventory are both done.
    class SendConfirmationHandler < TaskerCore::StepHandler::Base
      def call(context)
        payment = context.get_dependency_result("process_payment")
        inventory = context.get_dependency_result("update_inventory")
        email = context.get_input_or("customer_email", "customer@example.com")
        success({ "email_sent_to" => email, "payment_id" => payment["payment_id"],
                  "items_reserved" => inventory["items_reserved"], "message_id" => "msg_#{payment['payment_id']}" })
      end
    end
  end
end
