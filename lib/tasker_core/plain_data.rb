# frozen_string_literal: true

require "date"
require "time"

module TaskerCore
  # Turns what users pass (Rails params, Structs, Times, symbols as keys) into plain JSON-able
  # data: Hash with String keys, Array, String, Integer, Float, true, false, nil. Values it cannot
  # convert (an object whose to_h raises, one nested deeper than MAX_DEPTH) are left as they are,
  # so the engine reports them with their path. A value that contains itself (a Hash holding a
  # reference to itself) raises Errors::ValidationError naming the path, instead of recursing
  # until the stack overflows.
  module PlainData
    # The engine refuses data nested deeper than this (its converter's limit); deeper values are
    # left for it to report.
    MAX_DEPTH = 100

    module_function

    # field names the value in an error ("context", "result").
    def call(value, field: "value")
      Walk.new(field).convert(value, 0)
    end

    def key(k)
      k.is_a?(Symbol) ? k.to_s : k
    end

    # text as valid UTF-8 without NUL characters (which PostgreSQL cannot store): another
    # encoding is transcoded, bytes that are not valid UTF-8 (a binary HTTP body, say) and
    # characters that cannot be transcoded become U+FFFD.
    def text(value)
      s = value.to_s
      return s if s.encoding == Encoding::UTF_8 && s.valid_encoding? && !s.include?("\0")

      s = if [Encoding::UTF_8, Encoding::BINARY, Encoding::US_ASCII].include?(s.encoding) || s.encoding.dummy?
            s.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD")
          else
            s.encode(Encoding::UTF_8, invalid: :replace, undef: :replace, replace: "\uFFFD")
          end
      s.tr("\0", "\uFFFD")
    end

    # One conversion: the containers on the path being converted (to find cycles) and their keys.
    class Walk
      def initialize(field)
        @field = field
        @open = {}.compare_by_identity
        @keys = []
        @kinds = []
      end

      def convert(value, depth)
        case value
        when String, Integer, Float, true, false, nil then value
        when Symbol then value.to_s
        when Hash then nested(value, depth) { convert_hash(value, depth) }
        when Array then nested(value, depth) { convert_array(value, depth) }
        when Time then value.utc.iso8601(6)
        when DateTime then value.to_time.utc.iso8601(6)
        when Date then value.iso8601
        else convert_object(value, depth)
        end
      end

      private

      def convert_hash(hash, depth)
        out = {}
        hash.each do |k, v|
          @keys.push(k)
          @kinds.push(:key)
          out[PlainData.key(k)] = convert(v, depth + 1)
          @keys.pop
          @kinds.pop
        end
        out
      end

      def convert_array(array, depth)
        array.each_with_index.map do |v, i|
          @keys.push(i)
          @kinds.push(:index)
          converted = convert(v, depth + 1)
          @keys.pop
          @kinds.pop
          converted
        end
      end

      def path
        @field + @keys.zip(@kinds).map { |k, kind| kind == :index ? "[#{k}]" : ".#{k}" }.join
      end

      def nested(value, depth)
        return value if depth >= MAX_DEPTH
        if @open.key?(value)
          raise Errors::ValidationError.new("#{path} refers to itself (a reference cycle), which cannot be stored",
                                            field: @field)
        end

        @open[value] = true
        begin
          yield
        ensure
          @open.delete(value)
        end
      end

      def convert_object(value, depth)
        plain = plain_form(value)
        return value if plain.equal?(value)

        nested(value, depth) { convert(plain, depth) }
      end

      # What the object stands for (a Hash for Rails params, Structs and to_h objects, a Float for
      # a BigDecimal), or the object itself when it has no plain form or computing it raises.
      def plain_form(value)
        if value.respond_to?(:to_unsafe_h) then value.to_unsafe_h
        elsif defined?(BigDecimal) && value.is_a?(BigDecimal) then value.to_f
        elsif value.respond_to?(:to_h) && !value.is_a?(Numeric) then value.to_h
        else value
        end
      rescue StandardError
        value
      end
    end
  end
end
