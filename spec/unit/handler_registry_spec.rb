# frozen_string_literal: true

require "spec_helper"

module RegistrySpec
  module StepHandlers
    class ChargeCardHandler < TaskerCore::StepHandler::Base
      def call(_context) = success({ "ok" => true })
    end
  end
end

RSpec.describe TaskerCore::HandlerRegistry do
  subject(:registry) { described_class.new }

  it "resolves Ruby constant names and dotted names" do
    expect(registry.resolve("RegistrySpec::StepHandlers::ChargeCardHandler")).to eq(RegistrySpec::StepHandlers::ChargeCardHandler)
    expect(registry.resolve("registry_spec.step_handlers.ChargeCardHandler")).to eq(RegistrySpec::StepHandlers::ChargeCardHandler)
  end

  it "prefers registered keys" do
    registry.register("payments.charge", RegistrySpec::StepHandlers::ChargeCardHandler)
    expect(registry.resolve("payments.charge")).to eq(RegistrySpec::StepHandlers::ChargeCardHandler)
    expect(registry.registered?("payments.charge")).to be(true)
  end

  it "raises ConfigurationError naming an unknown callable" do
    expect { registry.resolve("Missing::Thing") }
      .to raise_error(TaskerCore::Errors::ConfigurationError, /no handler for callable 'Missing::Thing'/)
    expect { registry.resolve("system('x')") }.to raise_error(TaskerCore::Errors::ConfigurationError)
  end
end
