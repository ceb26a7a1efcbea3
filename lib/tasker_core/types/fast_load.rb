# frozen_string_literal: true

module TaskerCore
  module Types
    module ClientTypes
      # Builds a response struct from the engine's Hash with the checks of its attribute types
      # written in plain Ruby. Dry::Struct.new resolves every attribute through dry-types' layered
      # calls; for a TaskResponse with its steps that costs more client time than the rest of a
      # create_task. The struct is the same: Struct.load of the attributes new would have resolved
      # (the known keys, symbolized, in the Hash's order; defaults for absent keys that have one;
      # unknown keys left out), with the same values.
      #
      # FastLoad.for(struct) is nil unless every attribute's type is one of TYPES (compared as
      # dry-types compares types, by definition) or an Array of such a struct with a default; a
      # loader answers nil for any Hash its checks refuse, and the caller then builds the struct
      # with new, which raises exactly as before.
      module FastLoad
        # A check's answer for a value its type refuses.
        INVALID = Object.new.freeze

        module Checks
          module_function

          def string(value) = value.is_a?(::String) ? value : INVALID
          def optional_string(value) = value.nil? || value.is_a?(::String) ? value : INVALID
          def uuid(value) = value.is_a?(::String) && UUID_FORMAT.match?(value) ? value : INVALID
          def optional_uuid(value) = value.nil? ? value : uuid(value)
          def integer(value) = value.is_a?(::Integer) ? value : INVALID
          def optional_integer(value) = value.nil? || value.is_a?(::Integer) ? value : INVALID
          def count(value) = value.is_a?(::Integer) && value >= 0 ? value : INVALID
          def bool(value) = value.equal?(true) || value.equal?(false) ? value : INVALID
          def a_hash(value) = value.is_a?(::Hash) ? value : INVALID
          def percentage(value) = value.is_a?(::Float) && value >= 0 && value <= 100 ? value : INVALID

          def optional_strings(value)
            return value if value.nil?
            return INVALID unless value.is_a?(::Array) && value.all?(::String)

            value.dup
          end

          # A String among values (a Hash of them, for the lookup).
          def enum(values)
            ->(value) { value.is_a?(::String) && values.key?(value) ? value : INVALID }
          end
        end

        def self.enum_check(values) = Checks.enum(values.to_h { |v| [v, true] }.freeze)

        # The attribute types a loader knows, with their checks.
        TYPES = {
          Types::Strict::String => Checks.method(:string),
          Types::Strict::String.optional => Checks.method(:optional_string),
          Uuid => Checks.method(:uuid),
          Uuid.optional => Checks.method(:optional_uuid),
          Types::Strict::Integer => Checks.method(:integer),
          Types::Strict::Integer.optional => Checks.method(:optional_integer),
          Count => Checks.method(:count),
          Types::Strict::Bool => Checks.method(:bool),
          Types::Strict::Hash => Checks.method(:a_hash),
          Types::Strict::Float.constrained(gteq: 0, lteq: 100) => Checks.method(:percentage),
          Types::Strict::Array.of(Types::Strict::String).optional => Checks.method(:optional_strings),
          TaskStatus => enum_check(TASK_STATES),
          StepState => enum_check(STEP_STATES),
          Types::Strict::String.enum(*EXECUTION_STATUSES) => enum_check(EXECUTION_STATUSES),
          Types::Strict::String.enum(*RECOMMENDED_ACTIONS) => enum_check(RECOMMENDED_ACTIONS),
          Types::Strict::String.enum(*HEALTH_STATUSES) => enum_check(HEALTH_STATUSES)
        }.freeze

        # One struct's loader.
        class Loader
          def initialize(struct, fields)
            @struct = struct
            @keys = struct.schema.keys
            # By the String and the Symbol key: [attribute name, check].
            @fields = fields.flat_map { |name, check| [[name.to_s, [name, check]], [name, [name, check]]] }.to_h.freeze
          end

          def call(data)
            return nil unless data.is_a?(::Hash)

            out = {}
            data.each do |key, value|
              field = @fields[key]
              unless field
                # A key of another kind is for new to judge; an unknown name is left out, as new does.
                return nil unless key.is_a?(::String) || key.is_a?(::Symbol)

                next
              end
              checked = field[1].call(value)
              return nil if checked.equal?(INVALID)

              out[field[0]] = checked
            end
            return @struct.load(out) if out.size == @keys.size

            @keys.each do |key|
              next if out.key?(key.name)

              if key.default?
                out[key.name] = key.call_unsafe(::Dry::Types::Undefined)
              elsif key.required?
                return nil
              end
            end
            @struct.load(out)
          end
        end

        @loaders = {}
        @lock = Monitor.new # compiling a struct compiles the structs of its attributes

        class << self
          # The loader of struct (a BaseStruct subclass), or nil when it has an attribute type
          # outside TYPES.
          def for(struct)
            @loaders.fetch(struct) do
              @lock.synchronize { @loaders[struct] = compile(struct) unless @loaders.key?(struct) }
              @loaders[struct]
            end
          end

          private

          def compile(struct)
            return nil if struct.schema.strict?

            fields = struct.schema.keys.map do |key|
              check = check_for(key.type)
              return nil unless check

              [key.name, check]
            end
            Loader.new(struct, fields)
          end

          def check_for(type)
            return TYPES[type] if TYPES.key?(type)

            # steps: an Array of a struct this module loads, with a default.
            return nil unless type.is_a?(::Dry::Types::Default)

            array = type.type
            return nil unless array == Types::Strict::Array.of(array.type.member)

            member = array.type.member
            loader = member.is_a?(::Class) && member < ::Dry::Struct && self.for(member)
            return nil unless loader

            lambda do |value|
              return INVALID unless value.is_a?(::Array)

              value.map do |item|
                built = loader.call(item)
                return INVALID unless built

                built
              end
            end
          end
        end
      end
    end
  end
end
