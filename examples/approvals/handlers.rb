# frozen_string_literal: true

# Handlers of the conditional approval workflow (examples/approvals/templates/approval_routing.yml).
module Approvals
  class ValidateRequestHandler < TaskerCore::StepHandler::Base
    def call(context)
      missing = %w[amount requester purpose].reject { |k| context.get_input(k) }
      raise TaskerCore::Errors::ValidationError.new("missing #{missing.join(', ')}", field: missing.first) if missing.any?

      amount = context.get_input("amount")
      raise TaskerCore::Errors::ValidationError.new("amount must be positive", field: "amount") unless amount.positive?

      success({ "amount" => amount, "requester" => context.get_input("requester") })
    end
  end

  class RoutingDecisionHandler < TaskerCore::StepHandler::Decision
    def call(context)
      amount = context.get_dependency_field("validate_request", "amount")
      steps = if amount < 1_000 then %w[auto_approve]
              elsif amount < 5_000 then %w[manager_approval]
              else %w[manager_approval finance_review]
              end
      decision_success(steps: steps, result_data: { "amount" => amount, "route" => steps.join("+") })
    end
  end

  class ApproveHandler < TaskerCore::StepHandler::Base
    def call(context)
      success({ "approved" => true, "approver" => context.get_config("approver") })
    end
  end

  class FinalizeApprovalHandler < TaskerCore::StepHandler::Base
    def call(context)
      # Dependency results are transitive; the approvals are the branches the decision created.
      approvals = %w[auto_approve manager_approval finance_review].select { |n| context.dependency_results.key?(n) }.sort
      approvers = approvals.map { |name| context.get_dependency_field(name, "approver") }
      success({ "approved" => true, "approvals" => approvals, "approvers" => approvers,
                "amount" => context.get_dependency_field("routing_decision", "amount") })
    end
  end
end
