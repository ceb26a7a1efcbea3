# frozen_string_literal: true

require "spec_helper"

module RegistrySpec
  module StepHandlers
    class ChargeCardHandler < TaskerCore::StepHandler::Base
      def call(_context) = success({ "ok" => true })
      def refund(_context) = success({ "refunded" => true })
    end

    class FetchHandler < TaskerCore::StepHandler::Api
      def call(_context) = success({})
    end
  end

  class NotAHandler
    def initialize(config: {}) = @config = config
    def call(_context) = { "plain" => true }
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

  it "resolves only step handler classes: a loaded class that is no handler is a TemplateError naming the callable" do
    %w[File Set Object Kernel TaskerCore::StepHandler::Base RegistrySpec::NotAHandler registry_spec.NotAHandler].each do |name|
      expect { registry.resolve(name) }
        .to raise_error(TaskerCore::Errors::TemplateError, /handler.callable '#{Regexp.escape(name)}' .*not a step handler/)
    end
    expect(registry.resolve("RegistrySpec::StepHandlers::FetchHandler")).to eq(RegistrySpec::StepHandlers::FetchHandler)
    # A class registered explicitly is a handler by that registration.
    registry.register("plain", RegistrySpec::NotAHandler)
    expect(registry.resolve("plain")).to eq(RegistrySpec::NotAHandler)
  end

  it "lets handler.method name only a public method the handler class defines (or call)" do
    charge = RegistrySpec::StepHandlers::ChargeCardHandler
    expect(registry.handler_method(charge, "refund", "C")).to eq("refund")
    expect(registry.handler_method(charge, nil, "C")).to eq("call")
    %w[instance_eval send public_send instance_variable_set success failure checkpoint_yield config initialize
       define_singleton_method nope].each do |method|
      expect { registry.handler_method(charge, method, "RegistrySpec::StepHandlers::ChargeCardHandler") }
        .to raise_error(TaskerCore::Errors::TemplateError,
                        /handler.method '#{method}' of callable 'RegistrySpec::StepHandlers::ChargeCardHandler'/)
    end
    expect { registry.handler_method(RegistrySpec::StepHandlers::FetchHandler, "get", "F") }
      .to raise_error(TaskerCore::Errors::TemplateError, /handler.method 'get'/)
    expect { registry.handler_method(RegistrySpec::NotAHandler, "instance_eval", "plain") }
      .to raise_error(TaskerCore::Errors::TemplateError)
  end
end

module RegistrySpec
  class Publisher < TaskerCore::DomainEvents::BasePublisher; end
end

RSpec.describe "publishes_events publisher resolution" do
  let(:builder) { TaskerCore::DomainEvents::Builder }

  it "resolves only publisher classes (subclasses of BasePublisher) or publishers registered explicitly" do
    expect(builder.publisher_for("RegistrySpec::Publisher")).to be_a(RegistrySpec::Publisher)
    expect(builder.publisher_for(nil)).to be_a(TaskerCore::DomainEvents::BasePublisher)
    %w[File Tempfile Kernel Object RegistrySpec::NotAHandler system('x')].each do |name|
      expect { builder.publisher_for(name) }
        .to raise_error(TaskerCore::Errors::TemplateError, /publisher '#{Regexp.escape(name)}' is not a publisher/)
    end
    TaskerCore::DomainEvents.register_publisher("custom", RegistrySpec::Publisher.new)
    expect(builder.publisher_for("custom")).to be_a(RegistrySpec::Publisher)
  ensure
    TaskerCore::DomainEvents.publishers.delete("custom")
  end
end
