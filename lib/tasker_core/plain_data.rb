# frozen_string_literal: true

require "date"
require "time"

module TaskerCore
  # Turns what users pass (Rails params, Structs, Times, symbols as keys) into plain JSON-able
  # data: Hash with String keys, Array, String, Integer, Float, true, false, nil. Values it cannot
  # convert are left as they are, so the engine reports them with their path.
  module PlainData
    module_function

    def call(value)
      case value
      when Hash then value.each_with_object({}) { |(k, v), h| h[key(k)] = call(v) }
      when Array then value.map { |v| call(v) }
      when String, Integer, Float, true, false, nil then value
      when Symbol then value.to_s
      when Time then value.utc.iso8601(6)
      when DateTime then value.to_time.utc.iso8601(6)
      when Date then value.iso8601
      else convert_object(value)
      end
    end

    def key(k)
      k.is_a?(Symbol) ? k.to_s : k
    end

    def convert_object(value)
      if value.respond_to?(:to_unsafe_h) then call(value.to_unsafe_h)
      elsif defined?(BigDecimal) && value.is_a?(BigDecimal) then value.to_f
      elsif value.respond_to?(:to_h) && !value.is_a?(Numeric) then call(value.to_h)
      else value
      end
    end
  end
end
