# frozen_string_literal: true

module TaskerCore
  # Maps a template's handler.callable to a handler class: a registered key first, then a Ruby
  # constant ("Payments::Charge"), then a dotted path ("payments.step_handlers.ChargeHandler"
  # becomes Payments::StepHandlers::ChargeHandler).
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
      return klass if klass.is_a?(Class)

      raise Errors::ConfigurationError,
            "no handler for callable '#{name}': it is not registered and names no loaded class"
    end

    private

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
