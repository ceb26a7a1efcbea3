# frozen_string_literal: true

module TaskerCore
  # Maps a template's handler.callable to a handler class: a registered key first, then a Ruby
  # constant ("Payments::Charge"), then a dotted path ("payments.step_handlers.ChargeHandler"
  # becomes Payments::StepHandlers::ChargeHandler). A constant must be a step handler class (a
  # subclass of TaskerCore::StepHandler::Base, Api, Decision or Batchable); any other class runs only
  # when it was registered explicitly. handler.method must name `call` or a public method the
  # handler class itself defines, never one of Object's or the handler bases' (instance_eval, send,
  # success, get, ...).
  class HandlerRegistry
    def self.instance
      @instance ||= new
    end

    def self.register(key, klass = nil) = instance.register(key, klass)
    def self.resolve(callable) = instance.resolve(callable)

    def initialize
      @handlers = {}
      @mutex = Mutex.new
    end

    # register(SomeHandler) registers it under its class name (and handler_name when defined);
    # register("key", SomeHandler) under that key.
    def register(key, klass = nil)
      klass, key = key, nil if klass.nil?
      raise Errors::ConfigurationError, "a handler must be a Class (got #{klass.inspect})" unless klass.is_a?(Class)

      keys = [key, klass.name, (klass.handler_name if klass.respond_to?(:handler_name))].compact.map(&:to_s)
      @mutex.synchronize { keys.each { |k| @handlers[k] = klass } }
      klass
    end

    def registered?(callable)
      @mutex.synchronize { @handlers.key?(callable.to_s) }
    end

    def resolve(callable)
      name = callable.to_s
      found = @mutex.synchronize { @handlers[name] }
      return found if found

      klass = constant_for(name) || constant_for(camelize_dotted(name))
      return klass if klass.is_a?(Class) && klass < StepHandler::Base

      if klass.nil?
        raise Errors::TemplateError,
              "no handler for callable '#{name}': it is not registered and names no loaded class"
      end
      raise Errors::TemplateError,
            "handler.callable '#{name}' names #{klass.inspect}, which is not a step handler (a subclass of " \
            "TaskerCore::StepHandler::Base, Api, Decision or Batchable); register any other class explicitly " \
            "with TaskerCore::HandlerRegistry.register"
    end

    # The method to call on an instance of klass for handler.method (nil: "call"); raises
    # TemplateError naming the method and the callable unless it is `call` or a public method
    # klass defines beyond what every object and the handler bases have.
    def handler_method(klass, method, callable)
      name = (method || "call").to_s
      return name if name == "call"

      base = klass < StepHandler::Base ? StepHandler::Base : Object
      owner = klass.public_method_defined?(name) ? klass.instance_method(name).owner : nil
      return name if owner && !base.public_method_defined?(name) && !framework.include?(owner)

      raise Errors::TemplateError,
            "handler.method '#{name}' of callable '#{callable}' is not a public method that #{klass.name || klass.inspect} " \
            "defines (only `call` or the handler's own methods may be named)"
    end

    private

    # The handler bases, whose own helpers (get, post, decision_success, ...) are no entry points.
    def framework = [StepHandler::Base, StepHandler::Api, StepHandler::Decision, StepHandler::Batchable]

    def constant_for(name)
      return nil unless name.match?(/\A(::)?[A-Z]\w*(::[A-Z]\w*)*\z/)

      Object.const_get(name)
    rescue NameError
      nil
    end

    def camelize_dotted(name)
      parts = name.split(".")
      return name if parts.size < 2

      parts.map { |p| p.split("_").map { |w| w[0] ? w[0].upcase + w[1..] : w }.join }.join("::")
    end
  end
end
